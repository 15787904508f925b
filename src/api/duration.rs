//! Durations as people write them in resources, flags and the configuration file (api layer): the
//! pattern the CRD schemas enforce at admission and the one parser every reader uses.

use std::time::Duration;

/// What a duration field of a resource accepts at admission: `30s`, `15m`, `1h30m`, `500ms`.
pub const PATTERN: &str = r"^([0-9]+(ms|s|m|h))+$";

/// Whether `text` is written in the one grammar of [`PATTERN`]: numbers each followed by a unit.
fn admitted(text: &str) -> bool {
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return false;
        }
        rest = &rest[digits..];
        let unit = ["ms", "s", "m", "h"]
            .into_iter()
            .find(|u| rest.starts_with(u));
        match unit {
            Some(unit) => rest = &rest[unit.len()..],
            None => return false,
        }
    }
    !text.is_empty()
}

/// Parses a non-negative duration written like `90s`, `15m`, `1h30m` or `500ms`: the grammar every
/// resource admits ([`PATTERN`]), so a flag, the configuration file and a CRD field agree.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if !admitted(text) {
        return Err(format!(
            "`{text}` is not a duration: write numbers with units ms, s, m or h, e.g. 30s, 15m, 1h30m"
        ));
    }
    let signed: jiff::SignedDuration = text
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

    #[test]
    fn other_grammars_are_refused_so_every_reader_agrees_with_the_crds() {
        for text in [
            "5 minutes",
            "1h 30m",
            "PT15M",
            "30",
            "m",
            "1d",
            "1.5h",
            "",
            "15m ",
        ] {
            let trimmed_ok = text == "15m ";
            assert_eq!(parse(text).is_ok(), trimmed_ok, "{text:?}");
        }
    }
}
