//! The memory part: the operator's RSS and VmHWM as the namespace grows through SIZES pods, in the
//! two cases users meet: pods created while the operator runs, and an operator (re)started into a
//! namespace that already holds them. COMPARE names other binaries measured beside, the same way.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use k8s_openapi::api::apps::v1::Deployment;
use kube::{Api, Client, runtime::watcher};

use crate::{
    Created, Settings,
    cluster::{create_deployments, delete_namespace, namespace, wait_all},
    common::Result,
    operator::{Operator, Usage},
    stats::Stats,
};

/// One binary under measurement, with the operator that has watched the namespace from the start.
struct Contender {
    label: String,
    binary: PathBuf,
    from_start: Operator,
}

/// One measured point: `pods` Running, a contender's memory in one case.
struct Row {
    pods: usize,
    case: &'static str,
    label: String,
    usage: Usage,
    /// Seconds from the operator's start to its first detection pass (the restart case only).
    first_pass: Option<f64>,
}

/// The detector's count of pods it keeps a record of.
const POD_RECORDS: &str = "incident_operator_detection_records{resource=\"pods\"}";
const GROWN: &str = "pods created while it runs";
const STARTED: &str = "started into the pods";

pub async fn memory(
    client: &Client,
    kubeconfig: &Path,
    settings: &Settings,
    run_id: &str,
    created: &mut Created,
) -> Result<()> {
    let replicas = usize::try_from(settings.replicas)?;
    let ns = namespace(client, "bench-memory", created).await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let mut binaries = vec![("now".to_owned(), settings.operator_bin.clone())];
    binaries.extend(settings.compare.iter().cloned());
    let mut contenders = Vec::new();
    for (label, binary) in binaries {
        let from_start = Operator::start_binary(&binary, kubeconfig, &ns, settings).await?;
        from_start.await_passes(1.0).await?;
        contenders.push(Contender {
            label,
            binary,
            from_start,
        });
    }
    let mut rows = Vec::new();
    for c in &contenders {
        let usage = c.from_start.usage()?;
        eprintln!("{}: empty namespace: {usage}", c.label);
        rows.push(Row {
            pods: 0,
            case: GROWN,
            label: c.label.clone(),
            usage,
            first_pass: None,
        });
    }

    let mut made = 0;
    for &size in &settings.sizes {
        let count = size.div_ceil(replicas);
        let names: Vec<String> = (made..count).map(|i| format!("svc-{i:05}")).collect();
        let started = Instant::now();
        create_deployments(&deployments, &names, settings.replicas, run_id).await?;
        made = made.max(count);
        let pods = made * replicas;
        wait_all(
            &deployments,
            watcher::Config::default(),
            settings.rollout_timeout,
            &format!("{pods} pods Running and Ready"),
            |ds| ds.len() == made && ds.iter().all(|d| complete(d, settings.replicas)),
        )
        .await?;
        eprintln!(
            "{pods} pods Running ({made} Deployments), {:.0} s for this step",
            started.elapsed().as_secs_f64()
        );
        // Measured once each operator keeps a record of every pod (a pod turning Ready changes
        // nothing it reads, so no pass need follow).
        for c in &contenders {
            c.from_start.await_metric(POD_RECORDS, pods as f64).await?;
        }
        for round in 0..settings.restarts {
            restart(&contenders, kubeconfig, &ns, settings, pods, &mut rows).await?;
            if round > 0 {
                continue;
            }
            // Read beside the first restart, after the same steady window.
            for c in &contenders {
                let usage = c.from_start.usage()?;
                eprintln!("{pods} pods, {}, {GROWN}: {usage}", c.label);
                rows.push(Row {
                    pods,
                    case: GROWN,
                    label: c.label.clone(),
                    usage,
                    first_pass: None,
                });
            }
        }
    }
    let complaints: Vec<String> = contenders
        .iter()
        .map(|c| format!("{}: {}", c.label, c.from_start.complaints()))
        .collect();
    drop(contenders);
    delete_namespace(client, &ns).await;
    report(&rows, replicas, settings.steady);
    println!("operator warnings and errors: {}", complaints.join("; "));
    Ok(())
}

