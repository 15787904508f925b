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
//! `detection::classify::pod_signals` calls a signal arrives, and when the Incident for that
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

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    fmt::Debug,
    net::SocketAddr,
    path::Path,
    process::Stdio,
    sync::{
        Arc, Mutex,
        atomic::{AtomicI64, Ordering},
    },
    time::{Duration, Instant},
};

use futures::{FutureExt, StreamExt, TryStreamExt, stream};
use incident_operator::{api::Incident, core::detection::classify::pod_signals};
use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{Namespace, Node, Pod, ServiceAccount},
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{DeleteParams, Patch, PatchParams, PostParams},
    runtime::{
        WatchStreamExt,
        reflector::{self, Store},
        wait::await_condition,
        watcher,
    },
};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
    process::{Child, Command},
    sync::watch,
};

mod common;
use common::{Result, TIMEOUT, connect, install_crds, kubeconfig_path, ms};

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

// ---- latency ---------------------------------------------------------------------------------

async fn latency(
    client: &Client,
    kubeconfig: &Path,
    settings: &Settings,
    run_id: &str,
    created: &mut Created,
) -> Result<()> {
    let trials = settings.trials;
    let ns = namespace(client, "bench-detect", created).await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    // Spares replace trials disturbed by a relist of the benchmark's watches.
    let spares = (trials / 10).max(5);
    let names: Vec<String> = (0..trials + spares)
        .map(|i| format!("svc-{i:03}"))
        .collect();
    create_deployments(&deployments, &names, 1, run_id).await?;
    wait_all(
        &deployments,
        watcher::Config::default(),
        TIMEOUT * 5,
        "latency Deployments available",
        |ds| ds.len() == names.len() && ds.iter().all(|d| available(d) == 1),
    )
    .await?;
    eprintln!("{} Deployments available in {ns}", names.len());

    let operator = Operator::start(kubeconfig, &ns, settings).await?;
    // Its first pass over the healthy namespace (which must open nothing).
    operator.await_passes(1.0).await?;
    let mut observer = Observer::start(client, &ns, watcher::Config::default());
    observer
        .wait("the benchmark's watches listed", |seen, _| {
            seen.pods_listed && seen.incidents_listed
        })
        .await?;
    if let Some(name) = observer.seen().incident.keys().next() {
        return Err(format!("an incident for healthy {name} before any fault").into());
    }

    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let mut detect_ms = Vec::with_capacity(trials);
    let mut kwok_ms = Vec::with_capacity(trials);
    let mut disturbed = 0;
    for name in &names {
        if detect_ms.len() == trials {
            break;
        }
        let current = observer
            .wait(&format!("a Ready pod of {name}"), |_, store| {
                pods_of(store, name).len() == 1 && pods_of(store, name).iter().all(|p| ready(p))
            })
            .await?;
        let pod = pods_of(&current, name)
            .into_iter()
            .next()
            .ok_or("the pod vanished")?;
        let relists = observer.seen().relists;
        let labelled = Instant::now();
        let fault = json!({ "metadata": { "labels": { "incident.dev/fault": "crashloop" } } });
        pods.patch(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&fault),
        )
        .await?;
        observer
            .wait(&format!("signal and incident of {name}"), |seen, _| {
                seen.signal.contains_key(name) && seen.incident.contains_key(name)
            })
            .await?;
        let (signal, incident, relisted) = {
            let seen = observer.seen();
            (
                seen.signal.get(name).copied().ok_or("no signal seen")?,
                seen.incident.get(name).copied().ok_or("no incident seen")?,
                seen.relists != relists,
            )
        };
        if relisted {
            disturbed += 1;
        } else {
            detect_ms.push(signed_ms(signal, incident));
            kwok_ms.push(signed_ms(labelled, signal));
        }

        // Back to quiet: the crash-looping pod goes, a healthy replacement takes its place.
        let old = pod.uid();
        pods.delete(&pod.name_any(), &DeleteParams::default())
            .await?;
        observer
            .wait(&format!("{name} healthy again"), |_, store| {
                let mine = pods_of(store, name);
                mine.len() == 1 && mine.iter().all(|p| ready(p) && p.uid() != old)
            })
            .await?;
        let done = detect_ms.len();
        if !relisted && (done % 10 == 0 || done == trials) {
            eprintln!(
                "trial {done}/{trials}: signal → incident {:.0} ms",
                detect_ms[done - 1]
            );
        }
    }
    if detect_ms.len() < trials {
        return Err(format!(
            "{disturbed} trials disturbed by watch relists; only {} of {trials} measured",
            detect_ms.len()
        )
        .into());
    }
    let passes = operator.metric(PASSES).await?.unwrap_or(f64::NAN);
    let usage = operator.usage()?;
    let complaints = operator.complaints();
    drop(operator);
    observer.task.abort();
    delete_namespace(client, &ns).await;

    let negative = detect_ms.iter().filter(|ms| **ms < 0.0).count();
    let detect = Stats::of(&mut detect_ms);
    let kwok = Stats::of(&mut kwok_ms);
    println!("\ndetection latency, {trials} trials (ms)\n");
    println!("| | median | p90 | p99 | max | min |");
    println!("|---|---|---|---|---|---|");
    println!("| pod signal → Incident ADDED | {detect} |");
    println!("| label → pod signal (kwok) | {kwok} |");
    println!(
        "\noperator: {passes} detection passes, {:.1} s CPU, VmHWM {:.1} MiB; {negative} trials saw the incident first; \
         {disturbed} trials disturbed by a watch relist (not counted, replaced by spares)",
        usage.cpu_secs, usage.hwm_mib
    );
    println!("operator warnings and errors: {complaints}");
    Ok(())
}

