//! Unit tests of the plugin's rendering (plugin layer, tests): the queue's order and columns, time
//! left, the `show` page.

use jiff::{SignedDuration, Timestamp};
use serde_json::json;

use super::{in_queue, list_table, queue::truncate, show, time_left, timeline};
use crate::{
    api::{EntryType, Incident, TimelineEntry},
    core::text::age,
};

const NOW: &str = "2026-11-22T12:00:00Z";

fn now() -> Timestamp {
    NOW.parse().unwrap()
}

fn incident(name: &str, severity: &str, phase: Option<&str>, respond_by: &str) -> Incident {
    let mut value = json!({
        "apiVersion": "incident.dev/v1alpha1", "kind": "Incident",
        "metadata": { "name": name, "namespace": "shop",
                      "creationTimestamp": "2026-11-22T11:50:00Z" },
        "spec": { "title": format!("{name} is broken"), "severity": severity },
    });
    if let Some(phase) = phase {
        value["status"] = json!({
            "phase": phase,
            "sla": { "respondBy": respond_by, "breached": false },
        });
    }
    serde_json::from_value(value).unwrap()
}

#[test]
fn durations_read_like_kubectl_ages() {
    let d = SignedDuration::from_secs;
    assert_eq!(age(d(45)), "45s");
    assert_eq!(age(d(119)), "119s");
    assert_eq!(age(d(190)), "3m10s");
    assert_eq!(age(d(300)), "5m");
    assert_eq!(age(d(42 * 60)), "42m");
    assert_eq!(age(d(3600 + 5 * 60)), "65m");
    assert_eq!(age(d(5 * 3600 + 12 * 60)), "5h12m");
    assert_eq!(age(d(20 * 3600)), "20h");
    assert_eq!(age(d(3 * 86_400 + 4 * 3600)), "3d4h");
    assert_eq!(age(d(12 * 86_400)), "12d");
    assert_eq!(age(d(-300)), "5m", "the sign is the caller's");
}

#[test]
fn time_left_counts_down_then_reports_overdue() {
    let open = incident("a", "P1", Some("Detected"), "2026-11-22T12:12:00Z");
    assert_eq!(time_left(&open, now()), "12m");
    let late = incident("b", "P0", Some("Detected"), "2026-11-22T11:57:00Z");
    assert_eq!(time_left(&late, now()), "overdue 3m");
    let acked = incident("c", "P0", Some("Acknowledged"), "2026-11-22T11:57:00Z");
    assert_eq!(time_left(&acked, now()), "acked");
    let resolved = incident("d", "P0", Some("Resolved"), "2026-11-22T11:57:00Z");
    assert_eq!(time_left(&resolved, now()), "-");
    let fresh = incident("e", "P2", None, "");
    assert_eq!(
        time_left(&fresh, now()),
        "-",
        "no deadline before the controller"
    );
}

#[test]
fn list_puts_the_most_urgent_first() {
    let incidents = vec![
        incident("closed-p0", "P0", Some("Closed"), "2026-11-22T11:00:00Z"),
        incident(
            "acked-p0",
            "P0",
            Some("Acknowledged"),
            "2026-11-22T12:10:00Z",
        ),
        incident("open-p2", "P2", Some("Detected"), "2026-11-22T15:50:00Z"),
        incident(
            "open-p0-later",
            "P0",
            Some("Detected"),
            "2026-11-22T12:05:00Z",
        ),
        incident(
            "open-p0-late",
            "P0",
            Some("Detected"),
            "2026-11-22T11:58:00Z",
        ),
        incident(
            "resolved-p1",
            "P1",
            Some("Resolved"),
            "2026-11-22T12:40:00Z",
        ),
    ];
    let table = list_table(&incidents, now(), false);
    let names: Vec<&str> = table
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(
        names,
        [
            "open-p0-late",
            "open-p0-later",
            "open-p2",
            "acked-p0",
            "resolved-p1",
            "closed-p0"
        ]
    );
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[0],
        "NAME            SEVERITY   PHASE          TITLE                     AGE   RESPOND IN"
    );
    assert_eq!(
        lines[1],
        "open-p0-late    P0         Detected       open-p0-late is broken    10m   overdue 2m"
    );
    assert!(lines[3].ends_with("3h50m"), "{}", lines[3]);
    assert!(lines[4].ends_with("acked"), "{}", lines[4]);
    assert!(
        lines.iter().all(|l| l == &l.trim_end()),
        "no trailing spaces"
    );
}

