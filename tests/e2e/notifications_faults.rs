//! Notifications under faults: a receiver that fails and recovers, one that refuses, one that
//! hangs while another channel goes on, and the operator killed between sending a message and
//! recording it.

use std::time::Duration;

use incident_operator::api::{Channel, DeliveryState};
use k8s_openapi::api::events::v1::Event;
use kube::{Api, api::ListParams};
use serde_json::json;

use crate::{
    notifications::{
        DELIVERY, acknowledge, await_condition, channel, failed_delivery, open, pages_setup,
        reason_of, resolve, secret,
    },
    receiver::{Receiver, delivered, events},
    support::{Operator, wait_for},
};

#[tokio::test]
async fn a_receiver_down_then_up_gets_every_message_in_order_under_the_same_keys() {
    let (_client, ns, api, receiver, operator) = pages_setup("notify-outage", &[]).await;
    // Down: "slow down" with a Retry-After longer than the first backoff, three server errors, up.
    receiver
        .script(
            json!([{ "status": 429, "retryAfter": 3 }, { "status": 500 },
                        { "status": 503 }, { "status": 500 }]),
        )
        .await;
    open(&api, "cart-down", "P0").await;
    acknowledge(&api, "cart-down").await;
    resolve(&api, "cart-down").await;
    let received = receiver
        .wait_for("every message, once the receiver is up", DELIVERY, |r| {
            events(r) == ["Opened", "Acknowledged", "Resolved"]
        })
        .await;
    // The first message was tried five times under one key; nothing overtook it.
    let failed: Vec<&serde_json::Value> =
        received.iter().filter(|r| r["answered"] != 200).collect();
    assert_eq!(failed.len(), 4, "{received:?}");
    let opened_id = delivered(&received)[0].1.clone();
    assert!(
        failed.iter().all(|r| r["id"] == opened_id.as_str()),
        "retries resend the same key"
    );
    assert!(
        failed.iter().all(|r| r["body"]["event"] == "Opened"),
        "later messages waited behind it"
    );
    assert!(
        received.iter().all(|r| r["verified"] == true),
        "every attempt is signed"
    );
    // Retry-After was honoured: the first retry came at least 3 s after the 429 (its own backoff
    // would have been 0.5-1.5 s).
    let gap = received[1]["receivedAt"].as_f64().unwrap_or_default()
        - received[0]["receivedAt"].as_f64().unwrap_or_default();
    assert_eq!(received[0]["answered"], 429);
    assert!(gap >= 2.9, "retried {gap}s after Retry-After: 3");
    // The record of a send trails the receiver by one status write.
    let stored = wait_for(
        &api,
        "cart-down",
        "every delivery recorded",
        DELIVERY,
        |i| {
            i.and_then(|i| i.status.as_ref()).is_some_and(|s| {
                s.deliveries.len() == 3
                    && s.deliveries.iter().all(|d| d.state == DeliveryState::Sent)
            })
        },
    )
    .await
    .expect("incident");
    let status = stored.status.expect("status");
    assert_eq!(status.notifications.len(), 3);
    let opened = status
        .deliveries
        .iter()
        .find(|d| d.key == opened_id)
        .expect("the opening message's record");
    assert_eq!(opened.attempts, 5);
    operator
        .await_metric(
            "incident_operator_notification_deliveries_total{channel_type=\"webhook\",event=\"Opened\",result=\"retry\"}",
            |v| v == Some(4.0),
        )
        .await;
    operator.stop().await;
    drop(ns);
}

#[tokio::test]
async fn a_kill_after_sending_resends_the_message_under_the_same_key_and_then_never_again() {
    let (_client, ns, api, receiver, operator) = pages_setup(
        "notify-kill",
        &[("INCIDENT_OPERATOR_FAILPOINT", "after-send")],
    )
    .await;
    open(&api, "api-down", "P1").await;
    receiver
        .wait_for("the first send", DELIVERY, |r| events(r) == ["Opened"])
        .await;
    assert!(
        operator.exits_abnormally(Duration::from_secs(30)).await,
        "the operator aborted after sending, before recording it"
    );
    let stored = api.get("api-down").await.expect("incident");
    assert!(
        stored
            .status
            .as_ref()
            .is_some_and(|s| s.deliveries.is_empty()),
        "the send was not recorded"
    );
    let operator = Operator::start(&ns.name, &[]).await;
    let received = receiver
        .wait_for("the resend", DELIVERY, |r| r.len() == 2)
        .await;
    assert_eq!(
        received[0]["id"], received[1]["id"],
        "the resend carries the same key"
    );
    assert_eq!(received[1]["verified"], true);
    wait_for(&api, "api-down", "the delivery recorded", DELIVERY, |i| {
        i.and_then(|i| i.status.as_ref())
            .is_some_and(|s| s.deliveries.iter().any(|d| d.state == DeliveryState::Sent))
    })
    .await;
    // Recorded: the next transition's message follows and the first is not sent a third time.
    acknowledge(&api, "api-down").await;
    let received = receiver
        .wait_for("the acknowledgment", DELIVERY, |r| r.len() == 3)
        .await;
    assert_eq!(received[2]["body"]["event"], "Acknowledged");
    operator.stop().await;
}

