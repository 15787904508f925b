//! Unit and property tests of business time (core layer, tests).

use std::time::Duration;

use jiff::SignedDuration;
use jiff::civil::DateTime;
use proptest::prelude::*;

use super::*;
use crate::api::{BusinessHours, Weekday};

const WEEKDAYS: [Weekday; 5] = [
    Weekday::Monday,
    Weekday::Tuesday,
    Weekday::Wednesday,
    Weekday::Thursday,
    Weekday::Friday,
];
const EVERY_DAY: [Weekday; 7] = [
    Weekday::Monday,
    Weekday::Tuesday,
    Weekday::Wednesday,
    Weekday::Thursday,
    Weekday::Friday,
    Weekday::Saturday,
    Weekday::Sunday,
];

fn spec(zone: &str, days: &[Weekday], start: &str, end: &str, holidays: &[&str]) -> BusinessHours {
    BusinessHours {
        time_zone: zone.into(),
        days: days.to_vec(),
        start: start.into(),
        end: end.into(),
        holidays: holidays.iter().map(|h| h.to_string()).collect(),
    }
}

fn calendar(zone: &str, days: &[Weekday], start: &str, end: &str, holidays: &[&str]) -> Calendar {
    Calendar::new(&spec(zone, days, start, end, holidays)).expect("a valid calendar")
}

/// New York, 09:00–17:00 Monday to Friday.
fn office(holidays: &[&str]) -> Calendar {
    calendar("America/New_York", &WEEKDAYS, "09:00", "17:00", holidays)
}

/// A New York wall-clock time, e.g. `2026-05-15T15:00` (Friday).
fn ny(local: &str) -> Timestamp {
    let dt: DateTime = local.parse().expect("a civil datetime");
    let zone = TimeZone::get("America/New_York").expect("zone");
    dt.to_zoned(zone).expect("zoned").timestamp()
}

fn utc(instant: &str) -> Timestamp {
    instant.parse().expect("an instant")
}

fn hours(h: u64) -> Duration {
    Duration::from_secs(h * 3600)
}

#[test]
fn four_business_hours_from_friday_afternoon_end_monday_morning() {
    let cal = office(&[]);
    assert_eq!(
        cal.add(ny("2026-05-15T15:00"), hours(4)),
        ny("2026-05-18T11:00")
    );
}

#[test]
fn opened_on_saturday_the_clock_starts_at_mondays_opening() {
    let cal = office(&[]);
    let saturday = ny("2026-05-16T10:30");
    assert_eq!(cal.next_open(saturday), ny("2026-05-18T09:00"));
    assert_eq!(cal.add(saturday, hours(4)), ny("2026-05-18T13:00"));
}

#[test]
fn opened_before_opening_the_clock_starts_the_same_morning() {
    let cal = office(&[]);
    assert_eq!(
        cal.add(ny("2026-05-19T08:00"), hours(4)),
        ny("2026-05-19T13:00")
    );
}

#[test]
fn a_holiday_monday_pushes_the_deadline_to_tuesday() {
    let cal = office(&["2026-05-18"]);
    assert!(!cal.is_open(ny("2026-05-18T10:00")));
    assert_eq!(
        cal.add(ny("2026-05-15T15:00"), hours(4)),
        ny("2026-05-19T11:00")
    );
    assert_eq!(
        cal.next_business_day_close(ny("2026-05-15T15:00")),
        ny("2026-05-19T17:00")
    );
}

#[test]
fn next_business_day_is_the_close_of_the_next_working_date() {
    let cal = office(&[]);
    let cases = [
        ("2026-05-15T15:00", "2026-05-18T17:00"), // Friday -> Monday
        ("2026-05-20T20:00", "2026-05-21T17:00"), // Wednesday evening -> Thursday
        ("2026-05-20T08:00", "2026-05-21T17:00"), // before Wednesday's opening: still Thursday
        ("2026-05-16T12:00", "2026-05-18T17:00"), // Saturday -> Monday
    ];
    for (at, close) in cases {
        assert_eq!(cal.next_business_day_close(ny(at)), ny(close), "from {at}");
    }
}

