//! The alert receiver's reads and writes (cluster layer): a group's incidents by label, and the
//! one change a message makes — a new incident, or a merge patch at the version read.

use kube::{
    Api, Client,
    api::{ListParams, Patch, PatchParams, PostParams},
};
use serde_json::Value;

use super::conflict_or_kube;
use crate::{
    Error, Result,
    api::{Incident, metadata::ALERTS_MANAGER},
};

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
