//! Step tests (core layer, tests): actions removed from spec on the way, and a rollback driven to
//! completion across operator restarts without losing or repeating the change.

use super::{
    super::{GENERATION, actor, apply, at, history, now, rollback, rollout},
    entry_types, facts, rolled_back, running, step_at, stored,
};
use crate::{
    api::{ActionPhase, ActionStatus, EntryType},
    core::remediation::step::step,
};

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
