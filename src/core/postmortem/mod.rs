//! Post-mortem draft rendering (core layer).
//!
//! [`render`] turns an [`Incident`] into a Markdown draft the team can start its review from. It
//! follows the review step of the runbooks: the facts and timeline the operator recorded, then what
//! happened, the impact, the root cause and the resolution, what went well and what did not, and
//! the follow-up actions. Whatever the operator cannot know is left as a prompt for the team.
//!
//! Rendering is pure and total: an incident the controller never reconciled (no status) still
//! renders, with placeholders where the recorded facts would go.

use std::fmt::{self, Write};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::{
    api::{AffectedRef, EntryType, Incident, IncidentStatus, ResponseMetrics, TimelineEntry},
    core::text::spelled_seconds,
};

/// Shown in a fact whose value is not known (yet).
const UNKNOWN: &str = "—";

/// Renders a Markdown post-mortem draft of `incident`.
pub fn render(incident: &Incident) -> String {
    let mut out = String::new();
    // Writing into a String never fails.
    let _ = write_draft(&mut out, incident);
    out
}

fn write_draft(out: &mut String, incident: &Incident) -> fmt::Result {
    let spec = &incident.spec;
    let status = incident.status.as_ref();
    let metrics = status.and_then(|s| s.metrics.as_ref());

    writeln!(
        out,
        "# Post-mortem: {} ({})",
        one_line(&spec.title),
        spec.severity
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "> **Draft.** Built from what the operator recorded; correct and complete it during the \
         review. Keep the review blameless: look for what in the system and the process let this \
         happen, not for someone to blame."
    )?;
    writeln!(out)?;

    write_facts(out, incident)?;

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

    write_timeline(out, status)?;

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

    writeln!(out, "## Resolution")?;
    writeln!(out)?;
    match &spec.resolution {
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

    write_action_items(out, incident)?;

    writeln!(out, "---")?;
    writeln!(out)?;
    let name = incident.metadata.name.as_deref().unwrap_or("(unnamed)");
    let source = match namespace {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    };
    writeln!(
        out,
        "_Generated by incident-operator from Incident {source}. A starting point for the \
         review, not its final record._"
    )?;
    Ok(())
}

fn write_facts(out: &mut String, incident: &Incident) -> fmt::Result {
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

fn write_timeline(out: &mut String, status: Option<&IncidentStatus>) -> fmt::Result {
    writeln!(out, "## Timeline")?;
    writeln!(out)?;
    let timeline = status.map(|s| s.timeline.as_slice()).unwrap_or_default();
    if timeline.is_empty() {
        writeln!(
            out,
            "_The operator has recorded no events for this incident yet._"
        )?;
    } else {
        writeln!(out, "| Time (UTC) | Event | Actor | Message |")?;
        writeln!(out, "|---|---|---|---|")?;
        for entry in timeline {
            write_timeline_row(out, entry)?;
        }
    }
    writeln!(out)?;
    writeln!(
        out,
        "_To fill in: events the operator could not see, such as when users first noticed, when \
         remediation started, when the fix was deployed and when service recovered._"
    )?;
    writeln!(out)?;
    Ok(())
}

fn write_timeline_row(out: &mut String, entry: &TimelineEntry) -> fmt::Result {
    let count = entry.count.unwrap_or(1);
    let mut time = timestamp(&entry.time);
    let mut event = entry_label(entry.type_);
    if count > 1 {
        event.push_str(&format!(" ×{count}"));
        if let Some(last) = &entry.last_time {
            time.push_str(&format!(" (last {})", timestamp(last)));
        }
    }
    let actor = entry
        .actor
        .as_deref()
        .filter(|a| !a.trim().is_empty())
        .unwrap_or(UNKNOWN);
    writeln!(
        out,
        "| {} | {} | {} | {} |",
        escape_cell(&time),
        escape_cell(&event),
        escape_cell(actor),
        escape_cell(&entry.message)
    )
}

fn write_action_items(out: &mut String, incident: &Incident) -> fmt::Result {
    writeln!(out, "## Action items")?;
    writeln!(out)?;
    let items = incident
        .spec
        .postmortem
        .as_ref()
        .map(|p| p.action_items.as_slice())
        .unwrap_or_default();
    if items.is_empty() {
        writeln!(
            out,
            "_None recorded yet. Consider follow-ups for the fix itself, the process, the \
             documentation and runbooks, and monitoring and alerting; give each an owner._"
        )?;
    } else {
        let done = items.iter().filter(|i| i.done).count();
        writeln!(out, "{done} of {} done.", items.len())?;
        writeln!(out)?;
        for item in items {
            let owner = item
                .owner
                .as_deref()
                .map(str::trim)
                .filter(|o| !o.is_empty())
                .map_or_else(
                    || "_owner to be assigned_".to_string(),
                    |o| format!("owner: {}", one_line(o)),
                );
            writeln!(
                out,
                "- [{}] {} — {owner}",
                if item.done { "x" } else { " " },
                one_line(&item.title)
            )?;
        }
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

fn time_to_resolve(metrics: Option<&ResponseMetrics>) -> Option<i64> {
    let m = metrics?;
    m.time_to_resolve_seconds
        .or_else(|| seconds_between(m.detected_at.as_ref()?, m.resolved_at.as_ref()?))
}

fn seconds_between(from: &Time, to: &Time) -> Option<i64> {
    Some(to.0.duration_since(from.0).as_secs().max(0))
}

/// A timestamp to the second, in UTC, without the zone (headers and suffixes say UTC).
fn timestamp(time: &Time) -> String {
    time.0.strftime("%Y-%m-%d %H:%M:%S").to_string()
}

/// "SeverityChanged" -> "Severity changed".
fn entry_label(type_: EntryType) -> String {
    let name = format!("{type_:?}");
    let mut label = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if i > 0 && c.is_uppercase() {
            label.push(' ');
            label.extend(c.to_lowercase());
        } else {
            label.push(c);
        }
    }
    label
}

/// The object with its namespace spelled out: an empty one means the incident's own.
fn affected_label(affected: &AffectedRef, incident_namespace: Option<&str>) -> String {
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

/// Text made safe for one Markdown table cell: pipes escaped, line breaks as `<br>`.
fn escape_cell(text: &str) -> String {
    text.trim()
        .replace("\r\n", "\n")
        .replace('\r', "\n")
        .replace('|', "\\|")
        .replace('\n', "<br>")
}

/// Text on one line (for headings and list items): runs of whitespace become one space.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{
        Acknowledgment, ActionItem, AffectedKind, IncidentSpec, Phase, Postmortem, Resolution,
        Severity, Sla,
    };

    fn at(s: &str) -> Time {
        Time(s.parse().expect("valid timestamp"))
    }

    fn entry(
        time: &str,
        type_: EntryType,
        message: &str,
        actor: Option<&str>,
        count: Option<(i32, &str)>,
    ) -> TimelineEntry {
        TimelineEntry {
            time: at(time),
            type_,
            message: message.to_string(),
            actor: actor.map(str::to_string),
            count: count.map(|(n, _)| n),
            last_time: count.map(|(_, last)| at(last)),
        }
    }

    fn spec() -> IncidentSpec {
        IncidentSpec {
            title: "Checkout API returns 500s".to_string(),
            severity: Severity::P0,
            description: Some("Half of checkout requests fail since the 10:00 deploy.".into()),
            commander: Some("ana".into()),
            affected: vec![
                AffectedRef {
                    kind: AffectedKind::Deployment,
                    name: "checkout".into(),
                    namespace: None,
                },
                AffectedRef {
                    kind: AffectedKind::Service,
                    name: "payments".into(),
                    namespace: Some("billing".into()),
                },
                AffectedRef {
                    kind: AffectedKind::Node,
                    name: "node-7".into(),
                    namespace: None,
                },
            ],
            acknowledgment: None,
            resolution: None,
            notes: Vec::new(),
            postmortem: None,
            actions: Vec::new(),
            signals: Vec::new(),
            runbook_ref: None,
            approvals: Vec::new(),
        }
    }

    fn unreconciled() -> Incident {
        let mut incident = Incident::new("checkout-500s", spec());
        incident.metadata.namespace = Some("shop".into());
        incident
    }

    fn resolved() -> Incident {
        let mut incident = unreconciled();
        incident.spec.acknowledgment = Some(Acknowledgment {
            by: "bo".into(),
            note: None,
        });
        incident.spec.resolution = Some(Resolution {
            root_cause: Some("A config change dropped the payments timeout to 10ms.".into()),
            summary: "Rolled back the checkout deployment to the previous revision.".into(),
            by: "ana".into(),
        });
        incident.spec.postmortem = Some(Postmortem {
            url: None,
            completed: false,
            action_items: vec![
                ActionItem {
                    title: "Validate timeouts in CI".into(),
                    owner: Some("carla".into()),
                    done: true,
                },
                ActionItem {
                    title: "Alert on checkout error rate".into(),
                    owner: None,
                    done: false,
                },
            ],
        });
        incident.status = Some(IncidentStatus {
            phase: Some(Phase::Resolved),
            timeline: vec![
                entry(
                    "2025-05-03T10:02:00Z",
                    EntryType::Detected,
                    "error rate above 5%",
                    Some("detector"),
                    None,
                ),
                entry(
                    "2025-05-03T10:14:05Z",
                    EntryType::Acknowledged,
                    "claimed",
                    Some("bo"),
                    None,
                ),
                entry(
                    "2025-05-03T10:44:05Z",
                    EntryType::UpdateDue,
                    "no update for 30m",
                    None,
                    Some((2, "2025-05-03T11:14:05Z")),
                ),
                entry(
                    "2025-05-03T11:20:00Z",
                    EntryType::Note,
                    "timeout | retries\nboth look wrong",
                    Some("bo"),
                    None,
                ),
                entry(
                    "2025-05-03T11:50:00Z",
                    EntryType::RootCauseIdentified,
                    "payments timeout",
                    Some("ana"),
                    None,
                ),
                entry(
                    "2025-05-03T12:05:00Z",
                    EntryType::Resolved,
                    "rolled back",
                    Some("ana"),
                    None,
                ),
            ],
            sla: Some(Sla {
                respond_by: at("2025-05-03T10:17:00Z"),
                breached: false,
                postmortem_due_by: Some(at("2025-05-05T12:05:00Z")),
            }),
            metrics: Some(ResponseMetrics {
                detected_at: Some(at("2025-05-03T10:02:00Z")),
                acknowledged_at: Some(at("2025-05-03T10:14:05Z")),
                resolved_at: Some(at("2025-05-03T12:05:00Z")),
                closed_at: None,
                time_to_acknowledge_seconds: Some(725),
                time_to_resolve_seconds: Some(7380),
            }),
            ..IncidentStatus::default()
        });
        incident
    }

    fn position(doc: &str, needle: &str) -> usize {
        doc.find(needle)
            .unwrap_or_else(|| panic!("{needle:?} missing from:\n{doc}"))
    }

    const HEADINGS: [&str; 12] = [
        "# Post-mortem: Checkout API returns 500s (P0)",
        "## Facts",
        "## Summary",
        "## Impact",
        "## Timeline",
        "## Root cause",
        "## Resolution",
        "## What went well",
        "## What could be improved",
        "## Lessons learned",
        "## Action items",
        "_Generated by incident-operator from Incident shop/checkout-500s.",
    ];

    #[test]
    fn sections_appear_in_review_order() {
        for incident in [resolved(), unreconciled()] {
            let doc = render(&incident);
            let positions: Vec<usize> = HEADINGS.iter().map(|h| position(&doc, h)).collect();
            assert!(positions.is_sorted(), "headings out of order:\n{doc}");
            assert!(doc.starts_with("# Post-mortem: "));
        }
    }

    #[test]
    fn facts_carry_times_durations_sla_and_affected_objects() {
        let doc = render(&resolved());
        for fact in [
            "| **Severity** | P0 |",
            "| **Phase** | Resolved |",
            "| **Commander** | ana |",
            "| **Acknowledged by** | bo |",
            "| **Detected** | 2025-05-03 10:02:00 UTC |",
            "| **Acknowledged** | 2025-05-03 10:14:05 UTC |",
            "| **Resolved** | 2025-05-03 12:05:00 UTC |",
            "| **Closed** | — |",
            "| **Time to acknowledge** | 12m 5s |",
            "| **Time to resolve** | 2h 3m |",
            "| **Response SLA** | Met (acknowledged before 2025-05-03 10:17:00 UTC) |",
            "| **Post-mortem due** | 2025-05-05 12:05:00 UTC |",
            "| **Affected** | Deployment shop/checkout, Service billing/payments, Node node-7 |",
        ] {
            position(&doc, fact);
        }
    }

    #[test]
    fn resolution_fills_summary_root_cause_and_resolution() {
        let doc = render(&resolved());
        let summary = position(&doc, "## Summary");
        let impact = position(&doc, "## Impact");
        let rolled_back = position(&doc, "Rolled back the checkout deployment");
        assert!(summary < rolled_back && rolled_back < impact);
        position(
            &doc,
            "Half of checkout requests fail since the 10:00 deploy.",
        );
        position(&doc, "- Deployment shop/checkout");
        let root_cause = position(&doc, "## Root cause");
        let cause = position(
            &doc,
            "A config change dropped the payments timeout to 10ms.",
        );
        assert!(root_cause < cause);
        position(
            &doc,
            "Resolved by ana at 2025-05-03 12:05:00 UTC, 2h 3m after detection.",
        );
        assert!(!doc.contains("To be determined"));
    }

    #[test]
    fn timeline_is_a_table_in_recorded_order() {
        let doc = render(&resolved());
        position(&doc, "| Time (UTC) | Event | Actor | Message |");
        let rows = [
            "| 2025-05-03 10:02:00 | Detected | detector | error rate above 5% |",
            "| 2025-05-03 10:14:05 | Acknowledged | bo | claimed |",
            "| 2025-05-03 10:44:05 (last 2025-05-03 11:14:05) | Update due ×2 | — | no update for 30m |",
            "| 2025-05-03 11:20:00 | Note | bo | timeout \\| retries<br>both look wrong |",
            "| 2025-05-03 11:50:00 | Root cause identified | ana | payments timeout |",
            "| 2025-05-03 12:05:00 | Resolved | ana | rolled back |",
        ];
        let positions: Vec<usize> = rows.iter().map(|r| position(&doc, r)).collect();
        assert!(positions.is_sorted(), "rows out of order:\n{doc}");
        // Every row stays on one line: header, separator and one line per entry.
        let table_lines = doc
            .lines()
            .skip_while(|l| !l.starts_with("| Time (UTC)"))
            .take_while(|l| l.starts_with('|'))
            .count();
        assert_eq!(table_lines, 2 + rows.len());
    }

    #[test]
    fn action_items_are_a_checklist_with_owners() {
        let doc = render(&resolved());
        let heading = position(&doc, "## Action items");
        let done = position(&doc, "- [x] Validate timeouts in CI — owner: carla");
        let open = position(
            &doc,
            "- [ ] Alert on checkout error rate — _owner to be assigned_",
        );
        assert!(heading < done && done < open);
        position(&doc, "1 of 2 done.");
    }

    #[test]
    fn an_unreconciled_incident_renders_with_prompts() {
        let doc = render(&unreconciled());
        for text in [
            "| **Phase** | Not reconciled yet |",
            "| **Detected** | — |",
            "| **Time to acknowledge** | — |",
            "| **Response SLA** | Not evaluated yet |",
            "_The operator has recorded no events for this incident yet._",
            "_Not resolved yet.",
            "_To be determined:",
            "_None recorded yet. Consider follow-ups",
        ] {
            position(&doc, text);
        }
        assert!(!doc.contains("| Time (UTC) |"));
    }

    #[test]
    fn a_bare_incident_still_renders() {
        let mut incident = Incident::new(
            "x",
            IncidentSpec {
                description: None,
                commander: None,
                affected: Vec::new(),
                title: "multi\nline  | title".into(),
                ..spec()
            },
        );
        incident.status = Some(IncidentStatus::default());
        let doc = render(&incident);
        position(&doc, "# Post-mortem: multi line | title (P0)\n");
        position(&doc, "| **Commander** | _Unassigned_ |");
        position(&doc, "| **Affected** | None recorded |");
        position(&doc, "No affected objects were recorded.");
        position(&doc, "from Incident x.");
    }

    #[test]
    fn durations_fall_back_to_the_recorded_times() {
        let mut incident = resolved();
        if let Some(metrics) = incident.status.as_mut().and_then(|s| s.metrics.as_mut()) {
            metrics.time_to_acknowledge_seconds = None;
            metrics.time_to_resolve_seconds = None;
        }
        let doc = render(&incident);
        position(&doc, "| **Time to acknowledge** | 12m 5s |");
        position(&doc, "| **Time to resolve** | 2h 3m |");
    }

    #[test]
    fn sla_breached_met_and_pending_are_told_apart() {
        let mut incident = resolved();
        position(
            &render(&incident),
            "| **Response SLA** | Met (acknowledged before 2025-05-03 10:17:00 UTC) |",
        );
        if let Some(sla) = incident.status.as_mut().and_then(|s| s.sla.as_mut()) {
            sla.breached = true;
        }
        position(
            &render(&incident),
            "| **Response SLA** | Breached (acknowledgment was due by 2025-05-03 10:17:00 UTC) |",
        );
        if let Some(status) = incident.status.as_mut() {
            status.sla = Some(Sla {
                respond_by: at("2025-05-03T10:17:00Z"),
                breached: false,
                postmortem_due_by: None,
            });
            status.metrics = Some(ResponseMetrics {
                detected_at: Some(at("2025-05-03T10:02:00Z")),
                ..ResponseMetrics::default()
            });
        }
        position(
            &render(&incident),
            "| **Response SLA** | Not breached so far (acknowledgment due by 2025-05-03 10:17:00 UTC) |",
        );
    }

    #[test]
    fn humanized_durations() {
        assert_eq!(spelled_seconds(0), "0s");
        assert_eq!(spelled_seconds(-5), "0s");
        assert_eq!(spelled_seconds(59), "59s");
        assert_eq!(spelled_seconds(60), "1m");
        assert_eq!(spelled_seconds(725), "12m 5s");
        assert_eq!(spelled_seconds(3_600), "1h");
        assert_eq!(spelled_seconds(3_605), "1h 5s");
        assert_eq!(spelled_seconds(90_061), "1d 1h 1m 1s");
        assert!(!spelled_seconds(i64::MAX).is_empty());
    }

    #[test]
    fn cells_escape_pipes_and_line_breaks() {
        assert_eq!(escape_cell("a|b\r\nc\rd\ne"), "a\\|b<br>c<br>d<br>e");
        assert_eq!(escape_cell("  plain \n"), "plain");
    }

    #[test]
    fn entry_types_read_as_words() {
        assert_eq!(entry_label(EntryType::Note), "Note");
        assert_eq!(
            entry_label(EntryType::PostmortemOverdue),
            "Postmortem overdue"
        );
        assert_eq!(
            entry_label(EntryType::AffectedNotFound),
            "Affected not found"
        );
    }
}
