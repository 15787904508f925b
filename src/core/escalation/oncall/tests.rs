//! Tests of who is on call (core layer, tests).

use jiff::civil::{Date, DateTime, Time as LocalTime};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use proptest::prelude::*;

use super::*;
use crate::api::{Contacts, Layer, Override};

fn at(text: &str) -> Timestamp {
    text.parse().expect("timestamp")
}

fn layer(name: &str, members: &[&str], days: u32, handoff: &str, start: &str) -> Layer {
    Layer {
        name: name.into(),
        members: members.iter().map(|m| (*m).into()).collect(),
        rotation_days: days,
        handoff: handoff.into(),
        start: start.into(),
    }
}

fn cover(layer: &str, member: &str, start: Timestamp, end: Timestamp) -> Override {
    Override {
        layer: layer.into(),
        member: member.into(),
        start: Time(start),
        end: Time(end),
    }
}

fn schedule(time_zone: &str, layers: Vec<Layer>, overrides: Vec<Override>) -> OnCallScheduleSpec {
    let members = ["ana", "ben", "cai", "dee", "eve"]
        .into_iter()
        .map(|name| Member {
            name: name.into(),
            contacts: Contacts::default(),
        })
        .collect();
    OnCallScheduleSpec {
        description: None,
        time_zone: time_zone.into(),
        members,
        layers,
        overrides,
    }
}

/// Weekly ana, ben, cai from Monday 2026-01-05 09:00 UTC.
fn weekly(overrides: Vec<Override>) -> OnCallScheduleSpec {
    let primary = layer("primary", &["ana", "ben", "cai"], 7, "09:00", "2026-01-05");
    schedule("UTC", vec![primary], overrides)
}

/// January 2026 in UTC, to the hour.
fn jan(day: u8, hour: u8) -> Timestamp {
    at(&format!("2026-01-{day:02}T{hour:02}:00:00Z"))
}

/// Who is on call for `layer` at `instant`, by override or not, and from when until when.
fn stretch<'a>(
    rota: &Rota<'a>,
    layer: &str,
    instant: Timestamp,
) -> (&'a str, bool, Timestamp, Timestamp) {
    let shift = rota.on_call(layer, instant).expect("someone on call");
    (
        shift.member.name.as_str(),
        shift.by_override,
        shift.from,
        shift.until,
    )
}

const SECOND: SignedDuration = SignedDuration::from_secs(1);

#[test]
fn weekly_rotation_takes_turns_in_order() {
    let spec = weekly(vec![]);
    let rota = Rota::new(&spec).expect("valid");
    assert_eq!(rota.layers(), ["primary"]);
    let week = SignedDuration::from_hours(24 * 7);
    let names: Vec<_> = (0..7)
        .map(|n| stretch(&rota, "primary", jan(6, 12) + week * n).0)
        .collect();
    assert_eq!(names, ["ana", "ben", "cai", "ana", "ben", "cai", "ana"]);
    assert_eq!(
        stretch(&rota, "primary", jan(14, 0)),
        ("ben", false, jan(12, 9), jan(19, 9))
    );
    assert_eq!(rota.member("cai").map(|m| m.name.as_str()), Some("cai"));
    assert_eq!(rota.member("zed"), None);
}

#[test]
fn the_new_member_is_on_call_at_the_handoff_instant_and_the_old_one_a_second_before() {
    let spec = weekly(vec![]);
    let rota = Rota::new(&spec).expect("valid");
    assert_eq!(stretch(&rota, "primary", jan(12, 9)).0, "ben");
    assert_eq!(
        stretch(&rota, "primary", jan(12, 9) - SECOND),
        ("ana", false, jan(5, 9), jan(12, 9))
    );
    assert_eq!(stretch(&rota, "primary", jan(5, 9)).0, "ana");
}

#[test]
fn nobody_is_on_call_before_the_first_turn() {
    let spec = weekly(vec![]);
    let rota = Rota::new(&spec).expect("valid");
    assert_eq!(rota.on_call("primary", jan(5, 9) - SECOND), None);
    assert_eq!(rota.on_call("primary", at("2020-01-01T00:00:00Z")), None);
    let next = rota.handoffs("primary", at("2025-12-01T00:00:00Z"), 1);
    assert_eq!(
        next[0].from,
        jan(5, 9),
        "the first turn is the first change"
    );
}

