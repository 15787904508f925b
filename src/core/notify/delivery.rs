//! Delivery decisions (core layer): which outbox entries are due (in order per channel: a channel's
//! later messages wait behind its first undelivered one), what a receiver's answer means (sent,
//! retry when, or give up), and the backoff between attempts, jittered deterministically from the
//! entry's key so the decision stays a function of its inputs.

use std::{collections::BTreeMap, time::Duration};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::{
    api::{DeliveryState, Notification},
    core::text::{fingerprint, to_second},
};

/// A message is retried for this long after its transition, then given up.
pub const GIVE_UP_AFTER: SignedDuration = SignedDuration::from_hours(24);
/// The first retry waits about this long; each further one twice as long.
const FIRST_BACKOFF: SignedDuration = SignedDuration::from_secs(1);
/// No retry waits longer than this (unless the receiver asks, with Retry-After).
const MAX_BACKOFF: SignedDuration = SignedDuration::from_mins(5);
/// Longest error text kept in the outbox.
const MAX_ERROR: usize = 512;

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

/// The pending entries to send now, by channel, in outbox order: for each channel whose first
/// pending entry is due, that entry and the ones after it.
pub fn due(outbox: &[Notification], now: Timestamp) -> BTreeMap<String, Vec<usize>> {
    let mut by_channel: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (index, entry) in outbox.iter().enumerate() {
        if entry.state == DeliveryState::Pending {
            by_channel
                .entry(entry.channel.clone())
                .or_default()
                .push(index);
        }
    }
    by_channel.retain(|_, indices| {
        indices
            .first()
            .is_some_and(|first| is_due(&outbox[*first], now))
    });
    by_channel
}

fn is_due(entry: &Notification, now: Timestamp) -> bool {
    entry.next_attempt_at.as_ref().is_none_or(|at| at.0 <= now)
}

/// When the earliest waiting retry is due, if any.
pub fn next_attempt(outbox: &[Notification]) -> Option<Timestamp> {
    outbox
        .iter()
        .filter(|e| e.state == DeliveryState::Pending)
        .filter_map(|e| e.next_attempt_at.as_ref().map(|t| t.0))
        .min()
}

/// What `answer` means for `entry` (before this attempt is counted).
pub fn judge(entry: &Notification, answer: &Answer, now: Timestamp) -> Verdict {
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
    let wait = backoff(&entry.key, entry.attempts);
    let asked = retry_after
        .and_then(|d| SignedDuration::try_from(d).ok())
        .unwrap_or(SignedDuration::ZERO);
    let at = now.checked_add(wait.max(asked)).unwrap_or(Timestamp::MAX);
    Verdict::Retry {
        at: to_second(at).max(to_second(now) + SignedDuration::from_secs(1)),
        error,
    }
}

/// Records an attempt and its verdict on the entry.
pub fn record(entry: &mut Notification, verdict: &Verdict, now: Timestamp) {
    entry.attempts = entry.attempts.saturating_add(1);
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
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::api::NotificationEvent;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + second).expect("time")
    }

    fn entry(key: &str, channel: &str, state: DeliveryState, next: Option<i64>) -> Notification {
        Notification {
            key: key.into(),
            channel: channel.into(),
            event: NotificationEvent::Opened,
            time: Time(at(0)),
            summary: "opened".into(),
            actor: None,
            state,
            attempts: 0,
            next_attempt_at: next.map(|s| Time(at(s))),
            sent_at: None,
            last_error: None,
        }
    }

    fn status(code: u16) -> Answer {
        Answer::Status {
            code,
            retry_after: None,
            reason: None,
        }
    }

    #[test]
    fn a_channels_later_messages_wait_behind_its_first_undelivered_one() {
        let outbox = [
            entry("a1", "shop/a", DeliveryState::Sent, None),
            entry("a2", "shop/a", DeliveryState::Pending, Some(100)),
            entry("b1", "shop/b", DeliveryState::Pending, None),
            entry("a3", "shop/a", DeliveryState::Pending, None),
            entry("b2", "shop/b", DeliveryState::Pending, None),
            entry("c1", "shop/c", DeliveryState::Failed, None),
        ];
        let now = due(&outbox, at(50));
        assert_eq!(now.len(), 1, "a waits for its retry at +100");
        assert_eq!(now["shop/b"], [2, 4]);
        let later = due(&outbox, at(100));
        assert_eq!(later["shop/a"], [1, 3]);
        assert_eq!(next_attempt(&outbox), Some(at(100)));
    }

    #[test]
    fn success_is_sent_refusal_fails_and_overload_or_outage_retries() {
        let e = entry("k", "shop/a", DeliveryState::Pending, None);
        assert_eq!(judge(&e, &status(200), at(5)), Verdict::Sent);
        assert_eq!(judge(&e, &status(204), at(5)), Verdict::Sent);
        let refused = Answer::Status {
            code: 404,
            retry_after: None,
            reason: Some("channel_not_found".into()),
        };
        assert_eq!(
            judge(&e, &refused, at(5)),
            Verdict::Failed {
                error: "the receiver answered 404: channel_not_found".into()
            }
        );
        for answer in [
            status(500),
            status(503),
            status(429),
            status(408),
            Answer::Unreachable("connection refused".into()),
        ] {
            assert!(
                matches!(judge(&e, &answer, at(5)), Verdict::Retry { .. }),
                "{answer:?}"
            );
        }
    }

    #[test]
    fn retry_after_is_honoured_and_a_day_later_the_message_is_given_up() {
        let e = entry("k", "shop/a", DeliveryState::Pending, None);
        let slow_down = Answer::Status {
            code: 429,
            retry_after: Some(Duration::from_secs(30)),
            reason: None,
        };
        match judge(&e, &slow_down, at(10)) {
            Verdict::Retry { at: when, .. } => assert_eq!(when, at(40)),
            other => panic!("expected a retry, got {other:?}"),
        }
        let late = judge(&e, &status(503), at(0) + GIVE_UP_AFTER);
        assert!(
            matches!(&late, Verdict::Failed { error } if error.starts_with("undeliverable for 24h"))
        );
    }

    #[test]
    fn recording_an_attempt_moves_the_entry_on() {
        let mut e = entry("k", "shop/a", DeliveryState::Pending, None);
        let retry = judge(&e, &status(500), at(10));
        record(&mut e, &retry, at(10));
        assert_eq!((e.state, e.attempts), (DeliveryState::Pending, 1));
        assert!(e.next_attempt_at.as_ref().is_some_and(|t| t.0 > at(10)));
        assert_eq!(e.last_error.as_deref(), Some("the receiver answered 500"));
        record(&mut e, &Verdict::Sent, at(20));
        assert_eq!((e.state, e.attempts), (DeliveryState::Sent, 2));
        assert_eq!(e.sent_at, Some(Time(at(20))));
        assert_eq!(e.next_attempt_at, None);
    }

    proptest! {
        #[test]
        fn backoff_doubles_within_its_jitter_and_stays_bounded(key in "[a-z0-9]{1,16}", attempts in 0i32..40) {
            let wait = backoff(&key, attempts);
            let base = (1i64 << attempts.clamp(0, 20)).min(300) * 1000;
            prop_assert!(wait.as_millis() >= i128::from(base / 2), "{wait:?} < half of {base} ms");
            prop_assert!(wait.as_millis() <= i128::from(base * 3 / 2), "{wait:?} > 1.5 x {base} ms");
            prop_assert_eq!(wait, backoff(&key, attempts), "deterministic");
        }
    }
}
