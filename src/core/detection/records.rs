//! Compact records (core layer): exactly what detection reads of a Pod and a Deployment, so the
//! detector's caches hold these instead of whole API objects (measured: a cached Pod cost about
//! 7 KiB, its record a few hundred bytes).

use jiff::Timestamp;
use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{ContainerStatus, Node, NodeCondition, NodeStatus, Pod, PodStatus, PodTemplateSpec},
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{
    classify::{ContainerTrouble, status_may_signal, status_signals},
    group::Workload,
    workloads::{Owners, PodOwner, owner_workload, pod_owner},
};
use crate::api::{
    Evidence, Incident, IncidentStatus, ResponseMetrics,
    metadata::{LAST_APPLIED_ANNOTATION, severity_owners},
};

/// What detection reads of a pod; its namespace and name are the cache's key.
#[derive(Clone, Debug, PartialEq)]
pub struct PodRecord {
    /// The controller that makes the pod part of a workload, if any.
    pub owner: Option<PodOwner>,
    /// The node it is bound to (which pods a NotReady node carries).
    pub node: Option<Box<str>>,
    pub created: Option<Timestamp>,
    /// Only a status that can yield a signal ([`status_may_signal`]), trimmed to what
    /// classification reads; a healthy pod's next change arrives as a new status anyway.
    pub status: Option<Box<PodStatus>>,
}

impl PodRecord {
    pub fn of(pod: Pod) -> PodRecord {
        let status = pod
            .status
            .filter(status_may_signal)
            .map(|status| Box::new(trim_status(status)));
        PodRecord {
            owner: pod_owner(&pod.metadata),
            node: pod
                .spec
                .and_then(|s| s.node_name)
                .map(String::into_boxed_str),
            created: pod.metadata.creation_timestamp.map(|t| t.0),
            status,
        }
    }

    /// The pod's signals, as [`super::classify::pod_signals`] reads them from the whole pod.
    pub fn signals(&self, now: Timestamp, pending_grace_seconds: i64) -> Vec<ContainerTrouble> {
        self.status.as_deref().map_or_else(Vec::new, |status| {
            status_signals(status, self.created, now, pending_grace_seconds)
        })
    }

    /// Whether the pod is known not to be Ready: only a troubled pod keeps its status, so a pod
    /// without one counts as possibly ready.
    pub fn known_unready(&self) -> bool {
        self.status.as_deref().is_some_and(|status| {
            !status
                .conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        })
    }

    /// The workload this pod of `namespace` belongs to.
    pub fn workload(&self, namespace: &str, owners: &Owners) -> Option<Workload> {
        owner_workload(namespace, self.owner.as_ref()?, owners)
    }
}

/// Keeps of a status what classification reads: container states, restarts and conditions.
fn trim_status(status: PodStatus) -> PodStatus {
    let containers = |statuses: Option<Vec<ContainerStatus>>| {
        statuses.map(|all| {
            all.into_iter()
                .map(|c| ContainerStatus {
                    name: c.name,
                    restart_count: c.restart_count,
                    state: c.state,
                    last_state: c.last_state,
                    ..ContainerStatus::default()
                })
                .collect()
        })
    };
    PodStatus {
        container_statuses: containers(status.container_statuses),
        init_container_statuses: containers(status.init_container_statuses),
        conditions: status.conditions,
        ..PodStatus::default()
    }
}

/// Trims a Deployment to what detection reads: replicas, selector, status, and the metadata that
/// names its revision and GitOps owner (last-applied only as a marker: its value is a whole copy).
pub fn trim_deployment(mut deployment: Deployment) -> Deployment {
    // A new resourceVersion alone is no news: records compare equal unless what is read changed.
    deployment.metadata.resource_version = None;
    deployment.metadata.managed_fields = None;
    if let Some(applied) = deployment
        .metadata
        .annotations
        .as_mut()
        .and_then(|a| a.get_mut(LAST_APPLIED_ANNOTATION))
    {
        applied.clear();
    }
    deployment.spec.template = PodTemplateSpec::default();
    deployment
}

/// What detection reads of a node: its name, labels and Ready condition's status and reason. The
/// heartbeat a kubelet renews every minute or so changes nothing kept, so it wakes no pass.
pub fn trim_node(node: Node) -> Node {
    let ready = node
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| NodeCondition {
            type_: c.type_,
            status: c.status,
            reason: c.reason,
            ..NodeCondition::default()
        });
    Node {
        metadata: ObjectMeta {
            name: node.metadata.name,
            labels: node.metadata.labels,
            ..ObjectMeta::default()
        },
        status: Some(NodeStatus {
            conditions: ready.map(|c| vec![c]),
            ..NodeStatus::default()
        }),
        ..Node::default()
    }
}

