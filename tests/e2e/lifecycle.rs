//! The Incident lifecycle against the real API server: admission, the controller's status, Events,
//! metrics, restarts, and the post-mortem command.

use std::time::Duration;

use incident_operator::api::{EntryType, Incident, MAX_TIMELINE, Phase};
use jiff::SignedDuration;
use k8s_openapi::api::core::v1::Event;
use kube::{
    Api, Client, ResourceExt,
    api::{ApiResource, DynamicObject, ListParams, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};
use tokio::process::Command;

use crate::support::{
    BINARY, Operator, TestNamespace, client, install_crds, kubeconfig_path, wait_for,
};

const SETTLE: Duration = Duration::from_secs(60);

fn incident(name: &str, spec: Value) -> Incident {
    serde_json::from_value(json!({
        "apiVersion": "incident.dev/v1alpha1",
        "kind": "Incident",
        "metadata": { "name": name },
        "spec": spec,
    }))
    .expect("valid Incident")
}

async fn setup(prefix: &str) -> (Client, TestNamespace, Api<Incident>) {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::new(&client, prefix).await;
    let api = Api::namespaced(client.clone(), &ns.name);
    (client, ns, api)
}

async fn edit(api: &Api<Incident>, name: &str, spec: Value) {
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": spec })),
    )
    .await
    .expect("edit Incident spec");
}

async fn settle(
    api: &Api<Incident>,
    name: &str,
    what: &str,
    check: impl Fn(&Incident) -> bool,
) -> Incident {
    wait_for(api, name, what, SETTLE, |i| i.is_some_and(&check))
        .await
        .expect("Incident exists")
}

fn phase(incident: &Incident) -> Option<Phase> {
    incident.status.as_ref().and_then(|s| s.phase)
}

