//! Status page throughput: requests per second and p99 latency of `/api/v2/summary.json` and the
//! HTML page on loopback at 100 concurrent clients, with 1,000 published incidents in history.
//!
//!     make cluster && make bench-status-page     (INCIDENTS=n, default 1000; SECONDS=n, default 15;
//!                                                 CONNECTIONS=n, default 100)
//!
//! One namespace holds a StatusPage `shop` (10 components in 2 groups, one maintenance window) and
//! INCIDENTS published, resolved Incidents spread over the last 90 days (3 public updates each, 1 to
//! 4 hours long, each on 1 or 2 components), plus 3 open ones. Their `status.publication` is written
//! by the bench (the status subresource), as the operator would have recorded it, so history spans
//! 90 days; the operator (the release binary) serves the page with `--status-page` and runs its
//! controllers on another, empty namespace, so nothing else competes for the CPU. Once the page
//! shows every incident, `wrk` (hack/bench-tools.sh installs Debian's) runs `-t4 -c CONNECTIONS
//! -d SECONDS --latency` against each path; the table shows its Requests/sec and 99% latency.
//!
//! Everything created is labelled `incident.dev/bench=status-page` and deleted at the end; after a
//! hard kill: `kubectl delete ns -l incident.dev/bench=status-page`.

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use futures::{StreamExt, stream};
use incident_operator::api::{Incident, StatusPage};
use jiff::{SignedDuration, Timestamp};
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    process::{Child, Command},
};

#[path = "common/mod.rs"]
mod common;
#[path = "common/namespaces.rs"]
mod namespaces;

use common::{Result, TIMEOUT, connect, install_crds, kubeconfig_path, ms};
use namespaces::{cleanup, namespace};

const BENCH_LABEL: (&str, &str) = ("incident.dev/bench", "status-page");
const COMPONENTS: [&str; 10] = [
    "checkout", "cart", "search", "catalog", "accounts", "login", "payments", "api", "webhooks",
    "email",
];

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn free_addr() -> Result<SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

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
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

async fn create_page(client: &Client, ns: &str) -> Result<()> {
    let components: Vec<Value> = COMPONENTS
        .iter()
        .enumerate()
        .map(|(n, name)| {
            json!({ "name": name, "group": if n < 5 { "Shop" } else { "Platform" },
                    "description": format!("The {name} service") })
        })
        .collect();
    let now = Timestamp::now();
    let page: StatusPage = serde_json::from_value(json!({
        "apiVersion": "incident.dev/v1alpha1", "kind": "StatusPage",
        "metadata": { "name": "shop" },
        "spec": { "title": "Shop status", "url": "https://status.example.com", "components": components,
                  "maintenances": [{ "name": "db", "title": "Database upgrade", "components": ["search"],
                                     "scheduledFor": now + SignedDuration::from_hours(24),
                                     "scheduledUntil": now + SignedDuration::from_hours(26) }] },
    }))?;
    Api::<StatusPage>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &page)
        .await?;
    Ok(())
}

/// Incident `n`: published, resolved `n` steps back in the last 90 days unless `open`.
async fn create_incident(client: &Client, ns: &str, n: u64, total: u64, open: bool) -> Result<()> {
    let api: Api<Incident> = Api::namespaced(client.clone(), ns);
    let now = Timestamp::now();
    let back = SignedDuration::from_secs((89 * 86_400 * n / total.max(1)) as i64 + 3600);
    let start = if open {
        now - SignedDuration::from_mins(30)
    } else {
        now - back
    };
    let length = SignedDuration::from_hours(1 + (n % 4) as i64);
    let components: Vec<&str> = vec![
        COMPONENTS[(n % 10) as usize],
        COMPONENTS[(n * 7 % 10) as usize],
    ];
    let impact = ["minor", "major", "critical"][(n % 3) as usize];
    let name = format!("incident-{n}");
    let incident: Incident = serde_json::from_value(json!({
        "apiVersion": "incident.dev/v1alpha1", "kind": "Incident",
        "metadata": { "name": name },
        "spec": { "title": format!("internal title {n}"), "severity": "P2",
                  "publication": { "title": format!("Elevated errors on {}", components[0]),
                                   "impact": impact, "components": components } },
    }))?;
    api.create(&PostParams::default(), &incident).await?;
    let at = |minutes: i64| start + SignedDuration::from_mins(minutes);
    let mut updates = vec![
        json!({ "id": format!("{n}-a"), "status": "investigating", "body": "We are investigating elevated error rates.", "author": "bench", "at": at(0) }),
        json!({ "id": format!("{n}-b"), "status": "identified", "body": "The cause is identified and a fix is being rolled out.", "author": "bench", "at": at(20) }),
    ];
    let mut publication = json!({ "publishedAt": at(0), "updates": [] });
    if !open {
        updates.push(json!({ "id": format!("{n}-c"), "status": "resolved", "body": "This incident has been resolved.", "author": "bench", "at": start + length }));
        publication["resolvedAt"] = json!(start + length);
    }
    publication["updates"] = json!(updates);
    api.patch_status(
        &name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": { "publication": publication } })),
    )
    .await?;
    Ok(())
}

