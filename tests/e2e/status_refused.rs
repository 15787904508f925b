//! Honest failure end to end: an Incident whose status would not fit. The bounds keep every real
//! Incident far under the API server's storage limit, so the operator runs with a lower ceiling
//! (INCIDENT_OPERATOR_MAX_OBJECT_BYTES) to reach the path: it says why once, as a Warning Event, backs
//! off instead of retrying hot, and publishes no Event of a transition it could not record (no
//! `Detected`); it keeps running.

use std::time::Duration;

use incident_operator::api::Incident;
use kube::api::{ListParams, PostParams};
use serde_json::{Value, json};

use crate::{
    lifecycle::{events, setup},
    support::{Operator, wait_for_all},
};

/// A large Incident within every bound: notes of 2,000 characters (about 64 kB).
fn large() -> Value {
    let notes: Vec<Value> = (0..30)
        .map(|i| json!({ "author": format!("responder-{i}"), "text": "n".repeat(2000) }))
        .collect();
    json!({ "apiVersion": "incident.dev/v1alpha1", "kind": "Incident",
            "metadata": { "name": "huge" },
            "spec": { "title": "huge", "severity": "P3", "notes": notes } })
}

/// The ceiling the operator runs with here: no Incident within the bounds reaches the real one
/// (1.4 MB; see tests/bounds), so the test lowers it below this one's size with its status.
const CEILING: &str = "50000";

#[tokio::test]
async fn a_status_too_large_to_store_is_said_once_and_nothing_claims_to_have_happened() {
    let (client, ns, api) = setup("status-refused").await;
    let incident: Incident = serde_json::from_value(large()).expect("an Incident");
    let created = api
        .create(&PostParams::default(), &incident)
        .await
        .expect("the bounds admit it");
    let uid = created.metadata.uid.clone().expect("uid");
    let operator = Operator::start_with_env(
        &ns.name,
        &[],
        &[("INCIDENT_OPERATOR_MAX_OBJECT_BYTES", CEILING)],
    )
    .await;
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
        message.contains(&format!("over the {CEILING} the operator writes"))
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
