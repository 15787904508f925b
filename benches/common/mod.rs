//! Cluster plumbing both benchmarks share: the kubeconfig, the connection and the CRDs.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api, Client, ResourceExt,
    api::{Patch, PatchParams},
    config::{KubeConfigOptions, Kubeconfig},
    runtime::wait::await_condition,
};

pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Longest wait for any one thing the cluster does for a benchmark.
pub const TIMEOUT: Duration = Duration::from_secs(120);

/// The kubeconfig `make cluster` writes, unless INCIDENT_E2E_KUBECONFIG points elsewhere.
pub fn kubeconfig_path() -> PathBuf {
    std::env::var_os("INCIDENT_E2E_KUBECONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".cluster/kubeconfig"))
}

/// A client for the cluster behind `kubeconfig`, or how to start one.
pub async fn connect(kubeconfig: &Path) -> Result<Client> {
    let config = kube::Config::from_custom_kubeconfig(
        Kubeconfig::read_from(kubeconfig)
            .map_err(|e| format!("{e}: start the cluster with `make cluster`"))?,
        &KubeConfigOptions::default(),
    )
    .await?;
    Ok(Client::try_from(config)?)
}

/// Applies every CRD the operator defines (it watches all its kinds) and waits until each is served.
pub async fn install_crds(client: &Client) -> Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for (_, yaml) in incident_operator::api::crd_files()? {
        let crd: CustomResourceDefinition = serde_yaml_ng::from_str(&yaml)?;
        let name = crd.name_any();
        api.patch(
            &name,
            &PatchParams::apply("incident-bench").force(),
            &Patch::Apply(&crd),
        )
        .await?;
        let established = await_condition(
            api.clone(),
            &name,
            |c: Option<&CustomResourceDefinition>| {
                c.and_then(|c| c.status.as_ref())
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| {
                        cs.iter()
                            .any(|c| c.type_ == "Established" && c.status == "True")
                    })
            },
        );
        tokio::time::timeout(TIMEOUT, established).await??;
    }
    Ok(())
}

/// A duration in (fractional) milliseconds, as the benchmarks report them.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
