//! Real Flux for the GitOps e2e tests: source-controller and kustomize-controller (built from
//! their Go modules by hack/cluster/flux.sh) run as local processes against the e2e cluster,
//! watching only the test's namespace, and reconcile a Git repository served on 127.0.0.1 by the
//! test (tests/e2e/gitserver.rs). [`GitOps::start`] gives a test all of it; `commit` is a push,
//! [`GitOps::wait_applied`] waits until Flux reports that commit applied.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use kube::{
    Api, Client, ResourceExt,
    api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams},
};
use serde_json::{Value, json};

pub use crate::flux_process::{Flux, flux_dir, install_flux_crds};
use crate::{alertmanager::Scratch, gitserver::GitServer, support::wait_for};

/// The Git repository every GitOps test serves, and the GitRepository that points at it.
pub const REPO: &str = "app.git";
pub const SOURCE: &str = "app";
/// Flux's reconcile interval in these tests (its production default is minutes).
pub const INTERVAL: Duration = Duration::from_secs(2);
/// How long Flux may take to act on a commit, a spec change or its next interval.
pub const FLUX_ACTS: Duration = Duration::from_secs(60);
/// Labels kustomize-controller puts on everything it applies (its ssa.Owner group + /name, /namespace).
pub const OWNER_NAME: &str = "kustomize.toolkit.fluxcd.io/name";
pub const OWNER_NAMESPACE: &str = "kustomize.toolkit.fluxcd.io/namespace";
/// The field manager kustomize-controller applies with (server-side apply, force).
pub const FLUX_MANAGER: &str = "kustomize-controller";

pub fn git_repositories(client: &Client, namespace: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("source.toolkit.fluxcd.io", "v1", "GitRepository");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "gitrepositories");
    Api::namespaced_with(client.clone(), namespace, &resource)
}

pub fn kustomizations(client: &Client, namespace: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("kustomize.toolkit.fluxcd.io", "v1", "Kustomization");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "kustomizations");
    Api::namespaced_with(client.clone(), namespace, &resource)
}

/// HelmReleases: only the CRD is installed (hack/cluster/flux.sh generates it; no helm-controller).
pub fn helm_releases(client: &Client, namespace: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("helm.toolkit.fluxcd.io", "v2", "HelmRelease");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "helmreleases");
    Api::namespaced_with(client.clone(), namespace, &resource)
}

/// Flux, with its CRDs, reconciling the repository a test commits to, in one namespace.
pub struct GitOps {
    // Fields drop in this order: the controllers go first, then the Git server, then its files.
    _flux: Flux,
    pub client: Client,
    pub namespace: String,
    pub git: GitServer,
    _scratch: Scratch,
}

impl GitOps {
    /// Installs the CRDs, starts the Git server (nothing committed yet) and both controllers.
    pub async fn start(client: &Client, namespace: &str) -> Self {
        let dir = flux_dir();
        install_flux_crds(client, &dir).await;
        let scratch = Scratch::new("git");
        let git = GitServer::start(&scratch.0, REPO).await;
        let flux = Flux::start(&dir, namespace).await;
        GitOps {
            client: client.clone(),
            namespace: namespace.to_owned(),
            git,
            _flux: flux,
            _scratch: scratch,
        }
    }

    /// The GitRepository `app` (branch main, every INTERVAL) and a Kustomization `name` applying
    /// `path` of it into the test namespace, every INTERVAL, prune off, no health checks.
    /// Commit something first: the GitRepository is not Ready while the branch has no commit.
    pub async fn kustomization(&self, name: &str, path: &str) {
        let params = PatchParams::apply("incident-e2e").force();
        let seconds = format!("{}s", INTERVAL.as_secs());
        let source = json!({
            "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
            "metadata": { "name": SOURCE },
            "spec": { "url": self.git.url(REPO), "interval": seconds, "ref": { "branch": "main" } }
        });
        git_repositories(&self.client, &self.namespace)
            .patch(SOURCE, &params, &Patch::Apply(&source))
            .await
            .expect("apply the GitRepository");
        let kustomization = self.kustomization_manifest(name, path);
        kustomizations(&self.client, &self.namespace)
            .patch(name, &params, &Patch::Apply(&kustomization))
            .await
            .expect("apply the Kustomization");
    }

