//! Recording what people and the operator did (core layer): detection, severity and commander
//! changes, the acknowledgment, notes, remediation, resolution and reopening, closing, missing
//! objects and an unusable runbook — each recorded in the timeline exactly once.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{
    LifecycleConfig, Observation, Related,
    draft::{Draft, at, plus, seconds_between},
};
use crate::{
    api::{AlertState, EntryType, Incident, duration::parse},
    core::text::{fingerprint, humanize},
};

/// The first look: the incident's detection, dated by its creation. Returns when it was detected.
pub(super) fn detect(d: &mut Draft, incident: &Incident) -> Timestamp {
    let spec = &incident.spec;
    if d.metrics.detected_at.is_none() {
        let detected = incident
            .metadata
            .creation_timestamp
            .as_ref()
            .map_or(d.now, at)
            .min(d.now);
        d.metrics.detected_at = Some(Time(detected));
        d.last_update = Some(detected);
        d.recorded.severity = Some(spec.severity);
        d.recorded.commander = spec.commander.clone();
        let mut message = format!("{} incident opened: {}", spec.severity, spec.title);
        if let Some(commander) = &spec.commander {
            message.push_str(&format!(" (commander {commander})"));
        }
        let key = d.key(&["detected"]);
        d.entry(EntryType::Detected, message, None, key, false);
        // The first entry tells when the problem was detected, not when we first looked.
        if let [first] = d.status.timeline.as_mut_slice() {
            first.time = Time(detected);
        }
    }
    d.metrics.detected_at.as_ref().map_or(d.now, at)
}

/// Severity and commander changes, each recorded once.
pub(super) fn changes(d: &mut Draft, incident: &Incident) {
    let spec = &incident.spec;
    if let Some(old) = d.recorded.severity
        && old != spec.severity
    {
        let verb = if spec.severity < old {
            "raised"
        } else {
            "lowered"
        };
        let key = d.key(&["severity", &d.generation]);
        let message = format!("Severity {verb} from {old} to {}", spec.severity);
        d.entry(
            EntryType::SeverityChanged,
            message,
            d.actor.clone(),
            key,
            false,
        );
    }
    d.recorded.severity = Some(spec.severity);
    if d.recorded.commander != spec.commander {
        let message = match (&d.recorded.commander, &spec.commander) {
            (Some(old), Some(new)) => format!("Command handed over from {old} to {new}"),
            (None, Some(new)) => format!("{new} took command"),
            (Some(old), None) => format!("{old} stepped down as commander"),
            (None, None) => String::new(),
        };
        let key = d.key(&["commander", &d.generation]);
        d.entry(
            EntryType::CommanderChanged,
            message,
            d.actor.clone(),
            key,
            false,
        );
        d.recorded.commander = spec.commander.clone();
    }
}

/// The acknowledgment (once; clearing it later does not un-acknowledge).
pub(super) fn acknowledge(d: &mut Draft, incident: &Incident, detected_at: Timestamp) {
    let spec = &incident.spec;
    if let Some(ack) = &spec.acknowledgment
        && d.metrics.acknowledged_at.is_none()
    {
        d.metrics.acknowledged_at = Some(Time(d.now));
        let seconds = seconds_between(detected_at, d.now);
        d.metrics.time_to_acknowledge_seconds = Some(seconds);
        d.observations.push(Observation::Acknowledged {
            severity: spec.severity,
            seconds: seconds as f64,
        });
        let mut message = format!("Acknowledged by {} after {}s", ack.by, seconds);
        if let Some(note) = &ack.note {
            message.push_str(&format!(": {note}"));
        }
        let key = d.key(&["acknowledged"]);
        d.entry(
            EntryType::Acknowledged,
            message,
            Some(ack.by.clone()),
            key,
            false,
        );
        d.touch();
    }
}

