//! Sending one message to its channel's destination (controllers layer): render it, read the
//! destination's Secrets, and hand it to the wire format in `notifiers/`; for a Slack bot, find or
//! make the incident's message and reply in its thread.

use std::time::Duration;

use jiff::Timestamp;
use kube::ResourceExt;
use tracing::warn;

use super::context::Context;
use crate::{
    api::{
        Destination, Incident, Notification, PagerDutyDestination, SecretKeyRef, SlackDestination,
        SlackThread, WebhookDestination,
    },
    cluster::secrets,
    core::{
        lifecycle::LifecycleConfig,
        notify::{
            delivery::Answer,
            message::{self, Clocks},
            pagerduty::{EVENTS_URL, body as pd_body},
            slack,
        },
    },
    notifiers::{self, pagerduty, webhook},
};

/// Renders and sends one message to its channel: the channel's type, and the receiver's answer or
/// why nothing was sent.
pub(super) async fn send(
    ctx: &Context,
    incident: &Incident,
    message: &Notification,
    thread: &mut Option<SlackThread>,
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
    ctx.pace(&message.channel, interval(destination)).await;
    let answer = match destination {
        Destination::Webhook(webhook) => {
            let body = message::webhook_body(incident, message, &context, &rendered.text);
            to_webhook(ctx, &namespace, webhook, message, &body).await
        }
        Destination::Slack(slack) => {
            let text = slack::text(&slack.mentions, message.event, &context, &rendered.text);
            to_slack(ctx, &namespace, slack, &context, &text, thread).await
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
    reference: &SecretKeyRef,
) -> std::result::Result<String, Answer> {
    match secrets::value(&ctx.client, namespace, reference).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(missing)) => Err(Answer::NotReady(missing.to_string())),
        Err(error) => Err(Answer::NotReady(format!("cannot read the Secret: {error}"))),
    }
}

/// Slack: a webhook gets a new message; a bot posts the incident's message with the first event,
/// then keeps it current and replies in its thread. `thread` is where the incident's message is.
async fn to_slack(
    ctx: &Context,
    namespace: &str,
    destination: &SlackDestination,
    context: &message::Context,
    text: &str,
    thread: &mut Option<SlackThread>,
) -> Answer {
    if let Some(reference) = &destination.webhook {
        let url = match secret(ctx, namespace, reference).await {
            Ok(text) => match notifiers::slack::url(&text) {
                Ok(url) => url,
                Err(why) => return Answer::Unusable(why),
            },
            Err(answer) => return answer,
        };
        return notifiers::slack::webhook(&ctx.http, url, &slack::webhook_body(text, context))
            .await;
    }
    let Some(bot) = &destination.bot else {
        return Answer::Unusable("slack has neither webhook nor bot".to_owned());
    };
    let token = match secret(ctx, namespace, &bot.token).await {
        Ok(token) => token,
        Err(answer) => return answer,
    };
    let base = bot.api_url.as_deref().unwrap_or(notifiers::slack::API_URL);
    let token = token.trim();
    let ok = Answer::Status {
        code: 200,
        retry_after: None,
        reason: None,
    };
    if let Some(root) = thread.as_ref() {
        let update = slack::update_body(&root.slack_channel, &root.ts, context);
        match notifiers::slack::call(&ctx.http, base, "chat.update", token, &update).await {
            Ok(_) => {
                let reply = slack::reply_body(&root.slack_channel, &root.ts, text, context);
                return match notifiers::slack::call(
                    &ctx.http,
                    base,
                    "chat.postMessage",
                    token,
                    &reply,
                )
                .await
                {
                    Ok(_) => ok,
                    Err(answer) => answer,
                };
            }
            // Someone deleted the incident's message: start a new one rather than fail for ever.
            Err(Answer::Rejected { reason, .. }) if reason.ends_with("message_not_found") => {
                *thread = None;
            }
            Err(answer) => return answer,
        }
    }
    let body = slack::post_body(&bot.channel, text, context);
    match notifiers::slack::call(&ctx.http, base, "chat.postMessage", token, &body).await {
        Ok(reply) => {
            // Where the message is, as Slack says: the reference later events use.
            let slack_channel = reply.get("channel").and_then(|c| c.as_str());
            let ts = reply.get("ts").and_then(|t| t.as_str());
            if let (Some(slack_channel), Some(ts)) = (slack_channel, ts) {
                *thread = Some(SlackThread {
                    channel: String::new(),
                    slack_channel: slack_channel.to_owned(),
                    ts: ts.to_owned(),
                });
            }
            ok
        }
        Err(answer) => answer,
    }
}

/// The least time between two messages of a channel, by destination: Slack takes about one a
/// second, PagerDuty about two (120 events a minute per integration).
fn interval(destination: Destination<'_>) -> Duration {
    match destination {
        Destination::Slack(_) => Duration::from_secs(1),
        Destination::PagerDuty(_) => Duration::from_millis(500),
        Destination::Webhook(_) => Duration::ZERO,
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
