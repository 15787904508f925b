//! One action's state machine (core layer): Pending → Running (plan recorded) → Verifying (change
//! landed) → Succeeded / Failed, or Skipped. The incident controller stores each new status before
//! it performs the change the step asks for, so a restart can always tell where the action stood.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::{
    api::apps::v1::{ControllerRevision, Deployment, ReplicaSet},
    apimachinery::pkg::apis::meta::v1::Time,
};

use super::{
    argo,
    plan::{Actor, Change, Plan},
    rollout::{Progress, progress_of},
    sets::{WorkloadRef, plan_for},
};
use crate::{
    api::{
        ActionKind, ActionPhase, ActionStatus, EntryType, Incident, RemediationAction,
        WorkloadKind, metadata::ACTION_ANNOTATION,
    },
    core::{text::to_second, timeline::Entry},
};

/// The action to advance next: the first one under way, else the first requested one not yet seen.
/// Actions run one at a time, in the order they were requested.
pub fn next_action(
    incident: &Incident,
) -> Option<(Option<&RemediationAction>, Option<&ActionStatus>)> {
    let statuses = incident
        .status
        .as_ref()
        .map(|s| s.actions.as_slice())
        .unwrap_or_default();
    let spec_of = |name: &str| incident.spec.actions.iter().find(|a| a.name == name);
    if let Some(active) = statuses.iter().find(|a| !a.phase.is_terminal()) {
        return Some((spec_of(&active.name), Some(active)));
    }
    incident
        .spec
        .actions
        .iter()
        .find(|a| !statuses.iter().any(|s| s.name == a.name))
        .map(|a| (Some(a), None))
}

/// Default time to wait for a rollout before giving up.
pub const DEFAULT_TIMEOUT_SECONDS: i64 = 600;

/// What the cluster looks like for an action on a Deployment.
#[derive(Clone, Copy, Debug)]
pub struct DeploymentState<'a> {
    /// The target Deployment, or None when it does not exist.
    pub deployment: Option<&'a Deployment>,
    /// ReplicaSets in the namespace (the planner keeps those the Deployment controls).
    pub replica_sets: &'a [ReplicaSet],
}

/// What the cluster looks like for this action, whatever the workload's kind.
#[derive(Clone, Copy, Debug)]
pub struct WorkloadState<'a> {
    /// The target workload, or None when it does not exist.
    pub workload: Option<WorkloadRef<'a>>,
    /// A Deployment's history (the planner keeps those it controls).
    pub replica_sets: &'a [ReplicaSet],
    /// A StatefulSet's or DaemonSet's history (the planner keeps those it controls).
    pub revisions: &'a [ControllerRevision],
}

