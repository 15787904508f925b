//! Which channel hears what (core layer): a transition's news by its Event reason, and a Channel's
//! route over an incident — its namespace (or every namespace for the operator's own channels), the
//! severities, the events and the incident's labels.

use std::collections::BTreeMap;

use kube::{
    ResourceExt,
    core::labels::{Selector, SelectorExt},
};

use crate::api::{Channel, Incident, NotificationEvent};

/// The events a channel hears when its route names none: everything but Closed.
pub const DEFAULT_EVENTS: [NotificationEvent; 14] = [
    NotificationEvent::Opened,
    NotificationEvent::Acknowledged,
    NotificationEvent::Update,
    NotificationEvent::UpdateDue,
    NotificationEvent::SeverityChanged,
    NotificationEvent::Escalated,
    NotificationEvent::Paged,
    NotificationEvent::CommanderChanged,
    NotificationEvent::ApprovalNeeded,
    NotificationEvent::ActionFailed,
    NotificationEvent::GitOpsPaused,
    NotificationEvent::GitOpsResumed,
    NotificationEvent::Resolved,
    NotificationEvent::Reopened,
];

/// The news a timeline transition is, by the reason of the Event that announces it.
pub fn event_of(reason: &str) -> Option<NotificationEvent> {
    Some(match reason {
        "Detected" => NotificationEvent::Opened,
        "Acknowledged" => NotificationEvent::Acknowledged,
        "Update" => NotificationEvent::Update,
        "UpdateOverdue" => NotificationEvent::UpdateDue,
        "SeverityChanged" => NotificationEvent::SeverityChanged,
        "AcknowledgeOverdue" | "Escalated" => NotificationEvent::Escalated,
        "Paged" => NotificationEvent::Paged,
        "CommanderChanged" => NotificationEvent::CommanderChanged,
        "StepWaiting" => NotificationEvent::ApprovalNeeded,
        "ActionFailed" => NotificationEvent::ActionFailed,
        "GitOpsPaused" => NotificationEvent::GitOpsPaused,
        "GitOpsResumed" => NotificationEvent::GitOpsResumed,
        "Resolved" => NotificationEvent::Resolved,
        "Reopened" => NotificationEvent::Reopened,
        "Closed" => NotificationEvent::Closed,
        _ => return None,
    })
}

/// `namespace/name` of a channel: how the outbox names it.
pub fn channel_ref(channel: &Channel) -> String {
    format!(
        "{}/{}",
        channel.namespace().unwrap_or_default(),
        channel.name_any()
    )
}

/// Whether `channel` hears `event` about `incident`. `operator_namespace` is where channels may
/// serve every namespace.
pub fn hears(
    channel: &Channel,
    incident: &Incident,
    event: NotificationEvent,
    operator_namespace: Option<&str>,
) -> bool {
    let route = &channel.spec.route;
    let own = channel.namespace() == incident.namespace();
    let everywhere = route.all_namespaces
        && operator_namespace.is_some_and(|ns| channel.namespace().as_deref() == Some(ns));
    if !(own || everywhere) {
        return false;
    }
    if !route.severities.is_empty() && !route.severities.contains(&incident.spec.severity) {
        return false;
    }
    let events: &[NotificationEvent] = if route.events.is_empty() {
        &DEFAULT_EVENTS
    } else {
        &route.events
    };
    if !events.contains(&event) {
        return false;
    }
    match &route.incident_selector {
        None => true,
        // A selector the API server admitted but that cannot be parsed matches nothing (the
        // channel's Ready condition says why).
        Some(selector) => {
            Selector::try_from(selector.clone()).is_ok_and(|s| s.matches(&labels(incident)))
        }
    }
}

