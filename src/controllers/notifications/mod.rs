//! The notifications controller (controllers layer): delivers each incident's outbox. Each channel
//! of an incident is delivered by its own background round, one at a time, so a slow or dead
//! receiver delays only its own messages and never the reconciles; within a channel the messages go
//! in order, a later one waiting behind the first undelivered. Every attempt is
//! recorded in `status.deliveries` after it is made: a crash in between resends the message under
//! the same key (at least once, recognisably the same), and none is lost. Each destination's wire
//! work is in `send.rs`.

mod context;
mod send;

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use jiff::Timestamp;
use kube::{
    Api, Client, ResourceExt,
    runtime::{Controller, controller::Action, reflector::ObjectRef, watcher},
};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use self::context::Context;
use crate::cluster::assignment::Assignment;
use crate::{
    Error, Result,
    api::{DeliveryRecord, Incident, MAX_THREADS, Notification, SlackThread},
    cluster::{self, channels::Channels, events, incidents},
    config::instance_name,
    core::{
        lifecycle::LifecycleConfig,
        notify::delivery::{self, Verdict},
        text::fingerprint,
        timeline::Notice,
    },
    metrics::{ChannelTypeLabels, DeliveryLabels, Metrics},
    notifiers,
};

/// How long the Channel cache may take to fill at start.
const CHANNELS_READY: Duration = Duration::from_secs(30);
/// Writes of one round's records tried before giving up (each after a fresh read).
const WRITE_ATTEMPTS: usize = 5;

/// Runs the controller until `shutdown`, over one namespace or all.
pub async fn run(
    client: Client,
    namespace: Option<String>,
    lifecycle: LifecycleConfig,
    operator_namespace: Option<String>,
    metrics: Arc<Metrics>,
    assignment: Assignment,
    shutdown: CancellationToken,
) -> Result<()> {
    let channels = Channels::watch(&client, namespace.as_deref(), operator_namespace.as_deref());
    channels.ready(CHANNELS_READY).await?;
    let http = notifiers::client().map_err(|e| Error::Unavailable(format!("HTTP client: {e}")))?;
    let incidents: Api<Incident> = cluster::scoped(&client, namespace.as_deref());
    let controller = Controller::new(incidents, watcher::Config::default().any_semantic());
    let context = Arc::new(Context {
        client,
        http,
        channels,
        lifecycle,
        metrics,
        store: controller.store(),
        instance: instance_name(),
        failpoints: crate::controllers::Failpoints::from_env(),
        pace: Default::default(),
        in_flight: Default::default(),
        assignment,
    });
    info!(
        namespace = namespace.as_deref().unwrap_or("<all>"),
        "notifications controller started"
    );
    controller
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(reconcile, error_policy, context)
        .for_each(|outcome| async move {
            match outcome {
                Ok((object, _)) => debug!(incident = %object, "notifications reconciled"),
                Err(error) => debug!(%error, "notifications reconcile failed"),
            }
        })
        .await;
    Ok(())
}

async fn reconcile(incident: Arc<Incident>, ctx: Arc<Context>) -> Result<Action> {
    let span = info_span!(
        "deliver",
        namespace = incident.namespace().unwrap_or_default(),
        name = incident.name_any()
    );
    async move {
        if !ctx
            .assignment
            .covers(&incident.namespace().unwrap_or_default())
        {
            // Another shard's (or an unselected namespace's): that process handles it.
            return Ok(Action::await_change());
        }
        refresh_pending_gauge(&ctx);
        let now = Timestamp::now();
        let Some(status) = incident.status.as_ref() else {
            return Ok(Action::await_change());
        };
        let due = delivery::due(&status.notifications, &status.deliveries, now);
        let uid = incident.uid().unwrap_or_default();
        let in_flight = !due.is_empty();
        for channel in due.into_keys() {
            // One round per incident and channel at a time keeps the channel's messages in order;
            // the others go on side by side, so a slow receiver holds up only its own.
            let Some(slot) = ctx.claim(&uid, &channel) else {
                continue;
            };
            let round = Round {
                ctx: ctx.clone(),
                incident: incident.clone(),
                channel,
            };
            tokio::spawn(
                async move {
                    let _slot = slot;
                    round.run().await;
                }
                .instrument(info_span!("deliver_channel")),
            );
        }
        let next = delivery::next_attempt(&status.deliveries);
        Ok(if in_flight {
            // Look again once the rounds under way are done (their records also wake us).
            let soon = Timestamp::now() + notifiers::TIMEOUT + Duration::from_secs(2);
            requeue(Some(next.map_or(soon, |n| n.min(soon))))
        } else {
            requeue(next)
        })
    }
    .instrument(span)
    .await
}

