//! Notifications end to end: Channels on the real API server, the operator, and real webhook
//! receivers on 127.0.0.1 whose signatures the `standardwebhooks` package verifies. This file holds
//! the routing and message scenarios and the helpers `notifications_faults` shares.

use std::time::Duration;

use incident_operator::api::{Channel, DeliveryRecord, DeliveryState, Incident};
use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};

use crate::{
    lifecycle::{edit, incident, setup},
    receiver::{Receiver, SECRET, delivered, events},
    support::{Operator, TestNamespace, wait_for},
};

/// Long enough for a delivery through retries on the shared machine.
pub const DELIVERY: Duration = Duration::from_secs(60);

/// A Secret named `name` holding `data` (key, value).
pub async fn put_secret(client: &Client, ns: &str, name: &str, data: &[(&str, &str)]) {
    let data = data
        .iter()
        .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
        .collect();
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some(data),
        ..Secret::default()
    };
    Api::<Secret>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &secret)
        .await
        .expect("create Secret");
}

/// A Secret holding a receiver's URL (`url`) and, when given, the signing key (`key`).
pub async fn secret(client: &Client, ns: &str, name: &str, url: &str, key: Option<&str>) {
    let mut data = vec![("url", url)];
    data.extend(key.map(|k| ("key", k)));
    put_secret(client, ns, name, &data).await;
}

/// A webhook Channel reading `secret` (with its signing key when `signed`), routed by `route`.
pub async fn channel(
    client: &Client,
    ns: &str,
    name: &str,
    secret: &str,
    signed: bool,
    route: Value,
) {
    let mut webhook = json!({ "url": { "name": secret, "key": "url" } });
    if signed {
        webhook["signingKey"] = json!({ "name": secret, "key": "key" });
    }
    let channel: Channel = serde_json::from_value(json!({
        "apiVersion": "incident.dev/v1alpha1", "kind": "Channel",
        "metadata": { "name": name },
        "spec": { "webhook": webhook, "route": route },
    }))
    .expect("a Channel");
    Api::<Channel>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &channel)
        .await
        .expect("create Channel");
}

/// The status of a Channel's condition, once it reads `want`.
pub async fn await_condition(
    client: &Client,
    ns: &str,
    name: &str,
    type_: &str,
    want: &str,
) -> Channel {
    let api: Api<Channel> = Api::namespaced(client.clone(), ns);
    wait_for(&api, name, &format!("{type_}={want}"), DELIVERY, |c| {
        c.and_then(|c| c.status.as_ref()).is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == type_ && c.status == want)
        })
    })
    .await
    .expect("Channel exists")
}

pub fn reason_of(channel: &Channel, type_: &str) -> (String, String) {
    channel
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
        .map(|c| (c.reason.clone(), c.message.clone()))
        .unwrap_or_default()
}

/// The first message of incident `name` given up on, once there is one.
pub async fn failed_delivery(api: &Api<Incident>, name: &str) -> DeliveryRecord {
    let incident = wait_for(api, name, "a message given up", DELIVERY, |i| {
        i.and_then(|i| i.status.as_ref()).is_some_and(|s| {
            s.deliveries
                .iter()
                .any(|d| d.state == DeliveryState::Failed)
        })
    })
    .await;
    incident
        .and_then(|i| i.status)
        .and_then(|s| {
            s.deliveries
                .into_iter()
                .find(|d| d.state == DeliveryState::Failed)
        })
        .expect("a failed delivery")
}

/// Opens an incident of `severity` named `name`.
pub async fn open(api: &Api<Incident>, name: &str, severity: &str) {
    let incident = incident(
        name,
        json!({ "title": format!("{name} is failing"), "severity": severity,
                "commander": "ana", "description": "Payments fail for every user" }),
    );
    api.create(&PostParams::default(), &incident)
        .await
        .expect("create Incident");
}

pub async fn acknowledge(api: &Api<Incident>, name: &str) {
    edit(api, name, json!({ "acknowledgment": { "by": "bo" } })).await;
}

pub async fn resolve(api: &Api<Incident>, name: &str) {
    edit(
        api,
        name,
        json!({ "resolution": { "summary": "Rolled back to revision 3", "by": "bo" } }),
    )
    .await;
}

