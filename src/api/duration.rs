//! Durations as people write them in resources, flags and the configuration file (api layer): the
//! pattern the CRD schemas enforce at admission and the one parser every reader uses.

use std::time::Duration;

/// What a duration field of a resource accepts at admission: `30s`, `15m`, `1h30m`, `500ms`.
pub const PATTERN: &str = r"^([0-9]+(ms|s|m|h))+$";

/// Parses a non-negative duration written like `90s`, `15m`, `1h 30m` or ISO 8601 `PT15M`.
pub fn parse(text: &str) -> Result<Duration, String> {
    let signed: jiff::SignedDuration = text
        .trim()
        .parse()
        .map_err(|e| format!("`{text}` is not a duration (write e.g. 30s, 15m, 2h): {e}"))?;
    Duration::try_from(signed).map_err(|_| format!("`{text}` is negative"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_schema_admits_parses() {
        for text in ["30s", "15m", "1h30m", "500ms", "2h"] {
            assert!(parse(text).is_ok(), "{text}");
        }
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert!(parse("-5m").is_err());
        assert!(parse("soon").is_err());
    }
}
