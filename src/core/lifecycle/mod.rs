//! The Incident lifecycle (core layer): a pure function of (incident, what the shell observed, now,
//! config) returning the new status — phase, timeline entries, clocks, conditions — with the Events
//! to publish, the metrics to record and when to look again. The incident controller fetches,
//! calls, writes.
//!
//! One update runs in this order, each part in its own file: [`record`] what happened (detection,
//! changes, acknowledgment, notes, remediation, resolution, closing, missing objects, an unusable
//! runbook), then the [`clocks`], then the phase and [`conditions`]. The [`draft`] carries the
//! status being computed between them.

mod clocks;
pub mod conditions;
pub mod config;
mod draft;
mod record;
pub mod wakes;

pub use conditions::{allowed, phase_label};
pub use config::LifecycleConfig;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use self::{conditions::Seen, draft::Draft};
use crate::{
    api::{Incident, IncidentStatus, Severity, Sla},
    core::timeline::{Entry, Notice},
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

/// Computes the incident's next status and what to do about it.
pub fn update(
    incident: &Incident,
    related: &Related,
    now: Timestamp,
    config: &LifecycleConfig,
) -> Update {
    let mut d = Draft::new(incident, now);
    let detected_at = record::detect(&mut d, incident);
    record::changes(&mut d, incident);
    record::acknowledge(&mut d, incident, detected_at);
    record::notes(&mut d, incident);
    record::actions(&mut d, related);
    record::resolution(&mut d, incident, detected_at, config);
    record::close(&mut d, incident);
    let missing = record::missing(&mut d, related);
    record::runbook_problem(&mut d, related);
    let clocks = clocks::run(&mut d, incident, detected_at, config);

    let generation = incident.metadata.generation.unwrap_or(0);
    let mut status = d.status;
    status.phase = Some(conditions::phase(&status, &clocks));
    let seen = Seen {
        related,
        missing: &missing,
        last_update: d.last_update.unwrap_or(detected_at),
        now: d.now,
        generation,
    };
    status.conditions = conditions::conditions(incident, &status, &clocks, seen);
    status.sla = Some(Sla {
        respond_by: Time(clocks.respond_by),
        breached: clocks.breached,
        postmortem_due_by: clocks
            .postmortem_due_by
            .filter(|_| !clocks.closed)
            .map(Time),
    });
    status.metrics = Some(d.metrics);
    status.last_update_time = d.last_update.map(Time);
    status.observed_generation = Some(generation);
    status.recorded = Some(d.recorded);
    Update {
        status,
        notices: d.notices,
        observations: d.observations,
        wake_at: clocks.wake_at,
    }
}

#[cfg(test)]
mod tests;
