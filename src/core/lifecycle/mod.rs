//! The Incident lifecycle (core layer): phases, timeline entries, clocks and conditions computed
//! from the incident and what the shell observed, with the Events to publish and the metrics to
//! record.

pub mod update;
pub mod wakes;

pub use update::{LifecycleConfig, Observation, Related, RunbookProblem, Update, allowed, update};

#[cfg(test)]
mod tests;
