//! Wires the operator together (wiring only): cluster client, HTTP endpoints, readiness, leader
//! election, the controllers, and a clean stop on SIGTERM/SIGINT.

use std::{sync::Arc, time::Duration};

use kube::Client;
use tokio::{net::TcpListener, task::JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::{
    Error, Result,
    cluster::{
        assignment::Assignment,
        requests,
        status_page::PageCache,
        watch_list::{InitialLists, WatchScope},
    },
    config::{ConfigError, RunArgs, Settings, instance_name},
    controllers::{admission, channel, detector, incident, leader, notifications, oncall, runbook},
    http as server,
    metrics::Metrics,
    notifiers,
};

/// Runs until SIGTERM or SIGINT, then stops within `args.shutdown_grace`.
pub async fn run(args: RunArgs) -> Result<()> {
    // Bad configuration stops the operator before it touches the cluster.
    let settings = args.settings()?;
    notifiers::install_crypto_provider();
    let config = args.cluster.kube_config().await?;
    info!(cluster = %config.cluster_url, "resolved cluster");
    let health = Arc::new(server::Health::default());
    // Every request is counted: idle incidents must cost no reads or writes.
    let client = requests::counted_client(config, health.metrics.api_requests.clone())?;

    let listener = TcpListener::bind(args.http_addr)
        .await
        .map_err(|source| Error::Bind {
            addr: args.http_addr,
            source,
        })?;
    let local = listener.local_addr().map_err(Error::Serve)?;
    info!(addr = %local, "serving /healthz, /readyz and /metrics");

    let shutdown = CancellationToken::new();
    let mut tasks = JoinSet::new();
    tasks.spawn(server::serve(listener, health.clone(), shutdown.clone()));
    // Every replica receives alerts: a write is an idempotent change at the version read.
    if let Some(alerts) = settings.alerts.clone() {
        let listener = TcpListener::bind(alerts.addr)
            .await
            .map_err(|source| Error::Bind {
                addr: alerts.addr,
                source,
            })?;
        let local = listener.local_addr().map_err(Error::Serve)?;
        let tls =
            match &alerts.tls {
                None => None,
                Some((cert, key)) => Some(server::tls::acceptor(cert, key).map_err(|message| {
                    ConfigError::Invalid {
                        path: args.alerts.alerts_tls_cert_file.clone().unwrap_or_default(),
                        message,
                    }
                })?),
            };
        info!(addr = %local, tls = tls.is_some(), path = server::alerts::ALERTMANAGER_PATH, "receiving alerts");
        let receiver = Arc::new(server::alerts::Receiver {
            client: client.clone(),
            settings: alerts.settings,
            token: alerts.token,
            max_body: alerts.max_body,
            metrics: health.metrics.clone(),
        });
        tasks.spawn(server::alerts::serve(
            listener,
            receiver,
            tls,
            shutdown.clone(),
        ));
    }
    // Every replica reports whether the trust policies are in force, on its own readiness.
    if !args.admission_policies.is_empty() {
        let reported = health.clone();
        let report: admission::Report =
            Arc::new(move |problems| reported.set_policy_problems(problems));
        tasks.spawn(admission::run(
            client.clone(),
            args.admission_policies.clone(),
            report,
            shutdown.clone(),
        ));
    }
    // Every replica serves the status page, from its own watch cache: it stays up while the
    // leader changes.
    if let Some(page) = settings.status_page.clone() {
        let listener = TcpListener::bind(page.addr)
            .await
            .map_err(|source| Error::Bind {
                addr: page.addr,
                source,
            })?;
        let local = listener.local_addr().map_err(Error::Serve)?;
        info!(addr = %local, page = %format!("{}/{}", page.namespace, page.name), "serving the status page and the board");
        let server = Arc::new(server::status_page::StatusPageServer::new(
            PageCache::watch(&client, &page.namespace, &page.name),
            client.clone(),
            page.refresh_seconds,
        ));
        tasks.spawn(server::serve_status_page(
            listener,
            server,
            shutdown.clone(),
        ));
    }
    tasks.spawn(await_apiserver(
        client.clone(),
        health.clone(),
        shutdown.clone(),
    ));
    // Every replica knows its namespaces before it may lead: a bad selector stops it here.
    let assignment = Assignment::start(
        &client,
        settings.shard,
        settings.namespace_selector.as_deref(),
        settings.operator_namespace.clone(),
    )
    .await?;
    if let Some(shard) = settings.shard {
        info!(%shard, "handling the namespaces of one shard");
    }
    let controllers = controllers(
        client.clone(),
        args.namespace.clone(),
        assignment,
        settings.clone(),
        health.metrics.clone(),
        shutdown.clone(),
    );
    // With leader election, the controllers wait for the Lease; every replica serves HTTP.
    let (leading_tx, mut leading) = tokio::sync::watch::channel(false);
    let release = CancellationToken::new();
    let mut elector = match settings.leader {
        Some(config) => {
            let elector = leader::Elector::new(client.clone(), config);
            let handle =
                tokio::spawn(elector.run(leading_tx, health.metrics.clone(), release.clone()));
            let shutdown = shutdown.clone();
            tasks.spawn(async move {
                let leads = tokio::select! {
                    became = leading.wait_for(|leads| *leads) => became.is_ok(),
                    () = shutdown.cancelled() => false,
                };
                // Not leading: the elector ended (its own outcome is reported) or we stop.
                if leads { controllers.await } else { Ok(()) }
            });
            Some(handle)
        }
        None => {
            health.metrics.leader.set(1);
            tasks.spawn(controllers);
            None
        }
    };

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
        ended = async {
            match elector.as_mut() {
                Some(handle) => handle.await,
                None => std::future::pending().await,
            }
        } => {
            elector = None;
            match ended {
                Ok(Ok(())) => Ok(()),
                Ok(Err(error)) => Err(error),
                Err(join) => Err(Error::Serve(std::io::Error::other(join))),
            }
        }
    };
    shutdown.cancel();
    if let Err(Error::LeadershipLost(reason)) = &outcome {
        // Another replica may take over soon: stop acting now, no grace period.
        warn!(%reason, "lost the Lease; stopping every controller at once and exiting");
        tasks.abort_all();
        return outcome;
    }
    if tokio::time::timeout(args.shutdown_grace, async {
        while tasks.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        warn!(grace = ?args.shutdown_grace, "work still running after the grace period; exiting anyway");
    }
    // Only now that nothing acts any more: hand the Lease over (the elector releases it).
    release.cancel();
    if let Some(handle) = elector {
        match handle.await {
            Ok(Err(error)) if outcome.is_ok() => return Err(error),
            Ok(_) => {}
            Err(join) => warn!(error = %join, "leader election task failed"),
        }
    }
    outcome
}

/// The loops that act on the cluster; with leader election they run only in the leader. Ends when
/// they all stopped (on shutdown), or with the first failure.
async fn controllers(
    client: Client,
    namespace: Option<String>,
    assignment: Assignment,
    settings: Settings,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> Result<()> {
    let mut loops = JoinSet::new();
    // Asked once, so a restart into a big namespace streams every large watch's initial state.
    let lists = InitialLists::probe(&client, namespace.as_deref()).await;
    if let Some(detection) = settings.detection {
        loops.spawn(detector::run(
            client.clone(),
            namespace.clone(),
            detection,
            metrics.clone(),
            assignment.clone(),
            lists,
            shutdown.clone(),
        ));
    }
    loops.spawn(runbook::run(
        client.clone(),
        namespace.clone(),
        metrics.clone(),
        instance_name(),
        assignment.clone(),
        shutdown.clone(),
    ));
    loops.spawn(channel::run(
        client.clone(),
        namespace.clone(),
        settings.operator_namespace.clone(),
        metrics.clone(),
        assignment.clone(),
        shutdown.clone(),
    ));
    loops.spawn(oncall::run(
        client.clone(),
        namespace.clone(),
        settings.operator_namespace.clone(),
        metrics.clone(),
        assignment.clone(),
        shutdown.clone(),
    ));
    loops.spawn(notifications::run(
        client.clone(),
        namespace.clone(),
        settings.lifecycle.clone(),
        settings.operator_namespace.clone(),
        metrics.clone(),
        assignment.clone(),
        shutdown.clone(),
    ));
    let scope = WatchScope {
        client,
        namespace,
        lists,
    };
    loops.spawn(incident::run(
        scope,
        settings.lifecycle,
        settings.operator_namespace,
        metrics,
        assignment,
        shutdown,
    ));
    while let Some(finished) = loops.join_next().await {
        match finished {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return Err(error),
            Err(join) => return Err(Error::Serve(std::io::Error::other(join))),
        }
    }
    Ok(())
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
