//! Delivery decisions (core layer): which outbox messages are due (in order per channel: a
//! channel's later messages wait behind its first undelivered one), what a receiver's answer means
//! (sent, retry when, or give up), the record of each attempt, and the backoff between attempts,
//! jittered deterministically from the message's key so the decision stays a function of its
//! inputs.

use std::{collections::BTreeMap, time::Duration};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::{
    api::{DeliveryRecord, DeliveryState, Notification},
    core::text::{fingerprint, to_second},
};

/// A message is retried for this long after its transition, then given up.
pub const GIVE_UP_AFTER: SignedDuration = SignedDuration::from_hours(24);
/// The first retry waits about this long; each further one twice as long.
const FIRST_BACKOFF: SignedDuration = SignedDuration::from_secs(1);
/// No retry waits longer than this (unless the receiver asks, with Retry-After).
const MAX_BACKOFF: SignedDuration = SignedDuration::from_mins(5);
/// Longest error text kept in the outbox.
pub const MAX_ERROR: usize = 256;

/// What a receiver answered, or that it could not be reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    Status {
        code: u16,
        /// The receiver's Retry-After, in seconds.
        retry_after: Option<Duration>,
        /// A short reason from the body (e.g. Slack's `channel_not_found`), if any.
        reason: Option<String>,
    },
    /// Connection refused, timed out, reset.
    Unreachable(String),
    /// The destination cannot be used as configured (e.g. its URL is not http or https); sending
    /// again would not help.
    Unusable(String),
    /// Nothing was sent: the destination is not ready yet (e.g. its Secret is missing); try again
    /// later, it may be fixed.
    NotReady(String),
    /// The receiver answered but refused the message in its body (Slack's `ok: false`), with its
    /// reason; `retryable` when the trouble is the receiver's own.
    Rejected { reason: String, retryable: bool },
}

/// What an answer means for the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Sent,
    /// Try again at this time.
    Retry {
        at: Timestamp,
        error: String,
    },
    /// Given up: the receiver refused it, or it could not be delivered for a day.
    Failed {
        error: String,
    },
}

impl Verdict {
    pub fn result_label(&self) -> &'static str {
        match self {
            Verdict::Sent => "sent",
            Verdict::Retry { .. } => "retry",
            Verdict::Failed { .. } => "failed",
        }
    }
}

/// The record of the message `key`, if any attempt was made.
pub fn record_of<'a>(deliveries: &'a [DeliveryRecord], key: &str) -> Option<&'a DeliveryRecord> {
    deliveries.iter().find(|d| d.key == key)
}

/// Whether the message is still to be delivered.
pub fn pending(deliveries: &[DeliveryRecord], key: &str) -> bool {
    record_of(deliveries, key).is_none_or(|d| d.state == DeliveryState::Pending)
}

/// The pending messages to send now, by channel, in outbox order: for each channel whose first
/// pending message is due, that message and the ones after it.
pub fn due(
    outbox: &[Notification],
    deliveries: &[DeliveryRecord],
    now: Timestamp,
) -> BTreeMap<String, Vec<usize>> {
    let mut by_channel: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (index, entry) in outbox.iter().enumerate() {
        if pending(deliveries, &entry.key) {
            by_channel
                .entry(entry.channel.clone())
                .or_default()
                .push(index);
        }
    }
    by_channel.retain(|_, indices| {
        indices.first().is_some_and(|first| {
            record_of(deliveries, &outbox[*first].key)
                .and_then(|d| d.next_attempt_at.as_ref())
                .is_none_or(|at| at.0 <= now)
        })
    });
    by_channel
}

/// When the earliest waiting retry is due, if any.
pub fn next_attempt(deliveries: &[DeliveryRecord]) -> Option<Timestamp> {
    deliveries
        .iter()
        .filter(|d| d.state == DeliveryState::Pending)
        .filter_map(|d| d.next_attempt_at.as_ref().map(|t| t.0))
        .min()
}

