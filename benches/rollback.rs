//! Rollback latency, operator vs `kubectl rollout undo`, in one run on the local cluster.
//!
//!     make cluster && make bench-rollback        (ROUNDS=n to change the number of rounds)
//!
//! Each round builds twin Deployments with the same v1 → v2 → v3 (crash-looping) history in two
//! namespaces, then rolls one back through an Incident action and the other with kubectl, in
//! alternating order. It reports, per method, the time from the request (Incident created / kubectl
//! started) to the Deployment carrying v2's template, and to the rollout being complete.

use std::{path::PathBuf, process::Stdio, time::Instant};

use k8s_openapi::api::{apps::v1::Deployment, core::v1::Namespace};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, Patch, PatchParams, PostParams},
    runtime::wait::await_condition,
};
use serde_json::{Value, json};
use tokio::process::Command;

mod common;
use common::{Result, TIMEOUT, connect, install_crds, kubeconfig_path, ms};

#[tokio::main]
async fn main() -> Result<()> {
    // `cargo test --all-targets` runs bench targets too; only `cargo bench` passes --bench.
    if !std::env::args().any(|a| a == "--bench") {
        println!("rollback benchmark: run it with `make bench-rollback`");
        return Ok(());
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let kubeconfig = kubeconfig_path();
    let kubectl = kubectl_path(&root)?;
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(10);
    let client = connect(&kubeconfig).await?;
    install_crds(&client).await?;

    let ns_operator = namespace(&client, "bench-operator").await?;
    let ns_kubectl = namespace(&client, "bench-kubectl").await?;
    let mut operator = Command::new(env!("CARGO_BIN_EXE_incident-operator"))
        .args([
            "run",
            "--http-addr",
            "127.0.0.1:0",
            "--namespace",
            &ns_operator,
        ])
        .env("KUBECONFIG", &kubeconfig)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;

    let mut operator_patched = Vec::new();
    let mut operator_complete = Vec::new();
    let mut kubectl_patched = Vec::new();
    let mut kubectl_complete = Vec::new();
    for round in 0..rounds {
        let name = format!("web-{round}");
        let (a, b) = tokio::join!(
            history(&client, &ns_operator, &name),
            history(&client, &ns_kubectl, &name)
        );
        a?;
        b?;
        let by_operator = async {
            let (p, c) = rollback_by_operator(&client, &ns_operator, &name).await?;
            operator_patched.push(p);
            operator_complete.push(c);
            Result::Ok(())
        };
        let by_kubectl = async {
            let (p, c) =
                rollback_by_kubectl(&client, &kubectl, &kubeconfig, &ns_kubectl, &name).await?;
            kubectl_patched.push(p);
            kubectl_complete.push(c);
            Result::Ok(())
        };
        // Alternate which goes first so neither always meets a quieter machine.
        if round % 2 == 0 {
            by_operator.await?;
            by_kubectl.await?;
        } else {
            by_kubectl.await?;
            by_operator.await?;
        }
        eprintln!("round {}/{rounds} done", round + 1);
    }
    operator.kill().await?;
    for ns in [&ns_operator, &ns_kubectl] {
        let _ = Api::<Namespace>::all(client.clone())
            .delete(ns, &DeleteParams::background())
            .await;
    }

    let (op_p, op_c) = (
        median(&mut operator_patched),
        median(&mut operator_complete),
    );
    let (kc_p, kc_c) = (median(&mut kubectl_patched), median(&mut kubectl_complete));
    println!("rollback latency, median of {rounds} rounds (ms)\n");
    println!("| | request → Deployment patched | request → rollout complete |");
    println!("|---|---|---|");
    println!("| incident-operator | {op_p:.0} | {op_c:.0} |");
    println!("| kubectl rollout undo | {kc_p:.0} | {kc_c:.0} |");
    println!(
        "| ratio (operator / kubectl) | {:.2} | {:.2} |",
        op_p / kc_p,
        op_c / kc_c
    );
    Ok(())
}

fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    match samples.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => samples[n / 2],
        n => (samples[n / 2 - 1] + samples[n / 2]) / 2.0,
    }
}

fn kubectl_path(root: &std::path::Path) -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("INCIDENT_KUBECTL") {
        return Ok(PathBuf::from(path));
    }
    let versions = std::fs::read_to_string(root.join("hack/cluster/versions.env"))?;
    let get = |key: &str| {
        versions
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .map(str::to_owned)
            .ok_or_else(|| format!("{key} missing from versions.env"))
    };
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .ok_or("no HOME")?;
    Ok(cache.join(format!(
        "incident-operator/k8s-{}_etcd-{}_kwok-{}/bin/kubectl",
        get("KUBERNETES_VERSION")?,
        get("ETCD_VERSION")?,
        get("KWOK_VERSION")?
    )))
}

