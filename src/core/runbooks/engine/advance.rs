//! Advancing a run (core layer): walks the steps in order, lets each step kind decide, records
//! success, failure and skips, stops the run after a failure when the runbook says so, and reports
//! the run's completion once.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{
    Advance, RunFacts,
    steps::{self, Outcome},
};
use crate::{
    api::{
        EntryType, Incident, OnFailure, RunbookRun, RunbookStep, StepKind, StepPhase, StepProgress,
    },
    core::{text::to_second, timeline::Entry},
};

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
            && let Some(why) = step
                .when
                .as_ref()
                .and_then(|w| steps::not_now(w, incident, facts))
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
            StepKind::Collect => steps::collect(progress, facts, &stamp),
            StepKind::Escalate => {
                let (outcome, entry) = steps::escalate(&step, progress, &run.name, &stamp);
                out.entries.push(entry);
                outcome
            }
            StepKind::Checkpoint => {
                let (outcome, entry) = steps::checkpoint(&step, progress, incident, &stamp);
                out.entries.extend(entry);
                outcome
            }
            StepKind::Rollback | StepKind::Restart | StepKind::Scale => steps::remediate(
                &mut out,
                index - 1,
                &step,
                kind,
                incident,
                facts,
                severity,
                &stamp,
            ),
            StepKind::Verify => steps::verify(&step, progress, incident, facts, &stamp),
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

pub(super) fn finish(progress: &mut StepProgress, phase: StepPhase, reason: &str, stamp: &Time) {
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
