//! StatefulSets and DaemonSets: rollback by ControllerRevision as `kubectl rollout undo` does it
//! (k8s.io/kubectl pkg/polymorphichelpers rollback.go), restart, scale, and following the rollout
//! as `kubectl rollout status` does; and the step machine driving an action on a StatefulSet.

use k8s_openapi::{
    api::apps::v1::{
        ControllerRevision, DaemonSet, DaemonSetSpec, DaemonSetStatus, StatefulSet,
        StatefulSetSpec, StatefulSetStatus, StatefulSetUpdateStrategy,
    },
    apimachinery::pkg::runtime::RawExtension,
};
use serde_json::json;

use super::{
    ACTION, DEPLOY_UID, EPOCH, GENERATION, OTHER_UID, actor, controller_ref, expect_change,
    expect_refusal, expect_skip, map, marker, plain_ref, restart, rollback, rollback_to, scale,
    selector, template,
};
use crate::{
    api::{ActionPhase, RemediationAction, WorkloadKind, metadata::ACTION_ANNOTATION},
    core::remediation::{
        plan::{Change, Plan},
        rollout::{Progress, progress_of},
        sets::{WorkloadRef, plan_for},
        step::{WorkloadState, step},
    },
};

const NAME: &str = "web";

fn stateful_set(images: &[&str]) -> StatefulSet {
    StatefulSet {
        metadata: meta(),
        spec: StatefulSetSpec {
            replicas: Some(3),
            selector: selector(),
            template: template(images, None),
            ..StatefulSetSpec::default()
        },
        status: None,
    }
}

fn daemon_set(images: &[&str]) -> DaemonSet {
    DaemonSet {
        metadata: meta(),
        spec: DaemonSetSpec {
            selector: selector(),
            template: template(images, None),
            ..DaemonSetSpec::default()
        },
        status: None,
    }
}

fn meta() -> k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
    k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        name: Some(NAME.to_owned()),
        namespace: Some("shop".to_owned()),
        uid: Some(DEPLOY_UID.to_owned()),
        generation: Some(GENERATION),
        resource_version: Some("100".to_owned()),
        ..Default::default()
    }
}

/// The ControllerRevision the controller records for a template: its data is the strategic merge
/// patch `{"spec":{"template":{..., "$patch":"replace"}}}`.
fn revision(number: i64, images: &[&str], owner_uid: &str, controller: bool) -> ControllerRevision {
    let mut data = serde_json::to_value(template(images, None)).expect("template");
    data["$patch"] = json!("replace");
    let owner = if controller {
        controller_ref(owner_uid, NAME)
    } else {
        plain_ref(owner_uid, NAME)
    };
    ControllerRevision {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(format!("{NAME}-{number}")),
            labels: Some(map(&[("app", NAME)])),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        data: RawExtension(json!({ "spec": { "template": data } })),
        revision: Some(number),
    }
}

fn history() -> Vec<ControllerRevision> {
    vec![
        revision(1, &["web:v1"], DEPLOY_UID, true),
        revision(3, &["web:v3"], DEPLOY_UID, true),
        revision(2, &["web:v2"], DEPLOY_UID, true),
    ]
}

fn plan_sts(
    action: &RemediationAction,
    set: &StatefulSet,
    revisions: &[ControllerRevision],
) -> Plan {
    let now = jiff::Timestamp::from_second(EPOCH).expect("time");
    plan_for(
        action,
        WorkloadRef::StatefulSet(set),
        &[],
        revisions,
        &actor(),
        now,
    )
}

fn plan_ds(action: &RemediationAction, set: &DaemonSet, revisions: &[ControllerRevision]) -> Plan {
    let now = jiff::Timestamp::from_second(EPOCH).expect("time");
    plan_for(
        action,
        WorkloadRef::DaemonSet(set),
        &[],
        revisions,
        &actor(),
        now,
    )
}

fn strategic(change: &Change) -> &serde_json::Value {
    match change {
        Change::StrategicMergePatch(body) => body,
        other => panic!("expected a strategic merge patch, got {other:?}"),
    }
}

