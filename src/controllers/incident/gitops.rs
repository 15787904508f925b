//! GitOps owners inside the incident reconcile (controllers layer): before the next rollback, read
//! the workload's owner and let the pure gate decide whether to pause it first; resume what was
//! paused once asked. The caller records every decision before this module changes the owner.

use kube::{Client, ResourceExt};
use tracing::warn;

use crate::{
    Error, Result,
    api::{
        ARGOCD_NAMESPACE, ActionPhase, GitOpsOwner, GitOpsPause, Incident, PauseState, WorkloadKind,
    },
    cluster::{gitops, workloads},
    core::remediation::{
        gitops::{Gate, gate, moved_on, resuming_on_revision, watching_source},
        step::next_action,
    },
};

/// How often a paused owner's source is looked at when it does not say how often it fetches
/// (Argo CD), and the bounds on a Flux source's own interval.
const SOURCE_POLL: std::time::Duration = std::time::Duration::from_secs(60);
const SOURCE_POLL_MIN: std::time::Duration = std::time::Duration::from_secs(1);
const SOURCE_POLL_MAX: std::time::Duration = std::time::Duration::from_secs(300);

/// For the pauses that resume on a new source revision: reads each source, marks the moved ones
/// Resuming (the caller records that before changing the owner), and says when to look again at
/// the others — as often as the source itself fetches, bounded.
pub async fn follow_sources(
    client: &Client,
    incident: &mut Incident,
    now: jiff::Timestamp,
) -> Option<jiff::Timestamp> {
    let mut next: Option<std::time::Duration> = None;
    for index in watching_source(pauses(incident)) {
        let owner = pauses(incident)[index].owner.clone();
        let read = match gitops::source_now(client, &owner).await {
            Ok(read) => read,
            Err(error) => {
                warn!(%owner, %error, "cannot read the paused owner's source; looking again later");
                None
            }
        };
        let revision = read.as_ref().and_then(|r| r.revision.as_deref());
        if moved_on(&pauses(incident)[index], revision) {
            if let Some(revision) = revision {
                resuming_on_revision(&mut pauses_mut(incident)[index], revision);
            }
            continue;
        }
        let every = read
            .and_then(|r| r.interval)
            .unwrap_or(SOURCE_POLL)
            .clamp(SOURCE_POLL_MIN, SOURCE_POLL_MAX);
        next = Some(next.map_or(every, |n| n.min(every)));
    }
    next.and_then(|wait| now.checked_add(wait).ok())
}

/// The gate for the incident's next action (Proceed when none waits to be planned).
pub async fn next_gate(client: &Client, incident: &Incident, now: jiff::Timestamp) -> Result<Gate> {
    let Some((Some(spec), current)) = next_action(incident) else {
        return Ok(Gate::Proceed);
    };
    if current.is_some_and(|c| c.phase != ActionPhase::Pending) || spec.rollback.is_none() {
        return Ok(Gate::Proceed);
    }
    // A Rollout's abort is a status field, which no GitOps tool applies: nothing to pause.
    if spec.workload_kind() == WorkloadKind::Rollout {
        return Ok(Gate::Proceed);
    }
    let namespace = incident.namespace().unwrap_or_default();
    let (kind, name) = (spec.workload_kind(), spec.deployment());
    let Some(found) = workloads::workload(client, &namespace, kind, name).await? else {
        // The action's own planning says the workload is missing.
        return Ok(Gate::Proceed);
    };
    let owner = GitOpsOwner::of(found.as_ref().metadata(), ARGOCD_NAMESPACE);
    let workload = format!("{kind}/{name}");
    let recorded = pauses(incident);
    let first = gate(
        spec,
        &namespace,
        &workload,
        owner.as_ref(),
        recorded,
        None,
        now,
    );
    let Gate::Read(owner) = first else {
        return Ok(first);
    };
    let facts = gitops::read(client, &owner).await?;
    Ok(gate(
        spec,
        &namespace,
        &workload,
        Some(&owner),
        recorded,
        Some(facts.as_ref()),
        now,
    ))
}

pub fn pauses(incident: &Incident) -> &[GitOpsPause] {
    incident
        .status
        .as_ref()
        .map(|s| s.gitops.as_slice())
        .unwrap_or_default()
}

pub fn pauses_mut(incident: &mut Incident) -> &mut Vec<GitOpsPause> {
    &mut incident.status.get_or_insert_with(Default::default).gitops
}

/// Changes the owner as the record at `index` says (pause, or put back); a refusal for good (no
/// right to, gone) marks the record Failed with the reason instead of failing the reconcile.
pub async fn reach_owner(client: &Client, incident: &mut Incident, index: usize) -> Result<bool> {
    let Some(pause) = pauses(incident).get(index).cloned() else {
        return Ok(false);
    };
    let outcome = match pause.state {
        PauseState::Resuming => {
            gitops::resume(client, &pause.owner, pause.previous.as_deref()).await
        }
        _ => gitops::pause(client, &pause.owner).await,
    };
    match outcome {
        Ok(()) => Ok(true),
        Err(Error::Kube(kube::Error::Api(status))) if matches!(status.code, 403 | 404 | 422) => {
            let verb = if pause.state == PauseState::Resuming {
                "resume"
            } else {
                "pause"
            };
            let why = format!(
                "cannot {verb} {}: {} (the chart's gitops RBAC values grant it; docs/gitops.md)",
                pause.owner, status.message
            );
            warn!(owner = %pause.owner, %why, "GitOps owner not changed");
            if let Some(record) = pauses_mut(incident).get_mut(index) {
                record.state = PauseState::Failed;
                record.message = Some(why);
            }
            Ok(false)
        }
        Err(error) => Err(error),
    }
}
