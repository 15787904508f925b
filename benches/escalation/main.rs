//! Escalation latency: a level's deadline → its page at a live webhook receiver, on the local
//! cluster, with several climbs overlapping.
//!
//!     make cluster && make bench-escalation     (INCIDENTS=n, default 30; CONCURRENT=n, default 10;
//!                                                WAIT=duration, default 2s)
//!
//! One namespace, one operator (the release binary, started as `incident-operator run --http-addr
//! 127.0.0.1:<free port> --namespace <ns> --detection false`), and in the namespace:
//!
//! - an OnCallSchedule `team` with three layers, one member each: primary alex, secondary sam,
//!   manager casey, each with a webhook handle;
//! - the namespace's default EscalationPolicy: the three layers as levels, each `after: WAIT`,
//!   `repeat: 0`;
//! - a signed webhook Channel `pager` routing `events: [Paged]` to a live receiver,
//!   `tests/e2e/receivers/webhook_receiver.py` on 127.0.0.1, which verifies each signature with the
//!   `standardwebhooks` package and stamps each delivery with `receivedAt` (its `time.time()`); run
//!   with a listen backlog of 128 instead of Python's 5 (see `receiver`).
//!
//! After one warm-up incident (not counted), INCIDENTS P1 incidents are opened CONCURRENT at a time,
//! none acknowledged: a batch is created back to back, and the next once every page of the batch
//! has arrived. The bench asks the receiver only from a second after the batch's last level is due,
//! since each ask makes it serialise everything it got, holding its lock (so batches start just
//! after a whole second). Each climb pages alex at detection, sam WAIT later and casey 2·WAIT
//! later. A page's level is its recipient. Its deadline is the climb's:
//! `status.escalation.startedAt` + k·WAIT, read from the incident afterwards, and its latency is
//! the receiver's `receivedAt` minus that.
//!
//! - Levels 1 and 2 are timer-driven: that latency is the figure to read.
//! - Level 0's deadline is detection, and `startedAt` is the creationTimestamp, a whole second: that
//!   latency includes 0–1 s of truncation. Level 0 is therefore also timed from the wall clock read
//!   just before the create call (as the notifications benchmark times the opening message).
//!
//! Once every climb is Exhausted (and 2 s more, for late resends), the bench counts deliveries that
//! came twice (same `webhook-id`), people paged twice for one incident under different ids, and the
//! incidents that got exactly one page per level, in level order; any of those wrong fails the run
//! after the table is printed.
//!
//! Everything created is labelled `incident.dev/bench=escalation` and deleted at the end, also on
//! failure or Ctrl-C; after a hard kill: `kubectl delete ns -l incident.dev/bench=escalation`.
//! The operator's log goes to target/bench-escalation/ (level: OPERATOR_LOG, default `warn`).
//!
//! Parts: `receiver` (the live receiver), `cluster` (the operator process and the resources),
//! `pages` (matching pages to levels, and the statistics).