/// Entries of a type, counting coalesced repeats and what the summary folded away.
fn entries(incident: &Incident, type_: EntryType) -> usize {
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

fn condition(incident: &Incident, type_: &str) -> Option<(String, String)> {
    let conditions = &incident.status.as_ref()?.conditions;
    let found = conditions.iter().find(|c| c.type_ == type_)?;
    Some((found.status.clone(), found.reason.clone()))
}

async fn events(client: &Client, ns: &str, name: &str) -> Vec<Event> {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    let params = ListParams::default().fields(&format!("involvedObject.name={name}"));
    api.list(&params).await.expect("list Events").items
}

fn with_reason(events: &[Event], reason: &str) -> usize {
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
    let metrics = acked
        .status
        .as_ref()
        .and_then(|s| s.metrics.clone())
        .expect("metrics");
    assert!(metrics.time_to_acknowledge_seconds.is_some_and(|s| s >= 0));
    assert!(metrics.acknowledged_at.is_some());
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
async fn an_unacknowledged_incident_escalates_exactly_once_across_a_restart() {
    let (client, ns, api) = setup("escalate").await;
    let flags = ["--response-time", "P1=3s"];
    let operator = Operator::start(&ns.name, &flags).await;
    api.create(
        &PostParams::default(),
        &incident(
            "db-latency",
            json!({ "title": "DB latency", "severity": "P1" }),
        ),
    )
    .await
    .expect("create Incident");

    let overdue = settle(&api, "db-latency", "AcknowledgeOverdue=True", |i| {
        condition(i, "AcknowledgeOverdue").is_some_and(|(s, _)| s == "True")
    })
    .await;
    assert_eq!(entries(&overdue, EntryType::Escalated), 1);
    assert!(
        overdue
            .status
            .as_ref()
            .and_then(|s| s.sla.as_ref())
            .is_some_and(|s| s.breached)
    );
    let series = r#"incident_operator_overdue_total{severity="P1",clock="acknowledge"}"#;
    // Metrics trail the status write they describe.
    operator.await_metric(series, |v| v == Some(1.0)).await;
    let warnings = events(&client, &ns.name, "db-latency").await;
    assert_eq!(
        with_reason(&warnings, "AcknowledgeOverdue"),
        1,
        "{warnings:#?}"
    );

    operator.stop().await;
    let operator = Operator::start(&ns.name, &flags).await;
    // A note proves the new operator has reconciled this incident after its restart.
    edit(
        &api,
        "db-latency",
        json!({ "notes": [{ "author": "bo", "text": "paging the DBA" }] }),
    )
    .await;
    let after = settle(&api, "db-latency", "note recorded", |i| {
        entries(i, EntryType::Note) == 1
    })
    .await;
    assert_eq!(
        entries(&after, EntryType::Escalated),
        1,
        "still one escalation"
    );
    assert_eq!(entries(&after, EntryType::Detected), 1);
    let warnings = events(&client, &ns.name, "db-latency").await;
    assert_eq!(
        with_reason(&warnings, "AcknowledgeOverdue"),
        1,
        "still one Warning Event"
    );
    assert_eq!(
        operator.metric(series).await,
        None,
        "the restarted operator did not count it again"
    );
    operator.stop().await;
}

#[tokio::test]
async fn a_thousand_notes_keep_the_timeline_bounded_and_the_object_small() {
    let (_client, ns, api) = setup("notes").await;
    let operator = Operator::start(&ns.name, &[]).await;
    api.create(
        &PostParams::default(),
        &incident(
            "noisy",
            json!({ "title": "Noisy incident", "severity": "P3" }),
        ),
    )
    .await
    .expect("create Incident");
    settle(&api, "noisy", "Detected", |i| phase(i).is_some()).await;

    for i in 0..1000 {
        let text = format!(
            "status update {i}: {}",
            "still investigating the queue backlog ".repeat(8)
        );
        edit(
            &api,
            "noisy",
            json!({ "notes": [{ "author": "bot", "text": text }] }),
        )
        .await;
        // Every tenth note waits to be recorded, so at least 100 reach the timeline.
        if i % 10 == 9 {
            settle(&api, "noisy", "note recorded", |inc| {
                inc.status
                    .as_ref()
                    .and_then(|s| s.timeline.last())
                    .is_some_and(|e| e.message.starts_with(&format!("status update {i}:")))
            })
            .await;
        }
    }
    let noisy = api.get("noisy").await.expect("get Incident");
    let status = noisy.status.as_ref().expect("status");
    assert!(
        status.timeline.len() <= MAX_TIMELINE,
        "{} entries",
        status.timeline.len()
    );
    let summary = &status.timeline[0];
    assert_eq!(
        summary.type_,
        EntryType::Summary,
        "the oldest entries were folded"
    );
    let folded = summary.count.unwrap_or(0) as usize;
    assert!(folded + entries(&noisy, EntryType::Note) >= 100);
    let size = serde_json::to_vec(&noisy).expect("serialize").len();
    assert!(size < 256 * 1024, "object is {size} bytes");
    operator.stop().await;
}

#[tokio::test]
async fn invalid_incidents_are_rejected_at_admission() {
    let (client, ns, _) = setup("invalid").await;
    // Untyped, so the client sends exactly what a user might write.
    let resource = ApiResource::erase::<Incident>(&());
    let api: Api<DynamicObject> = Api::namespaced_with(client, &ns.name, &resource);
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let notes: Vec<Value> = (0..51)
        .map(|i| json!({ "author": "a", "text": format!("n{i}") }))
        .collect();
    let cases = [
        (
            json!({ "title": "x", "severity": "P5" }),
            r#"spec.severity: Unsupported value: "P5""#,
        ),
        (
            json!({ "title": "", "severity": "P1" }),
            "spec.title: Invalid value",
        ),
        (
            json!({ "title": "x".repeat(201), "severity": "P1" }),
            "spec.title: Too long",
        ),
        (
            json!({ "title": "   ", "severity": "P1" }),
            "title must not be blank",
        ),
        (json!({ "title": "x" }), "spec.severity: Required value"),
        (
            json!({ "title": "x", "severity": "P1", "affected": [{ "kind": "Deployment", "name": "Bad_Name" }] }),
            "spec.affected[0].name: Invalid value",
        ),
        (
            json!({ "title": "x", "severity": "P1", "affected": [{ "kind": "Secret", "name": "creds" }] }),
            r#"spec.affected[0].kind: Unsupported value: "Secret""#,
        ),
        (
            json!({ "title": "x", "severity": "P1", "affected": [{ "kind": "Node", "name": "n1", "namespace": "prod" }] }),
            "Node and Namespace are cluster-scoped",
        ),
        (
            json!({ "title": "x", "severity": "P1", "notes": notes }),
            "spec.notes: Too many",
        ),
        (
            json!({ "title": "x", "severity": "P1", "postmortem": { "url": "ftp://docs" } }),
            "spec.postmortem.url: Invalid value",
        ),
        (
            json!({ "title": "x", "severity": "P1", "acknowledgment": { "by": "" } }),
            "spec.acknowledgment.by: Invalid value",
        ),
    ];
    for (spec, expected) in cases {
        let object: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "incident.dev/v1alpha1", "kind": "Incident",
            "metadata": { "name": "bad" }, "spec": spec,
        }))
        .expect("any JSON object");
        let error = match api.create(&dry_run, &object).await {
            Ok(_) => panic!("accepted an invalid Incident: {spec}"),
            Err(kube::Error::Api(status)) => status.message,
            Err(other) => panic!("unexpected error for {spec}: {other}"),
        };
        assert!(
            error.contains(expected),
            "for {spec}\nexpected: {expected}\n     got: {error}"
        );
    }
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

