//! What the detector decides about incidents (core layer): which incident a problem belongs to,
//! what it writes there and which severity stays, how many new incidents the storm guard admits,
//! and when an incident whose problem went away is resolved.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use serde_json::{Value, json};

use super::{
    classify::SignalKind,
    group::{Problem, Workload},
};
use crate::api::{
    AlertState, Incident, Severity, Signal,
    metadata::{
        ACTOR_ANNOTATION, AUTO_RESOLVE_LABEL, CLEARED_ANNOTATION, DETECTOR_MANAGER,
        FINGERPRINT_LABEL, OPERATOR_ACTOR, PROBLEM_LABEL, SEEN_ANNOTATION,
        SEVERITY_OVERRIDE_ANNOTATION, SOURCE_DETECTOR, SOURCE_LABEL, severity_set_by_others,
    },
};
use crate::core::text::whole_second;

/// Whether the detector opened this incident.
pub fn detected(incident: &Incident) -> bool {
    incident.labels().get(SOURCE_LABEL).map(String::as_str) == Some(SOURCE_DETECTOR)
}

/// Whether a person's incident opted in to being resolved like a detected one.
pub fn opted_in(incident: &Incident) -> bool {
    !detected(incident)
        && incident
            .labels()
            .get(AUTO_RESOLVE_LABEL)
            .map(String::as_str)
            == Some("true")
}

/// Whether a problem is about one of the objects a (person's) incident names.
pub fn concerns(incident: &Incident, problem: &Problem) -> bool {
    let namespace = incident.namespace().unwrap_or_default();
    incident.spec.affected.iter().any(|a| {
        format!("{:?}", a.kind) == problem.workload.kind
            && a.name == problem.workload.name
            && (problem.workload.kind == "Node"
                || a.namespace.as_deref().unwrap_or(&namespace) == problem.workload.namespace)
    })
}

/// Whether the incident is the detector's incident for this workload.
fn about(incident: &Incident, workload: &Workload) -> bool {
    incident.namespace().as_deref() == Some(workload.namespace.as_str())
        && incident.labels().get(FINGERPRINT_LABEL) == Some(&workload.fingerprint())
}

/// Whether the workload's open incident already lists the signal (it then skips its `for`).
pub fn lists_signal(incidents: &[Arc<Incident>], workload: &Workload, kind: SignalKind) -> bool {
    incidents.iter().any(|i| {
        i.spec.resolution.is_none()
            && about(i, workload)
            && i.spec.signals.iter().any(|s| s.type_ == kind.as_str())
    })
}

/// Which incident a problem belongs to.
pub enum Target<'a> {
    Existing(&'a Incident),
    /// A new incident of this name.
    New(String),
}

/// The problem's latest incident while it is open or resolved less than `cooldown` ago; otherwise a
/// new one, named after the problem and how many incidents it already had.
pub fn target<'a>(
    incidents: &'a [Arc<Incident>],
    problem: &Problem,
    now: Timestamp,
    cooldown: SignedDuration,
) -> Target<'a> {
    let mut history: Vec<&Incident> = incidents
        .iter()
        .map(|i| i.as_ref())
        .filter(|i| about(i, &problem.workload))
        .collect();
    history.sort_by_key(|i| {
        (
            i.metadata.creation_timestamp.as_ref().map(|t| t.0),
            i.name_any(),
        )
    });
    let base = problem.workload.incident_name();
    let Some(latest) = history.last() else {
        return Target::New(base);
    };
    if latest.spec.resolution.is_none() {
        return Target::Existing(latest);
    }
    let resolved_at = latest
        .status
        .as_ref()
        .and_then(|s| s.metrics.as_ref())
        .and_then(|m| m.resolved_at.as_ref())
        .map_or(now, |t| t.0);
    if now.duration_since(resolved_at) < cooldown {
        Target::Existing(latest)
    } else {
        Target::New(format!("{base}-{}", history.len() + 1))
    }
}

