//! What a message says (core layer): the context every template sees (the incident as it stands,
//! the transition, the clocks), the built-in template of each event — the seeds' opening,
//! update and resolution messages first — a Channel's own templates, checked before use, and the
//! versioned JSON a webhook receives.

use std::{collections::BTreeMap, time::Duration};

use jiff::Timestamp;
use kube::ResourceExt;
use minijinja::Environment;
use serde::Serialize;
use serde_json::{Value, json};

use crate::{
    api::{Incident, Notification, NotificationEvent, Phase, Recipient},
    core::text::{humanize, spelled_seconds},
};

/// Version of the webhook payload's schema (docs/notifications.md).
pub const WEBHOOK_SCHEMA_VERSION: &str = "1";

/// The clocks a message mentions, from the lifecycle's configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clocks {
    /// How often the incident needs an update, when its severity needs regular updates.
    pub update_interval: Option<Duration>,
    /// Time from resolution to the post-mortem.
    pub postmortem_due: Duration,
}

/// Everything a template can use.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Context {
    pub event: String,
    /// When the transition happened, `YYYY-MM-DD HH:MM UTC`.
    pub time: String,
    pub severity: String,
    pub title: String,
    pub description: Option<String>,
    /// investigating, identified, fixing, monitoring, resolved or closed: how the response stands
    /// (the latest update's word while the incident is open, else the phase's).
    pub status: String,
    pub phase: String,
    /// `namespace/name`.
    pub incident: String,
    pub name: String,
    pub namespace: String,
    pub commander: Option<String>,
    /// The timeline's words for the transition.
    pub summary: String,
    /// Who did it, when a person did.
    pub actor: Option<String>,
    /// Detection to resolution (or to the transition), spelt out.
    pub duration: String,
    /// What the resolution says fixed it.
    pub fix: Option<String>,
    pub root_cause: Option<String>,
    /// What users saw: the description, as the responders wrote it.
    pub impact: Option<String>,
    /// `30m` when the severity needs regular updates.
    pub next_update: Option<String>,
    /// When the next update is due (`YYYY-MM-DD HH:MM UTC`), while the severity needs updates.
    pub next_update_at: Option<String>,
    pub postmortem_due: String,
    /// The objects the incident names, e.g. `Deployment checkout`.
    pub affected: Vec<String>,
    /// A command that shows the incident.
    pub show: String,
    /// Whom a page asks to respond (Paged messages).
    pub recipient: Option<Recipient>,
    /// How to acknowledge, for a page.
    pub ack: String,
}

/// The context of `notification` about `incident` as it stands.
pub fn context(incident: &Incident, notification: &Notification, clocks: Clocks) -> Context {
    let spec = &incident.spec;
    let status = incident.status.as_ref();
    let phase = status.and_then(|s| s.phase).unwrap_or(Phase::Detected);
    let metrics = status.and_then(|s| s.metrics.as_ref());
    let detected = metrics
        .and_then(|m| m.detected_at.as_ref())
        .or(incident.metadata.creation_timestamp.as_ref())
        .map(|t| t.0);
    let until = metrics
        .and_then(|m| m.resolved_at.as_ref())
        .map_or(notification.time.0, |t| t.0);
    let duration = detected.map_or_else(
        || "unknown".to_owned(),
        |from| spelled_seconds(until.duration_since(from).as_secs()),
    );
    let namespace = incident.namespace().unwrap_or_default();
    let name = incident.name_any();
    Context {
        event: notification.event.to_string(),
        time: utc(notification.time.0),
        severity: spec.severity.to_string(),
        title: spec.title.clone(),
        description: spec.description.clone(),
        status: status_word(incident, phase).to_owned(),
        phase: phase.to_string(),
        incident: format!("{namespace}/{name}"),
        commander: status
            .and_then(|s| s.commander.clone())
            .or_else(|| spec.commander.clone()),
        summary: notification.summary.clone(),
        actor: notification.actor.clone(),
        duration,
        fix: spec.resolution.as_ref().map(|r| r.summary.clone()),
        root_cause: spec.resolution.as_ref().and_then(|r| r.root_cause.clone()),
        impact: spec.description.clone(),
        next_update: clocks.update_interval.map(humanize),
        next_update_at: next_update_at(incident, clocks),
        postmortem_due: humanize(clocks.postmortem_due),
        affected: spec
            .affected
            .iter()
            .map(|a| format!("{:?} {}", a.kind, a.name))
            .collect(),
        show: format!("kubectl incident show {name} -n {namespace}"),
        recipient: notification.recipient.clone(),
        ack: format!("kubectl incident ack {name} -n {namespace}"),
        name,
        namespace,
    }
}

/// How the response stands: the latest update's word while the incident is open, else the phase's.
fn status_word(incident: &Incident, phase: Phase) -> &'static str {
    let open = matches!(
        phase,
        Phase::Detected | Phase::Acknowledged | Phase::Mitigating | Phase::Monitoring
    );
    let said = incident.spec.updates.iter().rev().find_map(|u| u.status);
    match (open, said) {
        (true, Some(said)) => said.as_str(),
        _ => match phase {
            Phase::Detected | Phase::Acknowledged => "investigating",
            Phase::Mitigating => "fixing",
            Phase::Monitoring => "monitoring",
            Phase::Resolved => "resolved",
            Phase::Closed => "closed",
        },
    }
}