impl<'a> From<DeploymentState<'a>> for WorkloadState<'a> {
    fn from(state: DeploymentState<'a>) -> Self {
        WorkloadState {
            workload: state.deployment.map(WorkloadRef::Deployment),
            replica_sets: state.replica_sets,
            revisions: &[],
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub status: ActionStatus,
    pub entries: Vec<Entry>,
    /// Apply this change once `status` is stored.
    pub change: Option<Change>,
    /// Look again by then (the verification timeout) if still waiting.
    pub wake_at: Option<Timestamp>,
}

/// Advances one action; None when it is in neither spec nor status. `spec` is None when the action was removed from spec after it started: a
/// started action is still finished, never abandoned half-way.
pub fn step<'a>(
    spec: Option<&RemediationAction>,
    current: Option<&ActionStatus>,
    state: impl Into<WorkloadState<'a>>,
    actor: &Actor,
    requested_by: Option<String>,
    now: Timestamp,
) -> Option<Step> {
    let now = to_second(now);
    let state = state.into();
    let plan = |spec: &RemediationAction, workload| {
        plan_for(
            spec,
            workload,
            state.replica_sets,
            state.revisions,
            actor,
            now,
        )
    };
    let mut entries = Vec::new();
    let mut status = match current {
        Some(existing) => existing.clone(),
        None => {
            // Neither requested nor started: nothing to step.
            let spec = spec?;
            entries.push(Entry::new(
                EntryType::ActionRequested,
                requested(spec),
                requested_by,
                false,
            ));
            ActionStatus::pending(&spec.name, spec.kind(), target(spec))
        }
    };
    let missing = not_found(&status);
    let gone = gone_reason(status.workload());
    let mut change = None;
    let mut wake_at = None;
    let timeout = SignedDuration::from_secs(
        spec.and_then(|s| s.timeout_seconds)
            .unwrap_or(DEFAULT_TIMEOUT_SECONDS),
    );

    match status.phase {
        ActionPhase::Pending => match (spec, state.workload) {
            (_, None) => fail(&mut status, &mut entries, now, gone, missing),
            (None, Some(_)) => fail(
                &mut status,
                &mut entries,
                now,
                "Withdrawn",
                "the action was removed before it started".into(),
            ),
            (Some(spec), Some(workload)) => match plan(spec, workload) {
                Plan::Refuse { reason, message } => {
                    fail(&mut status, &mut entries, now, reason, message)
                }
                Plan::Skip { reason, message } => finish(
                    &mut status,
                    &mut entries,
                    now,
                    ActionPhase::Skipped,
                    reason,
                    message,
                ),
                Plan::Change(planned) if spec.dry_run => {
                    status.from_revision = planned.from_revision;
                    status.to_revision = planned.to_revision;
                    status.images_before = planned.images_before;
                    status.images_after = planned.images_after;
                    finish(
                        &mut status,
                        &mut entries,
                        now,
                        ActionPhase::Skipped,
                        "DryRun",
                        format!("dry run: would {}", planned.summary),
                    );
                }
                Plan::Change(planned) => {
                    status.phase = ActionPhase::Running;
                    status.reason = Some("Applying".into());
                    status.message = Some(planned.summary.clone());
                    status.from_revision = planned.from_revision;
                    status.to_revision = planned.to_revision;
                    status.images_before = planned.images_before;
                    status.images_after = planned.images_after;
                    status.started_at = Some(Time(now));
                    status.planned_generation = workload.metadata().generation;
                    entries.push(Entry::new(
                        EntryType::ActionStarted,
                        format!("Started: {}", planned.summary),
                        None,
                        false,
                    ));
                    change = Some(planned.change);
                }
            },
        },
        ActionPhase::Running => match state.workload {
            None => fail(&mut status, &mut entries, now, gone, missing),
            Some(workload) if landed(workload, actor) => {
                // The change landed (perhaps before a restart): never apply it again.
                status.phase = ActionPhase::Verifying;
                status.reason = Some("RollingOut".into());
                status.applied_generation = workload.metadata().generation;
                status.applied_at = Some(Time(now));
                entries.push(Entry::new(
                    EntryType::ActionApplied,
                    applied(&status),
                    None,
                    false,
                ));
                follow_rollout(
                    &mut status,
                    &mut entries,
                    workload,
                    now,
                    timeout,
                    &mut wake_at,
                );
            }
            Some(workload) if workload.metadata().generation == status.planned_generation => {
                // Not landed and nobody else changed the spec: apply the same plan again.
                match spec.map(|s| plan(s, workload)) {
                    Some(Plan::Change(planned)) => change = Some(planned.change),
                    Some(Plan::Refuse { reason, message }) => {
                        fail(&mut status, &mut entries, now, reason, message)
                    }
                    Some(Plan::Skip { reason, message }) => finish(
                        &mut status,
                        &mut entries,
                        now,
                        ActionPhase::Skipped,
                        reason,
                        message,
                    ),
                    None => fail(
                        &mut status,
                        &mut entries,
                        now,
                        "Withdrawn",
                        "the action was removed before its change was applied".into(),
                    ),
                }
            }
            Some(workload) => {
                let message = format!(
                    "{} {} changed after the plan was made (generation {} → {}): a deploy landed in between and was not overwritten; request a new action to act on the new state",
                    status.workload().resource(),
                    status.deployment,
                    status.planned_generation.unwrap_or(0),
                    workload.metadata().generation.unwrap_or(0)
                );
                fail(&mut status, &mut entries, now, "ConcurrentChange", message);
            }
        },
        ActionPhase::Verifying => match state.workload {
            None => fail(&mut status, &mut entries, now, gone, missing),
            Some(workload) => follow_rollout(
                &mut status,
                &mut entries,
                workload,
                now,
                timeout,
                &mut wake_at,
            ),
        },
        ActionPhase::Succeeded | ActionPhase::Failed | ActionPhase::Skipped => {}
    }
    Some(Step {
        status,
        entries,
        change,
        wake_at,
    })
}

