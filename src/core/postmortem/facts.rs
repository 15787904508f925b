//! Post-mortem draft, the facts section (core layer): the table of what the operator recorded —
//! severity, phase, people, how it was reported, times, response durations, the SLA and the
//! affected objects.

use std::fmt::{self, Write};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::format::{UNKNOWN, escape_cell, timestamp};
use crate::{
    api::{AffectedRef, Incident, IncidentStatus, ResponseMetrics},
    core::text::spelled_seconds,
};

pub(super) fn write_facts(out: &mut String, incident: &Incident) -> fmt::Result {
    let spec = &incident.spec;
    let status = incident.status.as_ref();
    let metrics = status.and_then(|s| s.metrics.as_ref());
    let time_of = |pick: fn(&ResponseMetrics) -> Option<&Time>| {
        metrics
            .and_then(pick)
            .map_or_else(|| UNKNOWN.to_string(), |t| format!("{} UTC", timestamp(t)))
    };

    let mut facts: Vec<(&str, String)> = vec![
        ("Severity", spec.severity.to_string()),
        (
            "Phase",
            status
                .and_then(|s| s.phase)
                .map_or_else(|| "Not reconciled yet".to_string(), |p| p.to_string()),
        ),
        (
            "Commander",
            spec.commander
                .as_deref()
                .map_or_else(|| "_Unassigned_".to_string(), str::to_string),
        ),
    ];
    // How it came to us, when someone reported it.
    for (label, value) in [
        ("Reported via", &spec.source),
        ("Reported by", &spec.reporter),
        ("Ticket", &spec.ticket),
    ] {
        if let Some(value) = value.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
            facts.push((label, value.to_string()));
        }
    }
    if let Some(ack) = &spec.acknowledgment {
        facts.push(("Acknowledged by", ack.by.clone()));
    }
    if let Some(resolution) = &spec.resolution {
        facts.push(("Resolved by", resolution.by.clone()));
    }
    facts.extend([
        ("Detected", time_of(|m| m.detected_at.as_ref())),
        ("Acknowledged", time_of(|m| m.acknowledged_at.as_ref())),
        ("Resolved", time_of(|m| m.resolved_at.as_ref())),
        ("Closed", time_of(|m| m.closed_at.as_ref())),
        (
            "Time to acknowledge",
            time_to_acknowledge(metrics).map_or_else(|| UNKNOWN.to_string(), spelled_seconds),
        ),
        (
            "Time to resolve",
            time_to_resolve(metrics).map_or_else(|| UNKNOWN.to_string(), spelled_seconds),
        ),
        ("Response SLA", sla_text(status)),
    ]);
    if let Some(due) = status
        .and_then(|s| s.sla.as_ref())
        .and_then(|sla| sla.postmortem_due_by.as_ref())
    {
        facts.push(("Post-mortem due", format!("{} UTC", timestamp(due))));
    }
    let namespace = incident.metadata.namespace.as_deref();
    facts.push((
        "Affected",
        if spec.affected.is_empty() {
            "None recorded".to_string()
        } else {
            spec.affected
                .iter()
                .map(|a| affected_label(a, namespace))
                .collect::<Vec<_>>()
                .join(", ")
        },
    ));
    if let Some(url) = spec.postmortem.as_ref().and_then(|p| p.url.as_deref()) {
        facts.push(("Post-mortem document", url.to_string()));
    }

    writeln!(out, "## Facts")?;
    writeln!(out)?;
    writeln!(out, "| Fact | Value |")?;
    writeln!(out, "|---|---|")?;
    for (label, value) in facts {
        writeln!(out, "| **{label}** | {} |", escape_cell(&value))?;
    }
    writeln!(out)?;
    Ok(())
}

fn sla_text(status: Option<&IncidentStatus>) -> String {
    let Some(sla) = status.and_then(|s| s.sla.as_ref()) else {
        return "Not evaluated yet".to_string();
    };
    let due = timestamp(&sla.respond_by);
    let acknowledged = status
        .and_then(|s| s.metrics.as_ref())
        .is_some_and(|m| m.acknowledged_at.is_some());
    if sla.breached {
        format!("Breached (acknowledgment was due by {due} UTC)")
    } else if acknowledged {
        format!("Met (acknowledged before {due} UTC)")
    } else {
        format!("Not breached so far (acknowledgment due by {due} UTC)")
    }
}

fn time_to_acknowledge(metrics: Option<&ResponseMetrics>) -> Option<i64> {
    let m = metrics?;
    m.time_to_acknowledge_seconds
        .or_else(|| seconds_between(m.detected_at.as_ref()?, m.acknowledged_at.as_ref()?))
}

/// Also the Resolution section's "after detection".
pub(super) fn time_to_resolve(metrics: Option<&ResponseMetrics>) -> Option<i64> {
    let m = metrics?;
    m.time_to_resolve_seconds
        .or_else(|| seconds_between(m.detected_at.as_ref()?, m.resolved_at.as_ref()?))
}

fn seconds_between(from: &Time, to: &Time) -> Option<i64> {
    Some(to.0.duration_since(from.0).as_secs().max(0))
}

/// The object with its namespace spelled out: an empty one means the incident's own.
pub(super) fn affected_label(affected: &AffectedRef, incident_namespace: Option<&str>) -> String {
    let namespace = affected
        .namespace
        .as_deref()
        .or(incident_namespace)
        .filter(|_| !affected.kind.cluster_scoped());
    match namespace {
        Some(ns) => format!("{:?} {}/{}", affected.kind, ns, affected.name),
        None => format!("{:?} {}", affected.kind, affected.name),
    }
}
