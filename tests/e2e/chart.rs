//! The Helm chart against the real API server: `helm install` (the helm `hack/cluster/build.sh`
//! builds) puts every object of charts/incident-operator into a fresh namespace and the API server
//! accepts them all. This file holds the helm plumbing the chart tests share and the custom value
//! set; `chart_operator` runs the operator as the chart's ServiceAccount.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{Namespace, ServiceAccount},
    networking::v1::NetworkPolicy,
    policy::v1::PodDisruptionBudget,
    rbac::v1::{ClusterRole, Role},
};
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};
use serde_json::json;

use crate::support::{TestNamespace, client, kubeconfig_path};

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/incident-operator");

/// The cache bin directory `hack/cluster/build.sh` fills, found like `hack/cluster/lib.sh` does.
fn cluster_bin(tool: &str) -> PathBuf {
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
    cache
        .join("incident-operator")
        .join(format!(
            "k8s-{}_etcd-{}_kwok-{}",
            version("KUBERNETES_VERSION"),
            version("ETCD_VERSION"),
            version("KWOK_VERSION")
        ))
        .join("bin")
        .join(tool)
}

/// helm from the cluster cache (`INCIDENT_HELM` overrides).
pub fn helm_path() -> PathBuf {
    let path = std::env::var_os("INCIDENT_HELM")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| cluster_bin("helm"));
    assert!(
        path.is_file(),
        "helm not found at {}: build it with `make cluster-build`, or point INCIDENT_HELM at one",
        path.display()
    );
    path
}

/// Runs helm against the e2e cluster with its own empty configuration directories.
fn helm(home: &Path, args: &[&str]) -> Output {
    Command::new(helm_path())
        .args(args)
        .arg("--kubeconfig")
        .arg(kubeconfig_path())
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_DATA_HOME", home.join("data"))
        .stdin(Stdio::null())
        .output()
        .expect("run helm")
}

/// An installed release; uninstalled when dropped (its ClusterRole and binding are cluster-scoped, so
/// deleting the namespace alone would leave them behind).
pub struct Release {
    /// What `helm install` printed after NOTES:.
    pub notes: String,
    name: String,
    namespace: String,
    home: PathBuf,
    installed: bool,
}

impl Release {
    pub fn install(name: &str, namespace: &str, extra: &[&str]) -> Self {
        let home = std::env::temp_dir().join(format!("incident-e2e-helm-{name}"));
        let mut args = vec![
            "install",
            name,
            CHART,
            "--namespace",
            namespace,
            "--wait",
            "--timeout",
            "120s",
        ];
        // The chart's admission policies apply in the release's own namespace only: bound to every
        // namespace they would judge the other tests' writes too.
        let selector = format!(
            r#"admission.namespaceSelector={{"matchLabels":{{"kubernetes.io/metadata.name":"{namespace}"}}}}"#
        );
        args.extend(["--set-json", &selector]);
        args.extend_from_slice(extra);
        let out = helm(&home, &args);
        assert!(
            out.status.success(),
            "helm install failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("STATUS: deployed"),
            "helm install: {stdout}"
        );
        let notes = stdout
            .split_once("NOTES:")
            .map(|(_, notes)| notes.to_owned())
            .unwrap_or_else(|| panic!("NOTES.txt is shown: {stdout}"));
        Self {
            notes,
            name: name.to_owned(),
            namespace: namespace.to_owned(),
            home,
            installed: true,
        }
    }

