//! Rollbacks that stick (core layer): before a rollback of a workload Flux or Argo CD applies, its
//! owner is paused the way people pause it by hand, and recorded first, so that it is paused once
//! and resumed exactly once across crashes. What the owner is and what it manages the shell reads;
//! everything decided from it is here.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::{
    api::{
        GitOpsMode, GitOpsOwner, GitOpsPause, GitOpsResume, IncidentSpec, MAX_ALSO_MANAGED,
        MAX_PAUSES, PauseState, RemediationAction, metadata::OPERATOR_ACTOR,
    },
    core::{text::cut, timeline::Entry},
};

/// What the shell read of an owner object.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct OwnerFacts {
    /// Already paused (Flux: `spec.suspend: true`; Argo CD: no automated sync).
    pub paused: bool,
    /// What to put back on resume (Flux's `spec.suspend`, Argo CD's automated sync as JSON).
    pub previous: Option<String>,
    /// The workloads it applies, as `Kind/namespace/name`, when the tool lists them (Flux
    /// Kustomization inventory, Argo CD Application resources); None when it does not.
    pub manages: Option<Vec<String>>,
    /// The source revision it last applied.
    pub revision: Option<String>,
    /// Its source (`Kind namespace/name`) and that source's current revision, when readable.
    pub source: Option<String>,
    pub source_revision: Option<String>,
}

/// What to do before the next rollback.
#[derive(Clone, Debug, PartialEq)]
pub enum Gate {
    /// Nothing to pause (or paused already): go on with the action.
    Proceed,
    /// Read the owner, then ask again with its facts.
    Read(GitOpsOwner),
    /// Record this pause (Pausing), then change the owner, then mark it paused.
    Pause(Box<GitOpsPause>),
    /// The recorded pause (at this index) has yet to reach the owner: change it, then mark it.
    Finish(usize),
    /// Fail the action: the owner cannot be paused as asked.
    Refuse {
        reason: &'static str,
        message: String,
    },
}

/// The gate for `action` on the workload `workload` (`Deployment/name` in `namespace`), owned by
/// `owner` (its marks), given the pauses recorded and, once read, the owner's facts (`None`: not
/// read yet; `Some(None)`: it does not exist).
pub fn gate(
    action: &RemediationAction,
    namespace: &str,
    workload: &str,
    owner: Option<&GitOpsOwner>,
    recorded: &[GitOpsPause],
    facts: Option<Option<&OwnerFacts>>,
    now: Timestamp,
) -> Gate {
    let Some(rollback) = &action.rollback else {
        return Gate::Proceed;
    };
    let Some(owner) = owner.filter(|o| o.reverts()) else {
        return Gate::Proceed;
    };
    let mode = rollback.gitops.unwrap_or_default();
    if action.dry_run || mode == GitOpsMode::RollbackOnly {
        return Gate::Proceed;
    }
    if mode == GitOpsMode::EscalateOnly {
        return Gate::Refuse {
            reason: "GitOpsOwned",
            message: format!(
                "{workload} is applied by {owner}: this rollback escalates instead (gitops: \
                 EscalateOnly); revert the change in Git"
            ),
        };
    }
    if let Some(index) = recorded.iter().position(|p| &p.owner == owner) {
        return match recorded[index].state {
            PauseState::Pausing => Gate::Finish(index),
            PauseState::Failed => Gate::Refuse {
                reason: "GitOpsPauseFailed",
                message: recorded[index].message.clone().unwrap_or_default(),
            },
            // Paused (or resumed by a person on purpose): the rollback goes on.
            _ => Gate::Proceed,
        };
    }
    if recorded.len() >= MAX_PAUSES {
        return Gate::Refuse {
            reason: "GitOpsPauseLimit",
            message: format!(
                "{MAX_PAUSES} owners are paused for this incident already: {owner} is not"
            ),
        };
    }
    let Some(facts) = facts else {
        return Gate::Read(owner.clone());
    };
    let Some(facts) = facts else {
        return Gate::Refuse {
            reason: "GitOpsOwnerNotFound",
            message: format!(
                "{workload} is marked as applied by {owner}, which does not exist: nothing to pause; \
                 roll back with gitops: RollbackOnly to go on"
            ),
        };
    };
    let me = format!(
        "{workload_kind}/{namespace}/{workload_name}",
        workload_kind = workload.split('/').next().unwrap_or_default(),
        workload_name = workload.split('/').nth(1).unwrap_or_default()
    );
    let others: Vec<String> = match &facts.manages {
        // Its marks are only a claim: pause nothing that does not list the workload itself.
        Some(list) if !list.contains(&me) => {
            return Gate::Refuse {
                reason: "GitOpsOwnerUnverified",
                message: format!(
                    "{workload} is marked as applied by {owner}, which does not list it among what \
                     it applies: not paused; roll back with gitops: RollbackOnly to go on"
                ),
            };
        }
        Some(list) => list
            .iter()
            .filter(|w| **w != me && is_workload(w))
            .cloned()
            .collect(),
        None => Vec::new(),
    };
    if !others.is_empty() && rollback.pause_shared_owner == Some(false) {
        return Gate::Refuse {
            reason: "GitOpsOwnerShared",
            message: format!(
                "{owner} also applies {}: not paused (pauseSharedOwner: false); revert the change \
                 in Git",
                others.join(", ")
            ),
        };
    }
    let mut also_manages: Vec<String> = others.into_iter().take(MAX_ALSO_MANAGED).collect();
    also_manages.sort();
    let on_revision = rollback.gitops_resume == Some(GitOpsResume::OnNewRevision);
    // Without the source's revision there is nothing to compare a new one with: by hand then.
    let armed = on_revision && !facts.paused && facts.source_revision.is_some();
    let message = if facts.paused {
        Some(format!(
            "{owner} was already paused: it stays so after the incident"
        ))
    } else if on_revision && !armed {
        Some(format!(
            "the source of {owner} could not be read: resume it by hand once the revert is in Git"
        ))
    } else {
        None
    };
    Gate::Pause(Box::new(GitOpsPause {
        owner: owner.clone(),
        workload: workload.to_owned(),
        state: if facts.paused {
            PauseState::Paused
        } else {
            PauseState::Pausing
        },
        previous: facts.previous.as_deref().map(|p| cut(p, 512)),
        already_paused: facts.paused,
        also_manages,
        revision: facts.revision.as_deref().map(|r| cut(r, 256)),
        resume_on_new_revision: armed,
        source: facts.source.as_deref().map(|s| cut(s, 256)),
        source_revision: facts.source_revision.as_deref().map(|r| cut(r, 256)),
        paused_at: facts.paused.then_some(Time(now)),
        resumed_at: None,
        resumed_by: None,
        message,
    }))
}

