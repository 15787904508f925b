//! Which workload a pod or a Warning Event belongs to (core layer), from the ReplicaSet →
//! Deployment (or Argo Rollouts Rollout) owners the detector reads off ReplicaSet metadata.

use std::collections::HashMap;

use k8s_openapi::{
    api::{core::v1::Pod, events::v1::Event},
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use kube::ResourceExt;

use super::group::Workload;

/// (namespace, ReplicaSet) → the workload that controls it: (kind, name).
pub type Owners = HashMap<(String, String), (&'static str, String)>;

/// The owners map from ReplicaSets' metadata.
pub fn owners<'a>(replica_sets: impl IntoIterator<Item = &'a ObjectMeta>) -> Owners {
    replica_sets
        .into_iter()
        .filter_map(|rs| {
            let (kind, name) = controlling_workload(rs)?;
            Some((
                (
                    rs.namespace.clone().unwrap_or_default(),
                    rs.name.clone().unwrap_or_default(),
                ),
                (kind, name),
            ))
        })
        .collect()
}

/// The Deployment, or Argo Rollouts Rollout, that controls a ReplicaSet, from its metadata: the
/// ReplicaSet's own ownerReference names it, so a Rollout costs nothing more to recognise.
pub fn controlling_workload(replica_set: &ObjectMeta) -> Option<(&'static str, String)> {
    let owner = replica_set
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))?;
    let kind = match (owner.kind.as_str(), owner.api_version.split('/').next()) {
        ("Deployment", Some("apps")) => "Deployment",
        ("Rollout", Some("argoproj.io")) => "Rollout",
        _ => return None,
    };
    Some((kind, owner.name.clone()))
}

/// The workload a pod belongs to: its Deployment or Rollout (through its ReplicaSet), StatefulSet or
/// DaemonSet.
pub fn workload_of(pod: &Pod, owners: &Owners) -> Option<Workload> {
    let namespace = pod.namespace().unwrap_or_default();
    let owner = pod_owner(&pod.metadata)?;
    owner_workload(&namespace, &owner, owners)
}

/// The kinds of controller that make a pod part of a workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnerKind {
    ReplicaSet,
    StatefulSet,
    DaemonSet,
}

/// A pod's controller, when it is one that makes the pod part of a workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodOwner {
    pub kind: OwnerKind,
    pub name: Box<str>,
}

/// The pod's controller owner, when it is a ReplicaSet, StatefulSet or DaemonSet.
pub fn pod_owner(pod: &ObjectMeta) -> Option<PodOwner> {
    let owner = pod
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))?;
    let kind = match owner.kind.as_str() {
        "ReplicaSet" => OwnerKind::ReplicaSet,
        "StatefulSet" => OwnerKind::StatefulSet,
        "DaemonSet" => OwnerKind::DaemonSet,
        _ => return None,
    };
    Some(PodOwner {
        kind,
        name: owner.name.as_str().into(),
    })
}

/// The workload of a pod in `namespace` whose controller is `owner`.
pub fn owner_workload(namespace: &str, owner: &PodOwner, owners: &Owners) -> Option<Workload> {
    let (kind, name) = match owner.kind {
        OwnerKind::ReplicaSet => {
            let (kind, name) = owners.get(&(namespace.to_owned(), owner.name.to_string()))?;
            (*kind, name.clone())
        }
        OwnerKind::StatefulSet => ("StatefulSet", owner.name.to_string()),
        OwnerKind::DaemonSet => ("DaemonSet", owner.name.to_string()),
    };
    Some(Workload {
        namespace: namespace.to_owned(),
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
            let (kind, owner) = owners.get(&(namespace.clone(), name))?.clone();
            Some((
                Workload {
                    namespace,
                    kind: kind.into(),
                    name: owner,
                },
                None,
            ))
        }
        kind @ ("Deployment" | "StatefulSet" | "DaemonSet" | "Rollout") => Some((
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

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn owned(kind: &str, name: &str) -> Value {
        let api = if kind == "Rollout" {
            "argoproj.io/v1alpha1"
        } else {
            "apps/v1"
        };
        json!([{ "apiVersion": api, "kind": kind, "name": name, "uid": "u", "controller": true }])
    }

    fn meta(name: &str, owners: Value) -> ObjectMeta {
        serde_json::from_value(
            json!({ "name": name, "namespace": "shop", "ownerReferences": owners }),
        )
        .expect("metadata")
    }

    fn pod(name: &str, owners: Value) -> Pod {
        Pod {
            metadata: meta(name, owners),
            ..Pod::default()
        }
    }

    fn event(kind: &str, name: &str) -> Event {
        serde_json::from_value(json!({
            "metadata": { "name": "e", "namespace": "shop" },
            "eventTime": null,
            "regarding": { "kind": kind, "name": name, "namespace": "shop" },
        }))
        .expect("an Event")
    }

    fn deployment(name: &str) -> Workload {
        Workload {
            namespace: "shop".into(),
            kind: "Deployment".into(),
            name: name.into(),
        }
    }

    #[test]
    fn pods_belong_to_the_deployment_behind_their_replica_set_or_to_their_set() {
        let replica_sets = [
            meta("web-7d4b9", owned("Deployment", "web")),
            meta("canary-5db4d", owned("Rollout", "canary")),
            meta("orphan-1", json!([])),
        ];
        let owners = owners(replica_sets.iter());
        assert_eq!(owners.len(), 2);
        // A ReplicaSet of an Argo Rollouts Rollout names the Rollout, as its ownerReference does.
        let canary = pod("canary-5db4d-x", owned("ReplicaSet", "canary-5db4d"));
        assert_eq!(
            workload_of(&canary, &owners).map(|w| (w.kind, w.name)),
            Some(("Rollout".into(), "canary".into()))
        );
        assert_eq!(
            event_workload(&event("ReplicaSet", "canary-5db4d"), |_, _| None, &owners)
                .map(|(w, _)| w.kind),
            Some("Rollout".into())
        );
        let web = pod("web-7d4b9-x", owned("ReplicaSet", "web-7d4b9"));
        assert_eq!(workload_of(&web, &owners), Some(deployment("web")));
        let db = pod("db-0", owned("StatefulSet", "db"));
        assert_eq!(
            workload_of(&db, &owners).map(|w| (w.kind, w.name)),
            Some(("StatefulSet".into(), "db".into()))
        );
        assert_eq!(
            workload_of(&pod("lost", owned("ReplicaSet", "orphan-1")), &owners),
            None
        );
        assert_eq!(
            workload_of(&pod("job-x", owned("Job", "batch")), &owners),
            None
        );
        assert_eq!(workload_of(&pod("bare", json!([])), &owners), None);
    }

    #[test]
    fn events_are_attributed_to_the_workload_they_concern() {
        let owners = owners([meta("web-7d4b9", owned("Deployment", "web"))].iter());
        let pods = |_: &str, name: &str| (name == "web-7d4b9-x").then(|| deployment("web"));
        assert_eq!(
            event_workload(&event("Pod", "web-7d4b9-x"), pods, &owners),
            Some((deployment("web"), Some("web-7d4b9-x".into())))
        );
        assert_eq!(
            event_workload(&event("Pod", "unknown"), pods, &owners),
            None
        );
        assert_eq!(
            event_workload(&event("ReplicaSet", "web-7d4b9"), pods, &owners),
            Some((deployment("web"), None))
        );
        assert_eq!(
            event_workload(&event("Deployment", "api"), pods, &owners),
            Some((deployment("api"), None))
        );
        assert_eq!(event_workload(&event("Node", "n1"), pods, &owners), None);
    }
}
