//! Which workload a pod or a Warning Event belongs to (core layer), from the ReplicaSet → Deployment
//! owners the detector reads off ReplicaSet metadata.

use std::collections::HashMap;

use k8s_openapi::{
    api::{core::v1::Pod, events::v1::Event},
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use kube::ResourceExt;

use super::group::Workload;

/// (namespace, ReplicaSet) → the Deployment that controls it.
pub type Owners = HashMap<(String, String), String>;

/// The owners map from ReplicaSets' metadata.
pub fn owners<'a>(replica_sets: impl IntoIterator<Item = &'a ObjectMeta>) -> Owners {
    replica_sets
        .into_iter()
        .filter_map(|rs| {
            let owner = rs
                .owner_references
                .iter()
                .flatten()
                .find(|o| o.controller == Some(true) && o.kind == "Deployment")?;
            Some((
                (
                    rs.namespace.clone().unwrap_or_default(),
                    rs.name.clone().unwrap_or_default(),
                ),
                owner.name.clone(),
            ))
        })
        .collect()
}

/// The workload a pod belongs to: its Deployment (through its ReplicaSet), StatefulSet or DaemonSet.
pub fn workload_of(pod: &Pod, owners: &Owners) -> Option<Workload> {
    let namespace = pod.namespace().unwrap_or_default();
    let owner = pod
        .owner_references()
        .iter()
        .find(|o| o.controller == Some(true))?;
    let (kind, name) = match owner.kind.as_str() {
        "ReplicaSet" => (
            "Deployment",
            owners
                .get(&(namespace.clone(), owner.name.clone()))?
                .clone(),
        ),
        "StatefulSet" | "DaemonSet" => (owner.kind.as_str(), owner.name.clone()),
        _ => return None,
    };
    Some(Workload {
        namespace,
        kind: kind.to_owned(),
        name,
    })
}

/// The workload a Warning Event is about, with the pod's name when it is about a pod; `pod`
/// finds a pod's workload by (namespace, name).
pub fn event_workload(
    event: &Event,
    pod: impl Fn(&str, &str) -> Option<Workload>,
    owners: &Owners,
) -> Option<(Workload, Option<String>)> {
    let regarding = event.regarding.as_ref()?;
    let namespace = regarding.namespace.clone().or_else(|| event.namespace())?;
    let name = regarding.name.clone()?;
    match regarding.kind.as_deref()? {
        "Pod" => Some((pod(&namespace, &name)?, Some(name))),
        "ReplicaSet" => {
            let deployment = owners.get(&(namespace.clone(), name))?.clone();
            Some((
                Workload {
                    namespace,
                    kind: "Deployment".into(),
                    name: deployment,
                },
                None,
            ))
        }
        kind @ ("Deployment" | "StatefulSet" | "DaemonSet") => Some((
            Workload {
                namespace,
                kind: kind.to_owned(),
                name,
            },
            None,
        )),
        _ => None,
    }
}
