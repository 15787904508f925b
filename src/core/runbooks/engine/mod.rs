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
        EntryType, Evidence, Incident, RemediationAction, RestartAction, RollbackAction, Runbook,
        RunbookRun, RunbookStep, ScaleAction, Severity, StepKind, StepPhase, StepProgress,
        WorkloadKind,
    },
    core::timeline::Entry,
};

/// What the shell knows about the world for this run.
#[derive(Clone, Debug, Default)]
pub struct RunFacts {
    /// The Deployments, StatefulSets and DaemonSets the incident names in its own namespace, in
    /// the order it names them: a remediation step acts on each in turn.
    pub workloads: Vec<WorkloadFacts>,
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
pub struct WorkloadFacts {
    pub kind: WorkloadKind,
    pub name: String,
    /// The rollout is complete and every replica available (false when it does not exist).
    pub healthy: bool,
    /// When the newest revision (ReplicaSet or ControllerRevision) was created.
    pub newest_revision_at: Option<Timestamp>,
}

impl WorkloadFacts {
    /// `statefulset/db`, as kubectl names it.
    pub fn target(&self) -> String {
        format!("{}/{}", self.kind.resource(), self.name)
    }
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

/// Every action the run has requested so far, with `request` (the new one): the runbook's whole
/// set, so applying it never drops one. A step's first action counts once the step started; its
/// actions on later workloads once the incident has them (in spec or status). An action the
/// incident already has is kept exactly as it is (actions never change).
pub fn requested_actions(
    run: &RunbookRun,
    incident: &Incident,
    workloads: &[WorkloadFacts],
    request: Option<&RemediationAction>,
) -> Vec<RemediationAction> {
    let statuses = incident
        .status
        .as_ref()
        .map(|s| s.actions.as_slice())
        .unwrap_or_default();
    let mut actions = Vec::new();
    for (step, _) in run
        .steps
        .iter()
        .zip(&run.progress)
        .filter(|(_, p)| p.action.is_some())
    {
        for (index, workload) in workloads.iter().enumerate() {
            let name = action_name_at(step, index);
            let existing = incident.spec.actions.iter().find(|a| a.name == name);
            let wanted = index == 0
                || existing.is_some()
                || statuses.iter().any(|s| s.name == name)
                || request.is_some_and(|r| r.name == name);
            if !wanted {
                continue;
            }
            match existing {
                Some(action) => actions.push(action.clone()),
                None => actions.extend(action_for(step, workload, index)),
            }
        }
    }
    actions
}

/// The step that runs next, if any.
pub fn current(run: &RunbookRun) -> Option<&RunbookStep> {
    run.progress
        .iter()
        .position(|p| !p.phase.is_terminal())
        .and_then(|i| run.steps.get(i))
}

/// The action a remediation step asks for, on the `index`th workload.
pub fn action_for(
    step: &RunbookStep,
    workload: &WorkloadFacts,
    index: usize,
) -> Option<RemediationAction> {
    let deployment = &workload.name;
    // Absent means Deployment: actions on Deployments read as they always have.
    let kind = (workload.kind != WorkloadKind::Deployment).then_some(workload.kind);
    let mut action = RemediationAction {
        name: action_name_at(step, index),
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
                kind,
                // A Rollout is aborted back to its stable ReplicaSet: no revision to name.
                to_revision: rollback
                    .and_then(|r| r.to_revision)
                    .filter(|_| workload.kind != WorkloadKind::Rollout),
                gitops: rollback.and_then(|r| r.gitops),
                pause_shared_owner: rollback.and_then(|r| r.pause_shared_owner),
                gitops_resume: rollback.and_then(|r| r.gitops_resume),
            })
        }
        StepKind::Restart => {
            action.restart = Some(RestartAction {
                deployment: deployment.to_owned(),
                kind,
            })
        }
        StepKind::Scale => {
            action.scale = Some(ScaleAction {
                deployment: deployment.to_owned(),
                kind,
                replicas: step.scale.as_ref()?.replicas,
            })
        }
        _ => return None,
    }
    Some(action)
}

/// Why a step of this kind cannot act on the workload, when admission would refuse the action
/// it would request (the step fails saying so instead of writing what cannot be stored).
pub fn unsupported(kind: StepKind, workload: &WorkloadFacts) -> Option<String> {
    let why = match (kind, workload.kind) {
        (StepKind::Restart | StepKind::Scale, WorkloadKind::Rollout) => {
            "the operator only aborts a Rollout's update (a rollback step); restart or scale it with kubectl argo rollouts"
        }
        (StepKind::Scale, WorkloadKind::DaemonSet) => {
            "a DaemonSet runs one pod per eligible node and has no replica count"
        }
        _ => return None,
    };
    Some(format!(
        "a {} step cannot act on {}: {why}",
        kind.as_str(),
        workload.target()
    ))
}

/// The name of the action a step requests: stable, so a retry asks for the same one.
pub fn action_name(step: &RunbookStep) -> String {
    format!("runbook-{}", step.name)
}

/// The name of the step's action on its `index`th workload: the first keeps the one-workload name;
/// a step name has no `--` (the Runbook schema refuses it), so names never collide.
pub fn action_name_at(step: &RunbookStep, index: usize) -> String {
    match index {
        0 => action_name(step),
        _ => format!("{}--{}", action_name(step), index + 1),
    }
}

#[cfg(test)]
mod tests;
