//! The memory part: the operator's RSS and CPU as thousands of pods come up, break and stay broken.

use std::{
    collections::BTreeSet,
    net::SocketAddr,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::{Duration, Instant},
};

use incident_operator::api::Incident;
use k8s_openapi::api::apps::v1::Deployment;
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
    runtime::watcher,
};
use serde_json::json;

use crate::{
    Created, PASSES, Settings,
    burst::Burst,
    cluster::{create_deployments, delete_namespace, namespace, wait_all},
    common::{Result, TIMEOUT},
    observer::Observer,
    operator::{Checkpoint, Detected, Operator, metric, usage},
};

pub async fn memory(
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

pub fn available(d: &Deployment) -> i32 {
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
