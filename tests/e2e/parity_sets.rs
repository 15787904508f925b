//! Parity with `kubectl rollout undo` for StatefulSets and DaemonSets: the same history (three
//! ControllerRevisions) is built in two namespaces; the operator rolls back one (an Incident with a
//! rollback action of that kind), the cluster's own kubectl the other, and the two objects must
//! come out identical (template, annotations but the operator's incident.dev/ ones, generation,
//! revision numbers). Refusals must say the same and leave both untouched.

use std::collections::BTreeMap;

use incident_operator::{
    api::{ActionPhase, ActionStatus, Incident},
    core::remediation::{
        rollout::{Progress, progress_of},
        sets::WorkloadRef,
    },
};
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, StatefulSet};
use kube::{
    Api, Client, ResourceExt,
    api::{ApiResource, DynamicObject, ListParams, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};

use crate::{
    parity::{Kubectl, kubectl_rollout_undo},
    remediation::{ROLLOUT, action, action_settles, request_actions},
    support::{Operator, TestNamespace, client, install_crds, wait_for},
};

const NAME: &str = "web";
const INCIDENT: &str = "web-down";
const ACTION: &str = "undo";
const OPERATOR_PREFIX: &str = "incident.dev/";

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    StatefulSet,
    DaemonSet,
}

impl Kind {
    fn resource(self) -> ApiResource {
        match self {
            Kind::StatefulSet => ApiResource::erase::<StatefulSet>(&()),
            Kind::DaemonSet => ApiResource::erase::<DaemonSet>(&()),
        }
    }

    fn word(self) -> &'static str {
        match self {
            Kind::StatefulSet => "statefulset",
            Kind::DaemonSet => "daemonset",
        }
    }
}

/// The workload `name` of `kind` at `version`: one container, image `registry.local/<name>:<version>`.
pub fn manifest(kind: Kind, name: &str, version: u32) -> Value {
    let template = json!({
        "metadata": { "labels": { "app": name }, "annotations": { "example.com/version": version.to_string() } },
        "spec": { "containers": [{ "name": "app", "image": format!("registry.local/{name}:{version}") }] },
    });
    let mut spec = json!({ "selector": { "matchLabels": { "app": name } }, "template": template });
    if kind == Kind::StatefulSet {
        spec["replicas"] = json!(2);
        spec["serviceName"] = json!(name);
    }
    json!({
        "apiVersion": "apps/v1", "kind": format!("{kind:?}"),
        "metadata": { "name": name, "annotations": { "example.com/owner": "payments" } },
        "spec": spec,
    })
}

/// Creates or updates the workload to `version` and waits until it is rolled out.
pub async fn deploy(client: &Client, ns: &str, kind: Kind, name: &str, version: u32) {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &kind.resource());
    let params = PatchParams::apply("parity-test").force();
    api.patch(name, &params, &Patch::Apply(manifest(kind, name, version)))
        .await
        .unwrap_or_else(|e| panic!("apply {kind:?} {name} v{version}: {e}"));
    rolled_out(client, ns, kind, name).await;
}

/// Waits until the workload's current generation is rolled out, as `kubectl rollout status` says.
pub async fn rolled_out(client: &Client, ns: &str, kind: Kind, name: &str) {
    let what = format!("{kind:?} {name} rolled out");
    let done = |workload: WorkloadRef<'_>| {
        let generation = workload.metadata().generation.unwrap_or(0);
        matches!(progress_of(workload, generation), Progress::Complete { .. })
    };
    match kind {
        Kind::StatefulSet => {
            let api: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
            wait_for(&api, name, &what, ROLLOUT, |s| {
                s.is_some_and(|s| done(WorkloadRef::StatefulSet(s)))
            })
            .await;
        }
        Kind::DaemonSet => {
            let api: Api<DaemonSet> = Api::namespaced(client.clone(), ns);
            wait_for(&api, name, &what, ROLLOUT, |d| {
                d.is_some_and(|d| done(WorkloadRef::DaemonSet(d)))
            })
            .await;
        }
    }
}

/// The revision numbers of the workload's ControllerRevisions, sorted.
pub async fn revisions(client: &Client, ns: &str, name: &str) -> Vec<i64> {
    let api: Api<ControllerRevision> = Api::namespaced(client.clone(), ns);
    let mut numbers: Vec<i64> = api
        .list(&ListParams::default().labels(&format!("app={name}")))
        .await
        .expect("list ControllerRevisions")
        .items
        .iter()
        .filter_map(|r| r.revision)
        .collect();
    numbers.sort();
    numbers
}