#[test]
fn undo_sends_the_previous_revisions_data_as_kubectl_does_with_the_markers() {
    let set = stateful_set(&["web:v3"]);
    let planned = expect_change(plan_sts(&rollback(), &set, &history()));
    let body = strategic(&planned.change);
    assert_eq!(
        body["spec"],
        history()[2].data.0["spec"],
        "revision 2's data, verbatim"
    );
    assert_eq!(body["spec"]["template"]["$patch"], "replace");
    assert_eq!(body["metadata"]["annotations"][ACTION_ANNOTATION], marker());
    assert_eq!(
        (planned.from_revision, planned.to_revision),
        (Some(3), Some(2))
    );
    assert_eq!(planned.images_after, ["web:v2"]);
    assert_eq!(
        planned.summary,
        "roll back statefulset/web from revision 3 (web:v3) to revision 2 (web:v2)"
    );
    // A DaemonSet's revisions work alike.
    let planned = expect_change(plan_ds(
        &rollback_to(Some(1)),
        &daemon_set(&["web:v3"]),
        &history(),
    ));
    assert_eq!(
        strategic(&planned.change)["spec"],
        history()[0].data.0["spec"]
    );
    assert!(planned.summary.starts_with("roll back daemonset/web "));
}

#[test]
fn the_refusals_and_the_skip_say_what_kubectl_says() {
    let set = stateful_set(&["web:v3"]);
    let (reason, message) = expect_refusal(plan_sts(&rollback_to(Some(9)), &set, &history()));
    assert_eq!(
        (reason, message.as_str()),
        (
            "RevisionNotFound",
            "unable to find specified revision 9 in history"
        )
    );
    let only = vec![revision(3, &["web:v3"], DEPLOY_UID, true)];
    let (reason, message) = expect_refusal(plan_sts(&rollback(), &set, &only));
    assert_eq!(
        (reason, message.as_str()),
        ("NoHistory", "no last revision to roll back to")
    );
    // With --to-revision and one revision, kubectl compares instead of refusing.
    let (reason, message) = expect_skip(plan_sts(&rollback_to(Some(3)), &set, &only));
    assert_eq!(reason, "AlreadyAtRevision");
    assert_eq!(message, "current template already matches revision 3");
    // Revisions another object controls, or merely owns, are not this one's history.
    let foreign = vec![
        revision(1, &["web:v1"], OTHER_UID, true),
        revision(2, &["web:v2"], DEPLOY_UID, false),
        revision(3, &["web:v3"], DEPLOY_UID, true),
    ];
    assert_eq!(
        expect_refusal(plan_sts(&rollback(), &set, &foreign)).0,
        "NoHistory"
    );
}

#[test]
fn consent_restart_and_scale_work_on_each_kind_and_a_daemon_set_is_never_scaled() {
    let mut set = stateful_set(&["web:v3"]);
    set.metadata.annotations = Some(map(&[("incident.dev/remediation", "disabled")]));
    let (reason, message) = expect_refusal(plan_sts(&rollback(), &set, &history()));
    assert_eq!(reason, "RemediationDisabled");
    assert!(
        message.starts_with("statefulset web is annotated"),
        "{message}"
    );

    let set = stateful_set(&["web:v3"]);
    let planned = expect_change(plan_sts(&restart(), &set, &[]));
    assert_eq!(
        planned.summary,
        "restart statefulset/web: replace every pod"
    );
    let planned = expect_change(plan_sts(&scale(5), &set, &[]));
    assert_eq!(
        planned.summary,
        "scale statefulset/web from 3 to 5 replicas"
    );
    assert_eq!(
        expect_skip(plan_sts(&scale(3), &set, &[])).0,
        "AlreadyScaled"
    );

    let ds = daemon_set(&["web:v3"]);
    assert!(
        expect_change(plan_ds(&restart(), &ds, &[]))
            .summary
            .starts_with("restart daemonset/web")
    );
    assert_eq!(
        expect_refusal(plan_ds(&scale(2), &ds, &[])).0,
        "NotScalable"
    );
}

fn sts_status(
    observed: i64,
    ready: i32,
    updated: i32,
    current: &str,
    update: &str,
) -> StatefulSetStatus {
    StatefulSetStatus {
        observed_generation: Some(observed),
        replicas: 3,
        ready_replicas: Some(ready),
        updated_replicas: Some(updated),
        current_revision: Some(current.to_owned()),
        update_revision: Some(update.to_owned()),
        ..Default::default()
    }
}