async fn start_operator(ns: &str) -> Result<(Child, SocketAddr)> {
    let (http, page) = (free_addr()?, free_addr()?);
    let logs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-status-page");
    std::fs::create_dir_all(&logs)?;
    let log = std::fs::File::create(logs.join("operator.log"))?;
    let idle = format!("{ns}-idle");
    let reference = format!("{ns}/shop");
    let child = Command::new(env!("CARGO_BIN_EXE_incident-operator"))
        .args([
            "run",
            "--http-addr",
            &http.to_string(),
            "--namespace",
            &idle,
        ])
        .args(["--detection", "false", "--log-format", "json"])
        .args([
            "--status-page-addr",
            &page.to_string(),
            "--status-page",
            &reference,
        ])
        .env("KUBECONFIG", kubeconfig_path())
        .env_remove("INCIDENT_KUBECONFIG")
        .env(
            "RUST_LOG",
            std::env::var("OPERATOR_LOG").unwrap_or_else(|_| "warn".to_owned()),
        )
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()?;
    Ok((child, page))
}

/// wrk's Requests/sec and 99% latency (ms) for `url`.
async fn load(wrk: &str, url: &str, connections: u64, seconds: u64) -> Result<(f64, f64, String)> {
    let output = Command::new(wrk)
        .args([
            "-t4",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
            url,
        ])
        .output()
        .await?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let rps = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("no Requests/sec in wrk's output:\n{text}"))?;
    let p99 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .map(str::trim)
        .and_then(parse_latency)
        .ok_or_else(|| format!("no 99% latency in wrk's output:\n{text}"))?;
    if text.contains("Non-2xx") {
        return Err(format!("wrk saw errors:\n{text}").into());
    }
    Ok((rps, p99, text))
}

/// `1.23ms`, `456.00us`, `1.02s` -> milliseconds.
fn parse_latency(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (value, unit) = text.split_at(split);
    let value: f64 = value.parse().ok()?;
    match unit {
        "us" => Some(value / 1000.0),
        "ms" => Some(value),
        "s" => Some(value * 1000.0),
        _ => None,
    }
}

async fn run(client: &Client, namespaces: &mut Vec<String>) -> Result<()> {
    let (incidents, seconds, connections) = (
        setting("INCIDENTS", 1000),
        setting("SECONDS", 15),
        setting("CONNECTIONS", 100),
    );
    let wrk = {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/hack/bench-tools.sh");
        let out = std::process::Command::new(script)
            .stderr(Stdio::inherit())
            .output()?;
        if !out.status.success() {
            return Err(format!("{script} failed: the benchmark needs wrk").into());
        }
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    install_crds(client).await?;
    let ns = namespace(client, "bench-status", BENCH_LABEL, namespaces).await?;
    create_page(client, &ns).await?;
    let started = Instant::now();
    let results: Vec<Result<()>> = stream::iter(0..incidents + 3)
        .map(|n| {
            let ns = ns.clone();
            async move { create_incident(client, &ns, n, incidents, n >= incidents).await }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    results.into_iter().collect::<Result<Vec<()>>>()?;
    eprintln!(
        "{} incidents written in {:.0} ms",
        incidents + 3,
        ms(started.elapsed())
    );
    let (_operator, page) = start_operator(&ns).await?;
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Ok((200, body)) = get(page, "/api/v2/summary.json").await
            && let Ok(summary) = serde_json::from_str::<Value>(&body)
            && summary["incidents"]
                .as_array()
                .is_some_and(|i| i.len() == 3)
            && let Ok((200, body)) = get(page, "/api/v2/incidents.json").await
            && serde_json::from_str::<Value>(&body)
                .is_ok_and(|v| v["incidents"].as_array().is_some_and(|i| i.len() == 50))
        {
            break;
        }
        if Instant::now() > deadline {
            return Err("the status page never showed every incident".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let sizes = [
        (
            "/api/v2/summary.json",
            get(page, "/api/v2/summary.json").await?.1.len(),
        ),
        ("/", get(page, "/").await?.1.len()),
    ];
    println!(
        "\nstatus page, {incidents} resolved + 3 open published incidents, {connections} connections, {seconds}s each (wrk -t4)\n"
    );
    println!("| path | body | requests/s | p99 latency |");
    println!("|---|---|---|---|");
    for (path, size) in sizes {
        let (rps, p99, _) =
            load(&wrk, &format!("http://{page}{path}"), connections, seconds).await?;
        println!(
            "| `{path}` | {:.1} KiB | {rps:.0} | {p99:.1} ms |",
            size as f64 / 1024.0
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    // `cargo test --all-targets` runs bench targets too; only `cargo bench` passes --bench.
    if !std::env::args().any(|a| a == "--bench") {
        println!("status page benchmark: run it with `make bench-status-page`");
        return Ok(());
    }
    let client = connect(&kubeconfig_path()).await?;
    let mut namespaces = Vec::new();
    let outcome = tokio::select! {
        outcome = run(&client, &mut namespaces) => outcome,
        _ = tokio::signal::ctrl_c() => Err("interrupted".into()),
    };
    cleanup(&client, &namespaces).await;
    outcome
}