/// When the next update is due, for an open incident whose severity needs updates.
fn next_update_at(incident: &Incident, clocks: Clocks) -> Option<String> {
    let interval = clocks.update_interval?;
    let status = incident.status.as_ref()?;
    if status
        .metrics
        .as_ref()
        .is_some_and(|m| m.resolved_at.is_some())
    {
        return None;
    }
    let due = match (&status.next_update_time, &status.last_update_time) {
        (Some(next), _) => next.0,
        (None, Some(last)) => last
            .0
            .checked_add(jiff::SignedDuration::try_from(interval).ok()?)
            .ok()?,
        (None, None) => return None,
    };
    Some(utc(due))
}

/// `2026-11-30 07:05 UTC`.
fn utc(time: Timestamp) -> String {
    time.strftime("%Y-%m-%d %H:%M UTC").to_string()
}

/// The built-in template of an event.
pub fn default_template(event: NotificationEvent) -> &'static str {
    match event {
        NotificationEvent::Opened => {
            "🚨 Incident opened: {{ title }}\n\
             Time: {{ time }}\n\
             Severity: {{ severity }}\n\
             Status: investigating\n\n\
             {{ description or summary }}\n\
             We are looking into it; updates will follow\
             {% if next_update %} at least every {{ next_update }}{% endif %}.\n\
             {{ show }}"
        }
        NotificationEvent::Acknowledged => {
            "👀 {{ actor or commander or 'A responder' }} has taken the lead: {{ title }}\n\
             Time: {{ time }}\n\
             Severity: {{ severity }}\n\
             Status: {{ status }}\n\n\
             {{ summary }}"
        }
        NotificationEvent::UpdateDue => {
            "⏰ Update due: {{ title }}\n\
             Time: {{ time }}\n\
             Status: {{ status }}\n\n\
             {{ summary }}\n\
             {{ commander or 'The responders' }}: please post what is known and what is being done \
             (kubectl incident update {{ name }} -n {{ namespace }} \"...\")."
        }
        NotificationEvent::Update => {
            "📝 Update: {{ title }}\n\
             Time: {{ time }}\n\
             Severity: {{ severity }}\n\
             Status: {{ status }}\n\n\
             {{ summary }}\n\n\
             {% if next_update_at %}Next update by {{ next_update_at }}.\n{% endif %}\
             {% if actor %}Posted by {{ actor }}.{% endif %}"
        }
        NotificationEvent::Paged => {
            "📟 {% if recipient %}{{ recipient.name }}, you are paged as {{ recipient.role }}\
             {% else %}A responder is needed{% endif %}: {{ title }}\n\
             Time: {{ time }}\n\
             Severity: {{ severity }}\n\
             Status: {{ status }}\n\n\
             {{ summary }}\n\
             Nobody has acknowledged yet. To take it: {{ ack }}\n\
             {{ show }}"
        }
        NotificationEvent::CommanderChanged => {
            "🧭 {{ commander or 'Nobody' }} leads the response: {{ title }}\n\
             Time: {{ time }}\n\
             Severity: {{ severity }}\n\
             Status: {{ status }}\n\n\
             {{ summary }}"
        }
        NotificationEvent::Resolved => {
            "✅ Incident resolved: {{ title }}\n\
             Time: {{ time }}\n\
             Duration: {{ duration }}\n\
             Impact: {{ impact or 'not described' }}\n\n\
             What fixed it: {{ fix or summary }}\n\
             {% if root_cause %}Root cause: {{ root_cause }}\n{% endif %}\
             A post-mortem follows within {{ postmortem_due }}."
        }
        _ => {
            "{{ headline }}: {{ title }}\n\
             Time: {{ time }}\n\
             Severity: {{ severity }}\n\
             Status: {{ status }}\n\n\
             {{ summary }}\n\
             {{ show }}"
        }
    }
}

/// The first line of the generic template, by event.
fn headline(event: NotificationEvent) -> &'static str {
    match event {
        NotificationEvent::SeverityChanged => "⚠️ Severity changed",
        NotificationEvent::Escalated => "📣 Escalated",
        NotificationEvent::Paged => "📟 Paged",
        NotificationEvent::CommanderChanged => "🧭 Commander changed",
        NotificationEvent::ApprovalNeeded => "✋ A runbook step waits for a person",
        NotificationEvent::ActionFailed => "❌ A remediation action failed",
        NotificationEvent::GitOpsPaused => "⏸️ GitOps owner paused so the rollback sticks",
        NotificationEvent::GitOpsResumed => "▶️ GitOps owner resumed",
        NotificationEvent::Reopened => "🔁 Incident reopened",
        NotificationEvent::Closed => "📘 Incident closed",
        NotificationEvent::Opened => "🚨 Incident opened",
        NotificationEvent::Acknowledged => "👀 Acknowledged",
        NotificationEvent::Update => "📝 Update",
        NotificationEvent::UpdateDue => "⏰ Update due",
        NotificationEvent::Resolved => "✅ Incident resolved",
    }
}