#[test]
fn a_stateful_set_rollout_is_judged_like_kubectl_rollout_status() {
    let applied = GENERATION + 1;
    let mut set = stateful_set(&["web:v2"]);
    set.metadata.generation = Some(applied);
    let judge = |set: &StatefulSet| progress_of(WorkloadRef::StatefulSet(set), applied);
    assert!(
        matches!(judge(&set), Progress::InProgress { .. }),
        "no status yet"
    );
    set.status = Some(sts_status(GENERATION, 3, 3, "a", "a"));
    assert!(
        matches!(judge(&set), Progress::InProgress { .. }),
        "change not observed"
    );
    set.status = Some(sts_status(applied, 2, 1, "a", "b"));
    assert!(
        matches!(judge(&set), Progress::InProgress { .. }),
        "a pod not ready"
    );
    set.status = Some(sts_status(applied, 3, 2, "a", "b"));
    assert!(
        matches!(judge(&set), Progress::InProgress { .. }),
        "revisions differ"
    );
    set.status = Some(sts_status(applied, 3, 3, "b", "b"));
    assert_eq!(
        judge(&set),
        Progress::Complete {
            available: 3,
            desired: 3
        }
    );
    // A partition: done once the ordinals at or above it are updated (RollingUpdate set).
    set.spec.update_strategy = Some(StatefulSetUpdateStrategy {
        type_: Some("RollingUpdate".into()),
        rolling_update: Some(
            k8s_openapi::api::apps::v1::RollingUpdateStatefulSetStrategy {
                partition: Some(1),
                max_unavailable: None,
            },
        ),
    });
    set.status = Some(sts_status(applied, 3, 2, "a", "b"));
    assert_eq!(
        judge(&set),
        Progress::Complete {
            available: 3,
            desired: 3
        }
    );
    set.status = Some(sts_status(applied, 3, 1, "a", "b"));
    assert!(matches!(judge(&set), Progress::InProgress { .. }));
    // OnDelete replaces nothing by itself: the action says so instead of waiting forever.
    set.spec.update_strategy = Some(StatefulSetUpdateStrategy {
        type_: Some("OnDelete".into()),
        rolling_update: None,
    });
    assert!(matches!(judge(&set), Progress::Failed { reason, .. } if reason == "OnDelete"));
}

#[test]
fn a_daemon_set_rollout_is_judged_like_kubectl_rollout_status() {
    let applied = GENERATION + 1;
    let mut ds = daemon_set(&["web:v2"]);
    let status = |observed, updated, available| DaemonSetStatus {
        observed_generation: Some(observed),
        desired_number_scheduled: 4,
        updated_number_scheduled: Some(updated),
        number_available: Some(available),
        ..Default::default()
    };
    let judge = |ds: &DaemonSet| progress_of(WorkloadRef::DaemonSet(ds), applied);
    ds.status = Some(status(GENERATION, 4, 4));
    assert!(matches!(judge(&ds), Progress::InProgress { .. }));
    ds.status = Some(status(applied, 3, 4));
    assert!(matches!(judge(&ds), Progress::InProgress { .. }));
    ds.status = Some(status(applied, 4, 3));
    assert!(matches!(judge(&ds), Progress::InProgress { .. }));
    ds.status = Some(status(applied, 4, 4));
    assert_eq!(
        judge(&ds),
        Progress::Complete {
            available: 4,
            desired: 4
        }
    );
}

#[test]
fn an_action_on_a_stateful_set_is_planned_recorded_then_verified_once_its_marker_is_seen() {
    let mut action = rollback();
    if let Some(r) = action.rollback.as_mut() {
        r.kind = Some(WorkloadKind::StatefulSet);
    }
    let set = stateful_set(&["web:v3"]);
    let revisions = history();
    let now = jiff::Timestamp::from_second(EPOCH).expect("time");
    let state = |set| WorkloadState {
        workload: Some(WorkloadRef::StatefulSet(set)),
        replica_sets: &[],
        revisions: &revisions,
    };
    let first = step(Some(&action), None, state(&set), &actor(), None, now).expect("a step");
    assert_eq!(first.status.phase, ActionPhase::Running);
    assert_eq!(first.status.workload_kind, Some(WorkloadKind::StatefulSet));
    assert_eq!(first.status.target(), "statefulset/web");
    assert!(matches!(first.change, Some(Change::StrategicMergePatch(_))));
    // The patch landed: the marker is on the object; never patched again.
    let mut landed = stateful_set(&["web:v2"]);
    landed.metadata.generation = Some(GENERATION + 1);
    landed.metadata.annotations = Some(map(&[(ACTION_ANNOTATION, &marker())]));
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
    assert!(
        second.entries[0]
            .message
            .starts_with("Rolled back statefulset/web from revision 3"),
        "{:?}",
        second.entries
    );
    // Gone before it started: said with the kind.
    let gone = WorkloadState {
        workload: None,
        replica_sets: &[],
        revisions: &[],
    };
    let failed = step(Some(&action), None, gone, &actor(), None, now).expect("a step");
    assert_eq!(failed.status.reason.as_deref(), Some("StatefulSetNotFound"));
    assert_eq!(
        failed.status.message.as_deref(),
        Some("statefulset web not found in the incident's namespace")
    );
    assert_eq!(ACTION, first.status.name);
}