/// The parts of the object a rollback decides, read untyped so no field is lost in translation.
#[derive(Debug, PartialEq)]
struct Snapshot {
    generation: Option<i64>,
    template: Value,
    annotations: BTreeMap<String, String>,
    revisions: Vec<i64>,
}

struct Pair {
    client: Client,
    kind: Kind,
    /// Rolled back by the operator.
    a: TestNamespace,
    /// Rolled back by kubectl.
    b: TestNamespace,
}

impl Pair {
    /// Versions 1..=`versions` rolled out in both namespaces.
    async fn new(prefix: &str, kind: Kind, versions: u32) -> Pair {
        let client = client().await;
        install_crds(&client).await;
        let (prefix_a, prefix_b) = (format!("{prefix}-op"), format!("{prefix}-kubectl"));
        let (a, b) = tokio::join!(
            TestNamespace::new(&client, &prefix_a),
            TestNamespace::new(&client, &prefix_b),
        );
        for version in 1..=versions {
            tokio::join!(
                deploy(&client, &a.name, kind, NAME, version),
                deploy(&client, &b.name, kind, NAME, version),
            );
        }
        Pair { client, kind, a, b }
    }

    async fn snapshot(&self, ns: &str) -> Snapshot {
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), ns, &self.kind.resource());
        let raw = api.get(NAME).await.expect("get the workload");
        Snapshot {
            generation: raw.metadata.generation,
            template: raw.data["spec"]["template"].clone(),
            annotations: raw
                .annotations()
                .iter()
                .filter(|(k, _)| !k.starts_with(OPERATOR_PREFIX))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            revisions: revisions(&self.client, ns, NAME).await,
        }
    }

    async fn snapshots(&self) -> (Snapshot, Snapshot) {
        tokio::join!(self.snapshot(&self.a.name), self.snapshot(&self.b.name))
    }

    async fn operator_undo(&self, to_revision: Option<i64>) -> ActionStatus {
        let operator = Operator::start(&self.a.name, &[]).await;
        let mut rollback = json!({ "deployment": NAME, "kind": format!("{:?}", self.kind) });
        if let Some(revision) = to_revision {
            rollback["toRevision"] = json!(revision);
        }
        let incidents: Api<Incident> = Api::namespaced(self.client.clone(), &self.a.name);
        let request = json!([{ "name": ACTION, "rollback": rollback }]);
        request_actions(&incidents, INCIDENT, request).await;
        let done = action_settles(&incidents, INCIDENT, ACTION).await;
        operator.stop().await;
        action(&done, ACTION).cloned().expect("action status")
    }

    async fn undo_both(&self, to_revision: Option<i64>) -> (ActionStatus, Kubectl) {
        let target = format!("{}/{NAME}", self.kind.word());
        tokio::join!(
            self.operator_undo(to_revision),
            kubectl_rollout_undo(&self.b.name, &target, to_revision)
        )
    }

    /// Both sides roll back and come out identical; returns the operator's side.
    async fn rolled_back_alike(&self, to_revision: Option<i64>) -> Snapshot {
        let (status, kubectl) = self.undo_both(to_revision).await;
        assert_eq!(kubectl.code, Some(0), "kubectl rolled back: {kubectl:?}");
        let resource = format!("{}.apps/{NAME}", self.kind.word());
        assert_eq!(kubectl.stdout.trim(), format!("{resource} rolled back"));
        assert_eq!(status.phase, ActionPhase::Succeeded, "{status:#?}");
        tokio::join!(
            rolled_out(&self.client, &self.a.name, self.kind, NAME),
            rolled_out(&self.client, &self.b.name, self.kind, NAME),
        );
        let (a, b) = self.snapshots().await;
        assert_eq!(a, b, "operator (left) vs kubectl (right)");
        a
    }

    /// Both sides refuse (or skip), neither object changes; returns what each side said.
    async fn refused_alike(&self, to_revision: Option<i64>) -> (ActionStatus, Kubectl) {
        let (before_a, before_b) = self.snapshots().await;
        assert_eq!(before_a, before_b);
        let (status, kubectl) = self.undo_both(to_revision).await;
        let (after_a, after_b) = self.snapshots().await;
        assert_eq!(
            after_a, before_a,
            "the operator left it untouched ({status:?})"
        );
        assert_eq!(after_b, before_b, "kubectl left it untouched ({kubectl:?})");
        (status, kubectl)
    }
}