    /// The Kustomization [`GitOps::kustomization`] applies, as a manifest (to commit one to Git).
    pub fn kustomization_manifest(&self, name: &str, path: &str) -> Value {
        json!({
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
            "metadata": { "name": name },
            "spec": {
                "interval": format!("{}s", INTERVAL.as_secs()), "path": path, "prune": false,
                "targetNamespace": self.namespace,
                "sourceRef": { "kind": "GitRepository", "name": SOURCE },
            }
        })
    }

    /// Waits until the GitRepository has fetched `commit` and the Kustomization `name` reports it
    /// applied (Ready, lastAppliedRevision `main@sha1:<commit>`, its latest generation observed).
    pub async fn wait_applied(&self, name: &str, commit: &str) -> DynamicObject {
        let revision = format!("main@sha1:{commit}");
        wait_for(
            &git_repositories(&self.client, &self.namespace),
            SOURCE,
            &format!("GitRepository artifact at {revision}"),
            FLUX_ACTS,
            |g| g.is_some_and(|g| g.data["status"]["artifact"]["revision"] == revision.as_str()),
        )
        .await;
        wait_for(
            &kustomizations(&self.client, &self.namespace),
            name,
            &format!("Kustomization {name} applied {revision}"),
            FLUX_ACTS,
            |k| {
                k.is_some_and(|k| {
                    ready(k) && k.data["status"]["lastAppliedRevision"] == revision.as_str()
                })
            },
        )
        .await
        .expect("the Kustomization exists")
    }

    /// The story every GitOps test starts from: `app` v1 and the witness Deployment committed and
    /// applied by the Kustomizations `app` (./app) and `witness` (./witness), v1 rolled out; then
    /// the broken `app` v2 (image V2, kwok's crashloop fault) committed and applied. Returns v1.
    pub async fn good_then_broken(&self) -> Deployment {
        use crate::remediation::{ROLLOUT, deployment, rolled_out};
        let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), &self.namespace);
        let v1 = deployment("app", &[V1], None);
        let witness = deployment("witness", &[WITNESS], None);
        let first = self.git.commit(
            "app v1",
            &[
                ("app/deployment.yaml", &manifest(&v1)),
                ("witness/deployment.yaml", &manifest(&witness)),
            ],
        );
        self.kustomization("app", "./app").await;
        self.kustomization("witness", "./witness").await;
        self.wait_applied("app", &first).await;
        self.wait_applied("witness", &first).await;
        wait_for(&deployments, "app", "v1 rolled out", ROLLOUT, |d| {
            d.is_some_and(rolled_out)
        })
        .await;
        let v2 = deployment("app", &[V2], Some("crashloop"));
        let second = self
            .git
            .commit("app v2", &[("app/deployment.yaml", &manifest(&v2))]);
        self.wait_applied("app", &second).await;
        wait_for(&deployments, "app", "v2 applied", FLUX_ACTS, |d| {
            images_are(d, V2)
        })
        .await;
        v1
    }

    /// Requests a reconcile of the Kustomization `name` as `flux reconcile` does (the annotation
    /// `reconcile.fluxcd.io/requestedAt`) and waits until the controller has handled it
    /// (`status.lastHandledReconcileAt`). Reconciles of one object never overlap, so afterwards no
    /// reconcile that started before the request is still running: what the cluster looked like
    /// when it was asked is what Flux has seen.
    pub async fn reconcile_now(&self, name: &str) {
        let requested = format!("{:?}", std::time::SystemTime::now());
        let api = kustomizations(&self.client, &self.namespace);
        let annotation = json!({ "metadata": { "annotations": {
            "reconcile.fluxcd.io/requestedAt": requested } } });
        api.patch(name, &PatchParams::default(), &Patch::Merge(annotation))
            .await
            .expect("request a reconcile");
        wait_for(&api, name, "requested reconcile handled", FLUX_ACTS, |k| {
            k.is_some_and(|k| k.data["status"]["lastHandledReconcileAt"] == requested.as_str())
        })
        .await;
    }

    /// Sets the Kustomization's `spec.suspend` as `flux suspend` / `flux resume` do, and waits
    /// until kustomize-controller has handled that generation (it records observedGeneration
    /// even for a suspended object).
    pub async fn suspend(&self, name: &str, suspend: bool) -> DynamicObject {
        let api = kustomizations(&self.client, &self.namespace);
        let patched = api
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "spec": { "suspend": suspend } })),
            )
            .await
            .expect("patch spec.suspend");
        let generation = patched.metadata.generation;
        wait_for(&api, name, "suspend handled", FLUX_ACTS, |k| {
            k.is_some_and(|k| {
                k.data["status"]["observedGeneration"].as_i64() == generation
                    && k.data["spec"]["suspend"] == suspend
            })
        })
        .await
        .expect("the Kustomization exists")
    }
}