/// A namespace with the CRDs, a signed receiver behind Channel `pages` (P0/P1), and the operator.
pub async fn pages_setup(
    prefix: &str,
    env: &[(&str, &str)],
) -> (Client, TestNamespace, Api<Incident>, Receiver, Operator) {
    let (client, ns, api) = setup(prefix).await;
    let receiver = Receiver::start(Some(SECRET)).await;
    secret(
        &client,
        &ns.name,
        "pager-hook",
        &receiver.url(),
        Some(SECRET),
    )
    .await;
    channel(
        &client,
        &ns.name,
        "pages",
        "pager-hook",
        true,
        json!({ "severities": ["P0", "P1"] }),
    )
    .await;
    let operator = Operator::start_with_env(&ns.name, &[], env).await;
    await_condition(&client, &ns.name, "pages", "Ready", "True").await;
    (client, ns, api, receiver, operator)
}

#[tokio::test]
async fn each_severity_reaches_its_channel_with_signed_messages_in_order() {
    let (client, ns, api) = setup("notify-route").await;
    let pages = Receiver::start(Some(SECRET)).await;
    let tickets = Receiver::start(None).await;
    secret(&client, &ns.name, "pager-hook", &pages.url(), Some(SECRET)).await;
    secret(&client, &ns.name, "ticket-hook", &tickets.url(), None).await;
    channel(
        &client,
        &ns.name,
        "pages",
        "pager-hook",
        true,
        json!({ "severities": ["P0", "P1"] }),
    )
    .await;
    channel(
        &client,
        &ns.name,
        "tickets",
        "ticket-hook",
        false,
        json!({ "severities": ["P3"], "events": ["Opened", "Resolved"] }),
    )
    .await;
    let operator = Operator::start(&ns.name, &[]).await;
    await_condition(&client, &ns.name, "pages", "Ready", "True").await;
    await_condition(&client, &ns.name, "tickets", "Ready", "True").await;

    open(&api, "checkout-down", "P1").await;
    let received = pages
        .wait_for("the opening message", DELIVERY, |r| events(r) == ["Opened"])
        .await;
    let first = &received[0];
    assert_eq!(
        first["verified"], true,
        "standardwebhooks verified it: {first}"
    );
    assert_eq!(first["contentType"], "application/json");
    let body = &first["body"];
    assert_eq!(body["version"], "1");
    assert_eq!(body["event"], "Opened");
    assert_eq!(body["id"], first["id"], "the body names the webhook-id");
    assert_eq!(body["incident"]["name"], "checkout-down");
    assert_eq!(body["incident"]["namespace"], ns.name.as_str());
    assert_eq!(body["incident"]["severity"], "P1");
    let text = body["text"].as_str().unwrap_or_default();
    for part in [
        "Severity: P1",
        "Status: investigating",
        "Payments fail for every user",
        "updates will follow at least every 30m",
        "UTC",
    ] {
        assert!(text.contains(part), "{part:?} missing from {text}");
    }

    acknowledge(&api, "checkout-down").await;
    pages
        .wait_for("the acknowledgment", DELIVERY, |r| {
            events(r) == ["Opened", "Acknowledged"]
        })
        .await;
    resolve(&api, "checkout-down").await;
    let received = pages
        .wait_for("the resolution", DELIVERY, |r| {
            events(r) == ["Opened", "Acknowledged", "Resolved"]
        })
        .await;
    assert!(
        received.iter().all(|r| r["verified"] == true),
        "every message verified"
    );
    let ids: std::collections::BTreeSet<_> =
        delivered(&received).into_iter().map(|(_, id)| id).collect();
    assert_eq!(ids.len(), 3, "one idempotency key per message");
    let resolved = &received[2]["body"]["text"];
    let resolved = resolved.as_str().unwrap_or_default();
    for part in [
        "Incident resolved",
        "Duration:",
        "What fixed it: Rolled back to revision 3",
        "A post-mortem follows within 48h",
    ] {
        assert!(resolved.contains(part), "{part:?} missing from {resolved}");
    }
    assert!(tickets.received().await.is_empty(), "a P1 is not a ticket");

    // P3: a ticket, not a page.
    open(&api, "typo-on-faq", "P3").await;
    let received = tickets
        .wait_for("the ticket", DELIVERY, |r| events(r) == ["Opened"])
        .await;
    assert_eq!(
        received[0]["verified"],
        Value::Null,
        "unsigned: no signature to check"
    );
    assert!(received[0]["signature"].is_null());
    assert_eq!(received[0]["body"]["incident"]["severity"], "P3");

    // The channel counts what it sent; the metric too.
    let channels: Api<Channel> = Api::namespaced(client.clone(), &ns.name);
    wait_for(&channels, "pages", "3 sent", DELIVERY, |c| {
        c.and_then(|c| c.status.as_ref())
            .is_some_and(|s| s.sent == 3)
    })
    .await;
    operator
        .await_metric(
            "incident_operator_notification_deliveries_total{channel_type=\"webhook\",event=\"Opened\",result=\"sent\"}",
            |v| v == Some(2.0),
        )
        .await;
    assert_eq!(pages.received().await.len(), 3, "nothing sent twice");
    // The outbox never holds the destination's address.
    let stored = api.get("checkout-down").await.expect("incident");
    let text = serde_json::to_string(&stored.status).unwrap_or_default();
    assert!(!text.contains(&pages.url()), "the URL leaked into status");
    operator.stop().await;
}

