//! Slack channels end to end, against a receiver on 127.0.0.1 that answers like Slack: an incoming
//! webhook gets each event as its own message with the severity's mention; a bot posts one message
//! per incident, keeps it current with `chat.update` (green once resolved) and replies in its
//! thread; Slack's `ok: false` refusals are reported with Slack's error word.

use incident_operator::api::{Channel, DeliveryState};
use kube::{Api, Client, api::PostParams};
use serde_json::{Value, json};

use crate::{
    lifecycle::setup,
    notifications::{
        DELIVERY, acknowledge, await_condition, failed_delivery, open, put_secret, reason_of,
        resolve,
    },
    receiver::Receiver,
    support::{Operator, wait_for},
};

const TOKEN: &str = "xoxb-e2e-0000000000-test-token";

async fn slack_channel(client: &Client, ns: &str, name: &str, secret: (&str, &str), slack: Value) {
    put_secret(client, ns, &format!("{name}-slack"), &[secret]).await;
    let channel: Channel = serde_json::from_value(json!({
        "apiVersion": "incident.dev/v1alpha1", "kind": "Channel",
        "metadata": { "name": name },
        "spec": { "slack": slack },
    }))
    .expect("a Channel");
    Api::<Channel>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &channel)
        .await
        .expect("create Channel");
}

/// A bot Channel `incidents` posting to `slack_channel` through `slack`, Ready, and the operator.
async fn bot(
    client: &Client,
    ns: &str,
    slack: &Receiver,
    slack_channel_name: &str,
    mentions: Value,
) -> Operator {
    slack_channel(
        client,
        ns,
        "incidents",
        ("token", TOKEN),
        json!({ "bot": { "token": { "name": "incidents-slack", "key": "token" },
                         "channel": slack_channel_name, "apiUrl": slack.slack_api_url() },
                "mentions": mentions }),
    )
    .await;
    let operator = Operator::start(ns, &[]).await;
    await_condition(client, ns, "incidents", "Ready", "True").await;
    operator
}

fn text(record: &Value) -> &str {
    record["body"]["text"].as_str().unwrap_or_default()
}

fn calls(received: &[Value], method: &str) -> Vec<Value> {
    received
        .iter()
        .filter(|r| r["method"] == method && r["reply"]["ok"] == true)
        .cloned()
        .collect()
}

#[tokio::test]
async fn an_incoming_webhook_gets_each_event_with_the_severitys_mention() {
    let (client, ns, api) = setup("notify-slack-hook").await;
    let slack = Receiver::slack(TOKEN).await;
    slack_channel(
        &client,
        &ns.name,
        "incidents",
        ("url", &slack.url()),
        json!({ "webhook": { "name": "incidents-slack", "key": "url" },
                "mentions": { "P0": "<!here>", "P1": "<!here>" } }),
    )
    .await;
    let _operator = Operator::start(&ns.name, &[]).await;
    await_condition(&client, &ns.name, "incidents", "Ready", "True").await;

    open(&api, "checkout-down", "P0").await;
    let received = slack
        .wait_for("the opening message", DELIVERY, |r| !r.is_empty())
        .await;
    let opened = &received[0];
    assert_eq!(opened["answered"], 200);
    assert!(
        text(opened).starts_with("<!here> ") && text(opened).contains("checkout-down is failing"),
        "{opened}"
    );
    let blocks = opened["body"]["blocks"]
        .as_array()
        .expect("Block Kit blocks");
    assert_eq!(blocks[0]["type"], "section");
    assert_eq!(blocks[0]["text"]["type"], "mrkdwn");

    open(&api, "docs-typo", "P2").await;
    acknowledge(&api, "checkout-down").await;
    let received = slack
        .wait_for("three messages", DELIVERY, |r| r.len() >= 3)
        .await;
    let p2 = received
        .iter()
        .find(|r| text(r).contains("docs-typo"))
        .expect("the P2's message");
    assert!(
        !text(p2).contains("<!here>"),
        "a P2 is posted quietly: {p2}"
    );
    let ack = received
        .iter()
        .find(|r| text(r).contains("checkout-down") && !text(r).starts_with("<!here>"))
        .expect("the acknowledgement, without a mention");
    assert!(text(ack).contains("bo"), "{ack}");
}

