//! The latency part: per trial, one pod breaks; signal → Incident as the benchmark's watches saw it.

use std::{path::Path, time::Instant};

use k8s_openapi::api::{apps::v1::Deployment, core::v1::Pod};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, Patch, PatchParams},
    runtime::watcher,
};
use serde_json::json;

use crate::{
    Created, PASSES, Settings,
    cluster::{create_deployments, delete_namespace, namespace, wait_all},
    common::{Result, TIMEOUT},
    memory::available,
    observer::{Observer, pods_of, ready, tally},
    operator::Operator,
    stats::{Stats, signed_ms},
};

pub async fn latency(
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
    let opened_as = {
        let seen = observer.seen();
        tally(names.iter().filter_map(|name| seen.opened_as.get(name)))
    };
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
    println!("incidents as they first arrived (severity, availability): {opened_as}");
    println!("operator warnings and errors: {complaints}");
    Ok(())
}
