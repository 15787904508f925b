//! Parity with `kubectl rollout undo`: the same Deployment history is built in two namespaces; the
//! operator rolls back one (an Incident with a rollback action), the kubectl of the cluster's own
//! version rolls back the other, and the two Deployments must come out identical. Refusals must
//! mean the same thing on both sides and leave both Deployments untouched.

use std::{collections::BTreeMap, path::PathBuf, process::Stdio, time::Duration};

use incident_operator::api::{ActionPhase, ActionStatus, Incident};
use k8s_openapi::api::apps::v1::Deployment;
use kube::{
    Api, Client, ResourceExt,
    api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};
use tokio::process::Command;

use crate::{
    remediation::{
        ROLLOUT, action, action_settles, bad_deploy_history, deployment, images, observed,
        request_actions, revision, revisions, rolled_out,
    },
    support::{Operator, TestNamespace, client, install_crds, kubeconfig_path, wait_for},
};

/// The Deployment's name, the same in both namespaces.
const NAME: &str = "web";
const INCIDENT: &str = "web-down";
const ACTION: &str = "undo";
const KUBECTL_TIMEOUT: Duration = Duration::from_secs(60);
const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";
const REVISION: &str = "deployment.kubernetes.io/revision";
/// Annotations the operator adds on purpose; everything else must match kubectl's result.
const OPERATOR_PREFIX: &str = "incident.dev/";

// ---- kubectl --------------------------------------------------------------------------------

/// The kubectl `make cluster` built, found exactly like `hack/cluster/lib.sh` finds it
/// (`INCIDENT_KUBECTL` overrides).
pub fn kubectl_path() -> PathBuf {
    if let Some(path) = std::env::var_os("INCIDENT_KUBECTL").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let versions = include_str!("../../hack/cluster/versions.env");
    let version = |key: &str| -> String {
        versions
            .lines()
            .find_map(|line| line.trim().strip_prefix(key)?.strip_prefix('='))
            .map(|v| v.trim().trim_matches('"').to_owned())
            .unwrap_or_else(|| panic!("hack/cluster/versions.env does not set {key}"))
    };
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache")
        });
    let path = cache
        .join("incident-operator")
        .join(format!(
            "k8s-{}_etcd-{}_kwok-{}",
            version("KUBERNETES_VERSION"),
            version("ETCD_VERSION"),
            version("KWOK_VERSION")
        ))
        .join("bin/kubectl");
    assert!(
        path.is_file(),
        "kubectl not found at {}: build the cluster binaries with `make cluster`, or point INCIDENT_KUBECTL at a kubectl",
        path.display()
    );
    path
}

