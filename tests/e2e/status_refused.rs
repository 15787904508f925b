//! Honest failure end to end: an Incident so large that its status no longer fits (the API server's
//! storage would refuse the write, "etcdserver: request is too large"). The operator says why once, as a
//! Warning Event, backs off instead of retrying hot, and publishes no Event of a transition it could
//! not record (no `Detected`, no `AlertFiring`); it keeps running.

use std::time::Duration;

use incident_operator::api::Incident;
use kube::api::{ListParams, PostParams};
use serde_json::{Value, json};

use crate::{
    lifecycle::{events, setup},
    support::{Operator, wait_for_all},
};

/// An Incident of about `bytes` of JSON: alerts with long labels (each within its schema bound).
fn large(bytes: usize) -> Value {
    let alert = |i: usize, value: usize| {
        let labels: serde_json::Map<String, Value> = (0..32)
            .map(|j| (format!("k{j}"), json!("v".repeat(value))))
            .collect();
        json!({ "fingerprint": format!("f{i}"), "name": format!("a{i}"), "state": "firing",
                "startsAt": "2026-01-01T00:00:00Z", "labels": labels })
    };
    let mut alerts = Vec::new();
    let size = |alerts: &Vec<Value>| json!({ "spec": { "alerts": alerts } }).to_string().len();
    while size(&alerts) + 34_000 < bytes {
        alerts.push(alert(alerts.len(), 1024));
    }
    let rest = bytes.saturating_sub(size(&alerts)) / 32;
    alerts.push(alert(alerts.len(), rest.saturating_sub(10).min(1024)));
    json!({ "apiVersion": "incident.dev/v1alpha1", "kind": "Incident",
            "metadata": { "name": "huge" },
            "spec": { "title": "huge", "severity": "P3", "alerts": alerts } })
}

#[tokio::test]
async fn a_status_too_large_to_store_is_said_once_and_nothing_claims_to_have_happened() {
    let (client, ns, api) = setup("status-refused").await;
    // The largest Incident storage still takes (found by trying, 5 kB at a time): its status cannot fit.
    let mut bytes = 1_600_000;
    let created: Incident = loop {
        let incident: Incident = serde_json::from_value(large(bytes)).expect("an Incident");
        match api.create(&PostParams::default(), &incident).await {
            Ok(created) => break created,
            Err(kube::Error::Api(status))
                if status.message.contains("too large") && bytes > 1_000_000 =>
            {
                bytes -= 5_000;
            }
            Err(error) => panic!("create the large incident: {error}"),
        }
    };
    let uid = created.metadata.uid.clone().expect("uid");
    let operator = Operator::start(&ns.name, &[]).await;
    let api_events =
        kube::Api::<k8s_openapi::api::core::v1::Event>::namespaced(client.clone(), &ns.name);
    let found = wait_for_all(
        &api_events,
        "",
        "the StatusNotWritten Event",
        Duration::from_secs(60),
        |found| {
            found
                .iter()
                .any(|e| e.reason.as_deref() == Some("StatusNotWritten"))
        },
    )
    .await;
    let refused: Vec<_> = found
        .iter()
        .filter(|e| e.reason.as_deref() == Some("StatusNotWritten"))
        .collect();
    assert_eq!(refused.len(), 1, "said once");
    assert_eq!(refused[0].type_.as_deref(), Some("Warning"));
    assert_eq!(
        refused[0].involved_object.uid.as_deref(),
        Some(uid.as_str())
    );
    let message = refused[0].message.clone().unwrap_or_default();
    assert!(
        message.contains("over the 1400000 the operator writes")
            && message.contains("tries again in 5 minutes"),
        "{message}"
    );
    // The refusal is counted once more only after the backoff; nothing was recorded, nothing claimed.
    operator
        .await_metric(
            "incident_operator_reconcile_errors_total{controller=\"incident\",error=\"refused\"}",
            |v| v == Some(1.0),
        )
        .await;
    let about = events(&client, &ns.name, "huge").await;
    let claimed: Vec<_> = about
        .iter()
        .filter(|e| e.reason.as_deref() != Some("StatusNotWritten"))
        .map(|e| e.reason.clone().unwrap_or_default())
        .collect();
    assert!(
        claimed.is_empty(),
        "no Event of an unrecorded transition: {claimed:?}"
    );
    assert!(
        api.get("huge").await.expect("incident").status.is_none(),
        "no status stored"
    );
    let listed = api.list(&ListParams::default()).await.expect("list");
    assert_eq!(listed.items.len(), 1);
    operator.stop().await;
}
