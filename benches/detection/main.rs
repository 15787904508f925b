//! Detection latency and operator memory, in one run on the local cluster.
//!
//!     make cluster && make bench-detection        (PART=latency|memory|storm|all; knobs below)
//!
//! The operator (release build) runs with `--namespace <bench namespace> --detection true
//! --storm-limit 1000 --resolve-after off`, plus `--unavailable-for $UNAVAILABLE_FOR` when set.
//!
//! Latency: TRIALS (100) healthy 1-replica Deployments; per trial one Deployment's running pod is
//! labelled `incident.dev/fault=crashloop` (kwok then reports it crashed as a kubelet would:
//! CrashLoopBackOff, not Ready, its Deployment one replica short). One client holding
//! two watches (Pods, detected Incidents) notes when the first pod status that
//! `core::detection::classify::pod_signals` calls a signal arrives, and when the Incident for that
//! Deployment arrives; the difference is the detection latency. Also printed: how each incident
//! read (severity, availability) when it first arrived. The broken pod is then deleted and
//! its healthy replacement awaited, so every trial starts from a quiet namespace. A trial during
//! which one of the watches had to list again is not counted; spare Deployments replace it.
//!
//! Memory: the operator's RSS and VmHWM (/proc/<pid>/status) as one namespace grows through
//! SIZES (1000,5000,10000,20000) pods in Deployments of REPLICAS (10), in two cases: the operator
//! that watched from the start (pods created while it runs), and a fresh operator started into
//! the namespace at each size (a restart). Both are read STEADY (120) seconds after the pods ran
//! and the restart happened; the slope per pod is fitted over the sizes. OPERATOR_BIN (default:
//! this build's release binary) is measured; COMPARE=label=binary,... runs other binaries (an
//! older build, a wrapper setting MALLOC_ARENA_MAX) beside it in both cases, so they share the
//! machine's moment. The restart case is measured RESTARTS (1) times per size, one fresh operator
//! per binary at a time (a restart's peak varies from one to the next). ROLLOUT_MINUTES (60)
//! bounds each step's wait for the pods.
//!
//! Storm: STORM_DEPLOYMENTS (100) healthy Deployments of REPLICAS pods; then every pod is
//! labelled `incident.dev/fault=crashloop` at once (kwok crashes each 1-3 s later, Ready=False).
//! Reports, per Deployment, the first pod signal the benchmark's watch saw → its incident with
//! CrashLoopBackOff, the number of detected incidents, and the API server's count of writes to
//! incidents (`apiserver_request_total`; the benchmark's cluster should have nothing else running).
//!
//! Pods run on NODES (10) fake nodes of this run (`bench-node-<pid>-<i>`), tainted so that only the
//! benchmark's pods land there. Everything created carries the label `incident.dev/bench=detection`
//! and is deleted at the end, also on failure or Ctrl-C; after a hard kill:
//! `kubectl delete ns,node -l incident.dev/bench=detection`.
//!
//! Parts: `latency` and `memory` (the two measurements), `burst` (a memory-part breakage as the
//! watches saw it), `observer` (the benchmark's own watches), `operator` (the operator process
//! and its /metrics), `cluster` (nodes, namespaces, Deployments, cleanup), `stats`.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use kube::Client;

mod burst;
mod cluster;
#[path = "../common/mod.rs"]
mod common;
mod latency;
mod memory;
mod observer;
mod operator;
mod stats;
mod storm;

use cluster::{bench_nodes, cleanup};
use common::{Result, connect, install_crds, kubeconfig_path};
use latency::latency;
use memory::memory;
use storm::storm;

/// Marks everything this benchmark creates.
const BENCH_LABEL: (&str, &str) = ("incident.dev/bench", "detection");
/// Node label (value: the run id) the benchmark's pods select.
const NODE_LABEL: &str = "incident.dev/bench-node";
/// Taint (value: the run id) keeping every other pod off the benchmark's nodes.
const TAINT_KEY: &str = "incident.dev/bench";
const DETECTED: &str = "incident.dev/source=detector,incident.dev/problem=workload";
const PASSES: &str = "incident_operator_detection_passes_total";
/// The operator's default `--pending-grace` (5m), for classifying pods like it does.
const PENDING_GRACE_SECS: i64 = 300;
/// Linux reports process CPU time in USER_HZ ticks, 100 a second on every architecture.
const TICKS_PER_SEC: f64 = 100.0;