async fn namespace(client: &Client, prefix: &str) -> Result<String> {
    let mut ns = Namespace::default();
    ns.metadata.generate_name = Some(format!("{prefix}-"));
    let created = Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    let name = created.name_any();
    let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::namespaced(client.clone(), &name);
    tokio::time::timeout(
        TIMEOUT,
        await_condition(accounts, "default", |sa: Option<&_>| sa.is_some()),
    )
    .await??;
    Ok(name)
}

fn template(name: &str, version: u32, fault: bool) -> Value {
    let mut labels = json!({ "app": name, "incident.dev/fault": null });
    if fault {
        labels["incident.dev/fault"] = json!("crashloop");
    }
    json!({ "metadata": { "labels": labels },
            "spec": { "containers": [{ "name": "app", "image": format!("registry.local/{name}:{version}") }] } })
}

fn image(d: &Deployment) -> Option<String> {
    d.spec
        .template
        .spec
        .as_ref()?
        .containers
        .first()?
        .image
        .clone()
}

fn complete(d: &Deployment) -> bool {
    let Some(s) = &d.status else { return false };
    let desired = d.spec.replicas.unwrap_or(1);
    s.observed_generation == d.metadata.generation
        && s.updated_replicas == Some(desired)
        && s.available_replicas == Some(desired)
        && s.replicas == Some(desired)
        && s.unavailable_replicas.unwrap_or(0) == 0
}

async fn wait(
    api: &Api<Deployment>,
    name: &str,
    check: impl Fn(&Deployment) -> bool,
) -> Result<()> {
    let found = await_condition(api.clone(), name, move |d: Option<&Deployment>| {
        d.is_some_and(&check)
    });
    tokio::time::timeout(TIMEOUT, found).await??;
    Ok(())
}

/// v1 → v2 (healthy) → v3 (crash-looping), like a bad deploy.
async fn history(client: &Client, ns: &str, name: &str) -> Result<()> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let mut first = template(name, 1, false);
    if let Some(labels) = first
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove("incident.dev/fault");
    }
    let deployment: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": { "name": name },
        "spec": { "replicas": 3, "selector": { "matchLabels": { "app": name } }, "template": first },
    }))?;
    api.create(&PostParams::default(), &deployment).await?;
    wait(&api, name, complete).await?;
    for (version, fault) in [(2, false), (3, true)] {
        let patch = json!({ "spec": { "template": template(name, version, fault) } });
        api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        let want = format!("registry.local/{name}:{version}");
        wait(&api, name, move |d| {
            image(d).as_deref() == Some(want.as_str())
                && d.status.as_ref().and_then(|s| s.observed_generation) == d.metadata.generation
        })
        .await?;
    }
    Ok(())
}

fn is_v2(name: &str) -> impl Fn(&Deployment) -> bool + use<> {
    let want = format!("registry.local/{name}:2");
    move |d| image(d).as_deref() == Some(want.as_str())
}

/// Milliseconds from the Incident's creation to v2's template, and to a complete rollout.
async fn rollback_by_operator(client: &Client, ns: &str, name: &str) -> Result<(f64, f64)> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let incidents: Api<kube::api::DynamicObject> = Api::namespaced_with(
        client.clone(),
        ns,
        &kube::api::ApiResource::erase::<incident_operator::api::Incident>(&()),
    );
    let incident: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "incident.dev/v1alpha1", "kind": "Incident", "metadata": { "name": name },
        "spec": { "title": "bad deploy", "severity": "P1",
                  "actions": [{ "name": "undo", "rollback": { "deployment": name } }] },
    }))?;
    let start = Instant::now();
    incidents.create(&PostParams::default(), &incident).await?;
    wait(&deployments, name, is_v2(name)).await?;
    let patched = start.elapsed();
    wait(&deployments, name, complete).await?;
    Ok((ms(patched), ms(start.elapsed())))
}

/// Milliseconds from starting `kubectl rollout undo` to v2's template, and to a complete rollout.
async fn rollback_by_kubectl(
    client: &Client,
    kubectl: &std::path::Path,
    kubeconfig: &std::path::Path,
    ns: &str,
    name: &str,
) -> Result<(f64, f64)> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let start = Instant::now();
    let output = Command::new(kubectl)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["-n", ns, "rollout", "undo", &format!("deployment/{name}")])
        .output()
        .await?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned().into());
    }
    wait(&deployments, name, is_v2(name)).await?;
    let patched = start.elapsed();
    wait(&deployments, name, complete).await?;
    Ok((ms(patched), ms(start.elapsed())))
}
