//! Argo Rollouts: a rollback of a Rollout is planned as its plugin's abort, recorded before it is
//! sent, never sent again once its marker and `status.abort` are there, and verified only by what
//! the Rollout's controller reports (argo-rollouts v1.10.2).

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use serde_json::json;

use super::{
    ACTION, DEPLOY_UID, EPOCH, GENERATION, INCIDENT, OTHER_UID, actor, controller_ref,
    expect_change, expect_refusal, expect_skip, map, marker, replica_set, restart, rollback, scale,
};
use crate::{
    api::{
        ABORT_PATCH, ActionPhase, ArgoRollout, RemediationAction, WorkloadKind,
        metadata::{ACTION_ANNOTATION, CONSENT_ANNOTATION, INCIDENT_ANNOTATION},
    },
    core::remediation::{
        argo::{self, RolloutView, Verdict},
        plan::{Change, Plan},
        sets::{WorkloadRef, plan_for},
        step::{WorkloadState, step},
    },
};

const STABLE: &str = "6d9f8b7c5";
const CANARY: &str = "7c4d2e9f1";

fn on_rollout(mut action: RemediationAction) -> RemediationAction {
    if let Some(r) = action.rollback.as_mut() {
        r.kind = Some(WorkloadKind::Rollout);
    }
    if let Some(r) = action.restart.as_mut() {
        r.kind = Some(WorkloadKind::Rollout);
    }
    if let Some(s) = action.scale.as_mut() {
        s.kind = Some(WorkloadKind::Rollout);
    }
    action
}

/// A ReplicaSet of the Rollout: its hash label, its revision, its pods.
fn rs(hash: &str, revision: i64, image: &str, pods: (i32, i32)) -> ReplicaSet {
    let mut rs = replica_set(None, &[image], vec![controller_ref(DEPLOY_UID, "web")]);
    rs.metadata.annotations = Some(map(&[(
        "rollout.argoproj.io/revision",
        &revision.to_string(),
    )]));
    rs.metadata.labels = Some(map(&[("app", "web"), ("rollouts-pod-template-hash", hash)]));
    rs.metadata.name = Some(format!("web-{hash}"));
    rs.status = Some(ReplicaSetStatus {
        available_replicas: Some(pods.0),
        replicas: pods.1,
        ..ReplicaSetStatus::default()
    });
    rs
}

/// A Rollout paused in the middle of a canary update from revision 1 (stable) to revision 2.
fn canary_paused() -> RolloutView {
    let rollout: ArgoRollout = serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
        "metadata": { "name": "web", "namespace": "shop", "uid": DEPLOY_UID,
                      "generation": GENERATION, "resourceVersion": "41" },
        "spec": { "replicas": 4, "selector": { "matchLabels": { "app": "web" } },
                  "strategy": { "canary": { "steps": [ { "setWeight": 25 }, { "pause": {} } ] } } },
        "status": { "phase": "Paused", "stableRS": STABLE, "currentPodHash": CANARY,
                    "observedGeneration": GENERATION.to_string(),
                    "replicas": 4, "availableReplicas": 4, "updatedReplicas": 1 }
    }))
    .expect("a Rollout");
    RolloutView {
        rollout,
        replica_sets: vec![
            rs(STABLE, 1, "web:1", (3, 3)),
            rs(CANARY, 2, "web:2", (1, 1)),
        ],
    }
}

fn plan(action: &RemediationAction, view: &RolloutView) -> Plan {
    plan_for(
        action,
        WorkloadRef::Rollout(view),
        &[],
        &[],
        &actor(),
        jiff::Timestamp::from_second(EPOCH).expect("time"),
    )
}

/// What the API server holds after the operator's two patches: the marker, then `status.abort`.
fn aborted_by_us(mut view: RolloutView) -> RolloutView {
    view.rollout.metadata.annotations = Some(map(&[
        (ACTION_ANNOTATION, &marker()),
        (INCIDENT_ANNOTATION, INCIDENT),
    ]));
    view.rollout
        .status
        .get_or_insert_with(Default::default)
        .abort = Some(true);
    view
}

/// What the Rollout's controller reports once it reconciled the abort (rollout/sync.go).
fn reconciled(mut view: RolloutView, canary_pods: i32) -> RolloutView {
    let status = view.rollout.status.get_or_insert_with(Default::default);
    status.phase = Some("Degraded".into());
    status.message = Some("RolloutAborted: Rollout aborted update to revision 2".into());
    status.aborted_at = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        jiff::Timestamp::from_second(EPOCH + 3).expect("time"),
    ));
    status.conditions = serde_json::from_value(json!([{
        "type": "Progressing", "status": "False", "reason": "RolloutAborted",
        "message": "Rollout aborted update to revision 2" }]))
    .expect("conditions");
    view.replica_sets[0] = rs(STABLE, 1, "web:1", (4, 4));
    view.replica_sets[1] = rs(CANARY, 2, "web:2", (canary_pods, canary_pods));
    view
}

