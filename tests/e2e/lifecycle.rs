//! The Incident lifecycle against the real API server: the controller's status, Events and
//! metrics from detection to closing, restarts, and missing objects. This file holds the helpers
//! the other `lifecycle_*` files share: `lifecycle_clocks` (escalation, update and post-mortem
//! clocks), `lifecycle_limits` (admission, a bounded timeline) and `lifecycle_postmortem` (the
//! post-mortem command).

use std::time::Duration;

use incident_operator::api::{EntryType, Incident, Phase};
use jiff::SignedDuration;
use k8s_openapi::api::core::v1::Event;
use kube::{
    Api, Client, ResourceExt,
    api::{ListParams, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};

use crate::support::{Operator, TestNamespace, client, install_crds, wait_for};

const SETTLE: Duration = Duration::from_secs(60);

pub fn incident(name: &str, spec: Value) -> Incident {
    serde_json::from_value(json!({
        "apiVersion": "incident.dev/v1alpha1",
        "kind": "Incident",
        "metadata": { "name": name },
        "spec": spec,
    }))
    .expect("valid Incident")
}

pub async fn setup(prefix: &str) -> (Client, TestNamespace, Api<Incident>) {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::new(&client, prefix).await;
    let api = Api::namespaced(client.clone(), &ns.name);
    (client, ns, api)
}

pub async fn edit(api: &Api<Incident>, name: &str, spec: Value) {
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": spec })),
    )
    .await
    .expect("edit Incident spec");
}

pub async fn settle(
    api: &Api<Incident>,
    name: &str,
    what: &str,
    check: impl Fn(&Incident) -> bool,
) -> Incident {
    wait_for(api, name, what, SETTLE, |i| i.is_some_and(&check))
        .await
        .expect("Incident exists")
}

/// Waits until the incident `name`'s action `action` has succeeded; the incident then.
pub async fn action_succeeded(api: &Api<Incident>, name: &str, action: &str) -> Incident {
    settle(api, name, &format!("action {action} succeeded"), |i| {
        i.status.as_ref().is_some_and(|s| {
            s.actions.iter().any(|a| {
                a.name == action && a.phase == incident_operator::api::ActionPhase::Succeeded
            })
        })
    })
    .await
}

pub fn phase(incident: &Incident) -> Option<Phase> {
    incident.status.as_ref().and_then(|s| s.phase)
}

/// Entries of a type, counting coalesced repeats and what the summary folded away.
pub fn entries(incident: &Incident, type_: EntryType) -> usize {
    let Some(status) = &incident.status else {
        return 0;
    };
    status
        .timeline
        .iter()
        .filter(|e| e.type_ == type_)
        .map(|e| e.count.unwrap_or(1) as usize)
        .sum()
}

pub fn condition(incident: &Incident, type_: &str) -> Option<(String, String)> {
    let conditions = &incident.status.as_ref()?.conditions;
    let found = conditions.iter().find(|c| c.type_ == type_)?;
    Some((found.status.clone(), found.reason.clone()))
}

pub async fn events(client: &Client, ns: &str, name: &str) -> Vec<Event> {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    let params = ListParams::default().fields(&format!("involvedObject.name={name}"));
    api.list(&params).await.expect("list Events").items
}

pub fn with_reason(events: &[Event], reason: &str) -> usize {
    events
        .iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .count()
}