    /// `helm install` that must fail: returns what helm said; asserts nothing was left behind.
    pub fn refused(name: &str, namespace: &str, extra: &[&str]) -> String {
        let home = std::env::temp_dir().join(format!("incident-e2e-helm-{name}"));
        let mut args = vec!["install", name, CHART, "--namespace", namespace];
        args.extend_from_slice(extra);
        let out = helm(&home, &args);
        let _ = std::fs::remove_dir_all(&home);
        assert!(!out.status.success(), "helm install succeeded");
        let listed = helm(
            &home,
            &["list", "--all", "--namespace", namespace, "--short"],
        );
        let _ = std::fs::remove_dir_all(&home);
        let releases = String::from_utf8_lossy(&listed.stdout).trim().to_owned();
        assert!(releases.is_empty(), "a failed release was left: {releases}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// `helm upgrade` of the release with `extra` arguments (e.g. `--reuse-values`), waiting for it.
    pub fn upgrade(&self, extra: &[&str]) {
        let mut args = vec![
            "upgrade",
            &self.name,
            CHART,
            "--namespace",
            &self.namespace,
            "--wait",
            "--timeout",
            "120s",
        ];
        args.extend_from_slice(extra);
        let out = helm(&self.home, &args);
        assert!(
            out.status.success(),
            "helm upgrade failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn uninstall(&mut self) {
        let out = helm(
            &self.home,
            &[
                "uninstall",
                &self.name,
                "--namespace",
                &self.namespace,
                "--wait",
            ],
        );
        self.installed = false;
        assert!(
            out.status.success(),
            "helm uninstall failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        if self.installed {
            let out = helm(
                &self.home,
                &["uninstall", &self.name, "--namespace", &self.namespace],
            );
            if !out.status.success() {
                eprintln!(
                    "warning: helm uninstall {} failed: {}",
                    self.name,
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

/// Pod Security Admission enforces the "restricted" standard in `namespace`: a pod that is not
/// non-root, seccomp RuntimeDefault, without privilege escalation and capabilities is refused.
pub async fn enforce_restricted(client: &Client, namespace: &str) {
    let patch = json!({ "metadata": { "labels": {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
    } } });
    Api::<Namespace>::all(client.clone())
        .patch(namespace, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("label the namespace restricted");
}

/// The non-default value set of the golden test (hack/chart/values-custom.yaml: one watched
/// namespace with a namespaced Role, one replica without leader election, NetworkPolicy, pinned
/// digest, configuration overrides) is accepted by the API server as well. Its ServiceMonitor is
/// left out: the local cluster has no Prometheus Operator CRDs.
#[tokio::test]
async fn the_custom_value_set_installs() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "chart-custom").await;
    let watched = TestNamespace::new(&client, "chart-watched").await;
    enforce_restricted(&client, &ns.name).await;
    let values = concat!(env!("CARGO_MANIFEST_DIR"), "/hack/chart/values-custom.yaml");
    let full = format!("{}-custom", ns.name);
    let fullname = format!("fullnameOverride={full}");
    let watch = format!("operator.watchNamespace={}", watched.name);
    let secrets = format!("notifications.secretNamespaces={{{}}}", watched.name);
    // The GitOps owners' namespaces: the watched one here (flux-system does not exist).
    let flux = format!("gitops.flux.namespaces={{{}}}", watched.name);
    let argocd = format!("gitops.argocd.namespace={}", watched.name);
    let rollouts = format!("argoRollouts.namespaces={{{}}}", watched.name);
    let mut release = Release::install(
        &ns.name,
        &ns.name,
        &[
            "-f",
            values,
            "--set",
            "serviceMonitor.enabled=false",
            "--set",
            &fullname,
            "--set",
            &watch,
            "--set",
            &secrets,
            "--set",
            &flux,
            "--set",
            &argocd,
            "--set",
            &rollouts,
        ],
    );
    // Opt-in GitOps rights: get and patch on the owners, get on their sources, in their namespace only.
    let gitops_role = Api::<Role>::namespaced(client.clone(), &watched.name)
        .get(&format!("{full}-gitops-flux"))
        .await
        .expect("the Flux owners' Role");
    let rules = gitops_role.rules.unwrap_or_default();
    let (sources, owners): (Vec<_>, Vec<_>) = rules.iter().partition(|r| {
        r.api_groups.as_deref() == Some(&["source.toolkit.fluxcd.io".to_owned()][..])
    });
    assert!(
        owners.iter().all(|r| r.verbs == ["get", "patch"]) && owners.len() == 2,
        "{rules:?}"
    );
    assert!(
        sources.len() == 1 && sources[0].verbs == ["get"],
        "sources are only read: {rules:?}"
    );
    Api::<ServiceAccount>::namespaced(client.clone(), &ns.name)
        .get("incident-bot")
        .await
        .expect("the named ServiceAccount");
    Api::<NetworkPolicy>::namespaced(client.clone(), &ns.name)
        .get(&full)
        .await
        .expect("NetworkPolicy");
    let role = Api::<Role>::namespaced(client.clone(), &watched.name)
        .get(&full)
        .await
        .expect("the namespaced Role in the watched namespace");
    assert!(!role.rules.unwrap_or_default().is_empty());
    // Channel Secrets: `get` of the named Secret in the listed namespace, nothing more.
    let secrets_role = Api::<Role>::namespaced(client.clone(), &watched.name)
        .get(&format!("{full}-channel-secrets"))
        .await
        .expect("the channel-secrets Role in the listed namespace");
    let rules = secrets_role.rules.unwrap_or_default();
    assert_eq!(rules.len(), 1);
    assert_eq!(
        rules[0].resources.as_deref(),
        Some(&["secrets".to_owned()][..])
    );
    assert_eq!(
        rules[0].resource_names.as_deref(),
        Some(&["pager-hook".to_owned()][..])
    );
    assert_eq!(rules[0].verbs, ["get"]);
    assert!(
        Api::<Role>::namespaced(client.clone(), &ns.name)
            .get_opt(&format!("{full}-channel-secrets"))
            .await
            .expect("get Role")
            .is_none(),
        "releaseNamespaceSecrets: false grants nothing in the release namespace"
    );
    // The ClusterRole keeps only the cluster-scoped kinds (and the trust policies, to report them).
    let cluster_role = Api::<ClusterRole>::all(client.clone())
        .get(&full)
        .await
        .expect("ClusterRole");
    let mut kinds: Vec<String> = cluster_role
        .rules
        .unwrap_or_default()
        .into_iter()
        .flat_map(|r| r.resources.unwrap_or_default())
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "namespaces",
            "nodes",
            "validatingadmissionpolicies",
            "validatingadmissionpolicybindings"
        ]
    );
    // One replica, no Lease permissions, no PodDisruptionBudget.
    assert!(
        Api::<Role>::namespaced(client.clone(), &ns.name)
            .get_opt(&format!("{full}-leader-election"))
            .await
            .expect("get Role")
            .is_none()
    );
    assert!(
        Api::<PodDisruptionBudget>::namespaced(client.clone(), &ns.name)
            .get_opt(&full)
            .await
            .expect("get PDB")
            .is_none()
    );
    release.uninstall();
}

/// A namespace-scoped install whose namespace does not exist is refused before anything is created,
/// naming the value and the fix (else the Role fails and the operator runs without rights).
#[tokio::test]
async fn a_namespace_scoped_install_of_a_missing_namespace_is_refused_with_the_fix() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "chart-missing").await;
    let said = Release::refused(
        "missing-ns",
        &ns.name,
        &["--set", "operator.watchNamespace=no-such-namespace"],
    );
    assert!(
        said.contains("operator.watchNamespace \"no-such-namespace\" does not exist")
            && said.contains("kubectl create namespace no-such-namespace"),
        "{said}"
    );
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let left = deployments.list(&Default::default()).await.expect("list");
    assert!(left.items.is_empty(), "nothing was created");
}
