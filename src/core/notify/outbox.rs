//! The outbox (core layer): the notices of one lifecycle update become one entry per channel that
//! hears them, appended to `status.notifications` in the same write that records the transition,
//! under a key stable for (transition, channel); the outbox stays bounded without dropping a
//! message that has not been delivered.

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use super::delivery::pending;
use super::routing::{channel_ref, event_of, hears};
use crate::{
    api::{Channel, DeliveryRecord, Incident, MAX_NOTIFICATIONS, Notification},
    core::{text::fingerprint, timeline::Notice},
};

/// Longest summary kept in an entry.
pub const MAX_SUMMARY: usize = 768;

/// The outbox entries `notices` become: one per (notice, channel that hears its event), channels in
/// name order.
pub fn enqueue(
    incident: &Incident,
    notices: &[Notice],
    channels: &[Arc<Channel>],
    operator_namespace: Option<&str>,
) -> Vec<Notification> {
    let mut channels: Vec<&Channel> = channels.iter().map(|c| c.as_ref()).collect();
    channels.sort_by_key(|c| channel_ref(c));
    let mut out = Vec::new();
    for notice in notices {
        let Some(event) = event_of(notice.reason) else {
            continue;
        };
        for channel in &channels {
            if !hears(channel, incident, event, operator_namespace) {
                continue;
            }
            out.push(Notification {
                key: fingerprint(&[&notice.key, &channel.uid().unwrap_or_default()]),
                channel: channel_ref(channel),
                event,
                time: Time(notice.time),
                summary: notice.message.chars().take(MAX_SUMMARY).collect(),
                actor: notice.actor.clone(),
                recipient: None,
            });
        }
    }
    out
}

/// Appends `added` to `outbox` (a key already there is not added twice), then drops the oldest
/// delivered or failed messages (per `deliveries`) while there are more than `MAX_NOTIFICATIONS`.
/// Only when every message left is still pending (receivers down for long) do the oldest pending
/// ones go too, so the object stays bounded: those are returned, for the caller to say so.
pub fn append(
    outbox: &mut Vec<Notification>,
    deliveries: &[DeliveryRecord],
    added: Vec<Notification>,
) -> Vec<Notification> {
    for entry in added {
        if !outbox.iter().any(|e| e.key == entry.key) {
            outbox.push(entry);
        }
    }
    let mut excess = outbox.len().saturating_sub(MAX_NOTIFICATIONS);
    outbox.retain(|e| {
        if excess > 0 && !pending(deliveries, &e.key) {
            excess -= 1;
            false
        } else {
            true
        }
    });
    let excess = outbox.len().saturating_sub(MAX_NOTIFICATIONS);
    outbox.drain(..excess).collect()
}

