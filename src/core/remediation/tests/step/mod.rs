//! The step state machine's tests (core layer, tests): fixtures for an action planned, running and
//! verifying; the tests are in one file per phase the action starts from.

mod pending;
mod restarts;
mod running;
mod verifying;

use jiff::Timestamp;
use k8s_openapi::{
    api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet},
    apimachinery::pkg::apis::meta::v1::Time,
};

use super::{
    GENERATION, actor, apply, at, expect_change, history, now, plan_at, rollback, with_status,
};
use crate::{
    api::{ActionPhase, ActionStatus, EntryType, RemediationAction},
    core::remediation::step::{DeploymentState, Step, step},
};

/// What the API server gives back after the status is stored.
pub(super) fn stored(status: &ActionStatus) -> ActionStatus {
    serde_json::from_value(serde_json::to_value(status).expect("serialize status"))
        .expect("deserialize status")
}

pub(super) fn facts<'a>(
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
pub(super) fn step_at(
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

pub(super) fn entry_types(step: &Step) -> Vec<EntryType> {
    step.entries.iter().map(|e| e.type_).collect()
}

/// The stored status of a rollback that was planned (from revision 3 to 2) and is being applied.
pub(super) fn running() -> ActionStatus {
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
pub(super) fn verifying() -> ActionStatus {
    ActionStatus {
        phase: ActionPhase::Verifying,
        reason: Some("RollingOut".to_owned()),
        applied_generation: Some(GENERATION + 1),
        applied_at: Some(Time(at(10))),
        ..running()
    }
}

/// `web` after the rollback to revision 2 landed: generation 8, carrying our marker.
pub(super) fn rolled_back(status: DeploymentStatus) -> Deployment {
    let (deployment, replica_sets) = history();
    let change = expect_change(plan_at(&rollback(), &deployment, &replica_sets)).change;
    with_status(apply(&deployment, &change), status)
}