/// First deliveries the benchmark's own watches saw, per Deployment name.
#[derive(Default)]
struct Seen {
    signal: HashMap<String, Instant>,
    incident: HashMap<String, Instant>,
    /// First delivery of the Deployment's incident carrying a CrashLoopBackOff signal (in the
    /// memory part, a slow rollout may have opened the incident before, for unavailability).
    alarmed: HashMap<String, Instant>,
    pods_listed: bool,
    incidents_listed: bool,
    /// Times a watch had to list again (e.g. its resource version expired): deliveries around it
    /// arrive late, as a list, so a trial that sees one is not counted.
    relists: u32,
}

/// One client, two watches (Pods and detected workload Incidents of the namespace), one task
/// timestamping what they deliver.
struct Observer {
    pods: Store<Pod>,
    seen: Arc<Mutex<Seen>>,
    changes: watch::Receiver<u64>,
    task: tokio::task::JoinHandle<()>,
}

enum Delivery {
    Pod(Box<watcher::Event<Pod>>),
    Incident(Box<watcher::Event<Incident>>),
}

impl Observer {
    /// Watches the namespace's pods that `pods` selects and its detected workload incidents.
    fn start(client: &Client, ns: &str, pods: watcher::Config) -> Self {
        let (store, writer) = reflector::store();
        let pod_events = watcher(Api::<Pod>::namespaced(client.clone(), ns), pods)
            .default_backoff()
            .reflect(writer)
            .map_ok(|event| Delivery::Pod(Box::new(event)));
        let incident_events = watcher(
            Api::<Incident>::namespaced(client.clone(), ns),
            watcher::Config::default().labels(DETECTED),
        )
        .default_backoff()
        .map_ok(|event| Delivery::Incident(Box::new(event)));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (tx, changes) = watch::channel(0u64);
        let record = seen.clone();
        let task = tokio::spawn(async move {
            let mut deliveries = std::pin::pin!(stream::select(pod_events, incident_events));
            while let Some(delivery) = deliveries.next().await {
                let at = Instant::now();
                {
                    let Ok(mut seen) = record.lock() else { return };
                    match delivery {
                        Ok(Delivery::Pod(event)) => match *event {
                            watcher::Event::Apply(pod) | watcher::Event::InitApply(pod) => {
                                let now = jiff::Timestamp::now();
                                let troubled =
                                    !pod_signals(&pod, now, PENDING_GRACE_SECS).is_empty();
                                if let Some(app) = pod.labels().get("app").filter(|_| troubled) {
                                    seen.signal.entry(app.clone()).or_insert(at);
                                }
                            }
                            watcher::Event::Init if seen.pods_listed => seen.relists += 1,
                            watcher::Event::InitDone => seen.pods_listed = true,
                            _ => {}
                        },
                        Ok(Delivery::Incident(event)) => match *event {
                            watcher::Event::Apply(incident)
                            | watcher::Event::InitApply(incident) => {
                                if let Some(affected) = incident.spec.affected.first() {
                                    seen.incident.entry(affected.name.clone()).or_insert(at);
                                    if incident
                                        .spec
                                        .signals
                                        .iter()
                                        .any(|s| s.type_ == "CrashLoopBackOff")
                                    {
                                        seen.alarmed.entry(affected.name.clone()).or_insert(at);
                                    }
                                }
                            }
                            watcher::Event::Init if seen.incidents_listed => seen.relists += 1,
                            watcher::Event::InitDone => seen.incidents_listed = true,
                            _ => {}
                        },
                        Err(error) => eprintln!("watch error (the watcher retries): {error}"),
                    }
                }
                tx.send_modify(|n| *n += 1);
            }
        });
        Self {
            pods: store,
            seen,
            changes,
            task,
        }
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits (at most TIMEOUT) until `done` holds after some delivery; returns the pods then.
    async fn wait(
        &mut self,
        what: &str,
        done: impl Fn(&Seen, &[Arc<Pod>]) -> bool,
    ) -> Result<Vec<Arc<Pod>>> {
        self.wait_at_most(TIMEOUT, what, done).await
    }

    async fn wait_at_most(
        &mut self,
        timeout: Duration,
        what: &str,
        done: impl Fn(&Seen, &[Arc<Pod>]) -> bool,
    ) -> Result<Vec<Arc<Pod>>> {
        let found = tokio::time::timeout(timeout, async {
            loop {
                let pods = self.pods.state();
                if done(&self.seen(), &pods) {
                    return Ok(pods);
                }
                if self.changes.changed().await.is_err() {
                    return Err("the benchmark's watches ended");
                }
            }
        })
        .await;
        match found {
            Ok(outcome) => Ok(outcome?),
            Err(_) => Err(format!("timed out after {timeout:?} waiting for {what}").into()),
        }
    }
}

/// A burst of breakage as the benchmark's watches saw it.
struct Burst {
    /// Seconds after the break: first and last pod signal, first and last incident carrying it.
    signals: (f64, f64),
    incidents: (f64, f64),
    /// Per Deployment, its first pod signal → its incident carrying CrashLoopBackOff.
    latency: Stats,
}

impl Burst {
    fn of(seen: &Seen, broken: &BTreeSet<String>, start: Instant) -> Self {
        let span = |times: &HashMap<String, Instant>| {
            let offsets: Vec<f64> = broken
                .iter()
                .filter_map(|b| times.get(b))
                .map(|t| signed_ms(start, *t) / 1000.0)
                .collect();
            (
                offsets.iter().copied().fold(f64::INFINITY, f64::min),
                offsets.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            )
        };
        let mut latency: Vec<f64> = broken
            .iter()
            .filter_map(|b| Some(signed_ms(*seen.signal.get(b)?, *seen.alarmed.get(b)?)))
            .collect();
        Self {
            signals: span(&seen.signal),
            incidents: span(&seen.alarmed),
            latency: Stats::of(&mut latency),
        }
    }
}

fn pods_of(pods: &[Arc<Pod>], deployment: &str) -> Vec<Arc<Pod>> {
    pods.iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| p.labels().get("app").map(String::as_str) == Some(deployment))
        .cloned()
        .collect()
}

