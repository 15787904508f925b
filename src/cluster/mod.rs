//! Kubernetes I/O shared by every entry point (cluster layer): scoped `Api`s, server-side apply and
//! merge patches as a named field manager, 409 as [`Error::Conflict`], and the one error policy of
//! every controller. What is read or written about incidents and workloads lives in [`incidents`]
//! and [`workloads`]; Events in [`events`].

pub mod alerts;
pub mod assignment;
pub mod channels;
pub mod events;
pub mod gitops;
pub mod incidents;
pub mod requests;
pub mod secrets;
pub mod status_page;
pub mod watch_list;
pub mod workload_index;
pub mod workloads;

use std::time::Duration;

use k8s_openapi::NamespaceResourceScope;
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{Patch, PatchParams},
    runtime::controller::Action,
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Value, json};
use tracing::{debug, warn};

use crate::{
    Error, Result,
    metrics::{ErrorLabels, Metrics},
};

/// An `Api` over one namespace, or every namespace when `namespace` is None.
pub fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// An `Api` over the namespace `object` lives in.
pub fn own_namespace<K>(client: &Client, object: &K) -> Api<K>
where
    K: Resource<Scope = NamespaceResourceScope>,
    K::DynamicType: Default,
{
    Api::namespaced(client.clone(), &object.namespace().unwrap_or_default())
}

/// A refused precondition (409) is [`Error::Conflict`]: the next reconcile reads fresh data.
pub fn conflict_or_kube(error: kube::Error) -> Error {
    match error {
        kube::Error::Api(status) if status.code == 409 => Error::Conflict,
        other => Error::Kube(other),
    }
}

/// Server-side applies `body` (the fields `manager` owns, without apiVersion and kind) to `name`.
pub async fn apply<K>(api: &Api<K>, name: &str, body: Value, manager: &str) -> Result<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    api.patch(
        name,
        &PatchParams::apply(manager).force(),
        &Patch::Apply(&typed::<K>(body)),
    )
    .await
    .map_err(Error::Kube)
}

/// Server-side applies `body` (e.g. `{"status": {...}}`) to the status subresource of `name`.
pub async fn apply_status<K>(api: &Api<K>, name: &str, body: Value, manager: &str) -> Result<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    api.patch_status(
        name,
        &PatchParams::apply(manager).force(),
        &Patch::Apply(&typed::<K>(body)),
    )
    .await
    .map_err(conflict_or_kube)
}

/// Writes `status` on `object` by server-side apply as `manager`, only if the object is still at
/// the resourceVersion it was read at: a status computed from a stale cache is refused with 409
/// ([`Error::Conflict`]) and recomputed.
pub async fn apply_status_of<K, S>(
    client: &Client,
    object: &K,
    status: &S,
    manager: &str,
) -> Result<K>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
    S: Serialize,
{
    let body = json!({
        "metadata": { "resourceVersion": object.resource_version() },
        "status": status,
    });
    apply_status(
        &own_namespace(client, object),
        &object.name_any(),
        body,
        manager,
    )
    .await
}

/// A JSON merge patch of `object` as `manager`.
pub async fn merge<K>(client: &Client, object: &K, patch: &Value, manager: &str) -> Result<K>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let params = PatchParams {
        field_manager: Some(manager.to_owned()),
        ..PatchParams::default()
    };
    own_namespace(client, object)
        .patch(&object.name_any(), &params, &Patch::Merge(patch))
        .await
        .map_err(Error::Kube)
}

/// `body` with the object's apiVersion and kind, as server-side apply wants it.
fn typed<K: Resource<DynamicType = ()>>(mut body: Value) -> Value {
    if let Some(fields) = body.as_object_mut() {
        fields.insert("apiVersion".into(), json!(K::api_version(&())));
        fields.insert("kind".into(), json!(K::kind(&())));
    }
    body
}

/// The error policy of every controller: a conflict (the cache lags our own last write) is
/// retried at once when the watch brings the fresh object; anything else is logged with its
/// cause, counted, and retried after a pause.
pub fn error_policy(controller: &str, object: &str, error: &Error, metrics: &Metrics) -> Action {
    if matches!(error, Error::Conflict) {
        debug!(controller, object, "stale read; retrying");
        return Action::requeue(Duration::from_secs(1));
    }
    // Said once where it happened (a Warning Event); looking again soon would only repeat it.
    let retry = if matches!(error, Error::Refused(_)) {
        REFUSED_BACKOFF
    } else {
        Duration::from_secs(5)
    };
    // The cause chain says what the API server refused, not just that it did.
    let cause = std::error::Error::source(error)
        .map(|source| source.to_string())
        .unwrap_or_default();
    warn!(controller, object, %error, %cause, "reconcile failed; retrying");
    metrics
        .reconcile_errors
        .get_or_create(&ErrorLabels {
            controller: controller.to_owned(),
            error: error.metric_label().to_owned(),
        })
        .inc();
    Action::requeue(retry)
}

/// How long a write the API server refused for good waits before it is tried again.
pub const REFUSED_BACKOFF: Duration = Duration::from_secs(300);

/// Whether the API server refused a write for good: too large (413, or etcd's "request is too
/// large"), or invalid (422, 400). A retry of the same write cannot succeed.
pub fn refused_for_good(error: &kube::Error) -> Option<String> {
    match error {
        kube::Error::Api(status)
            if matches!(status.code, 400 | 413 | 422) || status.message.contains("too large") =>
        {
            Some(status.message.clone())
        }
        _ => None,
    }
}