fn labels(incident: &Incident) -> BTreeMap<String, String> {
    incident.labels().clone()
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    pub(crate) fn channel(namespace: &str, name: &str, route: Value) -> Channel {
        serde_json::from_value(json!({
            "apiVersion": "incident.dev/v1alpha1", "kind": "Channel",
            "metadata": { "name": name, "namespace": namespace, "uid": format!("uid-{name}") },
            "spec": { "webhook": { "url": { "name": "hook", "key": "url" } }, "route": route },
        }))
        .expect("a Channel")
    }

    fn incident(namespace: &str, severity: &str, labels: Value) -> Incident {
        serde_json::from_value(json!({
            "apiVersion": "incident.dev/v1alpha1", "kind": "Incident",
            "metadata": { "name": "i", "namespace": namespace, "labels": labels },
            "spec": { "title": "checkout down", "severity": severity },
        }))
        .expect("an Incident")
    }

    #[test]
    fn every_timeline_reason_that_is_news_maps_to_one_event() {
        assert_eq!(event_of("Detected"), Some(NotificationEvent::Opened));
        assert_eq!(
            event_of("AcknowledgeOverdue"),
            Some(NotificationEvent::Escalated)
        );
        assert_eq!(event_of("Escalated"), Some(NotificationEvent::Escalated));
        assert_eq!(event_of("Note"), None, "notes are not news");
        assert_eq!(event_of("ActionStarted"), None);
        let mapped: Vec<_> = NotificationEvent::ALL
            .iter()
            .filter(|e| {
                [
                    "Detected",
                    "Acknowledged",
                    "Update",
                    "UpdateOverdue",
                    "SeverityChanged",
                    "Escalated",
                    "Paged",
                    "CommanderChanged",
                    "StepWaiting",
                    "ActionFailed",
                    "GitOpsPaused",
                    "GitOpsResumed",
                    "Resolved",
                    "Reopened",
                    "Closed",
                ]
                .iter()
                .any(|r| event_of(r) == Some(**e))
            })
            .collect();
        assert_eq!(
            mapped.len(),
            NotificationEvent::ALL.len(),
            "every event has a source"
        );
    }

    #[test]
    fn a_route_filters_by_namespace_severity_event_and_labels() {
        let pages = channel("shop", "pages", json!({ "severities": ["P0", "P1"] }));
        let p1 = incident("shop", "P1", json!({}));
        let p3 = incident("shop", "P3", json!({}));
        assert!(hears(&pages, &p1, NotificationEvent::Opened, None));
        assert!(!hears(&pages, &p3, NotificationEvent::Opened, None));
        assert!(
            !hears(&pages, &p1, NotificationEvent::Closed, None),
            "not a default event"
        );
        assert!(!hears(
            &pages,
            &incident("ads", "P1", json!({})),
            NotificationEvent::Opened,
            None
        ));

        let team = channel(
            "shop",
            "team",
            json!({ "events": ["Resolved"], "incidentSelector": { "matchLabels": { "team": "pay" } } }),
        );
        let pay = incident("shop", "P2", json!({ "team": "pay" }));
        assert!(hears(&team, &pay, NotificationEvent::Resolved, None));
        assert!(!hears(&team, &pay, NotificationEvent::Opened, None));
        assert!(
            !hears(&team, &p1, NotificationEvent::Resolved, None),
            "labels differ"
        );
    }

    #[test]
    fn only_a_channel_in_the_operators_namespace_may_serve_every_namespace() {
        let platform = channel("ops", "platform", json!({ "allNamespaces": true }));
        let elsewhere = incident("shop", "P2", json!({}));
        assert!(hears(
            &platform,
            &elsewhere,
            NotificationEvent::Opened,
            Some("ops")
        ));
        assert!(!hears(
            &platform,
            &elsewhere,
            NotificationEvent::Opened,
            Some("incident-operator")
        ));
        assert!(!hears(
            &platform,
            &elsewhere,
            NotificationEvent::Opened,
            None
        ));
        let pretender = channel("shop", "everyone", json!({ "allNamespaces": true }));
        assert!(!hears(
            &pretender,
            &incident("ads", "P2", json!({})),
            NotificationEvent::Opened,
            Some("ops")
        ));
        assert_eq!(channel_ref(&platform), "ops/platform");
    }
}
