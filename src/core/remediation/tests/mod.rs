//! Unit and property tests of remediation (core layer, tests): the fixtures every test file shares
//! (Deployments, ReplicaSets, actions, applying a change as the API server would); the tests are in
//! one file per subject: planning (`plan`), following the rollout (`rollout`) and each action's
//! state machine (`step`).
//!
//! Rollback planning is checked against `kubectl rollout undo`
//! (k8s.io/kubectl/pkg/polymorphichelpers `DeploymentRollbacker` and
//! k8s.io/kubectl/pkg/util/deployment), including a property test that compares the planner with a
//! literal transcription of kubectl's history search. The state machine is driven the way the
//! incident controller drives it: each status is stored (a JSON round trip) before the change it
//! asks for is applied to the Deployment, and a change is applied as the API server would apply it
//! (a JSON or merge patch that bumps `metadata.generation` when the spec changes).

mod argo;
mod kubectl;
mod restart_scale;
mod rollback_patch;
mod rollback_target;
mod rollout;
mod sets;
mod step;

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::{
    api::{
        apps::v1::{
            Deployment, DeploymentCondition, DeploymentSpec, DeploymentStatus, ReplicaSet,
            ReplicaSetSpec,
        },
        core::v1::{Container, PodSpec, PodTemplateSpec},
    },
    apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference},
};
use serde_json::Value;

use super::plan::{Actor, Change, Plan, Planned, plan};
use crate::api::{RemediationAction, RestartAction, RollbackAction, ScaleAction};

pub(super) const NAMESPACE: &str = "shop";
pub(super) const DEPLOY: &str = "web";
pub(super) const DEPLOY_UID: &str = "5d0c7e2a-8f7b-4a51-b0c3-6a1e9f2d4c01";
pub(super) const OTHER_UID: &str = "9e3b1f44-2c6d-4e8a-a7f5-0d2c6b8e1a77";
pub(super) const INCIDENT: &str = "checkout-down";
pub(super) const INCIDENT_UID: &str = "7c1f6a52-3b7e-4c36-9d1e-0a5b2f8e4d11";
pub(super) const ACTION: &str = "undo";
/// The Deployment's generation when an action is planned.
pub(super) const GENERATION: i64 = 7;
/// The test clock's origin.
pub(super) const EPOCH: i64 = 1_800_000_000;

pub(super) const REVISION: &str = "deployment.kubernetes.io/revision";
pub(super) const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
pub(super) const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
pub(super) const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
pub(super) const ROLLBACK_TO: &str = "deprecated.deployment.rollback.to";
pub(super) const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
pub(super) const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";
pub(super) const HASH: &str = "pod-template-hash";

/// `seconds` after the test clock's origin.
pub(super) fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(EPOCH + seconds).expect("valid timestamp")
}

pub(super) fn now() -> Timestamp {
    at(0)
}

pub(super) fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

pub(super) fn selector() -> LabelSelector {
    LabelSelector {
        match_labels: Some(map(&[("app", DEPLOY)])),
        ..LabelSelector::default()
    }
}

/// A pod template running `images` (containers c0, c1, ...), labelled `app=web` and, as a
/// ReplicaSet's template is, with `pod-template-hash` when `hash` is given.
pub(super) fn template(images: &[&str], hash: Option<&str>) -> PodTemplateSpec {
    let mut labels = map(&[("app", DEPLOY)]);
    if let Some(hash) = hash {
        labels.insert(HASH.to_owned(), hash.to_owned());
    }
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            containers: images
                .iter()
                .enumerate()
                .map(|(i, image)| Container {
                    name: format!("c{i}"),
                    image: Some((*image).to_owned()),
                    ..Container::default()
                })
                .collect(),
            ..PodSpec::default()
        }),
    }
}

/// A rolled-out Deployment `web` at revision 3 running `images`: 3 replicas, all updated and
/// available at generation 7.
pub(super) fn deployment(images: &[&str]) -> Deployment {
    Deployment {
        metadata: ObjectMeta {
            name: Some(DEPLOY.to_owned()),
            namespace: Some(NAMESPACE.to_owned()),
            uid: Some(DEPLOY_UID.to_owned()),
            generation: Some(GENERATION),
            resource_version: Some("1000".to_owned()),
            labels: Some(map(&[("app", DEPLOY)])),
            annotations: Some(map(&[(REVISION, "3"), (CHANGE_CAUSE, "deploy v3")])),
            ..ObjectMeta::default()
        },
        spec: DeploymentSpec {
            replicas: Some(3),
            selector: selector(),
            template: template(images, None),
            ..DeploymentSpec::default()
        },
        status: Some(rollout(GENERATION, 3, 3, 3, 0)),
    }
}

