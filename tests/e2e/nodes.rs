//! Fake (kwok) nodes a test owns: tainted so only its own pods land there, labelled so the
//! operator's `--node-selector` can watch just them, deleted when the test ends.

use std::time::Duration;

use k8s_openapi::api::{apps::v1::Deployment, core::v1::Node, core::v1::Pod};
use kube::{
    Api, Client,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};
use serde_json::json;

use crate::support::{cleanup, wait_for_all};

/// Label (value: the node's name) that `--node-selector` picks a test's node by.
const NODE_LABEL: &str = "incident.dev/e2e-node";
/// Taint keeping every pod but the owning test's off the node.
const ISOLATED: &str = "incident.dev/e2e-isolated";

/// A kwok node of one test, deleted (pass or fail) when dropped.
pub struct TestNode {
    pub name: String,
    api: Api<Node>,
}

impl TestNode {
    /// Creates the node `<prefix>-<pid>`; kwok plays its kubelet and reports it Ready.
    pub async fn create(client: &Client, prefix: &str) -> Self {
        let name = format!("{prefix}-{}", std::process::id());
        let api: Api<Node> = Api::all(client.clone());
        let node: Node = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": { "name": name, "annotations": { "kwok.x-k8s.io/node": "fake" },
                          "labels": { "type": "kwok", "kubernetes.io/hostname": name,
                                      NODE_LABEL: name } },
            "spec": { "taints": [{ "key": ISOLATED, "value": "true", "effect": "NoSchedule" }] },
        }))
        .expect("Node");
        api.create(&PostParams::default(), &node)
            .await
            .expect("create Node");
        Self { name, api }
    }

    /// The `--node-selector` that makes the operator watch this node and no other.
    pub fn selector(&self) -> String {
        format!("{NODE_LABEL}={}", self.name)
    }

    /// Pins `deployment`'s pods to this node, tolerating its taint and the `also` taint keys.
    pub fn pin(&self, deployment: &mut Deployment, also: &[&str]) {
        let Some(spec) = deployment.spec.template.spec.as_mut() else {
            panic!("a Deployment without a pod spec cannot be pinned");
        };
        spec.node_selector =
            Some([("kubernetes.io/hostname".to_owned(), self.name.clone())].into());
        let isolated = json!({ "key": ISOLATED, "operator": "Exists", "effect": "NoSchedule" });
        let others = also
            .iter()
            .map(|key| json!({ "key": key, "operator": "Exists" }));
        spec.tolerations = Some(
            std::iter::once(isolated)
                .chain(others)
                .map(|t| serde_json::from_value(t).expect("toleration"))
                .collect(),
        );
    }

    /// Whether `pod` is bound to this node.
    pub fn hosts(&self, pod: &Pod) -> bool {
        pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(self.name.as_str())
    }

    /// Waits until exactly `count` pods labelled `app=<app>` run, all on this node.
    pub async fn await_running(&self, pods: &Api<Pod>, app: &str, count: usize, within: Duration) {
        wait_for_all(
            pods,
            &format!("app={app}"),
            &format!("{count} pods running on the test node"),
            within,
            |pods| {
                pods.len() == count
                    && pods.iter().all(|p| {
                        self.hosts(p)
                            && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
                    })
            },
        )
        .await;
    }

    /// Sets kwok's fault label on the node (`Some("notready")`), or clears it (`None`).
    pub async fn set_fault(&self, fault: Option<&str>) {
        let label = json!({ "metadata": { "labels": { "incident.dev/fault": fault } } });
        self.api
            .patch(&self.name, &PatchParams::default(), &Patch::Merge(&label))
            .await
            .unwrap_or_else(|e| panic!("set fault {fault:?} on node {}: {e}", self.name));
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        let name = self.name.clone();
        cleanup("test node", move |client| async move {
            Api::<Node>::all(client)
                .delete(&name, &DeleteParams::default())
                .await
                .map(|_| ())
        });
    }
}