struct Settings {
    latency: bool,
    memory: bool,
    storm: bool,
    trials: usize,
    /// Pod counts the memory part measures at, ascending.
    sizes: Vec<usize>,
    replicas: i32,
    storm_deployments: usize,
    nodes: usize,
    /// The operator measured, and others (label, binary) measured beside it.
    operator_bin: PathBuf,
    compare: Vec<(String, PathBuf)>,
    steady: Duration,
    /// How many times the restart case is measured at each size.
    restarts: usize,
    /// Longest wait for all memory pods to run.
    rollout_timeout: Duration,
    /// The operator's `--unavailable-for`, when UNAVAILABLE_FOR sets it.
    unavailable_for: Option<String>,
}

impl Settings {
    fn from_env() -> Result<Self> {
        fn number<T: std::str::FromStr>(key: &str, default: T) -> Result<T> {
            match std::env::var(key) {
                Ok(text) => text
                    .parse()
                    .map_err(|_| format!("{key}={text} is not a number").into()),
                Err(_) => Ok(default),
            }
        }
        let part = std::env::var("PART").unwrap_or_else(|_| "all".to_owned());
        let (latency, memory, storm) = match part.as_str() {
            "all" => (true, true, true),
            "latency" => (true, false, false),
            "memory" => (false, true, false),
            "storm" => (false, false, true),
            other => {
                return Err(format!("PART={other}: use latency, memory, storm or all").into());
            }
        };
        let sizes = std::env::var("SIZES").unwrap_or_else(|_| "1000,5000,10000,20000".to_owned());
        let mut sizes: Vec<usize> = sizes
            .split(',')
            .map(|s| s.trim().parse())
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| format!("SIZES={sizes}: use pod counts separated by commas"))?;
        sizes.sort_unstable();
        let settings = Self {
            latency,
            memory,
            storm,
            trials: number("TRIALS", 100)?,
            sizes,
            replicas: number("REPLICAS", 10)?,
            storm_deployments: number("STORM_DEPLOYMENTS", 100)?,
            nodes: number("NODES", 10)?,
            operator_bin: std::env::var_os("OPERATOR_BIN").map_or_else(
                || PathBuf::from(env!("CARGO_BIN_EXE_incident-operator")),
                PathBuf::from,
            ),
            compare: std::env::var("COMPARE")
                .unwrap_or_default()
                .split(',')
                .filter(|s| !s.is_empty())
                .map(|entry| {
                    let (label, path) = entry
                        .split_once('=')
                        .ok_or_else(|| format!("COMPARE entry {entry}: use label=binary"))?;
                    Ok((label.to_owned(), PathBuf::from(path)))
                })
                .collect::<Result<_>>()?,
            steady: Duration::from_secs(number("STEADY", 120)?),
            restarts: number("RESTARTS", 1)?,
            rollout_timeout: Duration::from_secs(60 * number("ROLLOUT_MINUTES", 60)?),
            unavailable_for: std::env::var("UNAVAILABLE_FOR").ok(),
        };
        if settings.replicas < 1 || settings.nodes == 0 || settings.restarts == 0 {
            return Err("need REPLICAS >= 1, NODES >= 1 and RESTARTS >= 1".into());
        }
        Ok(settings)
    }
}

/// What this run created, deleted at the end whatever happens.
#[derive(Default)]
struct Created {
    namespaces: Vec<String>,
    nodes: Vec<String>,
}

#[tokio::main]
async fn main() -> Result<()> {
    // `cargo test --all-targets` runs bench targets too; only `cargo bench` passes --bench.
    if !std::env::args().any(|a| a == "--bench") {
        println!("detection benchmark: run it with `make bench-detection`");
        return Ok(());
    }
    let settings = Settings::from_env()?;
    let kubeconfig = kubeconfig_path();
    let client = connect(&kubeconfig).await?;
    install_crds(&client).await?;

    let mut created = Created::default();
    let outcome = tokio::select! {
        outcome = run(&client, &kubeconfig, &settings, &mut created) => outcome,
        _ = tokio::signal::ctrl_c() => Err("interrupted".into()),
    };
    // The operators were killed when `run` ended (kill_on_drop); now the cluster objects.
    cleanup(&client, &created).await;
    outcome
}

async fn run(
    client: &Client,
    kubeconfig: &Path,
    settings: &Settings,
    created: &mut Created,
) -> Result<()> {
    let run_id = std::process::id().to_string();
    bench_nodes(client, &run_id, settings.nodes, created).await?;
    eprintln!("{} bench nodes Ready", settings.nodes);
    if settings.latency {
        latency(client, kubeconfig, settings, &run_id, created).await?;
    }
    if settings.memory {
        memory(client, kubeconfig, settings, &run_id, created).await?;
    }
    if settings.storm {
        storm(client, kubeconfig, settings, &run_id, created).await?;
    }
    Ok(())
}
