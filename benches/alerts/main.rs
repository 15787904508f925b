//! Alerts: webhook request → Incident stored, a burst of alerts, and the whole path from an error
//! spike through a real Prometheus and Alertmanager to the Incident, in one run on the local cluster.
//!
//!     make cluster && make bench-alerts     (REQUESTS, BURST_ALERTS, BURST_GROUPS, CONCURRENCY,
//!                                            ROUNDS, PART=webhook|burst|pipeline|all; see Settings)
//!
//! One operator, the release binary, in a fresh namespace: `incident-operator run --http-addr
//! 127.0.0.1:<free> --namespace <ns> --detection false --alerts-addr 127.0.0.1:<free>
//! --alerts-token-file <file> --alerts-namespace <ns>`. The bench talks to its receiver as
//! Alertmanager does: POST /alerts/alertmanager, `Authorization: Bearer`, payload version 4, one
//! kept-alive HTTP/1.1 connection per concurrent sender.
//!
//! 1. webhook: REQUESTS (200) POSTs one after another, each a new alert group (answer `created`),
//!    then REQUESTS repeats of one existing group (answer `unchanged`); each timed from just before
//!    the POST to its answer (the receiver answers only once the change is stored). After one
//!    warm-up POST of each kind, not counted.
//! 2. burst: BURST_ALERTS (1000) alerts in BURST_GROUPS (100) groups, one alert per POST,
//!    CONCURRENCY (20) POSTs in flight, twice: `spread` (POST i goes to group i mod 100, so the
//!    requests in flight hit different groups) and `clustered` (each group's alerts back to back, so
//!    its 10 POSTs race for one incident). A 503 is retried after 1 s, as Alertmanager would; the
//!    answers, the incidents that result and when a watch saw them are reported.
//! 3. pipeline: a real Prometheus (scrape and evaluation 1 s) scrapes a tiny metrics server the
//!    bench serves on 127.0.0.1 and sends to a real Alertmanager (group_wait 1s, group_interval 2s),
//!    which posts to the operator. ROUNDS (5) rounds, each with its own alert name (a new group):
//!    the bench flips the error rate from 0 to 50 % and notes when Prometheus's `/api/v1/alerts`
//!    shows the alert firing, when Alertmanager's `/api/v2/alerts` has it and when the watch sees
//!    the Incident; then errors go back to 0 and the round ends once the Incident is resolved.
//!
//! Everything is labelled `incident.dev/bench=alerts` and deleted at the end, also on failure or
//! Ctrl-C; after a hard kill: `kubectl delete ns -l incident.dev/bench=alerts`. Logs (operator,
//! Prometheus, Alertmanager) go to target/bench-alerts/ (operator level: OPERATOR_LOG, default warn).
//!
//! Parts: `operator` (the process, its metrics, the namespace), `observer` (the Incident watch),
//! `webhook` (part 1 and the poster), `burst` (part 2), `cpu` (CPU time of the operator and the
//! cluster's API server and etcd during a burst), `monitoring` (the metrics server, Prometheus, Alertmanager),
//! `pipeline` (part 3).

use std::{path::Path, time::Instant};

use kube::Client;

mod burst;
#[path = "../common/mod.rs"]
mod common;
mod cpu;
mod monitoring;
#[path = "../common/namespaces.rs"]
mod namespaces;
mod observer;
mod operator;
mod pipeline;
mod webhook;

use common::{Result, connect, install_crds, kubeconfig_path};
use cpu::Cpu;
use namespaces::{cleanup, namespace};
use observer::Observer;
use operator::{Operator, Scratch};
use webhook::{Order, Poster};

/// Marks everything this benchmark creates.
pub const BENCH_LABEL: (&str, &str) = ("incident.dev/bench", "alerts");

#[derive(Clone, Debug)]
pub struct Settings {
    webhook: bool,
    burst: bool,
    pipeline: bool,
    pub requests: usize,
    pub burst_alerts: usize,
    pub burst_groups: usize,
    pub concurrency: usize,
    pub rounds: usize,
}