#[tokio::test]
async fn a_missing_secret_stalls_the_channel_and_the_message_waits_for_it() {
    let (client, ns, api) = setup("notify-secret").await;
    let receiver = Receiver::start(Some(SECRET)).await;
    channel(&client, &ns.name, "pages", "pager-hook", true, json!({})).await;
    let operator = Operator::start(&ns.name, &[]).await;
    let stalled = await_condition(&client, &ns.name, "pages", "Ready", "False").await;
    let (reason, message) = reason_of(&stalled, "Ready");
    assert_eq!(reason, "SecretNotFound");
    assert!(message.contains("pager-hook"), "{message}");
    open(&api, "login-down", "P2").await;
    // The message waits in the outbox with the reason; nothing crashed, nothing was sent.
    wait_for(&api, "login-down", "a retry recorded", DELIVERY, |i| {
        i.and_then(|i| i.status.as_ref()).is_some_and(|s| {
            s.deliveries.iter().any(|d| {
                d.last_error
                    .as_deref()
                    .is_some_and(|e| e.contains("pager-hook"))
            })
        })
    })
    .await;
    assert!(receiver.received().await.is_empty());
    // Fixed: the channel is Ready and the waiting message goes out.
    secret(
        &client,
        &ns.name,
        "pager-hook",
        &receiver.url(),
        Some(SECRET),
    )
    .await;
    await_condition(&client, &ns.name, "pages", "Ready", "True").await;
    let received = receiver
        .wait_for("the waiting message", DELIVERY, |r| events(r) == ["Opened"])
        .await;
    assert_eq!(received[0]["verified"], true);
    operator.stop().await;
}

#[tokio::test]
async fn a_bad_template_is_reported_with_its_line_and_the_built_in_message_goes_out() {
    let (client, ns, api) = setup("notify-template").await;
    let receiver = Receiver::start(None).await;
    secret(&client, &ns.name, "hook", &receiver.url(), None).await;
    channel(&client, &ns.name, "team", "hook", false, json!({})).await;
    let channels: Api<Channel> = Api::namespaced(client.clone(), &ns.name);
    channels
        .patch(
            "team",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "templates": {
                "Opened": "[{{ severity }}] {{ title }}\n{% if commander %}lead: {{ commander }}" } } })),
        )
        .await
        .expect("add a template");
    let operator = Operator::start(&ns.name, &[]).await;
    let stalled = await_condition(&client, &ns.name, "team", "Ready", "False").await;
    let (reason, message) = reason_of(&stalled, "Ready");
    assert_eq!(reason, "InvalidTemplate");
    assert!(message.contains("template Opened (line"), "{message}");
    open(&api, "search-slow", "P2").await;
    let received = receiver
        .wait_for("the built-in message", DELIVERY, |r| {
            events(r) == ["Opened"]
        })
        .await;
    let text = received[0]["body"]["text"].as_str().unwrap_or_default();
    assert!(
        text.starts_with("🚨 Incident opened: search-slow is failing"),
        "{text}"
    );
    // Fixed: the channel's own template is used.
    channels
        .patch(
            "team",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "templates": {
                "Opened": null, "Acknowledged": "[{{ severity }}] {{ actor }} took {{ title }}" } } })),
        )
        .await
        .expect("fix the template");
    await_condition(&client, &ns.name, "team", "Ready", "True").await;
    acknowledge(&api, "search-slow").await;
    let received = receiver
        .wait_for("the acknowledgment", DELIVERY, |r| {
            events(r) == ["Opened", "Acknowledged"]
        })
        .await;
    assert_eq!(
        received[1]["body"]["text"],
        "[P2] bo took search-slow is failing"
    );
    operator.stop().await;
}

