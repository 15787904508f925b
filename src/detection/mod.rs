//! Detection: the cluster's own health signals (pod container states, Deployment availability,
//! node readiness). So far only the pure classification exists (`classify`); grouping signals into
//! incidents, the watchers and auto-resolve are the open part of issue 5 and are not wired into
//! `incident-operator run` yet.

pub mod classify;
pub mod detector;
pub mod group;