impl Settings {
    fn from_env() -> Result<Self> {
        fn number(key: &str, default: usize) -> Result<usize> {
            match std::env::var(key) {
                Ok(text) => text
                    .parse()
                    .map_err(|_| format!("{key}={text} is not a number").into()),
                Err(_) => Ok(default),
            }
        }
        let part = std::env::var("PART").unwrap_or_else(|_| "all".to_owned());
        let (webhook, burst, pipeline) = match part.as_str() {
            "all" => (true, true, true),
            "webhook" => (true, false, false),
            "burst" => (false, true, false),
            "pipeline" => (false, false, true),
            other => {
                return Err(format!("PART={other}: use webhook, burst, pipeline or all").into());
            }
        };
        let settings = Self {
            webhook,
            burst,
            pipeline,
            requests: number("REQUESTS", 200)?,
            burst_alerts: number("BURST_ALERTS", 1000)?,
            burst_groups: number("BURST_GROUPS", 100)?,
            concurrency: number("CONCURRENCY", 20)?,
            rounds: number("ROUNDS", 5)?,
        };
        if settings.requests == 0
            || settings.burst_groups == 0
            || settings.concurrency == 0
            || settings.rounds == 0
            || !settings.burst_alerts.is_multiple_of(settings.burst_groups)
        {
            return Err("need REQUESTS, BURST_GROUPS, CONCURRENCY, ROUNDS >= 1 and BURST_ALERTS a multiple of BURST_GROUPS".into());
        }
        Ok(settings)
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    // `cargo test --all-targets` runs bench targets too; only `cargo bench` passes --bench.
    if !std::env::args().any(|a| a == "--bench") {
        println!("alerts benchmark: run it with `make bench-alerts`");
        return Ok(());
    }
    let settings = Settings::from_env()?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kubeconfig = kubeconfig_path();
    let client = connect(&kubeconfig).await?;
    install_crds(&client).await?;

    let mut namespaces = Vec::new();
    let outcome = tokio::select! {
        outcome = run(&client, &kubeconfig, &settings, &mut namespaces) => outcome,
        _ = tokio::signal::ctrl_c() => Err("interrupted".into()),
    };
    // The processes were killed when `run` ended (kill_on_drop); now the namespace.
    cleanup(&client, &namespaces).await;
    outcome
}

async fn run(
    client: &Client,
    kubeconfig: &Path,
    settings: &Settings,
    namespaces: &mut Vec<String>,
) -> Result<()> {
    let started = Instant::now();
    eprintln!("load average at start: {}", load_average());
    let ns = namespace(client, "bench-alerts", BENCH_LABEL, namespaces).await?;
    let scratch = Scratch::new()?;
    let operator = Operator::start(kubeconfig, &ns, &scratch).await?;
    let observer = Observer::start(client, &ns);
    observer.ready().await?;
    let poster = Poster::new(&operator);
    let cpu = Cpu::find(kubeconfig, operator.pid);
    eprintln!("namespace {ns}, operator ready, watching its Incidents");

    if settings.webhook {
        let singles = webhook::singles(&poster, &operator, &observer, settings.requests).await?;
        singles.report(settings.requests);
    }
    if settings.burst {
        for order in [Order::Spread, Order::Clustered] {
            let burst =
                webhook::burst(client, &ns, &poster, &observer, &cpu, settings, order).await?;
            burst.report(settings);
        }
    }
    if settings.pipeline {
        let rounds = pipeline::rounds(&scratch, &operator, &observer, settings).await?;
        pipeline::report(&rounds);
    }
    let relists = observer.relists();
    println!(
        "\nwatch relists during the run: {relists}{}",
        if relists > 0 {
            " (times seen after a relist are late)"
        } else {
            ""
        }
    );
    println!("operator alert requests: {}", operator.requests().await?);
    println!(
        "load average at the end: {}; the run took {:.0} s",
        load_average(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `/proc/loadavg`'s three averages: the machine is shared, so every report says how busy it was.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// Median and nearest-rank percentiles, in milliseconds.
pub struct Stats {
    pub n: usize,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub min: f64,
}

impl Stats {
    pub fn of(samples: &[f64]) -> Self {
        let mut samples = samples.to_vec();
        samples.sort_by(f64::total_cmp);
        let n = samples.len();
        // Nearest rank: the smallest sample with at least p of them at or below it.
        let rank = |p: f64| -> f64 {
            if n == 0 {
                return f64::NAN;
            }
            samples[((p * n as f64).ceil() as usize).clamp(1, n) - 1]
        };
        let p50 = match n {
            0 => f64::NAN,
            n if n % 2 == 1 => samples[n / 2],
            n => (samples[n / 2 - 1] + samples[n / 2]) / 2.0,
        };
        Self {
            n,
            p50,
            p90: rank(0.90),
            p99: rank(0.99),
            max: samples.last().copied().unwrap_or(f64::NAN),
            min: samples.first().copied().unwrap_or(f64::NAN),
        }
    }
}

impl std::fmt::Display for Stats {
    /// `p50 | p90 | p99 | max | min`, whole milliseconds (one decimal under 10 ms).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cells: Vec<String> = [self.p50, self.p90, self.p99, self.max, self.min]
            .into_iter()
            .map(|v| {
                if v < 10.0 {
                    format!("{v:.1}")
                } else {
                    format!("{v:.0}")
                }
            })
            .collect();
        write!(f, "{}", cells.join(" | "))
    }
}