#[test]
fn an_unknown_layer_has_nobody_and_no_handoffs() {
    let spec = weekly(vec![]);
    let rota = Rota::new(&spec).expect("valid");
    assert_eq!(rota.on_call("secondary", jan(20, 0)), None);
    assert!(rota.handoffs("secondary", jan(20, 0), 3).is_empty());
}

#[test]
fn an_unknown_time_zone_and_an_impossible_date_are_rejected_with_every_problem() {
    let primary = layer("primary", &["ana"], 7, "09:00", "2026-02-30");
    let secondary = layer("secondary", &["ben"], 7, "24:00", "2026-02-01");
    let spec = schedule("Mars/Olympus", vec![primary, secondary], vec![]);
    let problems = Rota::new(&spec).expect_err("invalid");
    assert_eq!(
        problems,
        [
            "timeZone `Mars/Olympus` is not an IANA time zone",
            "layers[primary].start `2026-02-30` is not a date",
            "layers[secondary].handoff `24:00` is not a time of day (HH:MM)",
        ]
    );
    let leap = schedule(
        "Europe/Berlin",
        vec![layer("p", &["ana"], 7, "09:00", "2028-02-29")],
        vec![],
    );
    assert!(Rota::new(&leap).is_ok(), "a leap day is a date");
}

#[test]
fn an_override_inside_a_turn_covers_until_its_end() {
    let spec = weekly(vec![cover("primary", "dee", jan(7, 12), jan(8, 12))]);
    let rota = Rota::new(&spec).expect("valid");
    assert_eq!(
        stretch(&rota, "primary", jan(7, 13)),
        ("dee", true, jan(7, 12), jan(8, 12))
    );
    assert_eq!(
        stretch(&rota, "primary", jan(7, 12) - SECOND),
        ("ana", false, jan(5, 9), jan(7, 12))
    );
    assert_eq!(
        stretch(&rota, "primary", jan(8, 12)),
        ("ana", false, jan(8, 12), jan(12, 9))
    );
}

#[test]
fn the_last_listed_overlapping_override_wins_and_the_earlier_resumes() {
    let long = cover("primary", "dee", jan(7, 0), jan(10, 0));
    let short = cover("primary", "eve", jan(8, 0), jan(9, 0));
    let spec = weekly(vec![long.clone(), short.clone()]);
    let rota = Rota::new(&spec).expect("valid");
    assert_eq!(
        stretch(&rota, "primary", jan(7, 6)),
        ("dee", true, jan(7, 0), jan(8, 0))
    );
    assert_eq!(
        stretch(&rota, "primary", jan(8, 12)),
        ("eve", true, jan(8, 0), jan(9, 0))
    );
    assert_eq!(stretch(&rota, "primary", jan(9, 0) - SECOND).0, "eve");
    assert_eq!(
        stretch(&rota, "primary", jan(9, 0)),
        ("dee", true, jan(9, 0), jan(10, 0))
    );
    // Listed the other way round, the long one hides the short one: one stretch of dee.
    let spec = weekly(vec![short, long]);
    let rota = Rota::new(&spec).expect("valid");
    assert_eq!(
        stretch(&rota, "primary", jan(8, 12)),
        ("dee", true, jan(7, 0), jan(10, 0))
    );
}

#[test]
fn handoffs_list_rotation_handoffs_and_override_boundaries_in_order() {
    let long = cover("primary", "dee", jan(7, 0), jan(10, 0));
    let short = cover("primary", "eve", jan(8, 0), jan(9, 0));
    let elsewhere = cover("secondary", "cai", jan(11, 0), jan(11, 6));
    let mut spec = weekly(vec![long, short, elsewhere]);
    spec.layers
        .push(layer("secondary", &["eve"], 1, "00:00", "2026-01-01"));
    let rota = Rota::new(&spec).expect("valid");
    let seen: Vec<_> = rota
        .handoffs("primary", jan(6, 0), 5)
        .into_iter()
        .map(|s| (s.member.name.as_str(), s.by_override, s.from, s.until))
        .collect();
    assert_eq!(
        seen,
        [
            ("dee", true, jan(7, 0), jan(8, 0)),
            ("eve", true, jan(8, 0), jan(9, 0)),
            ("dee", true, jan(9, 0), jan(10, 0)),
            ("ana", false, jan(10, 0), jan(12, 9)),
            ("ben", false, jan(12, 9), jan(19, 9)),
        ]
    );
    assert_eq!(
        rota.handoffs("primary", jan(7, 0), 1)[0].from,
        jan(8, 0),
        "strictly after"
    );
    assert!(rota.handoffs("primary", jan(6, 0), 0).is_empty());
}