/// How many new incidents the storm guard still admits this minute: `limit` less the incidents
/// the detector opened in the last minute (storm incidents do not count).
pub fn storm_budget(incidents: &[Arc<Incident>], limit: usize, now: Timestamp) -> usize {
    let recent = incidents
        .iter()
        .filter(|i| detected(i))
        .filter(|i| i.labels().get(PROBLEM_LABEL).map(String::as_str) != Some("storm"))
        .filter(|i| {
            i.metadata
                .creation_timestamp
                .as_ref()
                .is_some_and(|t| now.duration_since(t.0) < SignedDuration::from_secs(60))
        })
        .count();
    limit.saturating_sub(recent)
}

/// The severity the problem's incident gets: one set by a runbook or a person stays; otherwise the
/// detector's judgement stands.
pub fn kept_severity(existing: Option<&Incident>, problem: &Problem) -> Severity {
    existing
        .filter(|i| {
            i.annotations().contains_key(SEVERITY_OVERRIDE_ANNOTATION)
                || severity_set_by_others(i.metadata.managed_fields.as_deref(), DETECTOR_MANAGER)
        })
        .map_or(problem.severity, |i| i.spec.severity)
}

/// What the detector undoes on its incident when the problem is back (or never went): its own
/// clearing note, and its own resolution (`Some(true)`), never a person's. None: nothing to undo.
pub fn undo_clearing(incident: &Incident) -> Option<bool> {
    let resolved_by_us = incident
        .spec
        .resolution
        .as_ref()
        .is_some_and(|r| r.by == OPERATOR_ACTOR);
    (resolved_by_us || incident.annotations().contains_key(CLEARED_ANNOTATION))
        .then_some(resolved_by_us)
}

/// The least time between two of the detector's updates of one incident whose signal kinds stay
/// the same: a storm changes its counts every few hundred milliseconds, and every update costs
/// three writes (the incident, its evidence, the lifecycle's status for the new generation).
pub const UPDATE_INTERVAL: SignedDuration = SignedDuration::from_secs(10);

/// When the detector writes what changed on an incident it already has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Update {
    /// The incident shows it all.
    Unchanged,
    /// Write now: a signal kind came or went, or the last update is older than the interval.
    Now,
    /// Only counts, pods, availability or severity changed, soon after the last update: write
    /// then, with whatever is true at that moment.
    At(Timestamp),
}

/// The leading edge of an incident's updates is written at once, the rest at most once per
/// [`UPDATE_INTERVAL`]; a new kind of trouble is never held back.
pub fn update_due(
    incident: &Incident,
    problem: &Problem,
    severity: Severity,
    signals: &[Signal],
    now: Timestamp,
) -> Update {
    if unchanged(incident, problem, severity, signals) {
        return Update::Unchanged;
    }
    let kinds =
        |signals: &[Signal]| -> Vec<String> { signals.iter().map(|s| s.type_.clone()).collect() };
    if kinds(&incident.spec.signals) != kinds(signals) {
        return Update::Now;
    }
    // Every update stamps `lastSeen` on the signals it carries (see [`seen_at`]).
    let last = incident.spec.signals.iter().map(|s| s.last_seen.0).max();
    match last.and_then(|last| last.checked_add(UPDATE_INTERVAL).ok()) {
        Some(due) if now < due => Update::At(due),
        _ => Update::Now,
    }
}

/// `signals` as an update writes them: the problem's current kinds seen `now`, so the time of the
/// detector's last update is on the incident itself (crash-safe, no memory of its own).
pub fn seen_at(signals: &mut [Signal], problem: &Problem, now: Timestamp) {
    for signal in signals {
        if problem
            .signals
            .keys()
            .any(|kind| kind.as_str() == signal.type_)
        {
            signal.last_seen = whole_second(now);
        }
    }
}

/// Whether the incident already shows what the detector would write (then nothing is written).
pub fn unchanged(
    incident: &Incident,
    problem: &Problem,
    severity: Severity,
    signals: &[Signal],
) -> bool {
    incident.spec.title == problem.title
        && incident.spec.severity == severity
        && incident.spec.signals == signals
}

