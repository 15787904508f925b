//! What the incident reconcile knows about workloads without asking (cluster layer): metadata-only
//! watch caches of the Deployments, StatefulSets and DaemonSets it serves (names, labels,
//! annotations; no managedFields), so an idle incident looked at again sends no GET. Full objects
//! are still read when an action or a runbook step works on one.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use k8s_openapi::{
    NamespaceResourceScope,
    api::apps::v1::{DaemonSet, Deployment, StatefulSet},
};
use kube::{
    Client, Resource, ResourceExt,
    core::PartialObjectMeta,
    runtime::{
        WatchStreamExt,
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};
use serde::de::DeserializeOwned;
use tokio::task::JoinHandle;
use tracing::debug;

use super::watch_list::InitialLists;
use crate::{Error, Result, api::AffectedKind};

/// Metadata of the workloads in scope, kept by watches.
pub struct WorkloadIndex {
    deployments: Store<PartialObjectMeta<Deployment>>,
    stateful_sets: Store<PartialObjectMeta<StatefulSet>>,
    daemon_sets: Store<PartialObjectMeta<DaemonSet>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for WorkloadIndex {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn index<K>(
    client: &Client,
    namespace: Option<&str>,
    lists: InitialLists,
    tasks: &mut Vec<JoinHandle<()>>,
) -> Store<PartialObjectMeta<K>>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    let api = super::scoped::<PartialObjectMeta<K>>(client, namespace);
    let stream = watcher(api, lists.config())
        .default_backoff()
        // Who wrote which field is never needed here, and it is most of an object's metadata.
        .modify(|meta| meta.managed_fields_mut().clear())
        .reflect(writer);
    tasks.push(tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            if let Err(error) = event {
                debug!(%error, kind = %K::kind(&()), "watch error; the watcher retries");
            }
        }
    }));
    store
}

impl WorkloadIndex {
    /// Starts the watches over `namespace` (all when None), their initial state received as
    /// `lists` says.
    pub fn watch(client: &Client, namespace: Option<&str>, lists: InitialLists) -> Self {
        let mut tasks = Vec::new();
        Self {
            deployments: index(client, namespace, lists, &mut tasks),
            stateful_sets: index(client, namespace, lists, &mut tasks),
            daemon_sets: index(client, namespace, lists, &mut tasks),
            tasks,
        }
    }

    /// Waits until every cache has listed once.
    pub async fn ready(&self, limit: Duration) -> Result<()> {
        let all = async {
            self.deployments.wait_until_ready().await.is_ok()
                && self.stateful_sets.wait_until_ready().await.is_ok()
                && self.daemon_sets.wait_until_ready().await.is_ok()
        };
        match tokio::time::timeout(limit, all).await {
            Ok(true) => Ok(()),
            _ => Err(Error::Unavailable(
                "Deployments, StatefulSets and DaemonSets cannot be listed".to_owned(),
            )),
        }
    }

    /// Whether the workload exists, when its kind is kept here (None: ask the API server).
    pub fn exists(&self, kind: AffectedKind, namespace: &str, name: &str) -> Option<bool> {
        match kind {
            AffectedKind::Deployment => Some(self.deployment(namespace, name).is_some()),
            AffectedKind::StatefulSet => Some(
                self.stateful_sets
                    .get(&ObjectRef::new(name).within(namespace))
                    .is_some(),
            ),
            AffectedKind::DaemonSet => Some(
                self.daemon_sets
                    .get(&ObjectRef::new(name).within(namespace))
                    .is_some(),
            ),
            _ => None,
        }
    }

    /// The labels of a workload the index keeps, if it exists.
    pub fn labels(
        &self,
        kind: AffectedKind,
        namespace: &str,
        name: &str,
    ) -> Option<std::collections::BTreeMap<String, String>> {
        let key = ObjectRef::new(name).within(namespace);
        let labels = match kind {
            AffectedKind::Deployment => self.deployments.get(&key)?.metadata.labels.clone(),
            AffectedKind::StatefulSet => self
                .stateful_sets
                .get(&ObjectRef::new(name).within(namespace))?
                .metadata
                .labels
                .clone(),
            AffectedKind::DaemonSet => self
                .daemon_sets
                .get(&ObjectRef::new(name).within(namespace))?
                .metadata
                .labels
                .clone(),
            _ => return None,
        };
        Some(labels.unwrap_or_default())
    }

    /// A Deployment's metadata, if it exists.
    pub fn deployment(
        &self,
        namespace: &str,
        name: &str,
    ) -> Option<Arc<PartialObjectMeta<Deployment>>> {
        self.deployments
            .get(&ObjectRef::new(name).within(namespace))
    }
}