/// What detection reads of an incident: its metadata and spec, who owns its severity, when it was
/// resolved and whether it has evidence. The rest of the status (timeline, deliveries, escalation)
/// is the other controllers' business, and its changes do not wake the detector.
pub fn trim_incident(mut incident: Incident) -> Incident {
    incident.metadata.resource_version = None;
    incident.metadata.managed_fields = severity_owners(incident.metadata.managed_fields.take())
        .map(|owners| {
            owners
                .into_iter()
                .map(|mut owner| {
                    owner.time = None;
                    owner
                })
                .collect()
        });
    incident.status = incident.status.map(|status| IncidentStatus {
        evidence: status.evidence.map(|_| Evidence::default()),
        metrics: status.metrics.map(|m| ResponseMetrics {
            resolved_at: m.resolved_at,
            ..ResponseMetrics::default()
        }),
        ..IncidentStatus::default()
    });
    incident
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::core::detection::{
        classify::pod_signals,
        workloads::{owners, workload_of},
    };

    fn now() -> Timestamp {
        "2026-11-22T15:00:00Z".parse().expect("time")
    }

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {
                "name": "web-1", "namespace": "shop", "creationTimestamp": "2026-11-22T14:50:00Z",
                "ownerReferences": [{ "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d",
                    "uid": "u", "controller": true }],
                "labels": { "app": "web" }, "annotations": { "note": "x" },
            },
            "spec": { "nodeName": "node-1", "containers": [{ "name": "app", "image": "web:3" }] },
            "status": status,
        }))
        .expect("pod")
    }

    #[test]
    fn a_record_reads_the_same_signals_and_workload_as_the_whole_pod() {
        let container = |state: serde_json::Value, last: serde_json::Value| {
            json!({ "name": "app", "image": "web:3", "imageID": "sha", "ready": false,
                "restartCount": 4, "state": state, "lastState": last })
        };
        let statuses = [
            json!({ "phase": "Running", "containerStatuses": [container(
                json!({ "waiting": { "reason": "CrashLoopBackOff", "message": "back-off" } }),
                json!({ "terminated": { "reason": "OOMKilled", "exitCode": 137 } }))] }),
            json!({ "phase": "Pending", "initContainerStatuses": [container(
                json!({ "waiting": { "reason": "ImagePullBackOff" } }), json!({}))] }),
            json!({ "phase": "Pending", "conditions": [{ "type": "PodScheduled", "status": "False",
                "reason": "Unschedulable", "message": "0/3 nodes" }] }),
            json!({ "phase": "Running", "containerStatuses": [container(
                json!({ "running": {} }), json!({}))] }),
            json!(null),
        ];
        let replica_sets = [
            serde_json::from_value(json!({ "name": "web-7d", "namespace": "shop",
            "ownerReferences": [{ "apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                "uid": "d", "controller": true }] }))
            .expect("metadata"),
        ];
        let owners = owners(replica_sets.iter());
        for status in statuses {
            let whole = pod(status.clone());
            let record = PodRecord::of(whole.clone());
            for grace in [0, 300, 3600] {
                assert_eq!(
                    record.signals(now(), grace),
                    pod_signals(&whole, now(), grace),
                    "{status}"
                );
            }
            assert_eq!(
                record.workload("shop", &owners),
                workload_of(&whole, &owners)
            );
            assert_eq!(record.node.as_deref(), Some("node-1"));
            let kept = record.status.is_some();
            assert_eq!(kept, !pod_signals(&whole, now(), 0).is_empty(), "{status}");
        }
    }

    #[test]
    fn only_a_troubled_pod_not_ready_is_known_unready() {
        let crashing = |ready: &str| {
            json!({ "phase": "Running",
                "conditions": [{ "type": "Ready", "status": ready }],
                "containerStatuses": [{ "name": "app", "image": "web:3", "imageID": "",
                    "ready": false, "restartCount": 2,
                    "state": { "waiting": { "reason": "CrashLoopBackOff" } } }] })
        };
        assert!(PodRecord::of(pod(crashing("False"))).known_unready());
        assert!(
            !PodRecord::of(pod(crashing("True"))).known_unready(),
            "Ready as reported"
        );
        let pending = json!({ "phase": "Pending", "containerStatuses": [{ "name": "app",
            "image": "web:3", "imageID": "", "ready": false, "restartCount": 0,
            "state": { "waiting": { "reason": "ImagePullBackOff" } } }] });
        assert!(
            PodRecord::of(pod(pending)).known_unready(),
            "no Ready condition yet"
        );
        let healthy = json!({ "phase": "Running", "conditions": [{ "type": "Ready",
            "status": "False" }] });
        assert!(
            !PodRecord::of(pod(healthy)).known_unready(),
            "a pod without a signal keeps no status"
        );
    }

    #[test]
    fn a_trimmed_deployment_keeps_what_detection_reads() {
        let deployment: Deployment = serde_json::from_value(json!({
            "metadata": { "name": "web", "namespace": "shop",
                "annotations": { "deployment.kubernetes.io/revision": "3",
                    "kubectl.kubernetes.io/last-applied-configuration": "{\"a whole\":\"copy\"}" },
                "managedFields": [{ "manager": "kubectl", "operation": "Apply" }] },
            "spec": { "replicas": 4, "selector": { "matchLabels": { "app": "web" } },
                "template": { "metadata": { "labels": { "app": "web" } },
                    "spec": { "containers": [{ "name": "app", "image": "web:3" }] } } },
            "status": { "availableReplicas": 3 },
        }))
        .expect("deployment");
        let trimmed = trim_deployment(deployment.clone());
        assert_eq!(trimmed.metadata.managed_fields, None);
        let annotations = trimmed.metadata.annotations.clone().unwrap_or_default();
        assert_eq!(annotations[LAST_APPLIED_ANNOTATION], "");
        assert_eq!(annotations["deployment.kubernetes.io/revision"], "3");
        let (spec, whole) = (trimmed.spec, deployment.spec);
        assert_eq!(
            (spec.replicas, spec.selector),
            (whole.replicas, whole.selector)
        );
        assert_eq!(spec.template, PodTemplateSpec::default());
        assert_eq!(trimmed.status, deployment.status);
    }

    #[test]
    fn an_incident_record_keeps_what_detection_reads_and_not_what_others_churn() {
        let incident = |rv: &str, deliveries: usize, evidence: bool| -> Incident {
            serde_json::from_value(json!({
                "apiVersion": "incident.dev/v1alpha1", "kind": "Incident",
                "metadata": { "name": "i", "namespace": "shop", "resourceVersion": rv,
                    "managedFields": [
                        { "manager": "kubectl-incident", "operation": "Apply",
                          "time": format!("2026-11-22T15:00:0{deliveries}Z"),
                          "fieldsType": "FieldsV1", "fieldsV1": { "f:spec": { "f:severity": {},
                            "f:title": {} } } },
                        { "manager": "incident-operator", "operation": "Apply",
                          "fieldsType": "FieldsV1", "fieldsV1": { "f:status": {} } } ] },
                "spec": { "title": "web", "severity": "P2" },
                "status": {
                    "phase": "Detected",
                    "metrics": { "detectedAt": "2026-11-22T15:00:00Z",
                                 "resolvedAt": "2026-11-22T16:00:00Z" },
                    "evidence": if evidence { json!({ "recentDeploy": "3 minutes" }) } else { json!(null) },
                    "observedGeneration": deliveries,
                },
            }))
            .expect("an Incident")
        };
        let record = trim_incident(incident("1", 1, true));
        assert_eq!(
            record,
            trim_incident(incident("2", 2, true)),
            "another resourceVersion, another controller's status: the same record"
        );
        assert_ne!(
            record,
            trim_incident(incident("3", 2, false)),
            "evidence gone"
        );
        let status = record.status.expect("status");
        assert_eq!(
            status
                .metrics
                .and_then(|m| m.resolved_at)
                .map(|t| t.0.to_string()),
            Some("2026-11-22T16:00:00Z".to_owned())
        );
        assert!(status.evidence.is_some());
        let owners = record.metadata.managed_fields.expect("severity owners");
        assert_eq!(owners.len(), 1, "only who owns the severity");
        assert_eq!(owners[0].manager.as_deref(), Some("kubectl-incident"));
    }

    #[test]
    fn a_node_heartbeat_changes_nothing_kept_and_a_ready_change_does() {
        let node = |heartbeat: &str, status: &str| -> Node {
            serde_json::from_value(json!({
                "metadata": { "name": "n1", "resourceVersion": heartbeat,
                              "labels": { "zone": "a" }, "annotations": { "a": "b" } },
                "status": {
                    "conditions": [
                        { "type": "MemoryPressure", "status": "False",
                          "lastHeartbeatTime": heartbeat },
                        { "type": "Ready", "status": status, "reason": "KubeletReady",
                          "lastHeartbeatTime": heartbeat,
                          "lastTransitionTime": "2026-11-22T14:00:00Z" } ],
                    "images": [{ "names": ["registry.local/web:1"] }],
                },
            }))
            .expect("a Node")
        };
        let kept = trim_node(node("2026-11-22T15:00:00Z", "True"));
        assert_eq!(kept, trim_node(node("2026-11-22T15:01:00Z", "True")));
        assert_ne!(kept, trim_node(node("2026-11-22T15:01:00Z", "False")));
        assert_eq!(kept.metadata.name.as_deref(), Some("n1"));
        assert!(kept.metadata.labels.is_some() && kept.metadata.annotations.is_none());
        let conditions = kept.status.and_then(|s| s.conditions).expect("conditions");
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].reason.as_deref(), Some("KubeletReady"));
    }
}