/// What `answer` means for `entry` (before this attempt is counted).
pub fn judge(
    entry: &Notification,
    deliveries: &[DeliveryRecord],
    answer: &Answer,
    now: Timestamp,
) -> Verdict {
    let (retryable, retry_after, error) = match answer {
        Answer::Status { code, .. } if (200..300).contains(code) => return Verdict::Sent,
        Answer::Status {
            code,
            retry_after,
            reason,
        } => {
            let error = match reason {
                Some(reason) => format!("the receiver answered {code}: {reason}"),
                None => format!("the receiver answered {code}"),
            };
            (
                *code == 408 || *code == 429 || *code >= 500,
                *retry_after,
                error,
            )
        }
        Answer::Unreachable(why) => (
            true,
            None,
            format!("the receiver could not be reached: {why}"),
        ),
        Answer::Unusable(why) => (false, None, why.clone()),
        Answer::NotReady(why) => (true, None, why.clone()),
        Answer::Rejected { reason, retryable } => (
            *retryable,
            None,
            format!("the receiver refused it: {reason}"),
        ),
    };
    let error: String = error.chars().take(MAX_ERROR).collect();
    if !retryable {
        return Verdict::Failed { error };
    }
    if now.duration_since(entry.time.0) >= GIVE_UP_AFTER {
        return Verdict::Failed {
            error: format!("undeliverable for 24h; last: {error}"),
        };
    }
    let attempts = record_of(deliveries, &entry.key).map_or(0, |d| d.attempts);
    let wait = backoff(&entry.key, attempts);
    let asked = retry_after
        .and_then(|d| SignedDuration::try_from(d).ok())
        .unwrap_or(SignedDuration::ZERO);
    let at = now.checked_add(wait.max(asked)).unwrap_or(Timestamp::MAX);
    // Rounded up to the second the status stores: never earlier than the receiver asked.
    let whole = to_second(at);
    let at = if whole < at {
        whole + SignedDuration::from_secs(1)
    } else {
        whole
    };
    Verdict::Retry { at, error }
}

/// Records an attempt at the message `key` and its verdict.
pub fn record(deliveries: &mut Vec<DeliveryRecord>, key: &str, verdict: &Verdict, now: Timestamp) {
    let index = match deliveries.iter().position(|d| d.key == key) {
        Some(index) => index,
        None => {
            deliveries.push(DeliveryRecord {
                key: key.to_owned(),
                state: DeliveryState::Pending,
                attempts: 0,
                last_attempt_at: None,
                next_attempt_at: None,
                sent_at: None,
                last_error: None,
            });
            deliveries.len() - 1
        }
    };
    let entry = &mut deliveries[index];
    entry.attempts = entry.attempts.saturating_add(1);
    entry.last_attempt_at = Some(Time(to_second(now)));
    match verdict {
        Verdict::Sent => {
            entry.state = DeliveryState::Sent;
            entry.sent_at = Some(Time(to_second(now)));
            entry.next_attempt_at = None;
        }
        Verdict::Retry { at, error } => {
            entry.next_attempt_at = Some(Time(*at));
            entry.last_error = Some(error.clone());
        }
        Verdict::Failed { error } => {
            entry.state = DeliveryState::Failed;
            entry.next_attempt_at = None;
            entry.last_error = Some(error.clone());
        }
    }
}

/// Drops the records of messages no longer in the outbox.
pub fn prune(deliveries: &mut Vec<DeliveryRecord>, outbox: &[Notification]) {
    deliveries.retain(|d| outbox.iter().any(|n| n.key == d.key));
}

/// The wait before the attempt after `attempts` failed ones: 1 s doubling up to 5 min, each
/// between 50 % and 150 % of that, jittered by the key so receivers are not hit in lockstep.
pub fn backoff(key: &str, attempts: i32) -> SignedDuration {
    let exponent = u32::try_from(attempts.clamp(0, 20)).unwrap_or(20);
    let base = FIRST_BACKOFF
        .checked_mul(2i32.saturating_pow(exponent))
        .unwrap_or(MAX_BACKOFF)
        .min(MAX_BACKOFF);
    let print = fingerprint(&[key, &attempts.to_string()]);
    let spread = u64::from_str_radix(&print[..4], 16).unwrap_or(0) % 1001;
    // 500‰ .. 1500‰ of the base.
    let millis = base.as_millis() * (500 + i128::from(spread)) / 1000;
    SignedDuration::from_millis(i64::try_from(millis).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests;
