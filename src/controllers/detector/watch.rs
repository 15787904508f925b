//! The detector's watches (controllers layer): Pods, ReplicaSets (metadata only), Deployments,
//! Incidents and, as configured, Nodes, Namespaces and Warning Events, each trimmed to what a
//! detection pass reads so memory follows what matters, not whole objects.

use std::sync::Arc;

use futures::{Stream, StreamExt};
use k8s_openapi::api::{
    apps::v1::{Deployment, ReplicaSet},
    core::v1::{Namespace, Node, Pod, PodSpec},
    events::v1::Event,
};
use kube::{
    Api, Client,
    core::PartialObjectMeta,
    runtime::{
        WatchStreamExt,
        reflector::{self, Store},
        watcher,
    },
};
use tokio::{sync::Notify, task::JoinHandle};
use tracing::debug;

use crate::{
    api::{Incident, metadata::severity_owners},
    cluster,
    core::detection::{
        classify::{SignalKind, may_signal},
        settings::DetectionConfig,
    },
};

/// What a pass reads: the watch caches.
pub(super) struct Stores {
    pub(super) pods: Store<Pod>,
    pub(super) replica_sets: Store<PartialObjectMeta<ReplicaSet>>,
    pub(super) deployments: Store<Deployment>,
    /// Nodes, trimmed to their name, labels and Ready condition; None when NodeNotReady is off.
    pub(super) nodes: Option<Store<Node>>,
    pub(super) incidents: Store<Incident>,
    /// Namespace labels, only when a namespace selector is configured.
    pub(super) namespaces: Option<Store<PartialObjectMeta<Namespace>>>,
    /// Warning Events of the configured reasons, only when any are configured.
    pub(super) events: Option<Store<Event>>,
}

