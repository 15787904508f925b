//! Shared e2e plumbing: the cluster connection, a namespace per test, and waiting for conditions
//! through watches with a deadline (never a fixed sleep).

use std::{
    fmt::Debug,
    net::{SocketAddr, TcpListener},
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use futures::{FutureExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{DeleteParams, PostParams},
    config::{KubeConfigOptions, Kubeconfig},
};
use kube_runtime::{WatchStreamExt, reflector, wait::await_condition, watcher};
use serde::de::DeserializeOwned;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    process::{Child, Command},
};

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

// ---- the operator binary -------------------------------------------------------------------

pub const BINARY: &str = env!("CARGO_BIN_EXE_incident-operator");

/// A loopback address nothing listens on right now.
pub fn free_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address")
}

pub fn start(kubeconfig: &std::path::Path, addr: SocketAddr) -> Child {
    start_with(kubeconfig, addr, &[])
}

/// Starts the operator binary with `extra` flags after `run --http-addr <addr>`.
pub fn start_with(kubeconfig: &std::path::Path, addr: SocketAddr, extra: &[&str]) -> Child {
    start_with_env(kubeconfig, addr, extra, &[])
}

/// Like [`start_with`], with extra environment variables.
pub fn start_with_env(
    kubeconfig: &std::path::Path,
    addr: SocketAddr,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Child {
    Command::new(BINARY)
        .envs(env.iter().copied())
        .args(["run", "--http-addr", &addr.to_string()])
        .args(extra)
        .env("KUBECONFIG", kubeconfig)
        .env_remove("INCIDENT_KUBECONFIG")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start incident-operator")
}

/// The operator, running against the e2e cluster and watching one test namespace.
pub struct Operator {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Operator {
    /// Starts it for `namespace` with `extra` flags and waits until it is ready. Detection is off
    /// unless `extra` turns it on, so tests of other features see only their own incidents.
    pub async fn start(namespace: &str, extra: &[&str]) -> Self {
        Self::start_with_env(namespace, extra, &[]).await
    }

    /// Starts it with extra environment variables (e.g. a failpoint).
    pub async fn start_with_env(namespace: &str, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let addr = free_addr();
        let mut args = vec!["--namespace", namespace];
        if !extra.contains(&"--detection") {
            args.extend(["--detection", "false"]);
        }
        args.extend_from_slice(extra);
        let child = start_with_env(&kubeconfig_path(), addr, &args, env);
        await_status(addr, "/readyz", 200, Duration::from_secs(30)).await;
        Self { child, addr }
    }

    /// SIGTERM; asserts a clean exit within 5 s.
    pub async fn stop(self) {
        let status = terminate(self.child).await;
        assert_eq!(status.code(), Some(0), "clean exit on SIGTERM");
    }

    /// Waits for the process to end on its own (a failpoint aborting it); true if it failed.
    pub async fn exits_abnormally(mut self, timeout: Duration) -> bool {
        match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(status) => !status.expect("wait for operator").success(),
            Err(_) => panic!("the operator did not stop within {timeout:?}"),
        }
    }

    /// SIGKILL: the process gets no chance to finish anything.
    pub async fn kill(mut self) {
        self.child.kill().await.expect("SIGKILL the operator");
    }

    /// Waits until a sample in /metrics satisfies `check` (metrics trail the status they describe).
    pub async fn await_metric(&self, series: &str, check: impl Fn(Option<f64>) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let value = self.metric(series).await;
            if check(value) {
                return;
            }
            if Instant::now() >= deadline {
                let (_, text) = get(self.addr, "/metrics").await.expect("GET /metrics");
                panic!("{series} stayed at {value:?}; metrics:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The value of one sample in /metrics (`series` is the name with its labels, as exposed).
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let (_, text) = get(self.addr, "/metrics").await.expect("GET /metrics");
        text.lines().find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok()).flatten()
        })
    }
}

/// Installs (server-side applies) every CRD the operator defines and waits until each is served.
pub async fn install_crds(client: &Client) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{Patch, PatchParams};

    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for (file, yaml) in incident_operator::api::crd_files().expect("render CRDs") {
        let crd: CustomResourceDefinition =
            serde_yaml_ng::from_str(&yaml).unwrap_or_else(|e| panic!("{file} is not a CRD: {e}"));
        let name = crd.name_any();
        api.patch(
            &name,
            &PatchParams::apply("incident-e2e").force(),
            &Patch::Apply(&crd),
        )
        .await
        .expect("apply CRD");
        wait_for(
            &api,
            &name,
            "CRD Established",
            Duration::from_secs(30),
            |crd| {
                crd.and_then(|c| c.status.as_ref())
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| {
                        cs.iter()
                            .any(|c| c.type_ == "Established" && c.status == "True")
                    })
            },
        )
        .await;
    }
}

/// A plain HTTP/1.1 GET: status code and body.
pub async fn get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {response:?}")))?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// Retries `path` until it answers `want`, or panics after `timeout` with the last answer.
pub async fn await_status(addr: SocketAddr, path: &str, want: u16, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let last = get(addr, path).await;
        if let Ok((status, body)) = &last
            && *status == want
        {
            return body.clone();
        }
        assert!(
            Instant::now() < deadline,
            "{path} never answered {want} within {timeout:?}; last: {last:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn terminate(mut child: Child) -> std::process::ExitStatus {
    let pid = child.id().expect("operator still running").to_string();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("run kill");
    assert!(sent.success(), "SIGTERM delivered");
    match tokio::time::timeout(Duration::from_secs(5), child.wait()).await {
        Ok(status) => status.expect("wait for operator"),
        Err(_) => panic!("operator did not exit within 5s of SIGTERM"),
    }
}

/// Server-side applies the CRDs in `files` (YAML, one CRD each) and waits until each is Established:
/// how the tests install the outside tools' own CRDs (Flux, Argo Rollouts, Argo CD).
pub async fn apply_crd_files(client: &Client, files: &[PathBuf]) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for file in files {
        let text = std::fs::read_to_string(file)
            .unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
        let crd: CustomResourceDefinition = serde_yaml_ng::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not a CRD: {e}", file.display()));
        let name = crd.name_any();
        api.patch(
            &name,
            &kube::api::PatchParams::apply("incident-e2e").force(),
            &kube::api::Patch::Apply(&crd),
        )
        .await
        .unwrap_or_else(|e| panic!("apply CRD {name}: {e}"));
        wait_for(
            &api,
            &name,
            "CRD Established",
            Duration::from_secs(60),
            |crd| {
                crd.and_then(|c| c.status.as_ref()?.conditions.as_ref())
                    .is_some_and(|cs| {
                        cs.iter()
                            .any(|c| c.type_ == "Established" && c.status == "True")
                    })
            },
        )
        .await;
    }
}
