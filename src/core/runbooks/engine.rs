//! Advances a runbook run (core layer): given the incident, the run as stored, and facts the shell
//! gathered, decides each step's next phase, the timeline entries, and at most one remediation
//! action to add to the incident's `spec.actions` (which the remediation machinery then executes
//! exactly once). Steps run in order; a step that waits (approval, checkpoint, a running action, a
//! verification) holds the ones after it.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use crate::{
    api::{
        ActionPhase, Approval, EntryType, Evidence, Incident, OnFailure, RemediationAction,
        RestartAction, RollbackAction, Runbook, RunbookRun, RunbookStep, ScaleAction, Severity,
        StepCondition, StepKind, StepPhase, StepProgress, duration,
    },
    core::{
        text::{counted, humanize, to_second},
        timeline::Entry,
    },
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
            action.rollback = Some(RollbackAction {
                deployment: deployment.to_owned(),
                to_revision: step.rollback.as_ref().and_then(|r| r.to_revision),
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

/// Advances the run as far as it can go now.
pub fn advance(run: &RunbookRun, incident: &Incident, facts: &RunFacts, now: Timestamp) -> Advance {
    let now = to_second(now);
    let stamp = Time(now);
    let was_finished = run.progress.iter().all(|p| p.phase.is_terminal());
    let mut out = Advance {
        run: run.clone(),
        entries: Vec::new(),
        request: None,
        wake_at: None,
    };
    let resolved = incident.spec.resolution.is_some();
    let severity = incident.spec.severity;
    let mut index = 0;
    while index < out.run.steps.len() {
        let step = out.run.steps[index].clone();
        let progress = &mut out.run.progress[index];
        index += 1;
        if progress.phase.is_terminal() {
            continue;
        }
        let Some(kind) = step.kind() else {
            finish(
                progress,
                StepPhase::Failed,
                "the step has no single kind",
                &stamp,
            );
            out.entries
                .push(failed(&step, "the step has no single kind"));
            if stop_after_failure(
                &mut out,
                index,
                &step,
                "the step has no single kind",
                &stamp,
            ) {
                break;
            }
            continue;
        };
        // A resolved incident gets no new actions, only its verification.
        if resolved && kind != StepKind::Verify && !matches!(progress.phase, StepPhase::Running) {
            skip(
                progress,
                "the incident was resolved before this step ran",
                &stamp,
            );
            out.entries.push(Entry::new(
                EntryType::StepSkipped,
                format!(
                    "Step {} skipped: the incident was resolved before it ran",
                    step.name
                ),
                None,
                false,
            ));
            continue;
        }
        if progress.phase == StepPhase::Pending
            && let Some(why) = step.when.as_ref().and_then(|w| not_now(w, incident, facts))
        {
            skip(progress, &why, &stamp);
            out.entries.push(Entry::new(
                EntryType::StepSkipped,
                format!("Step {} ({}) skipped: {why}", step.name, kind.as_str()),
                None,
                false,
            ));
            continue;
        }
        let outcome = match kind {
            StepKind::Collect => {
                let evidence = facts.collected.clone().unwrap_or_default();
                let summary = format!(
                    "{}, {}, {}{}",
                    counted(evidence.containers.len(), "container"),
                    counted(evidence.rollout_history.len(), "revision"),
                    counted(evidence.events.len(), "event"),
                    if evidence.logs.is_some() {
                        ", the crashed container's log"
                    } else {
                        ""
                    }
                );
                progress.evidence = Some(evidence);
                progress.started_at.get_or_insert(stamp.clone());
                Outcome::Done(format!("collected {summary}"), None)
            }
            StepKind::Escalate => {
                let escalate = step.escalate.clone().unwrap_or_else(unreachable_escalate);
                let to = escalate
                    .to
                    .as_deref()
                    .map(|t| format!(" to {t}"))
                    .unwrap_or_default();
                out.entries.push(Entry::new(
                    EntryType::RunbookEscalated,
                    format!(
                        "Escalated{to} by runbook {}: {}",
                        run.name, escalate.message
                    ),
                    None,
                    true,
                ));
                progress.started_at.get_or_insert(stamp.clone());
                Outcome::Done(format!("escalated{to}"), None)
            }
            StepKind::Checkpoint => {
                match incident.spec.approvals.iter().find(|a| a.step == step.name) {
                    Some(done) => {
                        Outcome::Done(format!("marked done by {}", done.by), Some(done.by.clone()))
                    }
                    None => {
                        if progress.phase == StepPhase::Pending {
                            progress.phase = StepPhase::WaitingApproval;
                            progress.started_at = Some(stamp.clone());
                            let prompt = step
                                .checkpoint
                                .as_ref()
                                .map(|c| c.prompt.clone())
                                .unwrap_or_default();
                            progress.reason = Some(prompt.clone());
                            out.entries.push(Entry::new(
                                EntryType::StepWaiting,
                                format!(
                                    "Checkpoint {}: {prompt} (mark it done with {{step: {}, by: NAME}} in spec.approvals)",
                                    step.name, step.name
                                ),
                                None,
                                false,
                            ));
                        }
                        Outcome::Wait(None)
                    }
                }
            }
            StepKind::Rollback | StepKind::Restart | StepKind::Scale => remediate(
                &mut out,
                index - 1,
                &step,
                kind,
                incident,
                facts,
                severity,
                &stamp,
            ),
            StepKind::Verify => verify(&step, progress, incident, facts, &stamp),
        };
        let progress = &mut out.run.progress[index - 1];
        match outcome {
            Outcome::Wait(wake) => {
                if let Some(at) = wake {
                    out.wake_at = Some(out.wake_at.map_or(at, |w| w.min(at)));
                }
                break;
            }
            Outcome::Done(message, actor) => {
                finish(progress, StepPhase::Succeeded, &message, &stamp);
                progress.actor = actor.clone().or(progress.actor.take());
                out.entries.push(Entry::new(
                    EntryType::StepSucceeded,
                    format!(
                        "Step {} ({}) succeeded: {message}",
                        step.name,
                        kind.as_str()
                    ),
                    actor,
                    false,
                ));
            }
            Outcome::Failed(why) => {
                finish(progress, StepPhase::Failed, &why, &stamp);
                out.entries.push(failed(&step, &why));
                if stop_after_failure(&mut out, index, &step, &why, &stamp) {
                    break;
                }
            }
        }
    }
    let finished = out.run.progress.iter().all(|p| p.phase.is_terminal());
    if finished && !was_finished {
        let count = |phase: StepPhase| out.run.progress.iter().filter(|p| p.phase == phase).count();
        out.entries.push(Entry::new(
            EntryType::RunbookCompleted,
            format!(
                "Runbook {} finished: {} succeeded, {} skipped, {} failed",
                run.name,
                count(StepPhase::Succeeded),
                count(StepPhase::Skipped),
                count(StepPhase::Failed)
            ),
            None,
            count(StepPhase::Failed) > 0,
        ));
    }
    out
}

enum Outcome {
    /// The step holds the run; look again at this time, if any.
    Wait(Option<Timestamp>),
    Done(String, Option<String>),
    Failed(String),
}

/// A rollback, restart or scale step: wait for approval unless automatic, then request the action
/// and follow it to its end.
#[allow(clippy::too_many_arguments)]
fn remediate(
    out: &mut Advance,
    index: usize,
    step: &RunbookStep,
    kind: StepKind,
    incident: &Incident,
    facts: &RunFacts,
    severity: Severity,
    stamp: &Time,
) -> Outcome {
    let progress = &mut out.run.progress[index];
    let Some(deployment) = &facts.deployment else {
        return Outcome::Failed("the incident names no Deployment to act on".into());
    };
    let name = action_name(step);
    if progress.phase == StepPhase::Running {
        let status = incident
            .status
            .as_ref()
            .and_then(|s| s.actions.iter().find(|a| a.name == name));
        return match status.map(|a| (a.phase, a.message.clone())) {
            Some((ActionPhase::Succeeded, _)) => {
                Outcome::Done(format!("action {name} succeeded"), progress.actor.clone())
            }
            Some((ActionPhase::Skipped, message)) => Outcome::Done(
                format!(
                    "action {name} had nothing to do ({})",
                    message.unwrap_or_default()
                ),
                progress.actor.clone(),
            ),
            Some((ActionPhase::Failed, message)) => Outcome::Failed(format!(
                "action {name} failed: {}",
                message.unwrap_or_default()
            )),
            Some(_) => Outcome::Wait(None),
            None => {
                // Asked for but not in the spec yet (a write lost in a crash): ask again.
                if !incident.spec.actions.iter().any(|a| a.name == name) {
                    out.request = action_for(step, &deployment.name);
                }
                Outcome::Wait(None)
            }
        };
    }
    let automatic =
        step.approval == Some(Approval::Automatic) || step.automatic_for.contains(&severity);
    let approval = incident.spec.approvals.iter().find(|a| a.step == step.name);
    let actor = match (automatic, approval) {
        (_, Some(approval)) => approval.by.clone(),
        (true, None) => format!("runbook {}", out.run.name),
        (false, None) => {
            if progress.phase == StepPhase::Pending {
                progress.phase = StepPhase::WaitingApproval;
                progress.started_at = Some(stamp.clone());
                progress.reason = Some("waiting for approval".into());
                out.entries.push(Entry::new(
                    EntryType::StepWaiting,
                    format!(
                        "Step {} ({} of deployment/{}) waits for approval: add {{step: {}, by: NAME}} to spec.approvals",
                        step.name,
                        kind.as_str(),
                        deployment.name,
                        step.name
                    ),
                    None,
                    false,
                ));
            }
            let since = progress.started_at.as_ref().map_or(stamp.0, |t| t.0);
            let deadline = since
                .checked_add(
                    SignedDuration::try_from(facts.response_time).unwrap_or(SignedDuration::MAX),
                )
                .unwrap_or(Timestamp::MAX);
            let escalated = progress.reason.as_deref() == Some(ESCALATED);
            if stamp.0 >= deadline && !escalated {
                progress.reason = Some(ESCALATED.into());
                out.entries.push(Entry::new(
                    EntryType::RunbookEscalated,
                    format!(
                        "Step {} has waited for approval longer than the {severity} response time ({}): escalating",
                        step.name,
                        humanize(facts.response_time)
                    ),
                    None,
                    true,
                ));
                return Outcome::Wait(None);
            }
            return Outcome::Wait((!escalated).then_some(deadline));
        }
    };
    let Some(action) = action_for(step, &deployment.name) else {
        return Outcome::Failed("the step's action cannot be built".into());
    };
    progress.phase = StepPhase::Running;
    progress.started_at.get_or_insert(stamp.clone());
    progress.action = Some(action.name.clone());
    progress.actor = Some(actor.clone());
    progress.reason = None;
    let how = if approval.is_some() {
        format!("approved by {actor}")
    } else {
        format!("automatic at {severity}")
    };
    out.entries.push(Entry::new(
        EntryType::StepStarted,
        format!(
            "Step {} ({}): {how}; requested action {} on deployment/{}",
            step.name,
            kind.as_str(),
            action.name,
            deployment.name
        ),
        Some(actor),
        false,
    ));
    out.request = Some(action);
    Outcome::Wait(None)
}

const ESCALATED: &str = "waiting for approval; escalated past the response time";

fn verify(
    step: &RunbookStep,
    progress: &mut StepProgress,
    incident: &Incident,
    facts: &RunFacts,
    stamp: &Time,
) -> Outcome {
    let Some(spec) = &step.verify else {
        return Outcome::Failed("not a verify step".into());
    };
    let Some(deployment) = &facts.deployment else {
        return Outcome::Failed("the incident names no Deployment to verify".into());
    };
    let now = stamp.0;
    if progress.phase == StepPhase::Pending {
        progress.phase = StepPhase::Running;
        progress.started_at = Some(stamp.clone());
    }
    let started = progress.started_at.as_ref().map_or(now, |t| t.0);
    let timeout = signed_duration(&spec.timeout);
    let deadline = started.checked_add(timeout).unwrap_or(Timestamp::MAX);
    let clear_for = spec.signals_cleared_for.as_deref().map(signed_duration);
    // The detector's note says since when; an incident without signals (or already resolved)
    // counts as clear since the verification started.
    let clear_since = facts.signals_cleared_at.or_else(|| {
        (incident.spec.signals.is_empty() || incident.spec.resolution.is_some()).then_some(started)
    });
    let clear_until = match clear_for {
        None => Some(now),
        Some(d) => clear_since.and_then(|since| since.checked_add(d).ok()),
    };
    if deployment.healthy && clear_until.is_some_and(|t| t <= now) {
        let mut message = format!("deployment/{} is available", deployment.name);
        if let Some(text) = &spec.signals_cleared_for {
            message.push_str(&format!(" and the signals stayed clear for {text}"));
        }
        return Outcome::Done(message, None);
    }
    if now >= deadline {
        let why = if deployment.healthy {
            format!("the signals did not stay clear within {}", spec.timeout)
        } else {
            format!(
                "deployment/{} not available within {}",
                deployment.name, spec.timeout
            )
        };
        return Outcome::Failed(why);
    }
    // The Deployment's own changes wake the incident; the clock matters only for the timeout and
    // for signals becoming clear long enough.
    let wake = clear_until
        .filter(|t| *t > now)
        .map_or(deadline, |t| t.min(deadline));
    Outcome::Wait(Some(wake))
}

/// Why a step's `when` does not hold, or None when it does.
fn not_now(when: &StepCondition, incident: &Incident, facts: &RunFacts) -> Option<String> {
    if let Some(signal) = &when.signal
        && !incident.spec.signals.iter().any(|s| &s.type_ == signal)
    {
        return Some(format!("the incident has no {signal} signal"));
    }
    if let Some(within) = &when.rolled_out_within {
        let Some(newest) = facts.deployment.as_ref().and_then(|d| d.newest_revision_at) else {
            return Some("no rollout history: no recent deploy to suspect".into());
        };
        let detected = facts.detected_at.unwrap_or(newest);
        let before = detected.duration_since(newest);
        if before > signed_duration(within) {
            return Some(format!(
                "last rollout {} before detection: not suspected (rolledOutWithin {within})",
                humanize(Duration::try_from(before).unwrap_or(Duration::ZERO))
            ));
        }
    }
    None
}

/// Marks the rest of the run skipped after a failure when the runbook says to stop; returns
/// whether it stopped.
fn stop_after_failure(
    out: &mut Advance,
    next: usize,
    step: &RunbookStep,
    why: &str,
    stamp: &Time,
) -> bool {
    if out.run.on_failure == OnFailure::Continue {
        return false;
    }
    let reason = format!("stopped after step {} failed", step.name);
    for progress in out.run.progress.iter_mut().skip(next) {
        if !progress.phase.is_terminal() {
            skip(progress, &reason, stamp);
        }
    }
    out.entries.push(Entry::new(
        EntryType::RunbookEscalated,
        format!(
            "Runbook {} stopped at step {}: {why}; escalating to people",
            out.run.name, step.name
        ),
        None,
        true,
    ));
    true
}

fn finish(progress: &mut StepProgress, phase: StepPhase, reason: &str, stamp: &Time) {
    progress.phase = phase;
    progress.reason = Some(reason.chars().take(512).collect());
    progress.started_at.get_or_insert(stamp.clone());
    progress.finished_at = Some(stamp.clone());
}

fn skip(progress: &mut StepProgress, reason: &str, stamp: &Time) {
    finish(progress, StepPhase::Skipped, reason, stamp);
}

fn failed(step: &RunbookStep, why: &str) -> Entry {
    Entry::new(
        EntryType::StepFailed,
        format!("Step {} failed: {why}", step.name),
        None,
        true,
    )
}

/// A duration the schema already checked; a malformed one counts as zero.
fn signed_duration(text: &str) -> SignedDuration {
    duration::parse(text)
        .ok()
        .and_then(|d| SignedDuration::try_from(d).ok())
        .unwrap_or(SignedDuration::ZERO)
}

fn unreachable_escalate() -> crate::api::EscalateStep {
    crate::api::EscalateStep {
        message: "escalation".into(),
        to: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ActionKind, ActionStatus, Runbook};
    use serde_json::json;

    fn runbook(steps: serde_json::Value, on_failure: &str) -> Runbook {
        serde_json::from_value(json!({
            "apiVersion": "incident.dev/v1alpha1", "kind": "Runbook",
            "metadata": { "name": "crash", "generation": 3 },
            "spec": { "steps": steps, "onFailure": on_failure },
        }))
        .expect("runbook")
    }

    fn incident(severity: &str) -> Incident {
        serde_json::from_value(json!({
            "apiVersion": "incident.dev/v1alpha1", "kind": "Incident",
            "metadata": { "name": "i", "creationTimestamp": "2026-11-22T10:00:00Z" },
            "spec": { "title": "t", "severity": severity,
                      "affected": [{ "kind": "Deployment", "name": "web" }],
                      "signals": [{ "type": "CrashLoopBackOff", "firstSeen": "2026-11-22T10:00:00Z",
                                    "lastSeen": "2026-11-22T10:00:00Z", "count": 1 }] },
        }))
        .expect("incident")
    }

    fn facts(rolled_out: &str, healthy: bool) -> RunFacts {
        RunFacts {
            deployment: Some(DeploymentFacts {
                name: "web".into(),
                healthy,
                newest_revision_at: Some(rolled_out.parse().expect("time")),
            }),
            detected_at: Some("2026-11-22T10:00:00Z".parse().expect("time")),
            signals_cleared_at: None,
            collected: None,
            response_time: Duration::from_secs(3600),
        }
    }

    fn at(text: &str) -> Timestamp {
        text.parse().expect("time")
    }

    fn types(advance: &Advance) -> Vec<EntryType> {
        advance.entries.iter().map(|e| e.type_).collect()
    }

    fn rollback_steps() -> serde_json::Value {
        json!([
            { "name": "gather", "collect": { "events": true } },
            { "name": "roll-back", "rollback": {}, "automaticFor": ["P2", "P3"],
              "when": { "rolledOutWithin": "30m" } },
            { "name": "confirm", "verify": { "timeout": "5m" } },
        ])
    }

    fn finish_action(incident: &mut Incident, name: &str, phase: ActionPhase) {
        let status = incident.status.get_or_insert_with(Default::default);
        status.actions.push(ActionStatus {
            phase,
            ..ActionStatus::pending(name, ActionKind::Rollback, "web")
        });
    }

    #[test]
    fn an_automatic_rollback_is_requested_once_then_followed_to_verification() {
        let Started {
            run,
            entry: selected,
            ..
        } = start(
            &runbook(rollback_steps(), "Escalate"),
            "matched",
            Severity::P2,
        );
        assert_eq!(selected.type_, EntryType::RunbookSelected);
        assert_eq!(run.generation, 3);
        let mut incident = incident("P2");
        let facts = facts("2026-11-22T09:50:00Z", false);
        let now = at("2026-11-22T10:01:00Z");
        let first = advance(&run, &incident, &facts, now);
        assert_eq!(
            types(&first),
            [EntryType::StepSucceeded, EntryType::StepStarted]
        );
        let action = first.request.clone().expect("a rollback action");
        assert_eq!(action.name, "runbook-roll-back");
        assert_eq!(
            action.rollback.as_ref().map(|r| r.deployment.as_str()),
            Some("web")
        );
        assert_eq!(first.run.progress[1].phase, StepPhase::Running);
        assert_eq!(
            first.run.progress[1].actor.as_deref(),
            Some("runbook crash")
        );

        // Same inputs again: nothing new is recorded or requested (the action is in the spec).
        incident.spec.actions.push(action);
        let again = advance(&first.run, &incident, &facts, now);
        assert!(
            again.entries.is_empty() && again.request.is_none(),
            "{again:#?}"
        );

        finish_action(&mut incident, "runbook-roll-back", ActionPhase::Succeeded);
        let verifying = advance(&first.run, &incident, &facts, now);
        assert_eq!(verifying.run.progress[1].phase, StepPhase::Succeeded);
        assert_eq!(verifying.run.progress[2].phase, StepPhase::Running);
        assert_eq!(
            verifying.wake_at,
            Some(at("2026-11-22T10:06:00Z")),
            "the verify timeout"
        );
        let healthy = RunFacts {
            deployment: Some(DeploymentFacts {
                healthy: true,
                ..facts.deployment.clone().expect("deployment")
            }),
            ..facts.clone()
        };
        let done = advance(&verifying.run, &incident, &healthy, now);
        assert_eq!(
            types(&done),
            [EntryType::StepSucceeded, EntryType::RunbookCompleted]
        );
        let late = advance(
            &verifying.run,
            &incident,
            &facts,
            at("2026-11-22T10:06:00Z"),
        );
        assert_eq!(late.run.progress[2].phase, StepPhase::Failed);
        assert!(types(&late).contains(&EntryType::RunbookEscalated));
    }

    #[test]
    fn a_required_approval_waits_escalates_once_and_runs_when_approved() {
        let run = start(
            &runbook(rollback_steps(), "Escalate"),
            "matched",
            Severity::P2,
        )
        .run;
        let mut incident = incident("P1");
        let facts = facts("2026-11-22T09:50:00Z", false);
        let waiting = advance(&run, &incident, &facts, at("2026-11-22T10:01:00Z"));
        assert_eq!(waiting.run.progress[1].phase, StepPhase::WaitingApproval);
        assert!(waiting.request.is_none(), "no action without approval");
        assert_eq!(waiting.wake_at, Some(at("2026-11-22T11:01:00Z")));
        let late = advance(&waiting.run, &incident, &facts, at("2026-11-22T11:01:00Z"));
        assert_eq!(types(&late), [EntryType::RunbookEscalated]);
        let later = advance(&late.run, &incident, &facts, at("2026-11-22T12:00:00Z"));
        assert!(later.entries.is_empty(), "escalated once: {later:#?}");
        incident.spec.approvals = vec![crate::api::StepApproval {
            step: "roll-back".into(),
            by: "alice".into(),
        }];
        let approved = advance(&later.run, &incident, &facts, at("2026-11-22T12:00:00Z"));
        assert!(approved.request.is_some());
        assert_eq!(approved.run.progress[1].actor.as_deref(), Some("alice"));
        assert!(approved.entries[0].message.contains("approved by alice"));
    }

    #[test]
    fn an_old_rollout_skips_the_rollback_with_the_reason() {
        let run = start(
            &runbook(rollback_steps(), "Escalate"),
            "matched",
            Severity::P2,
        )
        .run;
        let old = advance(
            &run,
            &incident("P2"),
            &facts("2026-11-22T07:00:00Z", true),
            at("2026-11-22T10:01:00Z"),
        );
        assert_eq!(old.run.progress[1].phase, StepPhase::Skipped);
        let reason = old.run.progress[1].reason.clone().unwrap_or_default();
        assert!(
            reason.contains("3h before detection: not suspected"),
            "{reason}"
        );
        assert!(old.request.is_none());
    }

    #[test]
    fn a_failed_step_stops_the_run_unless_it_continues() {
        let steps = json!([
            { "name": "roll-back", "rollback": {}, "approval": "Automatic" },
            { "name": "page", "escalate": { "message": "call the owner", "to": "team-web" } },
        ]);
        for (on_failure, page) in [
            ("Escalate", StepPhase::Skipped),
            ("Continue", StepPhase::Succeeded),
        ] {
            let run = start(&runbook(steps.clone(), on_failure), "matched", Severity::P2).run;
            let mut incident = incident("P1");
            let facts = facts("2026-11-22T09:50:00Z", false);
            let now = at("2026-11-22T10:01:00Z");
            let started = advance(&run, &incident, &facts, now);
            finish_action(&mut incident, "runbook-roll-back", ActionPhase::Failed);
            let failed = advance(&started.run, &incident, &facts, now);
            assert_eq!(failed.run.progress[0].phase, StepPhase::Failed);
            assert_eq!(failed.run.progress[1].phase, page, "{on_failure}");
            assert!(types(&failed).contains(&EntryType::RunbookEscalated));
            assert!(types(&failed).contains(&EntryType::RunbookCompleted));
        }
    }

    #[test]
    fn a_resolved_incident_gets_no_new_action_and_checkpoints_wait_for_people() {
        let steps = json!([
            { "name": "root-cause", "checkpoint": { "prompt": "Root cause identified?" } },
            { "name": "roll-back", "rollback": {}, "approval": "Automatic" },
        ]);
        let run = start(&runbook(steps, "Escalate"), "matched", Severity::P2).run;
        let mut incident = incident("P3");
        let facts = facts("2026-11-22T09:50:00Z", false);
        let now = at("2026-11-22T10:01:00Z");
        let waiting = advance(&run, &incident, &facts, now);
        assert_eq!(waiting.run.progress[0].phase, StepPhase::WaitingApproval);
        assert_eq!(types(&waiting), [EntryType::StepWaiting]);
        incident.spec.approvals = vec![crate::api::StepApproval {
            step: "root-cause".into(),
            by: "bob".into(),
        }];
        incident.spec.resolution =
            serde_json::from_value(json!({ "summary": "fixed", "by": "bob" })).expect("resolution");
        let after = advance(&waiting.run, &incident, &facts, now);
        assert_eq!(
            after.run.progress[0].phase,
            StepPhase::Skipped,
            "resolved first"
        );
        assert_eq!(after.run.progress[1].phase, StepPhase::Skipped);
        assert!(after.request.is_none());
    }
}
