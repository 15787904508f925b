//! Notification latency: incident opened → first message at a live webhook receiver, alone and with
//! a dead receiver routed the same incidents, in one run on the local cluster.
//!
//!     make cluster && make bench-notifications        (INCIDENTS=n, default 100; ACKS=n, default 10)
//!
//! Two phases, each in its own namespace with its own operator (the release binary, started as
//! `incident-operator run --http-addr 127.0.0.1:<free port> --namespace <ns> --detection false`):
//!
//! - anchor: one signed webhook Channel (`live`, every severity and event) to a live receiver,
//!   `tests/e2e/receivers/webhook_receiver.py` on 127.0.0.1, which verifies each signature with the
//!   `standardwebhooks` package and stamps each delivery with `receivedAt` (its `time.time()`);
//! - dead: the same, plus a second signed Channel (`dead`) routed the same incidents to a receiver
//!   on 127.0.0.1 that accepts the connection, reads the request and never answers (a wedged
//!   receiver, held until the operator's own 10 s request timeout; then retried with backoff). That
//!   is nastier than a closed port, which refuses at once and costs the operator nothing.
//!
//! Each phase opens one warm-up incident (not counted), then INCIDENTS incidents one after another:
//! the wall clock (SystemTime, the clock Python's `time.time()` reads on the same machine) is read
//! just before the create call, and the latency is the receiver's `receivedAt` of the incident's
//! first message minus that. The next incident is created once the message arrived. The create
//! call's own round trip is reported for context (monotonic clock).
//!
//! Then the follow-up: ACKS more incidents (0: none), each acknowledged as soon as its opening
//! message arrived; timed from just before the acknowledging patch to the `Acknowledged` message at
//! the live receiver. It shows whether the live channel's next message waits for the dead one. In
//! the dead phase it starts once the dead receiver has had two requests per incident opened so far
//! (each first attempt timed out and retried), so the follow-ups meet the dead channel's retries.
//!
//! Everything created is labelled `incident.dev/bench=notifications` and deleted at the end, also on
//! failure or Ctrl-C; after a hard kill: `kubectl delete ns -l incident.dev/bench=notifications`.
//! The operators' logs go to target/bench-notifications/ (level: OPERATOR_LOG, default `warn`).
//!
//! Parts: `receivers` (the live and the dead one), `cluster` (the operator process, namespaces,
//! Secrets, Channels, cleanup).

