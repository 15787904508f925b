//! The lifecycle's clocks as configured (core layer): response time per severity, how often P0/P1
//! incidents need an update, and how long the post-mortem may take.

use std::time::Duration;

use crate::api::Severity;

/// Clock settings of the lifecycle.
#[derive(Clone, Debug, PartialEq)]
pub struct LifecycleConfig {
    /// Time to acknowledge, by severity (P0..P3).
    pub response_times: [Duration; 4],
    /// Longest silence allowed on an unresolved incident of a severity in `update_severities`.
    pub update_interval: Duration,
    pub update_severities: Vec<Severity>,
    /// Time from resolution to a completed post-mortem.
    pub postmortem_due: Duration,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        Self {
            response_times: [
                Duration::from_secs(15 * 60),
                Duration::from_secs(60 * 60),
                Duration::from_secs(4 * 60 * 60),
                Duration::from_secs(24 * 60 * 60),
            ],
            update_interval: Duration::from_secs(30 * 60),
            update_severities: vec![Severity::P0, Severity::P1],
            postmortem_due: Duration::from_secs(48 * 60 * 60),
        }
    }
}

impl LifecycleConfig {
    pub fn response_time(&self, severity: Severity) -> Duration {
        self.response_times[severity as usize]
    }
}