/// A rendered message, and why a Channel's own template could not be used, if it could not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    pub text: String,
    pub template_error: Option<String>,
}

/// Renders the message: the Channel's template for the event if it has one and it renders, else
/// the built-in one (never half of either).
pub fn render(
    templates: &BTreeMap<String, String>,
    event: NotificationEvent,
    ctx: &Context,
) -> Rendered {
    let own = templates.get(event.as_str());
    let mut template_error = None;
    if let Some(source) = own {
        match render_one(source, event, ctx) {
            Ok(text) => {
                return Rendered {
                    text,
                    template_error: None,
                };
            }
            Err(error) => template_error = Some(error),
        }
    }
    let text = render_one(default_template(event), event, ctx)
        .unwrap_or_else(|_| format!("{}: {}", headline(event), ctx.title));
    Rendered {
        text,
        template_error,
    }
}

fn render_one(source: &str, event: NotificationEvent, ctx: &Context) -> Result<String, String> {
    let env = Environment::new();
    let mut value = serde_json::to_value(ctx).map_err(|e| e.to_string())?;
    value["headline"] = json!(headline(event));
    env.render_str(source, minijinja::value::Serde(value))
        .map(|text| text.trim().to_owned())
        .map_err(|error| describe(event, &error))
}

fn describe(event: NotificationEvent, error: &minijinja::Error) -> String {
    let line = error
        .line()
        .map(|l| format!(" (line {l})"))
        .unwrap_or_default();
    let detail = error.detail().map(|d| format!(": {d}")).unwrap_or_default();
    format!("template {event}{line}: {}{detail}", error.kind())
}

/// Checks a Channel's templates: each must parse and render against a sample incident. The first
/// problem, naming the event and the line.
pub fn check(templates: &BTreeMap<String, String>) -> Result<(), String> {
    let sample = sample_context();
    for (key, source) in templates {
        let Some(event) = NotificationEvent::ALL
            .into_iter()
            .find(|e| e.as_str() == key)
        else {
            return Err(format!("templates.{key}: not an event"));
        };
        render_one(source, event, &sample)?;
    }
    Ok(())
}

fn sample_context() -> Context {
    Context {
        event: "Opened".into(),
        time: "2026-01-01 00:00 UTC".into(),
        severity: "P1".into(),
        title: "checkout returns 500".into(),
        description: Some("payments fail for every user".into()),
        status: "investigating".into(),
        phase: "Detected".into(),
        incident: "shop/checkout-down".into(),
        name: "checkout-down".into(),
        namespace: "shop".into(),
        commander: Some("ana".into()),
        summary: "P1 incident opened: checkout returns 500".into(),
        actor: Some("ana".into()),
        duration: "12m 5s".into(),
        fix: Some("rolled back to revision 3".into()),
        root_cause: Some("a bad config push".into()),
        impact: Some("payments fail for every user".into()),
        next_update: Some("30m".into()),
        next_update_at: Some("2026-01-01 00:30 UTC".into()),
        postmortem_due: "48h".into(),
        affected: vec!["Deployment checkout".into()],
        show: "kubectl incident show checkout-down -n shop".into(),
        recipient: Some(Recipient {
            name: "ana".into(),
            role: "primary on call".into(),
            handle: Some("U024BE7LH".into()),
        }),
        ack: "kubectl incident ack checkout-down -n shop".into(),
    }
}

/// The JSON a webhook receives (schema version 1, docs/notifications.md).
pub fn webhook_body(
    incident: &Incident,
    notification: &Notification,
    ctx: &Context,
    text: &str,
) -> Value {
    let status = incident.status.as_ref();
    let metrics = status.and_then(|s| s.metrics.as_ref());
    json!({
        "version": WEBHOOK_SCHEMA_VERSION,
        "id": notification.key,
        "event": notification.event,
        "time": notification.time,
        "text": text,
        "incident": {
            "namespace": ctx.namespace,
            "name": ctx.name,
            "uid": incident.uid(),
            "title": ctx.title,
            "severity": incident.spec.severity,
            "phase": ctx.phase,
            "status": ctx.status,
            "description": ctx.description,
            "commander": ctx.commander,
            "affected": incident.spec.affected,
            "signals": incident.spec.signals.iter().map(|s| &s.type_).collect::<Vec<_>>(),
            "detectedAt": metrics.and_then(|m| m.detected_at.clone()),
            "acknowledgedAt": metrics.and_then(|m| m.acknowledged_at.clone()),
            "resolvedAt": metrics.and_then(|m| m.resolved_at.clone()),
            "respondBy": status.and_then(|s| s.sla.as_ref()).map(|s| s.respond_by.clone()),
        },
        "entry": {
            "summary": notification.summary,
            "actor": notification.actor,
        },
        "recipient": notification.recipient,
    })
}

#[cfg(test)]
mod tests;
