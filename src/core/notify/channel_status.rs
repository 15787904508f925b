//! A Channel's own status (core layer): `Ready`/`Stalled` from its templates, its selector and its
//! Secrets (kstatus-compatible, so Argo CD and Flux show its health), `Delivering` from the last
//! attempt to reach its receiver, and the count of messages sent and given up, read from the
//! outboxes of the incidents it serves.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{ResourceExt, core::labels::Selector};

use super::{message::check, routing::channel_ref};
use crate::{
    api::{Channel, ChannelStatus, DeliveryState, Incident, LastDelivery},
    core::{text::condition, timeline::Notice},
};

pub const READY: &str = "Ready";
pub const STALLED: &str = "Stalled";
pub const DELIVERING: &str = "Delivering";

/// What the shell found checking the channel's Secrets: the condition reason and message of the
/// first problem (`SecretNotFound`, `InvalidURL`, `InvalidSigningKey`), if any.
pub type SecretProblem = Option<(&'static str, String)>;

/// What the incidents' outboxes say about one channel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub sent: i64,
    pub failed: i64,
    pub last: Option<LastDelivery>,
    /// The last attempt did not get through (pending after an error, or given up).
    pub failing: bool,
}

/// Counts the channel's messages in `incidents`' outboxes and finds its last attempt.
pub fn stats(channel: &Channel, incidents: &[&Incident]) -> Stats {
    let reference = channel_ref(channel);
    let mut out = Stats::default();
    let mut latest: Option<(Timestamp, LastDelivery, bool)> = None;
    for incident in incidents {
        let Some(status) = &incident.status else {
            continue;
        };
        for message in status
            .notifications
            .iter()
            .filter(|n| n.channel == reference)
        {
            let Some(record) = status.deliveries.iter().find(|d| d.key == message.key) else {
                continue;
            };
            match record.state {
                DeliveryState::Sent => out.sent += 1,
                DeliveryState::Failed => out.failed += 1,
                DeliveryState::Pending => {}
            }
            let Some(at) = record.last_attempt_at.as_ref().map(|t| t.0) else {
                continue;
            };
            let result = match record.state {
                DeliveryState::Sent => "Delivered",
                DeliveryState::Pending => "Retrying",
                DeliveryState::Failed => "Failed",
            };
            let failing = record.state != DeliveryState::Sent;
            let last = LastDelivery {
                time: Time(at),
                incident: format!(
                    "{}/{}",
                    incident.namespace().unwrap_or_default(),
                    incident.name_any()
                ),
                event: message.event,
                result: result.to_owned(),
                message: record.last_error.clone().filter(|_| failing),
            };
            if latest.as_ref().is_none_or(|(t, ..)| at >= *t) {
                latest = Some((at, last, failing));
            }
        }
    }
    if let Some((_, last, failing)) = latest {
        out.last = Some(last);
        out.failing = failing;
    }
    out
}

/// Why the channel cannot be used as written, if it cannot: the reason and message.
pub fn problem(channel: &Channel, secrets: SecretProblem) -> Option<(&'static str, String)> {
    if let Err(error) = check(&channel.spec.templates) {
        return Some(("InvalidTemplate", error));
    }
    if let Some(selector) = &channel.spec.route.incident_selector
        && let Err(error) = Selector::try_from(selector.clone())
    {
        return Some((
            "InvalidSelector",
            format!("route.incidentSelector: {error}"),
        ));
    }
    secrets
}

/// The status the channel should have. `operator_namespace` decides whether `allNamespaces` holds.
pub fn desired_status(
    channel: &Channel,
    secrets: SecretProblem,
    stats: Stats,
    operator_namespace: Option<&str>,
    now: Timestamp,
) -> ChannelStatus {
    let generation = channel.metadata.generation.unwrap_or(0);
    let old = channel.status.as_ref();
    let (ready, stalled) = match problem(channel, secrets) {
        None => {
            let mut message = "the channel is valid and its Secrets are present".to_owned();
            let everywhere = channel.spec.route.all_namespaces;
            if everywhere && operator_namespace != channel.namespace().as_deref() {
                message.push_str(&format!(
                    "; allNamespaces is honoured only in the operator's namespace ({}): this channel serves its own",
                    operator_namespace.unwrap_or("unknown")
                ));
            }
            (
                condition(READY, true, "Valid", message),
                condition(STALLED, false, "Valid", String::new()),
            )
        }
        Some((reason, message)) => (
            condition(READY, false, reason, message.clone()),
            condition(STALLED, true, reason, message),
        ),
    };
    let delivering = match (&stats.last, stats.failing) {
        (None, _) => condition(
            DELIVERING,
            true,
            "NoMessagesYet",
            "nothing sent yet".to_owned(),
        ),
        (Some(last), true) => condition(
            DELIVERING,
            false,
            "ReceiverFailing",
            last.message
                .clone()
                .unwrap_or_else(|| "the last message did not get through".to_owned()),
        ),
        (Some(last), false) => condition(
            DELIVERING,
            true,
            "Delivered",
            format!("last message ({}) delivered at {}", last.event, last.time.0),
        ),
    };
    let conditions: Vec<Condition> = [ready, stalled, delivering]
        .into_iter()
        .map(|mut c| {
            c.observed_generation = Some(generation);
            c.last_transition_time = old
                .and_then(|o| o.conditions.iter().find(|p| p.type_ == c.type_))
                .filter(|p| p.status == c.status)
                .map_or(Time(now), |p| p.last_transition_time.clone());
            c
        })
        .collect();
    ChannelStatus {
        observed_generation: Some(generation),
        conditions,
        sent: stats.sent,
        failed: stats.failed,
        last_delivery: stats.last,
    }
}

/// The Event to publish when the channel's readiness flips (also on its first status).
pub fn readiness_flip(
    current: Option<&ChannelStatus>,
    desired: &ChannelStatus,
    now: Timestamp,
) -> Option<Notice> {
    let find = |s: &ChannelStatus| s.conditions.iter().find(|c| c.type_ == READY).cloned();
    let ready = find(desired)?;
    if current
        .and_then(find)
        .is_some_and(|c| c.status == ready.status)
    {
        return None;
    }
    let up = ready.status == "True";
    Some(Notice {
        key: String::new(),
        warning: !up,
        reason: if up { "Ready" } else { "NotReady" },
        message: ready.message,
        actor: None,
        time: now,
    })
}

#[cfg(test)]
mod tests;
