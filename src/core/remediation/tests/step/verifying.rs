//! Step tests (core layer, tests): a verifying action follows the rollout to success, timeout or
//! failure; terminal actions never move.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{
    super::{GENERATION, at, condition, history, rollback, rollout, with_condition},
    entry_types, rolled_back, running, step_at, verifying,
};
use crate::{
    api::{ActionPhase, ActionStatus, EntryType, RemediationAction},
    core::{remediation::step::DEFAULT_TIMEOUT_SECONDS, timeline::Entry},
};

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