/// The action failed before its plan: what stands in its way (e.g. a GitOps owner that cannot be
/// paused) is said once, as the reason and message, like any refused plan.
pub fn refuse(
    spec: &RemediationAction,
    current: Option<&ActionStatus>,
    (reason, message): (&str, String),
    requested_by: Option<String>,
    now: Timestamp,
) -> Step {
    let now = to_second(now);
    let mut entries = Vec::new();
    let mut status = match current {
        Some(existing) => existing.clone(),
        None => {
            entries.push(Entry::new(
                EntryType::ActionRequested,
                requested(spec),
                requested_by,
                false,
            ));
            ActionStatus::pending(&spec.name, spec.kind(), target(spec))
        }
    };
    fail(&mut status, &mut entries, now, reason, message);
    Step {
        status,
        entries,
        change: None,
        wake_at: None,
    }
}

fn follow_rollout(
    status: &mut ActionStatus,
    entries: &mut Vec<Entry>,
    workload: WorkloadRef<'_>,
    now: Timestamp,
    timeout: SignedDuration,
    wake_at: &mut Option<Timestamp>,
) {
    let applied = status.applied_generation.unwrap_or(0);
    let started = status.started_at.as_ref().map_or(now, |t| t.0);
    let progress = match workload {
        WorkloadRef::Rollout(view) => argo::verify(view, applied).into(),
        _ => progress_of(workload, applied),
    };
    match progress {
        Progress::Complete { available, desired } => {
            let took = now.duration_since(started).as_secs().max(0);
            finish(
                status,
                entries,
                now,
                ActionPhase::Succeeded,
                "RolloutComplete",
                format!("rollout complete: {available}/{desired} available after {took}s"),
            );
        }
        Progress::Failed { reason, message } => {
            fail(
                status,
                entries,
                now,
                rollout_failure_reason(&reason),
                format!("the rollout failed: {message}"),
            );
        }
        Progress::InProgress { message } => {
            let since = status.applied_at.as_ref().map_or(now, |t| t.0);
            let deadline = since.checked_add(timeout).unwrap_or(Timestamp::MAX);
            if now >= deadline {
                fail(
                    status,
                    entries,
                    now,
                    "Timeout",
                    format!(
                        "the rollout did not complete within {}s: {message}",
                        timeout.as_secs()
                    ),
                );
            } else {
                status.message = Some(message);
                // Rollouts are not watched: look again soon rather than only at the deadline.
                let poll = match workload {
                    WorkloadRef::Rollout(_) => now.checked_add(argo::POLL).ok(),
                    _ => None,
                };
                *wake_at = Some(poll.map_or(deadline, |p| p.min(deadline)));
            }
        }
    }
}

/// The action's failure reason for a rollout's: kept when it is one people know, else generic.
fn rollout_failure_reason(reason: &str) -> &'static str {
    match reason {
        "ProgressDeadlineExceeded" => "ProgressDeadlineExceeded",
        "OnDelete" => "OnDeleteStrategy",
        "AbortWithdrawn" => "AbortWithdrawn",
        _ => "RolloutFailed",
    }
}

/// The change reached the workload: its marker is there (a Rollout's abort as well).
fn landed(workload: WorkloadRef<'_>, actor: &Actor) -> bool {
    if let WorkloadRef::Rollout(view) = workload {
        return argo::landed(view, actor);
    }
    workload
        .metadata()
        .annotations
        .as_ref()
        .and_then(|a| a.get(ACTION_ANNOTATION))
        .is_some_and(|m| *m == actor.marker())
}

