//! Unit tests of messages (core layer, tests): the seeds' three messages from the built-in
//! templates, a Channel's own templates, their checks, and the webhook body.

use std::{collections::BTreeMap, time::Duration};

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::json;

use super::*;

fn incident(status: serde_json::Value, resolution: serde_json::Value) -> Incident {
    serde_json::from_value(json!({
        "apiVersion": "incident.dev/v1alpha1", "kind": "Incident",
        "metadata": { "name": "checkout-down", "namespace": "shop", "uid": "u-1",
                      "creationTimestamp": "2026-11-30T07:00:00Z" },
        "spec": { "title": "Checkout returns 500", "severity": "P1", "commander": "ana",
                  "description": "Payments fail for every user",
                  "affected": [{ "kind": "Deployment", "name": "checkout" }],
                  "resolution": resolution },
        "status": status,
    }))
    .expect("an Incident")
}

fn notification(event: NotificationEvent, at: &str, summary: &str) -> Notification {
    Notification {
        key: "k-1".into(),
        channel: "shop/pages".into(),
        event,
        time: Time(at.parse::<Timestamp>().expect("time")),
        summary: summary.into(),
        actor: Some("bo".into()),
        recipient: None,
    }
}

const CLOCKS: Clocks = Clocks {
    update_interval: Some(Duration::from_secs(1800)),
    postmortem_due: Duration::from_secs(48 * 3600),
};

#[test]
fn the_opening_message_has_time_severity_status_description_and_the_update_promise() {
    let open = incident(json!({ "phase": "Detected" }), json!(null));
    let n = notification(
        NotificationEvent::Opened,
        "2026-11-30T07:00:41Z",
        "P1 incident opened",
    );
    let text = render(&BTreeMap::new(), n.event, &context(&open, &n, CLOCKS)).text;
    for part in [
        "Incident opened: Checkout returns 500",
        "Time: 2026-11-30 07:00 UTC",
        "Severity: P1",
        "Status: investigating",
        "Payments fail for every user",
        "updates will follow at least every 30m",
        "kubectl incident show checkout-down -n shop",
    ] {
        assert!(text.contains(part), "{part:?} missing from:\n{text}");
    }
}

#[test]
fn the_update_message_has_time_status_what_is_known_and_the_next_update() {
    let mut open = incident(
        json!({ "phase": "Acknowledged", "lastUpdateTime": "2026-11-30T07:20:00Z",
                "nextUpdateTime": "2026-11-30T08:05:00Z" }),
        json!(null),
    );
    open.spec.updates.push(crate::api::StatusUpdate {
        author: "bo".into(),
        text: "A bad config push; rolling it back".into(),
        status: Some(crate::api::ResponseStatus::Identified),
        next_update_in: Some("45m".into()),
    });
    let n = notification(
        NotificationEvent::Update,
        "2026-11-30T07:20:00Z",
        "A bad config push; rolling it back",
    );
    let text = render(&BTreeMap::new(), n.event, &context(&open, &n, CLOCKS)).text;
    for part in [
        "Update: Checkout returns 500",
        "Time: 2026-11-30 07:20 UTC",
        "Status: identified",
        "A bad config push; rolling it back",
        "Next update by 2026-11-30 08:05 UTC",
        "Posted by bo",
    ] {
        assert!(text.contains(part), "{part:?} missing from:\n{text}");
    }

    // Without a promise, the next update is an interval after the last one; once resolved, none.
    let mut plain = open.clone();
    if let Some(status) = plain.status.as_mut() {
        status.next_update_time = None;
    }
    let text = render(&BTreeMap::new(), n.event, &context(&plain, &n, CLOCKS)).text;
    assert!(
        text.contains("Next update by 2026-11-30 07:50 UTC"),
        "{text}"
    );
    let resolved = incident(
        json!({ "phase": "Resolved", "metrics": { "resolvedAt": "2026-11-30T07:30:00Z" } }),
        json!({ "summary": "Rolled back", "by": "ana" }),
    );
    let ctx = context(&resolved, &n, CLOCKS);
    assert_eq!(
        (ctx.status.as_str(), ctx.next_update_at),
        ("resolved", None)
    );
}

