//! The notifications controller (controllers layer): delivers each incident's outbox. Channels are
//! served side by side, so a slow or dead receiver delays only its own messages; within a channel
//! the messages go in order, a later one waiting behind the first undelivered. Every attempt is
//! recorded in `status.deliveries` after it is made: a crash in between resends the message under
//! the same key (at least once, recognisably the same), and none is lost.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use jiff::Timestamp;
use kube::{
    Api, Client, ResourceExt,
    runtime::{
        Controller,
        controller::Action,
        reflector::{ObjectRef, Store},
        watcher,
    },
};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::{
    Error, Result,
    api::{
        DeliveryRecord, Destination, Incident, Notification, PagerDutyDestination,
        WebhookDestination,
    },
    cluster::{self, channels::Channels, events, incidents, secrets},
    config::instance_name,
    core::{
        lifecycle::LifecycleConfig,
        notify::{
            delivery::{self, Answer, Verdict},
            message::{self, Clocks},
            pagerduty::{EVENTS_URL, body as pd_body},
        },
        text::fingerprint,
        timeline::Notice,
    },
    metrics::{ChannelTypeLabels, DeliveryLabels, Metrics},
    notifiers::{self, pagerduty, webhook},
};

/// How long the Channel cache may take to fill at start.
const CHANNELS_READY: Duration = Duration::from_secs(30);
/// Writes of one round's records tried before giving up (each after a fresh read).
const WRITE_ATTEMPTS: usize = 5;

struct Context {
    client: Client,
    http: reqwest::Client,
    channels: Channels,
    lifecycle: LifecycleConfig,
    metrics: Arc<Metrics>,
    store: Store<Incident>,
    instance: String,
    /// Test hook: the named point at which to abort (INCIDENT_OPERATOR_FAILPOINT).
    failpoint: Option<String>,
}

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
        let attempts: Vec<Attempt> = futures::future::join_all(due.values().map(|indices| {
            let messages: Vec<&Notification> =
                indices.iter().map(|i| &status.notifications[*i]).collect();
            deliver_in_order(&ctx, &incident, messages, &deliveries, now)
        }))
        .await
        .into_iter()
        .flatten()
        .collect();
        for attempt in &attempts {
            observe(&ctx.metrics, attempt, now);
        }
        if !attempts.is_empty() {
            failpoint(&ctx, "after-send");
        }
        let deliveries = record(&ctx, &incident, &attempts, now).await?;
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

/// Records the attempts in `status.deliveries`. Only this controller writes that field, so when
/// the write is refused because something else changed the incident, the attempts are recorded
/// again on the fresh object rather than the messages sent again. Returns the records written.
async fn record(
    ctx: &Context,
    incident: &Incident,
    attempts: &[Attempt],
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
        if deliveries == status.deliveries {
            return Ok(deliveries);
        }
        match incidents::write_deliveries(&ctx.client, &current, &deliveries).await {
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
/// behind it).
async fn deliver_in_order(
    ctx: &Context,
    incident: &Incident,
    messages: Vec<&Notification>,
    deliveries: &[DeliveryRecord],
    now: Timestamp,
) -> Vec<Attempt> {
    let mut attempts = Vec::new();
    for message in messages {
        let (channel_type, answer) = send(ctx, incident, message).await;
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
    attempts
}

/// Renders and sends one message to its channel: the channel's type, and the receiver's answer or
/// why nothing was sent.
async fn send(
    ctx: &Context,
    incident: &Incident,
    message: &Notification,
) -> (&'static str, Answer) {
    let Some(channel) = ctx.channels.get(&message.channel) else {
        let why = format!("channel {} no longer exists", message.channel);
        return ("unknown", Answer::Unusable(why));
    };
    let Some(destination) = channel.spec.destination() else {
        let why = format!("channel {} has no destination", message.channel);
        return ("unknown", Answer::Unusable(why));
    };
    let namespace = channel.namespace().unwrap_or_default();
    let clocks = clocks(&ctx.lifecycle, incident);
    let context = message::context(incident, message, clocks);
    let rendered = message::render(&channel.spec.templates, message.event, &context);
    if let Some(error) = &rendered.template_error {
        warn!(channel = %message.channel, %error, "the channel's template failed; sent the built-in one");
    }
    let answer = match destination {
        Destination::Webhook(webhook) => {
            let body = message::webhook_body(incident, message, &context, &rendered.text);
            to_webhook(ctx, &namespace, webhook, message, &body).await
        }
        Destination::PagerDuty(pagerduty) => {
            to_pagerduty(
                ctx,
                &namespace,
                pagerduty,
                incident,
                message,
                &context,
                &rendered.text,
            )
            .await
        }
    };
    (destination.kind(), answer)
}

async fn to_webhook(
    ctx: &Context,
    namespace: &str,
    destination: &WebhookDestination,
    message: &Notification,
    body: &serde_json::Value,
) -> Answer {
    let url = match secret(ctx, namespace, &destination.url).await {
        Ok(text) => match webhook::url(&text) {
            Ok(url) => url,
            Err(why) => return Answer::Unusable(why),
        },
        Err(answer) => return answer,
    };
    let key = match &destination.signing_key {
        None => None,
        Some(reference) => match secret(ctx, namespace, reference).await {
            Ok(text) => match webhook::signing_key(&text) {
                Ok(key) => Some(key),
                Err(why) => return Answer::Unusable(why),
            },
            Err(answer) => return answer,
        },
    };
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let timestamp = Timestamp::now().as_second();
    webhook::send(
        &ctx.http,
        url,
        key.as_deref(),
        &message.key,
        timestamp,
        bytes,
    )
    .await
}

async fn to_pagerduty(
    ctx: &Context,
    namespace: &str,
    destination: &PagerDutyDestination,
    incident: &Incident,
    message: &Notification,
    context: &message::Context,
    text: &str,
) -> Answer {
    let url = match pagerduty::url(destination.url.as_deref().unwrap_or(EVENTS_URL)) {
        Ok(url) => url,
        Err(why) => return Answer::Unusable(why),
    };
    let routing_key = match secret(ctx, namespace, &destination.routing_key).await {
        Ok(key) => key,
        Err(answer) => return answer,
    };
    let body = pd_body(incident, message, context, text, routing_key.trim());
    pagerduty::send(
        &ctx.http,
        url,
        serde_json::to_vec(&body).unwrap_or_default(),
    )
    .await
}

/// A Secret value the channel needs, or the answer that stands for its absence.
async fn secret(
    ctx: &Context,
    namespace: &str,
    reference: &crate::api::SecretKeyRef,
) -> std::result::Result<String, Answer> {
    match secrets::value(&ctx.client, namespace, reference).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(missing)) => Err(Answer::NotReady(missing.to_string())),
        Err(error) => Err(Answer::NotReady(format!("cannot read the Secret: {error}"))),
    }
}

/// The clocks a message mentions: the update interval when the severity needs updates.
fn clocks(lifecycle: &LifecycleConfig, incident: &Incident) -> Clocks {
    Clocks {
        update_interval: lifecycle
            .update_severities
            .contains(&incident.spec.severity)
            .then_some(lifecycle.update_interval),
        postmortem_due: lifecycle.postmortem_due,
    }
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