#[test]
fn a_layer_of_one_member_still_hands_off_to_them_each_turn() {
    let manager = layer("manager", &["ana"], 7, "09:00", "2026-01-05");
    let spec = schedule("UTC", vec![manager], vec![]);
    let rota = Rota::new(&spec).expect("valid");
    assert_eq!(
        stretch(&rota, "manager", jan(8, 0)),
        ("ana", false, jan(5, 9), jan(12, 9))
    );
    let next = rota.handoffs("manager", jan(5, 9), 2);
    assert_eq!(
        next.iter().map(|s| s.from).collect::<Vec<_>>(),
        [jan(12, 9), jan(19, 9)]
    );
}

#[test]
fn a_turn_decades_ahead_is_found_directly() {
    let primary = layer("primary", &["ana", "ben", "cai"], 1, "00:00", "2000-01-01");
    let spec = schedule("UTC", vec![primary], vec![]);
    let rota = Rota::new(&spec).expect("valid");
    let day = Date::constant(2000, 1, 1)
        .until(Date::constant(2090, 6, 15))
        .expect("span")
        .get_days();
    let expected = ["ana", "ben", "cai"][usize::try_from(day).expect("positive") % 3];
    let (from, until) = (at("2090-06-15T00:00:00Z"), at("2090-06-16T00:00:00Z"));
    assert_eq!(
        stretch(&rota, "primary", at("2090-06-15T12:00:00Z")),
        (expected, false, from, until)
    );
}

fn berlin(instant: Timestamp) -> DateTime {
    TimeZone::get("Europe/Berlin")
        .expect("tzdb")
        .to_datetime(instant)
}

#[test]
fn berlin_weekly_handoff_stays_at_nine_local_across_both_dst_changes() {
    // Last Sundays of March and October 2026: the 29th and the 25th.
    let primary = layer("primary", &["ana", "ben"], 7, "09:00", "2026-03-23");
    let spec = schedule("Europe/Berlin", vec![primary], vec![]);
    let rota = Rota::new(&spec).expect("valid");
    let (_, _, from, until) = stretch(&rota, "primary", at("2026-03-29T12:00:00Z"));
    assert_eq!(
        (from, until),
        (at("2026-03-23T08:00:00Z"), at("2026-03-30T07:00:00Z"))
    );
    assert_eq!(until.duration_since(from), SignedDuration::from_hours(167));
    let (_, _, fall, back) = stretch(&rota, "primary", at("2026-10-25T12:00:00Z"));
    assert_eq!(
        (fall, back),
        (at("2026-10-19T07:00:00Z"), at("2026-10-26T08:00:00Z"))
    );
    assert_eq!(back.duration_since(fall), SignedDuration::from_hours(169));
    for instant in [from, until, fall, back] {
        assert_eq!(
            berlin(instant).time(),
            LocalTime::constant(9, 0, 0, 0),
            "{instant}"
        );
    }
}

#[test]
fn a_handoff_in_the_spring_forward_gap_starts_an_hour_later() {
    let primary = layer("primary", &["ana", "ben"], 1, "02:30", "2026-03-28");
    let spec = schedule("Europe/Berlin", vec![primary], vec![]);
    let rota = Rota::new(&spec).expect("valid");
    // 02:30 does not exist on 2026-03-29; jiff's compatible rule moves it to 03:30 CEST.
    let gap_day = at("2026-03-29T01:30:00Z");
    assert_eq!(
        berlin(gap_day),
        DateTime::constant(2026, 3, 29, 3, 30, 0, 0)
    );
    let turn = stretch(&rota, "primary", gap_day);
    assert_eq!(
        turn,
        ("ben", false, gap_day, at("2026-03-30T00:30:00Z")),
        "a 23-hour turn"
    );
    let before = stretch(&rota, "primary", gap_day - SECOND);
    assert_eq!(before, ("ana", false, at("2026-03-28T01:30:00Z"), gap_day));
}

