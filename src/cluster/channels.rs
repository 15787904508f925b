//! The Channels a controller needs to know (cluster layer): a watch cache over the namespace the
//! operator serves (or all), plus the operator's own namespace, whose channels may serve every
//! namespace. Controllers wait for it before acting, so no transition is judged without them.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use kube::{
    Client,
    runtime::{
        WatchStreamExt,
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};
use tokio::task::JoinHandle;
use tracing::debug;

use crate::{Error, Result, api::Channel};

/// Watch caches of Channels, and the tasks that keep them.
pub struct Channels {
    stores: Vec<Store<Channel>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Channels {
    /// Starts watching Channels in `namespace` (all when None) and in `operator_namespace`.
    pub fn watch(
        client: &Client,
        namespace: Option<&str>,
        operator_namespace: Option<&str>,
    ) -> Self {
        let mut scopes = vec![namespace.map(str::to_owned)];
        if let (Some(own), Some(served)) = (operator_namespace, namespace)
            && own != served
        {
            scopes.push(Some(own.to_owned()));
        }
        let mut stores = Vec::new();
        let mut tasks = Vec::new();
        for scope in scopes {
            let (store, writer) = reflector::store();
            let stream = watcher(
                super::scoped::<Channel>(client, scope.as_deref()),
                watcher::Config::default(),
            )
            .default_backoff()
            .reflect(writer);
            tasks.push(tokio::spawn(async move {
                let mut stream = std::pin::pin!(stream);
                while let Some(event) = stream.next().await {
                    if let Err(error) = event {
                        debug!(%error, "channel watch error; the watcher retries");
                    }
                }
            }));
            stores.push(store);
        }
        Channels { stores, tasks }
    }

    /// Waits until every cache has listed once; an error after `limit` (the Channel CRD is
    /// probably not installed).
    pub async fn ready(&self, limit: Duration) -> Result<()> {
        let all = futures::future::join_all(self.stores.iter().map(|s| s.wait_until_ready()));
        match tokio::time::timeout(limit, all).await {
            Ok(results) if results.iter().all(|r| r.is_ok()) => Ok(()),
            _ => Err(Error::Unavailable(
                "the Channel resources cannot be listed: install the CRDs (kubectl apply -f crds/)"
                    .to_owned(),
            )),
        }
    }

    /// Every Channel known.
    pub fn all(&self) -> Vec<Arc<Channel>> {
        let mut all: Vec<Arc<Channel>> = self.stores.iter().flat_map(|s| s.state()).collect();
        all.sort_by(|a, b| a.metadata.uid.cmp(&b.metadata.uid));
        all.dedup_by(|a, b| a.metadata.uid == b.metadata.uid);
        all
    }

    /// The Channel `namespace/name`, if known.
    pub fn get(&self, reference: &str) -> Option<Arc<Channel>> {
        let (namespace, name) = reference.split_once('/')?;
        let object = ObjectRef::new(name).within(namespace);
        self.stores.iter().find_map(|s| s.get(&object))
    }
}

impl Drop for Channels {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
