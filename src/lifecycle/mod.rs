//! The Incident lifecycle: phases, timeline and clocks (pure core in `decide` and `timeline`) and
//! the controller that runs it against the cluster (shell in `controller`).

pub mod controller;
pub mod decide;
pub mod timeline;

pub use decide::{
    ActionEntry, Decision, LifecycleConfig, Notice, Observation, Related, allowed, decide,
};
#[cfg(test)]
mod tests;
