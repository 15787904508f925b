//! Which namespaces this process acts in (cluster layer): with `--shard N/M` only those that hash to
//! its shard, and with `--namespace-selector` only namespaces whose labels match (a watch of the
//! selected Namespaces keeps the set). Every controller asks before it writes, so one object is
//! handled by exactly one shard; the status page and the board still read everything.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, Client,
    api::ListParams,
    core::PartialObjectMeta,
    runtime::{
        WatchStreamExt,
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};
use tokio::task::JoinHandle;
use tracing::debug;

use crate::{Error, Result, core::shard::Shard};

/// The namespaces assigned to this process. Cloning is cheap; the watch ends with the last clone.
#[derive(Clone, Default)]
pub struct Assignment {
    shard: Option<Shard>,
    selected: Option<Selected>,
    /// The operator's own namespace: its Channels and policies serve everyone, so the selector does
    /// not apply to it, only the shard.
    operator_namespace: Option<String>,
}

#[derive(Clone)]
struct Selected {
    selector: String,
    /// Counts changes to the selected set, after the store has them.
    changes: tokio::sync::watch::Receiver<u64>,
    store: Store<PartialObjectMeta<Namespace>>,
    _task: Arc<Watch>,
}

struct Watch(JoinHandle<()>);

impl Drop for Watch {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How long the selected namespaces may take to be known at start.
const READY: Duration = Duration::from_secs(30);

impl Assignment {
    /// Everything the process watches: no shard, no selector.
    pub fn everything() -> Self {
        Self::default()
    }

    /// The namespaces of `shard` (all when None), no selector.
    pub fn of_shard(shard: Option<Shard>, operator_namespace: Option<String>) -> Self {
        Self {
            shard,
            selected: None,
            operator_namespace,
        }
    }

    /// Starts watching the namespaces `selector` selects (when given) and waits until they are
    /// known. A selector the API server cannot parse is an error here, before anything acts.
    pub async fn start(
        client: &Client,
        shard: Option<Shard>,
        selector: Option<&str>,
        operator_namespace: Option<String>,
    ) -> Result<Self> {
        let selected = match selector {
            None => None,
            Some(selector) => {
                // Names and labels are all it needs: metadata-only lists and watches.
                let api: Api<PartialObjectMeta<Namespace>> = Api::all(client.clone());
                // One cheap list first: its 400 names the mistake in the selector.
                api.list(&ListParams::default().labels(selector).limit(1))
                    .await
                    .map_err(Error::Kube)?;
                let (store, writer) = reflector::store();
                let stream = watcher(api, watcher::Config::default().labels(selector))
                    .default_backoff()
                    .reflect(writer);
                let (changed, changes) = tokio::sync::watch::channel(0_u64);
                let task = tokio::spawn(async move {
                    let mut stream = std::pin::pin!(stream);
                    while let Some(event) = stream.next().await {
                        match event {
                            // Told only once the store holds it: a reconcile it wakes sees it.
                            Ok(_) => changed.send_modify(|n| *n = n.wrapping_add(1)),
                            Err(error) => {
                                debug!(%error, "namespace watch error; the watcher retries");
                            }
                        }
                    }
                });
                let task = Arc::new(Watch(task));
                let unavailable =
                    || Error::Unavailable("the selected namespaces cannot be listed".to_owned());
                tokio::time::timeout(READY, store.wait_until_ready())
                    .await
                    .map_err(|_| unavailable())?
                    .map_err(|_| unavailable())?;
                Some(Selected {
                    selector: selector.to_owned(),
                    changes,
                    store,
                    _task: task,
                })
            }
        };
        Ok(Self {
            shard,
            selected,
            operator_namespace,
        })
    }

    /// Whether this process acts on objects in `namespace`.
    pub fn covers(&self, namespace: &str) -> bool {
        if self.shard.is_some_and(|shard| !shard.owns(namespace)) {
            return false;
        }
        if self.operator_namespace.as_deref() == Some(namespace) {
            return true;
        }
        match &self.selected {
            None => true,
            Some(selected) => selected.store.get(&ObjectRef::new(namespace)).is_some(),
        }
    }

    /// The namespace selector, when one narrows the namespaces.
    pub fn selector(&self) -> Option<&str> {
        self.selected.as_ref().map(|s| s.selector.as_str())
    }

    /// Yields after each change to the selected namespaces, once the change is in force; None
    /// without a selector.
    pub fn changes(&self) -> Option<impl futures::Stream<Item = ()> + Send + 'static> {
        let receiver = self.selected.as_ref()?.changes.clone();
        Some(futures::stream::unfold(
            receiver,
            |mut receiver| async move {
                receiver.changed().await.ok()?;
                Some(((), receiver))
            },
        ))
    }

    /// The shard, when the cluster is split.
    pub fn shard(&self) -> Option<Shard> {
        self.shard
    }
}
