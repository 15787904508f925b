//! What every delivery round of the notifications controller shares (controllers layer).

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use kube::{Client, runtime::reflector::Store};
use tokio::{sync::Mutex, time::Instant};

use crate::cluster::assignment::Assignment;
use crate::{
    api::Incident, cluster::channels::Channels, core::lifecycle::LifecycleConfig, metrics::Metrics,
};

pub(super) struct Context {
    pub client: Client,
    pub http: reqwest::Client,
    pub channels: Channels,
    pub lifecycle: LifecycleConfig,
    pub metrics: Arc<Metrics>,
    pub store: Store<Incident>,
    pub instance: String,
    /// Test hook: the named point at which to abort (INCIDENT_OPERATOR_FAILPOINT).
    pub failpoints: crate::controllers::Failpoints,
    /// When each channel may send next (its destination's rate limit).
    pub pace: Mutex<HashMap<String, Instant>>,
    /// The (incident uid, channel) pairs whose delivery is under way.
    pub in_flight: Arc<std::sync::Mutex<HashSet<(String, String)>>>,
    /// The namespaces this process delivers for.
    pub assignment: Assignment,
}

/// A claimed (incident, channel) delivery; released when dropped, whatever way the round ends.
pub(super) struct Slot {
    set: Arc<std::sync::Mutex<HashSet<(String, String)>>>,
    key: (String, String),
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut set) = self.set.lock() {
            set.remove(&self.key);
        }
    }
}

impl Context {
    /// Claims the delivery of `channel`'s messages of incident `uid`, unless one is under way.
    pub fn claim(&self, uid: &str, channel: &str) -> Option<Slot> {
        let key = (uid.to_owned(), channel.to_owned());
        let mut set = self.in_flight.lock().ok()?;
        set.insert(key.clone()).then(|| Slot {
            set: self.in_flight.clone(),
            key,
        })
    }

    /// Waits until `channel` may send again, at most one message per `interval` (Slack allows
    /// about one a second per channel); other channels are not held up.
    pub async fn pace(&self, channel: &str, interval: Duration) {
        if interval.is_zero() {
            return;
        }
        let now = Instant::now();
        let at = {
            let mut next = self.pace.lock().await;
            let at = next
                .get(channel)
                .copied()
                .filter(|t| *t > now)
                .unwrap_or(now);
            next.insert(channel.to_owned(), at + interval);
            at
        };
        tokio::time::sleep_until(at).await;
    }
}
