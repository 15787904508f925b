//! PagerDuty channels end to end: a receiver answering like the Events API v2 on 127.0.0.1 gets one
//! alert per incident — triggered, acknowledged and resolved under the incident's uid — and its
//! refusals are reported with PagerDuty's own message.

use incident_operator::api::Channel;
use kube::{Api, ResourceExt, api::PostParams};
use serde_json::{Value, json};

use crate::{
    lifecycle::setup,
    notifications::{
        DELIVERY, acknowledge, await_condition, failed_delivery, open, put_secret, resolve,
    },
    receiver::Receiver,
    support::{Operator, wait_for},
};

/// A 32-character routing key, as PagerDuty issues them.
const ROUTING_KEY: &str = "R0ut1ngK3yF0rTh3E2eT3sts00000001";

async fn oncall_channel(client: &kube::Client, ns: &str, url: &str) {
    put_secret(client, ns, "pagerduty", &[("routingKey", ROUTING_KEY)]).await;
    let channel: Channel = serde_json::from_value(json!({
        "apiVersion": "incident.dev/v1alpha1", "kind": "Channel",
        "metadata": { "name": "oncall" },
        "spec": {
            "pagerduty": { "routingKey": { "name": "pagerduty", "key": "routingKey" }, "url": url },
            "route": { "severities": ["P0"] },
        },
    }))
    .expect("a Channel");
    Api::<Channel>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &channel)
        .await
        .expect("create Channel");
}

fn actions(received: &[Value]) -> Vec<String> {
    received
        .iter()
        .filter(|r| r["answered"] == 202)
        .map(|r| {
            r["body"]["event_action"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn a_p0_pages_as_one_pagerduty_alert_triggered_acknowledged_and_resolved() {
    let (client, ns, api) = setup("notify-pagerduty").await;
    let pagerduty = Receiver::pagerduty().await;
    oncall_channel(&client, &ns.name, &pagerduty.events_url()).await;
    let operator = Operator::start(&ns.name, &[]).await;
    await_condition(&client, &ns.name, "oncall", "Ready", "True").await;

    open(&api, "payments-down", "P0").await;
    open(&api, "docs-typo", "P2").await;
    let received = pagerduty
        .wait_for("the trigger", DELIVERY, |r| actions(r) == ["trigger"])
        .await;
    let trigger = &received[0]["body"];
    let uid = api
        .get("payments-down")
        .await
        .expect("incident")
        .uid()
        .expect("uid");
    assert_eq!(trigger["routing_key"], ROUTING_KEY);
    assert_eq!(trigger["dedup_key"], uid.as_str());
    assert_eq!(trigger["payload"]["severity"], "critical");
    assert_eq!(
        trigger["payload"]["source"],
        format!("{}/payments-down", ns.name)
    );
    let summary = trigger["payload"]["summary"].as_str().unwrap_or_default();
    assert!(
        summary.starts_with("[P0]") && summary.contains("payments-down is failing"),
        "{summary}"
    );
    assert!(summary.chars().count() <= 1024);
    assert!(
        received[0]["signature"].is_null(),
        "PagerDuty events are not signed"
    );

    acknowledge(&api, "payments-down").await;
    resolve(&api, "payments-down").await;
    let received = pagerduty
        .wait_for("acknowledge and resolve", DELIVERY, |r| {
            actions(r) == ["trigger", "acknowledge", "resolve"]
        })
        .await;
    assert!(
        received
            .iter()
            .all(|r| r["body"]["dedup_key"] == uid.as_str()),
        "one alert for the incident"
    );
    assert!(
        received[1]["body"].get("payload").is_none(),
        "acknowledge carries only the keys"
    );
    assert_eq!(received.len(), 3, "the P2 incident paged no one");
    operator
        .await_metric(
            "incident_operator_notification_deliveries_total{channel_type=\"pagerduty\",event=\"Opened\",result=\"sent\"}",
            |v| v == Some(1.0),
        )
        .await;
    operator.stop().await;
}

#[tokio::test]
async fn pagerdutys_refusal_is_reported_with_its_own_message_and_rate_limits_are_retried() {
    let (client, ns, api) = setup("notify-pd-refused").await;
    let pagerduty = Receiver::pagerduty().await;
    oncall_channel(&client, &ns.name, &pagerduty.events_url()).await;
    let operator = Operator::start(&ns.name, &[]).await;
    await_condition(&client, &ns.name, "oncall", "Ready", "True").await;
    let invalid = json!({ "status": "invalid event", "message": "Event object is invalid",
                          "errors": ["'payload.summary' is missing or blank"] });
    pagerduty
        .script(json!([
            { "status": 429, "body": "{\"message\":\"Too many requests\"}" },
            { "status": 400, "body": invalid.to_string() },
        ]))
        .await;
    open(&api, "api-down", "P0").await;
    let record = &failed_delivery(&api, "api-down").await;
    assert_eq!(record.attempts, 2, "the 429 was retried, the 400 was not");
    assert_eq!(
        record.last_error.as_deref(),
        Some(
            "the receiver answered 400: Event object is invalid: 'payload.summary' is missing or blank"
        )
    );
    // The channel says why, once the refusal (not the rate limit before it) is the last word.
    let channels: Api<Channel> = Api::namespaced(client.clone(), &ns.name);
    wait_for(
        &channels,
        "oncall",
        "Delivering=False with PagerDuty's message",
        DELIVERY,
        |c| {
            c.and_then(|c| c.status.as_ref()).is_some_and(|s| {
                s.failed == 1
                    && s.conditions.iter().any(|c| {
                        c.type_ == "Delivering"
                            && c.status == "False"
                            && c.message.contains("Event object is invalid")
                    })
            })
        },
    )
    .await;
    let received = pagerduty.received().await;
    assert_eq!(received.len(), 2);
    assert_eq!(
        received[0]["body"], received[1]["body"],
        "the retry sent the same event"
    );
    operator.stop().await;
}
