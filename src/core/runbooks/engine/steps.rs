//! What each kind of step does when it runs (core layer): collect, escalate, checkpoint, the
//! remediation steps with their approval gate, verify, and the `when` conditions.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{Advance, RunFacts, action_for, action_name_at, unsupported};
use crate::{
    api::{
        ActionPhase, AlertState, Approval, EntryType, Incident, RunbookStep, Severity,
        StepCondition, StepKind, StepPhase, StepProgress, WorkloadKind, duration,
    },
    core::{
        text::{counted, humanize},
        timeline::Entry,
    },
};

/// What a step's turn came to.
pub(super) enum Outcome {
    /// The step holds the run; look again at this time, if any.
    Wait(Option<Timestamp>),
    Done(String, Option<String>),
    Failed(String),
}

/// A collect step: keeps what the shell gathered as the step's evidence.
pub(super) fn collect(progress: &mut StepProgress, facts: &RunFacts, stamp: &Time) -> Outcome {
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

/// An escalate step: one escalation entry, done at once.
pub(super) fn escalate(
    step: &RunbookStep,
    progress: &mut StepProgress,
    runbook: &str,
    stamp: &Time,
) -> (Outcome, Entry) {
    let escalate = step.escalate.clone().unwrap_or_else(unreachable_escalate);
    let to = escalate
        .to
        .as_deref()
        .map(|t| format!(" to {t}"))
        .unwrap_or_default();
    let entry = Entry::new(
        EntryType::RunbookEscalated,
        format!("Escalated{to} by runbook {runbook}: {}", escalate.message),
        None,
        true,
    );
    progress.started_at.get_or_insert(stamp.clone());
    (Outcome::Done(format!("escalated{to}"), None), entry)
}

/// A checkpoint: done once a person marks it in `spec.approvals`; until then it waits, announced
/// once.
pub(super) fn checkpoint(
    step: &RunbookStep,
    progress: &mut StepProgress,
    incident: &Incident,
    stamp: &Time,
) -> (Outcome, Option<Entry>) {
    let mut entry = None;
    let outcome = match incident.spec.approvals.iter().find(|a| a.step == step.name) {
        Some(done) => Outcome::Done(format!("marked done by {}", done.by), Some(done.by.clone())),
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
                entry = Some(Entry::new(
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
    };
    (outcome, entry)
}

/// A rollback, restart or scale step: wait for approval unless automatic, then request the action
/// and follow it to its end.
#[allow(clippy::too_many_arguments)]
pub(super) fn remediate(
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
    let Some(first) = facts.workloads.first() else {
        return Outcome::Failed(
            "the incident names no Deployment, StatefulSet, DaemonSet or Rollout to act on".into(),
        );
    };
    if let Some(why) = facts.workloads.iter().find_map(|w| unsupported(kind, w)) {
        return Outcome::Failed(why);
    }
    if progress.phase == StepPhase::Running {
        let actor = progress.actor.clone();
        return follow_actions(out, step, incident, facts, actor);
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
                        "Step {} ({} of {}) waits for approval: add {{step: {}, by: NAME}} to spec.approvals",
                        step.name,
                        kind.as_str(),
                        targets(facts),
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
    let Some(action) = action_for(step, first, 0) else {
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
            "Step {} ({}): {how}; requested action {} on {}",
            step.name,
            kind.as_str(),
            action.name,
            first.target()
        ),
        Some(actor),
        false,
    ));
    out.request = Some(action);
    Outcome::Wait(None)
}

const ESCALATED: &str = "waiting for approval; escalated past the response time";

/// A started remediation step follows its actions, one per workload in the order the incident
/// names them: the next is asked for once the one before succeeded (or had nothing to do), so each
/// runs once and is verified before the next; a failure fails the step and leaves the rest alone.
fn follow_actions(
    out: &mut Advance,
    step: &RunbookStep,
    incident: &Incident,
    facts: &RunFacts,
    actor: Option<String>,
) -> Outcome {
    let statuses = incident
        .status
        .as_ref()
        .map(|s| s.actions.as_slice())
        .unwrap_or_default();
    let mut done = Vec::new();
    for (index, workload) in facts.workloads.iter().enumerate() {
        let name = action_name_at(step, index);
        let status = statuses.iter().find(|a| a.name == name);
        match status.map(|a| (a.phase, a.message.clone())) {
            Some((ActionPhase::Succeeded, _)) => done.push(format!("action {name} succeeded")),
            Some((ActionPhase::Skipped, message)) => done.push(format!(
                "action {name} had nothing to do ({})",
                message.unwrap_or_default()
            )),
            Some((ActionPhase::Failed, message)) => {
                return Outcome::Failed(format!(
                    "action {name} failed: {}",
                    message.unwrap_or_default()
                ));
            }
            Some(_) => return Outcome::Wait(None),
            None => {
                // Not asked for yet, or asked for but lost in a crash before the write: ask.
                if !incident.spec.actions.iter().any(|a| a.name == name) {
                    out.request = action_for(step, workload, index);
                    if index > 0 {
                        out.entries.push(Entry::new(
                            EntryType::StepStarted,
                            format!(
                                "Step {}: requested action {name} on {} ({} of {})",
                                step.name,
                                workload.target(),
                                index + 1,
                                facts.workloads.len()
                            ),
                            actor,
                            false,
                        ));
                    }
                }
                return Outcome::Wait(None);
            }
        }
    }
    Outcome::Done(done.join("; "), actor)
}

/// The workloads a step acts on, for people: `deployment/web, statefulset/db`.
fn targets(facts: &RunFacts) -> String {
    let all: Vec<String> = facts.workloads.iter().map(|w| w.target()).collect();
    all.join(", ")
}

/// A verify step: the Deployment available and, if asked, the signals clear for long enough,
/// within its timeout.
pub(super) fn verify(
    step: &RunbookStep,
    progress: &mut StepProgress,
    incident: &Incident,
    facts: &RunFacts,
    stamp: &Time,
) -> Outcome {
    let Some(spec) = &step.verify else {
        return Outcome::Failed("not a verify step".into());
    };
    if facts.workloads.is_empty() {
        return Outcome::Failed(
            "the incident names no Deployment, StatefulSet, DaemonSet or Rollout to verify".into(),
        );
    }
    let healthy = facts.workloads.iter().all(|w| w.healthy);
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
    if healthy && clear_until.is_some_and(|t| t <= now) {
        let verb = if facts.workloads.len() == 1 {
            "is"
        } else {
            "are"
        };
        let mut message = format!("{} {verb} available", targets(facts));
        if let Some(text) = &spec.signals_cleared_for {
            message.push_str(&format!(" and the signals stayed clear for {text}"));
        }
        return Outcome::Done(message, None);
    }
    if now >= deadline {
        let why = if healthy {
            format!("the signals did not stay clear within {}", spec.timeout)
        } else {
            let late: Vec<String> = facts
                .workloads
                .iter()
                .filter(|w| !w.healthy)
                .map(|w| w.target())
                .collect();
            format!("{} not available within {}", late.join(", "), spec.timeout)
        };
        return Outcome::Failed(why);
    }
    // The Deployment's own changes wake the incident; the clock matters only for the timeout and
    // for signals becoming clear long enough.
    let wake = clear_until
        .filter(|t| *t > now)
        .map_or(deadline, |t| t.min(deadline));
    // A Rollout is not watched (its CRD is optional): look again soon while one is not settled.
    let polled = facts
        .workloads
        .iter()
        .any(|w| !w.healthy && w.kind == WorkloadKind::Rollout)
        .then(|| now.checked_add(ROLLOUT_POLL).ok())
        .flatten();
    Outcome::Wait(Some(polled.map_or(wake, |p| p.min(wake))))
}

/// How often a verify step looks at a Rollout that is not settled yet (remediation's pace too).
const ROLLOUT_POLL: SignedDuration = SignedDuration::from_secs(5);

/// Why a step's `when` does not hold, or None when it does.
pub(super) fn not_now(
    when: &StepCondition,
    incident: &Incident,
    facts: &RunFacts,
) -> Option<String> {
    let carried = |signal: &String| {
        incident.spec.signals.iter().any(|s| &s.type_ == signal)
            || incident
                .spec
                .alerts
                .iter()
                .any(|a| a.state == AlertState::Firing && &a.name == signal)
    };
    if let Some(signal) = &when.signal
        && !carried(signal)
    {
        return Some(format!("the incident has no {signal} signal"));
    }
    if let Some(within) = &when.rolled_out_within {
        // The newest deploy of any workload the incident names is the suspect.
        let newest = facts
            .workloads
            .iter()
            .filter_map(|w| w.newest_revision_at)
            .max();
        let Some(newest) = newest else {
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
