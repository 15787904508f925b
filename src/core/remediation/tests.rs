//! Unit and property tests of remediation: planning (`plan`), following the rollout (`rollout`) and
//! each action's state machine (`step`).
//!
//! Rollback planning is checked against `kubectl rollout undo` (k8s.io/kubectl/pkg/polymorphichelpers
//! `DeploymentRollbacker` and k8s.io/kubectl/pkg/util/deployment), including a property test that
//! compares the planner with a literal transcription of kubectl's history search. The state machine
//! is driven the way the incident controller drives it: each status is stored (a JSON round trip) before the
//! change it asks for is applied to the Deployment, and a change is applied as the API server would
//! apply it (a JSON or merge patch that bumps `metadata.generation` when the spec changes).

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::{
    api::{
        apps::v1::{
            Deployment, DeploymentCondition, DeploymentSpec, DeploymentStatus, ReplicaSet,
            ReplicaSetSpec,
        },
        core::v1::{Container, PodSpec, PodTemplateSpec},
    },
    apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference, Time},
};
use proptest::prelude::*;
use serde_json::{Value, json};

use super::{
    plan::{Actor, Change, Plan, Planned, equal_ignoring_hash, images, plan},
    rollout::{Progress, progress},
    step::{DEFAULT_TIMEOUT_SECONDS, DeploymentState, Step, kind_label, step},
};
use crate::{
    api::{
        ActionKind, ActionPhase, ActionStatus, EntryType, RemediationAction, RestartAction,
        RollbackAction, ScaleAction,
        metadata::{
            ACTION_ANNOTATION, CONSENT_ANNOTATION, INCIDENT_ANNOTATION, RESTARTED_AT_ANNOTATION,
        },
    },
    core::timeline::Entry,
};

const NAMESPACE: &str = "shop";
const DEPLOY: &str = "web";
const DEPLOY_UID: &str = "5d0c7e2a-8f7b-4a51-b0c3-6a1e9f2d4c01";
const OTHER_UID: &str = "9e3b1f44-2c6d-4e8a-a7f5-0d2c6b8e1a77";
const INCIDENT: &str = "checkout-down";
const INCIDENT_UID: &str = "7c1f6a52-3b7e-4c36-9d1e-0a5b2f8e4d11";
const ACTION: &str = "undo";
/// The Deployment's generation when an action is planned.
const GENERATION: i64 = 7;
/// The test clock's origin.
const EPOCH: i64 = 1_800_000_000;

const REVISION: &str = "deployment.kubernetes.io/revision";
const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
const ROLLBACK_TO: &str = "deprecated.deployment.rollback.to";
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";
const HASH: &str = "pod-template-hash";

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

/// `seconds` after the test clock's origin.
fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(EPOCH + seconds).expect("valid timestamp")
}

