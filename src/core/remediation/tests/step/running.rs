//! Step tests (core layer, tests): a running action is recorded as applied once its change landed,
//! sent again when it did not, and failed on a concurrent change or a refusal.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{
    super::{
        ACTION, GENERATION, INCIDENT_UID, OTHER_UID, annotate, apply, at, history, marker,
        merge_patch, now, restart, rollback, rollout, scale, template,
    },
    entry_types, rolled_back, running, step_at, stored,
};
use crate::{
    api::{
        ActionPhase, EntryType,
        metadata::{ACTION_ANNOTATION, CONSENT_ANNOTATION},
    },
    core::{remediation::step::DEFAULT_TIMEOUT_SECONDS, timeline::Entry},
};

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