/// Kinds whose version a pause freezes (what people roll out).
fn is_workload(id: &str) -> bool {
    ["Deployment/", "StatefulSet/", "DaemonSet/", "Rollout/"]
        .iter()
        .any(|k| id.starts_with(k))
}

/// The timeline entry of a pause that reached its owner, and the record marked paused.
pub fn paused(pause: &mut GitOpsPause, now: Timestamp) -> Entry {
    pause.state = PauseState::Paused;
    pause.paused_at = Some(Time(now));
    let shared = if pause.also_manages.is_empty() {
        String::new()
    } else {
        format!(
            "; it also applies {}, which stay as they are until it resumes",
            pause.also_manages.join(", ")
        )
    };
    let then = if pause.resume_on_new_revision {
        format!(
            "it resumes by itself once {} has a new revision",
            pause.source.as_deref().unwrap_or("its source")
        )
    } else {
        "then `kubectl incident resume-gitops`".to_owned()
    };
    Entry::new(
        crate::api::EntryType::GitOpsPaused,
        format!(
            "Paused {} so that the rollback of {} sticks{shared}. Revert the change in Git; {then}",
            pause.owner, pause.workload
        ),
        None,
        true,
    )
}

/// The pauses to resume now (their indexes): every one this incident made, once `spec.gitops.resume`
/// is set — an owner that was already paused stays paused.
pub fn due_resumes(spec: &IncidentSpec, recorded: &[GitOpsPause]) -> Vec<usize> {
    let asked = spec.gitops.as_ref().is_some_and(|g| g.resume);
    recorded
        .iter()
        .enumerate()
        .filter(|(_, p)| match p.state {
            PauseState::Resuming => true,
            PauseState::Paused => asked && !p.already_paused,
            _ => false,
        })
        .map(|(i, _)| i)
        .collect()
}

/// The pauses that resume by themselves once their source moves (their indexes): the shell reads
/// those sources' revisions and hands them to [`moved_on`].
pub fn watching_source(recorded: &[GitOpsPause]) -> Vec<usize> {
    recorded
        .iter()
        .enumerate()
        .filter(|(_, p)| {
            p.state == PauseState::Paused && p.resume_on_new_revision && !p.already_paused
        })
        .map(|(i, _)| i)
        .collect()
}

/// Whether the pause's source now has a revision other than the one it had when paused (what
/// the shell read: None when it could not be read, which resumes nothing).
pub fn moved_on(pause: &GitOpsPause, current: Option<&str>) -> bool {
    pause.resume_on_new_revision
        && !pause.already_paused
        && pause.state == PauseState::Paused
        && current.is_some_and(|now| Some(cut(now, 256)) != pause.source_revision)
}

/// Marks a pause as being resumed by the operator because its source has `revision`.
pub fn resuming_on_revision(pause: &mut GitOpsPause, revision: &str) {
    if pause.state != PauseState::Resuming {
        pause.state = PauseState::Resuming;
        pause.resumed_by = Some(OPERATOR_ACTOR.to_owned());
        let source = pause.source.as_deref().unwrap_or("its source");
        pause.message = Some(cut(
            &format!(
                "{source} has a new revision, {revision}: resumed as asked (gitopsResume: OnNewRevision)"
            ),
            512,
        ));
    }
}

/// Marks a pause as being resumed (recorded before the owner is changed back).
pub fn resuming(pause: &mut GitOpsPause, by: Option<String>) {
    if pause.state != PauseState::Resuming {
        pause.state = PauseState::Resuming;
        pause.resumed_by = by;
    }
}

/// Marks a pause resumed; the timeline entry says for how long it held.
pub fn resumed(pause: &mut GitOpsPause, now: Timestamp) -> Entry {
    pause.state = PauseState::Resumed;
    pause.resumed_at = Some(Time(now));
    let held = pause
        .paused_at
        .as_ref()
        .map(|at| crate::core::text::age(now.duration_since(at.0)))
        .unwrap_or_default();
    let why = match (&pause.resumed_by, &pause.message) {
        (Some(by), Some(message)) if by == OPERATOR_ACTOR => format!(": {message}"),
        _ => String::new(),
    };
    Entry::new(
        crate::api::EntryType::GitOpsResumed,
        format!("Resumed {} after {held}{why}", pause.owner),
        pause.resumed_by.clone(),
        false,
    )
}

#[cfg(test)]
#[path = "gitops_tests.rs"]
mod tests;