#[test]
fn hours_stay_local_across_the_us_dst_changes() {
    let cal = office(&[]);
    // 2026-03-08: EST (-5) to EDT (-4); 2026-11-01: back to EST.
    assert_eq!(
        cal.next_open(ny("2026-03-07T12:00")),
        utc("2026-03-09T13:00Z")
    );
    assert_eq!(
        cal.next_open(ny("2026-10-31T12:00")),
        utc("2026-11-02T14:00Z")
    );
    assert_eq!(
        cal.add(utc("2026-03-06T20:00Z"), hours(4)),
        utc("2026-03-09T15:00Z")
    );
    assert_eq!(
        cal.add(utc("2026-10-30T19:00Z"), hours(4)),
        utc("2026-11-02T16:00Z")
    );
    for (friday, monday, tuesday) in [
        ("2026-03-06", "2026-03-09", "2026-03-10"),
        ("2026-10-30", "2026-11-02", "2026-11-03"),
    ] {
        let at = |day: &str, time: &str| ny(&format!("{day}T{time}"));
        assert_eq!(
            cal.elapsed(at(monday, "00:00"), at(tuesday, "00:00")),
            hours(8),
            "the Monday after"
        );
        assert_eq!(
            cal.elapsed(at(friday, "09:00"), at(monday, "09:00")),
            hours(8),
            "over the weekend of {friday}"
        );
    }
}

#[test]
fn a_dst_day_has_its_true_length() {
    let cal = calendar("America/New_York", &EVERY_DAY, "01:00", "05:00", &[]);
    let day =
        |d: &str, next: &str| cal.elapsed(ny(&format!("{d}T00:00")), ny(&format!("{next}T00:00")));
    assert_eq!(day("2026-03-07", "2026-03-08"), hours(4));
    assert_eq!(day("2026-03-08", "2026-03-09"), hours(3), "spring forward");
    assert_eq!(day("2026-11-01", "2026-11-02"), hours(5), "fall back");
}

#[test]
fn an_opening_in_the_dst_gap_moves_forward_by_the_gap() {
    // 02:30 does not exist on 2026-03-08: it is read as 03:30 EDT.
    let cal = calendar("America/New_York", &EVERY_DAY, "02:30", "03:45", &[]);
    let midnight = ny("2026-03-08T00:00");
    assert_eq!(cal.next_open(midnight), utc("2026-03-08T07:30Z"));
    assert_eq!(
        cal.elapsed(midnight, ny("2026-03-09T00:00")),
        Duration::from_secs(15 * 60)
    );
    // Closing just after the gap leaves that day nothing.
    let cal = calendar("America/New_York", &EVERY_DAY, "02:30", "03:15", &[]);
    assert_eq!(cal.next_open(midnight), ny("2026-03-09T02:30"));
    assert_eq!(
        cal.elapsed(midnight, ny("2026-03-09T00:00")),
        Duration::ZERO
    );
}

#[test]
fn is_open_includes_the_opening_and_excludes_the_closing() {
    let cal = office(&[]);
    let second = SignedDuration::from_secs(1);
    assert!(cal.is_open(ny("2026-05-18T09:00")));
    assert!(!cal.is_open(ny("2026-05-18T09:00") - second));
    assert!(cal.is_open(ny("2026-05-18T17:00") - second));
    assert!(!cal.is_open(ny("2026-05-18T17:00")));
    assert!(!cal.is_open(ny("2026-05-16T12:00")), "Saturday");
}

#[test]
fn add_zero_is_the_instant_when_open_else_the_next_opening() {
    let cal = office(&[]);
    let open = ny("2026-05-18T10:15");
    assert_eq!(cal.add(open, Duration::ZERO), open);
    assert_eq!(
        cal.add(ny("2026-05-18T17:00"), Duration::ZERO),
        ny("2026-05-19T09:00")
    );
}

#[test]
fn a_deadline_ending_with_the_day_is_that_days_closing() {
    let cal = office(&[]);
    assert_eq!(
        cal.add(ny("2026-05-18T13:00"), hours(4)),
        ny("2026-05-18T17:00")
    );
    assert_eq!(
        cal.elapsed(ny("2026-05-18T17:00"), ny("2026-05-18T13:00")),
        Duration::ZERO
    );
}