/// One channel's due messages of one incident, delivered in the background.
struct Round {
    ctx: Arc<Context>,
    /// The incident as the cache had it; the round reads it afresh.
    incident: Arc<Incident>,
    channel: String,
}

impl Round {
    /// Reads the incident, sends the channel's due messages, records the attempts, announces what
    /// was given up. A record that cannot be written leaves the message due: it is sent again
    /// under the same key (at least once).
    async fn run(self) {
        let ctx = &self.ctx;
        // The incident as the API server holds it, read after the claim: the previous round's
        // record is in it, so nothing it sent is sent again.
        let incident = match read(ctx, &self.incident).await {
            Ok(incident) => incident,
            Err(error) => {
                warn!(channel = %self.channel, %error, "could not read the incident; retrying later");
                return;
            }
        };
        let Some(status) = incident.status.as_ref() else {
            return;
        };
        let now = Timestamp::now();
        let mut deliveries = status.deliveries.clone();
        delivery::prune(&mut deliveries, &status.notifications);
        let due = delivery::due(&status.notifications, &deliveries, now);
        let Some(indices) = due.get(&self.channel) else {
            return;
        };
        let messages: Vec<&Notification> =
            indices.iter().map(|i| &status.notifications[*i]).collect();
        let thread = status
            .threads
            .iter()
            .find(|t| t.channel == self.channel)
            .cloned();
        let (attempts, made) = deliver_in_order(
            ctx,
            &incident,
            &self.channel,
            messages,
            &deliveries,
            thread,
            now,
        )
        .await;
        for attempt in &attempts {
            observe(&ctx.metrics, attempt, now);
        }
        if !attempts.is_empty() {
            ctx.failpoints.at("after-send").await;
        }
        let made: Vec<SlackThread> = made.into_iter().collect();
        if let Err(error) = record(ctx, &incident, &attempts, &made, now).await {
            warn!(channel = %self.channel, %error, "could not record the deliveries; they will be sent again");
            return;
        }
        for attempt in attempts
            .iter()
            .filter(|a| matches!(a.verdict, Verdict::Failed { .. }))
        {
            if let Err(error) = announce_failure(ctx, &incident, attempt, now).await {
                warn!(%error, "could not publish the NotificationFailed Event");
            }
        }
    }
}

/// The incident as the API server holds it now.
async fn read(ctx: &Context, incident: &Incident) -> Result<Incident> {
    cluster::own_namespace(&ctx.client, incident)
        .get(&incident.name_any())
        .await
        .map_err(Error::Kube)
}

/// Records the attempts in `status.deliveries` and the Slack messages made in `status.threads`.
/// Only this controller writes those fields, so when the write is refused because something else
/// changed the incident (another channel's record among them), they are recorded again on the
/// fresh object rather than the messages sent again.
async fn record(
    ctx: &Context,
    incident: &Incident,
    attempts: &[Attempt],
    made: &[SlackThread],
    now: Timestamp,
) -> Result<()> {
    let mut current = incident.clone();
    for _ in 0..WRITE_ATTEMPTS {
        let status = current.status.clone().unwrap_or_default();
        let mut deliveries = status.deliveries.clone();
        delivery::prune(&mut deliveries, &status.notifications);
        for attempt in attempts {
            delivery::record(&mut deliveries, &attempt.key, &attempt.verdict, now);
        }
        let mut threads = status.threads.clone();
        for thread in made {
            threads.retain(|t| t.channel != thread.channel);
            threads.push(thread.clone());
        }
        // Bounded: past the cap the oldest thread is forgotten (a later message starts a new one).
        let excess = threads.len().saturating_sub(MAX_THREADS);
        threads.drain(..excess);
        if deliveries == status.deliveries && threads == status.threads {
            return Ok(());
        }
        match incidents::write_deliveries(&ctx.client, &current, &deliveries, &threads).await {
            Ok(_) => return Ok(()),
            Err(Error::Conflict) => current = read(ctx, incident).await?,
            Err(error) => return Err(error),
        }
    }
    Err(Error::Conflict)
}

