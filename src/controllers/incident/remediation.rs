//! Remediation inside the incident reconcile (controllers layer): fetch the workload the next
//! action targets and its history, and let the pure state machine advance the action one step.
//! The reconcile stores each step's status before it sends the change, which is what makes an
//! action run at most once across crashes.

use kube::{Client, ResourceExt};

use crate::{
    Result,
    api::Incident,
    cluster::workloads,
    core::{
        remediation::{
            plan::Actor,
            sets::Workload,
            step::{Step, WorkloadState, next_action, step},
        },
        timeline::spec_actor,
    },
};

/// One step of the next action, with the workload's resourceVersion it was planned against.
pub struct NextStep {
    pub step: Step,
    pub resource_version: Option<String>,
}

/// Fetches what the next action needs and advances it one step; None when no action is pending.
pub async fn next_step(
    client: &Client,
    incident: &Incident,
    now: jiff::Timestamp,
) -> Result<Option<NextStep>> {
    let Some((spec, current)) = next_action(incident) else {
        return Ok(None);
    };
    let namespace = incident.namespace().unwrap_or_default();
    let (kind, name) = current
        .map(|c| (c.workload(), c.deployment.clone()))
        .or_else(|| spec.map(|s| (s.workload_kind(), s.deployment().to_owned())))
        .unwrap_or_default();
    let workload = workloads::workload(client, &namespace, kind, &name).await?;
    let (replica_sets, revisions) = match &workload {
        Some(w) => workloads::history(client, &namespace, w).await?,
        None => Default::default(),
    };
    let actor = Actor {
        incident_name: incident.name_any(),
        incident_uid: incident.uid().unwrap_or_default(),
        action_name: current
            .map(|c| c.name.clone())
            .or_else(|| spec.map(|s| s.name.clone()))
            .unwrap_or_default(),
    };
    let state = WorkloadState {
        workload: workload.as_ref().map(Workload::as_ref),
        replica_sets: &replica_sets,
        revisions: &revisions,
    };
    let resource_version = state
        .workload
        .and_then(|w| w.metadata().resource_version.clone());
    Ok(
        step(spec, current, state, &actor, spec_actor(incident), now).map(|step| NextStep {
            step,
            resource_version,
        }),
    )
}
