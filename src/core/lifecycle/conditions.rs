//! Where the incident stands (core layer): its phase, derived from what has happened, the phase
//! changes allowed, and the kstatus-style conditions with their transition times.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::{Related, clocks::Clocks};
use crate::{
    api::{ActionPhase, Incident, IncidentStatus, Phase},
    core::text::condition,
};

/// Phase changes the lifecycle allows (remediation adds Mitigating/Monitoring later).
pub fn allowed(from: Option<Phase>, to: Phase) -> bool {
    use Phase::*;
    match from {
        None => true,
        Some(from) if from == to => true,
        Some(Detected) => matches!(
            to,
            Acknowledged | Mitigating | Monitoring | Resolved | Closed
        ),
        Some(Acknowledged) => matches!(to, Mitigating | Monitoring | Resolved | Closed),
        Some(Mitigating) => matches!(to, Detected | Monitoring | Acknowledged | Resolved | Closed),
        Some(Monitoring) => matches!(to, Detected | Mitigating | Acknowledged | Resolved | Closed),
        // Reopening returns to where the response stood, remediation included.
        Some(Resolved) => matches!(
            to,
            Detected | Acknowledged | Mitigating | Monitoring | Closed
        ),
        Some(Closed) => matches!(
            to,
            Detected | Acknowledged | Mitigating | Monitoring | Resolved
        ),
    }
}

/// The phase, derived from what has happened: an action under way means Mitigating, a last action
/// that succeeded means Monitoring (dry runs and skips change nothing).
pub(super) fn phase(status: &IncidentStatus, clocks: &Clocks) -> Phase {
    let active = status.actions.iter().any(|a| !a.phase.is_terminal());
    let last_effective = status
        .actions
        .iter()
        .rev()
        .find(|a| matches!(a.phase, ActionPhase::Succeeded | ActionPhase::Failed));
    if clocks.closed {
        Phase::Closed
    } else if clocks.resolved {
        Phase::Resolved
    } else if active {
        Phase::Mitigating
    } else if last_effective.is_some_and(|a| a.phase == ActionPhase::Succeeded) {
        Phase::Monitoring
    } else if clocks.acknowledged_at.is_some() {
        Phase::Acknowledged
    } else {
        Phase::Detected
    }
}

/// What the conditions are computed from besides the incident and its clocks.
pub(super) struct Seen<'a> {
    pub related: &'a Related,
    pub missing: &'a [String],
    /// The last update from responders, else detection.
    pub last_update: Timestamp,
    pub now: Timestamp,
    pub generation: i64,
}

/// The conditions, each with the incident's generation and a transition time kept from `previous`
/// while its status stays the same.
pub(super) fn conditions(
    incident: &Incident,
    status: &IncidentStatus,
    clocks: &Clocks,
    seen: Seen<'_>,
) -> Vec<Condition> {
    let spec = &incident.spec;
    let Clocks {
        respond_by,
        acknowledged_at,
        resolved,
        closed,
        ack_overdue,
        needs_updates,
        update_due,
        update_overdue,
        postmortem_due_by,
        postmortem_overdue,
        ..
    } = *clocks;
    let missing = seen.missing;
    let conditions = [
        condition(
            "Acknowledged",
            acknowledged_at.is_some(),
            if acknowledged_at.is_some() {
                "Acknowledged"
            } else {
                "AwaitingAcknowledgment"
            },
            match &spec.acknowledgment {
                Some(ack) => format!("Acknowledged by {}", ack.by),
                None if acknowledged_at.is_some() => "Acknowledged".to_owned(),
                None => format!("Respond by {respond_by}"),
            },
        ),
        condition(
            "Resolved",
            resolved,
            if resolved { "Resolved" } else { "Unresolved" },
            match &spec.resolution {
                Some(r) => format!("Resolved by {}: {}", r.by, r.summary),
                None => "The incident is open".to_owned(),
            },
        ),
        condition(
            "AcknowledgeOverdue",
            ack_overdue,
            if ack_overdue {
                "ResponseTimeExceeded"
            } else {
                "WithinResponseTime"
            },
            if ack_overdue {
                format!("Not acknowledged by {respond_by}")
            } else {
                format!("Respond by {respond_by}")
            },
        ),
        condition(
            "UpdateOverdue",
            update_overdue,
            if update_overdue {
                "NoRecentUpdate"
            } else {
                "UpToDate"
            },
            if update_overdue {
                format!("No update since {}", seen.last_update)
            } else if needs_updates {
                format!("Next update due by {update_due}")
            } else {
                "No regular updates required".to_owned()
            },
        ),
        condition(
            "PostmortemOverdue",
            postmortem_overdue,
            if postmortem_overdue {
                "PostmortemNotCompleted"
            } else {
                "OnTime"
            },
            match postmortem_due_by {
                Some(due) if postmortem_overdue => format!("Post-mortem was due by {due}"),
                Some(due) if !closed => format!("Post-mortem due by {due}"),
                _ => "No post-mortem pending".to_owned(),
            },
        ),
        condition(
            "AffectedFound",
            missing.is_empty(),
            if missing.is_empty() {
                "AllFound"
            } else {
                "NotFound"
            },
            if missing.is_empty() {
                "Every referenced object exists".to_owned()
            } else {
                format!("Not found: {}", missing.join(", "))
            },
        ),
    ];
    // Only incidents that name a runbook say whether it can be followed.
    let runbook_condition = spec.runbook_ref.as_ref().and_then(|_| {
        match (&seen.related.runbook_problem, &status.runbook) {
            (Some(problem), _) => Some(condition(
                "RunbookUsable",
                false,
                problem.reason,
                problem.message.clone(),
            )),
            (None, Some(run)) => Some(condition(
                "RunbookUsable",
                true,
                "Following",
                format!(
                    "Following runbook {} (generation {})",
                    run.name, run.generation
                ),
            )),
            (None, None) => None,
        }
    });
    conditions
        .into_iter()
        .chain(runbook_condition)
        .map(|mut c| {
            c.observed_generation = Some(seen.generation);
            // Keep the transition time unless the status flipped.
            match status.conditions.iter().find(|p| p.type_ == c.type_) {
                Some(p) if p.status == c.status => {
                    c.last_transition_time = p.last_transition_time.clone()
                }
                _ => c.last_transition_time = Time(seen.now),
            }
            c
        })
        .collect()
}

/// Metric labels for metrics of an incident's state.
pub fn phase_label(status: Option<&IncidentStatus>) -> &'static str {
    match status.and_then(|s| s.phase) {
        None | Some(Phase::Detected) => "Detected",
        Some(Phase::Acknowledged) => "Acknowledged",
        Some(Phase::Mitigating) => "Mitigating",
        Some(Phase::Monitoring) => "Monitoring",
        Some(Phase::Resolved) => "Resolved",
        Some(Phase::Closed) => "Closed",
    }
}
