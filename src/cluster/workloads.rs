//! Reads and writes of workloads (cluster layer): a Deployment's own ReplicaSets and pods, a
//! StatefulSet's or DaemonSet's own ControllerRevisions, the Warning Events about them, a crashed
//! container's previous log, whether the objects an incident names exist, and a remediation's
//! change sent with a resourceVersion precondition.

use k8s_openapi::api::{
    apps::v1::{ControllerRevision, DaemonSet, Deployment, ReplicaSet, StatefulSet},
    batch::v1::{CronJob, Job},
    core::v1::{Namespace, Node, PersistentVolumeClaim, Pod, Service},
    events::v1::Event,
    networking::v1::Ingress,
};
use kube::{
    Api, Client, ResourceExt,
    api::{ApiResource, DynamicObject, ListParams, LogParams, Patch, PatchParams},
    core::labels::Selector,
};
use serde_json::{Value, json};
use tracing::debug;

use super::workload_index::WorkloadIndex;
use crate::{
    Error, Result,
    api::{
        ABORT_PATCH, AffectedKind, ArgoRollout, Incident, ROLLOUT_GROUP, ROLLOUT_KIND,
        ROLLOUT_PLURAL, ROLLOUT_VERSION, WorkloadKind, metadata::REMEDIATION_MANAGER,
    },
    core::{
        detection::evidence::{MAX_LOG_BYTES, log_tail},
        remediation::{argo::RolloutView, plan::Change, sets::Workload},
    },
};