fn requeue(next: Option<Timestamp>) -> Action {
    match next {
        Some(at) => {
            let wait = at.duration_since(Timestamp::now()).as_millis().max(0);
            Action::requeue(Duration::from_millis(
                u64::try_from(wait).unwrap_or(0) + 200,
            ))
        }
        None => Action::await_change(),
    }
}

/// One attempt at one message.
struct Attempt {
    key: String,
    channel_type: &'static str,
    message: Notification,
    verdict: Verdict,
}

/// Sends a channel's due messages in order, stopping at the first not delivered (the rest wait
/// behind it). Returns the attempts and, when a Slack bot made the incident's message in this
/// round, where it is.
async fn deliver_in_order(
    ctx: &Context,
    incident: &Incident,
    channel: &str,
    messages: Vec<&Notification>,
    deliveries: &[DeliveryRecord],
    mut thread: Option<SlackThread>,
    now: Timestamp,
) -> (Vec<Attempt>, Option<SlackThread>) {
    let known = thread.clone();
    let mut attempts = Vec::new();
    for message in messages {
        let (channel_type, answer) = send::send(ctx, incident, message, &mut thread).await;
        let verdict = delivery::judge(message, deliveries, &answer, now);
        let delivered = verdict == Verdict::Sent;
        attempts.push(Attempt {
            key: message.key.clone(),
            channel_type,
            message: message.clone(),
            verdict,
        });
        if !delivered {
            break;
        }
    }
    let made = thread
        .filter(|t| Some(t) != known.as_ref())
        .map(|t| SlackThread {
            channel: channel.to_owned(),
            ..t
        });
    (attempts, made)
}

/// A message given up on is an Event on the incident: the responders see it in `kubectl describe`.
async fn announce_failure(
    ctx: &Context,
    incident: &Incident,
    attempt: &Attempt,
    now: Timestamp,
) -> Result<()> {
    let Verdict::Failed { error } = &attempt.verdict else {
        return Ok(());
    };
    let notice = Notice {
        key: fingerprint(&[&attempt.key, "failed"]),
        warning: true,
        reason: "NotificationFailed",
        message: format!(
            "{} message to channel {} given up: {error}",
            attempt.message.event, attempt.message.channel
        ),
        actor: None,
        time: now,
    };
    events::publish(&ctx.client, &ctx.instance, incident, &notice, now).await
}

fn observe(metrics: &Metrics, attempt: &Attempt, now: Timestamp) {
    metrics
        .deliveries
        .get_or_create(&DeliveryLabels {
            channel_type: attempt.channel_type.to_owned(),
            event: attempt.message.event.to_string(),
            result: attempt.verdict.result_label().to_owned(),
        })
        .inc();
    if attempt.verdict == Verdict::Sent {
        let seconds = now
            .duration_since(attempt.message.time.0)
            .as_secs_f64()
            .max(0.0);
        metrics
            .delivery_latency
            .get_or_create(&ChannelTypeLabels {
                channel_type: attempt.channel_type.to_owned(),
            })
            .observe(seconds);
    }
}

/// Recounts the messages waiting over every incident this controller knows.
fn refresh_pending_gauge(ctx: &Context) {
    let pending: usize = ctx
        .store
        .state()
        .iter()
        .filter(|i| ctx.assignment.covers(&i.namespace().unwrap_or_default()))
        .filter_map(|i| i.status.as_ref())
        .map(|s| {
            s.notifications
                .iter()
                .filter(|n| delivery::pending(&s.deliveries, &n.key))
                .count()
        })
        .sum();
    ctx.metrics
        .notifications_pending
        .set(i64::try_from(pending).unwrap_or(i64::MAX));
}

fn error_policy(incident: Arc<Incident>, error: &Error, ctx: Arc<Context>) -> Action {
    let object = ObjectRef::from(incident.as_ref()).to_string();
    cluster::error_policy("notifications", &object, error, &ctx.metrics)
}
