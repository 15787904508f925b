//! Argo Rollouts end to end, with the real parts: the Rollout CRDs of argo-rollouts v1.10.2, its
//! controller and its kubectl plugin, built from the release's Go module by
//! hack/cluster/argo-rollouts.sh. A runbook's rollback of a Rollout the incident names aborts it
//! exactly as `kubectl argo rollouts abort` aborts a twin (status.abort through the status
//! subresource), across a kill before and a kill after the change, and the controller's own report
//! (canary scaled down, phase Degraded, stable kept) is what verifies it. Asking for it needs
//! `patch` on rollouts/status, judged by the chart's admission policy.

use std::{path::PathBuf, process::Stdio, time::Duration};

use incident_operator::api::{
    ActionPhase, ArgoRolloutStatus, EntryType, Incident, Runbook,
    metadata::{ACTION_ANNOTATION, REMEDIATION_MANAGER},
};
use k8s_openapi::api::{
    apps::v1::ReplicaSet,
    rbac::v1::{Role, RoleBinding},
};
use kube::{
    Api, Client, CustomResource, ResourceExt,
    api::{ListParams, Patch, PatchParams, PostParams},
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::{
    alertmanager::Scratch,
    lifecycle::{events, with_reason},
    remediation::{ROLLOUT, action},
    support::{
        Operator, TestNamespace, client, free_addr, get, install_crds, kubeconfig_path, wait_for,
    },
    trust::{Policies, as_user, enforced},
};

/// A Rollout as these tests read and write it: the spec as JSON, the status the operator reads.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug)]
#[kube(
    group = "argoproj.io",
    version = "v1alpha1",
    kind = "Rollout",
    namespaced,
    status = "ArgoRolloutStatus",
    schema = "disabled"
)]
pub struct RolloutSpec {
    #[serde(flatten)]
    pub fields: serde_json::Map<String, Value>,
}

const INCIDENT: &str = "web-canary-broken";
const ACTION: &str = "runbook-roll-back";

/// The directory hack/cluster/argo-rollouts.sh fills: INCIDENT_E2E_ARGO_ROLLOUTS when set (as
/// `make test` does), else the script's answer (it builds on a cold cache).
pub fn argo_dir() -> PathBuf {
    let how = "the Argo Rollouts tests need its controller, kubectl plugin and CRDs: run \
               `make argo-rollouts-build` and set INCIDENT_E2E_ARGO_ROLLOUTS to the directory it \
               prints, or run `make test`";
    let dir = match std::env::var_os("INCIDENT_E2E_ARGO_ROLLOUTS") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/hack/cluster/argo-rollouts.sh");
            let output = std::process::Command::new(script)
                .stderr(Stdio::inherit())
                .output()
                .unwrap_or_else(|e| panic!("run {script}: {e}; {how}"));
            assert!(output.status.success(), "{script} failed; {how}");
            PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
        }
    };
    for file in [
        "rollouts-controller",
        "kubectl-argo-rollouts",
        "crds/rollout-crd.yaml",
    ] {
        assert!(
            dir.join(file).is_file(),
            "no {file} in {}; {how}",
            dir.display()
        );
    }
    dir
}

/// Server-side applies the release's CRDs and waits until each is Established.
pub(crate) async fn install_argo_crds(client: &Client, dir: &std::path::Path) {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("crds"))
        .expect("read the Argo Rollouts CRDs")
        .map(|f| f.expect("a CRD file").path())
        .collect();
    files.sort();
    crate::support::apply_crd_files(client, &files).await;
}

/// The Rollouts controller for one namespace (`--namespaced`), leader election off; killed when
/// dropped, its log printed if the test is failing.
pub(crate) struct Controller {
    child: Child,
    scratch: Scratch,
}

