//! The Flux processes for tests/e2e/flux.rs: the binaries hack/cluster/flux.sh builds, their
//! CRDs, and source-controller and kustomize-controller started for one namespace.

use std::{
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use kube::{
    Client, ResourceExt,
    api::{ListParams, Patch, PatchParams},
};
use serde_json::json;
use tokio::process::{Child, Command};

use crate::{
    alertmanager::Scratch,
    flux::{git_repositories, kustomizations},
    support::{cleanup, free_addr, get, kubeconfig_path},
};

/// The directory hack/cluster/flux.sh fills: the two controllers and crds/. INCIDENT_E2E_FLUX
/// when set (as `make test` does), else the script's answer (it builds on a cold cache).
pub fn flux_dir() -> PathBuf {
    let how = "the GitOps tests need Flux's controllers: run `make flux-build` and set \
               INCIDENT_E2E_FLUX to the directory it prints, or run `make test`";
    let dir = match std::env::var_os("INCIDENT_E2E_FLUX") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/hack/cluster/flux.sh");
            let output = std::process::Command::new(script)
                .stderr(Stdio::inherit())
                .output()
                .unwrap_or_else(|e| panic!("run {script}: {e}; {how}"));
            assert!(output.status.success(), "{script} failed; {how}");
            PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
        }
    };
    for name in ["source-controller", "kustomize-controller"] {
        assert!(
            dir.join(name).is_file(),
            "no {name} in {}; {how}",
            dir.display()
        );
    }
    dir
}

/// Server-side applies every CRD under `dir`/crds and waits until each is Established.
pub async fn install_flux_crds(client: &Client, dir: &std::path::Path) {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("crds"))
        .expect("read the Flux CRD directory")
        .flat_map(|d| std::fs::read_dir(d.expect("a CRD directory").path()).expect("CRDs"))
        .map(|f| f.expect("a CRD file").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no Flux CRDs under {}", dir.display());
    crate::support::apply_crd_files(client, &files).await;
}

/// source-controller and kustomize-controller for one namespace. Dropping it kills both and
/// removes Flux's finalizers from the namespace's Flux objects (no controller is left to do it,
/// and the namespace could not be deleted); their logs are printed if the test is failing.
pub struct Flux {
    namespace: String,
    children: Vec<(&'static str, Child)>,
    scratch: Scratch,
}

impl Flux {
    pub async fn start(dir: &std::path::Path, namespace: &str) -> Self {
        let scratch = Scratch::new("flux");
        // source-controller refuses to start unless its storage directory exists.
        std::fs::create_dir_all(scratch.0.join("storage")).expect("make the artifact storage");
        let storage = free_addr();
        let mut children = Vec::new();
        for name in ["source-controller", "kustomize-controller"] {
            let health = free_addr();
            // Each its own TMPDIR: source-controller moves aside whatever another process left in
            // $TMPDIR/source-controller at startup, which would break a parallel test's clones.
            let tmp = scratch.0.join(format!("{name}-tmp"));
            std::fs::create_dir_all(&tmp).expect("make a TMPDIR");
            let log = std::fs::File::create(scratch.0.join(format!("{name}.log"))).expect("log");
            let mut command = Command::new(dir.join(name));
            command
                .arg("--watch-all-namespaces=false")
                .arg(format!("--metrics-addr={}", free_addr()))
                .arg(format!("--health-addr={health}"))
                .arg("--enable-leader-election=false")
                .arg("--log-encoding=console")
                .env("RUNTIME_NAMESPACE", namespace)
                .env("KUBECONFIG", kubeconfig_path())
                .env("TMPDIR", &tmp)
                .stdout(log.try_clone().expect("log"))
                .stderr(log)
                .kill_on_drop(true);
            if name == "source-controller" {
                command
                    .arg(format!(
                        "--storage-path={}",
                        scratch.0.join("storage").display()
                    ))
                    .arg(format!("--storage-addr={storage}"))
                    .arg(format!("--storage-adv-addr={storage}"));
            }
            let mut child = command
                .spawn()
                .unwrap_or_else(|e| panic!("start {}: {e}", dir.join(name).display()));
            let deadline = Instant::now() + Duration::from_secs(60);
            while !matches!(get(health, "/readyz").await, Ok((200, _))) {
                let exited = child.try_wait().expect("check on the controller");
                if exited.is_some() || Instant::now() >= deadline {
                    panic!(
                        "{name} did not get ready on {health} within 60s ({exited:?}); its log:\n{}",
                        log_tail(&scratch, name)
                    );
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            children.push((name, child));
        }
        Flux {
            namespace: namespace.to_owned(),
            children,
            scratch,
        }
    }
}

impl Drop for Flux {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.start_kill();
        }
        // SIGKILL is immediate, but wait (bounded) until the processes are gone before taking
        // their finalizers away, or one could put a finalizer back.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline
            && self
                .children
                .iter_mut()
                .any(|(_, c)| matches!(c.try_wait(), Ok(None)))
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        if std::thread::panicking() {
            for (name, _) in &self.children {
                eprintln!(
                    "---- last lines of {name}'s log ----\n{}",
                    log_tail(&self.scratch, name)
                );
            }
        }
        let namespace = self.namespace.clone();
        cleanup("Flux finalizers", move |client| async move {
            let unfinalize = json!({ "metadata": { "finalizers": null } });
            for api in [
                git_repositories(&client, &namespace),
                kustomizations(&client, &namespace),
            ] {
                for object in api.list(&ListParams::default()).await? {
                    api.patch(
                        &object.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(&unfinalize),
                    )
                    .await?;
                }
            }
            Ok(())
        });
    }
}

/// The last 40 lines of a controller's log.
fn log_tail(scratch: &Scratch, name: &str) -> String {
    let log = std::fs::read_to_string(scratch.0.join(format!("{name}.log"))).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
