//! The detector (controllers layer): watches Pods, ReplicaSets (metadata only) and Deployments
//! ([`watch`]), and on the leading edge of each burst of changes runs a [`pass`] that groups their
//! signals into problems and creates or updates one Incident per problem; it resolves an incident
//! once every signal has stayed clear for `resolve_after`. State lives on the Incidents themselves.

mod cache;
mod pass;
mod watch;

use std::{sync::Arc, time::Duration};

use jiff::{SignedDuration, Timestamp};
use tokio::{sync::Notify, time::Instant};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::cluster::{assignment::Assignment, watch_list::InitialLists};
use crate::{
    Result,
    core::detection::{coalesce::Coalescer, debounce::Pending, settings::DetectionConfig},
    metrics::Metrics,
};

/// How long changes that follow a pass are gathered before the next one.
const WINDOW: Duration = Duration::from_millis(100);

/// Runs until `shutdown`, over one namespace or all but the excluded ones.
pub async fn run(
    client: kube::Client,
    namespace: Option<String>,
    config: DetectionConfig,
    metrics: Arc<Metrics>,
    assignment: Assignment,
    lists: InitialLists,
    shutdown: CancellationToken,
) -> Result<()> {
    let changed = Arc::new(Notify::new());
    let (stores, drivers) = watch::start(
        &client,
        namespace.as_deref(),
        &config,
        lists,
        &changed,
        &assignment,
        &metrics,
    );
    let mut pending = Pending::new();
    info!(
        namespace = namespace.as_deref().unwrap_or("<all>"),
        streaming = lists.streaming(),
        "detector started"
    );

    // Leading edge: a change after a quiet window is evaluated at once, later ones within the
    // window wait for its end together (so a burst of events is one more pass, not one each).
    let epoch = Instant::now();
    let mut passes = Coalescer::new(WINDOW);
    let mut next_check: Option<Timestamp> = None;
    loop {
        let wait = next_check.map(|at| {
            Duration::from_millis(
                at.duration_since(Timestamp::now())
                    .as_millis()
                    .clamp(0, 3_600_000) as u64,
            )
        });
        let due = passes.due().map(|at| epoch + at);
        // Biased: a due pass is never starved by a stream of change notifications.
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            () = sleep_until_or_forever(due) => {}
            () = changed.notified() => {
                passes.changed(epoch.elapsed());
                continue;
            }
            () = sleep_or_forever(wait) => {
                next_check = None;
                passes.changed(epoch.elapsed());
                continue;
            }
        }
        passes.started();
        if !watch::ready(&stores) {
            passes.ended(epoch.elapsed());
            continue;
        }
        let started = std::time::Instant::now();
        match pass::evaluate(&client, &stores, &config, &mut pending).await {
            Ok(wake) => {
                metrics.detection_passes.inc();
                metrics
                    .detection_pass_duration
                    .observe(started.elapsed().as_secs_f64());
                next_check = wake;
            }
            Err(error) => {
                warn!(%error, "detection pass failed; retrying");
                next_check = Some(Timestamp::now() + SignedDuration::from_secs(2));
            }
        }
        passes.ended(epoch.elapsed());
    }
    for driver in drivers {
        driver.abort();
    }
    Ok(())
}

async fn sleep_or_forever(wait: Option<Duration>) {
    match wait {
        Some(wait) => tokio::time::sleep(wait).await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_or_forever(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