#[test]
fn the_resolution_message_has_duration_impact_fix_and_the_postmortem_promise() {
    let resolved = incident(
        json!({ "phase": "Resolved", "metrics": {
            "detectedAt": "2026-11-30T07:00:00Z", "resolvedAt": "2026-11-30T07:42:05Z" } }),
        json!({ "summary": "Rolled back to revision 3", "rootCause": "a bad image", "by": "ana" }),
    );
    let n = notification(
        NotificationEvent::Resolved,
        "2026-11-30T07:42:05Z",
        "Resolved by ana",
    );
    let text = render(&BTreeMap::new(), n.event, &context(&resolved, &n, CLOCKS)).text;
    for part in [
        "Incident resolved: Checkout returns 500",
        "Time: 2026-11-30 07:42 UTC",
        "Duration: 42m 5s",
        "Impact: Payments fail for every user",
        "What fixed it: Rolled back to revision 3",
        "Root cause: a bad image",
        "A post-mortem follows within 48h.",
    ] {
        assert!(text.contains(part), "{part:?} missing from:\n{text}");
    }
}

#[test]
fn every_event_renders_its_built_in_message() {
    let open = incident(json!({ "phase": "Mitigating" }), json!(null));
    for event in NotificationEvent::ALL {
        let n = notification(event, "2026-11-30T07:10:00Z", "what the timeline says");
        let rendered = render(&BTreeMap::new(), event, &context(&open, &n, CLOCKS));
        assert_eq!(rendered.template_error, None, "{event}");
        assert!(
            rendered.text.contains("Checkout returns 500"),
            "{event}: {}",
            rendered.text
        );
        assert!(!rendered.text.contains("{{"), "{event}: {}", rendered.text);
    }
}

#[test]
fn a_channels_template_wins_and_a_broken_one_falls_back_whole() {
    let open = incident(json!({ "phase": "Detected" }), json!(null));
    let n = notification(NotificationEvent::Opened, "2026-11-30T07:00:00Z", "opened");
    let ctx = context(&open, &n, CLOCKS);
    let own = BTreeMap::from([(
        "Opened".to_owned(),
        "[{{ severity }}] {{ title | upper }}".to_owned(),
    )]);
    let rendered = render(&own, NotificationEvent::Opened, &ctx);
    assert_eq!(rendered.text, "[P1] CHECKOUT RETURNS 500");
    let broken = BTreeMap::from([(
        "Opened".to_owned(),
        "ok\n{{ title | no_such_filter }}".to_owned(),
    )]);
    let rendered = render(&broken, NotificationEvent::Opened, &ctx);
    assert!(
        rendered.text.starts_with("🚨 Incident opened"),
        "{}",
        rendered.text
    );
    let error = rendered.template_error.expect("the error is reported");
    assert!(error.contains("template Opened (line 2)"), "{error}");
}

#[test]
fn templates_are_checked_before_use_naming_the_event_and_line() {
    assert_eq!(check(&BTreeMap::new()), Ok(()));
    let good = BTreeMap::from([(
        "Resolved".to_owned(),
        "done after {{ duration }}".to_owned(),
    )]);
    assert_eq!(check(&good), Ok(()));
    let unclosed = BTreeMap::from([("Resolved".to_owned(), "a\nb\n{% if fix %}fixed".to_owned())]);
    let error = check(&unclosed).expect_err("an unclosed block");
    assert!(error.starts_with("template Resolved (line"), "{error}");
    let unknown = BTreeMap::from([("Pinged".to_owned(), "x".to_owned())]);
    assert_eq!(
        check(&unknown),
        Err("templates.Pinged: not an event".to_owned())
    );
}

#[test]
fn the_webhook_body_carries_the_key_event_text_and_incident() {
    let open = incident(
        json!({ "phase": "Acknowledged", "metrics": { "detectedAt": "2026-11-30T07:00:00Z",
            "acknowledgedAt": "2026-11-30T07:03:00Z" },
            "sla": { "respondBy": "2026-11-30T08:00:00Z", "breached": false } }),
        json!(null),
    );
    let n = notification(
        NotificationEvent::Acknowledged,
        "2026-11-30T07:03:00Z",
        "Acknowledged by bo",
    );
    let ctx = context(&open, &n, CLOCKS);
    let body = webhook_body(&open, &n, &ctx, "the text");
    assert_eq!(body["version"], "1");
    assert_eq!(body["id"], "k-1");
    assert_eq!(body["event"], "Acknowledged");
    assert_eq!(body["time"], "2026-11-30T07:03:00Z");
    assert_eq!(body["text"], "the text");
    assert_eq!(body["incident"]["name"], "checkout-down");
    assert_eq!(body["incident"]["severity"], "P1");
    assert_eq!(body["incident"]["status"], "investigating");
    assert_eq!(body["incident"]["acknowledgedAt"], "2026-11-30T07:03:00Z");
    assert_eq!(body["incident"]["respondBy"], "2026-11-30T08:00:00Z");
    assert_eq!(
        body["incident"]["affected"],
        json!([{ "kind": "Deployment", "name": "checkout" }])
    );
    assert_eq!(
        body["entry"],
        json!({ "summary": "Acknowledged by bo", "actor": "bo" })
    );
}