#[tokio::test]
async fn a_refused_message_is_given_up_with_the_receivers_reason() {
    let (client, ns, api, receiver, operator) = pages_setup("notify-refused", &[]).await;
    receiver
        .script(json!([{ "status": 400, "body": "invalid_payload" }]))
        .await;
    open(&api, "db-down", "P0").await;
    receiver
        .wait_for("the refused attempt", DELIVERY, |r| r.len() == 1)
        .await;
    let record = &failed_delivery(&api, "db-down").await;
    assert_eq!(record.attempts, 1, "a refusal is not retried");
    assert_eq!(
        record.last_error.as_deref(),
        Some("the receiver answered 400: invalid_payload")
    );
    let failing = await_condition(&client, &ns.name, "pages", "Delivering", "False").await;
    let (reason, message) = reason_of(&failing, "Delivering");
    assert_eq!(reason, "ReceiverFailing");
    assert!(message.contains("invalid_payload"), "{message}");
    assert_eq!(failing.status.as_ref().map(|s| s.failed), Some(1));
    // An Event on the incident says so too; and the metric counts it.
    let events_api: Api<Event> = Api::namespaced(client.clone(), &ns.name);
    let deadline = std::time::Instant::now() + DELIVERY;
    loop {
        let listed = events_api
            .list(&ListParams::default())
            .await
            .expect("events");
        if listed.items.iter().any(|e| {
            e.reason.as_deref() == Some("NotificationFailed")
                && e.note
                    .as_deref()
                    .is_some_and(|n| n.contains("invalid_payload"))
        }) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no NotificationFailed Event"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    operator
        .await_metric(
            "incident_operator_notification_deliveries_total{channel_type=\"webhook\",event=\"Opened\",result=\"failed\"}",
            |v| v == Some(1.0),
        )
        .await;
    // The next message still goes out: one refusal does not block the channel.
    acknowledge(&api, "db-down").await;
    receiver
        .wait_for("the acknowledgment", DELIVERY, |r| {
            events(r) == ["Acknowledged"]
        })
        .await;
    let channels: Api<Channel> = Api::namespaced(client.clone(), &ns.name);
    wait_for(&channels, "pages", "delivering again", DELIVERY, |c| {
        c.and_then(|c| c.status.as_ref()).is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Delivering" && c.status == "True")
        })
    })
    .await;
    operator.stop().await;
}

#[tokio::test]
async fn a_hanging_receiver_never_holds_up_another_channel() {
    let (client, ns, api, fast, operator) = pages_setup("notify-hang", &[]).await;
    let slow = Receiver::start(None).await;
    secret(&client, &ns.name, "slow-hook", &slow.url(), None).await;
    // Every answer hangs longer than the operator's 10 s request timeout.
    slow.script(json!([{ "hang": 30 }, { "hang": 30 }, { "hang": 30 }]))
        .await;
    channel(
        &client,
        &ns.name,
        "slow",
        "slow-hook",
        false,
        json!({ "severities": ["P1"] }),
    )
    .await;
    await_condition(&client, &ns.name, "slow", "Ready", "True").await;

    // Each event only after the previous one arrived: a channel held up behind the hanging one
    // would get its next message only once that request timed out.
    open(&api, "api-slow", "P1").await;
    fast.wait_for("the opening", DELIVERY, |r| events(r) == ["Opened"])
        .await;
    acknowledge(&api, "api-slow").await;
    fast.wait_for("the acknowledgment", DELIVERY, |r| {
        events(r) == ["Opened", "Acknowledged"]
    })
    .await;
    resolve(&api, "api-slow").await;
    fast.wait_for("the resolution", DELIVERY, |r| {
        events(r) == ["Opened", "Acknowledged", "Resolved"]
    })
    .await;
    let incident = api.get("api-slow").await.expect("incident");
    let status = incident.status.expect("status");
    let slow_keys: Vec<&str> = status
        .notifications
        .iter()
        .filter(|n| n.channel.ends_with("/slow"))
        .map(|n| n.key.as_str())
        .collect();
    let slow_attempts: i32 = status
        .deliveries
        .iter()
        .filter(|d| slow_keys.contains(&d.key.as_str()))
        .map(|d| d.attempts)
        .sum();
    assert_eq!(
        slow_attempts, 0,
        "the slow channel's first request is still hanging: {:?}",
        status.deliveries
    );
    assert_eq!(slow.received().await.len(), 1, "one request, hanging");
    // And the slow channel gets there in the end, in order, once its receiver answers.
    let received = slow
        .wait_for(
            "every message at the slow receiver",
            Duration::from_secs(120),
            |r| events(r) == ["Opened", "Acknowledged", "Resolved"],
        )
        .await;
    assert!(received.iter().any(|r| r["answered"] == "hang"));
    operator.stop().await;
}
