//! Parsers of flag and file values (config layer): durations, durations that can be switched off,
//! and per-severity response times; each says what it expected.

use std::time::Duration;

use crate::api::{Severity, duration};

/// Parses a non-negative duration written like `90s`, `15m` or `1h30m` (the CRDs' grammar).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    duration::parse(text)
}

/// Parses a namespace name: one that cannot exist would make the operator watch nothing.
pub fn parse_namespace(text: &str) -> Result<String, String> {
    if crate::core::text::is_dns_label(text) {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "`{text}` is not a namespace name: lowercase letters, digits and '-', at most 63"
        ))
    }
}

/// Parses an object name (an RFC 1123 subdomain), such as a ValidatingAdmissionPolicy's.
pub fn parse_object_name(text: &str) -> Result<String, String> {
    let label_ok = |l: &str| crate::core::text::is_dns_label(l);
    if text.len() <= 253 && text.split('.').all(label_ok) {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "`{text}` is not an object name: lowercase letters, digits, '-' and '.', at most 253"
        ))
    }
}

/// A duration that can be switched off (`off`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OptionalDuration(pub Option<Duration>);

/// Parses a duration, or `off` for none.
pub fn parse_optional_duration(text: &str) -> Result<OptionalDuration, String> {
    match text.trim() {
        "off" | "never" => Ok(OptionalDuration(None)),
        other => parse_duration(other).map(|d| OptionalDuration(Some(d))),
    }
}

/// Parses `P1=30m`.
pub fn parse_response_time(text: &str) -> Result<(Severity, Duration), String> {
    let (severity, duration) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not SEVERITY=DURATION, e.g. P0=15m"))?;
    let severity = Severity::ALL
        .into_iter()
        .find(|s| s.as_str() == severity.trim())
        .ok_or_else(|| format!("`{severity}` is not a severity: use P0, P1, P2 or P3"))?;
    let duration = parse_duration(duration)?;
    if duration.is_zero() {
        return Err(format!(
            "the response time of {severity} must be more than zero"
        ));
    }
    Ok((severity, duration))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert!(
            parse_duration("5 minutes").is_err(),
            "the Runbook CRD refuses it too"
        );
    }

    #[test]
    fn durations_without_units_or_numbers_are_refused() {
        assert!(parse_duration("30").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-5m").is_err());
    }

    #[test]
    fn a_namespace_that_cannot_exist_is_refused() {
        assert_eq!(parse_namespace("shop"), Ok("shop".to_owned()));
        assert_eq!(parse_object_name("io-rights"), Ok("io-rights".to_owned()));
        assert_eq!(parse_object_name("a.b-c"), Ok("a.b-c".to_owned()));
        for bad in ["", "Bad", "a..b", "-a", "a_b"] {
            assert!(parse_object_name(bad).is_err(), "{bad}");
        }
        for bad in ["Bad_NS!", "", "-shop", "a".repeat(64).as_str()] {
            assert!(parse_namespace(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn response_times_parse_per_severity() {
        assert_eq!(
            parse_response_time("P1=30m"),
            Ok((Severity::P1, Duration::from_secs(1800)))
        );
        assert!(parse_response_time("P5=30m").is_err());
        assert!(parse_response_time("P1").is_err());
        assert!(parse_response_time("P1=0s").is_err());
    }
}
