use serde_json::{Value, json};

use super::*;

fn policy(namespace: &str, name: &str, spec: Value) -> Arc<EscalationPolicy> {
    let mut full = json!({ "levels": [ { "name": "primary", "notify": [ { "layer": { "schedule": "team", "layer": "primary" } } ] } ] });
    if let (Some(full), Some(extra)) = (full.as_object_mut(), spec.as_object()) {
        full.extend(extra.clone());
    }
    Arc::new(
        serde_json::from_value(json!({
            "apiVersion": "incident.dev/v1alpha1", "kind": "EscalationPolicy",
            "metadata": { "name": name, "namespace": namespace }, "spec": full,
        }))
        .expect("a policy"),
    )
}

fn incident(named: Option<&str>) -> Incident {
    serde_json::from_value(json!({
        "apiVersion": "incident.dev/v1alpha1", "kind": "Incident",
        "metadata": { "name": "i", "namespace": "shop" },
        "spec": { "title": "t", "severity": "P2", "escalationPolicy": named },
    }))
    .expect("an Incident")
}

fn chosen(choice: Choice) -> String {
    match choice {
        Choice::Policy(p) => policy_ref(&p),
        Choice::Missing(name) => format!("missing {name}"),
        Choice::Nothing => "nothing".to_owned(),
    }
}

#[test]
fn the_named_policy_wins_then_the_namespace_default_then_the_operators() {
    let policies = [
        policy("shop", "night", json!({})),
        policy("shop", "team", json!({ "default": true })),
        policy("ops", "platform", json!({ "default": true })),
        policy("ads", "ads", json!({ "default": true })),
    ];
    assert_eq!(
        chosen(choose(&incident(Some("night")), &policies, Some("ops"))),
        "shop/night"
    );
    assert_eq!(
        chosen(choose(&incident(None), &policies, Some("ops"))),
        "shop/team"
    );
    assert_eq!(
        chosen(choose(&incident(Some("gone")), &policies, Some("ops"))),
        "missing gone"
    );
    let elsewhere = &policies[2..3];
    assert_eq!(
        chosen(choose(&incident(None), elsewhere, Some("ops"))),
        "ops/platform"
    );
    assert_eq!(chosen(choose(&incident(None), elsewhere, None)), "nothing");
    // A policy of another namespace is never named by an incident.
    assert_eq!(
        chosen(choose(&incident(Some("ads")), &policies, Some("ops"))),
        "missing ads"
    );
}

#[test]
fn levels_are_kept_by_severity_and_experts_match_labels_or_workloads() {
    let p = policy(
        "shop",
        "team",
        json!({
            "levels": [
                { "name": "primary", "notify": [ { "channel": "c" } ] },
                { "name": "manager", "severities": ["P0", "P1"], "notify": [ { "channel": "c" } ] } ],
            "experts": [
                { "name": "payments", "selector": { "matchLabels": { "component": "payments" } }, "notify": [ { "channel": "c" } ] },
                { "name": "db", "workloads": ["postgres"], "notify": [ { "channel": "c" } ] } ] }),
    );
    let names = |s: Severity| {
        levels(&p, s)
            .iter()
            .map(|l| l.name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(Severity::P1), ["primary", "manager"]);
    assert_eq!(names(Severity::P3), ["primary"]);
    let mut i: Incident = incident(None);
    assert!(experts(&p, &i).is_empty());
    i.metadata.labels = Some([("component".to_owned(), "payments".to_owned())].into());
    i.spec.affected = vec![
        serde_json::from_value(json!({ "kind": "StatefulSet", "name": "postgres" })).expect("ref"),
    ];
    let matched: Vec<_> = experts(&p, &i).iter().map(|e| e.name.clone()).collect();
    assert_eq!(matched, ["payments", "db"]);
}

#[test]
fn a_policy_naming_what_does_not_exist_says_what() {
    let schedule: Arc<OnCallSchedule> = Arc::new(
        serde_json::from_value(json!({
            "apiVersion": "incident.dev/v1alpha1", "kind": "OnCallSchedule",
            "metadata": { "name": "team", "namespace": "shop" },
            "spec": { "timeZone": "UTC", "members": [ { "name": "ana" } ],
                "layers": [ { "name": "primary", "members": ["ana"], "start": "2026-01-01" } ] },
        }))
        .expect("a schedule"),
    );
    let p = policy(
        "shop",
        "team",
        json!({ "levels": [
            { "name": "primary", "notify": [ { "layer": { "schedule": "team", "layer": "primary" } } ] },
            { "name": "secondary", "notify": [ { "layer": { "schedule": "team", "layer": "secondary" } },
                                                { "person": { "schedule": "team", "member": "bo" } },
                                                { "layer": { "schedule": "other", "layer": "primary" } },
                                                { "channel": "leads" } ] } ],
            "businessHours": { "timeZone": "Mars/Olympus" } }),
    );
    let problems = problems(&p, std::slice::from_ref(&schedule), &[], Some("ops"));
    assert_eq!(problems.len(), 5, "{problems:?}");
    let all = problems.join("\n");
    for expected in [
        "levels[secondary]: OnCallSchedule team has no layer secondary",
        "levels[secondary]: OnCallSchedule team has no member bo",
        "levels[secondary]: OnCallSchedule other does not exist",
        "levels[secondary]: Channel leads does not exist",
        "Mars/Olympus",
    ] {
        assert!(all.contains(expected), "{expected} in {all}");
    }
    let fine = policy("shop", "team", json!({}));
    assert!(super::problems(&fine, &[schedule], &[], None).is_empty());
}

#[test]
fn a_policy_wakes_the_open_incidents_of_its_namespace_that_follow_none() {
    let open = incident(None);
    assert!(wakes(&open, Some("shop"), Some("ops")));
    assert!(
        wakes(&open, Some("ops"), Some("ops")),
        "the operator's default serves everyone"
    );
    assert!(!wakes(&open, Some("ads"), Some("ops")));
    let mut climbing = open.clone();
    climbing.status = Some(crate::api::IncidentStatus {
        escalation: Some(crate::api::Escalation {
            state: crate::api::EscalationState::Climbing,
            ..Default::default()
        }),
        ..Default::default()
    });
    assert!(!wakes(&climbing, Some("shop"), Some("ops")));
}
