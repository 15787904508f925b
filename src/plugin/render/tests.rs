//! Unit tests of the plugin's rendering (plugin layer, tests): the queue's order and columns, time
//! left, the `show` page.

use jiff::{SignedDuration, Timestamp};
use serde_json::json;

use super::{
    Calendars, in_queue, list_table, queue::truncate, show, time_left, time_left_in, timeline,
};
use crate::{
    api::{BusinessHours, EntryType, Incident, TimelineEntry},
    core::{calendar::Calendar, text::age},
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
    let table = list_table(&incidents, now(), false, &Calendars::new());
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
    let table = list_table(&incidents, now(), true, &Calendars::new());
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("NAMESPACE   NAME       SEVERITY"),
        "{table}"
    );
    assert!(lines[1].starts_with("payments    api-down   P0"), "{table}");
    assert!(lines[2].starts_with("shop        slow       P3"), "{table}");
    assert!(!list_table(&incidents, now(), false, &Calendars::new()).contains("payments"));
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
        "undo   Rollback   deployment/api   Verifying   3 → 2",
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
fn show_names_an_aborted_rollout_as_kubectl_argo_rollouts_does() {
    let incident: Incident = serde_json::from_value(json!({
        "apiVersion": "incident.dev/v1alpha1", "kind": "Incident",
        "metadata": { "name": "canary", "namespace": "shop",
                      "creationTimestamp": "2026-11-22T11:50:00Z" },
        "spec": { "title": "canary 500s", "severity": "P2",
                  "affected": [{ "kind": "Rollout", "name": "web" }] },
        "status": {
            "actions": [{ "name": "abort", "kind": "Rollback", "deployment": "web",
                          "workloadKind": "Rollout", "phase": "Succeeded",
                          "fromRevision": 2, "toRevision": 1 }],
        },
    }))
    .unwrap();
    let text = show(&incident, now());
    for expected in [
        "Affected:     Rollout web",
        "abort   Rollback   rollout/web   Succeeded   2 → 1",
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

/// An incident paged twice (primary and the payments expert, then the secondary), climbing on.
fn paged(state: &str) -> Incident {
    serde_json::from_value(json!({
        "apiVersion": "incident.dev/v1alpha1", "kind": "Incident",
        "metadata": { "name": "login", "namespace": "shop",
                      "creationTimestamp": "2026-11-22T11:40:00Z" },
        "spec": { "title": "Login fails", "severity": "P1" },
        "status": {
            "phase": "Detected",
            "commander": "alex",
            "escalation": {
                "policy": "shop/team", "state": state, "episode": 1, "steps": 2,
                "startedAt": "2026-11-22T11:40:00Z",
                "level": "secondary", "round": 1,
                "nextAt": "2026-11-22T12:10:00Z", "nextLevel": "manager",
                "message": "layer payments-expert of schedule team has nobody on call",
                "pages": [
                    { "time": "2026-11-22T11:40:00Z", "episode": 1, "round": 1,
                      "level": "primary", "person": "alex", "role": "primary on call",
                      "channels": ["shop/pager", "shop/slack"] },
                    { "time": "2026-11-22T11:40:00Z", "episode": 1, "round": 1,
                      "level": "expert:payments", "role": "channel",
                      "channels": ["shop/payments"] },
                    { "time": "2026-11-22T11:50:00Z", "episode": 1, "round": 1,
                      "level": "secondary", "person": "sam", "role": "secondary on call" },
                ],
            },
        },
    }))
    .unwrap()
}

#[test]
fn show_says_who_was_paged_and_what_comes_next() {
    let text = show(&paged("Climbing"), now());
    let section: Vec<&str> = text
        .lines()
        .skip_while(|l| *l != "Escalation:")
        .take_while(|l| !l.is_empty())
        .collect();
    assert_eq!(
        section,
        [
            "Escalation:",
            "  Policy:     shop/team",
            "  State:      Climbing (paging level after level until someone acknowledges)",
            "  Climb:      episode 1, level secondary of round 1, started 2026-11-22 11:40:00Z",
            "  Next:       manager due 2026-11-22 12:10:00Z (in 10m)",
            "  Message:    layer payments-expert of schedule team has nobody on call",
            "  Pages:",
            "    2026-11-22 11:40:00Z  round 1  primary          paged alex (primary on call) via shop/pager, shop/slack",
            "    2026-11-22 11:40:00Z  round 1  expert:payments  posted to shop/payments (channel)",
            "    2026-11-22 11:50:00Z  round 1  secondary        paged sam (secondary on call)",
        ],
        "{text}"
    );
    assert!(text.contains("Commander:    alex"), "{text}");
    let escalation = text.find("Escalation:").unwrap_or(usize::MAX);
    assert!(
        escalation < text.find("Timeline:").unwrap_or(0),
        "after the facts, before the timeline\n{text}"
    );
}

#[test]
fn show_names_the_episode_once_pages_span_reopenings() {
    let mut reopened = paged("Exhausted");
    if let Some(climb) = reopened.status.as_mut().and_then(|s| s.escalation.as_mut()) {
        climb.episode = 2;
        climb.next_at = None;
        climb.message = None;
        climb.pages[2].episode = 2;
    }
    let text = show(&reopened, now());
    assert!(
        text.contains(
            "  State:      Exhausted (every level of every round paged, nobody answered)"
        ),
        "{text}"
    );
    assert!(!text.contains("  Next:"), "{text}");
    assert!(
        text.contains("11:40:00Z  episode 1 round 1  primary          paged alex"),
        "{text}"
    );
    assert!(
        text.contains("11:50:00Z  episode 2 round 1  secondary        paged sam"),
        "{text}"
    );
}

#[test]
fn show_tells_an_overdue_level_and_a_climb_without_pages() {
    let mut waiting = paged("Waiting");
    if let Some(climb) = waiting.status.as_mut().and_then(|s| s.escalation.as_mut()) {
        climb.pages.clear();
        climb.level = None;
        climb.next_level = Some("primary".to_owned());
        climb.next_at = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            "2026-11-22T11:55:00Z".parse().unwrap(),
        ));
    }
    let text = show(&waiting, now());
    for expected in [
        "  State:      Waiting (waiting for business hours to page)",
        "  Climb:      episode 1, started 2026-11-22 11:40:00Z",
        "  Next:       primary due 2026-11-22 11:55:00Z (overdue 5m)",
        "  Pages:      none yet",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[test]
fn the_commander_is_the_operators_answer_else_the_spec() {
    let mut named = paged("Acknowledged");
    named.spec.commander = Some("sam".to_owned());
    assert!(
        show(&named, now()).contains("Commander:    alex"),
        "status first"
    );
    named.status = None;
    let text = show(&named, now());
    assert!(text.contains("Commander:    sam"), "{text}");
    assert!(
        !text.contains("Escalation:"),
        "none before the operator ran\n{text}"
    );
}

/// A P3 of the `shop/team` policy whose clock counts business hours in New York (UTC-5 in
/// November); `now` is Sunday noon UTC.
fn business(name: &str, respond_by: &str, policy: &str) -> Incident {
    let mut incident = incident(name, "P3", Some("Detected"), respond_by);
    if let Some(status) = incident.status.as_mut() {
        if let Some(sla) = status.sla.as_mut() {
            sla.business_hours = Some("America/New_York".to_owned());
        }
        status.escalation = serde_json::from_value(json!({
            "policy": policy, "state": "Waiting", "episode": 1, "steps": 0,
        }))
        .unwrap();
    }
    incident
}

fn new_york() -> Calendars {
    let hours: BusinessHours =
        serde_json::from_value(json!({ "timeZone": "America/New_York" })).unwrap();
    Calendars::from([(
        "shop/team".to_owned(),
        Calendar::new(&hours).expect("business hours"),
    )])
}

#[test]
fn business_clocks_count_business_time_left() {
    // Monday 12:10 in New York: Monday 09:00-12:10 is what is left.
    let monday = business("monday", "2026-11-23T17:10:00Z", "shop/team");
    assert_eq!(time_left_in(&monday, now(), &new_york()), "3h10m bh");
    // Friday 16:40 in New York: missed by Friday's last 20 minutes; the weekend does not count.
    let friday = business("friday", "2026-11-20T21:40:00Z", "shop/team");
    assert_eq!(time_left_in(&friday, now(), &new_york()), "overdue 20m bh");
    let mut acked = monday.clone();
    if let Some(status) = acked.status.as_mut() {
        status.phase = Some(crate::api::Phase::Acknowledged);
    }
    assert_eq!(time_left_in(&acked, now(), &new_york()), "acked");
}

#[test]
fn other_clocks_keep_wall_time() {
    let wall = incident("wall", "P1", Some("Detected"), "2026-11-22T12:12:00Z");
    assert_eq!(time_left_in(&wall, now(), &new_york()), "12m", "24x7");
    let unknown = business("unknown", "2026-11-23T17:10:00Z", "shop/gone");
    assert_eq!(
        time_left_in(&unknown, now(), &new_york()),
        "29h",
        "the policy could not be read: wall time"
    );
    let monday = business("monday", "2026-11-23T17:10:00Z", "shop/team");
    assert_eq!(time_left(&monday, now()), "29h", "without calendars");
    assert!(
        show(&monday, now()).contains("(29h, business hours of America/New_York)"),
        "show names the hours the clock counts in\n{}",
        show(&monday, now())
    );
}

#[test]
fn the_list_shows_each_clock_in_its_own_terms() {
    let incidents = vec![
        business("monday", "2026-11-23T17:10:00Z", "shop/team"),
        incident("wall", "P3", Some("Detected"), "2026-11-22T12:12:00Z"),
    ];
    let table = list_table(&incidents, now(), false, &new_york());
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[1].starts_with("wall "), "{table}");
    assert!(lines[1].ends_with("   12m"), "{table}");
    assert!(lines[2].starts_with("monday "), "{table}");
    assert!(lines[2].ends_with("   3h10m bh"), "{table}");
}
