//! Detection latency and operator memory, in one run on the local cluster.
//!
//!     make cluster && make bench-detection        (PART=latency|memory|all; knobs below)
//!
//! The operator (release build) runs with `--namespace <bench namespace> --detection true
//! --storm-limit 1000 --resolve-after off`, plus `--unavailable-for $UNAVAILABLE_FOR` when set.
//!
//! Latency: TRIALS (100) healthy 1-replica Deployments; per trial one Deployment's running pod is
//! labelled `incident.dev/fault=crashloop` (kwok then reports CrashLoopBackOff). One client holding
//! two watches (Pods, detected Incidents) notes when the first pod status that
//! `core::detection::classify::pod_signals` calls a signal arrives, and when the Incident for that
//! Deployment arrives; the difference is the detection latency. The broken pod is then deleted and
//! its healthy replacement awaited, so every trial starts from a quiet namespace. A trial during
//! which one of the watches had to list again is not counted; spare Deployments replace it.
//!
//! Memory: the operator's RSS (/proc/<pid>/status VmRSS, VmHWM) and CPU time on an empty namespace,
//! with DEPLOYMENTS (500) x REPLICAS (10) kwok pods Running, after BROKEN (50) of the Deployments
//! roll out a crash-looping template and have their incidents, and over a STEADY (60) second window
//! after that, with the detector's pass count and the incidents it opened. ROLLOUT_MINUTES (60)
//! bounds the wait for the pods.
//!
//! Pods run on NODES (10) fake nodes of this run (`bench-node-<pid>-<i>`), tainted so that only the
//! benchmark's pods land there. Everything created carries the label `incident.dev/bench=detection`
//! and is deleted at the end, also on failure or Ctrl-C; after a hard kill:
//! `kubectl delete ns,node -l incident.dev/bench=detection`.
//!
//! Parts: `latency` and `memory` (the two measurements), `burst` (a memory-part breakage as the
//! watches saw it), `observer` (the benchmark's own watches), `operator` (the operator process
//! and its /metrics), `cluster` (nodes, namespaces, Deployments, cleanup), `stats`.

use std::{path::Path, time::Duration};

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

use cluster::{bench_nodes, cleanup};
use common::{Result, connect, install_crds, kubeconfig_path};
use latency::latency;
use memory::memory;

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
    trials: usize,
    deployments: usize,
    replicas: i32,
    broken: usize,
    nodes: usize,
    steady: Duration,
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
        let (latency, memory) = match part.as_str() {
            "all" => (true, true),
            "latency" => (true, false),
            "memory" => (false, true),
            other => return Err(format!("PART={other}: use latency, memory or all").into()),
        };
        let settings = Self {
            latency,
            memory,
            trials: number("TRIALS", 100)?,
            deployments: number("DEPLOYMENTS", 500)?,
            replicas: number("REPLICAS", 10)?,
            broken: number("BROKEN", 50)?,
            nodes: number("NODES", 10)?,
            steady: Duration::from_secs(number("STEADY", 60)?),
            rollout_timeout: Duration::from_secs(60 * number("ROLLOUT_MINUTES", 60)?),
            unavailable_for: std::env::var("UNAVAILABLE_FOR").ok(),
        };
        if settings.broken > settings.deployments || settings.nodes == 0 {
            return Err("need BROKEN <= DEPLOYMENTS and NODES >= 1".into());
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
    Ok(())
}