#[tokio::test]
async fn every_example_channel_is_admitted_and_ready_once_its_secrets_exist() {
    let (client, ns, _api) = setup("notify-examples").await;
    let receiver = Receiver::start(Some(SECRET)).await;
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/channels");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("examples/channels exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 5,
        "pages, oncall-pagerduty, incident-channel, tickets, platform"
    );
    let channels: Api<Channel> = Api::namespaced(client.clone(), &ns.name);
    let mut names = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read example");
        let channel: Channel = serde_yaml_ng::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not a Channel: {e}", file.display()));
        assert_eq!(
            channel.metadata.namespace,
            None,
            "{} leaves the namespace to -n",
            file.display()
        );
        assert!(
            channel.spec.destination().is_some(),
            "{} has no destination",
            file.display()
        );
        for (name, data) in example_secrets(&channel, &receiver.url()) {
            let secret = Secret {
                metadata: kube::api::ObjectMeta {
                    name: Some(name),
                    ..Default::default()
                },
                data: Some(data),
                ..Secret::default()
            };
            // Examples may share a Secret; the first one made it.
            let _ = Api::<Secret>::namespaced(client.clone(), &ns.name)
                .create(&PostParams::default(), &secret)
                .await;
        }
        channels
            .create(&PostParams::default(), &channel)
            .await
            .unwrap_or_else(|e| panic!("{} is refused: {e}", file.display()));
        names.push(kube::ResourceExt::name_any(&channel));
    }
    let operator = Operator::start(&ns.name, &[]).await;
    for name in &names {
        let ready = await_condition(&client, &ns.name, name, "Ready", "True").await;
        let (reason, _) = reason_of(&ready, "Ready");
        assert_eq!(reason, "Valid", "{name}");
    }
    operator.stop().await;
}

/// The Secrets an example Channel reads, with values a receiver on 127.0.0.1 accepts.
fn example_secrets(
    channel: &Channel,
    url: &str,
) -> std::collections::BTreeMap<String, std::collections::BTreeMap<String, ByteString>> {
    let spec = &channel.spec;
    let mut wanted: Vec<(&incident_operator::api::SecretKeyRef, &str)> = Vec::new();
    if let Some(webhook) = &spec.webhook {
        wanted.push((&webhook.url, url));
        wanted.extend(webhook.signing_key.iter().map(|k| (k, SECRET)));
    }
    if let Some(pagerduty) = &spec.pagerduty {
        wanted.push((&pagerduty.routing_key, "R0ut1ngK3yF0rTh3E2eT3sts00000001"));
    }
    if let Some(slack) = &spec.slack {
        wanted.extend(slack.webhook.iter().map(|k| (k, url)));
        wanted.extend(slack.bot.iter().map(|b| (&b.token, "xoxb-e2e-example")));
    }
    let mut secrets = std::collections::BTreeMap::<String, std::collections::BTreeMap<_, _>>::new();
    for (reference, value) in wanted {
        secrets
            .entry(reference.name.clone())
            .or_default()
            .insert(reference.key.clone(), ByteString(value.as_bytes().to_vec()));
    }
    secrets
}
