//! The Channels, EscalationPolicies and OnCallSchedules a controller needs to know (cluster layer):
//! a watch cache over the namespace the operator serves (or all), plus the operator's own
//! namespace, whose channels and default policy may serve every namespace. Controllers wait for it
//! before acting, so no transition is judged without them.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use kube::Resource;
use kube::{
    Client,
    runtime::{
        WatchStreamExt,
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};
use serde::de::DeserializeOwned;
use tokio::task::JoinHandle;
use tracing::debug;

use crate::{
    Error, Result,
    api::{Channel, EscalationPolicy, OnCallSchedule},
};

/// Watch caches of one kind, and the tasks that keep them.
pub struct Cache<K: Resource<DynamicType = ()> + 'static> {
    stores: Vec<Store<K>>,
    tasks: Vec<JoinHandle<()>>,
}

/// The Channels that may hear the incidents served.
pub type Channels = Cache<Channel>;
/// The EscalationPolicies the incidents served may follow.
pub type Policies = Cache<EscalationPolicy>;
/// The OnCallSchedules those policies page through.
pub type Schedules = Cache<OnCallSchedule>;

impl<K> Cache<K>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    /// Starts watching in `namespace` (all when None) and in `operator_namespace`.
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
                super::scoped::<K>(client, scope.as_deref()),
                watcher::Config::default(),
            )
            .default_backoff()
            .reflect(writer);
            tasks.push(tokio::spawn(async move {
                let mut stream = std::pin::pin!(stream);
                while let Some(event) = stream.next().await {
                    if let Err(error) = event {
                        debug!(%error, kind = %K::kind(&()), "watch error; the watcher retries");
                    }
                }
            }));
            stores.push(store);
        }
        Cache { stores, tasks }
    }

    /// Waits until every cache has listed once; an error after `limit` (the CRD is probably not
    /// installed).
    pub async fn ready(&self, limit: Duration) -> Result<()> {
        let all = futures::future::join_all(self.stores.iter().map(|s| s.wait_until_ready()));
        match tokio::time::timeout(limit, all).await {
            Ok(results) if results.iter().all(|r| r.is_ok()) => Ok(()),
            _ => Err(Error::Unavailable(format!(
                "the {} resources cannot be listed: install the CRDs (kubectl apply -f crds/)",
                K::kind(&())
            ))),
        }
    }

    /// Every object known.
    pub fn all(&self) -> Vec<Arc<K>> {
        let mut all: Vec<Arc<K>> = self.stores.iter().flat_map(|s| s.state()).collect();
        all.sort_by(|a, b| a.meta().uid.cmp(&b.meta().uid));
        all.dedup_by(|a, b| a.meta().uid == b.meta().uid);
        all
    }

    /// The object `namespace/name`, if known.
    pub fn get(&self, reference: &str) -> Option<Arc<K>> {
        let (namespace, name) = reference.split_once('/')?;
        let object = ObjectRef::new(name).within(namespace);
        self.stores.iter().find_map(|s| s.get(&object))
    }
}

impl<K: Resource<DynamicType = ()> + 'static> Drop for Cache<K> {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