fn finish(
    status: &mut ActionStatus,
    entries: &mut Vec<Entry>,
    now: Timestamp,
    phase: ActionPhase,
    reason: &str,
    message: String,
) {
    status.phase = phase;
    status.reason = Some(reason.to_owned());
    status.message = Some(message.clone());
    status.finished_at = Some(Time(now));
    let (type_, text) = match phase {
        ActionPhase::Succeeded => (EntryType::ActionSucceeded, message),
        _ => (
            EntryType::ActionSkipped,
            format!("Skipped {}: {message}", status.name),
        ),
    };
    entries.push(Entry::new(type_, text, None, false));
}

fn fail(
    status: &mut ActionStatus,
    entries: &mut Vec<Entry>,
    now: Timestamp,
    reason: &str,
    message: String,
) {
    status.phase = ActionPhase::Failed;
    status.reason = Some(reason.to_owned());
    status.message = Some(message.clone());
    status.finished_at = Some(Time(now));
    entries.push(Entry::new(
        EntryType::ActionFailed,
        format!(
            "{} {} failed ({reason}): {message}",
            status.kind, status.name
        ),
        None,
        true,
    ));
}

/// The "fix deployed" line, in the past tense.
fn applied(status: &ActionStatus) -> String {
    let revision = |r: Option<i64>| r.map_or("?".to_owned(), |r| r.to_string());
    match status.kind {
        ActionKind::Rollback if status.workload() == WorkloadKind::Rollout => format!(
            "Aborted the update of {} to revision {} ({}): its controller returns to the stable revision {} ({})",
            status.target(),
            revision(status.from_revision),
            status.images_before.join(", "),
            revision(status.to_revision),
            status.images_after.join(", ")
        ),
        ActionKind::Rollback => format!(
            "Rolled back {} from revision {} ({}) to revision {} ({})",
            status.target(),
            revision(status.from_revision),
            status.images_before.join(", "),
            revision(status.to_revision),
            status.images_after.join(", ")
        ),
        ActionKind::Restart => format!("Restarted {}: replacing every pod", status.target()),
        ActionKind::Scale => format!(
            "Scaled {}: {}",
            status.target(),
            status.message.clone().unwrap_or_default()
        ),
    }
}

fn not_found(status: &ActionStatus) -> String {
    format!(
        "{} {} not found in the incident's namespace",
        status.workload().resource(),
        status.deployment
    )
}

/// The failure reason for a target that does not exist.
fn gone_reason(kind: WorkloadKind) -> &'static str {
    match kind {
        WorkloadKind::Deployment => "DeploymentNotFound",
        WorkloadKind::StatefulSet => "StatefulSetNotFound",
        WorkloadKind::DaemonSet => "DaemonSetNotFound",
        WorkloadKind::Rollout => "RolloutNotFound",
    }
}

fn target(spec: &RemediationAction) -> (WorkloadKind, &str) {
    (spec.workload_kind(), spec.deployment())
}

fn requested(spec: &RemediationAction) -> String {
    let what = spec.target();
    let what = match (&spec.rollback, &spec.scale) {
        (Some(_), _) if spec.workload_kind() == WorkloadKind::Rollout => {
            format!("Abort of {what}'s update")
        }
        (Some(r), _) => match r.to_revision.filter(|r| *r > 0) {
            Some(revision) => format!("Rollback of {what} to revision {revision}"),
            None => format!("Rollback of {what} to the previous revision"),
        },
        (_, Some(s)) => format!("Scale of {what} to {} replicas", s.replicas),
        _ => format!("Restart of {what}"),
    };
    let dry = if spec.dry_run { " (dry run)" } else { "" };
    format!("{what} requested{dry} as action {}", spec.name)
}

/// Metric label of an action kind.
pub fn kind_label(kind: ActionKind) -> &'static str {
    match kind {
        ActionKind::Rollback => "rollback",
        ActionKind::Restart => "restart",
        ActionKind::Scale => "scale",
    }
}
