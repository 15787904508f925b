//! Whether the API server serves streaming lists (watch-list, `sendInitialEvents`) (cluster
//! layer): with them a watch's initial state arrives one object at a time instead of as pages of
//! whole objects, which is what a restart into thousands of pods would otherwise hold at once.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::{
    Client,
    api::{WatchEvent, WatchParams},
    core::PartialObjectMeta,
    runtime::watcher,
};
use tracing::info;

use super::scoped;

/// How the watches that grow with the namespace (pods, ReplicaSets, workloads) receive their
/// initial state: streamed when the API server serves it, else listed in pages. Asked once per
/// process, so every watch of a restart takes the same way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InitialLists {
    streaming: bool,
}

impl InitialLists {
    /// Asks the API server (see [`watch_list_served`]).
    pub async fn probe(client: &Client, namespace: Option<&str>) -> Self {
        Self {
            streaming: watch_list_served(client, namespace).await,
        }
    }

    pub fn streaming(self) -> bool {
        self.streaming
    }

    /// A watcher configuration receiving the initial state this way.
    pub fn config(self) -> watcher::Config {
        if self.streaming {
            watcher::Config::default().streaming_lists()
        } else {
            watcher::Config::default()
        }
    }
}

/// What a controller watches: the client, its namespace (all when None) and how initial lists come.
#[derive(Clone)]
pub struct WatchScope {
    pub client: Client,
    pub namespace: Option<String>,
    pub lists: InitialLists,
}

/// Asks once, with a watch-list of pods matching no label, answered by its end bookmark alone.
/// Any failure means no: a plain list and watch works on every API server (the feature gate
/// WatchList was off by default in Kubernetes 1.33).
pub async fn watch_list_served(client: &Client, namespace: Option<&str>) -> bool {
    let api = scoped::<PartialObjectMeta<Pod>>(client, namespace);
    let params = WatchParams::streaming_lists()
        .labels("incident.dev/watch-list-probe=none")
        .timeout(10);
    let answer = async {
        let stream = api.watch(&params, "0").await.map_err(|e| e.to_string())?;
        let mut stream = std::pin::pin!(stream);
        match stream.next().await {
            Some(Ok(WatchEvent::Bookmark(_))) => Ok(()),
            Some(Ok(other)) => Err(format!("answered {other:?} instead of a bookmark")),
            Some(Err(error)) => Err(error.to_string()),
            None => Err("the watch ended without a bookmark".to_owned()),
        }
    };
    let outcome = tokio::time::timeout(Duration::from_secs(15), answer)
        .await
        .unwrap_or_else(|_| Err("no answer within 15 s".to_owned()));
    match outcome {
        Ok(()) => true,
        Err(reason) => {
            info!(%reason, "the API server does not serve streaming lists; listing in pages");
            false
        }
    }
}