#[test]
fn new_names_what_is_wrong() {
    let wrong = |hours: BusinessHours| Calendar::new(&hours).expect_err("rejected");
    let ok = |zone| spec(zone, &WEEKDAYS, "09:00", "17:00", &[]);
    assert_eq!(
        wrong(ok("Mars/Olympus")),
        "businessHours.timeZone `Mars/Olympus` is not an IANA time zone"
    );
    assert_eq!(
        wrong(spec(
            "UTC",
            &WEEKDAYS,
            "09:00",
            "17:00",
            &["2026-01-01", "2026-02-30"]
        )),
        "businessHours.holidays `2026-02-30` is not a date"
    );
    assert_eq!(
        wrong(spec("UTC", &WEEKDAYS, "25:00", "26:00", &[])),
        "businessHours.start `25:00` is not a time"
    );
    assert_eq!(
        wrong(spec("UTC", &WEEKDAYS, "09:00", "9:30", &[])),
        "businessHours.end `9:30` is not a time"
    );
    assert_eq!(
        wrong(spec("UTC", &WEEKDAYS, "17:00", "09:00", &[])),
        "businessHours.end `09:00` is not after businessHours.start `17:00`"
    );
    assert_eq!(
        wrong(spec("UTC", &[], "09:00", "17:00", &[])),
        "businessHours.days is empty"
    );
    assert_eq!(
        wrong(spec("UTC", &WEEKDAYS, "09:00", "17:00", &["2026-1-01"])),
        "businessHours.holidays `2026-1-01` is not a date"
    );
    let cal = Calendar::new(&ok("Europe/Berlin")).expect("valid");
    assert_eq!(cal.time_zone(), "Europe/Berlin");
}

#[test]
fn a_calendar_of_holidays_only_gives_up_after_the_horizon() {
    // Every Monday of five years is a holiday: there is no business hour to find.
    let first = Date::new(2026, 1, 5).expect("a Monday");
    let mondays: Vec<String> = (0..260)
        .map(|w| {
            first
                .checked_add(jiff::Span::new().weeks(w))
                .expect("date")
                .to_string()
        })
        .collect();
    let mondays: Vec<&str> = mondays.iter().map(String::as_str).collect();
    let cal = calendar("UTC", &[Weekday::Monday], "09:00", "17:00", &mondays);
    let at = utc("2026-01-01T00:00Z");
    let bound = cal.next_open(at);
    let days = bound.duration_since(at).as_hours() / 24;
    assert!((1090..1110).contains(&days), "gave up after {days} days");
    assert!(!cal.is_open(bound));
    assert_eq!(cal.add(at, hours(1)), bound);
    assert_eq!(cal.next_business_day_close(at), bound);
}

// Property tests: random calendars in zones with and without DST, instants around DST changes.

const ZONES: [&str; 5] = [
    "America/New_York",
    "Europe/Berlin",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "UTC",
];

/// DST changes of New York, Berlin and Lord Howe (30-minute shifts) in 2026.
const CHANGES: [&str; 6] = [
    "2026-03-08T07:00Z",
    "2026-11-01T06:00Z",
    "2026-03-29T01:00Z",
    "2026-10-25T01:00Z",
    "2026-04-04T15:00Z",
    "2026-10-03T15:30Z",
];

fn quarter(q: u32) -> String {
    format!("{:02}:{:02}", q / 4, q % 4 * 15)
}

fn any_calendar() -> impl Strategy<Value = Calendar> {
    calendar_in(&ZONES)
}

