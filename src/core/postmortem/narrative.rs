//! Post-mortem draft, the narrative sections (core layer): summary, impact, root cause, resolution
//! and the review prompts — filled from the spec where it says something, prompts where it cannot.

use std::fmt::{self, Write};

use super::{
    facts::{affected_label, time_to_resolve},
    format::{one_line, timestamp},
};
use crate::{
    api::{Incident, IncidentSpec},
    core::text::spelled_seconds,
};

pub(super) fn write_summary(out: &mut String, spec: &IncidentSpec) -> fmt::Result {
    writeln!(out, "## Summary")?;
    writeln!(out)?;
    match &spec.resolution {
        Some(resolution) if !resolution.summary.trim().is_empty() => {
            writeln!(out, "{}", resolution.summary.trim())?;
        }
        _ => writeln!(
            out,
            "_Not resolved yet. Once it is, say in a few sentences what happened and how it was \
             brought back to normal._"
        )?,
    }
    writeln!(out)?;
    Ok(())
}

pub(super) fn write_impact(out: &mut String, incident: &Incident) -> fmt::Result {
    let spec = &incident.spec;
    writeln!(out, "## Impact")?;
    writeln!(out)?;
    if let Some(description) = spec.description.as_deref().map(str::trim)
        && !description.is_empty()
    {
        writeln!(out, "{description}")?;
        writeln!(out)?;
    }
    let namespace = incident.metadata.namespace.as_deref();
    if spec.affected.is_empty() {
        writeln!(out, "No affected objects were recorded.")?;
    } else {
        writeln!(out, "Affected objects:")?;
        writeln!(out)?;
        for affected in &spec.affected {
            writeln!(out, "- {}", affected_label(affected, namespace))?;
        }
    }
    writeln!(out)?;
    writeln!(
        out,
        "_To fill in: who or what was affected, for how long and how badly (users, requests, \
         data, money), and how the problem showed itself to them._"
    )?;
    writeln!(out)?;
    Ok(())
}

pub(super) fn write_root_cause(out: &mut String, spec: &IncidentSpec) -> fmt::Result {
    writeln!(out, "## Root cause")?;
    writeln!(out)?;
    match spec
        .resolution
        .as_ref()
        .and_then(|r| r.root_cause.as_deref())
        .map(str::trim)
    {
        Some(root_cause) if !root_cause.is_empty() => writeln!(out, "{root_cause}")?,
        _ => writeln!(
            out,
            "_To be determined: the underlying cause, and why it was not caught earlier (tests, \
             review, alerts)._"
        )?,
    }
    writeln!(out)?;
    Ok(())
}

pub(super) fn write_resolution(out: &mut String, incident: &Incident) -> fmt::Result {
    let metrics = incident.status.as_ref().and_then(|s| s.metrics.as_ref());
    writeln!(out, "## Resolution")?;
    writeln!(out)?;
    match &incident.spec.resolution {
        Some(resolution) => {
            let when = metrics
                .and_then(|m| m.resolved_at.as_ref())
                .map(|t| format!(" at {} UTC", timestamp(t)))
                .unwrap_or_default();
            let after = time_to_resolve(metrics)
                .map(|s| format!(", {} after detection", spelled_seconds(s)))
                .unwrap_or_default();
            writeln!(
                out,
                "Resolved by {}{when}{after}.",
                one_line(&resolution.by)
            )?;
            writeln!(out)?;
            writeln!(
                out,
                "_To fill in: the steps that mitigated and then fixed it (rollback, fix forward, \
                 failover, waiting out a third party) and how recovery was confirmed._"
            )?;
        }
        None => writeln!(
            out,
            "_Not resolved yet. Record the mitigation and the fix, and how recovery was \
             confirmed._"
        )?,
    }
    writeln!(out)?;
    Ok(())
}

/// What only the team can say: what went well, what could be improved, what it learned.
pub(super) fn write_review_prompts(out: &mut String) -> fmt::Result {
    for (heading, prompt) in [
        (
            "What went well",
            "_To fill in: what helped (detection, tooling, runbooks, people reachable in time)._",
        ),
        (
            "What could be improved",
            "_To fill in: what slowed detection, diagnosis or recovery, and where the process or \
             the tooling got in the way._",
        ),
        (
            "Lessons learned",
            "_To fill in: what the team now knows that it did not know before this incident._",
        ),
    ] {
        writeln!(out, "## {heading}")?;
        writeln!(out)?;
        writeln!(out, "{prompt}")?;
        writeln!(out)?;
    }
    Ok(())
}