/// A Deployment of the namespace, if it exists.
pub async fn deployment(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<Option<Deployment>> {
    Api::<Deployment>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
        .map_err(Error::Kube)
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

/// The pods matching a workload's `matchLabels` (none when it has none).
pub async fn pods_of(
    client: &Client,
    namespace: &str,
    selector: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
) -> Result<Vec<Pod>> {
    let selector = selector
        .match_labels
        .as_ref()
        .map(|labels| {
            labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    if selector.is_empty() {
        return Ok(Vec::new());
    }
    Ok(Api::<Pod>::namespaced(client.clone(), namespace)
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(Error::Kube)?
        .items)
}

/// The namespace's Warning Events.
pub async fn warning_events(client: &Client, namespace: &str) -> Result<Vec<Event>> {
    Ok(Api::<Event>::namespaced(client.clone(), namespace)
        .list(&ListParams::default().fields("type=Warning"))
        .await
        .map_err(Error::Kube)?
        .items)
}

/// The last `lines` lines (at most `MAX_LOG_BYTES`) a container's previous instance wrote, or None
/// where the API serves no logs (the evidence is then written without them).
pub async fn previous_log(
    client: &Client,
    namespace: &str,
    pod: &str,
    container: &str,
    lines: i64,
) -> Option<String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let params = LogParams {
        container: Some(container.to_owned()),
        previous: true,
        tail_lines: Some(lines),
        // Lines can be long; the API stops sending well before the evidence would overflow.
        limit_bytes: Some(64 * 1024),
        ..LogParams::default()
    };
    match pods.logs(pod, &params).await {
        Ok(text) => Some(log_tail(&text, MAX_LOG_BYTES)),
        Err(error) => {
            debug!(%error, pod, container, "no previous log for the evidence");
            None
        }
    }
}

/// A workload of the kind an action names, if it exists.
pub async fn workload(
    client: &Client,
    namespace: &str,
    kind: WorkloadKind,
    name: &str,
) -> Result<Option<Workload>> {
    let found = match kind {
        WorkloadKind::Deployment => deployment(client, namespace, name)
            .await?
            .map(Workload::Deployment),
        WorkloadKind::StatefulSet => Api::<StatefulSet>::namespaced(client.clone(), namespace)
            .get_opt(name)
            .await
            .map_err(Error::Kube)?
            .map(Workload::StatefulSet),
        WorkloadKind::DaemonSet => Api::<DaemonSet>::namespaced(client.clone(), namespace)
            .get_opt(name)
            .await
            .map_err(Error::Kube)?
            .map(Workload::DaemonSet),
        WorkloadKind::Rollout => rollout(client, namespace, name)
            .await?
            .map(Workload::Rollout),
    };
    Ok(found)
}

/// An Argo Rollouts Rollout with the ReplicaSets it controls (listed by its selector, kept by
/// controller uid); None when it, or its CRD, does not exist.
pub async fn rollout(client: &Client, namespace: &str, name: &str) -> Result<Option<RolloutView>> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &rollout_resource());
    let Some(object) = api.get_opt(name).await.map_err(Error::Kube)? else {
        return Ok(None);
    };
    let value = serde_json::to_value(&object).map_err(|e| Error::Plan(e.to_string()))?;
    let rollout: ArgoRollout = serde_json::from_value(value)
        .map_err(|e| Error::Plan(format!("Rollout {namespace}/{name} does not read: {e}")))?;
    let params = match rollout.spec.selector.clone().map(Selector::try_from) {
        Some(Ok(selector)) => ListParams::default().labels_from(&selector),
        _ => ListParams::default(),
    };
    let uid = rollout.metadata.uid.clone().unwrap_or_default();
    let replica_sets = Api::<ReplicaSet>::namespaced(client.clone(), namespace)
        .list(&params)
        .await
        .map_err(Error::Kube)?
        .items
        .into_iter()
        .filter(|rs| {
            rs.owner_references()
                .iter()
                .any(|o| o.controller == Some(true) && o.uid == uid)
        })
        .collect();
    Ok(Some(RolloutView {
        rollout,
        replica_sets,
    }))
}

fn rollout_resource() -> ApiResource {
    ApiResource {
        group: ROLLOUT_GROUP.into(),
        version: ROLLOUT_VERSION.into(),
        api_version: format!("{ROLLOUT_GROUP}/{ROLLOUT_VERSION}"),
        kind: ROLLOUT_KIND.into(),
        plural: ROLLOUT_PLURAL.into(),
    }
}

/// The workload's history: a Deployment's ReplicaSets, or the ControllerRevisions a StatefulSet
/// or DaemonSet controls (listed by its selector, then kept by controller uid, as kubectl does).
pub async fn history(
    client: &Client,
    namespace: &str,
    workload: &Workload,
) -> Result<(Vec<ReplicaSet>, Vec<ControllerRevision>)> {
    let (selector, meta) = match workload {
        Workload::Deployment(d) => {
            return Ok((owned_replica_sets(client, namespace, d).await?, Vec::new()));
        }
        Workload::StatefulSet(s) => (&s.spec.selector, &s.metadata),
        Workload::DaemonSet(d) => (&d.spec.selector, &d.metadata),
        // Read with the Rollout itself.
        Workload::Rollout(_) => return Ok(Default::default()),
    };
    let api: Api<ControllerRevision> = Api::namespaced(client.clone(), namespace);
    // The API server validated the selector; one it could not parse would only widen the list.
    let params = match Selector::try_from(selector.clone()) {
        Ok(selector) => ListParams::default().labels_from(&selector),
        Err(_) => ListParams::default(),
    };
    let uid = meta.uid.clone().unwrap_or_default();
    let list = api.list(&params).await.map_err(Error::Kube)?;
    let revisions = list
        .items
        .into_iter()
        .filter(|r| {
            r.owner_references()
                .iter()
                .any(|o| o.controller == Some(true) && o.uid == uid)
        })
        .collect();
    Ok((Vec::new(), revisions))
}

/// Outcome of sending a change.
pub enum Applied {
    Done,
    /// The workload changed since it was read; read it again and re-plan.
    Conflict,
}

/// Sends `change` to the workload, only if it is still at `resource_version`.
pub async fn apply_change(
    client: &Client,
    namespace: &str,
    (kind, name): (WorkloadKind, &str),
    resource_version: &str,
    change: &Change,
) -> Result<Applied> {
    let resource = api_resource(affected_kind(kind));
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    let params = PatchParams {
        field_manager: Some(REMEDIATION_MANAGER.to_owned()),
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
            api.patch(
                name,
                &params,
                &Patch::Merge(&with_version(body, resource_version)),
            )
            .await
        }
        Change::StrategicMergePatch(body) => {
            let body = with_version(body, resource_version);
            api.patch(name, &params, &Patch::Strategic(&body)).await
        }
        Change::AbortRollout(markers) => {
            // The marker first, on the Rollout itself (a status patch cannot carry metadata),
            // under the precondition; then the abort exactly as its plugin sends it.
            let marked = json!({ "metadata": { "annotations": markers } });
            let marked = with_version(&marked, resource_version);
            match api.patch(name, &params, &Patch::Merge(&marked)).await {
                Ok(_) => abort(&api, name, &params).await,
                Err(error) => Err(error),
            }
        }
    };
    match outcome {
        Ok(_) => Ok(Applied::Done),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(Applied::Conflict),
        Err(error) => Err(Error::Kube(error)),
    }
}

