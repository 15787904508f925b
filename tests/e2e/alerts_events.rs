//! Events from other monitors, in the PagerDuty Events API v2 shape, end to end: trigger opens an
//! incident, a repeat changes nothing, acknowledge acknowledges it, resolve resolves it — one
//! dedup key, one incident; the answers are the Events API's (202 with the dedup key, 400 "invalid
//! event"), and a wrong routing key writes nothing.

use std::time::Duration;

use incident_operator::api::EntryType;
use serde_json::{Value, json};

use crate::{
    alertmanager::Scratch,
    alerts::receiver,
    lifecycle::{entries, setup},
    support::wait_for_all,
};

const TOKEN: &str = "R0ut1ngK3yOfTh3Op3rat0r000000001";
const WAIT: Duration = Duration::from_secs(60);

async fn post(url: &str, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(url)
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("post an event");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn event(action: &str) -> Value {
    let mut event = json!({
        "routing_key": TOKEN, "event_action": action, "dedup_key": "disk-db-1",
        "client": "Uptime Kuma", "client_url": "https://kuma.example/dashboard/1",
    });
    if action == "trigger" {
        event["payload"] = json!({
            "summary": "disk 95% full on db-1", "source": "db-1", "severity": "warning",
            "class": "DiskFull", "component": "postgres",
            "custom_details": { "free": "2GiB" },
        });
        event["links"] = json!([{ "href": "https://runbooks.example/disk", "text": "runbook" }]);
    }
    event
}

#[tokio::test]
async fn one_dedup_key_is_one_incident_triggered_acknowledged_and_resolved() {
    let (_client, ns, api) = setup("alerts-events").await;
    let scratch = Scratch::new("alerts-events");
    let (_operator, addr) = receiver(&ns.name, &scratch, TOKEN, &[]).await;
    let url = format!("http://{addr}/v2/enqueue");

    let mut forged = event("trigger");
    forged["routing_key"] = json!("someone-elses-key");
    let (status, body) = post(&url, forged).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (401, Some("invalid event"))
    );
    let mut bad = event("trigger");
    bad["payload"]["severity"] = json!("urgent");
    let (status, body) = post(&url, bad).await;
    assert_eq!(status, 400);
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("payload.severity")
    );

    let (status, body) = post(&url, event("trigger")).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        (body["status"].as_str(), body["dedup_key"].as_str()),
        (Some("success"), Some("disk-db-1"))
    );
    let opened = wait_for_all(
        &api,
        "incident.dev/source=alertmanager",
        "the incident",
        WAIT,
        |all| all.len() == 1 && entries(&all[0], EntryType::AlertFiring) == 1,
    )
    .await;
    let incident = &opened[0];
    assert_eq!(incident.spec.title, "DiskFull: disk 95% full on db-1");
    assert_eq!(incident.spec.severity.as_str(), "P2");
    assert_eq!(
        incident.spec.alerts[0].runbook_url.as_deref(),
        Some("https://runbooks.example/disk")
    );
    let (status, _) = post(&url, event("trigger")).await;
    assert_eq!(status, 202, "a repeat is accepted");

    let (status, _) = post(&url, event("acknowledge")).await;
    assert_eq!(status, 202);
    let acknowledged = wait_for_all(
        &api,
        "incident.dev/source=alertmanager",
        "acknowledged",
        WAIT,
        |all| all.len() == 1 && entries(&all[0], EntryType::Acknowledged) == 1,
    )
    .await;
    let ack = acknowledged[0]
        .spec
        .acknowledgment
        .clone()
        .expect("acknowledgment");
    assert_eq!(ack.by, "Uptime Kuma");

    let (status, _) = post(&url, event("resolve")).await;
    assert_eq!(status, 202);
    let resolved = wait_for_all(
        &api,
        "incident.dev/source=alertmanager",
        "resolved",
        WAIT,
        |all| all.len() == 1 && entries(&all[0], EntryType::Resolved) == 1,
    )
    .await;
    let incident = &resolved[0];
    assert_eq!(incident.spec.alerts.len(), 1, "one dedup key, one alert");
    assert_eq!(
        incident.spec.alerts[0].name, "DiskFull",
        "a resolve without payload keeps what the trigger said"
    );
    assert_eq!(
        incident.spec.resolution.as_ref().map(|r| r.by.as_str()),
        Some("incident-operator")
    );
    assert_eq!(
        entries(incident, EntryType::AlertFiring),
        1,
        "the repeat recorded nothing"
    );
}
