//! Cluster plumbing of this benchmark: its fake nodes, namespaces and Deployments, and cleanup.

use std::{fmt::Debug, sync::Arc, time::Duration};

use futures::{FutureExt, StreamExt, TryStreamExt, stream};
use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{Namespace, Node, ServiceAccount},
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{DeleteParams, PostParams},
    runtime::{WatchStreamExt, reflector, wait::await_condition, watcher},
};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::{
    BENCH_LABEL, Created, NODE_LABEL, TAINT_KEY,
    common::{Result, TIMEOUT},
};

/// Fake nodes for this run only: kwok plays their kubelet; the taint keeps other pods off.
pub async fn bench_nodes(
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

pub async fn namespace(client: &Client, prefix: &str, created: &mut Created) -> Result<String> {
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
pub async fn create_deployments(
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
pub async fn wait_all<K>(
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

pub async fn delete_namespace(client: &Client, ns: &str) {
    if let Err(error) = Api::<Namespace>::all(client.clone())
        .delete(ns, &DeleteParams::background())
        .await
    {
        eprintln!("warning: deleting namespace {ns}: {error}");
    }
}

/// Deletes what the run created: namespaces first (their pods go with them), then the nodes.
pub async fn cleanup(client: &Client, created: &Created) {
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
