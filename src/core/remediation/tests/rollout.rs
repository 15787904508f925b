//! Remediation tests (core layer, tests): reading a rollout's progress from the Deployment status.

use k8s_openapi::api::apps::v1::DeploymentStatus;

use super::{condition, deployment, rollout, with_condition, with_status};
use crate::core::remediation::rollout::{Progress, progress};

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
