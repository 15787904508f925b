//! Unit tests of the Events API v2 shape (core layer, tests): an event read as an alert, checked.

use serde_json::json;

use super::*;
use crate::core::detection::alerts::{AlertSettings, check, group};

fn event(action: &str, extra: Value) -> Event {
    let mut body = json!({
        "routing_key": "R0ut1ng", "event_action": action, "dedup_key": "disk-db-1",
        "payload": { "summary": "disk 95% full on db-1", "source": "db-1", "severity": "warning",
                     "component": "postgres", "class": "DiskFull",
                     "custom_details": { "free": "2GiB" } },
        "client": "Uptime Kuma", "client_url": "https://kuma.example/d/1",
        "links": [{ "href": "https://runbooks.example/disk", "text": "runbook" }],
    });
    if let (Some(base), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            base.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(body).expect("an event")
}

fn now() -> Timestamp {
    "2026-11-30T10:00:00Z".parse().expect("time")
}

#[test]
fn a_trigger_is_a_firing_alert_grouped_by_its_dedup_key() {
    let Ok(Request::Alert(message)) = read(&event("trigger", json!({})), now()) else {
        panic!("a trigger is an alert");
    };
    let heard = check(&message, &AlertSettings::default()).expect("valid as an alert");
    let signal = &heard[0].signal;
    assert_eq!(signal.name, "DiskFull");
    assert_eq!(signal.summary.as_deref(), Some("disk 95% full on db-1"));
    assert_eq!(
        signal.runbook_url.as_deref(),
        Some("https://runbooks.example/disk")
    );
    assert_eq!(heard[0].severity_word.as_deref(), Some("warning"));
    let Ok(Request::Alert(resolve)) = read(&event("resolve", json!({ "payload": null })), now())
    else {
        panic!("a resolve is an alert");
    };
    let settings = AlertSettings::default();
    let (opened, closing) = (
        group(&message, &settings, None),
        group(&resolve, &settings, None),
    );
    assert_eq!(
        (opened.selector(), opened.namespace),
        (closing.selector(), closing.namespace),
        "one key, one group"
    );
    let resolved = check(&resolve, &settings).expect("valid");
    assert_eq!(resolved[0].signal.fingerprint, signal.fingerprint);
    assert_eq!(resolved[0].signal.state, crate::api::AlertState::Resolved);
}

#[test]
fn bad_events_are_refused_with_the_reason() {
    let refused = |extra: Value| read(&event("trigger", extra), now()).unwrap_err();
    assert!(refused(json!({ "event_action": "snooze" })).contains("event_action"));
    assert!(refused(json!({ "payload": null })).contains("payload is required"));
    let bad = json!({ "payload": { "summary": "x", "source": "y", "severity": "urgent" } });
    assert!(refused(bad).contains("payload.severity"));
    let blank = json!({ "payload": { "summary": " ", "source": "y", "severity": "info" } });
    assert!(refused(blank).contains("must not be empty"));
    let no_key = read(
        &event("resolve", json!({ "dedup_key": null, "payload": null })),
        now(),
    );
    assert!(no_key.unwrap_err().contains("dedup_key is required"));
}

#[test]
fn a_trigger_without_a_key_gets_a_stable_one_and_an_acknowledge_names_the_client() {
    let first = event("trigger", json!({ "dedup_key": null }));
    assert_eq!(dedup_key(&first), dedup_key(&first.clone()));
    assert!(dedup_key(&first).is_some());
    match read(&event("acknowledge", json!({ "payload": null })), now()) {
        Ok(Request::Acknowledge { by, .. }) => assert_eq!(by, "Uptime Kuma"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_repeated_trigger_without_a_timestamp_changes_nothing() {
    use crate::core::detection::alerts::{Plan, merge, plan};
    let settings = AlertSettings::default();
    let read_at = |at: &str| match read(&event("trigger", json!({})), at.parse().expect("time")) {
        Ok(Request::Alert(message)) => message,
        other => panic!("{other:?}"),
    };
    let first = read_at("2026-11-30T10:00:00Z");
    let heard = check(&first, &settings).expect("valid");
    let known = merge(&[], &heard);
    let again = read_at("2026-11-30T10:05:00Z");
    let heard_again = check(&again, &settings).expect("valid");
    assert_eq!(merge(&known, &heard_again), known, "the same firing");
    let g = group(&again, &settings, None);
    let incident: crate::api::Incident = serde_json::from_value(json!({
        "apiVersion": "incident.dev/v1alpha1", "kind": "Incident",
        "metadata": { "name": "i", "labels": { "incident.dev/source": "alertmanager" } },
        "spec": { "title": "t", "severity": "P2", "alerts": known },
    }))
    .expect("incident");
    assert_eq!(
        plan(&again, &heard_again, &g, &[incident], &settings, now()),
        Plan::Nothing
    );
}