/// The restart case once: a fresh operator per binary into the namespace as it is now, side by
/// side, measured STEADY seconds after its start.
async fn restart(
    contenders: &[Contender],
    kubeconfig: &Path,
    ns: &str,
    settings: &Settings,
    pods: usize,
    rows: &mut Vec<Row>,
) -> Result<()> {
    let mut fresh = Vec::new();
    for c in contenders {
        let operator = Operator::start_binary(&c.binary, kubeconfig, ns, settings).await?;
        fresh.push((c.label.clone(), operator, Instant::now()));
    }
    let mut first_pass = Vec::new();
    for (label, operator, started) in &fresh {
        operator.await_passes(1.0).await?;
        first_pass.push(started.elapsed().as_secs_f64());
        eprintln!(
            "{label}: restarted operator's first pass after {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    // Steady: a measurement window, not a wait for anything.
    tokio::time::sleep(settings.steady).await;
    for ((label, operator, _), first) in fresh.iter().zip(first_pass) {
        let usage = operator.usage()?;
        eprintln!("{pods} pods, {label}, {STARTED}: {usage}");
        rows.push(Row {
            pods,
            case: STARTED,
            label: label.clone(),
            usage,
            first_pass: Some(first),
        });
    }
    Ok(())
}

fn report(rows: &[Row], replicas: usize, steady: Duration) {
    println!(
        "\noperator memory, {replicas} pods per Deployment, {} s after the pods ran (restart case: {} s after the restart)\n",
        steady.as_secs(),
        steady.as_secs()
    );
    println!("| pods | case | binary | VmRSS (MiB) | VmHWM (MiB) | CPU (s) | first pass (s) |");
    println!("|---|---|---|---|---|---|---|");
    for row in rows {
        println!(
            "| {} | {} | {} | {:.1} | {:.1} | {:.1} | {} |",
            row.pods,
            row.case,
            row.label,
            row.usage.rss_mib,
            row.usage.hwm_mib,
            row.usage.cpu_secs,
            row.first_pass.map_or("".to_owned(), |s| format!("{s:.1}"))
        );
    }
    restarts_summary(rows);
    let mut sizes: Vec<usize> = rows.iter().map(|r| r.pods).filter(|&p| p > 0).collect();
    sizes.sort_unstable();
    sizes.dedup();
    if sizes.len() < 2 {
        println!("\nslope: not fitted (it needs two or more SIZES)");
        return;
    }
    println!("\nslope (least squares over the sizes measured, KiB per pod):\n");
    println!("| case | binary | VmRSS | VmHWM |");
    println!("|---|---|---|---|");
    let mut keys: Vec<(&str, &str)> = rows.iter().map(|r| (r.case, r.label.as_str())).collect();
    keys.dedup();
    keys.sort();
    keys.dedup();
    for (case, label) in keys {
        let points: Vec<&Row> = rows
            .iter()
            .filter(|r| r.case == case && r.label == label && r.pods > 0)
            .collect();
        let slope = |value: fn(&Usage) -> f64| {
            fit(&points
                .iter()
                .map(|r| (r.pods as f64, value(&r.usage) * 1024.0))
                .collect::<Vec<_>>())
        };
        println!(
            "| {case} | {label} | {:.2} | {:.2} |",
            slope(|u| u.rss_mib),
            slope(|u| u.hwm_mib)
        );
    }
}

/// Median and highest of the restart case where it was measured more than once per size.
fn restarts_summary(rows: &[Row]) {
    let mut keys: Vec<(usize, &str)> = rows
        .iter()
        .filter(|r| r.case == STARTED)
        .map(|r| (r.pods, r.label.as_str()))
        .collect();
    keys.sort();
    keys.dedup();
    let mut lines = Vec::new();
    for (pods, label) in keys {
        let of = |value: fn(&Usage) -> f64| {
            let mut values: Vec<f64> = rows
                .iter()
                .filter(|r| r.case == STARTED && r.pods == pods && r.label == label)
                .map(|r| value(&r.usage))
                .collect();
            (values.len(), Stats::of(&mut values))
        };
        let ((count, rss), (_, hwm)) = (of(|u| u.rss_mib), of(|u| u.hwm_mib));
        if count < 2 {
            continue;
        }
        lines.push(format!(
            "| {pods} | {label} | {count} | {:.1} | {:.1} | {:.1} | {:.1} |",
            rss.median(),
            hwm.median(),
            rss.max(),
            hwm.max()
        ));
    }
    if lines.is_empty() {
        return;
    }
    println!("\nrestarts, {STARTED}: median and highest (MiB)\n");
    println!(
        "| pods | binary | restarts | median VmRSS | median VmHWM | highest VmRSS | highest VmHWM |"
    );
    println!("|---|---|---|---|---|---|---|");
    for line in lines {
        println!("{line}");
    }
}

/// The least-squares slope of y over x; NaN with fewer than two distinct x.
fn fit(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    let (mx, my) = (
        points.iter().map(|p| p.0).sum::<f64>() / n,
        points.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    if sxx == 0.0 { f64::NAN } else { sxy / sxx }
}

fn complete(d: &Deployment, replicas: i32) -> bool {
    let Some(s) = &d.status else { return false };
    s.observed_generation == d.metadata.generation
        && s.available_replicas == Some(replicas)
        && s.updated_replicas == Some(replicas)
        && s.replicas == Some(replicas)
}

pub fn available(d: &Deployment) -> i32 {
    d.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}
