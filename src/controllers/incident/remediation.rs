//! Remediation inside the incident reconcile (controllers layer): fetch the Deployment the next
//! action targets and its ReplicaSets, and let the pure state machine advance the action one step.
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
            step::{DeploymentState, Step, next_action, step},
        },
        timeline::spec_actor,
    },
};

/// One step of the next action, with the Deployment's resourceVersion it was planned against.
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
    let name = current
        .map(|c| c.deployment.clone())
        .or_else(|| spec.map(|s| s.deployment().to_owned()))
        .unwrap_or_default();
    let deployment = workloads::deployment(client, &namespace, &name).await?;
    let replica_sets = match &deployment {
        Some(d) => workloads::owned_replica_sets(client, &namespace, d).await?,
        None => Vec::new(),
    };
    let actor = Actor {
        incident_name: incident.name_any(),
        incident_uid: incident.uid().unwrap_or_default(),
        action_name: current
            .map(|c| c.name.clone())
            .or_else(|| spec.map(|s| s.name.clone()))
            .unwrap_or_default(),
    };
    let state = DeploymentState {
        deployment: deployment.as_ref(),
        replica_sets: &replica_sets,
    };
    let resource_version = deployment.as_ref().and_then(|d| d.resource_version());
    Ok(
        step(spec, current, state, &actor, spec_actor(incident), now).map(|step| NextStep {
            step,
            resource_version,
        }),
    )
}
