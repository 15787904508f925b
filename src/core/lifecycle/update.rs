//! The lifecycle update (core layer): a pure function of (incident, related facts, now, config)
//! returning the new status and the side effects to perform. The incident controller fetches,
//! calls, writes.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::{
    api::{ActionPhase, EntryType, Incident, IncidentStatus, Phase, Severity, Sla},
    core::{
        text::{condition, fingerprint, humanize, to_second},
        timeline::{Entry, Notice, record, spec_actor},
    },
};

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

/// Facts about the world the decision needs besides the incident itself.
#[derive(Clone, Debug, Default)]
pub struct Related {
    /// Referenced objects that do not exist, as display strings.
    pub missing_affected: Vec<String>,
    /// Why the runbook named by `spec.runbookRef` cannot be followed, when it cannot.
    pub runbook_problem: Option<RunbookProblem>,
    /// What remediation did since the last status write, to record in the timeline.
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

#[derive(Clone, Debug, PartialEq)]
pub struct Update {
    pub status: IncidentStatus,
    pub notices: Vec<Notice>,
    pub observations: Vec<Observation>,
    /// When to look again (the nearest deadline), if any.
    pub wake_at: Option<Timestamp>,
}

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

fn at(time: &Time) -> Timestamp {
    time.0
}

/// `time + duration`, cut to the second like every time in the status (durations may have a
/// fraction, e.g. `--update-interval 30m0.5s`): a deadline with a fraction would never compare
/// equal to its stored copy, so its miss would be recorded again on every reconcile.
fn plus(time: Timestamp, duration: Duration) -> Timestamp {
    let duration = SignedDuration::try_from(duration).unwrap_or(SignedDuration::MAX);
    let sum = time.checked_add(duration).unwrap_or(Timestamp::MAX);
    to_second(sum)
}

fn seconds_between(from: Timestamp, to: Timestamp) -> i64 {
    to.duration_since(from).as_secs().max(0)
}

/// Computes the incident's next status and what to do about it.
pub fn update(
    incident: &Incident,
    related: &Related,
    now: Timestamp,
    config: &LifecycleConfig,
) -> Update {
    // Status times are stored to the second; deciding at finer grain would never compare equal.
    let now = to_second(now);
    let spec = &incident.spec;
    let uid = incident.metadata.uid.clone().unwrap_or_default();
    let generation = incident.metadata.generation.unwrap_or(0);
    let previous = incident.status.clone().unwrap_or_default();
    let mut status = previous.clone();
    let mut recorded = status.recorded.take().unwrap_or_default();
    let mut metrics = status.metrics.take().unwrap_or_default();
    let mut notices = Vec::new();
    let mut observations = Vec::new();
    let mut last_update = status.last_update_time.as_ref().map(at);
    let actor = spec_actor(incident);
    let key = |parts: &[&str]| {
        let mut all = vec![uid.as_str()];
        all.extend_from_slice(parts);
        fingerprint(&all)
    };
    let gen_text = generation.to_string();
    let recorded_before: usize = previous
        .timeline
        .iter()
        .map(|e| usize::try_from(e.count.unwrap_or(1)).unwrap_or(1))
        .sum();

    let entry = |status: &mut IncidentStatus,
                 notices: &mut Vec<Notice>,
                 type_: EntryType,
                 message: String,
                 who: Option<String>,
                 notice_key: String,
                 warning: bool| {
        record(&mut status.timeline, now, type_, message.clone(), who);
        // The position in the incident's whole history makes a repeated transition (found,
        // missing again) a new Event, while a retry of the same decision names the same one.
        let position = (recorded_before + notices.len()).to_string();
        notices.push(Notice {
            key: fingerprint(&[&notice_key, &position]),
            warning,
            reason: reason(type_),
            message,
        });
    };

    // Detect.
    if metrics.detected_at.is_none() {
        let detected = incident
            .metadata
            .creation_timestamp
            .as_ref()
            .map_or(now, at)
            .min(now);
        metrics.detected_at = Some(Time(detected));
        last_update = Some(detected);
        recorded.severity = Some(spec.severity);
        recorded.commander = spec.commander.clone();
        let mut message = format!("{} incident opened: {}", spec.severity, spec.title);
        if let Some(commander) = &spec.commander {
            message.push_str(&format!(" (commander {commander})"));
        }
        entry(
            &mut status,
            &mut notices,
            EntryType::Detected,
            message,
            None,
            key(&["detected"]),
            false,
        );
        // The first entry tells when the problem was detected, not when we first looked.
        if let [first] = status.timeline.as_mut_slice() {
            first.time = Time(detected);
        }
    }
    let detected_at = metrics.detected_at.as_ref().map_or(now, at);

    // Severity and commander changes, each recorded once.
    if let Some(old) = recorded.severity
        && old != spec.severity
    {
        let verb = if spec.severity < old {
            "raised"
        } else {
            "lowered"
        };
        entry(
            &mut status,
            &mut notices,
            EntryType::SeverityChanged,
            format!("Severity {verb} from {old} to {}", spec.severity),
            actor.clone(),
            key(&["severity", &gen_text]),
            false,
        );
        last_update = Some(now);
    }
    recorded.severity = Some(spec.severity);
    if recorded.commander != spec.commander {
        let message = match (&recorded.commander, &spec.commander) {
            (Some(old), Some(new)) => format!("Command handed over from {old} to {new}"),
            (None, Some(new)) => format!("{new} took command"),
            (Some(old), None) => format!("{old} stepped down as commander"),
            (None, None) => String::new(),
        };
        entry(
            &mut status,
            &mut notices,
            EntryType::CommanderChanged,
            message,
            actor.clone(),
            key(&["commander", &gen_text]),
            false,
        );
        recorded.commander = spec.commander.clone();
        last_update = Some(now);
    }

    // Acknowledge (once; clearing the acknowledgment later does not un-acknowledge).
    if let Some(ack) = &spec.acknowledgment
        && metrics.acknowledged_at.is_none()
    {
        metrics.acknowledged_at = Some(Time(now));
        let seconds = seconds_between(detected_at, now);
        metrics.time_to_acknowledge_seconds = Some(seconds);
        observations.push(Observation::Acknowledged {
            severity: spec.severity,
            seconds: seconds as f64,
        });
        let mut message = format!("Acknowledged by {} after {}s", ack.by, seconds);
        if let Some(note) = &ack.note {
            message.push_str(&format!(": {note}"));
        }
        entry(
            &mut status,
            &mut notices,
            EntryType::Acknowledged,
            message,
            Some(ack.by.clone()),
            key(&["acknowledged"]),
            false,
        );
        last_update = Some(now);
    }

    // Notes: each one in spec recorded once, identified by content and occurrence.
    let mut current_notes = Vec::with_capacity(spec.notes.len());
    for note in &spec.notes {
        let base = fingerprint(&[&note.author, &note.text]);
        let occurrence = current_notes
            .iter()
            .filter(|f: &&String| f.starts_with(&base))
            .count();
        current_notes.push(format!("{base}-{occurrence}"));
    }
    for (note, print) in spec.notes.iter().zip(&current_notes) {
        if !recorded.notes.contains(print) {
            entry(
                &mut status,
                &mut notices,
                EntryType::Note,
                note.text.clone(),
                Some(note.author.clone()),
                key(&["note", print]),
                false,
            );
            last_update = Some(now);
        }
    }
    recorded.notes = current_notes;

    // Remediation: recorded as it happens; each entry counts as an update.
    for action in &related.action_entries {
        entry(
            &mut status,
            &mut notices,
            action.type_,
            action.message.clone(),
            action.actor.clone(),
            key(&["action", &format!("{:?}", action.type_)]),
            action.warning,
        );
        last_update = Some(now);
    }

    // Resolve, and reopen when the resolution is cleared.
    match &spec.resolution {
        Some(resolution) => {
            let root_cause = resolution
                .root_cause
                .as_deref()
                .filter(|r| !r.trim().is_empty());
            let root_print = root_cause.map(|r| fingerprint(&[r]));
            if root_print.is_some() && recorded.root_cause != root_print {
                entry(
                    &mut status,
                    &mut notices,
                    EntryType::RootCauseIdentified,
                    root_cause.unwrap_or_default().to_owned(),
                    Some(resolution.by.clone()),
                    key(&["root-cause", &gen_text]),
                    false,
                );
                recorded.root_cause = root_print;
            }
            if metrics.resolved_at.is_none() {
                metrics.resolved_at = Some(Time(now));
                let seconds = seconds_between(detected_at, now);
                metrics.time_to_resolve_seconds = Some(seconds);
                observations.push(Observation::Resolved {
                    severity: spec.severity,
                    seconds: seconds as f64,
                });
                entry(
                    &mut status,
                    &mut notices,
                    EntryType::Resolved,
                    format!(
                        "Resolved by {} after {}s: {}",
                        resolution.by, seconds, resolution.summary
                    ),
                    Some(resolution.by.clone()),
                    key(&["resolved", &gen_text]),
                    false,
                );
                let due = plus(now, config.postmortem_due);
                entry(
                    &mut status,
                    &mut notices,
                    EntryType::PostmortemDue,
                    format!(
                        "Post-mortem due within {} (by {})",
                        humanize(config.postmortem_due),
                        Time(due).0
                    ),
                    None,
                    key(&["postmortem-due", &gen_text]),
                    false,
                );
                last_update = Some(now);
            }
            recorded.resolution = Some(fingerprint(&[
                resolution.root_cause.as_deref().unwrap_or_default(),
                &resolution.summary,
                &resolution.by,
            ]));
        }
        None if metrics.resolved_at.is_some() => {
            metrics.resolved_at = None;
            metrics.closed_at = None;
            metrics.time_to_resolve_seconds = None;
            recorded.resolution = None;
            recorded.postmortem_overdue_for = None;
            entry(
                &mut status,
                &mut notices,
                EntryType::Reopened,
                "Reopened: the resolution was withdrawn".to_owned(),
                actor.clone(),
                key(&["reopened", &gen_text]),
                true,
            );
            last_update = Some(now);
        }
        None => {}
    }

    // Close once resolved and the post-mortem is complete.
    let postmortem_done = spec.postmortem.as_ref().is_some_and(|p| p.completed);
    if metrics.resolved_at.is_some() {
        if postmortem_done && metrics.closed_at.is_none() {
            metrics.closed_at = Some(Time(now));
            let open_items = spec
                .postmortem
                .as_ref()
                .map_or(0, |p| p.action_items.iter().filter(|i| !i.done).count());
            entry(
                &mut status,
                &mut notices,
                EntryType::Closed,
                format!("Closed: post-mortem completed, {open_items} action item(s) open"),
                actor.clone(),
                key(&["closed", &gen_text]),
                false,
            );
        } else if !postmortem_done && metrics.closed_at.is_some() {
            metrics.closed_at = None;
            entry(
                &mut status,
                &mut notices,
                EntryType::Reopened,
                "Post-mortem reopened".to_owned(),
                actor.clone(),
                key(&["postmortem-reopened", &gen_text]),
                false,
            );
        }
    }

    // Referenced objects that do not exist: recorded when the missing set changes.
    let mut missing = related.missing_affected.clone();
    missing.sort();
    if !missing.is_empty() && missing != recorded.missing {
        entry(
            &mut status,
            &mut notices,
            EntryType::AffectedNotFound,
            format!("Not found: {}", missing.join(", ")),
            None,
            key(&["missing", &missing.join(",")]),
            true,
        );
    }
    recorded.missing = missing.clone();

    // A named runbook that cannot be followed: recorded once per distinct problem.
    let problem = related.runbook_problem.as_ref().map(|p| p.message.clone());
    if let Some(message) = problem
        .as_ref()
        .filter(|m| recorded.runbook_problem.as_ref() != Some(m))
    {
        entry(
            &mut status,
            &mut notices,
            EntryType::RunbookUnusable,
            format!("{message}; no runbook is followed until it is fixed"),
            None,
            key(&["runbook-unusable", message]),
            true,
        );
    }
    recorded.runbook_problem = problem;

    // Clocks.
    let resolved = metrics.resolved_at.is_some();
    let respond_by = plus(detected_at, config.response_time(spec.severity));
    let mut wake_at: Option<Timestamp> = None;
    let mut wake = |t: Timestamp| wake_at = Some(wake_at.map_or(t, |w: Timestamp| w.min(t)));

    let acknowledged_at = metrics.acknowledged_at.as_ref().map(at);
    let ack_overdue = acknowledged_at.is_none() && !resolved && now >= respond_by;
    if ack_overdue && recorded.escalated_for.as_ref().map(at) != Some(respond_by) {
        recorded.escalated_for = Some(Time(respond_by));
        observations.push(Observation::Overdue {
            severity: spec.severity,
            clock: "acknowledge",
        });
        entry(
            &mut status,
            &mut notices,
            EntryType::Escalated,
            format!(
                "Not acknowledged within the {} response time of {}",
                spec.severity,
                humanize(config.response_time(spec.severity))
            ),
            None,
            key(&["escalated", &respond_by.to_string()]),
            true,
        );
    } else if acknowledged_at.is_none() && !resolved && now < respond_by {
        wake(respond_by);
    }
    let breached = ack_overdue
        || acknowledged_at.is_some_and(|a| a > respond_by)
        || (resolved
            && acknowledged_at.is_none()
            && metrics
                .resolved_at
                .as_ref()
                .map(at)
                .is_some_and(|r| r > respond_by));

    let needs_updates = !resolved && config.update_severities.contains(&spec.severity);
    let update_due = plus(last_update.unwrap_or(detected_at), config.update_interval);
    let update_overdue = needs_updates && now >= update_due;
    if update_overdue && recorded.update_due_for.as_ref().map(at) != Some(update_due) {
        recorded.update_due_for = Some(Time(update_due));
        observations.push(Observation::Overdue {
            severity: spec.severity,
            clock: "update",
        });
        entry(
            &mut status,
            &mut notices,
            EntryType::UpdateDue,
            format!(
                "No update for {}: {} incidents need one at least every {}",
                humanize(config.update_interval),
                spec.severity,
                humanize(config.update_interval)
            ),
            None,
            key(&["update-due", &update_due.to_string()]),
            true,
        );
    } else if needs_updates && now < update_due {
        wake(update_due);
    }

    let postmortem_due_by = metrics
        .resolved_at
        .as_ref()
        .map(|r| plus(at(r), config.postmortem_due));
    let closed = metrics.closed_at.is_some();
    let postmortem_overdue = !closed && postmortem_due_by.is_some_and(|due| now >= due);
    if let Some(due) = postmortem_due_by
        && !closed
    {
        if postmortem_overdue && recorded.postmortem_overdue_for.as_ref().map(at) != Some(due) {
            recorded.postmortem_overdue_for = Some(Time(due));
            observations.push(Observation::Overdue {
                severity: spec.severity,
                clock: "postmortem",
            });
            entry(
                &mut status,
                &mut notices,
                EntryType::PostmortemOverdue,
                format!(
                    "Post-mortem not completed within {} of resolution",
                    humanize(config.postmortem_due)
                ),
                None,
                key(&["postmortem-overdue", &due.to_string()]),
                true,
            );
        } else if !postmortem_overdue {
            wake(due);
        }
    }

    // Phase, derived from what has happened: an action under way means Mitigating, a last action
    // that succeeded means Monitoring (dry runs and skips change nothing).
    let active = status.actions.iter().any(|a| !a.phase.is_terminal());
    let last_effective = status
        .actions
        .iter()
        .rev()
        .find(|a| matches!(a.phase, ActionPhase::Succeeded | ActionPhase::Failed));
    let phase = if closed {
        Phase::Closed
    } else if resolved {
        Phase::Resolved
    } else if active {
        Phase::Mitigating
    } else if last_effective.is_some_and(|a| a.phase == ActionPhase::Succeeded) {
        Phase::Monitoring
    } else if acknowledged_at.is_some() {
        Phase::Acknowledged
    } else {
        Phase::Detected
    };
    status.phase = Some(phase);

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
                format!("No update since {}", last_update.unwrap_or(detected_at))
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
    let runbook_condition =
        spec.runbook_ref
            .as_ref()
            .and_then(|_| match (&related.runbook_problem, &status.runbook) {
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
            });
    status.conditions = conditions
        .into_iter()
        .chain(runbook_condition)
        .map(|mut c| {
            c.observed_generation = Some(generation);
            // Keep the transition time unless the status flipped.
            match previous.conditions.iter().find(|p| p.type_ == c.type_) {
                Some(p) if p.status == c.status => {
                    c.last_transition_time = p.last_transition_time.clone()
                }
                _ => c.last_transition_time = Time(now),
            }
            c
        })
        .collect();

    status.sla = Some(Sla {
        respond_by: Time(respond_by),
        breached,
        postmortem_due_by: postmortem_due_by.filter(|_| !closed).map(Time),
    });
    status.metrics = Some(metrics);
    status.last_update_time = last_update.map(Time);
    status.observed_generation = Some(generation);
    status.recorded = Some(recorded);

    Update {
        status,
        notices,
        observations,
        wake_at,
    }
}

/// Event reason for a timeline entry type.
fn reason(type_: EntryType) -> &'static str {
    match type_ {
        EntryType::Detected => "Detected",
        EntryType::Acknowledged => "Acknowledged",
        EntryType::SeverityChanged => "SeverityChanged",
        EntryType::CommanderChanged => "CommanderChanged",
        EntryType::Note => "Note",
        EntryType::RootCauseIdentified => "RootCauseIdentified",
        EntryType::Escalated => "AcknowledgeOverdue",
        EntryType::UpdateDue => "UpdateOverdue",
        EntryType::Resolved => "Resolved",
        EntryType::Reopened => "Reopened",
        EntryType::PostmortemDue => "PostmortemDue",
        EntryType::PostmortemOverdue => "PostmortemOverdue",
        EntryType::Closed => "Closed",
        EntryType::AffectedNotFound => "AffectedNotFound",
        EntryType::Summary => "TimelineFolded",
        EntryType::ActionRequested => "ActionRequested",
        EntryType::ActionStarted => "ActionStarted",
        EntryType::ActionApplied => "ActionApplied",
        EntryType::ActionSucceeded => "ActionSucceeded",
        EntryType::ActionFailed => "ActionFailed",
        EntryType::ActionSkipped => "ActionSkipped",
        EntryType::RunbookSelected => "RunbookSelected",
        EntryType::StepWaiting => "StepWaiting",
        EntryType::StepStarted => "StepStarted",
        EntryType::StepSucceeded => "StepSucceeded",
        EntryType::StepFailed => "StepFailed",
        EntryType::StepSkipped => "StepSkipped",
        EntryType::RunbookEscalated => "Escalated",
        EntryType::RunbookCompleted => "RunbookCompleted",
        EntryType::RunbookUnusable => "RunbookUnusable",
    }
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