fn image(snapshot: &Snapshot) -> &str {
    snapshot.template["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or_default()
}

#[tokio::test]
async fn a_statefulset_undo_to_the_previous_revision_matches_kubectl() {
    let pair = Pair::new("psts-prev", Kind::StatefulSet, 3).await;
    let a = pair.rolled_back_alike(None).await;
    assert_eq!(image(&a), "registry.local/web:2");
    assert_eq!(
        a.revisions,
        [1, 3, 4],
        "revision 2 became 4, as kubectl's did"
    );
}

#[tokio::test]
async fn a_statefulset_undo_to_revision_1_matches_kubectl() {
    let pair = Pair::new("psts-rev1", Kind::StatefulSet, 3).await;
    let a = pair.rolled_back_alike(Some(1)).await;
    assert_eq!(image(&a), "registry.local/web:1");
    assert_eq!(a.revisions, [2, 3, 4]);
}

#[tokio::test]
async fn a_daemonset_undo_to_the_previous_revision_matches_kubectl() {
    let pair = Pair::new("pds-prev", Kind::DaemonSet, 3).await;
    let a = pair.rolled_back_alike(None).await;
    assert_eq!(image(&a), "registry.local/web:2");
    assert_eq!(a.revisions, [1, 3, 4]);
}

#[tokio::test]
async fn a_daemonset_undo_to_revision_1_matches_kubectl() {
    let pair = Pair::new("pds-rev1", Kind::DaemonSet, 3).await;
    let a = pair.rolled_back_alike(Some(1)).await;
    assert_eq!(image(&a), "registry.local/web:1");
    assert_eq!(a.revisions, [2, 3, 4]);
}

#[tokio::test]
async fn a_missing_revision_is_refused_like_kubectl() {
    let pair = Pair::new("psts-missing", Kind::StatefulSet, 3).await;
    let (status, kubectl) = pair.refused_alike(Some(99)).await;
    let expected = "unable to find specified revision 99 in history";
    assert_eq!(kubectl.stderr.trim(), format!("error: {expected}"));
    assert_eq!(status.phase, ActionPhase::Failed, "{status:#?}");
    assert_eq!(status.reason.as_deref(), Some("RevisionNotFound"));
    assert_eq!(status.message.as_deref(), Some(expected));
}

#[tokio::test]
async fn no_history_is_refused_like_kubectl() {
    let pair = Pair::new("pds-nohistory", Kind::DaemonSet, 1).await;
    let (status, kubectl) = pair.refused_alike(None).await;
    let expected = "no last revision to roll back to";
    assert_eq!(kubectl.stderr.trim(), format!("error: {expected}"));
    assert_eq!(status.phase, ActionPhase::Failed, "{status:#?}");
    assert_eq!(status.reason.as_deref(), Some("NoHistory"));
    assert_eq!(status.message.as_deref(), Some(expected));
}

#[tokio::test]
async fn undo_to_the_current_revision_is_skipped_like_kubectl() {
    let pair = Pair::new("psts-current", Kind::StatefulSet, 3).await;
    let (status, kubectl) = pair.refused_alike(Some(3)).await;
    let expected = "current template already matches revision 3";
    assert_eq!(
        kubectl.code,
        Some(0),
        "kubectl skips without error: {kubectl:?}"
    );
    assert_eq!(
        kubectl.stdout.trim(),
        format!("statefulset.apps/{NAME} skipped rollback ({expected})")
    );
    assert_eq!(status.phase, ActionPhase::Skipped, "{status:#?}");
    assert_eq!(status.reason.as_deref(), Some("AlreadyAtRevision"));
    assert_eq!(status.message.as_deref(), Some(expected));
}

/// DaemonSets have no replica count: admission refuses a scale of one, before anything runs.
#[tokio::test]
async fn scaling_a_daemonset_is_refused_at_admission() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::new(&client, "pds-scale").await;
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns.name);
    let incident: Incident = serde_json::from_value(json!({
        "apiVersion": "incident.dev/v1alpha1", "kind": "Incident",
        "metadata": { "name": "agent-down" },
        "spec": { "title": "agent down", "severity": "P2", "actions": [
            { "name": "more", "scale": { "deployment": "agent", "kind": "DaemonSet", "replicas": 3 } } ] },
    }))
    .expect("an Incident");
    let refused = incidents
        .create(&PostParams::default(), &incident)
        .await
        .expect_err("refused at admission");
    assert!(
        refused
            .to_string()
            .contains("a DaemonSet runs one pod per eligible node"),
        "{refused}"
    );
}
