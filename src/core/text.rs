//! Shared vocabulary of the pure core (core layer): fingerprints, how times and durations read in
//! messages, conditions, names. Every domain may use it; it uses none of them.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// Cheap, stable fingerprint (FNV-1a, 64 bit) of spec values; stable across builds and restarts.
pub fn fingerprint(parts: &[&str]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.bytes().chain([0xff]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

/// `time` cut to the second, as every time in a status is stored: a finer time would never compare
/// equal to its stored copy.
pub fn to_second(time: Timestamp) -> Timestamp {
    Timestamp::from_second(time.as_second()).unwrap_or(time)
}

/// [`to_second`] as a status `Time`.
pub fn whole_second(time: Timestamp) -> Time {
    Time(to_second(time))
}

/// A configured duration as it reads in messages: `90s`, `15m`, `2h` (the largest whole unit).
pub fn humanize(duration: Duration) -> String {
    let secs = duration.as_secs();
    match secs {
        s if s % 3600 == 0 && s >= 3600 => format!("{}h", s / 3600),
        s if s % 60 == 0 && s >= 60 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// A measured duration spelt out exactly: `12m 5s`, `1h`, `2d 3h 4m`; zero parts are left out,
/// negative durations count as zero.
pub fn spelled_seconds(seconds: i64) -> String {
    let total = seconds.max(0);
    if total == 0 {
        return "0s".to_string();
    }
    let parts = [
        (total / 86_400, "d"),
        (total % 86_400 / 3_600, "h"),
        (total % 3_600 / 60, "m"),
        (total % 60, "s"),
    ];
    parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A duration as kubectl prints ages (two significant units at most): `45s`, `3m10s`, `65m`,
/// `5h12m`, `20h`, `3d4h`, `12d`. The sign is dropped.
pub fn age(duration: SignedDuration) -> String {
    let secs = duration.as_secs().unsigned_abs();
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86_400);
    if secs < 120 {
        format!("{secs}s")
    } else if m < 10 {
        match secs % 60 {
            0 => format!("{m}m"),
            s => format!("{m}m{s}s"),
        }
    } else if h < 3 {
        format!("{m}m")
    } else if h < 8 {
        match m % 60 {
            0 => format!("{h}h"),
            rest => format!("{h}h{rest}m"),
        }
    } else if h < 48 {
        format!("{h}h")
    } else if d < 8 {
        match h % 24 {
            0 => format!("{d}d"),
            rest => format!("{d}d{rest}h"),
        }
    } else {
        format!("{d}d")
    }
}

/// `1 container`, `3 containers`: messages are read by people.
pub fn counted(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// The first `max` characters of `text` (schemas bound strings in characters).
pub fn cut(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// Longest condition message kept, in characters, so conditions cannot crowd the object.
pub const MAX_CONDITION_MESSAGE: usize = 1024;

/// A metav1.Condition; observedGeneration and lastTransitionTime are set by the caller.
pub fn condition(type_: &str, status: bool, reason: &str, message: String) -> Condition {
    Condition {
        type_: type_.to_owned(),
        status: if status { "True" } else { "False" }.to_owned(),
        reason: reason.to_owned(),
        message: cut(&message, MAX_CONDITION_MESSAGE),
        observed_generation: None,
        last_transition_time: Time(Timestamp::UNIX_EPOCH),
    }
}

/// An RFC 1123 DNS label: at most 63 lower-case alphanumerics and `-`, alphanumeric at both ends.
pub fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_ways_a_duration_reads() {
        assert_eq!(humanize(Duration::from_secs(5400)), "90m");
        assert_eq!(humanize(Duration::from_secs(7200)), "2h");
        assert_eq!(humanize(Duration::from_secs(95)), "95s");
        assert_eq!(spelled_seconds(5400), "1h 30m");
        assert_eq!(spelled_seconds(-3), "0s");
        assert_eq!(spelled_seconds(183_845), "2d 3h 4m 5s");
        assert_eq!(age(SignedDuration::from_secs(5400)), "90m");
        assert_eq!(age(SignedDuration::from_secs(-190)), "3m10s");
        assert_eq!(age(SignedDuration::from_hours(76)), "3d4h");
    }

    #[test]
    fn fingerprints_are_stable_and_separate_their_parts() {
        assert_eq!(fingerprint(&["a", "b"]), fingerprint(&["a", "b"]));
        assert_ne!(fingerprint(&["ab", ""]), fingerprint(&["a", "b"]));
        assert_eq!(fingerprint(&[]).len(), 16);
    }

    #[test]
    fn dns_labels() {
        assert!(is_dns_label("web-1"));
        for bad in ["", "-web", "web-", "Web", "a.b", &"a".repeat(64)] {
            assert!(!is_dns_label(bad), "{bad}");
        }
        assert_eq!(counted(1, "pod"), "1 pod");
        assert_eq!(counted(2, "pod"), "2 pods");
    }
}
