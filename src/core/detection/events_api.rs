//! Events from other monitors in the PagerDuty Events API v2 shape (core layer) — what Datadog,
//! Grafana, CloudWatch integrations, Uptime Kuma and many others already send. An event is turned
//! into the alert model of `alerts`: its `dedup_key` is both the alert's fingerprint and its
//! group, so one key is one incident; `trigger` fires, `resolve` resolves, `acknowledge`
//! acknowledges the open incident.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::Deserialize;
use serde_json::Value;

use super::alerts::{Alert, Message};
use crate::core::text::{cut, fingerprint};

/// One event (`https://events.pagerduty.com/v2/enqueue`'s body); unknown fields are ignored.
#[derive(Deserialize, Debug, Clone)]
pub struct Event {
    pub routing_key: String,
    pub event_action: String,
    #[serde(default)]
    pub dedup_key: Option<String>,
    #[serde(default)]
    pub payload: Option<Payload>,
    #[serde(default)]
    pub client: Option<String>,
    #[serde(default)]
    pub client_url: Option<String>,
    #[serde(default)]
    pub links: Vec<Link>,
}

#[derive(Deserialize, Debug, Clone)]
pub struct Payload {
    pub summary: String,
    pub source: String,
    pub severity: String,
    #[serde(default)]
    pub timestamp: Option<String>,
    #[serde(default)]
    pub component: Option<String>,
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub class: Option<String>,
    #[serde(default)]
    pub custom_details: Option<Value>,
}

#[derive(Deserialize, Debug, Clone)]
pub struct Link {
    pub href: String,
    #[serde(default)]
    pub text: Option<String>,
}

/// What an event asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    /// Fire or resolve: the message to handle like Alertmanager's.
    Alert(Message),
    /// Acknowledge the open incident of this dedup key's group.
    Acknowledge { message: Message, by: String },
}

/// The event's dedup key: the one given, else (on a trigger) one made from what it is about, as
/// PagerDuty would make one, so a re-sent trigger is the same alert.
pub fn dedup_key(event: &Event) -> Option<String> {
    event
        .dedup_key
        .clone()
        .filter(|k| !k.is_empty())
        .or_else(|| {
            let payload = event.payload.as_ref()?;
            Some(fingerprint(&[&payload.source, &payload.summary]))
        })
}

/// Checks an event and turns it into a request; the reason it cannot be used otherwise (a 400,
/// in PagerDuty's words where it has them).
pub fn read(event: &Event, now: Timestamp) -> Result<Request, String> {
    let key = dedup_key(event).ok_or("dedup_key is required for acknowledge and resolve")?;
    if key.len() > 255 {
        return Err("dedup_key is longer than 255 characters".to_owned());
    }
    let action = event.event_action.as_str();
    if !matches!(action, "trigger" | "acknowledge" | "resolve") {
        return Err(format!(
            "event_action {action:?} is not trigger, acknowledge or resolve"
        ));
    }
    let payload = event.payload.as_ref();
    if action == "trigger" {
        let payload = payload.ok_or("payload is required for trigger")?;
        if payload.summary.trim().is_empty() || payload.source.trim().is_empty() {
            return Err("payload.summary and payload.source must not be empty".to_owned());
        }
        if !matches!(
            payload.severity.as_str(),
            "critical" | "error" | "warning" | "info"
        ) {
            return Err(format!(
                "payload.severity {:?} is not critical, error, warning or info",
                payload.severity
            ));
        }
    }
    let print: String = fingerprint(&[&key]);
    let mut labels = BTreeMap::from([("dedup_key".to_owned(), cut(&key, 256))]);
    let mut annotations = BTreeMap::new();
    if let Some(payload) = payload {
        let name = payload.class.as_deref().unwrap_or(&payload.source);
        labels.insert("alertname".into(), cut(name, 128));
        labels.insert("severity".into(), payload.severity.clone());
        labels.insert("source".into(), cut(&payload.source, 256));
        for (label, value) in [("component", &payload.component), ("group", &payload.group)] {
            if let Some(value) = value {
                labels.insert(label.into(), cut(value, 256));
            }
        }
        annotations.insert("summary".into(), cut(&payload.summary, 1024));
        if let Some(details) = &payload.custom_details {
            annotations.insert("description".into(), cut(&details.to_string(), 2000));
        }
    }
    if let Some(link) = event.links.first() {
        annotations.insert("runbook_url".into(), cut(&link.href, 2048));
    }
    let started = payload
        .and_then(|p| p.timestamp.as_deref())
        .and_then(|t| t.parse::<Timestamp>().ok())
        .unwrap_or(now);
    let resolved = action == "resolve";
    let alert = Alert {
        status: if resolved { "resolved" } else { "firing" }.to_owned(),
        starts_at: started.to_string(),
        ends_at: if resolved {
            now.to_string()
        } else {
            "0001-01-01T00:00:00Z".to_owned()
        },
        generator_url: event.client_url.clone().unwrap_or_default(),
        fingerprint: print[..16].to_owned(),
        labels: labels.clone(),
        annotations: annotations.clone(),
    };
    let message = Message {
        version: "4".to_owned(),
        group_key: format!("events-api:{key}"),
        truncated_alerts: 0,
        status: alert.status.clone(),
        group_labels: BTreeMap::new(),
        common_labels: labels,
        common_annotations: annotations,
        external_url: event.client_url.clone().unwrap_or_default(),
        alerts: vec![alert],
    };
    Ok(match action {
        "acknowledge" => Request::Acknowledge {
            message,
            by: cut(event.client.as_deref().unwrap_or("events-api"), 128),
        },
        _ => Request::Alert(message),
    })
}

#[cfg(test)]
mod tests;