fn ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Milliseconds from `from` to `to`, negative when `to` came first.
fn signed_ms(from: Instant, to: Instant) -> f64 {
    match to.checked_duration_since(from) {
        Some(d) => ms(d),
        None => -ms(from.duration_since(to)),
    }
}

// ---- memory ----------------------------------------------------------------------------------

async fn memory(
    client: &Client,
    kubeconfig: &Path,
    settings: &Settings,
    run_id: &str,
    created: &mut Created,
) -> Result<()> {
    let (count, replicas) = (settings.deployments, settings.replicas);
    let total = i64::try_from(count)? * i64::from(replicas);
    let ns = namespace(client, "bench-memory", created).await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns);
    let operator = Operator::start(kubeconfig, &ns, settings).await?;
    operator.await_passes(1.0).await?;
    let since = jiff::Timestamp::now();
    let mut rows = vec![
        operator
            .checkpoint("operator started, empty namespace", &incidents, since)
            .await?,
    ];

    let available_pods = Arc::new(AtomicI64::new(0));
    let progress = tokio::spawn(progress(
        operator.addr,
        operator.pid,
        incidents.clone(),
        available_pods.clone(),
        total,
    ));
    let names: Vec<String> = (0..count).map(|i| format!("svc-{i:03}")).collect();
    let started = Instant::now();
    create_deployments(&deployments, &names, replicas, run_id).await?;
    let outcome = wait_all(
        &deployments,
        watcher::Config::default(),
        settings.rollout_timeout,
        &format!("{total} pods Running and Ready"),
        |ds| {
            let sum: i64 = ds.iter().map(|d| i64::from(available(d))).sum();
            available_pods.store(sum, Ordering::Relaxed);
            ds.len() == count && ds.iter().all(|d| complete(d, replicas))
        },
    )
    .await;
    progress.abort();
    outcome?;
    let rollout = started.elapsed();
    eprintln!("{total} pods Running in {:.0} s", rollout.as_secs_f64());
    // A pass that started after the last pod became Ready has seen them all.
    let passes = operator.metric(PASSES).await?.unwrap_or(0.0);
    operator.await_passes(passes + 2.0).await?;
    rows.push(
        operator
            .checkpoint(
                &format!("{total} pods Running ({count} Deployments)"),
                &incidents,
                since,
            )
            .await?,
    );

    // A bad deploy on every tenth-or-so Deployment: a crash-looping template rolls out.
    let step = count / settings.broken.max(1);
    let broken: BTreeSet<String> = names
        .iter()
        .step_by(step.max(1))
        .take(settings.broken)
        .cloned()
        .collect();
    // The crash-looping pods (they carry the fault label) and the incidents, timestamped as they
    // arrive, like in the latency part.
    let mut observer = Observer::start(
        client,
        &ns,
        watcher::Config::default().labels("incident.dev/fault=crashloop"),
    );
    observer
        .wait("the benchmark's watches listed", |seen, _| {
            seen.pods_listed && seen.incidents_listed
        })
        .await?;
    let bad = json!({ "spec": { "template": { "metadata": { "labels": { "incident.dev/fault": "crashloop" } } } } });
    let breaking = Instant::now();
    for name in &broken {
        deployments
            .patch(name, &PatchParams::default(), &Patch::Merge(&bad))
            .await?;
    }
    observer
        .wait_at_most(
            TIMEOUT * 5,
            &format!(
                "crash loops in the {} broken Deployments' incidents",
                broken.len()
            ),
            |seen, _| broken.iter().all(|b| seen.alarmed.contains_key(b)),
        )
        .await?;
    let to_incidents = breaking.elapsed();
    let burst = {
        let seen = observer.seen();
        Burst::of(&seen, &broken, breaking)
    };
    observer.task.abort();
    rows.push(
        operator
            .checkpoint(
                &format!("{} Deployments broken, their incidents open", broken.len()),
                &incidents,
                since,
            )
            .await?,
    );
    // Steady state with crash-looping pods: a measurement window, not a wait for anything.
    tokio::time::sleep(settings.steady).await;
    rows.push(
        operator
            .checkpoint(
                &format!("{} s later", settings.steady.as_secs()),
                &incidents,
                since,
            )
            .await?,
    );
    let complaints = operator.complaints();
    drop(operator);
    delete_namespace(client, &ns).await;

    println!(
        "\noperator memory, {total} pods in {count} Deployments on {} nodes\n",
        settings.nodes
    );
    println!(
        "| | VmRSS (MiB) | VmHWM (MiB) | operator CPU (s) | detection passes | operator uptime (s) | detected incidents |"
    );
    println!("|---|---|---|---|---|---|---|");
    for row in &rows {
        println!(
            "| {} | {:.1} | {:.1} | {:.1} | {:.0} | {:.0} | {} |",
            row.what,
            row.usage.rss_mib,
            row.usage.hwm_mib,
            row.usage.cpu_secs,
            row.passes,
            row.uptime,
            row.incidents
        );
    }
    if let Some((first, last)) = rows.get(1).and_then(|r| r.incidents.opened) {
        println!(
            "\nthe incidents open once all pods ran were created {first:.0}-{last:.0} s after the first Deployment"
        );
    }
    let window = |a: &Checkpoint, b: &Checkpoint| {
        let secs = b.uptime - a.uptime;
        (
            (b.passes - a.passes) * 60.0 / secs,
            100.0 * (b.usage.cpu_secs - a.usage.cpu_secs) / secs,
        )
    };
    if let [empty, running, broken_row, steady] = rows.as_slice() {
        let (ppm, cpu) = window(empty, running);
        println!(
            "\nrollout of {total} pods ({:.0} s): {ppm:.0} passes/min, operator CPU {cpu:.0}% of one core",
            rollout.as_secs_f64()
        );
        let (ppm, cpu) = window(running, broken_row);
        println!(
            "breaking {} Deployments until all their incidents exist ({:.1} s): {ppm:.0} passes/min, operator CPU {cpu:.0}%",
            broken.len(),
            to_incidents.as_secs_f64()
        );
        println!(
            "  after the break: first crash-looping pod {:.1} s, last {:.1} s; first incident with it {:.1} s, last {:.1} s",
            burst.signals.0, burst.signals.1, burst.incidents.0, burst.incidents.1
        );
        println!(
            "  per Deployment, pod signal → incident with CrashLoopBackOff (ms): median | p90 | p99 | max | min = {}",
            burst.latency
        );
        let (ppm, cpu) = window(broken_row, steady);
        println!(
            "steady window ({} s, {} crash-looping Deployments): {ppm:.0} passes/min, operator CPU {cpu:.0}%",
            settings.steady.as_secs(),
            broken.len()
        );
    }
    println!("operator warnings and errors: {complaints}");
    Ok(())
}

