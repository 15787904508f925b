//! The Incident lifecycle (core layer): a pure function of (incident, what the shell observed, now,
//! config) returning the new status — phase, timeline entries, clocks, conditions — with the Events
//! to publish, the metrics to record and when to look again. The incident controller fetches,
//! calls, writes.
//!
//! One [`update`] runs in this order, each part in its own file: `record` what happened (detection,
//! changes, acknowledgment, notes, remediation, resolution, closing, missing objects, an unusable
//! runbook), then the `clocks`, then the phase and [`conditions`]. The `draft` carries the status
//! being computed between them.

mod clocks;
pub mod conditions;
pub mod config;
mod draft;
mod record;
mod update;
pub mod wakes;

pub use conditions::{allowed, phase_label};
pub use config::LifecycleConfig;
pub use update::update;

use jiff::Timestamp;

use crate::{
    api::{IncidentStatus, Severity},
    core::{
        calendar::Calendar,
        timeline::{Entry, Notice},
    },
};

/// Facts about the world the update needs besides the incident itself.
#[derive(Clone, Debug, Default)]
pub struct Related {
    /// Referenced objects that do not exist, as display strings.
    pub missing_affected: Vec<String>,
    /// Why the runbook named by `spec.runbookRef` cannot be followed, when it cannot.
    pub runbook_problem: Option<RunbookProblem>,
    /// What remediation and the runbook did since the last status write, to record in the timeline.
    pub action_entries: Vec<Entry>,
    /// The business hours the response clock counts in (P2/P3 under a policy that has them).
    pub business_hours: Option<Calendar>,
}

/// A named runbook that cannot be followed: `reason` is the condition reason (NotFound, NotUsable).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunbookProblem {
    pub reason: &'static str,
    pub message: String,
}

/// A metric observation to make once the new status is stored.
#[derive(Clone, Debug, PartialEq)]
pub enum Observation {
    Acknowledged {
        severity: Severity,
        seconds: f64,
    },
    Resolved {
        severity: Severity,
        seconds: f64,
    },
    Overdue {
        severity: Severity,
        clock: &'static str,
    },
}

/// The outcome of one lifecycle update.
#[derive(Clone, Debug, PartialEq)]
pub struct Update {
    pub status: IncidentStatus,
    pub notices: Vec<Notice>,
    pub observations: Vec<Observation>,
    /// When to look again (the nearest deadline), if any.
    pub wake_at: Option<Timestamp>,
}

#[cfg(test)]
mod tests;
