//! The Incident's limits against the real API server: invalid incidents are rejected at admission,
//! and a thousand notes keep the timeline bounded and the object small.

use incident_operator::api::{EntryType, Incident, MAX_TIMELINE};
use kube::{
    Api,
    api::{ApiResource, DynamicObject, PostParams},
};
use serde_json::{Value, json};

use crate::{
    lifecycle::{edit, entries, incident, phase, settle, setup},
    support::Operator,
};

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
            json!({ "title": "x", "severity": "P1", "ticket": "tickets.example/T-1" }),
            "spec.ticket: Invalid value",
        ),
        (
            json!({ "title": "x", "severity": "P1", "source": "User Report" }),
            "spec.source: Invalid value",
        ),
        (
            json!({ "title": "x", "severity": "P1", "reporter": "r".repeat(129) }),
            "spec.reporter: Too long",
        ),
        (
            json!({ "title": "x", "severity": "P1", "acknowledgment": { "by": "" } }),
            "spec.acknowledgment.by: Invalid value",
        ),
        (
            json!({ "title": "x", "severity": "P1", "updates": [
                { "author": "a", "text": "t", "nextUpdateIn": "48h" }] }),
            "nextUpdateIn must be between 1s and 24h",
        ),
        (
            json!({ "title": "x", "severity": "P1", "updates": [
                { "author": "a", "text": "t", "status": "resolved" }] }),
            r#"spec.updates[0].status: Unsupported value: "resolved""#,
        ),
        (
            json!({ "title": "x", "severity": "P1", "updates": [
                { "author": "a", "text": "t", "nextUpdateIn": "soon" }] }),
            "spec.updates[0].nextUpdateIn: Invalid value",
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