/// Notes: each one in spec recorded once, identified by content and occurrence.
pub(super) fn notes(d: &mut Draft, incident: &Incident) {
    let spec = &incident.spec;
    let mut current = Vec::with_capacity(spec.notes.len());
    for note in &spec.notes {
        let base = fingerprint(&[&note.author, &note.text]);
        let occurrence = current
            .iter()
            .filter(|f: &&String| f.starts_with(&base))
            .count();
        current.push(format!("{base}-{occurrence}"));
    }
    for (note, print) in spec.notes.iter().zip(&current) {
        if !d.recorded.notes.contains(print) {
            let key = d.key(&["note", print]);
            let author = Some(note.author.clone());
            d.entry(EntryType::Note, note.text.clone(), author, key, false);
        }
    }
    d.recorded.notes = current;
}

/// Updates: each one in spec recorded once (like notes) and sent to the channels; each starts the
/// update clock again, from the time it promised when it named one.
pub(super) fn updates(d: &mut Draft, incident: &Incident) {
    let spec = &incident.spec;
    let mut current: Vec<String> = Vec::with_capacity(spec.updates.len());
    for update in &spec.updates {
        let status = update.status.map_or("", |s| s.as_str());
        let next = update.next_update_in.as_deref().unwrap_or_default();
        let base = fingerprint(&[&update.author, &update.text, status, next]);
        let occurrence = current.iter().filter(|f| f.starts_with(&base)).count();
        current.push(format!("{base}-{occurrence}"));
    }
    for (update, print) in spec.updates.iter().zip(&current) {
        if d.recorded.updates.contains(print) {
            continue;
        }
        let key = d.key(&["update", print]);
        let author = Some(update.author.clone());
        d.entry(EntryType::Update, update.text.clone(), author, key, false);
        d.touch();
        // Admission checked the pattern; a value it let through but jiff refuses falls back to the interval.
        let promised = update.next_update_in.as_deref().and_then(|n| parse(n).ok());
        d.next_update = promised.map(|next| plus(d.now, next));
    }
    d.recorded.updates = current;
}

/// Alerts from monitors: each firing and each resolution recorded once (an alert that fires again
/// has a new start, so it is recorded again).
pub(super) fn alerts(d: &mut Draft, incident: &Incident) {
    let mut current = Vec::with_capacity(incident.spec.alerts.len());
    for alert in &incident.spec.alerts {
        let state = format!("{:?}", alert.state);
        let print = fingerprint(&[&alert.fingerprint, &state, &alert.starts_at.0.to_string()]);
        if !d.recorded.alerts.contains(&print) {
            let (type_, message, warning) = match alert.state {
                AlertState::Firing => {
                    let mut message = format!("Alert {} firing", alert.name);
                    if let Some(summary) = &alert.summary {
                        message.push_str(&format!(": {summary}"));
                    }
                    (EntryType::AlertFiring, message, true)
                }
                AlertState::Resolved => {
                    let message = format!("Alert {} resolved", alert.name);
                    (EntryType::AlertResolved, message, false)
                }
            };
            let key = d.key(&["alert", &print]);
            d.entry(type_, message, None, key, warning);
        }
        current.push(print);
    }
    d.recorded.alerts = current;
}

/// Remediation and runbooks: recorded as they happen. They are not updates for people: the update
/// clock keeps running until a person posts one.
pub(super) fn actions(d: &mut Draft, related: &Related) {
    for action in &related.action_entries {
        let key = d.key(&["action", &format!("{:?}", action.type_)]);
        d.entry(
            action.type_,
            action.message.clone(),
            action.actor.clone(),
            key,
            action.warning,
        );
    }
}