#[test]
fn the_abort_is_the_plugins_body_after_a_marker_and_names_both_revisions() {
    let planned = expect_change(plan(&on_rollout(rollback()), &canary_paused()));
    let Change::AbortRollout(markers) = &planned.change else {
        panic!("not an abort: {:?}", planned.change);
    };
    assert_eq!(markers[ACTION_ANNOTATION], marker());
    assert_eq!(markers[INCIDENT_ANNOTATION], INCIDENT);
    // pkg/kubectl-argo-rollouts/cmd/abort/abort.go: abortPatch, a merge patch of "status".
    let body: serde_json::Value = serde_json::from_str(ABORT_PATCH).expect("JSON");
    assert_eq!(body, json!({ "status": { "abort": true } }));
    assert_eq!(
        (planned.from_revision, planned.to_revision),
        (Some(2), Some(1))
    );
    assert_eq!(
        (planned.images_before, planned.images_after),
        (vec!["web:2".to_owned()], vec!["web:1".to_owned()])
    );
    assert_eq!(
        planned.summary,
        "abort the update of rollout/web to revision 2 (web:2), back to its stable revision 1 (web:1) (kubectl argo rollouts abort)"
    );
}

#[test]
fn nothing_to_abort_is_said_with_what_to_do_instead() {
    let action = on_rollout(rollback());
    // Fully promoted: the controller would clear the abort at once.
    let mut promoted = canary_paused();
    promoted
        .rollout
        .status
        .as_mut()
        .expect("status")
        .current_pod_hash = Some(STABLE.into());
    let (reason, message) = expect_refusal(plan(&action, &promoted));
    assert_eq!(reason, "FullyPromoted");
    assert!(
        message.contains("kubectl argo rollouts undo web"),
        "{message}"
    );
    // Someone aborted it already.
    let mut aborted = canary_paused();
    aborted.rollout.status.as_mut().expect("status").abort = Some(true);
    assert_eq!(expect_skip(plan(&action, &aborted)).0, "AlreadyAborted");
    // No stable ReplicaSet it controls (the first update never completed, or another owner's).
    let mut first = canary_paused();
    first.replica_sets[0]
        .metadata
        .owner_references
        .iter_mut()
        .flatten()
        .for_each(|o| o.uid = OTHER_UID.into());
    assert_eq!(
        expect_refusal(plan(&action, &first)).0,
        "NoStableReplicaSet"
    );
    // Consent, as for every kind.
    let mut refused = canary_paused();
    refused.rollout.metadata.annotations = Some(map(&[(CONSENT_ANNOTATION, "disabled")]));
    assert_eq!(
        expect_refusal(plan(&action, &refused)).0,
        "RemediationDisabled"
    );
    // Restart and scale are refused at admission; one written before that rule still fails.
    for other in [on_rollout(restart()), on_rollout(scale(2))] {
        assert_eq!(
            expect_refusal(plan(&other, &canary_paused())).0,
            "NotSupported"
        );
    }
}

fn state(view: &RolloutView) -> WorkloadState<'_> {
    WorkloadState {
        workload: Some(WorkloadRef::Rollout(view)),
        replica_sets: &[],
        revisions: &[],
    }
}

#[test]
fn an_abort_is_recorded_sent_once_and_verified_by_its_controllers_report() {
    let action = on_rollout(rollback());
    let now = jiff::Timestamp::from_second(EPOCH).expect("time");
    let view = canary_paused();
    let first = step(Some(&action), None, state(&view), &actor(), None, now).expect("a step");
    assert_eq!(first.status.phase, ActionPhase::Running);
    assert_eq!(first.status.target(), "rollout/web");
    assert_eq!(first.status.planned_generation, Some(GENERATION));
    assert!(matches!(first.change, Some(Change::AbortRollout(_))));
    assert_eq!(
        first.entries[0].message,
        "Abort of rollout/web's update requested as action undo"
    );
    // Killed after the marker, before the abort: the same plan is sent again (the marker alone
    // does not change the generation, a metadata change of a custom resource).
    let mut marked = canary_paused();
    marked.rollout.metadata.annotations = Some(map(&[(ACTION_ANNOTATION, &marker())]));
    let again = step(
        Some(&action),
        Some(&first.status),
        state(&marked),
        &actor(),
        None,
        now,
    )
    .expect("a step");
    assert_eq!(again.status.phase, ActionPhase::Running);
    assert!(matches!(again.change, Some(Change::AbortRollout(_))));
    // Both landed (perhaps before a crash): never sent again; verification waits for the controller.
    let landed = aborted_by_us(canary_paused());
    let second = step(
        Some(&action),
        Some(&first.status),
        state(&landed),
        &actor(),
        None,
        now,
    )
    .expect("a step");
    assert_eq!(second.status.phase, ActionPhase::Verifying);
    assert_eq!(second.change, None);
    assert_eq!(
        second.entries[0].message,
        "Aborted the update of rollout/web to revision 2 (web:2): its controller returns to the stable revision 1 (web:1)"
    );
    assert!(
        second
            .status
            .message
            .as_deref()
            .is_some_and(|m| m.contains("reconcile the abort")),
        "{:?}",
        second.status.message
    );
    // Not watched: looked at again within the poll interval, not only at the timeout.
    assert_eq!(
        second.wake_at,
        Some(now.checked_add(argo::POLL).expect("time"))
    );
    let third = step(
        Some(&action),
        Some(&second.status),
        state(&landed),
        &actor(),
        None,
        now,
    )
    .expect("a step");
    assert_eq!(third.change, None);
    assert_eq!(third.status.phase, ActionPhase::Verifying);
    // The controller reconciled it: the canary is scaled down, the stable one kept.
    let done = reconciled(landed.clone(), 0);
    let later = now
        .checked_add(jiff::SignedDuration::from_secs(4))
        .expect("time");
    let fourth = step(
        Some(&action),
        Some(&third.status),
        state(&done),
        &actor(),
        None,
        later,
    )
    .expect("a step");
    assert_eq!(fourth.status.phase, ActionPhase::Succeeded);
    assert_eq!(
        fourth.status.message.as_deref(),
        Some("rollout complete: 4/4 available after 4s")
    );
}