fn calendar_in(zones: &[&'static str]) -> impl Strategy<Value = Calendar> {
    let days = prop::collection::btree_set(0usize..7, 1..=7);
    // Quarter hours, so openings fall into DST gaps and folds often enough.
    let hours = (0u32..92, 2u32..96).prop_map(|(s, len)| (s, (s + len).min(95)));
    let holidays = prop::collection::vec(0i64..1700, 0..8);
    (prop::sample::select(zones.to_vec()), days, hours, holidays).prop_map(
        |(zone, days, (start, end), holidays)| {
            let days: Vec<Weekday> = days.into_iter().map(|d| EVERY_DAY[d]).collect();
            let first = Date::new(2024, 1, 1).expect("date");
            let holidays: Vec<String> = holidays
                .into_iter()
                .map(|d| {
                    first
                        .checked_add(jiff::Span::new().days(d))
                        .expect("date")
                        .to_string()
                })
                .collect();
            let holidays: Vec<&str> = holidays.iter().map(String::as_str).collect();
            calendar(zone, &days, &quarter(start), &quarter(end), &holidays)
        },
    )
}

/// Within two years of mid-2026, or within four days of a DST change.
fn any_instant() -> impl Strategy<Value = Timestamp> {
    let middle = utc("2026-06-01T00:00Z").as_second();
    let two_years = 2 * 366 * 86_400;
    prop_oneof![
        (middle - two_years..middle + two_years)
            .prop_map(|s| Timestamp::from_second(s).expect("time")),
        (
            prop::sample::select(CHANGES.to_vec()),
            -4 * 86_400i64..4 * 86_400
        )
            .prop_map(|(c, s)| { utc(c) + SignedDuration::from_secs(s) }),
    ]
}

fn any_duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::ZERO),
        (0u64..=100 * 3600).prop_map(Duration::from_secs),
    ]
}

proptest! {
    #[test]
    fn elapsed_undoes_add(cal in any_calendar(), at in any_instant(), d in any_duration()) {
        let end = cal.add(at, d);
        prop_assert_eq!(cal.elapsed(at, end), d, "{:?} from {} ends {}", cal, at, end);
    }

    #[test]
    fn add_is_monotonic_and_never_goes_back(
        cal in any_calendar(),
        at in any_instant(),
        d1 in any_duration(),
        d2 in any_duration(),
    ) {
        let (short, long) = (d1.min(d2), d1.max(d2));
        prop_assert!(cal.add(at, short) >= at);
        prop_assert!(cal.add(at, short) <= cal.add(at, long), "{:?} from {}", cal, at);
    }

    #[test]
    fn add_ends_in_business_hours_or_at_a_closing(
        cal in any_calendar(),
        at in any_instant(),
        secs in 1u64..=100 * 3600,
    ) {
        let end = cal.add(at, Duration::from_secs(secs));
        let closing = cal.is_open(end - SignedDuration::from_nanos(1)) && !cal.is_open(end);
        prop_assert!(cal.is_open(end) || closing, "{:?} from {} ends {}", cal, at, end);
    }

    #[test]
    fn next_open_is_open_and_nothing_before_it_is(cal in any_calendar(), at in any_instant()) {
        let next = cal.next_open(at);
        prop_assert!(next >= at);
        prop_assert!(cal.is_open(next), "{:?}: next_open({}) = {} is closed", cal, at, next);
        let gap = next.duration_since(at);
        if !gap.is_zero() {
            let mut samples: Vec<Timestamp> = (0..8).map(|k| at + gap / 8 * k).collect();
            samples.push(next - SignedDuration::from_nanos(1));
            for p in samples {
                prop_assert!(!cal.is_open(p), "{:?}: {} open before next_open({}) = {}", cal, p, at, next);
            }
        }
    }

    #[test]
    fn elapsed_adds_up_over_consecutive_spans(
        cal in any_calendar(),
        a in any_instant(),
        x in 0i64..200 * 3600,
        y in 0i64..200 * 3600,
    ) {
        let b = a + SignedDuration::from_secs(x);
        let c = b + SignedDuration::from_secs(y);
        prop_assert_eq!(cal.elapsed(a, c), cal.elapsed(a, b) + cal.elapsed(b, c), "{:?}", cal);
        prop_assert_eq!(cal.elapsed(c, a), Duration::ZERO);
    }

    #[test]
    fn without_dst_is_open_reads_the_wall_clock(
        cal in calendar_in(&["UTC", "Asia/Kolkata"]),
        at in any_instant(),
    ) {
        // Without DST the local reading is unambiguous, an oracle independent of the walk.
        let local = at.to_zoned(cal.zone.clone()).datetime();
        let weekday = usize::try_from(local.weekday().to_monday_zero_offset()).expect("0..7");
        let expected = cal.days[weekday]
            && !cal.holidays.contains(&local.date())
            && cal.start <= local.time()
            && local.time() < cal.end;
        prop_assert_eq!(cal.is_open(at), expected, "{:?} at {}", cal, local);
    }
}