/// What the detector server-side applies for a problem: labels, title, severity, description, the
/// affected objects and the signals. It claims authorship (the actor annotation) only of a
/// severity it sets: the annotation is one slot, and taking it on every update would attribute a
/// person's concurrent change to the operator.
pub fn incident_body(
    problem: &Problem,
    name: &str,
    existing: Option<&Incident>,
    severity: Severity,
    signals: &[Signal],
) -> Value {
    let workload = &problem.workload;
    let mut body = json!({
        "metadata": {
            "name": name,
            "labels": {
                SOURCE_LABEL: SOURCE_DETECTOR,
                FINGERPRINT_LABEL: workload.fingerprint(),
                PROBLEM_LABEL: match workload.kind.as_str() {
                    "Node" => "node",
                    "Storm" => "storm",
                    _ => "workload",
                },
            },
        },
        "spec": {
            "title": problem.title,
            "severity": severity,
            "description": format!(
                "Detected by incident-operator from the health of {}/{}. {}",
                workload.kind.to_lowercase(),
                workload.name,
                problem.detail.clone().unwrap_or_default()
            ),
            "affected": affected(problem),
            "signals": signals,
        },
    });
    if existing.is_none_or(|i| i.spec.severity != severity) {
        body["metadata"]["annotations"] = json!({ ACTOR_ANNOTATION: OPERATOR_ACTOR });
    }
    body
}

/// The objects an incident names: the workload or node, or for a storm the held-back workloads.
fn affected(problem: &Problem) -> Value {
    let workload = &problem.workload;
    if workload.kind != "Storm" {
        return json!([{ "kind": workload.kind, "name": workload.name }]);
    }
    let held = problem
        .signals
        .values()
        .flatten()
        .take(20)
        .filter_map(|name| {
            let mut parts = name.splitn(3, '/');
            let (namespace, kind, name) = (parts.next()?, parts.next()?, parts.next()?);
            // Nodes have no namespace (the schema refuses one); workloads keep theirs.
            Some(match kind {
                "node" => json!({ "kind": "Node", "name": name }),
                "statefulset" => {
                    json!({ "kind": "StatefulSet", "name": name, "namespace": namespace })
                }
                "daemonset" => json!({ "kind": "DaemonSet", "name": name, "namespace": namespace }),
                "rollout" => json!({ "kind": "Rollout", "name": name, "namespace": namespace }),
                _ => json!({ "kind": "Deployment", "name": name, "namespace": namespace }),
            })
        });
    Value::Array(held.collect())
}

/// What happens to an incident in a pass, as far as auto-resolution goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AutoResolve {
    /// Not the detector's business, or its problem is still there.
    Leave,
    /// A person's opted-in incident whose objects are (again) in trouble: note since when, and
    /// drop an earlier clearing note.
    MarkSeen,
    /// The problem is gone: note since when.
    MarkCleared,
    /// Clear for `resolve_after`: resolve it.
    Resolve,
    /// Clear, not yet long enough: look again then.
    WaitUntil(Timestamp),
}

/// The auto-resolve verdict for one incident, given the problems of this pass. A person's
/// incident (opted in) resolves only after its objects were seen in trouble, then clear.
pub fn auto_resolve(
    incident: &Incident,
    problems: &[Problem],
    now: Timestamp,
    resolve_after: SignedDuration,
) -> AutoResolve {
    let opted_in = opted_in(incident);
    if incident.spec.resolution.is_some() || !(detected(incident) || opted_in) {
        return AutoResolve::Leave;
    }
    // A monitor's alert still firing says the problem is not over, whatever the pods look like.
    if incident
        .spec
        .alerts
        .iter()
        .any(|a| a.state == AlertState::Firing)
    {
        return AutoResolve::Leave;
    }
    let active = if opted_in {
        problems.iter().any(|p| concerns(incident, p))
    } else {
        problems.iter().any(|p| about(incident, &p.workload))
    };
    if opted_in {
        let seen = incident.annotations().contains_key(SEEN_ANNOTATION);
        let cleared = incident.annotations().contains_key(CLEARED_ANNOTATION);
        if active && (!seen || cleared) {
            return AutoResolve::MarkSeen;
        }
        if active || !seen {
            return AutoResolve::Leave;
        }
    } else if active {
        return AutoResolve::Leave;
    }
    let cleared = incident
        .annotations()
        .get(CLEARED_ANNOTATION)
        .and_then(|t| t.parse::<Timestamp>().ok());
    match cleared {
        None => AutoResolve::MarkCleared,
        Some(since) if now >= since + resolve_after => AutoResolve::Resolve,
        Some(since) => AutoResolve::WaitUntil(since + resolve_after),
    }
}

#[cfg(test)]
mod tests;
