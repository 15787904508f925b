//! The benchmark's own watches (Pods, detected Incidents), timestamping what they deliver.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::{StreamExt, TryStreamExt, stream};
use incident_operator::{api::Incident, core::detection::classify::pod_signals};
use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api, Client, ResourceExt,
    runtime::{
        WatchStreamExt,
        reflector::{self, Store},
        watcher,
    },
};
use tokio::sync::watch;

use crate::{
    DETECTED, PENDING_GRACE_SECS,
    common::{Result, TIMEOUT},
};

/// First deliveries the benchmark's own watches saw, per Deployment name.
#[derive(Default)]
pub struct Seen {
    pub signal: HashMap<String, Instant>,
    pub incident: HashMap<String, Instant>,
    /// First delivery of the Deployment's incident carrying a CrashLoopBackOff signal (in the
    /// memory part, a slow rollout may have opened the incident before, for unavailability).
    pub alarmed: HashMap<String, Instant>,
    /// How each Deployment's incident read when it first arrived: severity and availability.
    pub opened_as: HashMap<String, String>,
    pub pods_listed: bool,
    pub incidents_listed: bool,
    /// Times a watch had to list again (e.g. its resource version expired): deliveries around it
    /// arrive late, as a list, so a trial that sees one is not counted.
    pub relists: u32,
}

/// One client, two watches (Pods and detected workload Incidents of the namespace), one task
/// timestamping what they deliver.
pub struct Observer {
    pods: Store<Pod>,
    seen: Arc<Mutex<Seen>>,
    changes: watch::Receiver<u64>,
    pub task: tokio::task::JoinHandle<()>,
}

enum Delivery {
    Pod(Box<watcher::Event<Pod>>),
    Incident(Box<watcher::Event<Incident>>),
}

impl Observer {
    /// Watches the namespace's pods that `pods` selects and its detected workload incidents.
    pub fn start(client: &Client, ns: &str, pods: watcher::Config) -> Self {
        let (store, writer) = reflector::store();
        let pod_events = watcher(Api::<Pod>::namespaced(client.clone(), ns), pods)
            .default_backoff()
            .reflect(writer)
            .map_ok(|event| Delivery::Pod(Box::new(event)));
        let incident_events = watcher(
            Api::<Incident>::namespaced(client.clone(), ns),
            watcher::Config::default().labels(DETECTED),
        )
        .default_backoff()
        .map_ok(|event| Delivery::Incident(Box::new(event)));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (tx, changes) = watch::channel(0u64);
        let record = seen.clone();
        let task = tokio::spawn(async move {
            let mut deliveries = std::pin::pin!(stream::select(pod_events, incident_events));
            while let Some(delivery) = deliveries.next().await {
                let at = Instant::now();
                {
                    let Ok(mut seen) = record.lock() else { return };
                    match delivery {
                        Ok(Delivery::Pod(event)) => match *event {
                            watcher::Event::Apply(pod) | watcher::Event::InitApply(pod) => {
                                let now = jiff::Timestamp::now();
                                let troubled =
                                    !pod_signals(&pod, now, PENDING_GRACE_SECS).is_empty();
                                if let Some(app) = pod.labels().get("app").filter(|_| troubled) {
                                    seen.signal.entry(app.clone()).or_insert(at);
                                }
                            }
                            watcher::Event::Init if seen.pods_listed => seen.relists += 1,
                            watcher::Event::InitDone => seen.pods_listed = true,
                            _ => {}
                        },
                        Ok(Delivery::Incident(event)) => match *event {
                            watcher::Event::Apply(incident)
                            | watcher::Event::InitApply(incident) => {
                                if let Some(affected) = incident.spec.affected.first() {
                                    seen.incident.entry(affected.name.clone()).or_insert(at);
                                    seen.opened_as
                                        .entry(affected.name.clone())
                                        .or_insert_with(|| reading(&incident));
                                    if incident
                                        .spec
                                        .signals
                                        .iter()
                                        .any(|s| s.type_ == "CrashLoopBackOff")
                                    {
                                        seen.alarmed.entry(affected.name.clone()).or_insert(at);
                                    }
                                }
                            }
                            watcher::Event::Init if seen.incidents_listed => seen.relists += 1,
                            watcher::Event::InitDone => seen.incidents_listed = true,
                            _ => {}
                        },
                        Err(error) => eprintln!("watch error (the watcher retries): {error}"),
                    }
                }
                tx.send_modify(|n| *n += 1);
            }
        });
        Self {
            pods: store,
            seen,
            changes,
            task,
        }
    }

    pub fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits (at most TIMEOUT) until `done` holds after some delivery; returns the pods then.
    pub async fn wait(
        &mut self,
        what: &str,
        done: impl Fn(&Seen, &[Arc<Pod>]) -> bool,
    ) -> Result<Vec<Arc<Pod>>> {
        self.wait_at_most(TIMEOUT, what, done).await
    }

    pub async fn wait_at_most(
        &mut self,
        timeout: Duration,
        what: &str,
        done: impl Fn(&Seen, &[Arc<Pod>]) -> bool,
    ) -> Result<Vec<Arc<Pod>>> {
        let found = tokio::time::timeout(timeout, async {
            loop {
                let pods = self.pods.state();
                if done(&self.seen(), &pods) {
                    return Ok(pods);
                }
                if self.changes.changed().await.is_err() {
                    return Err("the benchmark's watches ended");
                }
            }
        })
        .await;
        match found {
            Ok(outcome) => Ok(outcome?),
            Err(_) => Err(format!("timed out after {timeout:?} waiting for {what}").into()),
        }
    }
}

pub fn pods_of(pods: &[Arc<Pod>], deployment: &str) -> Vec<Arc<Pod>> {
    pods.iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| p.labels().get("app").map(String::as_str) == Some(deployment))
        .cloned()
        .collect()
}

pub fn ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// An incident's severity and the availability its title states, e.g. "P1 0/1 available".
pub fn reading(incident: &Incident) -> String {
    let title = &incident.spec.title;
    let available = title
        .rfind('(')
        .and_then(|at| title[at + 1..].strip_suffix(')'))
        .unwrap_or("availability not stated");
    format!("{} {available}", incident.spec.severity)
}

/// How many incidents read each way, most common first.
pub fn tally<'a>(readings: impl IntoIterator<Item = &'a String>) -> String {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for reading in readings {
        *counts.entry(reading.as_str()).or_default() += 1;
    }
    let mut counts: Vec<(&str, usize)> = counts.into_iter().collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    counts
        .iter()
        .map(|(reading, n)| format!("{n} × {reading}"))
        .collect::<Vec<_>>()
        .join(", ")
}
