//! The PagerDuty shape of a message (core layer): Events API v2. One alert per incident — its
//! `dedup_key` is the incident's uid — triggered when the incident opens (and re-triggered by later
//! news, which PagerDuty folds into the open alert), acknowledged and resolved with it. Severity maps
//! P0 critical, P1 error, P2 warning, P3 info; the summary is cut to PagerDuty's 1024 characters.

use kube::ResourceExt;
use serde_json::{Value, json};

use super::message::Context;
use crate::api::{Incident, Notification, NotificationEvent, Severity};

/// The default Events API v2 endpoint.
pub const EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";
/// PagerDuty refuses longer summaries.
const MAX_SUMMARY: usize = 1024;

/// What an event does to the incident's alert.
pub fn action(event: NotificationEvent) -> &'static str {
    match event {
        NotificationEvent::Acknowledged => "acknowledge",
        NotificationEvent::Resolved | NotificationEvent::Closed => "resolve",
        _ => "trigger",
    }
}

/// PagerDuty's severity for an incident severity.
pub fn severity(severity: Severity) -> &'static str {
    match severity {
        Severity::P0 => "critical",
        Severity::P1 => "error",
        Severity::P2 => "warning",
        Severity::P3 => "info",
    }
}

/// The alert's key: the incident's uid, the same for every event of the incident.
pub fn dedup_key(incident: &Incident) -> String {
    incident.uid().unwrap_or_else(|| {
        format!(
            "{}/{}",
            incident.namespace().unwrap_or_default(),
            incident.name_any()
        )
    })
}

/// The Events API v2 body; `text` is the rendered message (its first line is the summary).
pub fn body(
    incident: &Incident,
    notification: &Notification,
    ctx: &Context,
    text: &str,
    routing_key: &str,
) -> Value {
    let action = action(notification.event);
    let mut body = json!({
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": dedup_key(incident),
        "client": "incident-operator",
    });
    if action == "trigger" {
        let first = text
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or(&ctx.title);
        let summary = format!("[{}] {}", ctx.severity, first.trim());
        body["payload"] = json!({
            "summary": summary.chars().take(MAX_SUMMARY).collect::<String>(),
            "source": ctx.incident,
            "severity": severity(incident.spec.severity),
            "timestamp": notification.time,
            "component": ctx.affected.first(),
            "group": ctx.namespace,
            "class": notification.event,
            "custom_details": {
                "event": notification.event,
                "title": ctx.title,
                "status": ctx.status,
                "commander": ctx.commander,
                "description": ctx.description,
                "message": text,
                "show": ctx.show,
                "key": notification.key,
            },
        });
    }
    body
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use jiff::Timestamp;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;
    use crate::core::notify::message::{Clocks, context};

    fn incident(severity: &str) -> Incident {
        serde_json::from_value(json!({
            "apiVersion": "incident.dev/v1alpha1", "kind": "Incident",
            "metadata": { "name": "db-down", "namespace": "shop", "uid": "9b2f-uid" },
            "spec": { "title": "Database refuses connections", "severity": severity,
                      "affected": [{ "kind": "Deployment", "name": "db" }] },
        }))
        .expect("an Incident")
    }

    fn message(event: NotificationEvent) -> Notification {
        Notification {
            key: "k-7".into(),
            channel: "shop/oncall".into(),
            event,
            time: Time("2026-11-30T07:00:00Z".parse::<Timestamp>().expect("time")),
            summary: "opened".into(),
            actor: None,
            recipient: None,
        }
    }

    const CLOCKS: Clocks = Clocks {
        update_interval: None,
        postmortem_due: Duration::from_secs(48 * 3600),
    };

    #[test]
    fn an_incident_is_one_alert_triggered_acknowledged_and_resolved() {
        let db = incident("P0");
        let bodies: Vec<Value> = [
            NotificationEvent::Opened,
            NotificationEvent::Acknowledged,
            NotificationEvent::Resolved,
        ]
        .into_iter()
        .map(|event| {
            let m = message(event);
            let ctx = context(&db, &m, CLOCKS);
            body(
                &db,
                &m,
                &ctx,
                "🚨 Incident opened: Database refuses connections\nmore",
                "RKEY",
            )
        })
        .collect();
        let actions: Vec<&str> = bodies
            .iter()
            .map(|b| b["event_action"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(actions, ["trigger", "acknowledge", "resolve"]);
        assert!(
            bodies
                .iter()
                .all(|b| b["dedup_key"] == "9b2f-uid" && b["routing_key"] == "RKEY")
        );
        let trigger = &bodies[0]["payload"];
        assert_eq!(trigger["severity"], "critical");
        assert_eq!(
            trigger["summary"],
            "[P0] 🚨 Incident opened: Database refuses connections"
        );
        assert_eq!(trigger["source"], "shop/db-down");
        assert_eq!(trigger["component"], "Deployment db");
        assert_eq!(trigger["custom_details"]["key"], "k-7");
        assert!(
            bodies[1].get("payload").is_none(),
            "acknowledge carries only the keys"
        );
    }

    #[test]
    fn severities_map_and_long_summaries_are_cut() {
        assert_eq!(
            Severity::ALL.map(severity),
            ["critical", "error", "warning", "info"]
        );
        let db = incident("P2");
        let m = message(NotificationEvent::Escalated);
        let ctx = context(&db, &m, CLOCKS);
        let long = "x".repeat(5000);
        let b = body(&db, &m, &ctx, &long, "RKEY");
        assert_eq!(b["event_action"], "trigger");
        assert_eq!(
            b["payload"]["summary"].as_str().map(|s| s.chars().count()),
            Some(1024)
        );
        assert_eq!(action(NotificationEvent::Closed), "resolve");
        assert_eq!(action(NotificationEvent::Reopened), "trigger");
    }
}
