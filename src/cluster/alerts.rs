//! The alert receiver's reads and writes (cluster layer): the workload owning a pod an alert names,
//! a group's incidents by label, and the one change a message makes — a new incident, or a merge
//! patch at the version read.

use kube::{
    Api, Client,
    api::{ListParams, Patch, PatchParams, PostParams},
};
use serde_json::Value;

use k8s_openapi::{
    api::{apps::v1::ReplicaSet, core::v1::Pod},
    apimachinery::pkg::apis::meta::v1::OwnerReference,
};

use super::conflict_or_kube;
use crate::{
    Error, Result,
    api::{Incident, metadata::ALERTS_MANAGER},
};

/// The workload (kind, name) that owns pod `pod`: its StatefulSet or DaemonSet, or the Deployment of
/// its ReplicaSet; None when the pod is gone or has no such owner.
pub async fn owner_of_pod(
    client: &Client,
    namespace: &str,
    pod: &str,
) -> Result<Option<(String, String)>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let Some(pod) = pods.get_opt(pod).await.map_err(Error::Kube)? else {
        return Ok(None);
    };
    let Some(owner) = controller(pod.metadata.owner_references.as_deref()) else {
        return Ok(None);
    };
    match owner.kind.as_str() {
        "StatefulSet" | "DaemonSet" => Ok(Some((owner.kind.clone(), owner.name.clone()))),
        "ReplicaSet" => {
            let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), namespace);
            let set = sets.get_opt(&owner.name).await.map_err(Error::Kube)?;
            Ok(set
                .and_then(|s| controller(s.metadata.owner_references.as_deref()).cloned())
                .filter(|o| o.kind == "Deployment")
                .map(|o| (o.kind, o.name)))
        }
        _ => Ok(None),
    }
}

fn controller(owners: Option<&[OwnerReference]>) -> Option<&OwnerReference> {
    owners?.iter().find(|o| o.controller == Some(true))
}

/// The incidents of an alert group in `namespace`, by its label `selector` (read from the API
/// server, not a cache: the answer to Alertmanager must reflect what is stored).
pub async fn of_group(client: &Client, namespace: &str, selector: &str) -> Result<Vec<Incident>> {
    let api: Api<Incident> = Api::namespaced(client.clone(), namespace);
    let params = ListParams::default().labels(selector);
    Ok(api.list(&params).await.map_err(Error::Kube)?.items)
}

/// Creates the incident; a name already taken (another replica won the race) is a conflict.
pub async fn create(client: &Client, namespace: &str, body: &Value) -> Result<()> {
    let api: Api<Incident> = Api::namespaced(client.clone(), namespace);
    let incident: Incident = serde_json::from_value(body.clone())
        .map_err(|e| Error::Plan(format!("the incident to create: {e}")))?;
    let params = PostParams {
        field_manager: Some(ALERTS_MANAGER.to_owned()),
        ..PostParams::default()
    };
    api.create(&params, &incident)
        .await
        .map(|_| ())
        .map_err(conflict_or_kube)
}

/// Merge-patches the incident; the patch carries the resourceVersion it was computed from, so a
/// change in between is a conflict.
pub async fn update(client: &Client, namespace: &str, name: &str, patch: &Value) -> Result<()> {
    let api: Api<Incident> = Api::namespaced(client.clone(), namespace);
    let params = PatchParams {
        field_manager: Some(ALERTS_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    api.patch(name, &params, &Patch::Merge(patch))
        .await
        .map(|_| ())
        .map_err(conflict_or_kube)
}