pub(super) fn annotate(mut deployment: Deployment, key: &str, value: &str) -> Deployment {
    deployment
        .metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(key.to_owned(), value.to_owned());
    deployment
}

pub(super) fn paused(mut deployment: Deployment) -> Deployment {
    deployment.spec.paused = Some(true);
    deployment
}

pub(super) fn with_status(mut deployment: Deployment, status: DeploymentStatus) -> Deployment {
    deployment.status = Some(status);
    deployment
}

/// A Deployment status: `observed` generation, `replicas` in total, `updated` of them from the
/// newest template, `available` of them available and `unavailable` missing.
pub(super) fn rollout(
    observed: i64,
    replicas: i32,
    updated: i32,
    available: i32,
    unavailable: i32,
) -> DeploymentStatus {
    DeploymentStatus {
        observed_generation: Some(observed),
        replicas: Some(replicas),
        updated_replicas: Some(updated),
        ready_replicas: Some(available),
        available_replicas: Some(available),
        unavailable_replicas: (unavailable > 0).then_some(unavailable),
        conditions: Some(vec![condition(
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
        )]),
        ..DeploymentStatus::default()
    }
}

pub(super) fn condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: Some(type_.to_owned()),
        status: Some(status.to_owned()),
        reason: Some(reason.to_owned()),
        message: Some(message.to_owned()),
        ..DeploymentCondition::default()
    }
}

pub(super) fn with_condition(
    mut status: DeploymentStatus,
    condition: DeploymentCondition,
) -> DeploymentStatus {
    status
        .conditions
        .get_or_insert_with(Vec::new)
        .push(condition);
    status
}

