//! Remediation I/O: fetch the Deployment and its ReplicaSets, and send a planned change with a
//! resourceVersion precondition. The controller stores each step's status before calling
//! [`apply_change`], which is what makes an action run at most once across crashes.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::{
    Api, Client, ResourceExt,
    api::{ListParams, Patch, PatchParams},
    core::labels::Selector,
};
use serde_json::{Value, json};

use super::{
    plan::{Actor, Change},
    step::{Facts, Step, step},
};
use crate::{
    Error, Result,
    api::{ActionStatus, Incident, RemediationAction},
    lifecycle::decide::ACTOR_ANNOTATION,
};

/// Field manager of the operator's changes to Deployments.
pub const FIELD_MANAGER: &str = "incident-operator";

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

/// One step of the next action, with the Deployment's resourceVersion it was planned against.
pub struct Advance {
    pub step: Step,
    pub resource_version: Option<String>,
}

/// Fetches what the next action needs and advances it one step; None when no action is pending.
pub async fn advance(
    client: &Client,
    incident: &Incident,
    now: jiff::Timestamp,
) -> Result<Option<Advance>> {
    let Some((spec, current)) = next_action(incident) else {
        return Ok(None);
    };
    let namespace = incident.namespace().unwrap_or_default();
    let name = current
        .map(|c| c.deployment.clone())
        .or_else(|| spec.map(|s| s.deployment().to_owned()))
        .unwrap_or_default();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &namespace);
    let deployment = deployments.get_opt(&name).await.map_err(Error::Kube)?;
    let replica_sets = match &deployment {
        Some(d) => owned_replica_sets(client, &namespace, d).await?,
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
    let requested_by = incident
        .annotations()
        .get(ACTOR_ANNOTATION)
        .cloned()
        .or_else(|| incident.spec.commander.clone());
    let facts = Facts {
        deployment: deployment.as_ref(),
        replica_sets: &replica_sets,
    };
    let resource_version = deployment.as_ref().and_then(|d| d.resource_version());
    Ok(
        step(spec, current, facts, &actor, requested_by, now).map(|step| Advance {
            step,
            resource_version,
        }),
    )
}

/// The ReplicaSets the Deployment controls: listed by its selector, so the API server sends only
/// its own (not every ReplicaSet of the namespace), then kept where it is their controller.
pub async fn owned_replica_sets(
    client: &Client,
    namespace: &str,
    deployment: &Deployment,
) -> Result<Vec<ReplicaSet>> {
    let api: Api<ReplicaSet> = Api::namespaced(client.clone(), namespace);
    // The API server validated the selector; one it could not parse would only widen the list.
    let params = match Selector::try_from(deployment.spec.selector.clone()) {
        Ok(selector) => ListParams::default().labels_from(&selector),
        Err(_) => ListParams::default(),
    };
    let name = deployment.name_any();
    let list = api.list(&params).await.map_err(Error::Kube)?;
    Ok(list
        .items
        .into_iter()
        .filter(|rs| {
            rs.owner_references()
                .iter()
                .any(|o| o.controller == Some(true) && o.kind == "Deployment" && o.name == name)
        })
        .collect())
}

/// Outcome of sending a change.
pub enum Applied {
    Done(Box<Deployment>),
    /// The Deployment changed since it was read; read it again and re-plan.
    Conflict,
}

/// Sends `change` to the Deployment, only if it is still at `resource_version`.
pub async fn apply_change(
    client: &Client,
    namespace: &str,
    name: &str,
    resource_version: &str,
    change: &Change,
) -> Result<Applied> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    let outcome = match change {
        Change::JsonPatch(operations) => {
            let mut operations = operations.clone();
            // A resourceVersion in the patched object is a precondition: 409 if anything changed.
            operations.push(json!({ "op": "replace", "path": "/metadata/resourceVersion", "value": resource_version }));
            let patch: json_patch::Patch = serde_json::from_value(Value::Array(operations))
                .map_err(|e| Error::Plan(e.to_string()))?;
            api.patch(name, &params, &Patch::<()>::Json(patch)).await
        }
        Change::MergePatch(body) => {
            let mut body = body.clone();
            if let Some(metadata) = body.get_mut("metadata").and_then(Value::as_object_mut) {
                metadata.insert("resourceVersion".into(), json!(resource_version));
            }
            api.patch(name, &params, &Patch::Merge(&body)).await
        }
    };
    match outcome {
        Ok(deployment) => Ok(Applied::Done(Box::new(deployment))),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(Applied::Conflict),
        Err(error) => Err(Error::Kube(error)),
    }
}
