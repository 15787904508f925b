//! The channel controller (controllers layer): keeps each Channel's status, computed by the pure
//! `desired_status` — whether it is usable (its templates, its selector, its Secrets), whether its
//! receiver takes messages, how many it sent and gave up on — and publishes an Event when its
//! readiness flips. It writes status with server-side apply, only when something changed.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use jiff::Timestamp;
use kube::{
    Api, Client, ResourceExt,
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
    api::{Channel, Destination, Incident, metadata::CHANNEL_STATUS_MANAGER},
    cluster::{self, events, secrets},
    config::instance_name,
    core::{
        notify::{
            channel_status::{SecretProblem, desired_status, readiness_flip, stats},
            pagerduty::EVENTS_URL,
        },
        text::fingerprint,
        timeline::Notice,
    },
    metrics::Metrics,
    notifiers::{self, pagerduty, webhook},
};

/// A channel is rechecked this often without a trigger: its Secrets are not watched.
const RESYNC: Duration = Duration::from_secs(60);
/// Deliveries come in bursts; one recount per burst is enough.
const DEBOUNCE: Duration = Duration::from_millis(300);

struct Context {
    client: Client,
    metrics: Arc<Metrics>,
    operator_namespace: Option<String>,
    instance: String,
    assignment: Assignment,
}

/// Runs the controller until `shutdown`, over one namespace or all.
pub async fn run(
    client: Client,
    namespace: Option<String>,
    operator_namespace: Option<String>,
    metrics: Arc<Metrics>,
    assignment: Assignment,
    shutdown: CancellationToken,
) -> Result<()> {
    let channels: Api<Channel> = cluster::scoped(&client, namespace.as_deref());
    let incidents: Api<Incident> = cluster::scoped(&client, namespace.as_deref());
    let context = Arc::new(Context {
        client,
        metrics,
        operator_namespace,
        instance: instance_name(),
        assignment,
    });
    info!(
        namespace = namespace.as_deref().unwrap_or("<all>"),
        "channel controller started"
    );
    Controller::new(channels, watcher::Config::default().any_semantic())
        // A delivery recorded on an incident changes the counts of the channels it names.
        .watches(incidents, watcher::Config::default(), |incident| {
            let mut named: Vec<String> = incident
                .status
                .iter()
                .flat_map(|s| s.notifications.iter().map(|n| n.channel.clone()))
                .collect();
            named.sort();
            named.dedup();
            named
                .into_iter()
                .filter_map(|reference| {
                    let (namespace, name) = reference.split_once('/')?;
                    Some(ObjectRef::<Channel>::new(name).within(namespace))
                })
                .collect::<Vec<_>>()
        })
        .with_config(controller::Config::default().debounce(DEBOUNCE))
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(reconcile, error_policy, context)
        .for_each(|outcome| async move {
            match outcome {
                Ok((object, _)) => debug!(channel = %object, "reconciled"),
                Err(error) => debug!(%error, "channel reconcile did not run"),
            }
        })
        .await;
    Ok(())
}