// Random schedules: a time zone, up to five members, a primary layer whose turn order may repeat a
// member, a secondary layer, overrides of either, and instants within two years of the start.

const ZONES: [&str; 5] = [
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "UTC",
];
const NAMES: [&str; 5] = ["ana", "ben", "cai", "dee", "eve"];
const MINUTE: i64 = 60;
const DAY: i64 = 86_400;

#[derive(Clone, Debug)]
struct Case {
    spec: OnCallScheduleSpec,
    at: Timestamp,
}

/// The start instant as if the schedule were in UTC: overrides and instants are placed around it.
fn rough_start(days: i64, hour: i8, minute: i8) -> Timestamp {
    at("2020-01-01T00:00:00Z")
        + SignedDuration::from_secs(
            days * DAY + i64::from(hour) * 3600 + i64::from(minute) * MINUTE,
        )
}

fn case() -> impl Strategy<Value = Case> {
    // Overrides start near the instant asked about, so they cover it and overlap often.
    let overrides = prop::collection::vec(
        (
            any::<bool>(),
            0usize..5,
            -15 * DAY / MINUTE..5 * DAY / MINUTE,
            1i64..20 * DAY / MINUTE,
        ),
        0..6,
    );
    (
        (
            0..ZONES.len(),
            1usize..=5,
            prop::collection::vec(0usize..5, 1..=6),
            1u32..=14,
        ),
        (0i8..24, 0i8..60, 0i64..3650),
        overrides,
        -730 * DAY..730 * DAY,
    )
        .prop_map(
            |((zone, people, order, days), (hour, minute, start), overrides, offset)| {
                let names = &NAMES[..people];
                let order: Vec<&str> = order.iter().map(|i| names[i % people]).collect();
                let reversed: Vec<&str> = names.iter().rev().copied().collect();
                let date = Date::constant(2020, 1, 1) + jiff::Span::new().days(start);
                let origin = rough_start(start, hour, minute);
                let instant = origin + SignedDuration::from_secs(offset);
                let overrides = overrides
                    .into_iter()
                    .map(|(primary, who, begin, length)| {
                        let begin = instant + SignedDuration::from_secs(begin * MINUTE);
                        let end = begin + SignedDuration::from_secs(length * MINUTE);
                        cover(
                            if primary { "primary" } else { "secondary" },
                            names[who % people],
                            begin,
                            end,
                        )
                    })
                    .collect();
                let layers = vec![
                    layer(
                        "primary",
                        &order,
                        days,
                        &format!("{hour:02}:{minute:02}"),
                        &date.to_string(),
                    ),
                    layer("secondary", &reversed, 3, "12:00", &date.to_string()),
                ];
                let mut spec = schedule(ZONES[zone], layers, overrides);
                spec.members.truncate(people);
                Case { spec, at: instant }
            },
        )
}

/// The primary layer's turn `k`, computed the slow way for comparison.
fn naive_turn(spec: &OnCallScheduleSpec, tz: &TimeZone, k: i64) -> Timestamp {
    let primary = &spec.layers[0];
    let start: Date = primary.start.parse().expect("date");
    let handoff: LocalTime = primary.handoff.parse().expect("time");
    let date = start + jiff::Span::new().days(k * i64::from(primary.rotation_days));
    date.to_datetime(handoff)
        .to_zoned(tz.clone())
        .expect("in range")
        .timestamp()
}

fn last_cover(spec: &OnCallScheduleSpec, instant: Timestamp) -> Option<&Override> {
    spec.overrides
        .iter()
        .rev()
        .find(|o| o.layer == "primary" && o.start.0 <= instant && instant < o.end.0)
}

