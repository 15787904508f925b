//! The notifications controller (controllers layer): delivers each incident's outbox. Channels are
//! served side by side, so a slow or dead receiver delays only its own messages; within a channel
//! the messages go in order, a later one waiting behind the first undelivered. Every attempt is
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
use tracing::{Instrument, debug, info, info_span};

use self::context::Context;
use crate::{
    Error, Result,
    api::{DeliveryRecord, Incident, Notification, SlackThread},
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
        failpoint: std::env::var("INCIDENT_OPERATOR_FAILPOINT")
            .ok()
            .filter(|v| !v.is_empty()),
        pace: Default::default(),
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
        refresh_pending_gauge(&ctx);
        let now = Timestamp::now();
        let cached_due = incident
            .status
            .as_ref()
            .is_some_and(|s| !delivery::due(&s.notifications, &s.deliveries, now).is_empty());
        if !cached_due {
            let next = incident
                .status
                .as_ref()
                .and_then(|s| delivery::next_attempt(&s.deliveries));
            return Ok(requeue(next));
        }
        // Before sending, the incident as the API server holds it: a cache that has not yet
        // seen our last record would send the same message again.
        let incident = Arc::new(read(&ctx, &incident).await?);
        let Some(status) = incident.status.as_ref() else {
            return Ok(Action::await_change());
        };
        let mut deliveries = status.deliveries.clone();
        delivery::prune(&mut deliveries, &status.notifications);
        let due = delivery::due(&status.notifications, &deliveries, now);
        let rounds = futures::future::join_all(due.iter().map(|(channel, indices)| {
            let messages: Vec<&Notification> =
                indices.iter().map(|i| &status.notifications[*i]).collect();
            let thread = status
                .threads
                .iter()
                .find(|t| &t.channel == channel)
                .cloned();
            deliver_in_order(&ctx, &incident, channel, messages, &deliveries, thread, now)
        }))
        .await;
        let mut attempts: Vec<Attempt> = Vec::new();
        let mut threads: Vec<SlackThread> = Vec::new();
        for (made, thread) in rounds {
            attempts.extend(made);
            threads.extend(thread);
        }
        for attempt in &attempts {
            observe(&ctx.metrics, attempt, now);
        }
        if !attempts.is_empty() {
            failpoint(&ctx, "after-send");
        }
        let deliveries = record(&ctx, &incident, &attempts, &threads, now).await?;
        for attempt in attempts
            .iter()
            .filter(|a| matches!(a.verdict, Verdict::Failed { .. }))
        {
            announce_failure(&ctx, &incident, attempt, now).await?;
        }
        Ok(requeue(delivery::next_attempt(&deliveries)))
    }
    .instrument(span)
    .await
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
/// changed the incident, they are recorded again on the fresh object rather than the messages sent
/// again. Returns the records written.
async fn record(
    ctx: &Context,
    incident: &Incident,
    attempts: &[Attempt],
    made: &[SlackThread],
    now: Timestamp,
) -> Result<Vec<DeliveryRecord>> {
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
        if deliveries == status.deliveries && threads == status.threads {
            return Ok(deliveries);
        }
        match incidents::write_deliveries(&ctx.client, &current, &deliveries, &threads).await {
            Ok(_) => return Ok(deliveries),
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

/// Stops the process at a named point when INCIDENT_OPERATOR_FAILPOINT says so: how the e2e tests
/// kill the operator after a message went out and before its record was written.
fn failpoint(ctx: &Context, name: &str) {
    if ctx.failpoint.as_deref() == Some(name) {
        eprintln!("failpoint {name}: aborting");
        std::process::abort();
    }
}

fn error_policy(incident: Arc<Incident>, error: &Error, ctx: Arc<Context>) -> Action {
    let object = ObjectRef::from(incident.as_ref()).to_string();
    cluster::error_policy("notifications", &object, error, &ctx.metrics)
}