#[tokio::test]
async fn the_postmortem_command_renders_a_real_incident() {
    let (_client, ns, api) = setup("postmortem").await;
    let operator = Operator::start(&ns.name, &[]).await;
    api.create(&PostParams::default(), &incident("login-down", json!({
        "title": "Login is down", "severity": "P0", "commander": "dee",
        "acknowledgment": { "by": "dee" },
        "resolution": { "rootCause": "expired TLS certificate", "summary": "renewed the certificate", "by": "dee" },
        "postmortem": { "actionItems": [
            { "title": "Alert 14 days before certificates expire", "owner": "eli" },
            { "title": "Document the renewal", "done": true },
        ] },
    })))
    .await
    .expect("create Incident");
    settle(&api, "login-down", "Resolved", |i| {
        phase(i) == Some(Phase::Resolved)
    })
    .await;

    let output = Command::new(BINARY)
        .args(["postmortem", &format!("{}/login-down", ns.name)])
        .env("KUBECONFIG", kubeconfig_path())
        .output()
        .await
        .expect("run postmortem");
    let markdown = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for expected in [
        "Login is down",
        "P0",
        "expired TLS certificate",
        "renewed the certificate",
        "Alert 14 days before certificates expire",
        "Detected",
        "Acknowledged",
        "Resolved",
    ] {
        assert!(
            markdown.contains(expected),
            "missing {expected:?} in\n{markdown}"
        );
    }
    assert!(
        markdown.contains("- [ ]") && markdown.contains("- [x]"),
        "{markdown}"
    );

    let missing = Command::new(BINARY)
        .args(["postmortem", &format!("{}/no-such-incident", ns.name)])
        .env("KUBECONFIG", kubeconfig_path())
        .output()
        .await
        .expect("run postmortem");
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not found"));
    operator.stop().await;
}

#[tokio::test]
async fn update_and_postmortem_clocks_fire_once_and_a_note_clears_the_update_clock() {
    let (client, ns, api) = setup("clocks").await;
    let flags = ["--update-interval", "3s", "--postmortem-due", "3s"];
    let operator = Operator::start(&ns.name, &flags).await;
    api.create(
        &PostParams::default(),
        &incident(
            "queue-stuck",
            json!({ "title": "Queue stuck", "severity": "P0",
            "acknowledgment": { "by": "eve" } }),
        ),
    )
    .await
    .expect("create Incident");

    let silent = settle(&api, "queue-stuck", "UpdateOverdue=True", |i| {
        condition(i, "UpdateOverdue").is_some_and(|(s, _)| s == "True")
    })
    .await;
    assert_eq!(entries(&silent, EntryType::UpdateDue), 1);
    edit(
        &api,
        "queue-stuck",
        json!({ "notes": [{ "author": "eve", "text": "draining the queue" }] }),
    )
    .await;
    settle(&api, "queue-stuck", "a note clears UpdateOverdue", |i| {
        entries(i, EntryType::Note) == 1
            && condition(i, "UpdateOverdue").is_some_and(|(s, _)| s == "False")
    })
    .await;

    edit(
        &api,
        "queue-stuck",
        json!({ "resolution": { "summary": "queue drained", "by": "eve" } }),
    )
    .await;
    let late = settle(&api, "queue-stuck", "PostmortemOverdue=True", |i| {
        condition(i, "PostmortemOverdue").is_some_and(|(s, _)| s == "True")
    })
    .await;
    assert_eq!(entries(&late, EntryType::PostmortemOverdue), 1);
    assert_eq!(
        condition(&late, "UpdateOverdue").map(|c| c.0).as_deref(),
        Some("False"),
        "resolved: no updates due"
    );
    let warnings = events(&client, &ns.name, "queue-stuck").await;
    assert_eq!(with_reason(&warnings, "PostmortemOverdue"), 1);
    assert!(with_reason(&warnings, "UpdateOverdue") >= 1);
    operator
        .await_metric(
            r#"incident_operator_overdue_total{severity="P0",clock="postmortem"}"#,
            |v| v == Some(1.0),
        )
        .await;
    operator.stop().await;
}