/// The timeline's words for undelivered messages dropped from a full outbox, by Channel.
pub fn dropped_summary(dropped: &[Notification]) -> Option<String> {
    let mut channels: Vec<&str> = dropped.iter().map(|n| n.channel.as_str()).collect();
    channels.sort_unstable();
    channels.dedup();
    (!dropped.is_empty()).then(|| {
        format!(
            "{} undelivered message(s) dropped, oldest first, to keep the incident within {} \
             messages: their receivers accepted nothing for long ({})",
            dropped.len(),
            MAX_NOTIFICATIONS,
            channels.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;
    use serde_json::json;

    use super::*;
    use crate::api::{DeliveryState, NotificationEvent};

    fn channel(name: &str, route: serde_json::Value) -> Arc<Channel> {
        Arc::new(
            serde_json::from_value(json!({
                "apiVersion": "incident.dev/v1alpha1", "kind": "Channel",
                "metadata": { "name": name, "namespace": "shop", "uid": format!("uid-{name}") },
                "spec": { "webhook": { "url": { "name": "hook", "key": "url" } }, "route": route },
            }))
            .expect("a Channel"),
        )
    }

    fn incident(severity: &str) -> Incident {
        serde_json::from_value(json!({
            "apiVersion": "incident.dev/v1alpha1", "kind": "Incident",
            "metadata": { "name": "i", "namespace": "shop", "uid": "inc-1" },
            "spec": { "title": "checkout down", "severity": severity },
        }))
        .expect("an Incident")
    }

    fn notice(key: &str, reason: &'static str, second: i64) -> Notice {
        Notice {
            key: key.into(),
            warning: false,
            reason,
            message: format!("{reason} happened"),
            actor: Some("ana".into()),
            time: Timestamp::from_second(1_800_000_000 + second).expect("time"),
        }
    }

    fn message(key: &str) -> Notification {
        enqueue(
            &incident("P1"),
            &[notice(key, "Detected", 0)],
            &[channel("all", json!({}))],
            None,
        )
        .remove(0)
    }

    fn sent(message: &Notification) -> DeliveryRecord {
        DeliveryRecord {
            key: message.key.clone(),
            state: DeliveryState::Sent,
            attempts: 1,
            last_attempt_at: None,
            next_attempt_at: None,
            sent_at: None,
            last_error: None,
        }
    }

    #[test]
    fn each_notice_that_is_news_goes_to_each_channel_that_hears_it() {
        let channels = [
            channel("tickets", json!({ "severities": ["P3"] })),
            channel("pages", json!({ "severities": ["P0", "P1"] })),
            channel("all", json!({})),
        ];
        let notices = [
            notice("n1", "Detected", 0),
            notice("n2", "Note", 5),
            notice("n3", "Acknowledged", 9),
        ];
        let out = enqueue(&incident("P1"), &notices, &channels, None);
        let got: Vec<(&str, NotificationEvent)> =
            out.iter().map(|n| (n.channel.as_str(), n.event)).collect();
        assert_eq!(
            got,
            [
                ("shop/all", NotificationEvent::Opened),
                ("shop/pages", NotificationEvent::Opened),
                ("shop/all", NotificationEvent::Acknowledged),
                ("shop/pages", NotificationEvent::Acknowledged),
            ]
        );
        assert_eq!(out[0].summary, "Detected happened");
        assert_eq!(out[0].actor.as_deref(), Some("ana"));
        let again = enqueue(&incident("P1"), &notices, &channels, None);
        assert_eq!(out, again, "the same transition gives the same keys");
        let keys: std::collections::BTreeSet<_> = out.iter().map(|n| &n.key).collect();
        assert_eq!(keys.len(), out.len(), "one key per (transition, channel)");
    }

    #[test]
    fn the_outbox_keeps_one_entry_per_key_and_drops_only_delivered_ones_when_full() {
        let mut outbox: Vec<Notification> = (0..MAX_NOTIFICATIONS)
            .map(|i| message(&format!("s{i}")))
            .collect();
        let deliveries: Vec<DeliveryRecord> = outbox.iter().map(sent).collect();
        let first = outbox[0].clone();
        let new = vec![message("new")];
        append(&mut outbox, &deliveries, new.clone());
        append(&mut outbox, &deliveries, new.clone());
        assert_eq!(outbox.len(), MAX_NOTIFICATIONS);
        assert_eq!(outbox.last(), new.last(), "the new one is kept, once");
        assert_ne!(outbox[0], first, "the oldest delivered one went");

        // Undelivered messages stay while settled ones can make room; past that the oldest
        // pending go, and are returned so the incident can say so.
        let mut undelivered: Vec<Notification> = (0..MAX_NOTIFICATIONS)
            .map(|i| message(&format!("p{i}")))
            .collect();
        let dropped = append(&mut undelivered, &[], vec![message("late")]);
        assert_eq!(undelivered.len(), MAX_NOTIFICATIONS);
        assert_eq!(dropped, vec![message("p0")]);
        assert_eq!(undelivered.last(), Some(&message("late")));
        let said = dropped_summary(&dropped).expect("words for it");
        assert!(
            said.starts_with("1 undelivered message(s) dropped"),
            "{said}"
        );
        assert!(dropped_summary(&[]).is_none());
    }
}