/// Starts every watch the configuration needs; each change notifies `changed`. Returns the caches
/// and the tasks that drive the watches.
pub(super) fn start(
    client: &Client,
    namespace: Option<&str>,
    config: &DetectionConfig,
    changed: &Arc<Notify>,
) -> (Stores, Vec<JoinHandle<()>>) {
    let (pods, pods_writer) = reflector::store();
    let (replica_sets, rs_writer) = reflector::store();
    let (deployments, deployments_writer) = reflector::store();
    let (incidents, incidents_writer) = reflector::store();

    // Keep only what classification needs of each Pod, so memory follows pods, not their specs.
    let pod_stream = watcher(
        cluster::scoped(client, namespace),
        watcher::Config::default(),
    )
    .default_backoff()
    .modify(|pod: &mut Pod| {
        // Of the spec only the node matters (which pods a NotReady node carries).
        pod.spec = pod.spec.take().map(|spec| PodSpec {
            node_name: spec.node_name,
            ..PodSpec::default()
        });
        pod.metadata.managed_fields = None;
        pod.metadata.annotations = None;
        pod.metadata.labels = None;
        // A healthy pod's status says nothing; keep statuses only where trouble can show.
        if !may_signal(pod) {
            pod.status = None;
        }
    })
    .reflect(pods_writer);
    let rs_stream = watcher(
        cluster::scoped::<PartialObjectMeta<ReplicaSet>>(client, namespace),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(rs_writer);
    let deployment_stream = watcher(
        cluster::scoped::<Deployment>(client, namespace),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(deployments_writer);
    // All incidents: the detector's own, and people's that opted in to auto-resolve.
    let incident_stream = watcher(
        cluster::scoped::<Incident>(client, namespace),
        watcher::Config::default(),
    )
    .default_backoff()
    .modify(|incident: &mut Incident| {
        // The timeline is the lifecycle controller's business; keep memory to what is used here:
        // of the managed fields, only who owns the severity.
        incident.metadata.managed_fields = severity_owners(incident.metadata.managed_fields.take());
        if let Some(status) = incident.status.as_mut() {
            status.timeline.clear();
        }
    })
    .reflect(incidents_writer);
    let mut drivers = vec![
        tokio::spawn(drive(pod_stream, changed.clone())),
        tokio::spawn(drive(rs_stream, changed.clone())),
        tokio::spawn(drive(deployment_stream, changed.clone())),
        tokio::spawn(drive(incident_stream, changed.clone())),
    ];
    let nodes = config.signals.enabled(SignalKind::NodeNotReady).then(|| {
        let (nodes, writer) = reflector::store();
        let node_config = watcher::Config::default().labels(&config.node_selector);
        let stream = watcher(Api::<Node>::all(client.clone()), node_config)
            .default_backoff()
            .modify(|node: &mut Node| {
                node.metadata.managed_fields = None;
                node.metadata.annotations = None;
                if let Some(status) = node.status.as_mut() {
                    status.images = None;
                    status.conditions = status
                        .conditions
                        .take()
                        .map(|cs| cs.into_iter().filter(|c| c.type_ == "Ready").collect());
                }
            })
            .reflect(writer);
        drivers.push(tokio::spawn(drive(stream, changed.clone())));
        nodes
    });
    let namespaces = config.scope.namespace_selector.is_some().then(|| {
        let (namespaces, writer) = reflector::store();
        let stream = watcher(
            Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
        .reflect(writer);
        drivers.push(tokio::spawn(drive(stream, changed.clone())));
        namespaces
    });
    let events = config.warning_events.watched().then(|| {
        let (events, writer) = reflector::store();
        let wanted = config.warning_events.clone();
        // Only Warning Events, and of those only the configured reasons, are kept.
        let stream = watcher(
            cluster::scoped::<Event>(client, namespace),
            watcher::Config::default().fields("type=Warning"),
        )
        .default_backoff()
        .modify(|event: &mut Event| {
            event.metadata.managed_fields = None;
            event.metadata.annotations = None;
            event.related = None;
            event.deprecated_source = None;
            event.note = event.note.take().map(|n| n.chars().take(256).collect());
        })
        .filter(move |item| {
            // Only the configured reasons reach the store (a field selector cannot OR reasons).
            let keep = match item {
                Ok(watcher::Event::Apply(e) | watcher::Event::InitApply(e)) => {
                    e.reason.as_deref().is_some_and(|r| wanted.wanted(r))
                }
                _ => true,
            };
            std::future::ready(keep)
        })
        .reflect(writer);
        drivers.push(tokio::spawn(drive(stream, changed.clone())));
        events
    });
    let stores = Stores {
        pods,
        replica_sets,
        deployments,
        nodes,
        incidents,
        namespaces,
        events,
    };
    (stores, drivers)
}

async fn drive<S, T, E>(stream: S, changed: Arc<Notify>)
where
    S: Stream<Item = std::result::Result<T, E>>,
    E: std::fmt::Display,
{
    let mut stream = std::pin::pin!(stream);
    while let Some(event) = stream.next().await {
        match event {
            Ok(_) => changed.notify_one(),
            Err(error) => debug!(%error, "watch error; the watcher retries"),
        }
    }
}

pub(super) async fn ready(stores: &Stores) -> bool {
    use futures::FutureExt;
    stores.pods.wait_until_ready().now_or_never().is_some()
        && stores
            .replica_sets
            .wait_until_ready()
            .now_or_never()
            .is_some()
        && stores
            .deployments
            .wait_until_ready()
            .now_or_never()
            .is_some()
        && stores.incidents.wait_until_ready().now_or_never().is_some()
        && stores
            .nodes
            .as_ref()
            .is_none_or(|s| s.wait_until_ready().now_or_never().is_some())
        && stores
            .namespaces
            .as_ref()
            .is_none_or(|s| s.wait_until_ready().now_or_never().is_some())
        && stores
            .events
            .as_ref()
            .is_none_or(|s| s.wait_until_ready().now_or_never().is_some())
}