use std::{
    path::Path,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use incident_operator::api::Incident;
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::json;

mod cluster;
#[path = "../common/mod.rs"]
mod common;
#[path = "../common/namespaces.rs"]
mod namespaces;
mod receivers;

use cluster::{Operator, channel_ready, hook_secret, webhook_channel};
use common::{Result, TIMEOUT, connect, install_crds, kubeconfig_path, ms};
use namespaces::{cleanup, namespace};
use receivers::{DeadCounts, DeadReceiver, LiveReceiver, python};

/// Marks everything this benchmark creates.
const BENCH_LABEL: (&str, &str) = ("incident.dev/bench", "notifications");
/// The Standard Webhooks signing key of both Channels (`whsec_` + base64 of 24 bytes).
const SIGNING_KEY: &str = "whsec_UnEvmtluN13b2fGb6ImUDxvkbjK00Mq+";
/// How often the benchmark asks the live receiver what arrived (does not affect the measurement:
/// the receiver stamps each delivery itself).
const POLL: Duration = Duration::from_millis(20);

#[derive(Clone, Copy)]
struct Settings {
    incidents: usize,
    acks: usize,
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
        let settings = Self {
            incidents: number("INCIDENTS", 100)?,
            acks: number("ACKS", 10)?,
        };
        if settings.incidents == 0 {
            return Err("INCIDENTS must be at least 1".into());
        }
        Ok(settings)
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    // `cargo test --all-targets` runs bench targets too; only `cargo bench` passes --bench.
    if !std::env::args().any(|a| a == "--bench") {
        println!("notifications benchmark: run it with `make bench-notifications`");
        return Ok(());
    }
    let settings = Settings::from_env()?;
    let kubeconfig = kubeconfig_path();
    let client = connect(&kubeconfig).await?;
    install_crds(&client).await?;
    let python = python()?;

    let mut namespaces = Vec::new();
    let outcome = tokio::select! {
        outcome = run(&client, &kubeconfig, &python, settings, &mut namespaces) => outcome,
        _ = tokio::signal::ctrl_c() => Err("interrupted".into()),
    };
    // The operators and receivers were killed when `run` ended (kill_on_drop); now the namespaces.
    cleanup(&client, &namespaces).await;
    outcome
}

async fn run(
    client: &Client,
    kubeconfig: &Path,
    python: &Path,
    settings: Settings,
    namespaces: &mut Vec<String>,
) -> Result<()> {
    let anchor = phase(client, kubeconfig, python, settings, false, namespaces).await?;
    let dead = phase(client, kubeconfig, python, settings, true, namespaces).await?;
    report(settings, &anchor, &dead);
    Ok(())
}

/// What one phase measured.
struct Measured {
    /// Incident created → first message at the live receiver (ms).
    opened: Stats,
    /// The create call's round trip (ms).
    create: Stats,
    /// Acknowledged → the `Acknowledged` message at the live receiver (ms).
    acknowledged: Stats,
    /// What the dead receiver saw, in the phase that has one.
    dead: Option<DeadCounts>,
    /// The operator's `notification_deliveries_total` by result, at the end of the phase.
    deliveries: Vec<(String, f64)>,
}

async fn phase(
    client: &Client,
    kubeconfig: &Path,
    python: &Path,
    settings: Settings,
    with_dead: bool,
    namespaces: &mut Vec<String>,
) -> Result<Measured> {
    let label = if with_dead { "dead" } else { "anchor" };
    let ns = namespace(
        client,
        &format!("bench-notify-{label}"),
        BENCH_LABEL,
        namespaces,
    )
    .await?;
    let live = LiveReceiver::start(python).await?;
    hook_secret(client, &ns, "live-hook", &live.url()).await?;
    webhook_channel(client, &ns, "live", "live-hook").await?;
    let dead = if with_dead {
        let dead = DeadReceiver::start().await?;
        hook_secret(client, &ns, "dead-hook", &dead.url()).await?;
        webhook_channel(client, &ns, "dead", "dead-hook").await?;
        Some(dead)
    } else {
        None
    };
    let operator = Operator::start(kubeconfig, &ns, label).await?;
    channel_ready(client, &ns, "live").await?;
    if with_dead {
        channel_ready(client, &ns, "dead").await?;
    }
    eprintln!("{label}: namespace {ns}, operator ready, channels Ready");

    let api: Api<Incident> = Api::namespaced(client.clone(), &ns);
    open(&api, &live, "warm-up").await?;
    let mut opened = Vec::with_capacity(settings.incidents);
    let mut create = Vec::with_capacity(settings.incidents);
    for i in 0..settings.incidents {
        let sample = open(&api, &live, &format!("incident-{i}")).await?;
        opened.push(sample.latency_ms);
        create.push(sample.create_ms);
        if (i + 1) % 25 == 0 || i + 1 == settings.incidents {
            eprintln!("{label}: {}/{} incidents", i + 1, settings.incidents);
        }
    }
    let opened = Stats::of(&mut opened);
    eprintln!("{label}: opened → first message {opened}");
    if let (Some(dead), true) = (&dead, settings.acks > 0) {
        // Let the dead channel's retries begin: each incident's first attempt timed out and a
        // second one made, so the follow-ups meet its backoff and failure records, not just
        // first attempts.
        let want = 2 * (settings.incidents + 1);
        dead.await_requests(want, TIMEOUT).await?;
        eprintln!("{label}: the dead receiver has had {want} requests (each incident retried)");
    }
    let mut acknowledged = Vec::with_capacity(settings.acks);
    for i in 0..settings.acks {
        let name = format!("ack-{i}");
        open(&api, &live, &name).await?;
        acknowledged.push(acknowledge(&api, &live, &name).await?);
    }
    let acknowledged = Stats::of(&mut acknowledged);
    if settings.acks > 0 {
        eprintln!("{label}: acknowledged → its message {acknowledged}");
    }
    Ok(Measured {
        opened,
        create: Stats::of(&mut create),
        acknowledged,
        dead: dead.as_ref().map(DeadReceiver::counts),
        deliveries: operator.deliveries().await?,
    })
}

struct Sample {
    latency_ms: f64,
    create_ms: f64,
}

/// Opens incident `name` and waits for its first message at the live receiver.
async fn open(api: &Api<Incident>, live: &LiveReceiver, name: &str) -> Result<Sample> {
    let incident: Incident = serde_json::from_value(json!({
        "apiVersion": "incident.dev/v1alpha1", "kind": "Incident", "metadata": { "name": name },
        "spec": { "title": format!("{name}: checkout returns 500"), "severity": "P1",
                  "description": "Payments fail for a third of requests" },
    }))?;
    let wall = unix_seconds();
    let start = Instant::now();
    api.create(&PostParams::default(), &incident).await?;
    let create = start.elapsed();
    let latency_ms = arrival(live, name, "Opened", wall, start + TIMEOUT).await?;
    Ok(Sample {
        latency_ms,
        create_ms: ms(create),
    })
}

/// Acknowledges incident `name`; milliseconds until its `Acknowledged` message arrived.
async fn acknowledge(api: &Api<Incident>, live: &LiveReceiver, name: &str) -> Result<f64> {
    let patch = json!({ "spec": { "acknowledgment": { "by": "bench" } } });
    let wall = unix_seconds();
    let start = Instant::now();
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    arrival(live, name, "Acknowledged", wall, start + TIMEOUT).await
}

/// Waits for incident `name`'s `event` message at the live receiver (verified; an `Opened` must be
/// the incident's first message); milliseconds from `wall` to the receiver's `receivedAt`.
async fn arrival(
    live: &LiveReceiver,
    name: &str,
    event: &str,
    wall: f64,
    deadline: Instant,
) -> Result<f64> {
    loop {
        let received = live.received().await?;
        let mine: Vec<&serde_json::Value> = received
            .iter()
            .filter(|r| r["body"]["incident"]["name"].as_str() == Some(name))
            .collect();
        if let Some(first) = mine
            .first()
            .filter(|r| event == "Opened" && r["body"]["event"] != event)
        {
            return Err(format!("{name}: the first message is not Opened: {first}").into());
        }
        if let Some(found) = mine
            .iter()
            .find(|r| r["body"]["event"].as_str() == Some(event))
        {
            if found["verified"] != true {
                return Err(
                    format!("{name}: the {event} message failed verification: {found}").into(),
                );
            }
            let at = found["receivedAt"]
                .as_f64()
                .ok_or_else(|| format!("{name}: no receivedAt in {found}"))?;
            let latency_ms = (at - wall) * 1000.0;
            if latency_ms < 0.0 {
                return Err(format!("{name}: {event} received {latency_ms:.1} ms before the request (the wall clock stepped?)").into());
            }
            return Ok(latency_ms);
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "{name}: no {event} message at the live receiver within {TIMEOUT:?} ({} deliveries there in all)",
                received.len()
            )
            .into());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Seconds since the Unix epoch on the wall clock, as Python's `time.time()` gives them.
fn unix_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn report(settings: Settings, anchor: &Measured, dead: &Measured) {
    let row = |what: &str, stats: &Stats| println!("| {what} | {stats} |");
    let ratio = |of: fn(&Measured) -> &Stats| {
        let (a, d) = (of(anchor), of(dead));
        println!(
            "| ratio (dead / anchor) | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
            d.p50 / a.p50,
            d.p90 / a.p90,
            d.p99 / a.p99,
            d.max / a.max,
            d.min / a.min
        );
    };
    let header = "| | p50 | p90 | p99 | max | min |\n|---|---|---|---|---|---|";
    println!(
        "\nincident opened → first message at the live receiver, {} incidents (ms)\n\n{header}",
        settings.incidents
    );
    row("live receiver alone (anchor)", &anchor.opened);
    row(
        "with a dead receiver routed the same incidents",
        &dead.opened,
    );
    ratio(|m| &m.opened);
    row("for context: the create call (anchor)", &anchor.create);
    row("for context: the create call (dead)", &dead.create);
    if settings.acks > 0 {
        println!(
            "\nacknowledged as soon as the opening arrived → Acknowledged message, {} incidents (ms)\n\n{header}",
            settings.acks
        );
        row("live receiver alone (anchor)", &anchor.acknowledged);
        row(
            "with a dead receiver routed the same incidents",
            &dead.acknowledged,
        );
        ratio(|m| &m.acknowledged);
    }
    if let Some(counts) = &dead.dead {
        println!(
            "\ndead receiver: {} requests received and never answered, up to {} held open at once",
            counts.accepted, counts.max_open
        );
    }
    for (label, measured) in [("anchor", anchor), ("dead", dead)] {
        let results: Vec<String> = measured
            .deliveries
            .iter()
            .map(|(result, n)| format!("{result} {n}"))
            .collect();
        println!(
            "operator deliveries ({label} phase, both channels, all incidents): {}",
            results.join(", ")
        );
    }
}

/// Nearest-rank percentiles (as the detection benchmark reports them), in milliseconds.
struct Stats {
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
    min: f64,
}

impl Stats {
    fn of(samples: &mut [f64]) -> Self {
        samples.sort_by(f64::total_cmp);
        let rank = |p: f64| -> f64 {
            let n = samples.len();
            if n == 0 {
                return f64::NAN;
            }
            let index = ((p * n as f64).ceil() as usize).clamp(1, n) - 1;
            samples[index]
        };
        Self {
            p50: rank(0.50),
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
            self.p50, self.p90, self.p99, self.max, self.min
        )
    }
}
