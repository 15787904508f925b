//! Runbook runs (core layer): given the incident, the run as stored, and facts the shell
//! gathered, decides each step's next phase, the timeline entries, and at most one remediation
//! action to add to the incident's `spec.actions` (which the remediation machinery then executes
//! exactly once). Steps run in order; a step that waits (approval, checkpoint, a running action, a
//! verification) holds the ones after it.
//!
//! [`start`] snapshots a runbook into a run; [`advance`] (in `advance.rs`) walks its steps; each
//! step kind's rule lives in `steps.rs`.

mod advance;
mod steps;

pub use advance::advance;

use std::time::Duration;

use jiff::Timestamp;
use kube::ResourceExt;

use crate::{
    api::{
        EntryType, Evidence, RemediationAction, RestartAction, RollbackAction, Runbook, RunbookRun,
        RunbookStep, ScaleAction, Severity, StepKind, StepPhase, StepProgress,
    },
    core::timeline::Entry,
};

/// What the shell knows about the world for this run.
#[derive(Clone, Debug, Default)]
pub struct RunFacts {
    /// The incident's affected Deployment, if it names one.
    pub deployment: Option<DeploymentFacts>,
    /// When the incident was detected (its creation).
    pub detected_at: Option<Timestamp>,
    /// Since when every signal of the incident has been clear (the detector's note), if it is.
    pub signals_cleared_at: Option<Timestamp>,
    /// Evidence the shell gathered for the step about to run, when it is a collect step.
    pub collected: Option<Evidence>,
    /// The severity's response time: how long a step may wait for approval before escalating.
    pub response_time: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeploymentFacts {
    pub name: String,
    /// The rollout is complete and every replica available.
    pub healthy: bool,
    /// When the newest revision (ReplicaSet) was created.
    pub newest_revision_at: Option<Timestamp>,
}

/// The outcome of one advance.
#[derive(Clone, Debug, PartialEq)]
pub struct Advance {
    pub run: RunbookRun,
    pub entries: Vec<Entry>,
    /// An action to add to `spec.actions` (idempotent: the same step always asks for the same one).
    pub request: Option<RemediationAction>,
    /// When to look again (an approval deadline, a verification timeout).
    pub wake_at: Option<Timestamp>,
}

/// The start of a run: the run, the timeline entry that announces it, and the severity the runbook
/// sets on the incident when it differs from the incident's.
#[derive(Clone, Debug, PartialEq)]
pub struct Started {
    pub run: RunbookRun,
    pub entry: Entry,
    pub severity: Option<Severity>,
}

/// Starts following `runbook` on an incident of `severity`: its steps as they are now (later
/// edits never change this run).
pub fn start(runbook: &Runbook, reason: &str, severity: Severity) -> Started {
    let generation = runbook.metadata.generation.unwrap_or(0);
    let run = RunbookRun {
        name: runbook.name_any(),
        generation,
        reason: reason.to_owned(),
        steps: runbook.spec.steps.clone(),
        on_failure: runbook.spec.on_failure,
        progress: runbook
            .spec
            .steps
            .iter()
            .map(|step| StepProgress {
                name: step.name.clone(),
                kind: step.kind().map_or("unknown", |k| k.as_str()).to_owned(),
                phase: StepPhase::Pending,
                reason: None,
                actor: None,
                started_at: None,
                finished_at: None,
                evidence: None,
                action: None,
            })
            .collect(),
    };
    let mut message = format!(
        "Following runbook {} (generation {generation}, {} steps): {reason}",
        run.name,
        run.steps.len()
    );
    let set = runbook.spec.severity.filter(|s| *s != severity);
    if let Some(set) = set {
        message.push_str(&format!(
            "; severity set from {severity} to {set} by the runbook"
        ));
    }
    Started {
        run,
        entry: Entry::new(EntryType::RunbookSelected, message, None, false),
        severity: set,
    }
}

/// Every action the run has requested so far, on `deployment`: the runbook's whole set, so
/// applying it never drops one.
pub fn requested_actions(run: &RunbookRun, deployment: &str) -> Vec<RemediationAction> {
    run.steps
        .iter()
        .zip(&run.progress)
        .filter(|(_, p)| p.action.is_some())
        .filter_map(|(step, _)| action_for(step, deployment))
        .collect()
}

/// The step that runs next, if any.
pub fn current(run: &RunbookRun) -> Option<&RunbookStep> {
    run.progress
        .iter()
        .position(|p| !p.phase.is_terminal())
        .and_then(|i| run.steps.get(i))
}

/// The action a remediation step asks for, on `deployment`.
pub fn action_for(step: &RunbookStep, deployment: &str) -> Option<RemediationAction> {
    let mut action = RemediationAction {
        name: action_name(step),
        dry_run: false,
        timeout_seconds: None,
        rollback: None,
        restart: None,
        scale: None,
    };
    match step.kind()? {
        StepKind::Rollback => {
            let rollback = step.rollback.as_ref();
            action.rollback = Some(RollbackAction {
                deployment: deployment.to_owned(),
                to_revision: rollback.and_then(|r| r.to_revision),
                gitops: rollback.and_then(|r| r.gitops),
                pause_shared_owner: rollback.and_then(|r| r.pause_shared_owner),
            })
        }
        StepKind::Restart => {
            action.restart = Some(RestartAction {
                deployment: deployment.to_owned(),
            })
        }
        StepKind::Scale => {
            action.scale = Some(ScaleAction {
                deployment: deployment.to_owned(),
                replicas: step.scale.as_ref()?.replicas,
            })
        }
        _ => return None,
    }
    Some(action)
}

/// The name of the action a step requests: stable, so a retry asks for the same one.
pub fn action_name(step: &RunbookStep) -> String {
    format!("runbook-{}", step.name)
}

#[cfg(test)]
mod tests;
