//! What every reconcile of the incident controller shares (controllers layer).

use std::sync::Arc;

use kube::{Client, runtime::reflector::Store};

use super::runbook::Known;
use crate::{
    api::{Incident, Runbook},
    cluster::{
        assignment::Assignment,
        channels::{Cache, Channels, Policies, Schedules},
        workload_index::WorkloadIndex,
    },
    core::lifecycle::LifecycleConfig,
    metrics::Metrics,
};

/// What every reconcile needs.
pub(super) struct Context {
    pub client: Client,
    pub config: LifecycleConfig,
    pub metrics: Arc<Metrics>,
    /// Identifies this replica in Events (pod name or host name).
    pub instance: String,
    /// Test hook: the named point at which to abort (INCIDENT_OPERATOR_FAILPOINT).
    pub failpoints: crate::controllers::Failpoints,
    /// The largest incident (with its status) written; the bounds keep every real one far below.
    pub max_object_bytes: usize,
    pub store: Store<Incident>,
    /// The Channels that may hear this controller's incidents.
    pub channels: Channels,
    /// The escalation policies the incidents may follow, and the schedules they page through.
    pub policies: Policies,
    pub schedules: Schedules,
    /// Where Channels may serve every namespace.
    pub operator_namespace: Option<String>,
    /// The namespaces this process handles (its shard, the selected ones).
    pub assignment: Assignment,
    /// Workloads' metadata and the Runbooks, from watch caches.
    pub workloads: WorkloadIndex,
    pub runbooks: Cache<Runbook>,
}

impl Context {
    pub fn known(&self) -> Known<'_> {
        Known {
            workloads: &self.workloads,
            runbooks: &self.runbooks,
        }
    }
}