/// The resolution (with its root cause and the post-mortem clock), and reopening when it is cleared.
pub(super) fn resolution(
    d: &mut Draft,
    incident: &Incident,
    detected_at: Timestamp,
    config: &LifecycleConfig,
) {
    let spec = &incident.spec;
    match &spec.resolution {
        Some(resolution) => {
            let root_cause = resolution
                .root_cause
                .as_deref()
                .filter(|r| !r.trim().is_empty());
            let root_print = root_cause.map(|r| fingerprint(&[r]));
            if root_print.is_some() && d.recorded.root_cause != root_print {
                let key = d.key(&["root-cause", &d.generation]);
                let message = root_cause.unwrap_or_default().to_owned();
                let by = Some(resolution.by.clone());
                d.entry(EntryType::RootCauseIdentified, message, by, key, false);
                d.recorded.root_cause = root_print;
            }
            if d.metrics.resolved_at.is_none() {
                d.metrics.resolved_at = Some(Time(d.now));
                let seconds = seconds_between(detected_at, d.now);
                d.metrics.time_to_resolve_seconds = Some(seconds);
                d.observations.push(Observation::Resolved {
                    severity: spec.severity,
                    seconds: seconds as f64,
                });
                let key = d.key(&["resolved", &d.generation]);
                let message = format!(
                    "Resolved by {} after {}s: {}",
                    resolution.by, seconds, resolution.summary
                );
                let by = Some(resolution.by.clone());
                d.entry(EntryType::Resolved, message, by, key, false);
                let due = plus(d.now, config.postmortem_due);
                let key = d.key(&["postmortem-due", &d.generation]);
                let message = format!(
                    "Post-mortem due within {} (by {})",
                    humanize(config.postmortem_due),
                    Time(due).0
                );
                d.entry(EntryType::PostmortemDue, message, None, key, false);
                d.touch();
            }
            d.recorded.resolution = Some(fingerprint(&[
                resolution.root_cause.as_deref().unwrap_or_default(),
                &resolution.summary,
                &resolution.by,
            ]));
        }
        None if d.metrics.resolved_at.is_some() => {
            d.metrics.resolved_at = None;
            d.metrics.closed_at = None;
            d.metrics.time_to_resolve_seconds = None;
            d.recorded.resolution = None;
            d.recorded.postmortem_overdue_for = None;
            let key = d.key(&["reopened", &d.generation]);
            let message = "Reopened: the resolution was withdrawn".to_owned();
            d.entry(EntryType::Reopened, message, d.actor.clone(), key, true);
            d.touch();
        }
        None => {}
    }
}

/// Closing once resolved and the post-mortem is complete, and reopening the post-mortem.
pub(super) fn close(d: &mut Draft, incident: &Incident) {
    let spec = &incident.spec;
    let postmortem_done = spec.postmortem.as_ref().is_some_and(|p| p.completed);
    if d.metrics.resolved_at.is_none() {
        return;
    }
    if postmortem_done && d.metrics.closed_at.is_none() {
        d.metrics.closed_at = Some(Time(d.now));
        let open_items = spec
            .postmortem
            .as_ref()
            .map_or(0, |p| p.action_items.iter().filter(|i| !i.done).count());
        let key = d.key(&["closed", &d.generation]);
        let message = format!("Closed: post-mortem completed, {open_items} action item(s) open");
        d.entry(EntryType::Closed, message, d.actor.clone(), key, false);
    } else if !postmortem_done && d.metrics.closed_at.is_some() {
        d.metrics.closed_at = None;
        let key = d.key(&["postmortem-reopened", &d.generation]);
        let message = "Post-mortem reopened".to_owned();
        d.entry(EntryType::Reopened, message, d.actor.clone(), key, false);
    }
}

/// Referenced objects that do not exist: recorded when the missing set changes. Returns the set.
pub(super) fn missing(d: &mut Draft, related: &Related) -> Vec<String> {
    let mut missing = related.missing_affected.clone();
    missing.sort();
    if !missing.is_empty() && missing != d.recorded.missing {
        let key = d.key(&["missing", &missing.join(",")]);
        let message = format!("Not found: {}", missing.join(", "));
        d.entry(EntryType::AffectedNotFound, message, None, key, true);
    }
    d.recorded.missing = missing.clone();
    missing
}

/// A named runbook that cannot be followed: recorded once per distinct problem.
pub(super) fn runbook_problem(d: &mut Draft, related: &Related) {
    let problem = related.runbook_problem.as_ref().map(|p| p.message.clone());
    if let Some(message) = problem
        .as_ref()
        .filter(|m| d.recorded.runbook_problem.as_ref() != Some(m))
    {
        let key = d.key(&["runbook-unusable", message]);
        let text = format!("{message}; no runbook is followed until it is fixed");
        d.entry(EntryType::RunbookUnusable, text, None, key, true);
    }
    d.recorded.runbook_problem = problem;
}
