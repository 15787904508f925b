//! Remediation tests (core layer, tests): the patch a rollback sends, as `kubectl rollout undo`
//! builds it, and the revisions and images it reports.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use serde_json::json;

use super::{
    CHANGE_CAUSE, DEPLOY, DESIRED_REPLICAS, GENERATION, INCIDENT, LAST_APPLIED, MAX_REPLICAS,
    REVISION, REVISION_HISTORY, ROLLBACK_TO, annotate, apply, deployment, expect_change,
    expect_skip, history, json_patch, map, marker, owned, plan_at, restored, rev, rollback,
    rollback_to,
};
use crate::{
    api::metadata::{ACTION_ANNOTATION, INCIDENT_ANNOTATION},
    core::remediation::plan::{equal_ignoring_hash, images},
};

#[test]
fn rollback_patch_replaces_template_and_annotations_as_kubectl_does() {
    let mut deployment = deployment(&["web:v3"]);
    deployment.metadata.annotations = Some(map(&[
        (LAST_APPLIED, "{\"kind\":\"Deployment\"}"),
        (REVISION, "3"),
        (DESIRED_REPLICAS, "3"),
        (MAX_REPLICAS, "4"),
        (ROLLBACK_TO, "0"),
        (CHANGE_CAUSE, "deploy v3"),
        ("team", "payments"),
        (ACTION_ANNOTATION, "old-incident/earlier"),
        (INCIDENT_ANNOTATION, "old-incident"),
    ]));
    let mut target = rev(2);
    target.metadata.annotations = Some(map(&[
        (LAST_APPLIED, "{\"kind\":\"ReplicaSet\"}"),
        (REVISION, "2"),
        (REVISION_HISTORY, "1"),
        (DESIRED_REPLICAS, "5"),
        (MAX_REPLICAS, "6"),
        (CHANGE_CAUSE, "deploy v2"),
        ("owner", "checkout-team"),
        (ACTION_ANNOTATION, "older-incident/first"),
    ]));
    let replica_sets = vec![rev(1), target.clone(), rev(3)];
    let planned = expect_change(plan_at(&rollback(), &deployment, &replica_sets));

    let mut template = json!({
        "metadata": { "labels": { "app": "web" } },
        "spec": { "containers": [{ "name": "c0", "image": "web:v2" }] },
    });
    // The fixture's own view of the same template, to keep the literal honest.
    assert_eq!(template, restored(&target));
    let expected = vec![
        json!({ "op": "replace", "path": "/spec/template", "value": template.take() }),
        json!({
            "op": "replace",
            "path": "/metadata/annotations",
            "value": {
                // The Deployment's own revision bookkeeping...
                LAST_APPLIED: "{\"kind\":\"Deployment\"}",
                REVISION: "3",
                DESIRED_REPLICAS: "3",
                MAX_REPLICAS: "4",
                ROLLBACK_TO: "0",
                // ... (revision-history only where the Deployment has it: not here) ...
                // ... every other annotation from the ReplicaSet ...
                CHANGE_CAUSE: "deploy v2",
                "owner": "checkout-team",
                // ... and the markers of this action, which win over the ReplicaSet's.
                INCIDENT_ANNOTATION: INCIDENT,
                ACTION_ANNOTATION: marker(),
            },
        }),
    ];
    assert_eq!(json_patch(&planned.change), expected.as_slice());
    assert!(
        !expected[1]["value"]
            .as_object()
            .expect("map")
            .contains_key("team")
    );
    assert!(
        !expected[1]["value"]
            .as_object()
            .expect("map")
            .contains_key(REVISION_HISTORY)
    );
}

#[test]
fn rollback_patch_applies_to_the_deployment() {
    let (deployment, replica_sets) = history();
    let planned = expect_change(plan_at(&rollback(), &deployment, &replica_sets));
    let after = apply(&deployment, &planned.change);
    assert_eq!(after.metadata.generation, Some(GENERATION + 1));
    assert_eq!(images(&after.spec.template), vec!["web:v2"]);
    assert!(equal_ignoring_hash(
        &after.spec.template,
        replica_sets[1].spec.template.as_ref().expect("template")
    ));
    let labels = after
        .spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.as_ref());
    assert_eq!(labels, Some(&map(&[("app", DEPLOY)])));
    let annotations = after.metadata.annotations.clone().expect("annotations");
    assert_eq!(annotations.get(ACTION_ANNOTATION), Some(&marker()));
    assert_eq!(
        annotations.get(INCIDENT_ANNOTATION).map(String::as_str),
        Some(INCIDENT)
    );
    assert_eq!(annotations.get(REVISION).map(String::as_str), Some("3"));
    assert_eq!(
        annotations.get(CHANGE_CAUSE).map(String::as_str),
        Some("deploy v2")
    );
    // Planning again against the result: nothing left to do for revision 2.
    let (reason, _) = expect_skip(plan_at(&rollback_to(Some(2)), &after, &replica_sets));
    assert_eq!(reason, "AlreadyAtRevision");
}

#[test]
fn rollback_reports_every_container_image_in_order() {
    let deployment = deployment(&["web:v3", "sidecar:s3", "proxy:p1"]);
    let replica_sets = vec![
        owned(1, &["web:v1", "sidecar:s1"]),
        owned(2, &["web:v2", "sidecar:s1", "proxy:p1"]),
        owned(3, &["web:v3", "sidecar:s3", "proxy:p1"]),
    ];
    let planned = expect_change(plan_at(&rollback(), &deployment, &replica_sets));
    assert_eq!(
        planned.images_before,
        vec!["web:v3", "sidecar:s3", "proxy:p1"]
    );
    assert_eq!(
        planned.images_after,
        vec!["web:v2", "sidecar:s1", "proxy:p1"]
    );
    assert_eq!(
        planned.summary,
        "roll back deployment/web from revision 3 (web:v3, sidecar:s3, proxy:p1) to revision 2 (web:v2, sidecar:s1, proxy:p1)"
    );
    let planned = expect_change(plan_at(&rollback_to(Some(1)), &deployment, &replica_sets));
    assert_eq!(planned.images_after, vec!["web:v1", "sidecar:s1"]);
}

#[test]
fn rollback_from_revision_is_the_deployments_revision_annotation() {
    let (mut deployment, replica_sets) = history();
    deployment
        .metadata
        .annotations
        .as_mut()
        .expect("annotations")
        .remove(REVISION);
    let planned = expect_change(plan_at(&rollback(), &deployment, &replica_sets));
    assert_eq!(planned.from_revision, None);
    assert_eq!(planned.to_revision, Some(2));
    assert!(
        planned
            .summary
            .starts_with("roll back deployment/web from revision ? (web:v3)")
    );

    let deployment = annotate(deployment, REVISION, "not-a-number");
    assert_eq!(planned_from(&deployment, &replica_sets), None);
    let deployment = annotate(deployment, REVISION, "17");
    assert_eq!(planned_from(&deployment, &replica_sets), Some(17));
}

fn planned_from(deployment: &Deployment, replica_sets: &[ReplicaSet]) -> Option<i64> {
    expect_change(plan_at(&rollback(), deployment, replica_sets)).from_revision
}