#[test]
fn verification_waits_for_each_thing_the_controller_reports_and_fails_on_a_withdrawn_abort() {
    let landed = aborted_by_us(canary_paused());
    let waiting = |view: &RolloutView| match argo::verify(view, GENERATION) {
        Verdict::InProgress { message } => message,
        other => panic!("not in progress: {other:?}"),
    };
    // No controller has seen the Rollout yet (no observedGeneration at all).
    let mut unseen = landed.clone();
    unseen
        .rollout
        .status
        .as_mut()
        .expect("status")
        .observed_generation = None;
    assert!(
        waiting(&unseen).contains("is it running?"),
        "{}",
        waiting(&unseen)
    );
    assert!(waiting(&landed).contains("reconcile the abort"));
    assert_eq!(
        waiting(&reconciled(landed.clone(), 1)),
        "the canary still runs 1 pods"
    );
    // A traffic-routed canary told to keep its pods on abort is done once traffic is back.
    let mut kept = reconciled(landed.clone(), 1);
    kept.rollout.spec.strategy = Some(json!({ "canary": {
        "trafficRouting": { "nginx": { "stableIngress": "web" } },
        "abortScaleDownDelaySeconds": 0 } }));
    assert!(matches!(
        argo::verify(&kept, GENERATION),
        Verdict::Complete { .. }
    ));
    // A basic canary ignores the setting: its canary is always scaled down.
    kept.rollout.spec.strategy = Some(json!({ "canary": { "abortScaleDownDelaySeconds": 0 } }));
    assert!(matches!(
        argo::verify(&kept, GENERATION),
        Verdict::InProgress { .. }
    ));
    let mut short = reconciled(landed.clone(), 0);
    short.replica_sets[0] = rs(STABLE, 1, "web:1", (3, 4));
    assert_eq!(waiting(&short), "stable ReplicaSet: 3 of 4 pods available");
    // Retried or promoted by someone (status.abort false again): the action fails, saying so.
    let mut withdrawn = reconciled(landed, 0);
    withdrawn.rollout.status.as_mut().expect("status").abort = Some(false);
    assert!(matches!(
        argo::verify(&withdrawn, GENERATION),
        Verdict::Failed { reason, .. } if reason == "AbortWithdrawn"
    ));
    // A runbook's verify step: Healthy at the current generation counts as settled.
    let mut healthy = canary_paused();
    let status = healthy.rollout.status.as_mut().expect("status");
    status.phase = Some("Healthy".into());
    status.current_pod_hash = Some(STABLE.into());
    status.available_replicas = Some(4);
    assert_eq!(
        argo::health(&healthy),
        Verdict::Complete {
            available: 4,
            desired: 4
        }
    );
    assert!(matches!(
        argo::health(&canary_paused()),
        Verdict::InProgress { .. }
    ));
}

#[test]
fn a_rollout_that_is_gone_fails_with_its_kind() {
    let action = on_rollout(rollback());
    let gone = WorkloadState {
        workload: None,
        replica_sets: &[],
        revisions: &[],
    };
    let now = jiff::Timestamp::from_second(EPOCH).expect("time");
    let failed = step(Some(&action), None, gone, &actor(), None, now).expect("a step");
    assert_eq!(failed.status.reason.as_deref(), Some("RolloutNotFound"));
    assert_eq!(ACTION, failed.status.name);
}
