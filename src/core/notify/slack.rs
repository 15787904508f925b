//! The Slack shape of a message (core layer). An incoming webhook gets every event as a new message
//! (`text` for notifications, `blocks` for the layout). A bot keeps one message per incident in
//! the channel: posted with the first event, then re-rendered in place as the incident's current
//! state — coloured by phase, green once resolved — while each event is a reply in its thread. The
//! severity's mention (e.g. `<!here>`) goes on the events that need attention.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::message::Context;
use crate::api::NotificationEvent;

/// Slack refuses longer section texts.
const MAX_SECTION: usize = 3000;

/// The events a severity's mention is added to: the ones that ask for people.
pub fn mentions_for(event: NotificationEvent) -> bool {
    matches!(
        event,
        NotificationEvent::Opened | NotificationEvent::Escalated | NotificationEvent::Reopened
    )
}

/// The text of a message: the mention for the severity (when the event calls for it), then the
/// rendered message.
pub fn text(
    mentions: &BTreeMap<String, String>,
    event: NotificationEvent,
    ctx: &Context,
    rendered: &str,
) -> String {
    // A page mentions its person (Slack turns `<@U…>` into a notification for them).
    let person = ctx
        .recipient
        .as_ref()
        .and_then(|r| r.handle.as_ref())
        .map(|id| format!("<@{id}>"));
    let severity = mentions
        .get(&ctx.severity)
        .filter(|_| mentions_for(event))
        .cloned();
    match [person, severity].into_iter().flatten().collect::<Vec<_>>() {
        prefix if prefix.is_empty() => rendered.to_owned(),
        prefix => format!("{} {rendered}", prefix.join(" ")),
    }
}

/// The blocks of one event's message: the text as a section, and a context line naming the incident.
fn blocks(text: &str, ctx: &Context) -> Value {
    let section: String = text.chars().take(MAX_SECTION).collect();
    json!([
        { "type": "section", "text": { "type": "mrkdwn", "text": section } },
        { "type": "context", "elements": [
            { "type": "mrkdwn", "text": format!("{} · {} · {}", ctx.incident, ctx.severity, ctx.status) }
        ] },
    ])
}

/// An incoming webhook's body for one event.
pub fn webhook_body(text: &str, ctx: &Context) -> Value {
    json!({ "text": text, "blocks": blocks(text, ctx) })
}

/// The colour of the incident's message by how the response stands.
pub fn color(ctx: &Context) -> &'static str {
    match ctx.status.as_str() {
        "resolved" | "closed" => "#2eb886",
        "fixing" | "monitoring" => "#daa038",
        _ if ctx.phase == "Acknowledged" => "#daa038",
        _ => "#a30200",
    }
}

/// The incident's message as it stands now (for `chat.update`).
pub fn state_text(ctx: &Context) -> String {
    let icon = match ctx.status.as_str() {
        "resolved" | "closed" => "✅",
        "fixing" => "🛠️",
        "monitoring" => "👀",
        _ => "🚨",
    };
    let mut text = format!("{icon} [{}] {} — {}", ctx.severity, ctx.title, ctx.status);
    if let Some(lead) = &ctx.commander {
        text.push_str(&format!("\nLead: {lead}"));
    }
    text.push_str(&format!("\nOpen for {}", ctx.duration));
    if let Some(fix) = ctx.fix.as_ref().filter(|_| ctx.status == "resolved") {
        text.push_str(&format!("\nFixed: {fix}"));
    }
    text.push_str(&format!("\n{}", ctx.show));
    text
}

/// `chat.postMessage` of the incident's message: the first event's text, coloured by state.
pub fn post_body(slack_channel: &str, text: &str, ctx: &Context) -> Value {
    json!({
        "channel": slack_channel,
        "text": text,
        "attachments": [{ "color": color(ctx), "blocks": blocks(text, ctx) }],
    })
}

/// `chat.update` of the incident's message to its current state.
pub fn update_body(slack_channel: &str, ts: &str, ctx: &Context) -> Value {
    let text = state_text(ctx);
    json!({
        "channel": slack_channel,
        "ts": ts,
        "text": text,
        "attachments": [{ "color": color(ctx), "blocks": blocks(&text, ctx) }],
    })
}

/// `chat.postMessage` of one event as a reply in the incident's thread.
pub fn reply_body(slack_channel: &str, ts: &str, text: &str, ctx: &Context) -> Value {
    json!({ "channel": slack_channel, "thread_ts": ts, "text": text, "blocks": blocks(text, ctx) })
}

/// Whether a Slack Web API error is worth trying again (Slack's own trouble), as opposed to a
/// channel, token or message to fix.
pub fn retryable(error: &str) -> bool {
    matches!(
        error,
        "internal_error"
            | "fatal_error"
            | "service_unavailable"
            | "request_timeout"
            | "ratelimited"
    )
}

#[cfg(test)]
mod tests;
