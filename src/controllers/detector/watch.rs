//! The detector's watches (controllers layer): Pods, ReplicaSets (metadata only), Deployments,
//! Incidents and, as configured, Nodes, Namespaces and Warning Events. Each object enters its
//! cache through [`admit`] as the record a detection pass reads, never as the whole object.

use std::{collections::BTreeMap, sync::Arc};

use futures::{Stream, StreamExt};
use k8s_openapi::api::{
    apps::v1::{Deployment, ReplicaSet},
    core::v1::{Namespace, Node, Pod},
    events::v1::Event,
};
use kube::{
    Api, Client, Resource,
    core::PartialObjectMeta,
    runtime::{WatchStreamExt, watcher},
};
use prometheus_client::metrics::gauge::Gauge;
use tokio::{sync::Notify, task::JoinHandle};
use tracing::debug;

use super::cache::{Cache, admit};
use crate::cluster::{assignment::Assignment, watch_list::InitialLists};
use crate::{
    api::Incident,
    cluster,
    core::detection::{
        classify::SignalKind,
        records::{PodRecord, trim_deployment, trim_incident, trim_node},
        settings::DetectionConfig,
        workloads::controlling_workload,
    },
    metrics::{Metrics, ResourceLabels},
};

/// A ReplicaSet's controlling workload: (kind, name).
pub(super) type Controller = (&'static str, Box<str>);

/// What a pass reads: the watch caches.
pub(super) struct Stores {
    pub(super) pods: Arc<Cache<PodRecord>>,
    /// ReplicaSet → the Deployment or Rollout controlling it (kind, name), if any.
    pub(super) replica_sets: Arc<Cache<Option<Controller>>>,
    pub(super) deployments: Arc<Cache<Arc<Deployment>>>,
    /// Nodes, trimmed to their name, labels and Ready condition; None when NodeNotReady is off.
    pub(super) nodes: Option<Arc<Cache<Arc<Node>>>>,
    pub(super) incidents: Arc<Cache<Arc<Incident>>>,
    /// Namespace labels, only when a namespace selector is configured.
    pub(super) namespaces: Option<Arc<Cache<BTreeMap<String, String>>>>,
    /// Warning Events of the configured reasons, only when any are configured.
    pub(super) events: Option<Arc<Cache<Arc<Event>>>>,
}

/// Starts every watch the configuration needs; each change notifies `changed`. Their initial
/// state comes the way `lists` says (streamed one object at a time where served).
pub(super) fn start(
    client: &Client,
    namespace: Option<&str>,
    config: &DetectionConfig,
    lists: InitialLists,
    changed: &Arc<Notify>,
    assignment: &Assignment,
    metrics: &Metrics,
) -> (Stores, Vec<JoinHandle<()>>) {
    let base = lists.config();
    let mut drivers = Vec::new();
    let mut watches = Watches {
        drivers: &mut drivers,
        changed,
        assignment,
        metrics,
    };
    let pods = watches.start(
        "pods",
        cluster::scoped::<Pod>(client, namespace),
        base.clone(),
        |pod| Some(PodRecord::of(pod)),
    );
    let replica_sets = watches.start(
        "replicasets",
        cluster::scoped::<PartialObjectMeta<ReplicaSet>>(client, namespace),
        base.clone(),
        |rs| {
            Some(
                controlling_workload(&rs.metadata)
                    .map(|(kind, name)| (kind, name.into_boxed_str())),
            )
        },
    );
    let deployments = watches.start(
        "deployments",
        cluster::scoped::<Deployment>(client, namespace),
        base.clone(),
        |d| Some(Arc::new(trim_deployment(d))),
    );
    // All incidents: the detector's own, and people's that opted in to auto-resolve.
    let incidents = watches.start(
        "incidents",
        cluster::scoped::<Incident>(client, namespace),
        base.clone(),
        |incident: Incident| Some(Arc::new(trim_incident(incident))),
    );
    // Node incidents are filed in one namespace: only the shard handling it watches nodes.
    let watches_nodes = config.signals.enabled(SignalKind::NodeNotReady)
        && assignment.covers(&config.node_incident_namespace);
    let nodes = watches_nodes.then(|| {
        watches.start(
            "nodes",
            Api::<Node>::all(client.clone()),
            base.clone().labels(&config.node_selector),
            |node: Node| Some(Arc::new(trim_node(node))),
        )
    });
    let namespaces = config.scope.namespace_selector.is_some().then(|| {
        watches.start(
            "namespaces",
            Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
            base.clone(),
            |ns| Some(ns.metadata.labels.unwrap_or_default()),
        )
    });
    let events = config.warning_events.watched().then(|| {
        let wanted = config.warning_events.clone();
        // Only Warning Events (field selector), and of those only the configured reasons, are kept.
        watches.start(
            "events",
            cluster::scoped::<Event>(client, namespace),
            base.clone().fields("type=Warning"),
            move |mut event: Event| {
                if !event.reason.as_deref().is_some_and(|r| wanted.wanted(r)) {
                    return None;
                }
                event.metadata.resource_version = None;
                event.metadata.managed_fields = None;
                event.metadata.annotations = None;
                event.related = None;
                event.deprecated_source = None;
                event.note = event.note.take().map(|n| n.chars().take(256).collect());
                Some(Arc::new(event))
            },
        )
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

/// What every watch of one detector shares.
struct Watches<'a> {
    drivers: &'a mut Vec<JoinHandle<()>>,
    changed: &'a Arc<Notify>,
    assignment: &'a Assignment,
    metrics: &'a Metrics,
}

impl Watches<'_> {
    /// Starts one watch whose objects enter a new cache as `record` makes them; `resource` names
    /// its count of records in the metrics.
    fn start<K, R>(
        &mut self,
        resource: &str,
        api: Api<K>,
        config: watcher::Config,
        record: impl Fn(K) -> Option<R> + Send + 'static,
    ) -> Arc<Cache<R>>
    where
        K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
        R: PartialEq + Send + Sync + 'static,
    {
        let cache = Arc::new(Cache::default());
        let records = self
            .metrics
            .detection_records
            .get_or_create(&ResourceLabels {
                resource: resource.to_owned(),
            })
            .clone();
        let stream = watcher(api, config).default_backoff();
        self.drivers.push(tokio::spawn(drive(
            stream,
            cache.clone(),
            record,
            self.changed.clone(),
            self.assignment.clone(),
            records,
        )));
        cache
    }
}

async fn drive<S, K, R>(
    stream: S,
    cache: Arc<Cache<R>>,
    record: impl Fn(K) -> Option<R>,
    changed: Arc<Notify>,
    assignment: Assignment,
    records: Gauge,
) where
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>>,
    K: Resource,
    R: PartialEq,
{
    let mut stream = std::pin::pin!(stream);
    while let Some(event) = stream.next().await {
        match event {
            Ok(event) => {
                let Some(event) = assigned(event, &assignment) else {
                    continue;
                };
                // An object whose record did not change (a heartbeat, a status field detection
                // does not read) does not start a pass.
                if admit(&cache, event, &record) {
                    changed.notify_one();
                }
                records.set(i64::try_from(cache.len()).unwrap_or(i64::MAX));
            }
            Err(error) => debug!(%error, "watch error; the watcher retries"),
        }
    }
}

/// Objects of namespaces another shard handles (or outside the selector) are never kept: one
/// that is no longer ours is dropped as if deleted. Cluster-scoped objects pass.
fn assigned<K: Resource>(
    event: watcher::Event<K>,
    assignment: &Assignment,
) -> Option<watcher::Event<K>> {
    let ours = |object: &K| {
        object
            .meta()
            .namespace
            .as_deref()
            .is_none_or(|ns| assignment.covers(ns))
    };
    match event {
        watcher::Event::InitApply(object) if !ours(&object) => None,
        watcher::Event::Apply(object) if !ours(&object) => Some(watcher::Event::Delete(object)),
        other => Some(other),
    }
}

pub(super) fn ready(stores: &Stores) -> bool {
    stores.pods.ready()
        && stores.replica_sets.ready()
        && stores.deployments.ready()
        && stores.incidents.ready()
        && stores.nodes.as_ref().is_none_or(|c| c.ready())
        && stores.namespaces.as_ref().is_none_or(|c| c.ready())
        && stores.events.as_ref().is_none_or(|c| c.ready())
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{ConfigMap, Node};
    use kube::api::ObjectMeta;

    use super::*;
    use crate::core::shard::{Shard, shard_of};

    fn in_namespace(namespace: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                namespace: Some(namespace.into()),
                name: Some("x".into()),
                ..ObjectMeta::default()
            },
            ..ConfigMap::default()
        }
    }

    #[test]
    fn another_shards_objects_are_never_kept_and_cluster_scoped_ones_pass() {
        let shard = Shard { index: 0, count: 2 };
        let assignment = Assignment::of_shard(Some(shard), None);
        let ours = (0..50)
            .map(|i| format!("ns-{i}"))
            .find(|ns| shard_of(ns, 2) == 0)
            .expect("a namespace of shard 0");
        let theirs = (0..50)
            .map(|i| format!("ns-{i}"))
            .find(|ns| shard_of(ns, 2) == 1)
            .expect("a namespace of shard 1");
        let kept = |event| assigned(event, &assignment);
        assert!(matches!(
            kept(watcher::Event::InitApply(in_namespace(&ours))),
            Some(watcher::Event::InitApply(_))
        ));
        assert!(kept(watcher::Event::InitApply(in_namespace(&theirs))).is_none());
        assert!(matches!(
            kept(watcher::Event::Apply(in_namespace(&theirs))),
            Some(watcher::Event::Delete(_))
        ));
        assert!(matches!(
            assigned(watcher::Event::Apply(Node::default()), &assignment),
            Some(watcher::Event::Apply(_))
        ));
    }
}