use std::{
    path::Path,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use incident_operator::api::{
    Channel, EscalationPolicy, EscalationState, Incident, OnCallSchedule, duration,
};
use kube::{Api, Client, api::PostParams};
use serde_json::json;

mod cluster;
#[path = "../common/mod.rs"]
mod common;
#[path = "../common/namespaces.rs"]
mod namespaces;
mod pages;
mod receiver;

use cluster::{Operator, pager, policy, ready, schedule};
use common::{Result, TIMEOUT, connect, install_crds, kubeconfig_path, ms};
use namespaces::{cleanup, namespace};
use pages::{Analysis, Opened, Stats};
use receiver::{LiveReceiver, python};

/// Marks everything this benchmark creates.
const BENCH_LABEL: (&str, &str) = ("incident.dev/bench", "escalation");
/// The Standard Webhooks signing key of the pager Channel (`whsec_` + base64 of 24 bytes).
const SIGNING_KEY: &str = "whsec_UnEvmtluN13b2fGb6ImUDxvkbjK00Mq+";
/// The levels in order: the schedule's layer and the one member on call for it.
const LEVELS: [(&str, &str); 3] = [
    ("primary", "alex"),
    ("secondary", "sam"),
    ("manager", "casey"),
];
/// How often the bench asks the receiver what arrived once a batch's last level should be in; it
/// only paces the batches (the receiver stamps each delivery itself).
const POLL: Duration = Duration::from_secs(1);
/// After the last climb ends, how long a resend would have to show up.
const GRACE: Duration = Duration::from_secs(2);

struct Settings {
    incidents: usize,
    concurrent: usize,
    /// The levels' `after`, as written into the policy, and in seconds.
    wait: String,
    wait_s: f64,
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
        let wait = std::env::var("WAIT").unwrap_or_else(|_| "2s".to_owned());
        let wait_s = duration::parse(&wait)?.as_secs_f64();
        let settings = Self {
            incidents: number("INCIDENTS", 30)?,
            concurrent: number("CONCURRENT", 10)?,
            wait,
            wait_s,
        };
        if settings.incidents == 0 || settings.concurrent == 0 {
            return Err("INCIDENTS and CONCURRENT must be at least 1".into());
        }
        Ok(settings)
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    // `cargo test --all-targets` runs bench targets too; only `cargo bench` passes --bench.
    if !std::env::args().any(|a| a == "--bench") {
        println!("escalation benchmark: run it with `make bench-escalation`");
        return Ok(());
    }
    let settings = Settings::from_env()?;
    let kubeconfig = kubeconfig_path();
    let client = connect(&kubeconfig).await?;
    install_crds(&client).await?;
    let python = python()?;

    let mut namespaces = Vec::new();
    let outcome = tokio::select! {
        outcome = run(&client, &kubeconfig, &python, &settings, &mut namespaces) => outcome,
        _ = tokio::signal::ctrl_c() => Err("interrupted".into()),
    };
    // The operator and the receiver were killed when `run` ended (kill_on_drop); now the namespace.
    cleanup(&client, &namespaces).await;
    outcome
}

async fn run(
    client: &Client,
    kubeconfig: &Path,
    python: &Path,
    settings: &Settings,
    namespaces: &mut Vec<String>,
) -> Result<()> {
    let ns = namespace(client, "bench-escalation", BENCH_LABEL, namespaces).await?;
    let live = LiveReceiver::start(python).await?;
    pager(client, &ns, &live.url()).await?;
    schedule(client, &ns).await?;
    policy(client, &ns, &settings.wait).await?;
    let operator = Operator::start(kubeconfig, &ns).await?;
    ready::<Channel>(client, &ns, "pager", |c| {
        c.status.as_ref().map(|s| &s.conditions)
    })
    .await?;
    ready::<OnCallSchedule>(client, &ns, "team", |s| {
        s.status.as_ref().map(|s| &s.conditions)
    })
    .await?;
    ready::<EscalationPolicy>(client, &ns, "team", |p| {
        p.status.as_ref().map(|s| &s.conditions)
    })
    .await?;
    eprintln!("namespace {ns}, operator ready, channel, schedule and policy Ready");

    let api: Api<Incident> = Api::namespaced(client.clone(), &ns);
    // A batch's pages are all due within LEVELS·WAIT; TIMEOUT more is the slack for a slow cluster.
    let climb = Duration::from_secs_f64(settings.wait_s * LEVELS.len() as f64) + TIMEOUT;
    batch(&api, &live, &["warm-up".to_owned()], settings.wait_s, climb).await?;
    let names: Vec<String> = (0..settings.incidents)
        .map(|i| format!("page-{i:03}"))
        .collect();
    let mut walls = Vec::with_capacity(names.len());
    let mut create = Vec::with_capacity(names.len());
    for names in names.chunks(settings.concurrent) {
        for (wall, create_ms) in batch(&api, &live, names, settings.wait_s, climb).await? {
            walls.push(wall);
            create.push(create_ms);
        }
        eprintln!(
            "{}/{} incidents paged at every level",
            walls.len(),
            names.len()
        );
    }
    let mut opened = Vec::with_capacity(names.len());
    for (name, wall) in names.iter().zip(walls) {
        opened.push(climbed(&api, name, wall, climb).await?);
    }
    tokio::time::sleep(GRACE).await;
    let received = live.received().await?;
    let analysis = Analysis::of(&received, &opened, settings.wait_s);
    report(settings, &analysis, &create, &operator.deliveries().await?);
    if analysis.duplicate_ids > 0 || analysis.repeated_people > 0 || !analysis.problems.is_empty() {
        for problem in analysis.problems.iter().take(10) {
            eprintln!("problem: {problem}");
        }
        return Err("some pages came twice, out of order or not at all (see above)".into());
    }
    Ok(())
}

/// Opens `names` back to back and waits until each has had a page per level: the wall clock before
/// each create call and the call's round trip (ms).
async fn batch(
    api: &Api<Incident>,
    live: &LiveReceiver,
    names: &[String],
    wait_s: f64,
    timeout: Duration,
) -> Result<Vec<(f64, f64)>> {
    let mut opened = Vec::with_capacity(names.len());
    for name in names {
        opened.push(open(api, name).await?);
    }
    // Each GET makes the receiver serialise all it got under its lock: not while pages are due.
    let last_due = unix_seconds().floor() + wait_s * (LEVELS.len() - 1) as f64 + 1.0;
    let quiet = last_due - unix_seconds();
    if quiet > 0.0 {
        tokio::time::sleep(Duration::from_secs_f64(quiet)).await;
    }
    await_pages(live, names, timeout).await?;
    Ok(opened)
}

/// Creates P1 incident `name`; the wall clock just before the create call, and the call's round
/// trip (ms, monotonic clock).
async fn open(api: &Api<Incident>, name: &str) -> Result<(f64, f64)> {
    let incident: Incident = serde_json::from_value(json!({
        "apiVersion": "incident.dev/v1alpha1", "kind": "Incident", "metadata": { "name": name },
        "spec": { "title": format!("{name}: checkout returns 500"), "severity": "P1",
                  "description": "Payments fail for a third of requests" },
    }))?;
    let wall = unix_seconds();
    let start = Instant::now();
    api.create(&PostParams::default(), &incident).await?;
    Ok((wall, ms(start.elapsed())))
}

/// Waits until every incident of `names` has had a page per level at the receiver.
async fn await_pages(live: &LiveReceiver, names: &[String], timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let received = live.received().await?;
        let count = |name: &String| {
            received
                .iter()
                .filter(|r| r["body"]["incident"]["name"].as_str() == Some(name))
                .filter(|r| r["body"]["event"] == "Paged")
                .count()
        };
        let behind: Vec<&String> = names.iter().filter(|n| count(n) < LEVELS.len()).collect();
        if behind.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("not every level paged within {timeout:?} for {behind:?}").into());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits for incident `name`'s climb to end (nobody acknowledges) and reads what it recorded.
async fn climbed(api: &Api<Incident>, name: &str, wall: f64, timeout: Duration) -> Result<Opened> {
    let deadline = Instant::now() + timeout;
    loop {
        let incident = api.get(name).await?;
        let escalation = incident.status.and_then(|s| s.escalation);
        if let Some(esc) = escalation.filter(|e| e.state == EscalationState::Exhausted) {
            let started = esc
                .started_at
                .ok_or_else(|| format!("{name}: an Exhausted climb without startedAt"))?;
            return Ok(Opened {
                name: name.to_owned(),
                wall,
                started: started.0.as_second() as f64,
                steps: esc.steps,
                exhausted: true,
            });
        }
        if Instant::now() >= deadline {
            return Err(format!("{name}: the climb not Exhausted within {timeout:?}").into());
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

fn report(settings: &Settings, analysis: &Analysis, create: &[f64], deliveries: &[(String, f64)]) {
    let row = |what: &str, samples: &[f64]| println!("| {what} | {} |", Stats::of(samples));
    let timed: Vec<f64> = analysis.from_deadline[1..].concat();
    println!(
        "\ndeadline → page at the live receiver: {} P1 incidents × {} levels, after: {}, CONCURRENT={} (ms)\n",
        settings.incidents,
        LEVELS.len(),
        settings.wait,
        settings.concurrent
    );
    println!("| | n | p50 | p90 | p99 | max | min |\n|---|---|---|---|---|---|---|");
    row(
        "steps 1–2: startedAt + k·wait → page (timer-driven)",
        &timed,
    );
    for (k, (layer, _)) in LEVELS.iter().enumerate().skip(1) {
        row(
            &format!("  step {k} ({layer}) alone"),
            &analysis.from_deadline[k],
        );
    }
    row(
        "step 0: create call → page (wall clock)",
        &analysis.from_create,
    );
    row(
        "step 0: startedAt → page (includes 0–1 s of whole-second truncation)",
        &analysis.from_deadline[0],
    );
    row("for context: the create call itself", create);
    let expected = settings.incidents * LEVELS.len();
    println!(
        "\npages: {} deliveries for {expected} pages; arrived twice (same webhook-id): {}; \
         a person paged again for one incident under a new id: {}",
        analysis.pages, analysis.duplicate_ids, analysis.repeated_people
    );
    println!(
        "incidents with exactly {} pages, in level order: {}/{}; climbs Exhausted after {} steps: {}/{}",
        LEVELS.len(),
        analysis.in_order,
        settings.incidents,
        LEVELS.len(),
        analysis.exhausted,
        settings.incidents
    );
    let results: Vec<String> = deliveries
        .iter()
        .map(|(result, n)| format!("{result} {n}"))
        .collect();
    println!(
        "operator deliveries (with the warm-up): {}",
        results.join(", ")
    );
}