/// `kubectl argo rollouts abort`: a merge patch of the status subresource, or of the Rollout
/// itself where its CRD has no status subresource (a 404 there), as the plugin falls back.
async fn abort(
    api: &Api<DynamicObject>,
    name: &str,
    params: &PatchParams,
) -> kube::Result<DynamicObject> {
    let body: Value = serde_json::from_str(ABORT_PATCH).unwrap_or_default();
    match api
        .patch_subresource("status", name, params, &Patch::Merge(&body))
        .await
    {
        Err(kube::Error::Api(status)) if status.code == 404 => {
            api.patch(name, params, &Patch::Merge(&body)).await
        }
        other => other,
    }
}

/// A resourceVersion in the patch is a precondition: 409 if anything changed since.
fn with_version(body: &Value, resource_version: &str) -> Value {
    let mut body = body.clone();
    if let Some(metadata) = body.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.insert("resourceVersion".into(), json!(resource_version));
    }
    body
}

fn affected_kind(kind: WorkloadKind) -> AffectedKind {
    match kind {
        WorkloadKind::Deployment => AffectedKind::Deployment,
        WorkloadKind::StatefulSet => AffectedKind::StatefulSet,
        WorkloadKind::DaemonSet => AffectedKind::DaemonSet,
        WorkloadKind::Rollout => AffectedKind::Rollout,
    }
}

fn api_resource(kind: AffectedKind) -> ApiResource {
    match kind {
        AffectedKind::Deployment => ApiResource::erase::<Deployment>(&()),
        AffectedKind::StatefulSet => ApiResource::erase::<StatefulSet>(&()),
        AffectedKind::DaemonSet => ApiResource::erase::<DaemonSet>(&()),
        AffectedKind::Rollout => rollout_resource(),
        AffectedKind::ReplicaSet => ApiResource::erase::<ReplicaSet>(&()),
        AffectedKind::Pod => ApiResource::erase::<Pod>(&()),
        AffectedKind::Service => ApiResource::erase::<Service>(&()),
        AffectedKind::Job => ApiResource::erase::<Job>(&()),
        AffectedKind::CronJob => ApiResource::erase::<CronJob>(&()),
        AffectedKind::Ingress => ApiResource::erase::<Ingress>(&()),
        AffectedKind::PersistentVolumeClaim => ApiResource::erase::<PersistentVolumeClaim>(&()),
        AffectedKind::Node => ApiResource::erase::<Node>(&()),
        AffectedKind::Namespace => ApiResource::erase::<Namespace>(&()),
    }
}

/// The objects the incident names that do not exist, as display strings. Workloads the index keeps
/// are looked up there; other kinds are asked for. Objects the operator may not read count as
/// present: only a definite 404 is reported.
pub async fn missing_affected(
    client: &Client,
    index: &WorkloadIndex,
    incident: &Incident,
) -> Result<Vec<String>> {
    let own_namespace = incident.namespace().unwrap_or_default();
    let mut missing = Vec::new();
    for reference in &incident.spec.affected {
        let shown = || {
            let mut shown = reference.clone();
            if !reference.kind.cluster_scoped() && shown.namespace.is_none() {
                shown.namespace = Some(own_namespace.clone());
            }
            shown.to_string()
        };
        let ns = reference.namespace.as_deref().unwrap_or(&own_namespace);
        // The index covers the namespaces this controller serves; another one is asked for.
        if reference.namespace.is_none() || reference.namespace.as_deref() == Some(&own_namespace) {
            // Absent from the index may mean "not seen yet": that rare case is asked for.
            if index.exists(reference.kind, ns, &reference.name) == Some(true) {
                continue;
            }
        }
        let resource = api_resource(reference.kind);
        let api: Api<DynamicObject> = if reference.kind.cluster_scoped() {
            Api::all_with(client.clone(), &resource)
        } else {
            Api::namespaced_with(client.clone(), ns, &resource)
        };
        match api.get_metadata_opt(&reference.name).await {
            Ok(Some(_)) => {}
            Ok(None) => missing.push(shown()),
            Err(kube::Error::Api(status)) if status.code == 403 => {
                debug!(reference = %reference, "no permission to check; assuming present");
            }
            Err(error) => return Err(Error::Kube(error)),
        }
    }
    Ok(missing)
}