impl Controller {
    pub(crate) async fn start(dir: &std::path::Path, namespace: &str) -> Self {
        let scratch = Scratch::new("argo-rollouts");
        let log = std::fs::File::create(scratch.0.join("controller.log")).expect("log");
        let health = free_addr();
        let mut child = Command::new(dir.join("rollouts-controller"))
            .arg("--namespaced")
            .args(["--namespace", namespace])
            .arg("--kubeconfig")
            .arg(kubeconfig_path())
            .arg("--leader-elect=false")
            .arg(format!("--metricsPort={}", free_addr().port()))
            .arg(format!("--healthzPort={}", health.port()))
            .env("POD_NAMESPACE", namespace)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("start rollouts-controller");
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !matches!(get(health, "/healthz").await, Ok((200, _))) {
            let exited = child.try_wait().expect("check on the controller");
            assert!(
                exited.is_none() && std::time::Instant::now() < deadline,
                "rollouts-controller not healthy on {health} within 60s ({exited:?}):\n{}",
                std::fs::read_to_string(scratch.0.join("controller.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Controller { child, scratch }
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.scratch.0.join("controller.log"));
            let log = log.unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!(
                "---- last lines of rollouts-controller's log ----\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    }
}

/// A canary Rollout of 4 pods: 25 % then an indefinite pause, where an update waits for a person.
pub(crate) fn rollout(name: &str, image: &str) -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
        "metadata": { "name": name },
        "spec": {
            "replicas": 4,
            "selector": { "matchLabels": { "app": name } },
            "strategy": { "canary": { "steps": [ { "setWeight": 25 }, { "pause": {} } ] } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": { "containers": [ { "name": "app", "image": image } ] },
            },
        },
    })
}

pub(crate) fn status(r: &Rollout) -> ArgoRolloutStatus {
    r.status.clone().unwrap_or_default()
}

pub(crate) fn observed(r: &Rollout) -> bool {
    status(r).observed_generation.as_deref()
        == r.metadata.generation.map(|g| g.to_string()).as_deref()
}

/// Creates `name` at image :1, waits until Healthy, then updates it to :2 and waits until the
/// update is paused with its canary: 1 pod at :2, the stable ReplicaSet scaled to 3 at :1 (a basic
/// canary keeps the total at `replicas`).
async fn paused_mid_update(rollouts: &Api<Rollout>, name: &str) -> Rollout {
    let apply = |image: String| {
        let body = rollout(name, &image);
        async move {
            rollouts
                .patch(
                    name,
                    &PatchParams::apply("e2e").force(),
                    &Patch::Apply(&body),
                )
                .await
                .expect("apply the Rollout")
        }
    };
    apply("registry.local/web:1".into()).await;
    wait_for(rollouts, name, "Healthy at :1", ROLLOUT, |r| {
        r.is_some_and(|r| observed(r) && status(r).phase.as_deref() == Some("Healthy"))
    })
    .await;
    apply("registry.local/web:2".into()).await;
    wait_for(rollouts, name, "paused with a canary", ROLLOUT, |r| {
        r.is_some_and(|r| {
            let s = status(r);
            observed(r)
                && s.phase.as_deref() == Some("Paused")
                && s.current_pod_hash != s.stable_rs
                && s.updated_replicas == Some(1)
                && s.available_replicas == Some(4)
        })
    })
    .await
    .expect("the Rollout")
}

/// The ReplicaSets of `name` by pod-template-hash: (hash, image, pods, available pods).
async fn replica_sets(client: &Client, ns: &str, name: &str) -> Vec<(String, String, i32, i32)> {
    let api: Api<ReplicaSet> = Api::namespaced(client.clone(), ns);
    let mut found: Vec<_> = api
        .list(&ListParams::default().labels(&format!("app={name}")))
        .await
        .expect("list ReplicaSets")
        .items
        .into_iter()
        .map(|rs| {
            let hash = rs.labels().get("rollouts-pod-template-hash").cloned();
            let image = rs
                .spec
                .template
                .as_ref()
                .and_then(|t| t.spec.as_ref())
                .and_then(|s| s.containers.first())
                .and_then(|c| c.image.clone());
            let status = rs.status.unwrap_or_default();
            (
                hash.unwrap_or_default(),
                image.unwrap_or_default(),
                status.replicas,
                status.available_replicas.unwrap_or(0),
            )
        })
        .collect();
    found.sort();
    found
}

/// The managed-fields entry that owns `status.abort`: (manager, operation, subresource).
fn abort_owner(r: &Rollout) -> Option<(String, String, String)> {
    r.metadata.managed_fields.iter().flatten().find_map(|m| {
        let owns = m
            .fields_v1
            .as_ref()?
            .0
            .pointer("/f:status/f:abort")
            .is_some();
        owns.then(|| {
            (
                m.manager.clone().unwrap_or_default(),
                m.operation.clone().unwrap_or_default(),
                m.subresource.clone().unwrap_or_default(),
            )
        })
    })
}

/// Runs an operator that aborts at `failpoint`, and waits until it did.
async fn crash_at(ns: &str, failpoint: &str) {
    let operator =
        Operator::start_with_env(ns, &[], &[("INCIDENT_OPERATOR_FAILPOINT", failpoint)]).await;
    assert!(
        operator.exits_abnormally(ROLLOUT).await,
        "the operator aborted at {failpoint}"
    );
}

#[tokio::test]
async fn a_runbook_aborts_a_rollout_once_as_its_plugin_does_and_its_controller_verifies_it() {
    let dir = argo_dir();
    let client = client().await;
    install_crds(&client).await;
    install_argo_crds(&client, &dir).await;
    let ns = TestNamespace::new(&client, "argo").await;
    let ns = ns.name.clone();
    let _controller = Controller::start(&dir, &ns).await;
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), &ns);
    let (web, _) = tokio::join!(
        paused_mid_update(&rollouts, "web"),
        paused_mid_update(&rollouts, "twin")
    );
    let generation = web.metadata.generation;

