//! The runbook controller (controllers layer): keeps each Runbook's status, computed by the pure
//! [`desired_status`] (whether it is usable, as kstatus-compatible `Ready` / `Stalled` conditions,
//! how many incidents follow it, when it was last used). It writes status with server-side apply,
//! only when something changed, and never touches a runbook's spec.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use jiff::Timestamp;
use kube::{
    Api, Client, Resource, ResourceExt,
    api::ListParams,
    runtime::{
        Controller,
        controller::{self, Action},
        reflector::ObjectRef,
        watcher,
    },
};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::cluster::assignment::Assignment;
use crate::{
    Error, Result,
    api::{Incident, Runbook, metadata::RUNBOOK_STATUS_MANAGER},
    cluster::{self, events},
    core::{
        runbooks::status::{desired_status, followed, followers, readiness_flip},
        text::fingerprint,
        timeline::Notice,
    },
    metrics::Metrics,
};

/// How often a runbook is recounted without any trigger: a safety net for changes the Incident
/// watch cannot attribute (an incident moving from one runbook to another requeues only the new).
const RESYNC: Duration = Duration::from_secs(600);
/// Incidents following a runbook write their status in bursts; one recount per burst is enough.
const DEBOUNCE: Duration = Duration::from_millis(300);

struct Context {
    client: Client,
    metrics: Arc<Metrics>,
    /// Identifies this replica in Events.
    instance: String,
    assignment: Assignment,
}

/// Runs the controller until `shutdown`, over one namespace or all.
pub async fn run(
    client: Client,
    namespace: Option<String>,
    metrics: Arc<Metrics>,
    instance: String,
    assignment: Assignment,
    shutdown: CancellationToken,
) -> Result<()> {
    let runbooks: Api<Runbook> = cluster::scoped(&client, namespace.as_deref());
    let incidents: Api<Incident> = cluster::scoped(&client, namespace.as_deref());
    let context = Arc::new(Context {
        client,
        metrics,
        instance,
        assignment,
    });
    info!(
        namespace = namespace.as_deref().unwrap_or("<all>"),
        "runbook controller started"
    );
    Controller::new(runbooks, watcher::Config::default().any_semantic())
        // An incident that starts, advances or stops following a runbook changes its count and
        // last use. Deletions arrive with the object's last state, so they are attributed too.
        .watches(incidents, watcher::Config::default(), |incident| {
            followed_runbook(&incident)
        })
        .with_config(controller::Config::default().debounce(DEBOUNCE))
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(reconcile, error_policy, context)
        .for_each(|outcome| async move {
            match outcome {
                Ok((object, _)) => debug!(runbook = %object, "reconciled"),
                // Includes incidents naming a runbook that does not exist: nothing to update.
                Err(error) => debug!(%error, "runbook reconcile did not run"),
            }
        })
        .await;
    Ok(())
}

/// The runbook an incident follows, as a reference in the incident's namespace.
fn followed_runbook(incident: &Incident) -> Option<ObjectRef<Runbook>> {
    let (namespace, name) = followed(incident)?;
    Some(ObjectRef::new(&name).within(&namespace))
}

async fn reconcile(runbook: Arc<Runbook>, ctx: Arc<Context>) -> Result<Action> {
    let namespace = runbook.namespace().unwrap_or_default();
    let name = runbook.name_any();
    let span = info_span!("reconcile_runbook", namespace = %namespace, name = %name);
    async move {
        if !ctx.assignment.covers(&namespace) {
            // Another shard's (or an unselected namespace's): that process handles it.
            return Ok(Action::await_change());
        }
        // The API server serves consistent lists from its watch cache; one list per (debounced)
        // trigger keeps no second copy of every incident in memory.
        let incidents: Api<Incident> = Api::namespaced(ctx.client.clone(), &namespace);
        let listed = incidents
            .list(&ListParams::default())
            .await
            .map_err(Error::Kube)?;
        let following = followers(&name, &listed.items);
        let desired = desired_status(
            &runbook.spec,
            runbook.meta().generation.unwrap_or_default(),
            &following,
            runbook.status.as_ref(),
            Timestamp::now(),
        );
        if runbook.status.as_ref() == Some(&desired) {
            debug!("status unchanged");
            return Ok(Action::requeue(RESYNC));
        }
        // Published before the status that records the flip: a crash in between publishes the
        // same Event (same name) again, which the API server refuses, instead of losing it.
        let flip = readiness_flip(runbook.status.as_ref(), &desired, Timestamp::now());
        if let Some(notice) = &flip {
            let event = Notice {
                key: fingerprint(&[
                    &runbook.uid().unwrap_or_default(),
                    &desired.observed_generation.unwrap_or_default().to_string(),
                    notice.reason,
                    &notice.message,
                ]),
                ..notice.clone()
            };
            events::publish(
                &ctx.client,
                &ctx.instance,
                runbook.as_ref(),
                &event,
                Timestamp::now(),
            )
            .await?;
        }
        cluster::apply_status_of(
            &ctx.client,
            runbook.as_ref(),
            &desired,
            RUNBOOK_STATUS_MANAGER,
        )
        .await?;
        match flip {
            Some(notice) if !notice.warning => info!(reason = notice.reason, "runbook is ready"),
            Some(notice) => {
                warn!(reason = notice.reason, why = %notice.message, "runbook is not usable")
            }
            None => debug!(
                matched = desired.matched_incidents,
                "runbook status updated"
            ),
        }
        Ok(Action::requeue(RESYNC))
    }
    .instrument(span)
    .await
}

fn error_policy(runbook: Arc<Runbook>, error: &Error, ctx: Arc<Context>) -> Action {
    let object = ObjectRef::from(runbook.as_ref()).to_string();
    cluster::error_policy("runbook", &object, error, &ctx.metrics)
}