/// Progress while the pods come up: every 30 s, how many are Ready and what the operator uses.
async fn progress(
    addr: SocketAddr,
    pid: u32,
    incidents: Api<Incident>,
    available: Arc<AtomicI64>,
    total: i64,
) {
    let started = Instant::now();
    let mut last_cpu = usage(pid).map(|u| u.cpu_secs).unwrap_or(0.0);
    let mut ticks = tokio::time::interval(Duration::from_secs(30));
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let Ok(now) = usage(pid) else { return };
        let passes = metric(addr, PASSES)
            .await
            .ok()
            .flatten()
            .unwrap_or(f64::NAN);
        let detected = Detected::list(&incidents, jiff::Timestamp::now())
            .await
            .map_or_else(|e| e.to_string(), |d| d.to_string());
        eprintln!(
            "{:>5.0} s: {}/{total} pods Ready; operator VmRSS {:.1} MiB, CPU {:.0}% (last 30 s), {passes} passes; incidents {detected}",
            started.elapsed().as_secs_f64(),
            available.load(Ordering::Relaxed),
            now.rss_mib,
            100.0 * (now.cpu_secs - last_cpu) / 30.0,
        );
        last_cpu = now.cpu_secs;
    }
}

fn available(d: &Deployment) -> i32 {
    d.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

fn complete(d: &Deployment, replicas: i32) -> bool {
    let Some(s) = &d.status else { return false };
    s.observed_generation == d.metadata.generation
        && s.available_replicas == Some(replicas)
        && s.updated_replicas == Some(replicas)
        && s.replicas == Some(replicas)
}

// ---- the operator process --------------------------------------------------------------------

struct Operator {
    /// Killed when dropped.
    _child: Child,
    pid: u32,
    addr: SocketAddr,
    started: Instant,
    /// Its warnings and errors: how often each message was logged (the first of each is printed).
    complaints: Arc<Mutex<BTreeMap<String, usize>>>,
}

#[derive(Clone, Copy)]
struct Usage {
    rss_mib: f64,
    hwm_mib: f64,
    cpu_secs: f64,
}

struct Checkpoint {
    what: String,
    usage: Usage,
    passes: f64,
    uptime: f64,
    incidents: Detected,
}

/// The detector's workload incidents in a namespace, by signal.
#[derive(Default)]
struct Detected {
    total: usize,
    unavailable: usize,
    crashloop: usize,
    /// Creation times, seconds after `since`: (first, last).
    opened: Option<(f64, f64)>,
}

impl Detected {
    async fn list(api: &Api<Incident>, since: jiff::Timestamp) -> Result<Self> {
        let found = api
            .list(&kube::api::ListParams::default().labels(DETECTED))
            .await?
            .items;
        let with = |signal: &str| {
            found
                .iter()
                .filter(|i| i.spec.signals.iter().any(|s| s.type_ == signal))
                .count()
        };
        let offsets: Vec<f64> = found
            .iter()
            .filter_map(|i| i.metadata.creation_timestamp.as_ref())
            .map(|t| t.0.duration_since(since).as_secs_f64())
            .collect();
        let opened = (!offsets.is_empty()).then(|| {
            (
                offsets.iter().copied().fold(f64::INFINITY, f64::min),
                offsets.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            )
        });
        Ok(Self {
            total: found.len(),
            unavailable: with("DeploymentUnavailable"),
            crashloop: with("CrashLoopBackOff"),
            opened,
        })
    }
}

impl std::fmt::Display for Detected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({} DeploymentUnavailable, {} CrashLoopBackOff)",
            self.total, self.unavailable, self.crashloop
        )
    }
}