    let runbooks: Api<Runbook> = Api::namespaced(client.clone(), &ns);
    let runbook = json!({
        "apiVersion": "incident.dev/v1alpha1", "kind": "Runbook",
        "metadata": { "name": "abort-canary" },
        "spec": { "match": { "incidentSelector": { "matchLabels": { "service": "web" } } },
                  "steps": [ { "name": "roll-back", "rollback": {}, "automaticFor": ["P2"] } ] },
    });
    runbooks
        .patch(
            "abort-canary",
            &PatchParams::apply("e2e").force(),
            &Patch::Apply(&runbook),
        )
        .await
        .expect("apply the Runbook");
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns);
    let incident: Incident = serde_json::from_value(json!({
        "apiVersion": "incident.dev/v1alpha1", "kind": "Incident",
        "metadata": { "name": INCIDENT, "labels": { "service": "web" } },
        "spec": { "title": "web's canary returns 500s", "severity": "P2",
                  "affected": [ { "kind": "Rollout", "name": "web" } ] },
    }))
    .expect("an Incident");
    incidents
        .create(&PostParams::default(), &incident)
        .await
        .expect("create the Incident");

    // Killed with the plan stored and nothing sent: the Rollout is untouched.
    crash_at(&ns, &format!("before-patch:{ACTION}")).await;
    let crashed = incidents.get(INCIDENT).await.expect("get the Incident");
    assert_eq!(
        action(&crashed, ACTION).map(|a| a.phase),
        Some(ActionPhase::Running)
    );
    let untouched = rollouts.get("web").await.expect("get web");
    assert!(!untouched.annotations().contains_key(ACTION_ANNOTATION));
    assert_eq!(status(&untouched).abort, None);

    // Killed right after the change: marker and abort are there, the action not yet Verifying.
    crash_at(&ns, &format!("after-patch:{ACTION}")).await;
    let sent = rollouts.get("web").await.expect("get web");
    let marker = format!("{}/{ACTION}", crashed.uid().expect("uid"));
    assert_eq!(sent.annotations().get(ACTION_ANNOTATION), Some(&marker));
    assert_eq!(status(&sent).abort, Some(true));
    let crashed = incidents.get(INCIDENT).await.expect("get the Incident");
    assert_eq!(
        action(&crashed, ACTION).map(|a| a.phase),
        Some(ActionPhase::Running)
    );

    // The twin is aborted by the real plugin.
    let plugin = std::process::Command::new(dir.join("kubectl-argo-rollouts"))
        .arg("--kubeconfig")
        .arg(kubeconfig_path())
        .args(["-n", &ns, "abort", "twin"])
        .output()
        .expect("run kubectl-argo-rollouts");
    assert!(
        plugin.status.success(),
        "{}",
        String::from_utf8_lossy(&plugin.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&plugin.stdout),
        "rollout 'twin' aborted\n"
    );

    let operator = Operator::start(&ns, &[]).await;
    let done = wait_for(&incidents, INCIDENT, "the abort verified", ROLLOUT, |i| {
        i.and_then(|i| action(i, ACTION))
            .is_some_and(|a| a.phase.is_terminal())
    })
    .await
    .expect("the Incident");
    operator.stop().await;
    let result = action(&done, ACTION).expect("the action").clone();
    assert_eq!(result.phase, ActionPhase::Succeeded, "{result:#?}");
    assert_eq!(result.target(), "rollout/web");
    assert_eq!(
        (result.from_revision, result.to_revision),
        (Some(2), Some(1))
    );
    assert!(
        result
            .message
            .as_deref()
            .is_some_and(|m| m.starts_with("rollout complete: 4/4 available after ")),
        "{result:#?}"
    );

    // What the operator changed is what the plugin changed: status.abort, through the status
    // subresource by a merge patch (an Update there); the template is left as it was.
    let (web, twin) = (
        rollouts.get("web").await.expect("get web"),
        rollouts.get("twin").await.expect("get twin"),
    );
    assert_eq!(
        abort_owner(&web),
        Some((REMEDIATION_MANAGER.into(), "Update".into(), "status".into()))
    );
    let twin_owner = abort_owner(&twin).expect("the plugin owns twin's status.abort");
    assert_eq!(
        (twin_owner.1.as_str(), twin_owner.2.as_str()),
        ("Update", "status")
    );
    assert_eq!(web.metadata.generation, generation, "no spec change");
    let pod_spec = |r: &Rollout| {
        r.spec
            .fields
            .get("template")
            .and_then(|t| t.get("spec"))
            .cloned()
    };
    assert_eq!(pod_spec(&web), pod_spec(&twin), "both keep the :2 template");
    // The controller's own report, the same for both: aborted, canary scaled down, stable kept.
    for r in [&web, &twin] {
        let s = status(r);
        assert_eq!(s.abort, Some(true));
        assert!(s.aborted_at.is_some(), "{s:#?}");
        assert_eq!(s.phase.as_deref(), Some("Degraded"), "{s:#?}");
        assert!(
            s.message.as_deref().is_some_and(
                |m| m.starts_with("RolloutAborted: Rollout aborted update to revision 2")
            ),
            "{s:#?}"
        );
    }
    for name in ["web", "twin"] {
        let sets = replica_sets(&client, &ns, name).await;
        let by_image = |image: &str| {
            sets.iter()
                .find(|(_, i, _, _)| i == image)
                .map(|(_, _, pods, available)| (*pods, *available))
        };
        assert_eq!(
            by_image("registry.local/web:1"),
            Some((4, 4)),
            "{name}: {sets:?}"
        );
        assert_eq!(
            by_image("registry.local/web:2"),
            Some((0, 0)),
            "{name}: {sets:?}"
        );
    }

    // Recorded once each, across both kills; an Event for each.
    let entries = |type_: EntryType| {
        let timeline = &done.status.as_ref().expect("status").timeline;
        timeline
            .iter()
            .filter(|e| e.type_ == type_)
            .map(|e| e.message.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(entries(EntryType::ActionStarted).len(), 1);
    assert_eq!(entries(EntryType::ActionSucceeded).len(), 1);
    assert_eq!(
        entries(EntryType::ActionApplied),
        [
            "Aborted the update of rollout/web to revision 2 (registry.local/web:2): its controller returns to the stable revision 1 (registry.local/web:1)"
        ]
    );
    let events = events(&client, &ns, INCIDENT).await;
    assert_eq!(with_reason(&events, "ActionApplied"), 1, "{events:#?}");
}

/// A merge patch of the incident's spec by `client`: the API server's answer.
async fn ask(client: &Client, ns: &str, spec: Value) -> Result<Incident, String> {
    Api::<Incident>::namespaced(client.clone(), ns)
        .patch(
            "canary",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": spec })),
        )
        .await
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn asking_to_abort_a_rollout_needs_patch_on_its_status_as_the_plugin_does() {
    let dir = argo_dir();
    let (client, ns, incidents) = crate::lifecycle::setup("argo-rights").await;
    install_argo_crds(&client, &dir).await;
    let ns = ns.name.clone();
    // alice may patch the Rollout itself but not its status; bob may patch its status.
    let rules = |extra: Value| {
        json!([
            { "apiGroups": ["incident.dev"], "resources": ["incidents"],
              "verbs": ["get", "list", "watch", "create", "update", "patch"] },
            { "apiGroups": ["argoproj.io"], "resources": ["rollouts"], "verbs": ["get", "patch"] },
            extra,
        ])
    };
    for (user, extra) in [
        (
            "alice",
            json!({ "apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["patch"] }),
        ),
        (
            "bob",
            json!({ "apiGroups": ["argoproj.io"], "resources": ["rollouts/status"], "verbs": ["patch"] }),
        ),
    ] {
        let role: Role =
            serde_json::from_value(json!({ "metadata": { "name": user }, "rules": rules(extra) }))
                .expect("Role");
        Api::<Role>::namespaced(client.clone(), &ns)
            .create(&PostParams::default(), &role)
            .await
            .expect("create Role");
        let binding: RoleBinding = serde_json::from_value(json!({
            "metadata": { "name": user },
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": user },
            "subjects": [ { "apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user } ],
        }))
        .expect("RoleBinding");
        Api::<RoleBinding>::namespaced(client.clone(), &ns)
            .create(&PostParams::default(), &binding)
            .await
            .expect("create RoleBinding");
    }
    let _policies = Policies::install(&format!("argo-{}", &ns[ns.len() - 5..]), &ns);
    for name in ["probe", "canary"] {
        incidents
            .create(
                &PostParams::default(),
                &crate::lifecycle::incident(name, json!({ "title": name, "severity": "P2" })),
            )
            .await
            .expect("create an Incident");
    }
    let (alice, bob) = (as_user("alice").await, as_user("bob").await);
    enforced(&alice, &ns).await;

    let abort = |extra: Value| {
        let mut rollback = json!({ "deployment": "web", "kind": "Rollout" });
        if let (Some(r), Some(extra)) = (rollback.as_object_mut(), extra.as_object()) {
            r.extend(extra.clone());
        }
        json!({ "actions": [ { "name": "abort-web", "rollback": rollback } ] })
    };
    let refused = ask(&alice, &ns, abort(json!({})))
        .await
        .expect_err("alice is refused");
    assert!(
        refused.contains("aborting a Rollout patches its status, as kubectl argo rollouts abort does: alice may not patch rollouts/status (argoproj.io) in namespace"),
        "{refused}"
    );
    // Admission's schema rules, whoever asks: no revision to name, no restart or scale of a Rollout.
    let revision = ask(&bob, &ns, abort(json!({ "toRevision": 1 })))
        .await
        .expect_err("no revision");
    assert!(revision.contains("toRevision does not apply"), "{revision}");
    for (kind, words) in [
        ("restart", "restarted by its own controller"),
        ("scale", "split between its stable and canary"),
    ] {
        let mut body = json!({ "deployment": "web", "kind": "Rollout" });
        if kind == "scale" {
            body["replicas"] = json!(2);
        }
        let asked = json!({ "actions": [ { "name": format!("{kind}-web"), kind: body } ] });
        let refused = ask(&bob, &ns, asked)
            .await
            .expect_err("refused by the schema");
        assert!(refused.contains(words), "{refused}");
    }
    let accepted = ask(&bob, &ns, abort(json!({}))).await.expect("bob may ask");
    assert_eq!(accepted.spec.actions.len(), 1);
}
