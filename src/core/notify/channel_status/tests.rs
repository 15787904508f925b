//! Unit tests of a Channel's own status (core layer, tests).

use serde_json::{Value, json};

use super::*;

fn at(second: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + second).expect("time")
}

fn channel(namespace: &str, spec: Value) -> Channel {
    let mut body = json!({ "webhook": { "url": { "name": "hook", "key": "url" } } });
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), spec) {
        body.extend(extra);
    }
    serde_json::from_value(json!({
        "apiVersion": "incident.dev/v1alpha1", "kind": "Channel",
        "metadata": { "name": "pages", "namespace": namespace, "generation": 2 },
        "spec": body,
    }))
    .expect("a Channel")
}

fn incident(name: &str, outbox: Value, deliveries: Value) -> Incident {
    serde_json::from_value(json!({
        "apiVersion": "incident.dev/v1alpha1", "kind": "Incident",
        "metadata": { "name": name, "namespace": "shop" },
        "spec": { "title": "t", "severity": "P1" },
        "status": { "notifications": outbox, "deliveries": deliveries },
    }))
    .expect("an Incident")
}

fn message(key: &str, channel: &str, event: &str) -> Value {
    json!({ "key": key, "channel": channel, "event": event,
            "time": at(0).to_string(), "summary": "s" })
}

fn record(key: &str, state: &str, attempt: i64, error: Option<&str>) -> Value {
    json!({ "key": key, "state": state, "attempts": 1,
            "lastAttemptAt": at(attempt).to_string(), "lastError": error })
}

fn get<'a>(status: &'a ChannelStatus, type_: &str) -> &'a Condition {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .expect("condition")
}

#[test]
fn counts_and_the_last_attempt_come_from_the_outboxes() {
    let pages = channel("shop", json!({}));
    let first = incident(
        "a",
        json!([
            message("k1", "shop/pages", "Opened"),
            message("k2", "shop/other", "Opened")
        ]),
        json!([
            record("k1", "Sent", 10, None),
            record("k2", "Failed", 50, Some("boom"))
        ]),
    );
    let second = incident(
        "b",
        json!([
            message("k3", "shop/pages", "Opened"),
            message("k4", "shop/pages", "Resolved")
        ]),
        json!([
            record(
                "k3",
                "Failed",
                20,
                Some("the receiver answered 404: no_service")
            ),
            record("k4", "Pending", 30, Some("the receiver answered 503"))
        ]),
    );
    let stats = stats(&pages, &[&first, &second]);
    assert_eq!(
        (stats.sent, stats.failed),
        (1, 1),
        "only this channel's messages count"
    );
    let last = stats.last.clone().expect("a last attempt");
    assert_eq!(last.incident, "shop/b");
    assert_eq!(last.result, "Retrying");
    assert_eq!(last.message.as_deref(), Some("the receiver answered 503"));
    assert!(stats.failing);
    let status = desired_status(&pages, None, stats, None, at(40));
    let delivering = get(&status, DELIVERING);
    assert_eq!(
        (delivering.status.as_str(), delivering.reason.as_str()),
        ("False", "ReceiverFailing")
    );
    assert_eq!(status.sent, 1);
}

#[test]
fn a_valid_channel_is_ready_and_a_broken_template_or_secret_stalls_it() {
    let valid = desired_status(
        &channel("shop", json!({})),
        None,
        Stats::default(),
        None,
        at(0),
    );
    assert_eq!(get(&valid, READY).status, "True");
    assert_eq!(get(&valid, STALLED).status, "False");
    assert_eq!(get(&valid, DELIVERING).reason, "NoMessagesYet");
    assert_eq!(valid.observed_generation, Some(2));

    let broken = channel(
        "shop",
        json!({ "templates": { "Opened": "{% if x %}never closed" } }),
    );
    let status = desired_status(&broken, None, Stats::default(), None, at(0));
    let ready = get(&status, READY);
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "InvalidTemplate")
    );
    assert!(
        ready.message.contains("template Opened (line 1)"),
        "{}",
        ready.message
    );
    assert_eq!(get(&status, STALLED).status, "True");

    let missing = Some((
        "SecretNotFound",
        "Secret hook not found or not readable".to_owned(),
    ));
    let status = desired_status(
        &channel("shop", json!({})),
        missing,
        Stats::default(),
        None,
        at(0),
    );
    assert_eq!(get(&status, READY).reason, "SecretNotFound");
}

#[test]
fn all_namespaces_outside_the_operators_namespace_is_said_to_be_ignored() {
    let everywhere = channel("shop", json!({ "route": { "allNamespaces": true } }));
    let status = desired_status(&everywhere, None, Stats::default(), Some("ops"), at(0));
    assert!(
        get(&status, READY)
            .message
            .contains("honoured only in the operator's namespace (ops)")
    );
    let platform = channel("ops", json!({ "route": { "allNamespaces": true } }));
    let status = desired_status(&platform, None, Stats::default(), Some("ops"), at(0));
    assert!(!get(&status, READY).message.contains("honoured only"));
}

#[test]
fn transition_times_hold_while_a_condition_holds_and_flips_are_one_event_each() {
    let mut pages = channel("shop", json!({}));
    let first = desired_status(&pages, None, Stats::default(), None, at(0));
    let flip = readiness_flip(None, &first, at(0)).expect("the first verdict");
    assert_eq!((flip.reason, flip.warning), ("Ready", false));
    pages.status = Some(first.clone());
    let again = desired_status(&pages, None, Stats::default(), None, at(60));
    assert_eq!(again, first, "nothing happened, nothing changes");
    assert_eq!(readiness_flip(Some(&first), &again, at(60)), None);
    let missing = Some((
        "SecretNotFound",
        "Secret hook not found or not readable".to_owned(),
    ));
    let down = desired_status(&pages, missing, Stats::default(), None, at(90));
    assert_eq!(get(&down, READY).last_transition_time, Time(at(90)));
    let flip = readiness_flip(Some(&first), &down, at(90)).expect("a flip");
    assert_eq!((flip.reason, flip.warning), ("NotReady", true));
}