/// Ready=True for the Kustomization's latest generation.
pub fn ready(k: &DynamicObject) -> bool {
    let status = &k.data["status"];
    status["observedGeneration"].as_i64() == k.metadata.generation
        && status["conditions"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// A Deployment as a manifest in Git: YAML, without status or namespace (Flux sets targetNamespace).
pub fn manifest(deployment: &Deployment) -> String {
    let mut value = serde_json::to_value(deployment).expect("serialize a Deployment");
    if let Value::Object(map) = &mut value {
        map.remove("status");
    }
    serde_yaml_ng::to_string(&value).expect("Deployment as YAML")
}

pub const V1: &str = "registry.local/app:1";
pub const V2: &str = "registry.local/app:2";
pub const WITNESS: &str = "registry.local/witness:1";

/// Whether `manager`'s managedFields entry on `d` owns the first container's image; and its operation.
pub fn image_owner(d: &Deployment, manager: &str) -> Option<String> {
    d.metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|e| e.manager.as_deref() == Some(manager))
        .find(|e| {
            e.fields_v1.as_ref().is_some_and(|f| {
                !f.0["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"c0\"}"]
                    ["f:image"]
                    .is_null()
            })
        })
        .map(|e| e.operation.clone().unwrap_or_default())
}

/// A rollback as the operator sends one: the old template back, under the operator's field manager.
pub async fn roll_back_by_hand(api: &Api<Deployment>, name: &str, to: &Deployment) {
    let template = serde_json::to_value(&to.spec.template).expect("serialize a template");
    let patch: json_patch::Patch = serde_json::from_value(
        json!([{ "op": "replace", "path": "/spec/template", "value": template }]),
    )
    .expect("a JSON patch");
    let params = PatchParams {
        field_manager: Some(incident_operator::api::metadata::REMEDIATION_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    api.patch(name, &params, &Patch::<()>::Json(patch))
        .await
        .expect("roll the Deployment back by hand");
}

pub fn images_are(d: Option<&Deployment>, want: &str) -> bool {
    d.is_some_and(|d| crate::remediation::images(d) == [want] && crate::remediation::observed(d))
}

/// Drifts the witness Deployment (applied by the Kustomization `witness`, never suspended) four
/// times, each time waiting until Flux puts it back: four reconciles of an active Kustomization,
/// so at least three intervals. After each, `check` sees the Deployment `name`. The time it took.
pub async fn outlast_intervals(
    api: &Api<Deployment>,
    name: &str,
    check: impl Fn(&Deployment),
) -> Duration {
    let from = Instant::now();
    for round in 1..=4 {
        let mut drifted = crate::remediation::deployment("witness", &[WITNESS], None);
        if let Some(pod) = drifted.spec.template.spec.as_mut() {
            pod.containers[0].image = Some(format!("registry.local/witness:drift-{round}"));
        }
        roll_back_by_hand(api, "witness", &drifted).await;
        wait_for(
            api,
            "witness",
            "Flux puts the witness back",
            FLUX_ACTS,
            |d| images_are(d, WITNESS),
        )
        .await;
        check(&api.get(name).await.expect("read the Deployment"));
    }
    let took = from.elapsed();
    assert!(
        took >= INTERVAL * 27 / 10,
        "four reconciles of an active Kustomization span three intervals (less 5% jitter each): {took:?}"
    );
    took
}

/// The problem issue 18 solves, shown with the real Flux: a rollback made in the cluster is undone
/// at Flux's next interval, and stays only while the Kustomization is suspended. Also the facts
/// the operator builds on: the labels and field manager Flux applies with, what suspend does.
#[tokio::test]
async fn flux_puts_a_manual_rollback_back_within_its_interval() {
    use crate::remediation::{ROLLOUT, rolled_out};
    use crate::support::{TestNamespace, client};

    let client = client().await;
    let ns = TestNamespace::new(&client, "flux").await;
    let gitops = GitOps::start(&client, &ns.name).await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);

    let v1 = gitops.good_then_broken().await;
    // What marks a Flux-applied object, and whose it is.
    let applied = deployments.get("app").await.expect("read the Deployment");
    assert_eq!(
        applied.labels().get(OWNER_NAME).map(String::as_str),
        Some("app")
    );
    assert_eq!(applied.labels().get(OWNER_NAMESPACE), Some(&ns.name));
    assert_eq!(
        image_owner(&applied, FLUX_MANAGER).as_deref(),
        Some("Apply"),
        "kustomize-controller owns the image through server-side apply: {:#?}",
        applied.metadata.managed_fields
    );
    // Which Kustomization manages a workload is also in its inventory: `<namespace>_<name>_<group>_<Kind>`.
    let owner = kustomizations(&client, &ns.name)
        .get("app")
        .await
        .expect("read the Kustomization");
    assert_eq!(
        owner.data["status"]["inventory"]["entries"],
        json!([{ "id": format!("{}_app_apps_Deployment", ns.name), "v": "v1" }]),
        "the Kustomization's inventory"
    );

    // A rollback in the cluster is put back by Flux at its next interval.
    roll_back_by_hand(&deployments, "app", &v1).await;
    let rolled_back_at = Instant::now();
    let reverted = wait_for(&deployments, "app", "Flux puts v2 back", FLUX_ACTS, |d| {
        images_are(d, V2)
    })
    .await
    .expect("the Deployment exists");
    eprintln!(
        "Flux reverted the rollback after {:?} (interval {INTERVAL:?})",
        rolled_back_at.elapsed()
    );
    assert_eq!(
        image_owner(&reverted, FLUX_MANAGER).as_deref(),
        Some("Apply")
    );
    let remediation = incident_operator::api::metadata::REMEDIATION_MANAGER;
    assert_eq!(
        image_owner(&reverted, remediation),
        None,
        "Flux's forced apply took the image back from {remediation}"
    );
    assert_eq!(
        reverted
            .spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.as_ref())
            .and_then(|l| l.get("incident.dev/fault"))
            .map(String::as_str),
        Some("crashloop"),
        "the whole broken template is back"
    );

    // Suspended, the same rollback stays. Ready stays True: only spec.suspend tells.
    let suspended = gitops.suspend("app", true).await;
    assert!(
        ready(&suspended),
        "a suspended Kustomization still reports Ready"
    );
    roll_back_by_hand(&deployments, "app", &v1).await;
    let kept = wait_for(&deployments, "app", "rolled back", FLUX_ACTS, |d| {
        images_are(d, V1)
    })
    .await
    .expect("the Deployment exists");
    let generation = kept.metadata.generation;
    let unchanged = |now: &Deployment| {
        assert_eq!(crate::remediation::images(now), [V1], "the rollback stays");
        assert_eq!(
            now.metadata.generation, generation,
            "nothing wrote its spec"
        );
    };
    let watched = outlast_intervals(&deployments, "app", unchanged).await;
    eprintln!("the suspended Kustomization left the rollback alone for {watched:?}");
    // A reconcile requested by hand (`flux reconcile`'s annotation) is handled, and applies nothing.
    gitops.reconcile_now("app").await;
    unchanged(&deployments.get("app").await.expect("read the Deployment"));

    // Resumed while Git still says v2: Flux applies v2 again at once (the spec change triggers it).
    let resumed_at = Instant::now();
    gitops.suspend("app", false).await;
    wait_for(&deployments, "app", "v2 back on resume", FLUX_ACTS, |d| {
        images_are(d, V2)
    })
    .await;
    eprintln!("resuming re-applied v2 after {:?}", resumed_at.elapsed());

    // Reverting in Git is what ends it: Flux and the cluster agree on v1.
    let third = gitops
        .git
        .commit("revert app v2", &[("app/deployment.yaml", &manifest(&v1))]);
    gitops.wait_applied("app", &third).await;
    wait_for(
        &deployments,
        "app",
        "v1 from Git rolled out",
        ROLLOUT,
        |d| d.is_some_and(|d| crate::remediation::images(d) == [V1] && rolled_out(d)),
    )
    .await;
    assert!(
        gitops.git.fetches() >= 3,
        "source-controller fetched from the test's Git server"
    );
}