fn now() -> Timestamp {
    at(0)
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn selector() -> LabelSelector {
    LabelSelector {
        match_labels: Some(map(&[("app", DEPLOY)])),
        ..LabelSelector::default()
    }
}

/// A pod template running `images` (containers c0, c1, ...), labelled `app=web` and, as a
/// ReplicaSet's template is, with `pod-template-hash` when `hash` is given.
fn template(images: &[&str], hash: Option<&str>) -> PodTemplateSpec {
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
fn deployment(images: &[&str]) -> Deployment {
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

fn annotate(mut deployment: Deployment, key: &str, value: &str) -> Deployment {
    deployment
        .metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(key.to_owned(), value.to_owned());
    deployment
}

fn paused(mut deployment: Deployment) -> Deployment {
    deployment.spec.paused = Some(true);
    deployment
}

fn with_status(mut deployment: Deployment, status: DeploymentStatus) -> Deployment {
    deployment.status = Some(status);
    deployment
}

/// A Deployment status: `observed` generation, `replicas` in total, `updated` of them from the
/// newest template, `available` of them available and `unavailable` missing.
fn rollout(
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

fn condition(type_: &str, status: &str, reason: &str, message: &str) -> DeploymentCondition {
    DeploymentCondition {
        type_: Some(type_.to_owned()),
        status: Some(status.to_owned()),
        reason: Some(reason.to_owned()),
        message: Some(message.to_owned()),
        ..DeploymentCondition::default()
    }
}

fn with_condition(
    mut status: DeploymentStatus,
    condition: DeploymentCondition,
) -> DeploymentStatus {
    status
        .conditions
        .get_or_insert_with(Vec::new)
        .push(condition);
    status
}

fn controller_ref(uid: &str, name: &str) -> OwnerReference {
    OwnerReference {
        api_version: "apps/v1".to_owned(),
        kind: "Deployment".to_owned(),
        name: name.to_owned(),
        uid: uid.to_owned(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

fn plain_ref(uid: &str, name: &str) -> OwnerReference {
    OwnerReference {
        controller: None,
        block_owner_deletion: None,
        ..controller_ref(uid, name)
    }
}

/// A ReplicaSet with revision annotation `revision` (None: no annotation) running `images`, with
/// the owner references given and the annotations the deployment controller copies (change cause,
/// replica bookkeeping).
fn replica_set(revision: Option<&str>, images: &[&str], owners: Vec<OwnerReference>) -> ReplicaSet {
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
fn owned(revision: i64, images: &[&str]) -> ReplicaSet {
    replica_set(
        Some(&revision.to_string()),
        images,
        vec![controller_ref(DEPLOY_UID, DEPLOY)],
    )
}

/// Revision `revision` of `web` running one container `web:v<revision>`.
fn rev(revision: i64) -> ReplicaSet {
    owned(revision, &[&format!("web:v{revision}")])
}

/// The usual history: revisions 1, 2, 3 with `web` at revision 3.
fn history() -> (Deployment, Vec<ReplicaSet>) {
    (deployment(&["web:v3"]), vec![rev(1), rev(2), rev(3)])
}

fn actor() -> Actor {
    actor_for(ACTION)
}

fn actor_for(action: &str) -> Actor {
    Actor {
        incident_name: INCIDENT.to_owned(),
        incident_uid: INCIDENT_UID.to_owned(),
        action_name: action.to_owned(),
    }
}

fn marker() -> String {
    format!("{INCIDENT_UID}/{ACTION}")
}

fn action(name: &str) -> RemediationAction {
    RemediationAction {
        name: name.to_owned(),
        dry_run: false,
        timeout_seconds: None,
        rollback: None,
        restart: None,
        scale: None,
    }
}

fn rollback_to(to_revision: Option<i64>) -> RemediationAction {
    RemediationAction {
        rollback: Some(RollbackAction {
            deployment: DEPLOY.to_owned(),
            to_revision,
        }),
        ..action(ACTION)
    }
}

fn rollback() -> RemediationAction {
    rollback_to(None)
}

fn restart() -> RemediationAction {
    RemediationAction {
        restart: Some(RestartAction {
            deployment: DEPLOY.to_owned(),
        }),
        ..action(ACTION)
    }
}

fn scale(replicas: i32) -> RemediationAction {
    RemediationAction {
        scale: Some(ScaleAction {
            deployment: DEPLOY.to_owned(),
            replicas,
        }),
        ..action(ACTION)
    }
}

fn plan_at(
    action: &RemediationAction,
    deployment: &Deployment,
    replica_sets: &[ReplicaSet],
) -> Plan {
    plan(action, deployment, replica_sets, &actor(), now())
}

#[track_caller]
fn expect_change(plan: Plan) -> Planned {
    match plan {
        Plan::Change(planned) => planned,
        other => panic!("expected a change, got {other:?}"),
    }
}

#[track_caller]
fn expect_refusal(plan: Plan) -> (&'static str, String) {
    match plan {
        Plan::Refuse { reason, message } => (reason, message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[track_caller]
fn expect_skip(plan: Plan) -> (&'static str, String) {
    match plan {
        Plan::Skip { reason, message } => (reason, message),
        other => panic!("expected a skip, got {other:?}"),
    }
}

#[track_caller]
fn json_patch(change: &Change) -> &[Value] {
    match change {
        Change::JsonPatch(operations) => operations,
        other => panic!("expected a JSON patch, got {other:?}"),
    }
}

#[track_caller]
fn merge_patch(change: &Change) -> &Value {
    match change {
        Change::MergePatch(body) => body,
        other => panic!("expected a merge patch, got {other:?}"),
    }
}

/// The template a rollback to `rs` writes: the ReplicaSet's, without `pod-template-hash`.
fn restored(rs: &ReplicaSet) -> Value {
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
fn patched_template(planned: &Planned) -> &Value {
    let operations = json_patch(&planned.change);
    assert_eq!(operations[0]["op"], "replace");
    assert_eq!(operations[0]["path"], "/spec/template");
    &operations[0]["value"]
}

/// Applies `change` as the API server would: patch, and a new generation if the spec changed.
fn apply(deployment: &Deployment, change: &Change) -> Deployment {
    let mut document = serde_json::to_value(deployment).expect("serialize deployment");
    match change {
        Change::JsonPatch(operations) => {
            let patch: json_patch::Patch =
                serde_json::from_value(Value::Array(operations.clone())).expect("valid JSON patch");
            json_patch::patch(&mut document, &patch).expect("patch applies");
        }
        Change::MergePatch(body) => json_patch::merge(&mut document, body),
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

/// What the API server gives back after the status is stored.
fn stored(status: &ActionStatus) -> ActionStatus {
    serde_json::from_value(serde_json::to_value(status).expect("serialize status"))
        .expect("deserialize status")
}

fn facts<'a>(
    deployment: Option<&'a Deployment>,
    replica_sets: &'a [ReplicaSet],
) -> DeploymentState<'a> {
    DeploymentState {
        deployment,
        replica_sets,
    }
}

/// A step of `spec` from `current` at `now`, for the test incident and action `undo`.
#[track_caller]
fn step_at(
    spec: Option<&RemediationAction>,
    current: Option<&ActionStatus>,
    deployment: Option<&Deployment>,
    replica_sets: &[ReplicaSet],
    now: Timestamp,
) -> Step {
    step(
        spec,
        current,
        facts(deployment, replica_sets),
        &actor(),
        Some("ana".to_owned()),
        now,
    )
    .expect("a step")
}

fn entry_types(step: &Step) -> Vec<EntryType> {
    step.entries.iter().map(|e| e.type_).collect()
}

/// The stored status of a rollback that was planned (from revision 3 to 2) and is being applied.
fn running() -> ActionStatus {
    let (deployment, replica_sets) = history();
    let first = step_at(
        Some(&rollback()),
        None,
        Some(&deployment),
        &replica_sets,
        now(),
    );
    assert_eq!(first.status.phase, ActionPhase::Running);
    stored(&first.status)
}

/// `running()` once the change landed at generation 8 (at `at(10)`).
fn verifying() -> ActionStatus {
    ActionStatus {
        phase: ActionPhase::Verifying,
        reason: Some("RollingOut".to_owned()),
        applied_generation: Some(GENERATION + 1),
        applied_at: Some(Time(at(10))),
        ..running()
    }
}

/// `web` after the rollback to revision 2 landed: generation 8, carrying our marker.
fn rolled_back(status: DeploymentStatus) -> Deployment {
    let (deployment, replica_sets) = history();
    let change = expect_change(plan_at(&rollback(), &deployment, &replica_sets)).change;
    with_status(apply(&deployment, &change), status)
}

// ---------------------------------------------------------------------------------------------
// plan: rollback
// ---------------------------------------------------------------------------------------------

#[test]
fn rollback_to_the_previous_revision_picks_the_second_highest() {
    let (deployment, replica_sets) = history();
    let planned = expect_change(plan_at(&rollback(), &deployment, &replica_sets));
    assert_eq!(planned.from_revision, Some(3));
    assert_eq!(planned.to_revision, Some(2));
    assert_eq!(planned.images_before, vec!["web:v3"]);
    assert_eq!(planned.images_after, vec!["web:v2"]);
    assert_eq!(patched_template(&planned), &restored(&replica_sets[1]));
    assert_eq!(
        planned.summary,
        "roll back deployment/web from revision 3 (web:v3) to revision 2 (web:v2)"
    );
}

#[test]
fn rollback_with_to_revision_zero_is_the_previous_revision() {
    let (deployment, replica_sets) = history();
    assert_eq!(
        plan_at(&rollback_to(Some(0)), &deployment, &replica_sets),
        plan_at(&rollback_to(None), &deployment, &replica_sets)
    );
}

#[test]
fn rollback_previous_revision_does_not_depend_on_list_order() {
    let deployment = deployment(&["web:v4"]);
    let orders = [
        vec![rev(4), rev(3), rev(2), rev(1)],
        vec![rev(1), rev(2), rev(3), rev(4)],
        vec![rev(2), rev(4), rev(1), rev(3)],
        vec![rev(3), rev(1), rev(4), rev(2)],
    ];
    for replica_sets in orders {
        let planned = expect_change(plan_at(&rollback(), &deployment, &replica_sets));
        assert_eq!(planned.to_revision, Some(3), "order {replica_sets:?}");
        assert_eq!(planned.images_after, vec!["web:v3"]);
    }
}

#[test]
fn rollback_previous_revision_skips_gaps() {
    let deployment = deployment(&["web:v4"]);
    for replica_sets in [
        vec![rev(1), rev(3), rev(4)],
        vec![rev(4), rev(1), rev(3)],
        vec![rev(3), rev(4), rev(1)],
    ] {
        let planned = expect_change(plan_at(&rollback(), &deployment, &replica_sets));
        assert_eq!(planned.to_revision, Some(3));
        assert_eq!(patched_template(&planned), &restored(&rev(3)));
    }
    // Large gaps too: 2, 10, 7 -> 7.
    let deployment = annotate(self::deployment(&["web:v10"]), REVISION, "10");
    let planned = expect_change(plan_at(
        &rollback(),
        &deployment,
        &[rev(2), rev(10), rev(7)],
    ));
    assert_eq!(planned.to_revision, Some(7));
    assert_eq!(planned.from_revision, Some(10));
}

#[test]
fn rollback_to_an_explicit_revision() {
    let (deployment, replica_sets) = history();
    let planned = expect_change(plan_at(&rollback_to(Some(1)), &deployment, &replica_sets));
    assert_eq!(planned.from_revision, Some(3));
    assert_eq!(planned.to_revision, Some(1));
    assert_eq!(planned.images_after, vec!["web:v1"]);
    assert_eq!(patched_template(&planned), &restored(&replica_sets[0]));
}

#[test]
fn rollback_to_an_explicit_revision_that_is_not_the_previous_one_in_any_order() {
    let deployment = deployment(&["web:v5"]);
    let replica_sets = vec![rev(5), rev(2), rev(4), rev(1)];
    let planned = expect_change(plan_at(&rollback_to(Some(2)), &deployment, &replica_sets));
    assert_eq!(planned.to_revision, Some(2));
    assert_eq!(patched_template(&planned), &restored(&rev(2)));
}

#[test]
fn rollback_to_a_missing_revision_uses_kubectls_message() {
    let (deployment, replica_sets) = history();
    for revision in [4, 9, i64::MAX] {
        let (reason, message) = expect_refusal(plan_at(
            &rollback_to(Some(revision)),
            &deployment,
            &replica_sets,
        ));
        assert_eq!(reason, "RevisionNotFound");
        assert_eq!(
            message,
            format!("unable to find specified revision {revision} in history")
        );
    }
}

#[test]
fn rollback_to_a_negative_revision_is_not_found() {
    let (deployment, replica_sets) = history();
    for revision in [-1, -3, i64::MIN] {
        let (reason, message) = expect_refusal(plan_at(
            &rollback_to(Some(revision)),
            &deployment,
            &replica_sets,
        ));
        assert_eq!(reason, "RevisionNotFound");
        assert_eq!(
            message,
            format!("unable to find specified revision {revision} in history")
        );
    }
    // Even with no history at all: kubectl checks the sign first.
    let (reason, _) = expect_refusal(plan_at(&rollback_to(Some(-1)), &deployment, &[]));
    assert_eq!(reason, "RevisionNotFound");
}

#[test]
fn rollback_without_previous_revision_has_no_history() {
    let deployment = deployment(&["web:v3"]);
    for replica_sets in [vec![], vec![rev(3)]] {
        let (reason, message) = expect_refusal(plan_at(&rollback(), &deployment, &replica_sets));
        assert_eq!(reason, "NoHistory");
        assert_eq!(message, "no rollout history found for deployment \"web\"");
    }
    // An explicit revision that exists needs no second one.
    let planned = expect_change(plan_at(&rollback_to(Some(1)), &deployment, &[rev(1)]));
    assert_eq!(planned.to_revision, Some(1));
}

#[test]
fn rollback_ignores_replica_sets_the_deployment_does_not_control() {
    let deployment = deployment(&["web:v3"]);
    let foreign = |revision: i64, owners: Vec<OwnerReference>| {
        replica_set(
            Some(&revision.to_string()),
            &[&format!("other:v{revision}")],
            owners,
        )
    };
    let strangers = vec![
        // Controlled by another Deployment.
        foreign(9, vec![controller_ref(OTHER_UID, "api")]),
        // Owned by web, but not as controller (controller unset, and explicitly false).
        foreign(8, vec![plain_ref(DEPLOY_UID, DEPLOY)]),
        foreign(
            7,
            vec![OwnerReference {
                controller: Some(false),
                ..controller_ref(DEPLOY_UID, DEPLOY)
            }],
        ),
        // Owned by web without control, controlled by another.
        foreign(
            6,
            vec![
                plain_ref(DEPLOY_UID, DEPLOY),
                controller_ref(OTHER_UID, "api"),
            ],
        ),
        // A controller reference with web's name but another uid (a deleted and re-created web).
        foreign(5, vec![controller_ref(OTHER_UID, DEPLOY)]),
        // No owner at all.
        foreign(4, vec![]),
    ];

    let mut replica_sets = strangers.clone();
    replica_sets.extend([rev(1), rev(3)]);
    let planned = expect_change(plan_at(&rollback(), &deployment, &replica_sets));
    assert_eq!(planned.to_revision, Some(1));
    assert_eq!(planned.images_after, vec!["web:v1"]);

    // Their revisions cannot be named either.
    for revision in 4..=9 {
        let (reason, _) = expect_refusal(plan_at(
            &rollback_to(Some(revision)),
            &deployment,
            &replica_sets,
        ));
        assert_eq!(reason, "RevisionNotFound", "revision {revision}");
    }

    // With only one revision of its own, web has no history, however many strangers there are.
    let mut replica_sets = strangers;
    replica_sets.push(rev(3));
    let (reason, _) = expect_refusal(plan_at(&rollback(), &deployment, &replica_sets));
    assert_eq!(reason, "NoHistory");
}

#[test]
fn rollback_counts_a_controlled_replica_set_among_several_owner_references() {
    let deployment = deployment(&["web:v3"]);
    let shared = replica_set(
        Some("2"),
        &["web:v2"],
        vec![
            plain_ref(OTHER_UID, "api"),
            controller_ref(DEPLOY_UID, DEPLOY),
        ],
    );
    let planned = expect_change(plan_at(&rollback(), &deployment, &[shared, rev(3)]));
    assert_eq!(planned.to_revision, Some(2));
}

#[test]
fn rollback_counts_a_replica_set_without_revision_as_revision_zero() {
    let deployment = deployment(&["web:v3"]);
    let unnumbered = replica_set(None, &["web:v0"], vec![controller_ref(DEPLOY_UID, DEPLOY)]);
    let planned = expect_change(plan_at(
        &rollback(),
        &deployment,
        &[unnumbered.clone(), rev(3)],
    ));
    assert_eq!(planned.to_revision, Some(0));
    assert_eq!(planned.images_after, vec!["web:v0"]);
    assert_eq!(patched_template(&planned), &restored(&unnumbered));

    // Below any numbered revision.
    let planned = expect_change(plan_at(
        &rollback(),
        &deployment,
        &[unnumbered, rev(1), rev(3)],
    ));
    assert_eq!(planned.to_revision, Some(1));
}

#[test]
fn rollback_skips_replica_sets_with_a_garbled_revision() {
    let deployment = deployment(&["web:v3"]);
    let garbled = |text: &str| {
        replica_set(
            Some(text),
            &[&format!("web:{text}")],
            vec![controller_ref(DEPLOY_UID, DEPLOY)],
        )
    };
    let replica_sets = vec![garbled("x"), garbled("2.5"), rev(1), garbled(""), rev(3)];
    let planned = expect_change(plan_at(&rollback(), &deployment, &replica_sets));
    assert_eq!(planned.to_revision, Some(1));

    let (reason, _) = expect_refusal(plan_at(&rollback(), &deployment, &[garbled("x"), rev(3)]));
    assert_eq!(reason, "NoHistory");
}

#[test]
fn rollback_ignores_negative_revisions_when_looking_for_the_previous_one() {
    // kubectl starts its search from revision -1: a negative revision is never "previous".
    let deployment = deployment(&["web:v3"]);
    for negative in ["-1", "-2"] {
        let odd = replica_set(
            Some(negative),
            &["web:odd"],
            vec![controller_ref(DEPLOY_UID, DEPLOY)],
        );
        let (reason, message) =
            expect_refusal(plan_at(&rollback(), &deployment, &[odd.clone(), rev(3)]));
        assert_eq!(reason, "NoHistory");
        assert_eq!(message, "no rollout history found for deployment \"web\"");
        let planned = expect_change(plan_at(&rollback(), &deployment, &[odd, rev(1), rev(3)]));
        assert_eq!(planned.to_revision, Some(1));
    }
}

#[test]
fn rollback_of_a_paused_deployment_is_refused() {
    let (deployment, replica_sets) = history();
    let deployment = paused(deployment);
    for action in [rollback(), rollback_to(Some(1)), rollback_to(Some(2))] {
        let (reason, message) = expect_refusal(plan_at(&action, &deployment, &replica_sets));
        assert_eq!(reason, "Paused");
        assert!(message.contains("paused"), "{message}");
        assert!(
            message.contains("kubectl rollout resume deployment/web"),
            "{message}"
        );
    }
}

#[test]
fn rollback_of_a_paused_deployment_reports_history_errors_first() {
    let deployment = paused(deployment(&["web:v3"]));
    let (reason, message) = expect_refusal(plan_at(
        &rollback_to(Some(9)),
        &deployment,
        &[rev(1), rev(3)],
    ));
    assert_eq!(reason, "RevisionNotFound");
    assert_eq!(message, "unable to find specified revision 9 in history");

    let (reason, _) = expect_refusal(plan_at(
        &rollback_to(Some(-1)),
        &deployment,
        &[rev(1), rev(3)],
    ));
    assert_eq!(reason, "RevisionNotFound");

    let (reason, _) = expect_refusal(plan_at(&rollback(), &deployment, &[rev(3)]));
    assert_eq!(reason, "NoHistory");
}

#[test]
fn paused_false_does_not_refuse() {
    let (mut deployment, replica_sets) = history();
    deployment.spec.paused = Some(false);
    expect_change(plan_at(&rollback(), &deployment, &replica_sets));
}

#[test]
fn rollback_to_the_current_template_is_skipped() {
    // web runs revision 2's template although revision 3 is the newest (say, edited back by hand):
    // the target only differs from it by pod-template-hash.
    let deployment = deployment(&["web:v2"]);
    let replica_sets = vec![rev(1), rev(2), rev(3)];
    let (reason, message) = expect_skip(plan_at(&rollback(), &deployment, &replica_sets));
    assert_eq!(reason, "AlreadyAtRevision");
    assert_eq!(message, "current template already matches revision 2");

    // Same with an explicit revision.
    let deployment = self::deployment(&["web:v3"]);
    let (reason, message) = expect_skip(plan_at(&rollback_to(Some(3)), &deployment, &replica_sets));
    assert_eq!(reason, "AlreadyAtRevision");
    assert_eq!(message, "current template already matches revision 3");
}

#[test]
fn skipping_needs_the_templates_to_match_beyond_the_hash() {
    let replica_sets = vec![rev(1), rev(2), rev(3)];
    // Another label on the current template.
    let mut deployment = deployment(&["web:v2"]);
    deployment
        .spec
        .template
        .metadata
        .as_mut()
        .and_then(|m| m.labels.as_mut())
        .expect("labels")
        .insert("track".to_owned(), "canary".to_owned());
    expect_change(plan_at(&rollback(), &deployment, &replica_sets));

    // A different pod-template-hash on the current template still matches.
    let mut deployment = self::deployment(&["web:v2"]);
    deployment
        .spec
        .template
        .metadata
        .as_mut()
        .and_then(|m| m.labels.as_mut())
        .expect("labels")
        .insert(HASH.to_owned(), "stale".to_owned());
    expect_skip(plan_at(&rollback(), &deployment, &replica_sets));
}

#[test]
fn a_template_labelled_only_by_its_hash_matches_an_unlabelled_one() {
    let mut target = rev(2);
    target
        .spec
        .template
        .as_mut()
        .and_then(|t| t.metadata.as_mut())
        .expect("metadata")
        .labels = Some(map(&[(HASH, "abc")]));
    let mut deployment = deployment(&["web:v2"]);
    deployment.spec.template.metadata = Some(ObjectMeta::default());
    let (reason, _) = expect_skip(plan_at(&rollback(), &deployment, &[rev(1), target, rev(3)]));
    assert_eq!(reason, "AlreadyAtRevision");
}

#[test]
fn equal_ignoring_hash_is_kubectls_comparison() {
    let a = template(&["web:v1"], Some("aaa"));
    assert!(equal_ignoring_hash(&a, &template(&["web:v1"], Some("bbb"))));
    assert!(equal_ignoring_hash(&a, &template(&["web:v1"], None)));
    assert!(equal_ignoring_hash(&template(&["web:v1"], None), &a));
    assert!(!equal_ignoring_hash(
        &a,
        &template(&["web:v2"], Some("aaa"))
    ));
    assert!(!equal_ignoring_hash(
        &a,
        &template(&["web:v1", "side:v1"], Some("aaa"))
    ));
    let mut labelled = template(&["web:v1"], None);
    labelled
        .metadata
        .as_mut()
        .and_then(|m| m.labels.as_mut())
        .expect("labels")
        .insert("tier".to_owned(), "front".to_owned());
    assert!(!equal_ignoring_hash(&a, &labelled));
}

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

#[test]
fn consent_annotation_refuses_every_kind() {
    let (deployment, replica_sets) = history();
    let deployment = annotate(deployment, CONSENT_ANNOTATION, "disabled");
    for action in [
        rollback(),
        rollback_to(Some(1)),
        restart(),
        scale(5),
        scale(3),
    ] {
        let (reason, message) = expect_refusal(plan_at(&action, &deployment, &replica_sets));
        assert_eq!(reason, "RemediationDisabled", "{action:?}");
        assert!(
            message.contains("incident.dev/remediation=disabled"),
            "{message}"
        );
        assert!(message.contains("web"), "{message}");
    }
    // Before anything else, even a missing revision or a pause.
    let deployment = paused(deployment);
    for action in [rollback_to(Some(9)), rollback_to(Some(-1)), restart()] {
        let (reason, _) = expect_refusal(plan_at(&action, &deployment, &[]));
        assert_eq!(reason, "RemediationDisabled");
    }
}

#[test]
fn other_consent_values_allow_remediation() {
    let (deployment, replica_sets) = history();
    for value in ["enabled", "Disabled", ""] {
        let deployment = annotate(deployment.clone(), CONSENT_ANNOTATION, value);
        expect_change(plan_at(&rollback(), &deployment, &replica_sets));
        expect_change(plan_at(&restart(), &deployment, &replica_sets));
        expect_change(plan_at(&scale(5), &deployment, &replica_sets));
    }
}

#[test]
fn an_action_of_no_kind_is_refused() {
    let (deployment, replica_sets) = history();
    let (reason, _) = expect_refusal(plan_at(&action("empty"), &deployment, &replica_sets));
    assert_eq!(reason, "InvalidAction");
}

// ---------------------------------------------------------------------------------------------
// plan: restart and scale
// ---------------------------------------------------------------------------------------------

#[test]
fn restart_sets_restarted_at_and_the_markers() {
    let (deployment, replica_sets) = history();
    let when: Timestamp = "2027-01-15T08:09:10.987654321Z".parse().expect("timestamp");
    let planned = expect_change(plan(&restart(), &deployment, &replica_sets, &actor(), when));
    assert_eq!(
        merge_patch(&planned.change),
        &json!({
            "metadata": { "annotations": {
                INCIDENT_ANNOTATION: INCIDENT,
                ACTION_ANNOTATION: marker(),
            } },
            "spec": { "template": { "metadata": { "annotations": {
                RESTARTED_AT_ANNOTATION: "2027-01-15T08:09:10Z",
            } } } },
        })
    );
    assert_eq!(planned.from_revision, Some(3));
    assert_eq!(planned.to_revision, None);
    assert_eq!(planned.images_before, vec!["web:v3"]);
    assert_eq!(planned.images_after, vec!["web:v3"]);
    assert_eq!(planned.summary, "restart deployment/web: replace every pod");
}

#[test]
fn restart_stamp_is_rfc3339_seconds_in_utc() {
    let deployment = deployment(&["web:v3"]);
    for (seconds, expected) in [
        (0, "1970-01-01T00:00:00Z"),
        (1_800_000_000, "2027-01-15T08:00:00Z"),
        (951_825_599, "2000-02-29T11:59:59Z"),
    ] {
        let when = Timestamp::from_second(seconds).expect("timestamp");
        let planned = expect_change(plan(&restart(), &deployment, &[], &actor(), when));
        let stamp = &merge_patch(&planned.change)["spec"]["template"]["metadata"]["annotations"]
            [RESTARTED_AT_ANNOTATION];
        assert_eq!(stamp, expected);
        // And it reads back as the same instant.
        let parsed: Timestamp = stamp.as_str().expect("string").parse().expect("RFC 3339");
        assert_eq!(parsed, when);
    }
}

#[test]
fn restart_patch_keeps_the_template_and_other_annotations() {
    let (deployment, _) = history();
    let planned = expect_change(plan_at(&restart(), &deployment, &[]));
    let after = apply(&deployment, &planned.change);
    assert_eq!(after.metadata.generation, Some(GENERATION + 1));
    assert_eq!(images(&after.spec.template), vec!["web:v3"]);
    let annotations = after.metadata.annotations.clone().expect("annotations");
    assert_eq!(
        annotations.get(CHANGE_CAUSE).map(String::as_str),
        Some("deploy v3")
    );
    assert_eq!(annotations.get(ACTION_ANNOTATION), Some(&marker()));
    let pod_annotations = after
        .spec
        .template
        .metadata
        .and_then(|m| m.annotations)
        .expect("pod annotations");
    assert_eq!(
        pod_annotations
            .get(RESTARTED_AT_ANNOTATION)
            .map(String::as_str),
        Some("2027-01-15T08:00:00Z")
    );
}

#[test]
fn restart_of_a_paused_deployment_is_refused() {
    let deployment = paused(deployment(&["web:v3"]));
    let (reason, message) = expect_refusal(plan_at(&restart(), &deployment, &[]));
    assert_eq!(reason, "Paused");
    assert!(message.contains("paused"), "{message}");
}

#[test]
fn scale_sets_replicas_and_the_markers() {
    let (deployment, replica_sets) = history();
    let planned = expect_change(plan_at(&scale(5), &deployment, &replica_sets));
    assert_eq!(
        merge_patch(&planned.change),
        &json!({
            "metadata": { "annotations": {
                INCIDENT_ANNOTATION: INCIDENT,
                ACTION_ANNOTATION: marker(),
            } },
            "spec": { "replicas": 5 },
        })
    );
    assert_eq!(planned.from_revision, Some(3));
    assert_eq!(planned.to_revision, None);
    assert_eq!(planned.images_before, vec!["web:v3"]);
    assert_eq!(planned.images_after, vec!["web:v3"]);
    assert_eq!(planned.summary, "scale deployment/web from 3 to 5 replicas");

    let after = apply(&deployment, &planned.change);
    assert_eq!(after.spec.replicas, Some(5));
    assert_eq!(after.metadata.generation, Some(GENERATION + 1));

    // To zero, too.
    let planned = expect_change(plan_at(&scale(0), &deployment, &replica_sets));
    assert_eq!(merge_patch(&planned.change)["spec"]["replicas"], 0);
}

#[test]
fn scale_to_the_current_count_is_skipped() {
    let deployment = deployment(&["web:v3"]);
    let (reason, message) = expect_skip(plan_at(&scale(3), &deployment, &[]));
    assert_eq!(reason, "AlreadyScaled");
    assert_eq!(message, "deployment web already has 3 replicas");

    // Unset replicas mean 1, as the API server defaults them.
    let mut unset = deployment;
    unset.spec.replicas = None;
    let (reason, _) = expect_skip(plan_at(&scale(1), &unset, &[]));
    assert_eq!(reason, "AlreadyScaled");
    let planned = expect_change(plan_at(&scale(2), &unset, &[]));
    assert_eq!(planned.summary, "scale deployment/web from 1 to 2 replicas");
}

#[test]
fn scale_works_on_a_paused_deployment_like_kubectl_scale() {
    let deployment = paused(deployment(&["web:v3"]));
    expect_change(plan_at(&scale(6), &deployment, &[]));
}

#[test]
fn images_of_a_template_without_spec_are_empty() {
    assert!(images(&PodTemplateSpec::default()).is_empty());
    let mut no_image = template(&["x"], None);
    no_image.spec.as_mut().expect("spec").containers[0].image = None;
    assert_eq!(images(&no_image), vec![String::new()]);
}

// ---------------------------------------------------------------------------------------------
// verify::progress
// ---------------------------------------------------------------------------------------------

#[track_caller]
fn in_progress(progress: Progress) -> String {
    match progress {
        Progress::InProgress { message } => message,
        other => panic!("expected a rollout in progress, got {other:?}"),
    }
}

#[test]
fn progress_waits_for_the_controller_to_observe_the_change() {
    let deployment = with_status(deployment(&["web:v2"]), rollout(7, 3, 3, 3, 0));
    let message = in_progress(progress(&deployment, 8));
    assert!(message.contains("see the change"), "{message}");

    let mut no_status = deployment.clone();
    no_status.status = None;
    in_progress(progress(&no_status, 8));

    let mut no_observed = deployment;
    no_observed
        .status
        .as_mut()
        .expect("status")
        .observed_generation = None;
    in_progress(progress(&no_observed, 8));
}

#[test]
fn progress_waits_for_every_replica_to_be_updated() {
    let deployment = with_status(deployment(&["web:v2"]), rollout(8, 4, 1, 3, 0));
    assert_eq!(
        in_progress(progress(&deployment, 8)),
        "1 of 3 replicas updated"
    );
    let none_updated = with_status(
        deployment.clone(),
        DeploymentStatus {
            updated_replicas: None,
            ..rollout(8, 3, 0, 3, 0)
        },
    );
    assert_eq!(
        in_progress(progress(&none_updated, 8)),
        "0 of 3 replicas updated"
    );
}

#[test]
fn progress_waits_for_old_replicas_to_go() {
    let deployment = with_status(deployment(&["web:v2"]), rollout(8, 5, 3, 3, 0));
    assert_eq!(
        in_progress(progress(&deployment, 8)),
        "2 old replicas pending termination"
    );
}

#[test]
fn progress_waits_for_updated_replicas_to_be_available() {
    let deployment = with_status(deployment(&["web:v2"]), rollout(8, 3, 3, 2, 1));
    assert_eq!(
        in_progress(progress(&deployment, 8)),
        "2 of 3 updated replicas available"
    );
    // Available short of updated, even with no unavailable count.
    let deployment = with_status(deployment.clone(), rollout(8, 3, 3, 1, 0));
    assert_eq!(
        in_progress(progress(&deployment, 8)),
        "1 of 3 updated replicas available"
    );
}

#[test]
fn progress_waits_while_replicas_are_unavailable() {
    // All counted available, yet the controller still reports one unavailable.
    let deployment = with_status(deployment(&["web:v2"]), rollout(8, 3, 3, 3, 1));
    in_progress(progress(&deployment, 8));
}

#[test]
fn progress_is_complete_when_everything_matches() {
    let deployment = with_status(deployment(&["web:v2"]), rollout(8, 3, 3, 3, 0));
    assert_eq!(
        progress(&deployment, 8),
        Progress::Complete {
            available: 3,
            desired: 3
        }
    );
    // A later generation observed counts as well (the controller is past ours).
    let later = with_status(deployment.clone(), rollout(9, 3, 3, 3, 0));
    assert_eq!(
        progress(&later, 8),
        Progress::Complete {
            available: 3,
            desired: 3
        }
    );
    // Scaled to zero: nothing to wait for.
    let mut zero = with_status(deployment, rollout(8, 0, 0, 0, 0));
    zero.spec.replicas = Some(0);
    assert_eq!(
        progress(&zero, 8),
        Progress::Complete {
            available: 0,
            desired: 0
        }
    );
}

#[test]
fn progress_fails_when_the_progress_deadline_is_exceeded() {
    let stalled = with_condition(
        rollout(8, 4, 1, 3, 1),
        condition(
            "Progressing",
            "False",
            "ProgressDeadlineExceeded",
            "ReplicaSet \"web-h2\" has timed out progressing.",
        ),
    );
    let deployment = with_status(deployment(&["web:v2"]), stalled.clone());
    assert_eq!(
        progress(&deployment, 8),
        Progress::Failed {
            reason: "ProgressDeadlineExceeded".to_owned(),
            message: "ReplicaSet \"web-h2\" has timed out progressing.".to_owned(),
        }
    );

    // Without a message, a default one.
    let mut quiet = stalled.clone();
    for c in quiet.conditions.iter_mut().flatten() {
        c.message = None;
    }
    match progress(&with_status(deployment.clone(), quiet), 8) {
        Progress::Failed { reason, message } => {
            assert_eq!(reason, "ProgressDeadlineExceeded");
            assert!(message.contains("progressDeadlineSeconds"), "{message}");
        }
        other => panic!("expected a failure, got {other:?}"),
    }

    // Not before the controller saw the change: the condition may be about an earlier rollout.
    let earlier = with_status(
        deployment,
        DeploymentStatus {
            observed_generation: Some(7),
            ..stalled
        },
    );
    in_progress(progress(&earlier, 8));
}

#[test]
fn other_conditions_do_not_fail_the_rollout() {
    let progressing = with_condition(
        rollout(8, 4, 1, 3, 1),
        condition(
            "Progressing",
            "True",
            "ReplicaSetUpdated",
            "ReplicaSet \"web-h2\" is progressing.",
        ),
    );
    let deployment = with_status(deployment(&["web:v2"]), progressing);
    in_progress(progress(&deployment, 8));

    let odd = with_condition(
        rollout(8, 3, 3, 3, 0),
        condition(
            "Available",
            "False",
            "ProgressDeadlineExceeded",
            "not Progressing",
        ),
    );
    let deployment = with_status(deployment, odd);
    assert!(matches!(
        progress(&deployment, 8),
        Progress::Complete { .. }
    ));
}

// ---------------------------------------------------------------------------------------------
// step: the state machine
// ---------------------------------------------------------------------------------------------

#[test]
fn a_new_action_is_requested_then_started_with_its_plan() {
    let (deployment, replica_sets) = history();
    let when = at(0)
        .checked_add(SignedDuration::from_millis(750))
        .expect("timestamp");
    let step = step_at(
        Some(&rollback()),
        None,
        Some(&deployment),
        &replica_sets,
        when,
    );

    assert_eq!(
        step.entries,
        vec![
            Entry {
                type_: EntryType::ActionRequested,
                message: "Rollback of deployment/web to the previous revision requested as action undo"
                    .to_owned(),
                actor: Some("ana".to_owned()),
                warning: false,
            },
            Entry {
                type_: EntryType::ActionStarted,
                message:
                    "Started: roll back deployment/web from revision 3 (web:v3) to revision 2 (web:v2)"
                        .to_owned(),
                actor: None,
                warning: false,
            },
        ]
    );
    let expected_plan = expect_change(plan(
        &rollback(),
        &deployment,
        &replica_sets,
        &actor(),
        now(),
    ));
    assert_eq!(step.change, Some(expected_plan.change));
    assert_eq!(step.wake_at, None);
    assert_eq!(
        step.status,
        ActionStatus {
            name: ACTION.to_owned(),
            kind: ActionKind::Rollback,
            deployment: DEPLOY.to_owned(),
            phase: ActionPhase::Running,
            reason: Some("Applying".to_owned()),
            message: Some(
                "roll back deployment/web from revision 3 (web:v3) to revision 2 (web:v2)"
                    .to_owned()
            ),
            from_revision: Some(3),
            to_revision: Some(2),
            images_before: vec!["web:v3".to_owned()],
            images_after: vec!["web:v2".to_owned()],
            // Whole seconds, as the status stores them.
            started_at: Some(Time(now())),
            finished_at: None,
            planned_generation: Some(GENERATION),
            applied_generation: None,
            applied_at: None,
        }
    );
    assert_eq!(stored(&step.status), step.status);
}

#[test]
fn requested_entries_name_the_action() {
    let (deployment, replica_sets) = history();
    let cases = [
        (
            rollback_to(Some(1)),
            "Rollback of deployment/web to revision 1 requested as action undo",
        ),
        (
            rollback_to(Some(0)),
            "Rollback of deployment/web to the previous revision requested as action undo",
        ),
        (
            restart(),
            "Restart of deployment/web requested as action undo",
        ),
        (
            scale(5),
            "Scale of deployment/web to 5 replicas requested as action undo",
        ),
        (
            RemediationAction {
                dry_run: true,
                ..scale(5)
            },
            "Scale of deployment/web to 5 replicas requested (dry run) as action undo",
        ),
    ];
    for (action, expected) in cases {
        let step = step_at(Some(&action), None, Some(&deployment), &replica_sets, now());
        assert_eq!(step.entries[0].type_, EntryType::ActionRequested);
        assert_eq!(step.entries[0].message, expected);
        assert_eq!(step.status.kind, action.kind());
    }
    // The requester may be unknown.
    let step = step(
        Some(&restart()),
        None,
        facts(Some(&deployment), &replica_sets),
        &actor(),
        None,
        now(),
    )
    .expect("a step");
    assert_eq!(step.entries[0].actor, None);
}

#[test]
fn restart_and_scale_start_with_their_change() {
    let (deployment, replica_sets) = history();
    let step = step_at(
        Some(&restart()),
        None,
        Some(&deployment),
        &replica_sets,
        now(),
    );
    assert_eq!(step.status.phase, ActionPhase::Running);
    assert_eq!(step.status.kind, ActionKind::Restart);
    assert_eq!(step.status.from_revision, Some(3));
    assert_eq!(step.status.to_revision, None);
    let change = step.change.expect("a change");
    assert_eq!(
        merge_patch(&change)["spec"]["template"]["metadata"]["annotations"]
            [RESTARTED_AT_ANNOTATION],
        "2027-01-15T08:00:00Z"
    );

    let step = step_at(
        Some(&scale(5)),
        None,
        Some(&deployment),
        &replica_sets,
        now(),
    );
    assert_eq!(step.status.phase, ActionPhase::Running);
    assert_eq!(step.status.kind, ActionKind::Scale);
    assert_eq!(
        merge_patch(&step.change.expect("a change"))["spec"]["replicas"],
        5
    );
}

#[test]
fn a_dry_run_is_skipped_with_what_it_would_do() {
    let (deployment, replica_sets) = history();
    let dry = RemediationAction {
        dry_run: true,
        ..rollback()
    };
    let step = step_at(Some(&dry), None, Some(&deployment), &replica_sets, now());
    assert_eq!(step.change, None);
    assert_eq!(step.wake_at, None);
    assert_eq!(step.status.phase, ActionPhase::Skipped);
    assert_eq!(step.status.reason.as_deref(), Some("DryRun"));
    assert_eq!(
        step.status.message.as_deref(),
        Some(
            "dry run: would roll back deployment/web from revision 3 (web:v3) to revision 2 (web:v2)"
        )
    );
    assert_eq!(step.status.from_revision, Some(3));
    assert_eq!(step.status.to_revision, Some(2));
    assert_eq!(step.status.images_after, vec!["web:v2"]);
    assert_eq!(step.status.finished_at, Some(Time(now())));
    assert_eq!(step.status.started_at, None);
    assert_eq!(step.status.planned_generation, None);
    assert_eq!(
        entry_types(&step),
        vec![EntryType::ActionRequested, EntryType::ActionSkipped]
    );
    assert_eq!(
        step.entries[1].message,
        "Skipped undo: dry run: would roll back deployment/web from revision 3 (web:v3) to revision 2 (web:v2)"
    );
    assert!(!step.entries[1].warning);

    // Restart and scale too.
    for (action, would) in [
        (
            restart(),
            "dry run: would restart deployment/web: replace every pod",
        ),
        (
            scale(5),
            "dry run: would scale deployment/web from 3 to 5 replicas",
        ),
    ] {
        let dry = RemediationAction {
            dry_run: true,
            ..action
        };
        let step = step_at(Some(&dry), None, Some(&deployment), &replica_sets, now());
        assert_eq!(step.change, None);
        assert_eq!(step.status.phase, ActionPhase::Skipped);
        assert_eq!(step.status.reason.as_deref(), Some("DryRun"));
        assert_eq!(step.status.message.as_deref(), Some(would));
    }
}

#[test]
fn a_dry_run_that_would_be_refused_fails() {
    let (deployment, replica_sets) = history();
    let dry = RemediationAction {
        dry_run: true,
        ..rollback_to(Some(9))
    };
    let step = step_at(Some(&dry), None, Some(&deployment), &replica_sets, now());
    assert_eq!(step.status.phase, ActionPhase::Failed);
    assert_eq!(step.status.reason.as_deref(), Some("RevisionNotFound"));
    assert_eq!(step.change, None);
}

#[test]
fn a_missing_deployment_fails_the_action() {
    let step = step_at(Some(&rollback()), None, None, &[], now());
    assert_eq!(step.change, None);
    assert_eq!(step.status.phase, ActionPhase::Failed);
    assert_eq!(step.status.reason.as_deref(), Some("DeploymentNotFound"));
    assert_eq!(
        step.status.message.as_deref(),
        Some("deployment web not found in the incident's namespace")
    );
    assert_eq!(step.status.finished_at, Some(Time(now())));
    assert_eq!(
        entry_types(&step),
        vec![EntryType::ActionRequested, EntryType::ActionFailed]
    );
    assert_eq!(
        step.entries[1].message,
        "Rollback undo failed (DeploymentNotFound): deployment web not found in the incident's namespace"
    );
    assert!(step.entries[1].warning);
}

#[test]
fn a_refused_plan_fails_and_a_skipped_plan_skips() {
    let (deployment, replica_sets) = history();
    let step = step_at(
        Some(&rollback()),
        None,
        Some(&paused(deployment.clone())),
        &replica_sets,
        now(),
    );
    assert_eq!(step.status.phase, ActionPhase::Failed);
    assert_eq!(step.status.reason.as_deref(), Some("Paused"));
    assert_eq!(step.change, None);
    assert_eq!(
        entry_types(&step),
        vec![EntryType::ActionRequested, EntryType::ActionFailed]
    );

    let step = step_at(
        Some(&scale(3)),
        None,
        Some(&deployment),
        &replica_sets,
        now(),
    );
    assert_eq!(step.status.phase, ActionPhase::Skipped);
    assert_eq!(step.status.reason.as_deref(), Some("AlreadyScaled"));
    assert_eq!(step.change, None);
    assert_eq!(
        entry_types(&step),
        vec![EntryType::ActionRequested, EntryType::ActionSkipped]
    );
    assert_eq!(
        step.entries[1].message,
        "Skipped undo: deployment web already has 3 replicas"
    );

    let disabled = annotate(deployment, CONSENT_ANNOTATION, "disabled");
    let step = step_at(
        Some(&restart()),
        None,
        Some(&disabled),
        &replica_sets,
        now(),
    );
    assert_eq!(step.status.phase, ActionPhase::Failed);
    assert_eq!(step.status.reason.as_deref(), Some("RemediationDisabled"));
}

#[test]
fn running_with_our_marker_is_applied_and_never_applied_again() {
    let (_, replica_sets) = history();
    let current = running();
    // The change landed (the operator crashed before recording it); the rollout is under way.
    let landed = rolled_back(rollout(GENERATION, 3, 0, 3, 0));
    let step = step_at(
        Some(&rollback()),
        Some(&current),
        Some(&landed),
        &replica_sets,
        at(10),
    );

    assert_eq!(step.change, None);
    assert_eq!(step.status.phase, ActionPhase::Verifying);
    assert_eq!(step.status.reason.as_deref(), Some("RollingOut"));
    assert_eq!(step.status.applied_generation, Some(GENERATION + 1));
    assert_eq!(step.status.applied_at, Some(Time(at(10))));
    assert_eq!(step.status.finished_at, None);
    assert_eq!(
        step.status.message.as_deref(),
        Some("waiting for the deployment controller to see the change")
    );
    assert_eq!(
        step.entries,
        vec![Entry {
            type_: EntryType::ActionApplied,
            message: "Rolled back deployment/web from revision 3 (web:v3) to revision 2 (web:v2)"
                .to_owned(),
            actor: None,
            warning: false,
        }]
    );
    assert_eq!(step.wake_at, Some(at(10 + DEFAULT_TIMEOUT_SECONDS)));

    // Even when the plan would now be something else entirely (the template is revision 2 now).
    let step = step_at(
        Some(&rollback()),
        Some(&current),
        Some(&landed),
        &[],
        at(10),
    );
    assert_eq!(step.change, None);
    assert_eq!(step.status.phase, ActionPhase::Verifying);
}

#[test]
fn running_with_our_marker_and_a_finished_rollout_succeeds_at_once() {
    let (_, replica_sets) = history();
    let current = running();
    let landed = rolled_back(rollout(GENERATION + 1, 3, 3, 3, 0));
    let step = step_at(
        Some(&rollback()),
        Some(&current),
        Some(&landed),
        &replica_sets,
        at(30),
    );
    assert_eq!(step.change, None);
    assert_eq!(step.status.phase, ActionPhase::Succeeded);
    assert_eq!(step.status.reason.as_deref(), Some("RolloutComplete"));
    assert_eq!(
        step.status.message.as_deref(),
        Some("rollout complete: 3/3 available after 30s")
    );
    assert_eq!(step.status.applied_at, Some(Time(at(30))));
    assert_eq!(step.status.finished_at, Some(Time(at(30))));
    assert_eq!(step.wake_at, None);
    assert_eq!(
        entry_types(&step),
        vec![EntryType::ActionApplied, EntryType::ActionSucceeded]
    );
}

#[test]
fn applied_entries_describe_each_kind() {
    let (deployment, replica_sets) = history();
    for (action, expected) in [
        (restart(), "Restarted deployment/web: replacing every pod"),
        (
            scale(5),
            "Scaled deployment/web: scale deployment/web from 3 to 5 replicas",
        ),
    ] {
        let first = step_at(Some(&action), None, Some(&deployment), &replica_sets, now());
        let landed = apply(&deployment, first.change.as_ref().expect("a change"));
        let second = step_at(
            Some(&action),
            Some(&stored(&first.status)),
            Some(&landed),
            &replica_sets,
            at(5),
        );
        assert_eq!(second.change, None);
        assert_eq!(second.entries[0].type_, EntryType::ActionApplied);
        assert_eq!(second.entries[0].message, expected);
    }
}

#[test]
fn running_without_marker_at_the_planned_generation_is_applied_again() {
    let (deployment, replica_sets) = history();
    let first = step_at(
        Some(&rollback()),
        None,
        Some(&deployment),
        &replica_sets,
        now(),
    );
    let current = stored(&first.status);
    // The operator crashed before the change was sent (or the send hit a conflict): the Deployment
    // is as planned, perhaps with a new resourceVersion from a status update.
    let mut unchanged = deployment.clone();
    unchanged.metadata.resource_version = Some("1001".to_owned());
    let again = step_at(
        Some(&rollback()),
        Some(&current),
        Some(&unchanged),
        &replica_sets,
        at(20),
    );
    assert_eq!(again.change, first.change);
    assert!(again.entries.is_empty(), "{:?}", again.entries);
    assert_eq!(again.status, current);
    assert_eq!(again.wake_at, None);

    // A marker of another action (of this or another incident) is not ours.
    for other in [
        format!("{INCIDENT_UID}/earlier"),
        format!("{OTHER_UID}/{ACTION}"),
    ] {
        let marked = annotate(unchanged.clone(), ACTION_ANNOTATION, &other);
        let again = step_at(
            Some(&rollback()),
            Some(&current),
            Some(&marked),
            &replica_sets,
            at(20),
        );
        assert!(again.change.is_some());
        assert!(again.entries.is_empty());
        assert_eq!(again.status.phase, ActionPhase::Running);
    }
}

#[test]
fn running_restart_is_resent_with_the_same_markers() {
    let (deployment, _) = history();
    let first = step_at(Some(&restart()), None, Some(&deployment), &[], now());
    let again = step_at(
        Some(&restart()),
        Some(&stored(&first.status)),
        Some(&deployment),
        &[],
        at(20),
    );
    let change = again.change.expect("sent again");
    assert_eq!(
        merge_patch(&change)["metadata"]["annotations"][ACTION_ANNOTATION],
        marker()
    );
    assert!(again.entries.is_empty());
}

#[test]
fn running_without_marker_after_another_change_fails_as_concurrent() {
    let (deployment, replica_sets) = history();
    let current = running();
    // Someone deployed v4 in between; our change never landed.
    let mut deployed = deployment;
    deployed.spec.template = template(&["web:v4"], None);
    deployed.metadata.generation = Some(GENERATION + 1);
    let step = step_at(
        Some(&rollback()),
        Some(&current),
        Some(&deployed),
        &replica_sets,
        at(20),
    );
    assert_eq!(step.change, None);
    assert_eq!(step.status.phase, ActionPhase::Failed);
    assert_eq!(step.status.reason.as_deref(), Some("ConcurrentChange"));
    let message = step.status.message.clone().expect("message");
    assert!(message.contains("generation 7 → 8"), "{message}");
    assert!(message.contains("deployment web changed"), "{message}");
    assert_eq!(step.status.finished_at, Some(Time(at(20))));
    assert_eq!(entry_types(&step), vec![EntryType::ActionFailed]);
    assert!(step.entries[0].warning);
    assert!(
        step.entries[0]
            .message
            .starts_with("Rollback undo failed (ConcurrentChange): ")
    );
}

#[test]
fn running_with_a_missing_deployment_fails() {
    let step = step_at(Some(&rollback()), Some(&running()), None, &[], at(20));
    assert_eq!(step.status.phase, ActionPhase::Failed);
    assert_eq!(step.status.reason.as_deref(), Some("DeploymentNotFound"));
    assert_eq!(step.change, None);
    assert_eq!(entry_types(&step), vec![EntryType::ActionFailed]);
}

#[test]
fn running_that_is_now_refused_fails() {
    let (deployment, replica_sets) = history();
    let current = running();
    // Remediation disabled in between: an annotation, so the generation is unchanged.
    let refused = annotate(deployment, CONSENT_ANNOTATION, "disabled");
    let step = step_at(
        Some(&rollback()),
        Some(&current),
        Some(&refused),
        &replica_sets,
        at(20),
    );
    assert_eq!(step.status.phase, ActionPhase::Failed);
    assert_eq!(step.status.reason.as_deref(), Some("RemediationDisabled"));
    assert_eq!(step.change, None);
}

#[test]
fn verifying_succeeds_when_the_rollout_completes() {
    let (_, replica_sets) = history();
    let done = rolled_back(rollout(GENERATION + 1, 3, 3, 3, 0));
    let step = step_at(
        Some(&rollback()),
        Some(&verifying()),
        Some(&done),
        &replica_sets,
        at(45),
    );
    assert_eq!(step.change, None);
    assert_eq!(step.wake_at, None);
    assert_eq!(step.status.phase, ActionPhase::Succeeded);
    assert_eq!(step.status.reason.as_deref(), Some("RolloutComplete"));
    let message = step.status.message.clone().expect("message");
    assert!(
        message.starts_with("rollout complete: 3/3 available"),
        "{message}"
    );
    assert_eq!(message, "rollout complete: 3/3 available after 45s");
    assert_eq!(step.status.finished_at, Some(Time(at(45))));
    assert_eq!(
        step.entries,
        vec![Entry {
            type_: EntryType::ActionSucceeded,
            message,
            actor: None,
            warning: false,
        }]
    );
}

#[test]
fn verifying_waits_until_the_timeout() {
    let (_, replica_sets) = history();
    let spec = RemediationAction {
        timeout_seconds: Some(120),
        ..rollback()
    };
    let rolling = rolled_back(rollout(GENERATION + 1, 4, 2, 3, 1));
    // applied at 10: the deadline is 130.
    let step = step_at(
        Some(&spec),
        Some(&verifying()),
        Some(&rolling),
        &replica_sets,
        at(129),
    );
    assert_eq!(step.status.phase, ActionPhase::Verifying);
    assert_eq!(
        step.status.message.as_deref(),
        Some("2 of 3 replicas updated")
    );
    assert_eq!(step.wake_at, Some(at(130)));
    assert!(step.entries.is_empty());
    assert_eq!(step.change, None);
    assert_eq!(step.status.finished_at, None);

    for late in [130, 131, 10_000] {
        let step = step_at(
            Some(&spec),
            Some(&verifying()),
            Some(&rolling),
            &replica_sets,
            at(late),
        );
        assert_eq!(step.status.phase, ActionPhase::Failed);
        assert_eq!(step.status.reason.as_deref(), Some("Timeout"));
        assert_eq!(
            step.status.message.as_deref(),
            Some("the rollout did not complete within 120s: 2 of 3 replicas updated")
        );
        assert_eq!(step.wake_at, None);
        assert_eq!(entry_types(&step), vec![EntryType::ActionFailed]);
    }
}

#[test]
fn verifying_uses_the_default_timeout_without_spec() {
    let (_, replica_sets) = history();
    let rolling = rolled_back(rollout(GENERATION + 1, 4, 2, 3, 1));
    // Removed from spec while verifying: still followed, with the default timeout.
    let step = step_at(
        None,
        Some(&verifying()),
        Some(&rolling),
        &replica_sets,
        at(20),
    );
    assert_eq!(step.status.phase, ActionPhase::Verifying);
    assert_eq!(step.wake_at, Some(at(10 + DEFAULT_TIMEOUT_SECONDS)));
    let step = step_at(
        None,
        Some(&verifying()),
        Some(&rolling),
        &replica_sets,
        at(10 + DEFAULT_TIMEOUT_SECONDS),
    );
    assert_eq!(step.status.reason.as_deref(), Some("Timeout"));
    let step = step_at(
        None,
        Some(&verifying()),
        Some(&rolled_back(rollout(GENERATION + 1, 3, 3, 3, 0))),
        &replica_sets,
        at(20),
    );
    assert_eq!(step.status.phase, ActionPhase::Succeeded);
}

#[test]
fn verifying_fails_when_the_progress_deadline_is_exceeded() {
    let (_, replica_sets) = history();
    let stalled = rolled_back(with_condition(
        rollout(GENERATION + 1, 4, 1, 3, 1),
        condition(
            "Progressing",
            "False",
            "ProgressDeadlineExceeded",
            "ReplicaSet \"web-h2\" has timed out progressing.",
        ),
    ));
    let step = step_at(
        Some(&rollback()),
        Some(&verifying()),
        Some(&stalled),
        &replica_sets,
        at(40),
    );
    assert_eq!(step.status.phase, ActionPhase::Failed);
    assert_eq!(
        step.status.reason.as_deref(),
        Some("ProgressDeadlineExceeded")
    );
    assert_eq!(
        step.status.message.as_deref(),
        Some("the rollout failed: ReplicaSet \"web-h2\" has timed out progressing.")
    );
    assert_eq!(step.wake_at, None);
    assert_eq!(entry_types(&step), vec![EntryType::ActionFailed]);
}

#[test]
fn verifying_with_a_missing_deployment_fails() {
    let step = step_at(Some(&rollback()), Some(&verifying()), None, &[], at(40));
    assert_eq!(step.status.phase, ActionPhase::Failed);
    assert_eq!(step.status.reason.as_deref(), Some("DeploymentNotFound"));
}

#[test]
fn terminal_actions_do_not_move() {
    let (deployment, replica_sets) = history();
    for phase in [
        ActionPhase::Succeeded,
        ActionPhase::Failed,
        ActionPhase::Skipped,
    ] {
        let done = ActionStatus {
            phase,
            reason: Some("Whatever".to_owned()),
            finished_at: Some(Time(at(5))),
            ..running()
        };
        for spec in [Some(rollback()), None] {
            for deployment in [Some(&deployment), None] {
                let step = step_at(
                    spec.as_ref(),
                    Some(&done),
                    deployment,
                    &replica_sets,
                    at(999),
                );
                assert_eq!(step.status, done);
                assert!(step.entries.is_empty());
                assert_eq!(step.change, None);
                assert_eq!(step.wake_at, None);
            }
        }
    }
}

#[test]
fn an_action_removed_from_spec_while_running_is_still_resolved() {
    let (deployment, replica_sets) = history();
    let current = running();

    // The change landed: followed to the end.
    let landed = rolled_back(rollout(GENERATION, 3, 0, 3, 0));
    let step = step_at(None, Some(&current), Some(&landed), &replica_sets, at(10));
    assert_eq!(step.status.phase, ActionPhase::Verifying);
    assert_eq!(step.change, None);
    assert_eq!(entry_types(&step), vec![EntryType::ActionApplied]);

    // It did not land and nobody else changed the Deployment: withdrawn, not applied.
    let step = step_at(
        None,
        Some(&current),
        Some(&deployment),
        &replica_sets,
        at(10),
    );
    assert_eq!(step.status.phase, ActionPhase::Failed);
    assert_eq!(step.status.reason.as_deref(), Some("Withdrawn"));
    assert_eq!(step.change, None);
}

#[test]
fn an_action_in_neither_spec_nor_status_has_no_step() {
    let (deployment, replica_sets) = history();
    assert_eq!(
        step(
            None,
            None,
            facts(Some(&deployment), &replica_sets),
            &actor(),
            Some("ana".to_owned()),
            now()
        ),
        None
    );
    assert_eq!(
        step(None, None, facts(None, &[]), &actor(), None, now()),
        None
    );
}

#[test]
fn a_pending_status_without_spec_is_withdrawn() {
    let (deployment, replica_sets) = history();
    let pending = ActionStatus {
        phase: ActionPhase::Pending,
        reason: None,
        message: None,
        started_at: None,
        planned_generation: None,
        ..running()
    };
    let step = step_at(
        None,
        Some(&pending),
        Some(&deployment),
        &replica_sets,
        at(5),
    );
    assert_eq!(step.status.phase, ActionPhase::Failed);
    assert_eq!(step.status.reason.as_deref(), Some("Withdrawn"));
    assert_eq!(step.change, None);
}

#[test]
fn a_rollback_runs_to_completion_across_restarts() {
    // The executor's loop: store the status, then apply the change; the operator may restart
    // between any two of these and must neither lose nor repeat the change.
    let (mut deployment, replica_sets) = history();
    let spec = rollback();

    // t=0: planned.
    let first = step_at(Some(&spec), None, Some(&deployment), &replica_sets, now());
    let change = first.change.clone().expect("a change");
    let mut current = stored(&first.status);

    // t=1: crashed before sending; on restart the same change is asked for.
    let again = step_at(
        Some(&spec),
        Some(&current),
        Some(&deployment),
        &replica_sets,
        at(1),
    );
    assert_eq!(again.change.as_ref(), Some(&change));
    current = stored(&again.status);

    // t=2: sent; crashed before recording it. The controller has not seen it yet.
    deployment = apply(&deployment, &change);
    let applied = step_at(
        Some(&spec),
        Some(&current),
        Some(&deployment),
        &replica_sets,
        at(2),
    );
    assert_eq!(applied.change, None);
    assert_eq!(applied.status.phase, ActionPhase::Verifying);
    current = stored(&applied.status);

    // t=3..: rolling out, then done.
    deployment.status = Some(rollout(GENERATION + 1, 4, 2, 3, 1));
    let rolling = step_at(
        Some(&spec),
        Some(&current),
        Some(&deployment),
        &replica_sets,
        at(3),
    );
    assert_eq!(rolling.status.phase, ActionPhase::Verifying);
    assert_eq!(rolling.change, None);
    assert!(rolling.entries.is_empty());
    current = stored(&rolling.status);

    deployment.status = Some(rollout(GENERATION + 1, 3, 3, 3, 0));
    let done = step_at(
        Some(&spec),
        Some(&current),
        Some(&deployment),
        &replica_sets,
        at(50),
    );
    assert_eq!(done.status.phase, ActionPhase::Succeeded);
    assert_eq!(
        done.status.message.as_deref(),
        Some("rollout complete: 3/3 available after 50s")
    );
    current = stored(&done.status);

    // Afterwards: nothing more, ever.
    let after = step_at(
        Some(&spec),
        Some(&current),
        Some(&deployment),
        &replica_sets,
        at(60),
    );
    assert_eq!(after.status, current);
    assert!(after.entries.is_empty());
    assert_eq!(after.change, None);
}

#[test]
fn kind_labels() {
    assert_eq!(kind_label(ActionKind::Rollback), "rollback");
    assert_eq!(kind_label(ActionKind::Restart), "restart");
    assert_eq!(kind_label(ActionKind::Scale), "scale");
}

// ---------------------------------------------------------------------------------------------
// Property: rollback target = kubectl's
// ---------------------------------------------------------------------------------------------

/// Go's `strconv.ParseInt(s, 10, 64)`, which kubectl's `deploymentutil.Revision` uses.
fn go_parse_int(s: &str) -> Option<i64> {
    let (negative, digits) = match s.as_bytes().first() {
        Some(b'+') => (false, &s[1..]),
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.bytes().try_fold(0i64, |value, b| {
        let digit = i64::from(b - b'0');
        let value = value.checked_mul(10)?;
        if negative {
            value.checked_sub(digit)
        } else {
            value.checked_add(digit)
        }
    })
}

/// `deploymentutil.Revision`: no annotation is revision 0.
fn kubectl_revision(rs: &ReplicaSet) -> Option<i64> {
    match rs
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
    {
        None => Some(0),
        Some(text) => go_parse_int(text),
    }
}

/// `EqualIgnoreHash`, on the JSON form.
fn kubectl_equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    let strip = |t: &PodTemplateSpec| {
        let mut value = serde_json::to_value(t).expect("serialize template");
        if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
            if let Some(labels) = meta.get_mut("labels").and_then(Value::as_object_mut) {
                labels.remove(HASH);
                if labels.is_empty() {
                    meta.remove("labels");
                }
            }
            if meta.is_empty() {
                value.as_object_mut().expect("object").remove("metadata");
            }
        }
        value
    };
    strip(a) == strip(b)
}

/// `DeploymentRollbacker.Rollback` up to the patch: the index of the ReplicaSet to restore, or the
/// error kubectl reports (reason, message). A literal transcription of kubectl's code.
fn kubectl_rollback_target(
    deployment: &Deployment,
    replica_sets: &[ReplicaSet],
    to_revision: i64,
) -> Result<usize, (&'static str, String)> {
    let not_found = || {
        (
            "RevisionNotFound",
            format!("unable to find specified revision {to_revision} in history"),
        )
    };
    if to_revision < 0 {
        return Err(not_found());
    }
    // listReplicaSets: those whose controller (the first controller reference) is the Deployment.
    let mut owned: Vec<usize> = (0..replica_sets.len())
        .filter(|&i| {
            replica_sets[i]
                .metadata
                .owner_references
                .iter()
                .flatten()
                .find(|o| o.controller == Some(true))
                .is_some_and(|o| Some(o.uid.as_str()) == deployment.metadata.uid.as_deref())
        })
        .collect();
    // findNewReplicaSet sorts the list in place by creation time, then name...
    owned.sort_by(|&a, &b| {
        let key = |i: usize| {
            (
                replica_sets[i]
                    .metadata
                    .creation_timestamp
                    .as_ref()
                    .map(|t| t.0),
                replica_sets[i].metadata.name.clone(),
            )
        };
        key(a).cmp(&key(b))
    });
    // ... and takes the oldest with the Deployment's template; findOldReplicaSets the others, in
    // that sorted order. allRSs = old ones, then the new one.
    let new = owned.iter().copied().find(|&i| {
        kubectl_equal_ignore_hash(
            replica_sets[i].spec.template.as_ref().expect("template"),
            &deployment.spec.template,
        )
    });
    let mut all: Vec<usize> = owned.iter().copied().filter(|&i| Some(i) != new).collect();
    all.extend(new);

    // deploymentRevision.
    let (mut latest, mut latest_revision) = (None, -1i64);
    let (mut previous, mut previous_revision) = (None, -1i64);
    for i in all {
        let Some(v) = kubectl_revision(&replica_sets[i]) else {
            continue;
        };
        if to_revision == 0 {
            if latest_revision < v {
                previous_revision = latest_revision;
                previous = latest;
                latest_revision = v;
                latest = Some(i);
            } else if previous_revision < v {
                previous_revision = v;
                previous = Some(i);
            }
        } else if to_revision == v {
            return Ok(i);
        }
    }
    if to_revision > 0 {
        return Err(not_found());
    }
    previous.ok_or_else(|| {
        (
            "NoHistory",
            format!(
                "no rollout history found for deployment {:?}",
                deployment.metadata.name.as_deref().unwrap_or_default()
            ),
        )
    })
}

#[derive(Clone, Copy, Debug)]
enum Owner {
    /// Controlled by web.
    Web,
    /// Owned by web, not as controller.
    WebNotController,
    /// Controlled by another Deployment.
    Other,
    /// Owned by web, controlled by another Deployment.
    WebAndOtherController,
    /// Owned by another, controlled by web.
    OtherAndWebController,
    /// No owner.
    Orphan,
}

fn owners(owner: Owner) -> Vec<OwnerReference> {
    match owner {
        Owner::Web => vec![controller_ref(DEPLOY_UID, DEPLOY)],
        Owner::WebNotController => vec![plain_ref(DEPLOY_UID, DEPLOY)],
        Owner::Other => vec![controller_ref(OTHER_UID, "api")],
        Owner::WebAndOtherController => vec![
            plain_ref(DEPLOY_UID, DEPLOY),
            controller_ref(OTHER_UID, "api"),
        ],
        Owner::OtherAndWebController => vec![
            plain_ref(OTHER_UID, "api"),
            controller_ref(DEPLOY_UID, DEPLOY),
        ],
        Owner::Orphan => vec![],
    }
}

fn any_owner() -> impl Strategy<Value = Owner> {
    prop_oneof![
        6 => Just(Owner::Web),
        1 => Just(Owner::WebNotController),
        1 => Just(Owner::Other),
        1 => Just(Owner::WebAndOtherController),
        1 => Just(Owner::OtherAndWebController),
        1 => Just(Owner::Orphan),
    ]
}

/// Revision annotations as found in the wild: none, numbers (a few negative), and text that is or
/// is not a Go integer.
fn any_revision_annotation() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        2 => Just(None),
        8 => (-3i64..12).prop_map(|r| Some(r.to_string())),
        2 => prop::sample::select(vec![
            "", "x", "1.5", " 2", "2 ", "+4", "007", "-0", "1e3", "0x10",
            "99999999999999999999", "9223372036854775807",
        ])
        .prop_map(|s| Some(s.to_owned())),
    ]
}

/// ReplicaSet `index` of the history: its own template (image `img:<index>`, hash `h<index>`).
fn history_replica_set(
    index: usize,
    revision: Option<String>,
    owner: Owner,
    created: Option<i64>,
) -> ReplicaSet {
    let hash = format!("h{index}");
    let mut annotations = map(&[(CHANGE_CAUSE, &format!("deploy {index}"))]);
    if let Some(revision) = revision {
        annotations.insert(REVISION.to_owned(), revision);
    }
    let owner_references = owners(owner);
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(format!("{DEPLOY}-{index:02}")),
            namespace: Some(NAMESPACE.to_owned()),
            labels: Some(map(&[("app", DEPLOY), (HASH, &hash)])),
            annotations: Some(annotations),
            owner_references: (!owner_references.is_empty()).then_some(owner_references),
            creation_timestamp: created.map(|s| Time(at(s))),
            ..ObjectMeta::default()
        },
        spec: ReplicaSetSpec {
            selector: selector(),
            template: Some(template(&[&format!("img:{index}")], Some(&hash))),
            ..ReplicaSetSpec::default()
        },
        status: None,
    }
}

fn any_to_revision() -> impl Strategy<Value = Option<i64>> {
    prop_oneof![
        3 => Just(None),
        1 => Just(Some(0)),
        3 => (-2i64..12).prop_map(Some),
    ]
}

/// Checks the planner against kubectl for one history.
fn check_against_kubectl(
    deployment: &Deployment,
    replica_sets: &[ReplicaSet],
    to_revision: Option<i64>,
) -> Result<(), TestCaseError> {
    let action = rollback_to(to_revision);
    let actual = plan_at(&action, deployment, replica_sets);
    match kubectl_rollback_target(deployment, replica_sets, to_revision.unwrap_or(0)) {
        Err((reason, message)) => {
            prop_assert_eq!(actual, Plan::Refuse { reason, message });
        }
        Ok(_) if deployment.spec.paused == Some(true) => {
            let (reason, _) = match actual {
                Plan::Refuse { reason, message } => (reason, message),
                other => {
                    return Err(TestCaseError::fail(format!(
                        "expected Paused, got {other:?}"
                    )));
                }
            };
            prop_assert_eq!(reason, "Paused");
        }
        Ok(i) => {
            let target = &replica_sets[i];
            let revision = kubectl_revision(target).expect("a revision");
            let target_template = target.spec.template.as_ref().expect("template");
            if kubectl_equal_ignore_hash(target_template, &deployment.spec.template) {
                prop_assert_eq!(
                    actual,
                    Plan::Skip {
                        reason: "AlreadyAtRevision",
                        message: format!("current template already matches revision {revision}"),
                    }
                );
            } else {
                let planned = match actual {
                    Plan::Change(planned) => planned,
                    other => {
                        return Err(TestCaseError::fail(format!(
                            "expected a rollback to {} (revision {revision}), got {other:?}",
                            target.metadata.name.as_deref().unwrap_or_default()
                        )));
                    }
                };
                prop_assert_eq!(planned.to_revision, Some(revision));
                prop_assert_eq!(patched_template(&planned), &restored(target));
                prop_assert_eq!(planned.images_after, images(target_template));
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Any history, revisions repeated or not, listed in name order as the API server lists them,
    /// none of them the Deployment's current template.
    #[test]
    fn rollback_target_is_kubectls(
        history in prop::collection::vec((any_revision_annotation(), any_owner()), 0..10),
        to_revision in any_to_revision(),
        paused in any::<bool>(),
    ) {
        let mut deployment = deployment(&["img:current"]);
        deployment.spec.paused = Some(paused);
        let replica_sets: Vec<ReplicaSet> = history
            .into_iter()
            .enumerate()
            .map(|(i, (revision, owner))| history_replica_set(i, revision, owner, None))
            .collect();
        check_against_kubectl(&deployment, &replica_sets, to_revision)?;
    }

    /// Distinct revisions in any list order and with any creation times, one of them possibly the
    /// Deployment's current template.
    #[test]
    fn rollback_target_is_kubectls_with_the_current_replica_set(
        revisions in prop::sample::subsequence((-3i64..16).collect::<Vec<_>>(), 0..10)
            .prop_shuffle(),
        details in prop::collection::vec((any_owner(), prop::option::of(0i64..5), any::<bool>()), 10),
        current in prop::option::of(0usize..10),
        to_revision in any_to_revision(),
        paused in prop::bool::weighted(0.2),
    ) {
        let replica_sets: Vec<ReplicaSet> = revisions
            .iter()
            .zip(&details)
            .enumerate()
            .map(|(i, (&revision, &(owner, created, unannotated_zero)))| {
                let annotation = (revision != 0 || !unannotated_zero).then(|| revision.to_string());
                history_replica_set(i, annotation, owner, created)
            })
            .collect();
        let mut deployment = deployment(&["img:current"]);
        deployment.spec.paused = Some(paused);
        if let Some(rs) = current.and_then(|c| replica_sets.get(c)) {
            // As the Deployment has it: the ReplicaSet's template without the hash.
            deployment.spec.template =
                serde_json::from_value(restored(rs)).expect("template");
        }
        check_against_kubectl(&deployment, &replica_sets, to_revision)?;
    }
}

#[test]
fn go_parse_int_is_gos() {
    assert_eq!(go_parse_int("0"), Some(0));
    assert_eq!(go_parse_int("-0"), Some(0));
    assert_eq!(go_parse_int("+4"), Some(4));
    assert_eq!(go_parse_int("007"), Some(7));
    assert_eq!(go_parse_int("-12"), Some(-12));
    assert_eq!(go_parse_int("9223372036854775807"), Some(i64::MAX));
    assert_eq!(go_parse_int("-9223372036854775808"), Some(i64::MIN));
    for bad in [
        "",
        "+",
        "-",
        " 2",
        "2 ",
        "1.5",
        "1e3",
        "0x10",
        "9223372036854775808",
        "x",
    ] {
        assert_eq!(go_parse_int(bad), None, "{bad:?}");
    }
}