/// What one kubectl run did.
#[derive(Debug)]
pub struct Kubectl {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// `kubectl -n <namespace> rollout undo deployment/web [--to-revision=N]`.
async fn kubectl_undo(namespace: &str, to_revision: Option<i64>) -> Kubectl {
    kubectl_rollout_undo(namespace, &format!("deployment/{NAME}"), to_revision).await
}

/// `kubectl -n <namespace> rollout undo <target> [--to-revision=N]`.
pub async fn kubectl_rollout_undo(
    namespace: &str,
    target: &str,
    to_revision: Option<i64>,
) -> Kubectl {
    let mut command = Command::new(kubectl_path());
    command
        .arg("--kubeconfig")
        .arg(kubeconfig_path())
        .args(["-n", namespace, "rollout", "undo", target]);
    if let Some(revision) = to_revision {
        command.arg(format!("--to-revision={revision}"));
    }
    command.stdin(Stdio::null()).kill_on_drop(true);
    let output = tokio::time::timeout(KUBECTL_TIMEOUT, command.output())
        .await
        .unwrap_or_else(|_| {
            panic!("kubectl rollout undo did not finish within {KUBECTL_TIMEOUT:?}")
        })
        .expect("run kubectl");
    let run = Kubectl {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    eprintln!("kubectl rollout undo in {namespace}: {run:?}");
    run
}

// ---- two namespaces, one history -----------------------------------------------------------

struct Pair {
    client: Client,
    /// Rolled back by the operator.
    a: TestNamespace,
    /// Rolled back by kubectl.
    b: TestNamespace,
    deployments_a: Api<Deployment>,
    deployments_b: Api<Deployment>,
    incidents_a: Api<Incident>,
}

async fn pair(prefix: &str) -> Pair {
    let client = client().await;
    install_crds(&client).await;
    let (prefix_a, prefix_b) = (format!("{prefix}-op"), format!("{prefix}-kubectl"));
    let (a, b) = tokio::join!(
        TestNamespace::new(&client, &prefix_a),
        TestNamespace::new(&client, &prefix_b),
    );
    Pair {
        deployments_a: Api::namespaced(client.clone(), &a.name),
        deployments_b: Api::namespaced(client.clone(), &b.name),
        incidents_a: Api::namespaced(client.clone(), &a.name),
        client,
        a,
        b,
    }
}

impl Pair {
    /// v1 → v2 → v3 (crash-looping) in both namespaces, `containers` containers each.
    async fn bad_deploy(&self, containers: usize) {
        tokio::join!(
            bad_deploy_history(&self.deployments_a, NAME, containers),
            bad_deploy_history(&self.deployments_b, NAME, containers),
        );
    }

    /// Applies the same merge patch to both Deployments and waits until both controllers saw it.
    async fn patch_both(&self, patch: Value, what: &str) {
        for api in [&self.deployments_a, &self.deployments_b] {
            api.patch(NAME, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .unwrap_or_else(|e| panic!("{what}: {e}"));
        }
        self.settle(what, false).await;
    }

    /// Waits until both controllers observed the latest spec (and, with `ready`, rolled it out).
    async fn settle(&self, what: &str, ready: bool) {
        let done = |d: Option<&Deployment>| {
            d.is_some_and(|d| if ready { rolled_out(d) } else { observed(d) })
        };
        tokio::join!(
            wait_for(&self.deployments_a, NAME, what, ROLLOUT, done),
            wait_for(&self.deployments_b, NAME, what, ROLLOUT, done),
        );
    }

    /// Both sides' Deployments, as the API server has them.
    async fn snapshots(&self) -> (Snapshot, Snapshot) {
        tokio::join!(
            snapshot(&self.client, &self.a.name),
            snapshot(&self.client, &self.b.name)
        )
    }

    /// The operator (scoped to namespace a) performs the rollback action; its final status.
    async fn operator_undo(&self, to_revision: Option<i64>) -> ActionStatus {
        let operator = Operator::start(&self.a.name, &[]).await;
        let mut rollback = json!({ "deployment": NAME });
        if let Some(revision) = to_revision {
            rollback["toRevision"] = json!(revision);
        }
        let request = json!([{ "name": ACTION, "rollback": rollback }]);
        request_actions(&self.incidents_a, INCIDENT, request).await;
        let done = action_settles(&self.incidents_a, INCIDENT, ACTION).await;
        operator.stop().await;
        let status = action(&done, ACTION).cloned().expect("action status");
        eprintln!("operator rollback in {}: {status:#?}", self.a.name);
        status
    }

    /// Rolls back both sides at once: the operator in a, kubectl in b.
    async fn undo_both(&self, to_revision: Option<i64>) -> (ActionStatus, Kubectl) {
        tokio::join!(
            self.operator_undo(to_revision),
            kubectl_undo(&self.b.name, to_revision)
        )
    }

    /// Both sides roll back successfully and end up identical; returns the two results.
    async fn rolled_back_alike(&self, to_revision: Option<i64>) -> (Snapshot, Snapshot) {
        let (status, kubectl) = self.undo_both(to_revision).await;
        assert_eq!(kubectl.code, Some(0), "kubectl rolled back: {kubectl:?}");
        assert_eq!(
            kubectl.stdout.trim(),
            format!("deployment.apps/{NAME} rolled back"),
            "{kubectl:?}"
        );
        assert_eq!(status.phase, ActionPhase::Succeeded, "{status:#?}");

        self.settle("rolled back and rolled out", true).await;
        let (a, b) = self.snapshots().await;
        assert_same(&a, &b);
        assert!(a.revision().is_some(), "a revision annotation: {a:#?}");
        assert_eq!(
            revisions(&self.client, &self.a.name, NAME).await,
            revisions(&self.client, &self.b.name, NAME).await,
            "the same ReplicaSet revisions on both sides"
        );
        (a, b)
    }

    /// Both sides refuse (or skip) and neither Deployment changes; returns what each side said.
    async fn refused_alike(&self, to_revision: Option<i64>) -> (ActionStatus, Kubectl) {
        self.settle("history recorded", false).await;
        let (before_a, before_b) = self.snapshots().await;
        assert_same(&before_a, &before_b);

        let (status, kubectl) = self.undo_both(to_revision).await;

        self.settle("still observed", false).await;
        let (after_a, after_b) = self.snapshots().await;
        assert_eq!(
            after_a, before_a,
            "the operator left its Deployment untouched ({status:?})"
        );
        assert_eq!(
            after_b, before_b,
            "kubectl left its Deployment untouched ({kubectl:?})"
        );
        assert_same(&after_a, &after_b);
        (status, kubectl)
    }
}

// ---- comparing Deployments -----------------------------------------------------------------

/// The parts of a Deployment a rollback decides, read untyped so no field is lost in translation.
#[derive(Debug, PartialEq)]
struct Snapshot {
    generation: Option<i64>,
    template: Value,
    /// Without the operator's own `incident.dev/` annotations.
    annotations: BTreeMap<String, String>,
}

impl Snapshot {
    fn revision(&self) -> Option<&str> {
        self.annotations.get(REVISION).map(String::as_str)
    }

    fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.get(key).map(String::as_str)
    }
}

async fn snapshot(client: &Client, namespace: &str) -> Snapshot {
    let api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        namespace,
        &ApiResource::erase::<Deployment>(&()),
    );
    let raw = api.get(NAME).await.expect("get Deployment");
    Snapshot {
        generation: raw.metadata.generation,
        template: raw.data["spec"]["template"].clone(),
        annotations: raw
            .annotations()
            .iter()
            .filter(|(k, _)| !k.starts_with(OPERATOR_PREFIX))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

/// The operator's Deployment (a) and kubectl's (b) are the same.
fn assert_same(a: &Snapshot, b: &Snapshot) {
    assert_eq!(
        a.template, b.template,
        "spec.template: operator (left) vs kubectl (right)"
    );
    assert_eq!(
        a.annotations, b.annotations,
        "metadata.annotations without incident.dev/*: operator (left) vs kubectl (right)"
    );
    assert_eq!(
        a.revision(),
        b.revision(),
        "{REVISION}: operator (left) vs kubectl (right)"
    );
    assert_eq!(
        a.generation, b.generation,
        "metadata.generation: operator (left) vs kubectl (right)"
    );
}

fn images_of(snapshot: &Snapshot) -> Vec<&str> {
    snapshot.template["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["image"].as_str())
        .collect()
}

// ---- rollbacks that happen -----------------------------------------------------------------

#[tokio::test]
async fn undo_to_the_previous_revision_matches_kubectl() {
    let pair = pair("parity-prev").await;
    pair.bad_deploy(1).await;

    let (a, b) = pair.rolled_back_alike(None).await;
    assert_eq!(images_of(&a), ["registry.local/web-0:2"]);
    assert_eq!(images_of(&b), ["registry.local/web-0:2"]);
    assert_eq!(a.revision(), Some("4"), "one new revision");
    assert_eq!(b.revision(), Some("4"), "one new revision");
    assert_eq!(revisions(&pair.client, &pair.b.name, NAME).await, [1, 3, 4]);
}

#[tokio::test]
async fn undo_to_revision_1_matches_kubectl() {
    let pair = pair("parity-rev1").await;
    pair.bad_deploy(1).await;

    let (a, b) = pair.rolled_back_alike(Some(1)).await;
    assert_eq!(images_of(&a), ["registry.local/web-0:1"]);
    assert_eq!(images_of(&b), ["registry.local/web-0:1"]);
    assert_eq!(a.revision(), Some("4"));
    assert_eq!(a.annotation(CHANGE_CAUSE), Some("deploy v1"));
    assert_eq!(revisions(&pair.client, &pair.b.name, NAME).await, [2, 3, 4]);
}

#[tokio::test]
async fn undo_with_several_containers_matches_kubectl() {
    let pair = pair("parity-multi").await;
    pair.bad_deploy(3).await;

    let (a, b) = pair.rolled_back_alike(None).await;
    let v2 = [
        "registry.local/web-0:2",
        "registry.local/web-1:2",
        "registry.local/web-2:2",
    ];
    assert_eq!(images_of(&a), v2);
    assert_eq!(images_of(&b), v2);
    let web = pair.deployments_a.get(NAME).await.expect("get Deployment");
    assert_eq!(images(&web), v2, "container order kept");
    assert_eq!(revision(&web).as_deref(), Some("4"));
}

#[tokio::test]
async fn undo_restores_change_cause_annotations_like_kubectl() {
    let pair = pair("parity-cause").await;
    pair.bad_deploy(1).await;
    // An annotation only the Deployment carries (no revision has it): kubectl replaces the
    // Deployment's annotations with the target ReplicaSet's, so the operator must do the same.
    pair.patch_both(
        json!({ "metadata": { "annotations": { "example.com/owner": "payments" } } }),
        "annotated after v3",
    )
    .await;
    let (before, _) = pair.snapshots().await;
    assert_eq!(before.annotation(CHANGE_CAUSE), Some("deploy v3"));

    let (a, b) = pair.rolled_back_alike(None).await;
    assert_eq!(a.annotation(CHANGE_CAUSE), Some("deploy v2"), "{a:#?}");
    assert_eq!(b.annotation(CHANGE_CAUSE), Some("deploy v2"), "{b:#?}");
    assert_eq!(
        a.annotation("example.com/owner"),
        b.annotation("example.com/owner")
    );
}

// ---- refusals --------------------------------------------------------------------------------

#[tokio::test]
async fn a_paused_deployment_is_refused_like_kubectl() {
    let pair = pair("parity-paused").await;
    pair.bad_deploy(1).await;
    pair.patch_both(json!({ "spec": { "paused": true } }), "paused")
        .await;

    let (status, kubectl) = pair.refused_alike(None).await;
    assert_ne!(kubectl.code, Some(0), "kubectl refused: {kubectl:?}");
    assert!(kubectl.stderr.contains("paused"), "{kubectl:?}");
    assert_eq!(status.phase, ActionPhase::Failed, "{status:#?}");
    assert_eq!(status.reason.as_deref(), Some("Paused"), "{status:#?}");
    assert!(
        status
            .message
            .as_deref()
            .is_some_and(|m| m.contains("paused")),
        "{status:#?}"
    );
}

#[tokio::test]
async fn a_missing_revision_is_refused_like_kubectl() {
    let pair = pair("parity-missing").await;
    pair.bad_deploy(1).await;

    let (status, kubectl) = pair.refused_alike(Some(99)).await;
    let expected = "unable to find specified revision 99 in history";
    assert_ne!(kubectl.code, Some(0), "kubectl refused: {kubectl:?}");
    assert_eq!(kubectl.stderr.trim(), format!("error: {expected}"));
    assert_eq!(status.phase, ActionPhase::Failed, "{status:#?}");
    assert_eq!(
        status.reason.as_deref(),
        Some("RevisionNotFound"),
        "{status:#?}"
    );
    assert_eq!(
        status.message.as_deref(),
        Some(expected),
        "same message text"
    );
}

#[tokio::test]
async fn no_history_is_refused_like_kubectl() {
    let pair = pair("parity-nohistory").await;
    let v1 = deployment(NAME, &["registry.local/web-0:1"], None);
    for api in [&pair.deployments_a, &pair.deployments_b] {
        api.create(&PostParams::default(), &v1)
            .await
            .expect("create Deployment");
    }
    pair.settle("v1 rolled out", true).await;

    let (status, kubectl) = pair.refused_alike(None).await;
    let expected = format!("no rollout history found for deployment \"{NAME}\"");
    assert_ne!(kubectl.code, Some(0), "kubectl refused: {kubectl:?}");
    assert_eq!(kubectl.stderr.trim(), format!("error: {expected}"));
    assert_eq!(status.phase, ActionPhase::Failed, "{status:#?}");
    assert_eq!(status.reason.as_deref(), Some("NoHistory"), "{status:#?}");
    assert_eq!(status.message.as_deref(), Some(expected.as_str()));
}

#[tokio::test]
async fn undo_to_the_current_revision_is_skipped_like_kubectl() {
    let pair = pair("parity-current").await;
    pair.bad_deploy(1).await;
    let (a, b) = pair.snapshots().await;
    let current: i64 = a
        .revision()
        .and_then(|r| r.parse().ok())
        .expect("a current revision");
    assert_eq!(current, 3);
    assert_eq!(b.revision(), a.revision());

    let (status, kubectl) = pair.refused_alike(Some(current)).await;
    let expected = format!("current template already matches revision {current}");
    assert_eq!(
        kubectl.code,
        Some(0),
        "kubectl skips without error: {kubectl:?}"
    );
    assert_eq!(
        kubectl.stdout.trim(),
        format!("deployment.apps/{NAME} skipped rollback ({expected})")
    );
    assert_eq!(status.phase, ActionPhase::Skipped, "{status:#?}");
    assert_eq!(
        status.reason.as_deref(),
        Some("AlreadyAtRevision"),
        "{status:#?}"
    );
    assert_eq!(status.message.as_deref(), Some(expected.as_str()));
}
