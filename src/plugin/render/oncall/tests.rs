//! Unit tests of the on-call rendering (plugin layer, tests): a table across an override and a
//! handoff, a schedule the rota refuses, `--at`.

use jiff::Timestamp;
use serde_json::json;

use super::{oncall, parse_at, schedule};
use crate::api::OnCallSchedule;

/// The shop team of `examples/oncall/schedule.yaml`, cut down: weekly primary and secondary turns
/// from Monday 2026-11-02 09:00 Berlin, a manager alone, and jamie covering primary over Christmas.
fn shop(time_zone: &str) -> OnCallSchedule {
    serde_json::from_value(json!({
        "apiVersion": "incident.dev/v1alpha1", "kind": "OnCallSchedule",
        "metadata": { "name": "shop", "namespace": "shop" },
        "spec": {
            "description": "Shop team on call",
            "timeZone": time_zone,
            "members": [{ "name": "alex" }, { "name": "sam" }, { "name": "jamie" },
                        { "name": "casey" }],
            "layers": [
                { "name": "primary", "members": ["alex", "sam", "jamie"], "start": "2026-11-02" },
                { "name": "secondary", "members": ["sam", "jamie", "alex"], "start": "2026-11-02" },
                { "name": "manager", "members": ["casey"], "start": "2026-11-02" },
            ],
            "overrides": [{ "layer": "primary", "member": "jamie",
                            "start": "2026-12-24T17:00:00Z", "end": "2026-12-28T08:00:00Z" }],
        },
    }))
    .unwrap()
}

fn at(text: &str) -> Timestamp {
    parse_at(text).unwrap()
}

#[test]
fn an_override_shows_who_covers_and_when_the_rotation_takes_back() {
    let text = schedule(&shop("Europe/Berlin"), at("2026-12-24T20:00:00+01:00"), 3);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[..6],
        [
            "Schedule shop/shop (Shop team on call), times in Europe/Berlin; on call at Thu 2026-12-24 20:00 CET:",
            "  LAYER       ON CALL            SINCE                      UNTIL",
            "  primary     jamie (override)   Thu 2026-12-24 18:00 CET   Mon 2026-12-28 09:00 CET",
            "  secondary   jamie              Mon 2026-12-21 09:00 CET   Mon 2026-12-28 09:00 CET",
            "  manager     casey              Mon 2026-12-21 09:00 CET   Mon 2026-12-28 09:00 CET",
            "  Next handoffs:",
        ],
        "{text}"
    );
    assert_eq!(
        lines[6..10],
        [
            "  LAYER       AT                         TO      UNTIL",
            "  primary     Mon 2026-12-28 09:00 CET   jamie   Mon 2027-01-04 09:00 CET",
            "  primary     Mon 2027-01-04 09:00 CET   alex    Mon 2027-01-11 09:00 CET",
            "  primary     Mon 2027-01-11 09:00 CET   sam     Mon 2027-01-18 09:00 CET",
        ],
        "the override ends into jamie's own turn: still a handoff\n{text}"
    );
    assert!(
        text.contains("  secondary   Mon 2026-12-28 09:00 CET   alex    Mon 2027-01-04 09:00 CET"),
        "{text}"
    );
    assert_eq!(
        lines.len(),
        16,
        "three handoffs for each of three layers\n{text}"
    );
}

#[test]
fn before_the_override_it_is_the_next_handoff() {
    let text = schedule(&shop("Europe/Berlin"), at("2026-12-24T12:00:00Z"), 2);
    assert!(
        text.contains(
            "  primary     sam       Mon 2026-12-21 09:00 CET   Thu 2026-12-24 18:00 CET"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "  primary     Thu 2026-12-24 18:00 CET   jamie (override)   Mon 2026-12-28 09:00 CET"
        ),
        "{text}"
    );
}

#[test]
fn without_handoffs_only_who_is_on_call() {
    let text = schedule(&shop("Europe/Berlin"), at("2026-12-24T20:00:00+01:00"), 0);
    assert_eq!(text.lines().count(), 5, "{text}");
    assert!(!text.contains("Next handoffs"), "{text}");
}

#[test]
fn before_the_first_turn_nobody_is_on_call() {
    let text = schedule(&shop("Europe/Berlin"), at("2026-10-01T00:00:00Z"), 1);
    assert!(
        text.contains("  manager     nobody (before the first turn)   -"),
        "{text}"
    );
    assert!(
        text.contains("  manager     Mon 2026-11-02 09:00 CET   casey"),
        "the first turn is the next handoff\n{text}"
    );
}

#[test]
fn a_schedule_the_rota_refuses_prints_its_problems() {
    let text = schedule(&shop("Mars/Olympus"), at("2026-12-24T20:00:00Z"), 3);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "Schedule shop/shop (Shop team on call): cannot say who is on call:"
    );
    assert!(
        lines[1].starts_with("  - ") && lines[1].contains("Mars/Olympus"),
        "{text}"
    );
    assert!(!text.contains("LAYER"), "no people\n{text}");
}

#[test]
fn schedules_come_by_namespace_then_name_a_blank_line_apart() {
    let mut other = shop("Europe/Berlin");
    other.metadata.namespace = Some("payments".to_owned());
    let text = oncall(
        &[shop("Europe/Berlin"), other],
        at("2026-12-24T20:00:00Z"),
        0,
    );
    let headers: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("Schedule"))
        .map(|l| l.split_whitespace().nth(1).unwrap_or_default())
        .collect();
    assert_eq!(headers, ["payments/shop", "shop/shop"]);
    assert!(text.contains("CET:\n"), "{text}");
    assert_eq!(text.matches("\n\nSchedule").count(), 1, "{text}");
}

#[test]
fn at_reads_rfc_3339_and_zoned_times() {
    let utc: Timestamp = "2026-12-24T19:00:00Z".parse().unwrap();
    assert_eq!(parse_at("2026-12-24T20:00:00+01:00"), Ok(utc));
    assert_eq!(parse_at("2026-12-24T19:00:00Z"), Ok(utc));
    assert_eq!(parse_at("2026-12-24T20:00[Europe/Berlin]"), Ok(utc));
    assert!(parse_at("tomorrow").unwrap_err().contains("RFC 3339"));
    assert!(
        parse_at("2026-12-24T20:00:00").is_err(),
        "an offset is needed"
    );
}
