//! Unit tests of the post-mortem draft (core layer, tests): section order, each section's content,
//! and the text helpers.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{
    format::{entry_label, escape_cell},
    render,
};
use crate::{
    api::{
        Acknowledgment, ActionItem, AffectedKind, AffectedRef, EntryType, Incident, IncidentSpec,
        IncidentStatus, Phase, Postmortem, Resolution, ResponseMetrics, Severity, Sla,
        TimelineEntry,
    },
    core::text::spelled_seconds,
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
        source: None,
        reporter: None,
        ticket: None,
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
        updates: Vec::new(),
        alerts: Vec::new(),
        postmortem: None,
        actions: Vec::new(),
        signals: Vec::new(),
        runbook_ref: None,
        escalation_policy: None,
        approvals: Vec::new(),
        gitops: None,
        publication: None,
        public_updates: Vec::new(),
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
            business_hours: None,
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
fn a_reported_incident_says_how_it_came_to_us() {
    let mut incident = resolved();
    incident.spec.source = Some("user-report".into());
    incident.spec.reporter = Some("dana | support".into());
    incident.spec.ticket = Some("https://tickets.example/T-42".into());
    let doc = render(&incident);
    let rows = [
        "| **Commander** | ana |",
        "| **Reported via** | user-report |",
        "| **Reported by** | dana \\| support |",
        "| **Ticket** | https://tickets.example/T-42 |",
        "| **Acknowledged by** | bo |",
    ];
    let positions: Vec<usize> = rows.iter().map(|r| position(&doc, r)).collect();
    assert!(positions.is_sorted(), "rows out of order:\n{doc}");
    // Nothing about a report when there was none.
    let detected = render(&resolved());
    for label in ["Reported via", "Reported by", "**Ticket**"] {
        assert!(!detected.contains(label), "{label}:\n{detected}");
    }
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
            business_hours: None,
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