#[tokio::test]
async fn a_bot_keeps_one_message_per_incident_current_and_replies_in_its_thread() {
    let (client, ns, api) = setup("notify-slack-bot").await;
    let slack = Receiver::slack(TOKEN).await;
    let operator = bot(
        &client,
        &ns.name,
        &slack,
        "#incidents",
        json!({ "P1": "<!here>" }),
    )
    .await;

    open(&api, "search-slow", "P1").await;
    let received = slack
        .wait_for("the incident's message", DELIVERY, |r| {
            !calls(r, "chat.postMessage").is_empty()
        })
        .await;
    let root = &received[0];
    assert_eq!(root["authorized"], true, "the bot token as a bearer");
    assert!(root["body"].get("thread_ts").is_none());
    assert!(text(root).starts_with("<!here> "), "{root}");
    let ts = root["reply"]["ts"].as_str().expect("ts").to_owned();
    let stored = wait_for(&api, "search-slow", "the thread in status", DELIVERY, |i| {
        i.and_then(|i| i.status.as_ref())
            .is_some_and(|s| s.threads.iter().any(|t| t.ts == ts))
    })
    .await;
    let thread = &stored.and_then(|i| i.status).expect("status").threads[0];
    assert_eq!(thread.channel, format!("{}/incidents", ns.name));
    assert_eq!(thread.slack_channel, "C0INCIDENTS", "the id Slack answered");

    // A restart: the next events still find the message through the incident's status.
    operator.stop().await;
    let _operator = Operator::start(&ns.name, &[]).await;
    acknowledge(&api, "search-slow").await;
    let received = slack
        .wait_for("the acknowledgement", DELIVERY, |r| {
            !calls(r, "chat.update").is_empty() && calls(r, "chat.postMessage").len() >= 2
        })
        .await;
    let acknowledged = &calls(&received, "chat.update")[0];
    assert_eq!(acknowledged["body"]["ts"], ts.as_str());
    assert_eq!(
        acknowledged["body"]["attachments"][0]["color"], "#daa038",
        "taken, not yet fixed: {acknowledged}"
    );
    resolve(&api, "search-slow").await;
    let received = slack
        .wait_for("acknowledgement and resolution", DELIVERY, |r| {
            calls(r, "chat.update").len() >= 2 && calls(r, "chat.postMessage").len() >= 3
        })
        .await;
    let posts = calls(&received, "chat.postMessage");
    assert_eq!(
        posts
            .iter()
            .filter(|p| p["body"].get("thread_ts").is_none())
            .count(),
        1,
        "one message per incident: {posts:#?}"
    );
    for reply in &posts[1..] {
        assert_eq!(reply["body"]["thread_ts"], ts.as_str(), "{reply}");
        assert!(!text(reply).contains("<!here>"), "{reply}");
    }
    assert!(
        text(&posts[2]).to_lowercase().contains("resolved"),
        "{}",
        posts[2]
    );
    let updates = calls(&received, "chat.update");
    let last = updates.last().expect("an update");
    assert_eq!(last["body"]["ts"], ts.as_str());
    assert_eq!(last["body"]["channel"], "C0INCIDENTS");
    assert_eq!(last["body"]["attachments"][0]["color"], "#2eb886", "{last}");
    assert!(text(last).contains("resolved"), "{last}");
}

#[tokio::test]
async fn slacks_refusal_fails_the_message_with_slacks_reason() {
    let (client, ns, api) = setup("notify-slack-refused").await;
    let slack = Receiver::slack(TOKEN).await;
    let _operator = bot(&client, &ns.name, &slack, "#no-such-channel", json!({})).await;

    open(&api, "queue-stuck", "P2").await;
    let failed = &failed_delivery(&api, "queue-stuck").await;
    let error = failed.last_error.as_deref().unwrap_or_default();
    assert!(error.contains("channel_not_found"), "{error}");
    assert_eq!(failed.attempts, 1, "a refusal is not retried");
    assert!(!error.contains(TOKEN));
    let channel = await_condition(&client, &ns.name, "incidents", "Delivering", "False").await;
    let (_, message) = reason_of(&channel, "Delivering");
    assert!(message.contains("channel_not_found"), "{message}");
    assert_eq!(slack.received().await.len(), 1, "nothing retried");
}

#[tokio::test]
async fn a_deleted_incident_message_is_posted_again_and_its_new_reference_kept() {
    let (client, ns, api) = setup("notify-slack-deleted").await;
    let slack = Receiver::slack(TOKEN).await;
    let _operator = bot(&client, &ns.name, &slack, "C0INCIDENTS", json!({})).await;

    open(&api, "cache-cold", "P2").await;
    wait_for(&api, "cache-cold", "the thread in status", DELIVERY, |i| {
        i.and_then(|i| i.status.as_ref())
            .is_some_and(|s| !s.threads.is_empty())
    })
    .await;
    let gone = json!({ "ok": false, "error": "message_not_found" }).to_string();
    slack.script(json!([{ "status": 200, "body": gone }])).await;
    acknowledge(&api, "cache-cold").await;
    let received = slack
        .wait_for("a second root message", DELIVERY, |r| {
            calls(r, "chat.postMessage")
                .iter()
                .filter(|p| p["body"].get("thread_ts").is_none())
                .count()
                == 2
        })
        .await;
    let roots: Vec<_> = calls(&received, "chat.postMessage");
    let new_ts = roots[1]["reply"]["ts"].as_str().expect("ts").to_owned();
    assert!(text(&roots[1]).contains("cache-cold"), "{}", roots[1]);
    wait_for(&api, "cache-cold", "the new reference", DELIVERY, |i| {
        i.and_then(|i| i.status.as_ref())
            .is_some_and(|s| s.threads.len() == 1 && s.threads[0].ts == new_ts)
    })
    .await;
    let incident = api.get("cache-cold").await.expect("incident");
    let status = incident.status.expect("status");
    assert!(
        status
            .deliveries
            .iter()
            .all(|d| d.state == DeliveryState::Sent),
        "{:?}",
        status.deliveries
    );
}