proptest! {
    #[test]
    fn after_the_start_exactly_one_member_is_on_call_and_the_right_one(case in case()) {
        let rota = Rota::new(&case.spec).expect("valid");
        let tz = TimeZone::get(&case.spec.time_zone).expect("tzdb");
        let first = naive_turn(&case.spec, &tz, 0);
        let shift = rota.on_call("primary", case.at);
        if case.at < first && last_cover(&case.spec, case.at).is_none() {
            prop_assert_eq!(shift, None);
            return Ok(());
        }
        let shift = shift.expect("someone is on call");
        prop_assert!(shift.from <= case.at && case.at < shift.until, "{:?}", shift);
        if last_cover(&case.spec, case.at).is_none() {
            let mut k = 0;
            while naive_turn(&case.spec, &tz, k + 1) <= case.at {
                k += 1;
            }
            let order = &case.spec.layers[0].members;
            prop_assert_eq!(&shift.member.name, &order[usize::try_from(k).expect("k") % order.len()]);
        }
    }

    #[test]
    fn the_answer_holds_over_the_shift_and_changes_at_its_end(case in case()) {
        let rota = Rota::new(&case.spec).expect("valid");
        let Some(shift) = rota.on_call("primary", case.at) else { return Ok(()) };
        prop_assert_eq!(rota.on_call("primary", shift.from), Some(shift.clone()));
        prop_assert_eq!(rota.on_call("primary", shift.until - SECOND), Some(shift.clone()));
        let Some(next) = rota.on_call("primary", shift.until) else {
            // Only an override that ends before the first turn leaves nobody.
            let tz = TimeZone::get(&case.spec.time_zone).expect("tzdb");
            prop_assert!(shift.by_override && shift.until < naive_turn(&case.spec, &tz, 0));
            return Ok(());
        };
        prop_assert_eq!(next.from, shift.until);
        if next.member == shift.member && next.by_override == shift.by_override {
            // Only a layer of one member hands off to the same person.
            let order = &case.spec.layers[0].members;
            prop_assert!(!shift.by_override && order.iter().all(|m| *m == order[0]), "{:?} then {:?}", shift, next);
        }
    }

    #[test]
    fn without_overrides_each_shift_starts_at_the_local_handoff_time(mut case in case()) {
        case.spec.overrides.clear();
        let rota = Rota::new(&case.spec).expect("valid");
        let tz = TimeZone::get(&case.spec.time_zone).expect("tzdb");
        let primary = &case.spec.layers[0];
        let start: Date = primary.start.parse().expect("date");
        let handoff: LocalTime = primary.handoff.parse().expect("time");
        let shifts = rota.on_call("primary", case.at).into_iter().chain(rota.handoffs("primary", case.at, 6));
        for shift in shifts {
            prop_assert!(!shift.by_override);
            let local = tz.to_datetime(shift.from);
            let day = if local.time() == handoff {
                local.date()
            } else {
                // Only a handoff time missing that day (a gap) may move.
                let missing = [local.date(), local.date().yesterday().expect("date")]
                    .into_iter()
                    .find(|d| matches!(tz.to_ambiguous_timestamp(d.to_datetime(handoff)).offset(), AmbiguousOffset::Gap { .. }));
                prop_assert!(missing.is_some(), "{} starts at {} local, not {}", shift.member.name, local, handoff);
                missing.expect("checked")
            };
            let days = i64::from(start.until(day).expect("span").get_days());
            prop_assert_eq!(days % i64::from(primary.rotation_days), 0, "a turn starts on {}", day);
        }
    }

    #[test]
    fn the_last_listed_covering_override_wins(case in case()) {
        let rota = Rota::new(&case.spec).expect("valid");
        let shift = rota.on_call("primary", case.at);
        match last_cover(&case.spec, case.at) {
            Some(cover) => {
                let shift = shift.expect("covered");
                prop_assert_eq!(&shift.member.name, &cover.member);
                prop_assert!(shift.by_override);
            }
            None => prop_assert!(shift.is_none_or(|s| !s.by_override)),
        }
    }

    #[test]
    fn handoffs_increase_and_each_is_who_is_on_call_then(case in case(), count in 0usize..8) {
        let rota = Rota::new(&case.spec).expect("valid");
        let shifts = rota.handoffs("primary", case.at, count);
        prop_assert_eq!(shifts.len(), count, "a rotation never runs out of handoffs");
        let first = naive_turn(&case.spec, &TimeZone::get(&case.spec.time_zone).expect("tzdb"), 0);
        // The shift on call at the instant, if any, is where the changes begin.
        let mut previous = rota.on_call("primary", case.at);
        for shift in shifts {
            prop_assert_eq!(rota.on_call("primary", shift.from), Some(shift.clone()));
            prop_assert!(shift.from > case.at);
            if let Some(before) = previous {
                prop_assert!(shift.from > before.from && shift.from >= before.until);
                if before.until >= first {
                    prop_assert_eq!(shift.from, before.until, "after the start no stretch is skipped");
                }
            }
            previous = Some(shift);
        }
    }
}