impl Operator {
    /// Starts the release binary on `ns` and waits until /readyz answers 200.
    async fn start(kubeconfig: &Path, ns: &str, settings: &Settings) -> Result<Self> {
        let extra: Vec<&str> = match &settings.unavailable_for {
            Some(d) => vec!["--unavailable-for", d],
            None => Vec::new(),
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_incident-operator"))
            .args([
                "run",
                "--http-addr",
                "127.0.0.1:0",
                "--namespace",
                ns,
                "--detection",
                "true",
                "--storm-limit",
                "1000",
                "--resolve-after",
                "off",
                "--log-format",
                "json",
            ])
            .args(extra)
            .env("KUBECONFIG", kubeconfig)
            .env_remove("INCIDENT_KUBECONFIG")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let started = Instant::now();
        let pid = child.id().ok_or("the operator exited at once")?;
        let stderr = child.stderr.take().ok_or("no stderr pipe")?;
        let mut lines = BufReader::new(stderr).lines();
        // The address it bound is in its log; read up to that line, then keep draining the pipe.
        let addr = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await? {
                let Ok(log) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                if let Some(addr) = log.get("addr").and_then(Value::as_str) {
                    return Ok(addr.parse::<SocketAddr>()?);
                }
            }
            Result::Err("the operator exited before serving HTTP".into())
        })
        .await
        .map_err(|_| "the operator logged no HTTP address within 30 s")??;
        let complaints = Arc::new(Mutex::new(BTreeMap::new()));
        let record = complaints.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let log = serde_json::from_str::<Value>(&line).ok();
                let field = |key: &str| {
                    log.as_ref()
                        .and_then(|l| l.get(key))
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                };
                let key = match field("level").as_deref() {
                    Some(level @ ("WARN" | "ERROR")) => {
                        format!("{level} {}", field("message").unwrap_or_default())
                    }
                    Some(_) => continue,
                    None => line.clone(),
                };
                let Ok(mut seen) = record.lock() else { return };
                let count: &mut usize = seen.entry(key).or_default();
                *count += 1;
                if *count == 1 {
                    eprintln!("operator: {line}");
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok((200, _)) = get(addr, "/readyz").await {
                break;
            }
            if Instant::now() >= deadline {
                return Err("the operator's /readyz never answered 200 within 30 s".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(Self {
            _child: child,
            pid,
            addr,
            started,
            complaints,
        })
    }

    async fn metric(&self, series: &str) -> Result<Option<f64>> {
        metric(self.addr, series).await
    }

    /// Polls /metrics until the detector has completed at least `passes` passes.
    async fn await_passes(&self, passes: f64) -> Result<()> {
        let deadline = Instant::now() + TIMEOUT * 2;
        loop {
            if self.metric(PASSES).await?.unwrap_or(0.0) >= passes {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("{PASSES} never reached {passes}").into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn usage(&self) -> Result<Usage> {
        usage(self.pid)
    }

    /// "N× message" for each warning or error the operator logged.
    fn complaints(&self) -> String {
        let seen = self
            .complaints
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if seen.is_empty() {
            return "none".to_owned();
        }
        seen.iter()
            .map(|(message, n)| format!("{n}× {message}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// What the operator uses now, and the incidents it opened (creation times after `since`).
    async fn checkpoint(
        &self,
        what: &str,
        incidents: &Api<Incident>,
        since: jiff::Timestamp,
    ) -> Result<Checkpoint> {
        let row = Checkpoint {
            what: what.to_owned(),
            usage: self.usage()?,
            passes: self.metric(PASSES).await?.unwrap_or(f64::NAN),
            uptime: self.started.elapsed().as_secs_f64(),
            incidents: Detected::list(incidents, since).await?,
        };
        eprintln!(
            "{what}: VmRSS {:.1} MiB, VmHWM {:.1} MiB, CPU {:.1} s, {} passes, incidents {}",
            row.usage.rss_mib, row.usage.hwm_mib, row.usage.cpu_secs, row.passes, row.incidents
        );
        Ok(row)
    }
}

/// Resident memory now and at its peak, and CPU time (user + system) of process `pid`.
fn usage(pid: u32) -> Result<Usage> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = |key: &str| -> Result<f64> {
        let line = status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .ok_or_else(|| format!("{key} missing from /proc/{pid}/status"))?;
        let value = line.trim().trim_end_matches("kB").trim();
        Ok(value.parse::<f64>()?)
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start with field 3, `state`.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |field: usize| -> Result<f64> {
        Ok(fields
            .get(field - 3)
            .ok_or("short /proc/<pid>/stat")?
            .parse::<f64>()?)
    };
    Ok(Usage {
        rss_mib: kib("VmRSS:")? / 1024.0,
        hwm_mib: kib("VmHWM:")? / 1024.0,
        cpu_secs: (ticks(14)? + ticks(15)?) / TICKS_PER_SEC,
    })
}

async fn metric(addr: SocketAddr, series: &str) -> Result<Option<f64>> {
    let (_, text) = get(addr, "/metrics").await?;
    Ok(text.lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok()).flatten()
    }))
}

/// A plain HTTP/1.1 GET: status code and body.
async fn get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
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

// ---- cluster plumbing ------------------------------------------------------------------------

/// Fake nodes for this run only: kwok plays their kubelet; the taint keeps other pods off.
async fn bench_nodes(
    client: &Client,
    run_id: &str,
    count: usize,
    created: &mut Created,
) -> Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    for i in 0..count {
        let name = format!("bench-node-{run_id}-{i}");
        let node: Node = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {
                "name": name,
                "annotations": { "kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0" },
                "labels": {
                    "type": "kwok", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64", BENCH_LABEL.0: BENCH_LABEL.1, NODE_LABEL: run_id,
                },
            },
            "spec": { "taints": [{ "key": TAINT_KEY, "value": run_id, "effect": "NoSchedule" }] },
        }))?;
        nodes.create(&PostParams::default(), &node).await?;
        created.nodes.push(name);
    }
    wait_all(
        &nodes,
        watcher::Config::default().labels(&format!("{NODE_LABEL}={run_id}")),
        TIMEOUT,
        "bench nodes Ready",
        |found| {
            found.len() == count
                && found.iter().all(|n| {
                    let status = n.status.as_ref();
                    let ready = status
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|cs| {
                            cs.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                        });
                    // The node lifecycle controller lifts its not-ready taint once it saw Ready.
                    let untainted =
                        n.spec
                            .as_ref()
                            .and_then(|s| s.taints.as_ref())
                            .is_none_or(|ts| {
                                ts.iter().all(|t| t.key != "node.kubernetes.io/not-ready")
                            });
                    ready && untainted
                })
        },
    )
    .await?;
    Ok(())
}

