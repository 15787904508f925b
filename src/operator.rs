//! Wires the operator together: cluster client, HTTP endpoints, readiness, and a clean stop on
//! SIGTERM/SIGINT. Controllers join here as they are built.

use std::{sync::Arc, time::Duration};

use kube::Client;
use tokio::{net::TcpListener, task::JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::{Error, Result, config::RunArgs, detection, lifecycle, runbook, server};

/// Runs until SIGTERM or SIGINT, then stops within `args.shutdown_grace`.
pub async fn run(args: RunArgs) -> Result<()> {
    // Bad configuration stops the operator before it touches the cluster.
    let settings = args.settings()?;
    let config = args.cluster.kube_config().await?;
    info!(cluster = %config.cluster_url, "resolved cluster");
    let client = Client::try_from(config).map_err(Error::Client)?;

    let listener = TcpListener::bind(args.http_addr)
        .await
        .map_err(|source| Error::Bind {
            addr: args.http_addr,
            source,
        })?;
    let local = listener.local_addr().map_err(Error::Serve)?;
    info!(addr = %local, "serving /healthz, /readyz and /metrics");

    let health = Arc::new(server::Health::default());
    let shutdown = CancellationToken::new();
    let mut tasks = JoinSet::new();
    tasks.spawn(server::serve(listener, health.clone(), shutdown.clone()));
    tasks.spawn(await_apiserver(
        client.clone(),
        health.clone(),
        shutdown.clone(),
    ));
    if let Some(detection) = settings.detection {
        tasks.spawn(detection::detector::run(
            client.clone(),
            args.namespace.clone(),
            detection,
            health.metrics.clone(),
            shutdown.clone(),
        ));
    }
    tasks.spawn(runbook::controller::run(
        client.clone(),
        args.namespace.clone(),
        health.metrics.clone(),
        shutdown.clone(),
    ));
    tasks.spawn(lifecycle::controller::run(
        client,
        args.namespace.clone(),
        settings.lifecycle,
        health.metrics.clone(),
        instance_name(),
        shutdown.clone(),
    ));

    let outcome = tokio::select! {
        signal = shutdown_signal() => {
            info!(signal, "stopping");
            Ok(())
        }
        Some(finished) = tasks.join_next() => match finished {
            Ok(Err(error)) => Err(error),
            // A task that ends on its own before a signal is a bug; stop rather than limp on.
            Ok(Ok(())) => Ok(()),
            Err(join) => Err(Error::Serve(std::io::Error::other(join))),
        },
    };
    shutdown.cancel();
    if tokio::time::timeout(args.shutdown_grace, async {
        while tasks.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        warn!(grace = ?args.shutdown_grace, "work still running after the grace period; exiting anyway");
    }
    outcome
}

/// Names this replica in Events: the pod name in a cluster, else the host name.
fn instance_name() -> String {
    ["POD_NAME", "HOSTNAME"]
        .iter()
        .find_map(|var| std::env::var(var).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "incident-operator".to_owned())
}

/// Marks the operator ready the first time the API server answers, retrying with backoff until then.
async fn await_apiserver(
    client: Client,
    health: Arc<server::Health>,
    shutdown: CancellationToken,
) -> Result<()> {
    let mut delay = Duration::from_millis(200);
    loop {
        match client.apiserver_version().await {
            Ok(version) => {
                info!(version = %version.git_version, "Kubernetes API server answered; ready");
                health.set_ready();
                // Stay alive until shutdown so the task set only ends on a signal or a failure.
                shutdown.cancelled().await;
                return Ok(());
            }
            Err(error) => {
                warn!(%error, retry_in = ?delay, "Kubernetes API server not reachable yet")
            }
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.cancelled() => return Ok(()),
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// Resolves with the name of the first termination signal received.
async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            },
            _ => {
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "SIGINT"
    }
}
