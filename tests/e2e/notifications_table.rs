//! The runbooks' severity table end to end, through the example Channels as shipped (only their
//! Secrets and endpoints point at receivers on 127.0.0.1): P0 pages (PagerDuty and the paging
//! bridge) and reaches the incident channel with @here; P1 reaches the channel with @here and pages
//! no one; P2 is a quiet post; P3 creates a ticket and nothing else.

use incident_operator::api::{Channel, Incident};
use kube::{Api, api::PostParams};
use serde_json::Value;

use crate::{
    lifecycle::setup,
    notifications::{DELIVERY, await_condition, open, put_secret},
    receiver::{Receiver, SECRET, events},
    support::{Operator, wait_for},
};

fn example(file: &str) -> Channel {
    let path = format!("{}/examples/channels/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("read the example");
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The incidents a Slack receiver got a root message for, by the text's title.
fn slack_roots(received: &[Value]) -> Vec<String> {
    received
        .iter()
        .filter(|r| r["method"] == "chat.postMessage" && r["reply"]["ok"] == true)
        .filter(|r| r["body"].get("thread_ts").is_none())
        .map(|r| r["body"]["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn titles(received: &[Value]) -> Vec<String> {
    let mut titles: Vec<String> = received
        .iter()
        .filter(|r| r["answered"] == 200 || r["answered"] == 202)
        .filter_map(|r| {
            let body = &r["body"];
            body["incident"]["name"]
                .as_str()
                .or_else(|| body["payload"]["custom_details"]["name"].as_str())
                .or_else(|| body["payload"]["source"].as_str())
                .map(str::to_owned)
        })
        .collect();
    titles.sort();
    titles
}

#[tokio::test]
async fn each_severity_reaches_whom_the_runbooks_name_through_the_example_channels() {
    let (client, ns, api) = setup("notify-table").await;
    let slack = Receiver::slack("xoxb-table").await;
    let pagerduty = Receiver::pagerduty().await;
    let bridge = Receiver::start(Some(SECRET)).await;
    let tickets = Receiver::start(Some(SECRET)).await;
    put_secret(&client, &ns.name, "slack-bot", &[("token", "xoxb-table")]).await;
    let routing_key = "R0ut1ngK3yF0rTh3E2eT3sts00000001";
    put_secret(
        &client,
        &ns.name,
        "pagerduty",
        &[("routingKey", routing_key)],
    )
    .await;
    let (bridge_url, tickets_url) = (bridge.url(), tickets.url());
    put_secret(
        &client,
        &ns.name,
        "pager-hook",
        &[("url", &bridge_url), ("key", SECRET)],
    )
    .await;
    put_secret(
        &client,
        &ns.name,
        "ticket-hook",
        &[("url", &tickets_url), ("key", SECRET)],
    )
    .await;
    let channels: Api<Channel> = Api::namespaced(client.clone(), &ns.name);
    let mut slack_channel = example("incident-channel.yaml");
    if let Some(bot) = slack_channel
        .spec
        .slack
        .as_mut()
        .and_then(|s| s.bot.as_mut())
    {
        bot.api_url = Some(slack.slack_api_url());
    }
    let mut oncall = example("oncall-pagerduty.yaml");
    if let Some(pd) = oncall.spec.pagerduty.as_mut() {
        pd.url = Some(pagerduty.events_url());
    }
    for channel in [
        slack_channel,
        oncall,
        example("pages.yaml"),
        example("tickets.yaml"),
    ] {
        channels
            .create(&PostParams::default(), &channel)
            .await
            .expect("create the example Channel");
    }
    let operator = Operator::start(&ns.name, &[]).await;
    for name in ["incident-channel", "oncall-pagerduty", "pages", "tickets"] {
        await_condition(&client, &ns.name, name, "Ready", "True").await;
    }

    for (name, severity) in [
        ("sev0-checkout", "P0"),
        ("sev1-search", "P1"),
        ("sev2-reports", "P2"),
        ("sev3-typo", "P3"),
    ] {
        open(&api, name, severity).await;
    }

    // Who heard what is decided when the opening is recorded: each incident's outbox names its
    // channels, so what did not go out never will.
    for (name, expected) in [
        (
            "sev0-checkout",
            vec!["incident-channel", "oncall-pagerduty", "pages"],
        ),
        ("sev1-search", vec!["incident-channel"]),
        ("sev2-reports", vec!["incident-channel"]),
        ("sev3-typo", vec!["tickets"]),
    ] {
        let incident: Option<Incident> =
            wait_for(&api, name, "the opening's outbox", DELIVERY, |i| {
                i.and_then(|i| i.status.as_ref())
                    .is_some_and(|s| !s.notifications.is_empty())
            })
            .await;
        let status = incident.and_then(|i| i.status).expect("status");
        let mut heard: Vec<String> = status
            .notifications
            .iter()
            .map(|n| n.channel.rsplit('/').next().unwrap_or_default().to_owned())
            .collect();
        heard.sort();
        assert_eq!(heard, expected, "{name}");
    }

    let received = slack
        .wait_for("three root messages", DELIVERY, |r| {
            slack_roots(r).len() == 3
        })
        .await;
    for root in slack_roots(&received) {
        let loud = root.starts_with("<!here> ");
        assert_eq!(
            loud,
            root.contains("P0 incident") || root.contains("P1 incident"),
            "@here for P0/P1 only: {root}"
        );
    }
    let paged = pagerduty
        .wait_for("the P0's page", DELIVERY, |r| !titles(r).is_empty())
        .await;
    assert_eq!(
        paged[0]["body"]["payload"]["severity"], "critical",
        "{paged:?}"
    );
    assert!(
        paged[0]["body"]["payload"]["source"]
            .as_str()
            .is_some_and(|s| s.ends_with("/sev0-checkout"))
    );
    let rung = bridge
        .wait_for("the P0 on the paging bridge", DELIVERY, |r| {
            events(r) == ["Opened"]
        })
        .await;
    assert_eq!(titles(&rung), ["sev0-checkout"]);
    assert_eq!(rung[0]["verified"], true);
    let ticket = tickets
        .wait_for("the P3's ticket", DELIVERY, |r| events(r) == ["Opened"])
        .await;
    assert_eq!(titles(&ticket), ["sev3-typo"]);
    assert_eq!(ticket[0]["verified"], true);
    operator.stop().await;
}
