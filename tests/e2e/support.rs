//! Shared e2e plumbing: the cluster connection, a namespace per test, and waiting for conditions
//! through watches with a deadline (never a fixed sleep).

use std::{fmt::Debug, path::PathBuf, time::Duration};

use futures::{FutureExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{DeleteParams, PostParams},
    config::{KubeConfigOptions, Kubeconfig},
};
use kube_runtime::{WatchStreamExt, reflector, wait::await_condition, watcher};
use serde::de::DeserializeOwned;

/// The kubeconfig `make cluster` writes, unless INCIDENT_E2E_KUBECONFIG points elsewhere.
pub fn kubeconfig_path() -> PathBuf {
    std::env::var_os("INCIDENT_E2E_KUBECONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".cluster/kubeconfig"))
}

/// Connects to the cluster behind `path` and checks that it answers, or says how to start one.
pub async fn try_connect(path: &std::path::Path) -> Result<Client, String> {
    let how = "Start the local cluster with `make cluster` and rerun `cargo test`, \
               or run everything with `make test`.";
    let kubeconfig = Kubeconfig::read_from(path).map_err(|e| {
        format!(
            "e2e cluster not found: cannot read kubeconfig {}: {e}. {how}",
            path.display()
        )
    })?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| {
            format!(
                "e2e cluster kubeconfig {} is unusable: {e}. {how}",
                path.display()
            )
        })?;
    let url = config.cluster_url.clone();
    let client =
        Client::try_from(config).map_err(|e| format!("cannot build a client: {e}. {how}"))?;
    match tokio::time::timeout(Duration::from_secs(10), client.apiserver_version()).await {
        Ok(Ok(_)) => Ok(client),
        Ok(Err(e)) => Err(format!("e2e cluster at {url} is not reachable: {e}. {how}")),
        Err(_) => Err(format!(
            "e2e cluster at {url} did not answer within 10s. {how}"
        )),
    }
}

/// A client for the e2e cluster; fails the test with instructions when there is none.
pub async fn client() -> Client {
    match try_connect(&kubeconfig_path()).await {
        Ok(client) => client,
        Err(message) => panic!("{message}"),
    }
}

/// A namespace owned by one test, deleted when the test ends (pass or fail).
pub struct TestNamespace {
    pub name: String,
}

impl TestNamespace {
    pub async fn new(client: &Client, prefix: &str) -> Self {
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let mut namespace = Namespace::default();
        namespace.metadata.generate_name = Some(format!("e2e-{prefix}-"));
        namespace
            .labels_mut()
            .insert("incident.dev/e2e".into(), "true".into());
        let created = namespaces
            .create(&PostParams::default(), &namespace)
            .await
            .expect("create test namespace");
        let name = created.name_any();
        // Pods are refused until kube-controller-manager has made the default ServiceAccount.
        let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &name);
        wait_for(
            &accounts,
            "default",
            "default ServiceAccount",
            Duration::from_secs(60),
            |sa| sa.is_some(),
        )
        .await;
        Self { name }
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let name = self.name.clone();
        cleanup("test namespace", move |client| async move {
            Api::<Namespace>::all(client)
                .delete(&name, &DeleteParams::background())
                .await
                .map(|_| ())
        });
    }
}

/// Runs a cleanup from `Drop`, where nothing can be awaited and the test's own runtime (and any
/// client bound to it) may be blocked: a fresh thread, runtime and client do the work.
pub fn cleanup<F, Fut>(what: &str, work: F)
where
    F: FnOnce(Client) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<(), kube::Error>>,
{
    let outcome = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(async {
            let client = try_connect(&kubeconfig_path()).await?;
            work(client).await.map_err(|e| e.to_string())
        })
    })
    .join();
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(error)) => eprintln!("warning: cleanup of {what} failed: {error}"),
        Err(_) => eprintln!("warning: cleanup of {what} panicked"),
    }
}

/// Waits until the named object satisfies `condition` (which also sees absence as `None`),
/// following its watch events; panics with `what` and the last state on timeout.
pub async fn wait_for<K>(
    api: &Api<K>,
    name: &str,
    what: &str,
    timeout: Duration,
    condition: impl Fn(Option<&K>) -> bool,
) -> Option<K>
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + 'static,
{
    match tokio::time::timeout(timeout, await_condition(api.clone(), name, condition)).await {
        Ok(Ok(object)) => object,
        Ok(Err(error)) => panic!("watching {name} for `{what}` failed: {error}"),
        Err(_) => {
            let last = api.get_opt(name).await;
            panic!("timed out after {timeout:?} waiting for {name}: {what}\nlast state: {last:#?}")
        }
    }
}

/// Waits until the objects matching `labels` satisfy `condition`, following watch events;
/// returns them, or panics with `what` and the last state on timeout.
pub async fn wait_for_all<K>(
    api: &Api<K>,
    labels: &str,
    what: &str,
    timeout: Duration,
    condition: impl Fn(&[K]) -> bool,
) -> Vec<K>
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = reflector(
        writer,
        watcher(api.clone(), watcher::Config::default().labels(labels)),
    )
    .default_backoff();
    let mut stream = std::pin::pin!(stream);
    let snapshot = |reader: &reflector::Store<K>| -> Vec<K> {
        let mut objects: Vec<K> = reader.state().iter().map(|o| (**o).clone()).collect();
        objects.sort_by_key(|o| o.name_any());
        objects
    };
    let found = tokio::time::timeout(timeout, async {
        while let Some(event) = stream.try_next().await.transpose() {
            if let Err(error) = event {
                eprintln!("watch error while waiting for {what}: {error}");
                continue;
            }
            // Judge only complete snapshots: after the initial list, and on every later change.
            if reader.wait_until_ready().now_or_never().is_some() {
                let objects = snapshot(&reader);
                if condition(&objects) {
                    return Some(objects);
                }
            }
        }
        None
    })
    .await;
    match found {
        Ok(Some(objects)) => objects,
        Ok(None) => panic!("watch for {what} ended unexpectedly"),
        Err(_) => panic!(
            "timed out after {timeout:?} waiting for {what} ({labels})\nlast state: {:#?}",
            snapshot(&reader)
        ),
    }
}