#[test]
fn show_says_why_a_named_runbook_is_not_followed() {
    let mut named = incident("slow", "P3", Some("Detected"), "2026-11-22T12:05:00Z");
    if let Some(status) = named.status.as_mut() {
        status.conditions = serde_json::from_value(json!([{
            "type": "RunbookUsable", "status": "False", "reason": "NotFound",
            "message": "runbook triage not found",
            "lastTransitionTime": "2026-11-22T12:00:00Z",
        }]))
        .unwrap();
    }
    assert!(
        show(&named, now()).contains("Runbook:      not followed: runbook triage not found"),
        "{}",
        show(&named, now())
    );
}

#[test]
fn the_queue_keeps_everything_until_closed() {
    assert!(in_queue(&incident(
        "a",
        "P2",
        Some("Detected"),
        "2026-11-22T12:05:00Z"
    )));
    assert!(in_queue(&incident(
        "b",
        "P2",
        Some("Resolved"),
        "2026-11-22T12:05:00Z"
    )));
    assert!(in_queue(&incident("c", "P2", None, "2026-11-22T12:05:00Z")));
    assert!(!in_queue(&incident(
        "d",
        "P2",
        Some("Closed"),
        "2026-11-22T12:05:00Z"
    )));
}

#[test]
fn all_namespaces_puts_the_namespace_first_and_keeps_the_urgency_order() {
    let mut payments = incident("api-down", "P0", Some("Detected"), "2026-11-22T12:05:00Z");
    payments.metadata.namespace = Some("payments".into());
    let incidents = vec![
        incident("slow", "P3", Some("Detected"), "2026-11-23T11:50:00Z"),
        payments,
    ];
    let table = list_table(&incidents, now(), true);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("NAMESPACE   NAME       SEVERITY"),
        "{table}"
    );
    assert!(lines[1].starts_with("payments    api-down   P0"), "{table}");
    assert!(lines[2].starts_with("shop        slow       P3"), "{table}");
    assert!(!list_table(&incidents, now(), false).contains("payments"));
}

#[test]
fn long_titles_are_cut_to_one_line() {
    assert_eq!(truncate("short", 10), "short");
    assert_eq!(truncate("a much longer title", 10), "a much lo…");
    assert_eq!(truncate("first\nsecond", 10), "first …");
}

#[test]
fn timeline_entries_say_when_what_and_who() {
    let entries: Vec<TimelineEntry> = serde_json::from_value(json!([
        { "time": "2026-11-22T11:50:00Z", "type": "Detected", "message": "Incident opened" },
        { "time": "2026-11-22T11:52:30Z", "type": "Acknowledged",
          "message": "Acknowledged: looking", "actor": "ana" },
        { "time": "2026-11-22T11:52:40Z", "type": "Note",
          "message": "Resolved by ana: fixed", "actor": "ana" },
        { "time": "2026-11-22T11:53:00Z", "type": "UpdateDue", "message": "Update overdue",
          "count": 3, "lastTime": "2026-11-22T11:59:00Z" },
    ]))
    .unwrap();
    let text = timeline(&entries);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            "  2026-11-22 11:50:00Z  Detected             Incident opened",
            "  2026-11-22 11:52:30Z  Acknowledged         Acknowledged: looking (by ana)",
            "  2026-11-22 11:52:40Z  Note                 Resolved by ana: fixed",
            "  2026-11-22 11:53:00Z  UpdateDue            Update overdue ×3, last at 2026-11-22 11:59:00Z",
        ]
    );
    assert_eq!(entries[1].type_, EntryType::Acknowledged);
}

