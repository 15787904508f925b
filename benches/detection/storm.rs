//! The storm part: every pod of STORM_DEPLOYMENTS Deployments fails at once; how long each
//! Deployment's incident takes from its first failing pod, and how many writes the incidents cost.

use std::{collections::BTreeSet, path::Path, time::Instant};

use futures::{StreamExt, TryStreamExt, stream};
use incident_operator::api::Incident;
use k8s_openapi::api::{apps::v1::Deployment, core::v1::Pod};
use kube::{
    Api, Client, ResourceExt,
    api::{ListParams, Patch, PatchParams},
    runtime::watcher,
};
use serde_json::json;

use crate::{
    Created, DETECTED, Settings,
    burst::Burst,
    cluster::{create_deployments, delete_namespace, namespace, wait_all},
    common::{Result, TIMEOUT},
    memory::available,
    observer::{Observer, reading, tally},
    operator::Operator,
};

pub async fn storm(
    client: &Client,
    kubeconfig: &Path,
    settings: &Settings,
    run_id: &str,
    created: &mut Created,
) -> Result<()> {
    let (count, replicas) = (settings.storm_deployments, settings.replicas);
    let ns = namespace(client, "bench-storm", created).await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let names: Vec<String> = (0..count).map(|i| format!("svc-{i:03}")).collect();
    create_deployments(&deployments, &names, replicas, run_id).await?;
    wait_all(
        &deployments,
        watcher::Config::default(),
        settings.rollout_timeout,
        "storm Deployments available",
        |ds| ds.len() == count && ds.iter().all(|d| available(d) == replicas),
    )
    .await?;
    let operator = Operator::start(kubeconfig, &ns, settings).await?;
    operator.await_passes(1.0).await?;
    let mut observer = Observer::start(client, &ns, watcher::Config::default());
    observer
        .wait("the benchmark's watches listed", |seen, _| {
            seen.pods_listed && seen.incidents_listed
        })
        .await?;
    let writes_before = incident_writes(client).await?;

    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let all = pods.list(&ListParams::default()).await?.items;
    let fault = json!({ "metadata": { "labels": { "incident.dev/fault": "crashloop" } } });
    let started = Instant::now();
    stream::iter(&all)
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
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await?;
    let labelled = started.elapsed();
    let broken: BTreeSet<String> = names.iter().cloned().collect();
    observer
        .wait_at_most(TIMEOUT * 3, "every Deployment's incident", |seen, _| {
            broken.iter().all(|b| seen.alarmed.contains_key(b))
        })
        .await?;
    // Every pod failing in the incidents' counts: then no write is still due.
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns);
    let total = i64::try_from(count)? * i64::from(replicas);
    let settled = wait_all(
        &incidents,
        watcher::Config::default().labels(DETECTED),
        TIMEOUT * 3,
        "every failing pod counted",
        |found| {
            found
                .iter()
                .flat_map(|i| &i.spec.signals)
                .filter(|s| s.type_ == "CrashLoopBackOff")
                .map(|s| i64::from(s.count))
                .sum::<i64>()
                == total
        },
    )
    .await?;
    let to_counted = started.elapsed();
    let writes = incident_writes(client).await? - writes_before;
    let final_readings: Vec<String> = settled.iter().map(|i| reading(i)).collect();
    let opened_as = {
        let seen = observer.seen();
        tally(names.iter().filter_map(|name| seen.opened_as.get(name)))
    };
    let burst = {
        let seen = observer.seen();
        Burst::of(&seen, &broken, started)
    };
    observer.task.abort();
    let complaints = operator.complaints();
    drop(operator);
    delete_namespace(client, &ns).await;

    println!("\nstorm: {total} pods of {count} Deployments fail at once\n");
    println!(
        "labelling took {:.1} s; first failing pod seen {:.1} s after the first label, last {:.1} s",
        labelled.as_secs_f64(),
        burst.signals.0,
        burst.signals.1
    );
    println!(
        "incidents with CrashLoopBackOff: first {:.1} s, last {:.1} s; every pod counted after {:.1} s",
        burst.incidents.0,
        burst.incidents.1,
        to_counted.as_secs_f64()
    );
    println!(
        "per Deployment, its first failing pod → its incident (ms): median | p90 | p99 | max | min = {}",
        burst.latency
    );
    println!(
        "detected incidents: {}; writes to incidents (API server's count): {writes:.0}, {:.2} per incident",
        settled.len(),
        writes / settled.len().max(1) as f64
    );
    println!("incidents as they first arrived (severity, availability): {opened_as}");
    println!(
        "incidents once every pod was counted: {}",
        tally(&final_readings)
    );
    println!("operator warnings and errors: {complaints}");
    Ok(())
}

/// Writes to incidents (and their status) the API server counted, by every client.
async fn incident_writes(client: &Client) -> Result<f64> {
    let request = axum::http::Request::get("/metrics").body(Vec::new())?;
    let text = client.request_text(request).await?;
    Ok(text
        .lines()
        .filter(|l| {
            l.starts_with("apiserver_request_total{") && l.contains("resource=\"incidents\"")
        })
        .filter(|l| {
            ["APPLY", "PATCH", "CREATE", "UPDATE", "DELETE"]
                .iter()
                .any(|verb| l.contains(&format!("verb=\"{verb}\"")))
        })
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum())
}
