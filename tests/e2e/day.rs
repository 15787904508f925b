//! A day in the life of one incident, compressed (issue 17: bounded over time): a crash-looping
//! Deployment the detector reports, an alert that flaps 100 times, 300 notes and 125 updates from
//! people (the plugin's way: the oldest dropped past the spec's bound), and every message going
//! to a receiver that never answers — so the outbox fills. Measured: the stored object's size (as
//! the API server returns it, managed fields included) stays far under its 1.5 MiB storage limit,
//! every list at its bound, and the dropped messages are said once.

use std::time::Duration;

use incident_operator::api::{
    EntryType, Incident, MAX_ALERTS, MAX_NOTES, MAX_NOTIFICATIONS, MAX_TIMELINE, MAX_UPDATES,
};
use k8s_openapi::api::apps::v1::Deployment;
use kube::{
    Api, ResourceExt,
    api::{ListParams, Patch, PatchParams},
};
use serde_json::{Value, json};

use crate::{
    detection::{DETECT, DETECTED, FLAGS},
    lifecycle::{entries, setup},
    notifications::{channel, secret},
    remediation::deployment,
    support::{Operator, free_addr, wait_for_all},
};

/// What the stored object takes, as JSON, the way the API server serves it.
async fn stored_bytes(client: &kube::Client, ns: &str, name: &str) -> usize {
    let raw: Api<kube::api::DynamicObject> = Api::namespaced_with(
        client.clone(),
        ns,
        &kube::api::ApiResource::erase::<Incident>(&()),
    );
    let object = raw.get(name).await.expect("get the incident");
    serde_json::to_vec(&object).map_or(0, |v| v.len())
}

/// Applies `spec` as a merge patch, then waits until the operator has recorded that generation.
async fn edit_and_settle(api: &Api<Incident>, name: &str, spec: Value) {
    let written = api
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": spec })),
        )
        .await
        .expect("edit the incident");
    let generation = written.metadata.generation;
    crate::lifecycle::settle(api, name, "the edit recorded", |i| {
        i.status.as_ref().and_then(|s| s.observed_generation) >= generation
    })
    .await;
}

/// The `step`th step of the day (100 of them, 14 minutes apart).
fn at(step: i64) -> String {
    let start: jiff::Timestamp = "2026-11-30T00:00:00Z".parse().expect("a time");
    (start + jiff::SignedDuration::from_mins(14 * step)).to_string()
}

/// The newest `bound` of `items` (the plugin drops the oldest to stay within the spec's bound).
fn newest(items: &[Value], bound: usize) -> Vec<Value> {
    items[items.len().saturating_sub(bound)..].to_vec()
}

#[tokio::test]
async fn a_day_of_crash_loops_flapping_alerts_notes_and_dead_receivers_stays_bounded() {
    let (client, ns, api) = setup("day").await;
    // Every event of every incident goes to a receiver that refuses connections.
    let dead = format!("http://{}/hook", free_addr());
    secret(&client, &ns.name, "dead", &dead, None).await;
    channel(&client, &ns.name, "dead", "dead", false, json!({})).await;
    let operator = Operator::start(&ns.name, &FLAGS).await;

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let mut crashing = deployment(
        "checkout",
        &["registry.local/checkout:2"],
        Some("crashloop"),
    );
    crashing.spec.replicas = Some(20);
    deployments
        .create(&Default::default(), &crashing)
        .await
        .expect("create the crash-looping Deployment");
    let found = wait_for_all(&api, DETECTED, "the crash-loop incident", DETECT, |found| {
        found.len() == 1
    })
    .await;
    let name = found[0].name_any();
    let before = stored_bytes(&client, &ns.name, &name).await;

    let mut notes = Vec::new();
    let mut updates = Vec::new();
    for hour in 0..100_i64 {
        // The alert flaps: firing, then resolved, every "quarter of an hour".
        let state = if hour % 2 == 0 { "firing" } else { "resolved" };
        let mut alert = json!({
            "fingerprint": "c0ffee", "name": "CheckoutErrors", "state": state,
            "startsAt": at(hour),
            "summary": "checkout answers 5xx",
            "labels": { "alertname": "CheckoutErrors", "namespace": ns.name, "severity": "critical" },
        });
        if state == "resolved" {
            alert["endsAt"] = json!(at(hour));
        }
        // Three notes an hour, of the longest kind, and an update every other hour or so.
        for i in 0..3 {
            notes.push(json!({ "author": "responder", "text": format!("{hour}.{i} {}", "n".repeat(1990)) }));
        }
        let mut spec = json!({ "alerts": [alert], "notes": newest(&notes, MAX_NOTES) });
        // An update every step, two every fourth: 125 messages for a receiver that takes none.
        for i in 0..(1 + i64::from(hour % 4 == 0)) {
            let text = format!("{hour}.{i}: {}", "u".repeat(1990));
            updates.push(json!({ "author": "commander", "text": text }));
        }
        spec["updates"] = json!(newest(&updates, MAX_UPDATES));
        edit_and_settle(&api, &name, spec).await;
    }
    let incident = api.get(&name).await.expect("the incident");
    let after = stored_bytes(&client, &ns.name, &name).await;
    let status = incident.status.clone().expect("status");
    println!(
        "a compressed day: {} notes, {} updates, 100 alert flaps: the stored incident grew from {before} to {after} bytes \
         (timeline {}, outbox {}, deliveries {})",
        notes.len(),
        updates.len(),
        status.timeline.len(),
        status.notifications.len(),
        status.deliveries.len()
    );
    assert!(
        after < 1024 * 1024,
        "{after} bytes: not well under the 1.5 MiB limit"
    );
    assert!(status.timeline.len() <= MAX_TIMELINE);
    assert!(status.notifications.len() <= MAX_NOTIFICATIONS);
    assert!(incident.spec.alerts.len() <= MAX_ALERTS);
    // The receiver never answered: the outbox filled and the oldest waiting messages were dropped,
    // which the timeline says (folded, like every repeated entry) and a Warning Event announces.
    assert_eq!(
        status.notifications.len(),
        MAX_NOTIFICATIONS,
        "the outbox is full"
    );
    assert!(
        entries(&incident, EntryType::MessagesDropped) >= 1,
        "{:#?}",
        status.timeline
    );
    let dropped = crate::lifecycle::events(&client, &ns.name, &name).await;
    assert!(crate::lifecycle::with_reason(&dropped, "MessagesDropped") >= 1);
    let listed = api.list(&ListParams::default()).await.expect("list");
    assert!(listed.items.iter().all(|i| i.status.is_some()));
    tokio::time::timeout(Duration::from_secs(10), operator.stop())
        .await
        .expect("the operator stops");
}