pub(super) fn controller_ref(uid: &str, name: &str) -> OwnerReference {
    OwnerReference {
        api_version: "apps/v1".to_owned(),
        kind: "Deployment".to_owned(),
        name: name.to_owned(),
        uid: uid.to_owned(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

pub(super) fn plain_ref(uid: &str, name: &str) -> OwnerReference {
    OwnerReference {
        controller: None,
        block_owner_deletion: None,
        ..controller_ref(uid, name)
    }
}

/// A ReplicaSet with revision annotation `revision` (None: no annotation) running `images`, with
/// the owner references given and the annotations the deployment controller copies (change cause,
/// replica bookkeeping).
pub(super) fn replica_set(
    revision: Option<&str>,
    images: &[&str],
    owners: Vec<OwnerReference>,
) -> ReplicaSet {
    let hash = format!(
        "h{}",
        revision.unwrap_or("none").replace(['-', '+', ' '], "_")
    );
    let mut annotations = map(&[(DESIRED_REPLICAS, "3"), (MAX_REPLICAS, "4")]);
    if let Some(revision) = revision {
        annotations.insert(REVISION.to_owned(), revision.to_owned());
        annotations.insert(CHANGE_CAUSE.to_owned(), format!("deploy v{revision}"));
    }
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(format!("{DEPLOY}-{hash}")),
            namespace: Some(NAMESPACE.to_owned()),
            labels: Some(map(&[("app", DEPLOY), (HASH, &hash)])),
            annotations: Some(annotations),
            owner_references: (!owners.is_empty()).then_some(owners),
            ..ObjectMeta::default()
        },
        spec: ReplicaSetSpec {
            replicas: Some(0),
            selector: selector(),
            template: Some(template(images, Some(&hash))),
            ..ReplicaSetSpec::default()
        },
        status: None,
    }
}

/// Revision `revision` of `web`, running `images`.
pub(super) fn owned(revision: i64, images: &[&str]) -> ReplicaSet {
    replica_set(
        Some(&revision.to_string()),
        images,
        vec![controller_ref(DEPLOY_UID, DEPLOY)],
    )
}

/// Revision `revision` of `web` running one container `web:v<revision>`.
pub(super) fn rev(revision: i64) -> ReplicaSet {
    owned(revision, &[&format!("web:v{revision}")])
}

/// The usual history: revisions 1, 2, 3 with `web` at revision 3.
pub(super) fn history() -> (Deployment, Vec<ReplicaSet>) {
    (deployment(&["web:v3"]), vec![rev(1), rev(2), rev(3)])
}

pub(super) fn actor() -> Actor {
    actor_for(ACTION)
}

pub(super) fn actor_for(action: &str) -> Actor {
    Actor {
        incident_name: INCIDENT.to_owned(),
        incident_uid: INCIDENT_UID.to_owned(),
        action_name: action.to_owned(),
    }
}

pub(super) fn marker() -> String {
    format!("{INCIDENT_UID}/{ACTION}")
}

pub(super) fn action(name: &str) -> RemediationAction {
    RemediationAction {
        name: name.to_owned(),
        dry_run: false,
        timeout_seconds: None,
        rollback: None,
        restart: None,
        scale: None,
    }
}

pub(super) fn rollback_to(to_revision: Option<i64>) -> RemediationAction {
    RemediationAction {
        rollback: Some(RollbackAction {
            deployment: DEPLOY.to_owned(),
            kind: None,
            to_revision,
            gitops: None,
            pause_shared_owner: None,
            gitops_resume: None,
        }),
        ..action(ACTION)
    }
}

pub(super) fn rollback() -> RemediationAction {
    rollback_to(None)
}

pub(super) fn restart() -> RemediationAction {
    RemediationAction {
        restart: Some(RestartAction {
            deployment: DEPLOY.to_owned(),
            kind: None,
        }),
        ..action(ACTION)
    }
}

pub(super) fn scale(replicas: i32) -> RemediationAction {
    RemediationAction {
        scale: Some(ScaleAction {
            deployment: DEPLOY.to_owned(),
            kind: None,
            replicas,
        }),
        ..action(ACTION)
    }
}

pub(super) fn plan_at(
    action: &RemediationAction,
    deployment: &Deployment,
    replica_sets: &[ReplicaSet],
) -> Plan {
    plan(action, deployment, replica_sets, &actor(), now())
}

#[track_caller]
pub(super) fn expect_change(plan: Plan) -> Planned {
    match plan {
        Plan::Change(planned) => planned,
        other => panic!("expected a change, got {other:?}"),
    }
}

#[track_caller]
pub(super) fn expect_refusal(plan: Plan) -> (&'static str, String) {
    match plan {
        Plan::Refuse { reason, message } => (reason, message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[track_caller]
pub(super) fn expect_skip(plan: Plan) -> (&'static str, String) {
    match plan {
        Plan::Skip { reason, message } => (reason, message),
        other => panic!("expected a skip, got {other:?}"),
    }
}

#[track_caller]
pub(super) fn json_patch(change: &Change) -> &[Value] {
    match change {
        Change::JsonPatch(operations) => operations,
        other => panic!("expected a JSON patch, got {other:?}"),
    }
}

#[track_caller]
pub(super) fn merge_patch(change: &Change) -> &Value {
    match change {
        Change::MergePatch(body) => body,
        other => panic!("expected a merge patch, got {other:?}"),
    }
}

/// The template a rollback to `rs` writes: the ReplicaSet's, without `pod-template-hash`.
pub(super) fn restored(rs: &ReplicaSet) -> Value {
    let mut template = serde_json::to_value(rs.spec.template.as_ref().expect("template"))
        .expect("serialize template");
    template["metadata"]["labels"]
        .as_object_mut()
        .expect("labels")
        .remove(HASH);
    template
}

/// `/spec/template` of a rollback's patch.
#[track_caller]
pub(super) fn patched_template(planned: &Planned) -> &Value {
    let operations = json_patch(&planned.change);
    assert_eq!(operations[0]["op"], "replace");
    assert_eq!(operations[0]["path"], "/spec/template");
    &operations[0]["value"]
}

/// Applies `change` as the API server would: patch, and a new generation if the spec changed.
pub(super) fn apply(deployment: &Deployment, change: &Change) -> Deployment {
    let mut document = serde_json::to_value(deployment).expect("serialize deployment");
    match change {
        Change::JsonPatch(operations) => {
            let patch: json_patch::Patch =
                serde_json::from_value(Value::Array(operations.clone())).expect("valid JSON patch");
            json_patch::patch(&mut document, &patch).expect("patch applies");
        }
        Change::MergePatch(body) => json_patch::merge(&mut document, body),
        Change::StrategicMergePatch(_) => panic!("a Deployment is never patched strategically"),
        Change::AbortRollout(_) => panic!("a Deployment is never aborted"),
    }
    let mut updated: Deployment = serde_json::from_value(document).expect("patched deployment");
    if serde_json::to_value(&updated.spec).ok() != serde_json::to_value(&deployment.spec).ok() {
        updated.metadata.generation = Some(deployment.metadata.generation.unwrap_or(0) + 1);
    }
    let version: i64 = deployment
        .metadata
        .resource_version
        .as_deref()
        .unwrap_or("0")
        .parse()
        .expect("numeric resourceVersion");
    updated.metadata.resource_version = Some((version + 1).to_string());
    updated
}
