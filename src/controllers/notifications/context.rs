//! What every delivery round of the notifications controller shares (controllers layer).

use std::{collections::HashMap, sync::Arc, time::Duration};

use kube::{Client, runtime::reflector::Store};
use tokio::{sync::Mutex, time::Instant};

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
    pub failpoint: Option<String>,
    /// When each channel may send next (its destination's rate limit).
    pub pace: Mutex<HashMap<String, Instant>>,
}

impl Context {
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