#[test]
fn show_renders_timeline_actions_runbook_and_evidence() {
    let value = json!({
        "apiVersion": "incident.dev/v1alpha1", "kind": "Incident",
        "metadata": { "name": "api-down", "namespace": "shop",
                      "creationTimestamp": "2026-11-22T11:50:00Z" },
        "spec": {
            "title": "API down", "severity": "P1", "commander": "ana",
            "acknowledgment": { "by": "ana", "note": "on it" },
            "notes": [{ "author": "bob", "text": "rolled back" }],
            "affected": [{ "kind": "Deployment", "name": "api" }],
        },
        "status": {
            "phase": "Mitigating",
            "sla": { "respondBy": "2026-11-22T12:50:00Z", "breached": false },
            "timeline": [
                { "time": "2026-11-22T11:50:00Z", "type": "Detected", "message": "Incident opened" },
            ],
            "actions": [{ "name": "undo", "kind": "Rollback", "deployment": "api",
                          "phase": "Verifying", "fromRevision": 3, "toRevision": 2 }],
            "runbook": {
                "name": "api", "generation": 2, "reason": "matched service=api",
                "steps": [
                    { "name": "root-cause", "checkpoint": { "prompt": "Root cause identified?" } },
                    { "name": "tell", "escalate": { "message": "page" } },
                ],
                "progress": [
                    { "name": "root-cause", "kind": "checkpoint", "phase": "WaitingApproval" },
                    { "name": "tell", "kind": "escalate", "phase": "Pending" },
                ],
            },
            "evidence": {
                "recentDeploy": "rolled out 2 minutes before detection",
                "containers": [{ "pod": "api-1", "container": "app", "state": "CrashLoopBackOff",
                                 "restarts": 4, "lastExitCode": 1 }],
            },
        },
    });
    let incident: Incident = serde_json::from_value(value).unwrap();
    let text = show(&incident, now());
    for expected in [
        "Name:         api-down",
        "Phase:        Mitigating",
        "Respond by:   2026-11-22 12:50:00Z (acked)",
        "Acknowledged: by ana: on it",
        "Affected:     Deployment api",
        "  2026-11-22 11:50:00Z  Detected             Incident opened",
        "undo   Rollback   api          Verifying   3 → 2",
        "Runbook: api (generation 2): matched service=api",
        "1. root-cause           checkpoint  WaitingApproval",
        "Root cause identified?",
        "kubectl incident approve api-down root-cause",
        "2. tell                 escalate    Pending",
        "Recent deploy: rolled out 2 minutes before detection",
        "Container api-1/app: CrashLoopBackOff, 4 restarts (exit 1)",
        "  bob: rolled back",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[test]
fn show_works_before_the_controller_ran() {
    let incident = incident("new", "P3", None, "");
    let text = show(&incident, now());
    assert!(text.contains("Phase:        Pending"), "{text}");
    assert!(text.contains("(nothing recorded yet)"), "{text}");
}

#[test]
fn show_says_how_a_reported_incident_came_to_us() {
    let mut reported = incident("report-x1", "P2", None, "");
    reported.spec.source = Some("support-ticket".to_owned());
    reported.spec.reporter = Some("carla@example.com".to_owned());
    let ticket = format!("https://tickets.example/T-1?q={}", "a".repeat(300));
    reported.spec.ticket = Some(ticket.clone());
    let text = show(&reported, now());
    let lines: Vec<&str> = text.lines().collect();
    let commander = lines.iter().position(|l| l.starts_with("Commander:"));
    let report: Vec<&str> = lines
        .iter()
        .skip(commander.map_or(0, |c| c + 1))
        .take(3)
        .copied()
        .collect();
    assert_eq!(
        report,
        [
            "Source:       support-ticket",
            "Reporter:     carla@example.com",
            &format!("Ticket:       {ticket}"),
        ],
        "after the commander, the ticket whole (a link to follow):\n{text}"
    );

    let detected = show(&incident("detected", "P2", None, ""), now());
    for label in ["Source:", "Reporter:", "Ticket:"] {
        assert!(
            !detected.contains(label),
            "{label} without a report:\n{detected}"
        );
    }
}