async fn namespace(client: &Client, prefix: &str, created: &mut Created) -> Result<String> {
    let mut ns = Namespace::default();
    ns.metadata.generate_name = Some(format!("{prefix}-"));
    ns.labels_mut()
        .insert(BENCH_LABEL.0.to_owned(), BENCH_LABEL.1.to_owned());
    let created_ns = Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    let name = created_ns.name_any();
    created.namespaces.push(name.clone());
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &name);
    tokio::time::timeout(
        TIMEOUT,
        await_condition(accounts, "default", |sa: Option<&_>| sa.is_some()),
    )
    .await??;
    Ok(name)
}

/// Healthy Deployments of `replicas` pods pinned to this run's nodes, created a few at a time.
async fn create_deployments(
    api: &Api<Deployment>,
    names: &[String],
    replicas: i32,
    run_id: &str,
) -> Result<()> {
    stream::iter(names)
        .map(|name| async move {
            let deployment: Deployment = serde_json::from_value(json!({
                "apiVersion": "apps/v1", "kind": "Deployment", "metadata": { "name": name },
                "spec": {
                    "replicas": replicas,
                    "selector": { "matchLabels": { "app": name } },
                    "template": {
                        "metadata": { "labels": { "app": name } },
                        "spec": {
                            "containers": [{ "name": "app", "image": format!("registry.local/{name}:1") }],
                            "nodeSelector": { NODE_LABEL: run_id },
                            "tolerations": [{ "key": TAINT_KEY, "operator": "Exists", "effect": "NoSchedule" }],
                        },
                    },
                },
            }))?;
            api.create(&PostParams::default(), &deployment).await?;
            Result::Ok(())
        })
        .buffer_unordered(8)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// Follows the objects `config` selects until `done` holds for a complete snapshot.
async fn wait_all<K>(
    api: &Api<K>,
    config: watcher::Config,
    timeout: Duration,
    what: &str,
    mut done: impl FnMut(&[Arc<K>]) -> bool,
) -> Result<Vec<Arc<K>>>
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let events = watcher(api.clone(), config)
        .default_backoff()
        .reflect(writer);
    let mut events = std::pin::pin!(events);
    let found = tokio::time::timeout(timeout, async {
        while let Some(event) = events.next().await {
            if let Err(error) = event {
                eprintln!("watch error while waiting for {what} (the watcher retries): {error}");
                continue;
            }
            if reader.wait_until_ready().now_or_never().is_some() {
                let objects = reader.state();
                if done(&objects) {
                    return Some(objects);
                }
            }
        }
        None
    })
    .await;
    match found {
        Ok(Some(objects)) => Ok(objects),
        Ok(None) => Err(format!("the watch for {what} ended").into()),
        Err(_) => Err(format!("timed out after {timeout:?} waiting for {what}").into()),
    }
}

