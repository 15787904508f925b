//! Unit tests of Slack messages (core layer, tests).

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::*;
use crate::{
    api::{Incident, Notification},
    core::notify::message::{Clocks, context},
};

fn ctx(phase: &str, resolution: Value) -> Context {
    let incident: Incident = serde_json::from_value(json!({
        "apiVersion": "incident.dev/v1alpha1", "kind": "Incident",
        "metadata": { "name": "cart-down", "namespace": "shop", "creationTimestamp": "2026-11-30T07:00:00Z" },
        "spec": { "title": "Cart is empty for everyone", "severity": "P0", "commander": "ana",
                  "resolution": resolution },
        "status": { "phase": phase, "metrics": { "detectedAt": "2026-11-30T07:00:00Z" } },
    }))
    .expect("an Incident");
    let message = Notification {
        key: "k".into(),
        channel: "shop/war-room".into(),
        event: NotificationEvent::Opened,
        time: Time("2026-11-30T07:12:00Z".parse::<Timestamp>().expect("time")),
        summary: "opened".into(),
        actor: None,
        recipient: None,
    };
    context(
        &incident,
        &message,
        Clocks {
            update_interval: Some(Duration::from_secs(1800)),
            postmortem_due: Duration::from_secs(48 * 3600),
        },
    )
}

#[test]
fn the_severitys_mention_goes_on_the_events_that_ask_for_people() {
    let mentions = BTreeMap::from([("P0".to_owned(), "<!here>".to_owned())]);
    let open = ctx("Detected", Value::Null);
    assert_eq!(
        text(&mentions, NotificationEvent::Opened, &open, "opened"),
        "<!here> opened"
    );
    assert_eq!(
        text(&mentions, NotificationEvent::Escalated, &open, "late"),
        "<!here> late"
    );
    assert_eq!(
        text(&mentions, NotificationEvent::Resolved, &open, "done"),
        "done"
    );
    assert_eq!(
        text(&BTreeMap::new(), NotificationEvent::Opened, &open, "opened"),
        "opened"
    );
}

#[test]
fn the_incidents_message_shows_its_state_and_turns_green_when_resolved() {
    let open = ctx("Detected", Value::Null);
    assert_eq!(color(&open), "#a30200");
    assert!(state_text(&open).starts_with("🚨 [P0] Cart is empty for everyone — investigating"));
    assert_eq!(color(&ctx("Acknowledged", Value::Null)), "#daa038");
    let resolved = ctx(
        "Resolved",
        json!({ "summary": "restarted the cache", "by": "ana" }),
    );
    assert_eq!(color(&resolved), "#2eb886");
    let state = state_text(&resolved);
    assert!(
        state.starts_with("✅ [P0] Cart is empty for everyone — resolved"),
        "{state}"
    );
    assert!(state.contains("Fixed: restarted the cache"), "{state}");
    let update = update_body("C123", "1700000000.000100", &resolved);
    assert_eq!(update["ts"], "1700000000.000100");
    assert_eq!(update["attachments"][0]["color"], "#2eb886");
}

#[test]
fn bodies_carry_text_blocks_and_the_thread() {
    let open = ctx("Detected", Value::Null);
    let hook = webhook_body("hello", &open);
    assert_eq!(hook["text"], "hello");
    assert_eq!(hook["blocks"][0]["text"]["text"], "hello");
    assert_eq!(
        hook["blocks"][1]["elements"][0]["text"],
        "shop/cart-down · P0 · investigating"
    );
    let reply = reply_body("C123", "1.2", "ack", &open);
    assert_eq!(
        (reply["channel"].as_str(), reply["thread_ts"].as_str()),
        (Some("C123"), Some("1.2"))
    );
    let post = post_body("#incidents", &"x".repeat(5000), &open);
    let section = post["attachments"][0]["blocks"][0]["text"]["text"]
        .as_str()
        .unwrap_or_default();
    assert_eq!(section.chars().count(), 3000, "Slack's section limit");
    assert!(retryable("internal_error") && !retryable("channel_not_found"));
}
