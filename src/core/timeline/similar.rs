//! Event aggregation (core layer, part of the shared timeline vocabulary), after Kubernetes' own
//! recorders: the first `LIMIT` Events of one reason on one object within `INTERVAL` are published
//! as they are; past that, the rest of the interval folds into one combined Event per (object,
//! reason) whose count grows, so 2,000 notes make a dozen Events, not 2,000.

use std::collections::HashMap;

use jiff::{SignedDuration, Timestamp};

use crate::core::text::fingerprint;

/// Distinct Events of one reason on one object per interval before they are combined.
pub const LIMIT: u32 = 10;
/// The aggregation window.
pub const INTERVAL: SignedDuration = SignedDuration::from_secs(600);
/// Objects remembered at most; the oldest windows are forgotten first.
const MAX_TRACKED: usize = 10_000;

/// How to publish one Event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Publish {
    /// As its own Event, named by its transition.
    Own,
    /// Counted into the combined Event with this key (stable for the object, reason and window).
    Combined(String),
}

/// The windows of recent Events per (object, reason).
#[derive(Debug, Default)]
pub struct SimilarEvents {
    windows: HashMap<(String, &'static str), Window>,
}

#[derive(Clone, Copy, Debug)]
struct Window {
    start: Timestamp,
    seen: u32,
}

impl SimilarEvents {
    /// Judges the next Event of `reason` about object `uid` at `now`.
    pub fn judge(&mut self, uid: &str, reason: &'static str, now: Timestamp) -> Publish {
        if self.windows.len() >= MAX_TRACKED {
            let cutoff = now - INTERVAL;
            self.windows.retain(|_, w| w.start > cutoff);
        }
        let window = self
            .windows
            .entry((uid.to_owned(), reason))
            .or_insert(Window {
                start: now,
                seen: 0,
            });
        if now.duration_since(window.start) >= INTERVAL {
            *window = Window {
                start: now,
                seen: 0,
            };
        }
        window.seen += 1;
        if window.seen <= LIMIT {
            Publish::Own
        } else {
            let start = window.start.as_second().to_string();
            Publish::Combined(fingerprint(&[uid, reason, "combined", &start]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + second).expect("time")
    }

    #[test]
    fn past_the_limit_similar_events_fold_into_one_until_the_window_ends() {
        let mut similar = SimilarEvents::default();
        let judged: Vec<Publish> = (0..15)
            .map(|i| similar.judge("u1", "Note", at(i)))
            .collect();
        assert!(judged[..10].iter().all(|p| *p == Publish::Own));
        let combined = judged[10].clone();
        assert!(matches!(combined, Publish::Combined(_)));
        assert!(
            judged[10..].iter().all(|p| *p == combined),
            "one combined Event"
        );
        assert_eq!(
            similar.judge("u2", "Note", at(20)),
            Publish::Own,
            "another object"
        );
        assert_eq!(
            similar.judge("u1", "Update", at(20)),
            Publish::Own,
            "another reason"
        );
        assert_eq!(
            similar.judge("u1", "Note", at(700)),
            Publish::Own,
            "a new window"
        );
    }

    #[test]
    fn the_memory_stays_bounded() {
        let mut similar = SimilarEvents::default();
        for i in 0..(MAX_TRACKED as i64 + 5) {
            similar.judge(&format!("u{i}"), "Note", at(i));
        }
        assert!(similar.windows.len() <= MAX_TRACKED + 1);
    }
}