#[tokio::test]
async fn an_incident_runs_from_detected_to_closed() {
    let (client, ns, api) = setup("lifecycle").await;
    let operator = Operator::start(&ns.name, &[]).await;
    api.create(
        &PostParams::default(),
        &incident(
            "checkout-errors",
            json!({
                "title": "Checkout returns 500s", "severity": "P2", "commander": "ana",
            }),
        ),
    )
    .await
    .expect("create Incident");

    let detected = settle(&api, "checkout-errors", "Detected", |i| {
        phase(i) == Some(Phase::Detected)
    })
    .await;
    let status = detected.status.clone().expect("status");
    assert_eq!(status.timeline[0].type_, EntryType::Detected);
    let created = detected
        .metadata
        .creation_timestamp
        .clone()
        .expect("created")
        .0;
    let respond_by = status.sla.as_ref().expect("sla").respond_by.0;
    assert_eq!(
        respond_by,
        created + SignedDuration::from_hours(4),
        "P2 responds within 4h"
    );
    assert_eq!(
        condition(&detected, "Acknowledged").map(|c| c.0).as_deref(),
        Some("False")
    );
    operator
        .await_metric(
            r#"incident_operator_incidents_open{severity="P2",phase="Detected"}"#,
            |v| v == Some(1.0),
        )
        .await;

    // Stored timestamps have whole seconds: truncate the test's clock the same way.
    let whole = |t: jiff::Timestamp| jiff::Timestamp::from_second(t.as_second()).expect("time");
    let before_ack = whole(jiff::Timestamp::now());
    edit(
        &api,
        "checkout-errors",
        json!({ "acknowledgment": { "by": "ana", "note": "looking" } }),
    )
    .await;
    let acked = settle(&api, "checkout-errors", "Acknowledged", |i| {
        phase(i) == Some(Phase::Acknowledged)
    })
    .await;
    let after_ack = jiff::Timestamp::now();
    let metrics = acked
        .status
        .as_ref()
        .and_then(|s| s.metrics.clone())
        .expect("metrics");
    let detected_at = metrics.detected_at.clone().expect("detectedAt").0;
    let acknowledged_at = metrics.acknowledged_at.clone().expect("acknowledgedAt").0;
    assert_eq!(detected_at, created, "detected when it was created");
    // Acknowledged by the reconcile that saw the edit: not before it, not after the test saw it.
    assert!(
        before_ack <= acknowledged_at && acknowledged_at <= after_ack,
        "acknowledged at {acknowledged_at}, edited at {before_ack}, seen at {after_ack}"
    );
    let tta = metrics
        .time_to_acknowledge_seconds
        .expect("timeToAcknowledgeSeconds");
    assert_eq!(
        tta,
        acknowledged_at.duration_since(detected_at).as_secs(),
        "acknowledgedAt - detectedAt"
    );
    assert_eq!(
        condition(&acked, "Acknowledged").map(|c| c.0).as_deref(),
        Some("True")
    );

    edit(
        &api,
        "checkout-errors",
        json!({ "resolution": {
        "rootCause": "bad config push", "summary": "rolled back the config", "by": "ana" } }),
    )
    .await;
    let resolved = settle(&api, "checkout-errors", "Resolved", |i| {
        phase(i) == Some(Phase::Resolved)
    })
    .await;
    let status = resolved.status.clone().expect("status");
    let resolved_at = status
        .metrics
        .as_ref()
        .and_then(|m| m.resolved_at.clone())
        .expect("resolvedAt")
        .0;
    let due = status
        .sla
        .as_ref()
        .and_then(|s| s.postmortem_due_by.clone())
        .expect("post-mortem due")
        .0;
    assert_eq!(due, resolved_at + SignedDuration::from_hours(48));
    assert_eq!(entries(&resolved, EntryType::RootCauseIdentified), 1);
    assert_eq!(entries(&resolved, EntryType::PostmortemDue), 1);
    assert!(
        status
            .metrics
            .as_ref()
            .and_then(|m| m.time_to_resolve_seconds)
            .is_some()
    );

    edit(
        &api,
        "checkout-errors",
        json!({ "postmortem": { "completed": true,
        "actionItems": [{ "title": "Validate config before push", "owner": "bo" }] } }),
    )
    .await;
    let closed = settle(&api, "checkout-errors", "Closed", |i| {
        phase(i) == Some(Phase::Closed)
    })
    .await;
    assert!(
        closed
            .status
            .as_ref()
            .and_then(|s| s.metrics.as_ref())
            .and_then(|m| m.closed_at.clone())
            .is_some()
    );

    let emitted = events(&client, &ns.name, "checkout-errors").await;
    for reason in [
        "Detected",
        "Acknowledged",
        "RootCauseIdentified",
        "Resolved",
        "PostmortemDue",
        "Closed",
    ] {
        assert_eq!(
            with_reason(&emitted, reason),
            1,
            "one {reason} Event: {emitted:#?}"
        );
    }
    operator.stop().await;

    // A reconcile that changes nothing writes nothing: a fresh operator reconciles the closed
    // incident on start, and neither the object nor its Events change.
    let version = api
        .get("checkout-errors")
        .await
        .expect("get")
        .resource_version();
    let operator = Operator::start(&ns.name, &[]).await;
    operator
        .await_metric("incident_operator_reconciliations_total", |v| {
            v >= Some(1.0)
        })
        .await;
    let after = api.get("checkout-errors").await.expect("get");
    assert_eq!(
        after.resource_version(),
        version,
        "no write on a no-op reconcile"
    );
    assert_eq!(
        events(&client, &ns.name, "checkout-errors").await.len(),
        emitted.len()
    );
    operator.stop().await;
}

