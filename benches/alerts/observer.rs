//! One watch on the bench namespace's Incidents, stamping (monotonic clock, at receipt) when each
//! incident was first seen, when it first carried k alerts, and when it was first seen resolved.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use futures::StreamExt;
use incident_operator::api::Incident;
use kube::{
    Api, Client, ResourceExt,
    runtime::{watcher, watcher::Event},
};

use crate::common::Result;

/// What the watch saw of one incident.
#[derive(Clone, Debug)]
pub struct Seen {
    /// First seen (ADDED, or listed).
    pub added: Instant,
    /// The name of its first alert (`spec.alerts[0].name`).
    pub first_alert: String,
    /// `grew[k - 1]`: first seen carrying at least k alerts.
    pub grew: Vec<Instant>,
    /// First seen with `spec.resolution`.
    pub resolved: Option<Instant>,
}

type Table = Arc<Mutex<HashMap<String, Seen>>>;

/// The watch; stops when dropped.
pub struct Observer {
    seen: Table,
    /// Lists the watcher made (1 at the start; more means it had to list again).
    lists: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Observer {
    pub fn start(client: &Client, ns: &str) -> Self {
        let api: Api<Incident> = Api::namespaced(client.clone(), ns);
        let seen: Table = Arc::default();
        let lists = Arc::new(AtomicUsize::new(0));
        let (table, listed) = (seen.clone(), lists.clone());
        let task = tokio::spawn(async move {
            let mut events = watcher(api, watcher::Config::default()).boxed();
            while let Some(event) = events.next().await {
                let at = Instant::now();
                match event {
                    Ok(Event::Apply(incident) | Event::InitApply(incident)) => {
                        record(&table, &incident, at);
                    }
                    Ok(Event::InitDone) => {
                        listed.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(_) => {}
                    Err(error) => eprintln!("warning: the Incident watch: {error}"),
                }
            }
        });
        Self { seen, lists, task }
    }

    /// Waits for the watch's first list.
    pub async fn ready(&self) -> Result<()> {
        self.wait(
            "the Incident watch to list",
            Duration::from_secs(30),
            |_| (self.lists.load(Ordering::SeqCst) > 0).then_some(()),
        )
        .await
    }

    /// Lists after the first: each means events may have been missed and later times are late.
    pub fn relists(&self) -> usize {
        self.lists.load(Ordering::SeqCst).saturating_sub(1)
    }

    /// Every incident seen so far whose first alert's name starts with `prefix`.
    pub fn with_alert_prefix(&self, prefix: &str) -> Vec<(String, Seen)> {
        self.table()
            .iter()
            .filter(|(_, s)| s.first_alert.starts_with(prefix))
            .map(|(name, s)| (name.clone(), s.clone()))
            .collect()
    }

    /// Polls `check` over the table every 5 ms (the times in it were stamped at receipt) until it
    /// gives something, or fails naming `what` after `timeout`.
    pub async fn wait<T>(
        &self,
        what: &str,
        timeout: Duration,
        check: impl Fn(&HashMap<String, Seen>) -> Option<T>,
    ) -> Result<T> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(found) = check(&self.table()) {
                return Ok(found);
            }
            if Instant::now() >= deadline {
                return Err(format!("timed out after {timeout:?} waiting for {what}").into());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<String, Seen>> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn record(table: &Table, incident: &Incident, at: Instant) {
    let mut table = table.lock().unwrap_or_else(|p| p.into_inner());
    let seen = table.entry(incident.name_any()).or_insert_with(|| Seen {
        added: at,
        first_alert: String::new(),
        grew: Vec::new(),
        resolved: None,
    });
    if seen.first_alert.is_empty()
        && let Some(first) = incident.spec.alerts.first()
    {
        seen.first_alert = first.name.clone();
    }
    while seen.grew.len() < incident.spec.alerts.len() {
        seen.grew.push(at);
    }
    if incident.spec.resolution.is_some() && seen.resolved.is_none() {
        seen.resolved = Some(at);
    }
}
