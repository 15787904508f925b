//! The watch loops (controllers layer): each reads the cluster, calls the pure core and applies the
//! result through `cluster`. They never import each other; `operator` starts them.

pub mod admission;
pub mod channel;
pub mod detector;
pub mod incident;
pub mod leader;
pub mod notifications;
pub mod oncall;
pub mod runbook;