#[tokio::test]
async fn a_killed_operator_resumes_without_repeating_anything() {
    let (client, ns, api) = setup("restart").await;
    let operator = Operator::start(&ns.name, &[]).await;
    api.create(
        &PostParams::default(),
        &incident(
            "cache-miss",
            json!({ "title": "Cache misses", "severity": "P2" }),
        ),
    )
    .await
    .expect("create Incident");
    edit(
        &api,
        "cache-miss",
        json!({ "acknowledgment": { "by": "cy" } }),
    )
    .await;
    settle(&api, "cache-miss", "Acknowledged", |i| {
        phase(i) == Some(Phase::Acknowledged)
    })
    .await;
    operator.kill().await;

    // Changes made while no operator runs are picked up by the next one.
    edit(
        &api,
        "cache-miss",
        json!({
            "severity": "P1",
            "notes": [{ "author": "cy", "text": "warming the cache" }],
            "resolution": { "summary": "cache warmed", "by": "cy" },
        }),
    )
    .await;
    let operator = Operator::start(&ns.name, &[]).await;
    let resolved = settle(&api, "cache-miss", "Resolved", |i| {
        phase(i) == Some(Phase::Resolved)
    })
    .await;
    for (type_, expected) in [
        (EntryType::Detected, 1),
        (EntryType::Acknowledged, 1),
        (EntryType::SeverityChanged, 1),
        (EntryType::Note, 1),
        (EntryType::Resolved, 1),
        (EntryType::PostmortemDue, 1),
    ] {
        assert_eq!(
            entries(&resolved, type_),
            expected,
            "{type_:?} entries: {:#?}",
            resolved.status
        );
    }
    let events = events(&client, &ns.name, "cache-miss").await;
    for reason in [
        "Detected",
        "Acknowledged",
        "SeverityChanged",
        "Note",
        "Resolved",
    ] {
        assert_eq!(with_reason(&events, reason), 1, "one {reason} Event");
    }
    operator.stop().await;
}

#[tokio::test]
async fn a_missing_affected_object_is_a_condition_and_an_entry() {
    let (_client, ns, api) = setup("affected").await;
    let operator = Operator::start(&ns.name, &[]).await;
    api.create(&PostParams::default(), &incident("ghost", json!({
        "title": "Ghost deployment", "severity": "P3",
        "affected": [{ "kind": "Deployment", "name": "ghost" }, { "kind": "Node", "name": "kwok-node-0" }],
    })))
    .await
    .expect("create Incident");
    let ghost = settle(&api, "ghost", "AffectedFound=False", |i| {
        condition(i, "AffectedFound").is_some_and(|(s, r)| s == "False" && r == "NotFound")
    })
    .await;
    assert_eq!(entries(&ghost, EntryType::AffectedNotFound), 1);
    let entry = ghost.status.as_ref().and_then(|s| {
        s.timeline
            .iter()
            .find(|e| e.type_ == EntryType::AffectedNotFound)
            .cloned()
    });
    let message = entry.map(|e| e.message).unwrap_or_default();
    assert!(
        message.contains(&format!("Deployment {}/ghost", ns.name)),
        "{message}"
    );
    assert!(
        !message.contains("kwok-node-0"),
        "the node exists: {message}"
    );
    operator.stop().await;
}
