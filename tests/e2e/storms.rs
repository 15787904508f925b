//! Storms: every pod of many Deployments failing at once is one incident per Deployment, each
//! written a bounded number of times, counted from an audit of the operator's own requests (its
//! HTTP client's debug log: method, URL and field manager of every request it sends).

use std::{
    collections::BTreeMap,
    process::Stdio,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::{StreamExt, TryStreamExt, stream};
use incident_operator::api::Incident;
use k8s_openapi::api::{apps::v1::Deployment, core::v1::Pod};
use kube::{
    Api, ResourceExt,
    api::{ListParams, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

use crate::{
    detection::{DETECT, DETECTED, signal_count},
    remediation::deployment,
    support::{
        BINARY, TestNamespace, await_status, client, free_addr, install_crds, kubeconfig_path,
        terminate, wait_for_all,
    },
};

/// Deployments breaking at once, and pods each: the full 100 × 10 runs in `make bench-detection`
/// (PART=storm); this size keeps the e2e suite cheap.
const DEPLOYMENTS: usize = 20;
const REPLICAS: i32 = 5;
/// The detector's updates of one incident with the same kinds of trouble are at least the update
/// interval (10 s) apart, less the second its whole-second stamps may lose.
const UPDATES_APART: Duration = Duration::from_secs(9);

/// Writes per incident name: when each was seen, and what it was.
type Writes = BTreeMap<String, Vec<(Instant, String)>>;

/// The operator with every request it sends to the API server audited from its log.
struct Audited {
    child: Child,
    addr: std::net::SocketAddr,
    /// Writes (POST, PUT, PATCH, DELETE) per incident name, with when they were seen.
    writes: Arc<Mutex<Writes>>,
}

impl Audited {
    async fn start(namespace: &str, extra: &[&str]) -> Self {
        let addr = free_addr();
        let mut child = Command::new(BINARY)
            .args([
                "run",
                "--http-addr",
                &addr.to_string(),
                "--namespace",
                namespace,
            ])
            .args(["--log-format", "json"])
            .args(extra)
            .env("KUBECONFIG", kubeconfig_path())
            .env_remove("INCIDENT_KUBECONFIG")
            // kube's client logs each request's method and URL at debug.
            .env("RUST_LOG", "info,kube_runtime=warn,kube_client=debug")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start incident-operator");
        let stderr = child.stderr.take().expect("stderr pipe");
        let writes = Arc::new(Mutex::new(BTreeMap::new()));
        let audit = writes.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let Ok(log) = serde_json::from_str::<Value>(&line) else {
                    eprintln!("operator: {line}");
                    continue;
                };
                if matches!(log["level"].as_str(), Some("WARN" | "ERROR")) {
                    eprintln!("operator: {line}");
                }
                if let Some((name, request)) = incident_write(&log) {
                    let mut writes = audit.lock().unwrap_or_else(|e| e.into_inner());
                    let seen = (Instant::now(), request);
                    writes.entry(name).or_insert_with(Vec::new).push(seen);
                }
            }
        });
        await_status(addr, "/readyz", 200, Duration::from_secs(30)).await;
        Self {
            child,
            addr,
            writes,
        }
    }

    fn writes(&self) -> Writes {
        self.writes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// (incident name, "METHOD path") of a request that writes an incident or its status.
fn incident_write(log: &Value) -> Option<(String, String)> {
    if log["message"].as_str() != Some("requesting") {
        return None;
    }
    let span = &log["span"];
    let method = span["http.method"].as_str()?;
    if !matches!(method, "POST" | "PUT" | "PATCH" | "DELETE") {
        return None;
    }
    let url = span["http.url"].as_str()?;
    let path = url.split('?').next()?;
    let (_, rest) = path.split_once("/incidents")?;
    let name = rest.trim_start_matches('/').split('/').next()?;
    let name = if name.is_empty() {
        "<collection>"
    } else {
        name
    };
    let manager = url
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("fieldManager="))
        .unwrap_or("-");
    Some((name.to_owned(), format!("{method} {path} ({manager})")))
}

#[tokio::test]
async fn every_pod_of_twenty_deployments_failing_at_once_is_twenty_incidents_with_bounded_writes() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::new(&client, "detect-pod-storm").await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    for i in 0..DEPLOYMENTS {
        let name = format!("svc-{i:02}");
        let mut healthy = deployment(&name, &[&format!("registry.local/{name}:1")], None);
        healthy.spec.replicas = Some(REPLICAS);
        deployments
            .create(&PostParams::default(), &healthy)
            .await
            .expect("create Deployment");
    }
    wait_for_all(
        &deployments,
        "",
        "every Deployment available",
        // Starting 100 pods waits behind whatever else the shared control plane is doing.
        DETECT * 3,
        |found| {
            found.len() == DEPLOYMENTS
                && found
                    .iter()
                    .all(|d| d.status.as_ref().and_then(|s| s.available_replicas) == Some(REPLICAS))
        },
    )
    .await;
    let operator = Audited::start(
        &ns.name,
        &[
            "--detection",
            "true",
            "--resolve-after",
            "off",
            "--storm-limit",
            "1000",
            // Other tests' NotReady nodes are not this test's business.
            "--node-selector",
            "incident.dev/e2e-no-such-node=true",
        ],
    )
    .await;

    // Every pod fails at once: kwok turns a labelled running pod into CrashLoopBackOff.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    let all = pods.list(&ListParams::default()).await.expect("list pods");
    assert_eq!(all.items.len(), DEPLOYMENTS * REPLICAS as usize);
    let fault = json!({ "metadata": { "labels": { "incident.dev/fault": "crashloop" } } });
    stream::iter(&all.items)
        .map(|pod| {
            let (pods, fault) = (&pods, &fault);
            async move {
                pods.patch(
                    &pod.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(fault),
                )
                .await
            }
        })
        .buffer_unordered(8)
        .try_collect::<Vec<_>>()
        .await
        .expect("label every pod");

    let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns.name);
    let found = wait_for_all(
        &incidents,
        DETECTED,
        "one incident per Deployment, counting all its pods, with its evidence",
        DETECT,
        |found| {
            found.len() == DEPLOYMENTS
                && found.iter().all(|i| {
                    signal_count(i, "CrashLoopBackOff") == REPLICAS
                        && i.status.as_ref().is_some_and(|s| s.evidence.is_some())
                })
        },
    )
    .await;
    let mut affected: Vec<&str> = found
        .iter()
        .map(|i| i.spec.affected[0].name.as_str())
        .collect();
    affected.dedup();
    assert_eq!(affected.len(), DEPLOYMENTS, "one incident per Deployment");
    // Settled: two more passes find nothing to write.
    let passes = "incident_operator_detection_passes_total";
    let now = metric(operator.addr, passes).await;
    await_metric_at_least(operator.addr, passes, now + 2.0).await;

    let writes = operator.writes();
    let names: Vec<String> = found.iter().map(|i| i.name_any()).collect();
    // (incident, the detector's writes, all writes) for every incident.
    let detector = |w: &&(Instant, String)| w.1.ends_with("(incident-operator-detector)");
    let counts: Vec<(&str, usize, usize)> = names
        .iter()
        .map(|name| {
            let all = writes.get(name).map_or(&[][..], Vec::as_slice);
            (
                name.as_str(),
                all.iter().filter(detector).count(),
                all.len(),
            )
        })
        .collect();
    eprintln!("writes per incident (detector, all): {counts:?}");
    for name in &names {
        let all = writes.get(name).map_or(&[][..], Vec::as_slice);
        // The incident itself (not its status) as the detector applies it.
        let applies: Vec<Instant> = all
            .iter()
            .filter(detector)
            .filter(|w| !w.1.contains("/status"))
            .map(|w| w.0)
            .collect();
        let evidence = all.iter().filter(detector).count() - applies.len();
        assert!(
            !applies.is_empty() && evidence <= applies.len(),
            "{name}: the detector's create, then one evidence write per update: {all:#?}"
        );
        for pair in applies.windows(2) {
            assert!(
                pair[1] - pair[0] >= UPDATES_APART,
                "{name}: updates of the same trouble {:?} apart: {all:#?}",
                pair[1] - pair[0]
            );
        }
    }
    let strays: Vec<&String> = writes.keys().filter(|k| !names.contains(k)).collect();
    assert!(strays.is_empty(), "writes to other incidents: {strays:?}");
    assert_eq!(terminate(operator.child).await.code(), Some(0));
}

async fn metric(addr: std::net::SocketAddr, series: &str) -> f64 {
    let text = await_status(addr, "/metrics", 200, Duration::from_secs(10)).await;
    text.lines()
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok()).flatten()
        })
        .unwrap_or(0.0)
}

async fn await_metric_at_least(addr: std::net::SocketAddr, series: &str, want: f64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while metric(addr, series).await < want {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{series} stayed below {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