async fn reconcile(channel: Arc<Channel>, ctx: Arc<Context>) -> Result<Action> {
    let namespace = channel.namespace().unwrap_or_default();
    let span = info_span!("reconcile_channel", namespace = %namespace, name = %channel.name_any());
    async move {
        if !ctx.assignment.covers(&namespace) {
            // Another shard's (or an unselected namespace's): that process handles it.
            return Ok(Action::await_change());
        }
        let problem = check_secrets(&ctx.client, &channel).await?;
        // A platform channel counts the incidents of every namespace it serves.
        let everywhere = channel.spec.route.all_namespaces
            && ctx.operator_namespace.as_deref() == Some(namespace.as_str());
        let incidents: Api<Incident> = if everywhere {
            Api::all(ctx.client.clone())
        } else {
            Api::namespaced(ctx.client.clone(), &namespace)
        };
        let listed = incidents
            .list(&ListParams::default())
            .await
            .map_err(Error::Kube)?;
        let served: Vec<&Incident> = listed.items.iter().collect();
        let now = Timestamp::now();
        let desired = desired_status(
            &channel,
            problem,
            stats(&channel, &served),
            ctx.operator_namespace.as_deref(),
            now,
        );
        if channel.status.as_ref() == Some(&desired) {
            return Ok(Action::requeue(RESYNC));
        }
        // Published before the status that records the flip: a crash in between publishes the
        // same Event again, which the API server refuses, instead of losing it.
        let flip = readiness_flip(channel.status.as_ref(), &desired, now);
        if let Some(notice) = &flip {
            let event = Notice {
                key: fingerprint(&[
                    &channel.uid().unwrap_or_default(),
                    &desired.observed_generation.unwrap_or_default().to_string(),
                    notice.reason,
                    &notice.message,
                ]),
                ..notice.clone()
            };
            events::publish(&ctx.client, &ctx.instance, channel.as_ref(), &event, now).await?;
        }
        cluster::apply_status_of(
            &ctx.client,
            channel.as_ref(),
            &desired,
            CHANNEL_STATUS_MANAGER,
        )
        .await?;
        match flip {
            Some(notice) if notice.warning => {
                warn!(reason = notice.reason, why = %notice.message, "channel is not usable")
            }
            Some(notice) => info!(reason = notice.reason, "channel is ready"),
            None => debug!(
                sent = desired.sent,
                failed = desired.failed,
                "channel status updated"
            ),
        }
        Ok(Action::requeue(RESYNC))
    }
    .instrument(span)
    .await
}

/// The first problem with the channel's Secrets: missing, or not a usable URL, signing key or
/// endpoint.
async fn check_secrets(client: &Client, channel: &Channel) -> Result<SecretProblem> {
    let namespace = channel.namespace().unwrap_or_default();
    match channel.spec.destination() {
        None => Ok(None),
        Some(Destination::Webhook(destination)) => {
            match secrets::value(client, &namespace, &destination.url).await? {
                Err(missing) => return Ok(Some(("SecretNotFound", missing.to_string()))),
                Ok(url) => {
                    if let Err(why) = webhook::url(&url) {
                        let message = format!("{}: {why}", destination.url.name);
                        return Ok(Some(("InvalidURL", message)));
                    }
                }
            }
            if let Some(reference) = &destination.signing_key {
                match secrets::value(client, &namespace, reference).await? {
                    Err(missing) => return Ok(Some(("SecretNotFound", missing.to_string()))),
                    Ok(key) => {
                        if let Err(why) = webhook::signing_key(&key) {
                            let message = format!("{}: {why}", reference.name);
                            return Ok(Some(("InvalidSigningKey", message)));
                        }
                    }
                }
            }
            Ok(None)
        }
        Some(Destination::Slack(destination)) => {
            if let Some(reference) = &destination.webhook {
                return Ok(match secrets::value(client, &namespace, reference).await? {
                    Err(missing) => Some(("SecretNotFound", missing.to_string())),
                    Ok(url) => notifiers::slack::url(&url)
                        .err()
                        .map(|why| ("InvalidURL", format!("{}: {why}", reference.name))),
                });
            }
            let Some(bot) = &destination.bot else {
                return Ok(None);
            };
            let api = bot.api_url.as_deref().unwrap_or(notifiers::slack::API_URL);
            if let Err(why) = notifiers::slack::url(api) {
                return Ok(Some(("InvalidURL", why)));
            }
            Ok(secrets::value(client, &namespace, &bot.token)
                .await?
                .err()
                .map(|missing| ("SecretNotFound", missing.to_string())))
        }
        Some(Destination::PagerDuty(destination)) => {
            let url = destination.url.as_deref().unwrap_or(EVENTS_URL);
            if let Err(why) = pagerduty::url(url) {
                return Ok(Some(("InvalidURL", why)));
            }
            Ok(secrets::value(client, &namespace, &destination.routing_key)
                .await?
                .err()
                .map(|missing| ("SecretNotFound", missing.to_string())))
        }
    }
}

fn error_policy(channel: Arc<Channel>, error: &Error, ctx: Arc<Context>) -> Action {
    let object = ObjectRef::from(channel.as_ref()).to_string();
    cluster::error_policy("channel", &object, error, &ctx.metrics)
}