async fn delete_namespace(client: &Client, ns: &str) {
    if let Err(error) = Api::<Namespace>::all(client.clone())
        .delete(ns, &DeleteParams::background())
        .await
    {
        eprintln!("warning: deleting namespace {ns}: {error}");
    }
}

/// Deletes what the run created: namespaces first (their pods go with them), then the nodes.
async fn cleanup(client: &Client, created: &Created) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for ns in &created.namespaces {
        match namespaces.delete(ns, &DeleteParams::background()).await {
            // Gone already, or terminating since the part that made it ended.
            Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {}
            Err(error) => eprintln!("warning: deleting namespace {ns}: {error}"),
            Ok(_) => {}
        }
    }
    for ns in &created.namespaces {
        let gone = await_condition(namespaces.clone(), ns, |n: Option<&Namespace>| n.is_none());
        match tokio::time::timeout(Duration::from_secs(900), gone).await {
            Ok(Ok(_)) => eprintln!("namespace {ns} deleted"),
            Ok(Err(error)) => eprintln!("warning: watching namespace {ns} go: {error}"),
            Err(_) => eprintln!("warning: namespace {ns} still terminating after 15 min"),
        }
    }
    let nodes: Api<Node> = Api::all(client.clone());
    for node in &created.nodes {
        if let Err(error) = nodes.delete(node, &DeleteParams::default()).await {
            eprintln!("warning: deleting node {node}: {error}");
        }
    }
    if !created.nodes.is_empty() {
        eprintln!("{} bench nodes deleted", created.nodes.len());
    }
}

// ---- statistics ------------------------------------------------------------------------------

struct Stats {
    median: f64,
    p90: f64,
    p99: f64,
    max: f64,
    min: f64,
}

impl Stats {
    fn of(samples: &mut [f64]) -> Self {
        samples.sort_by(f64::total_cmp);
        // Nearest rank: the smallest sample with at least p of them at or below it.
        let rank = |p: f64| -> f64 {
            let n = samples.len();
            if n == 0 {
                return f64::NAN;
            }
            let index = ((p * n as f64).ceil() as usize).clamp(1, n) - 1;
            samples[index]
        };
        let median = match samples.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => samples[n / 2],
            n => (samples[n / 2 - 1] + samples[n / 2]) / 2.0,
        };
        Self {
            median,
            p90: rank(0.90),
            p99: rank(0.99),
            max: samples.last().copied().unwrap_or(f64::NAN),
            min: samples.first().copied().unwrap_or(f64::NAN),
        }
    }
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.0} | {:.0} | {:.0} | {:.0} | {:.0}",
            self.median, self.p90, self.p99, self.max, self.min
        )
    }
}
