//! Business time (core layer, shared vocabulary): a resolved [`BusinessHours`] and the arithmetic
//! the lifecycle clocks and the escalation engine both count in — whether an instant is open, the
//! next opening, an instant plus business time, the business time between two instants and "the
//! next business day".
//!
//! Every day is resolved in its own zone with jiff (compatible disambiguation: a time in a DST
//! gap moves forward by the gap, a time in a fold takes its first occurrence), so a DST day has its
//! true length and no offset arithmetic is written here. Each day contributes one window
//! `[opening, closing)`; the windows are walked in date order, each clipped to start no earlier than
//! the previous one closed, so business time is the measure of their union and never counted twice.
//!
//! Searches are bounded: a walk gives up after `HORIZON_DAYS` (about three years) of consecutive
//! days without business hours and answers the instant it gave up at (the start of that local
//! day). Admitted specs never reach the bound (at least one working day a week, at most 100
//! holidays); it keeps a calendar of holidays only from looping forever.

use std::time::Duration;

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use crate::api::{BusinessHours, Weekday};

/// Days without business hours after which a search gives up (about three years).
const HORIZON_DAYS: u32 = 3 * 366;

/// Business hours, resolved: the time zone, the working days, opening and closing local times, holidays.
#[derive(Clone, Debug)]
pub struct Calendar {
    name: String,
    zone: TimeZone,
    /// Indexed by days from Monday.
    days: [bool; 7],
    start: Time,
    end: Time,
    /// Sorted, for a binary search per day walked.
    holidays: Vec<Date>,
}

/// One day's business hours as walked: its local date and its (clipped) instants.
#[derive(Clone, Copy, Debug)]
struct Window {
    date: Date,
    open: Timestamp,
    close: Timestamp,
}

impl Calendar {
    /// Resolves the spec; Err names what is wrong, e.g. "businessHours.timeZone `Mars/Olympus` is not an IANA time zone", "businessHours.holidays `2026-02-30` is not a date", "businessHours.start `25:00` is not a time".
    pub fn new(hours: &BusinessHours) -> Result<Calendar, String> {
        let zone = TimeZone::get(&hours.time_zone).map_err(|_| {
            format!(
                "businessHours.timeZone `{}` is not an IANA time zone",
                hours.time_zone
            )
        })?;
        let start = parse_time(&hours.start)
            .ok_or_else(|| format!("businessHours.start `{}` is not a time", hours.start))?;
        let end = parse_time(&hours.end)
            .ok_or_else(|| format!("businessHours.end `{}` is not a time", hours.end))?;
        if end <= start {
            return Err(format!(
                "businessHours.end `{}` is not after businessHours.start `{}`",
                hours.end, hours.start
            ));
        }
        if hours.days.is_empty() {
            return Err("businessHours.days is empty".to_owned());
        }
        let mut days = [false; 7];
        for day in &hours.days {
            days[monday_offset(*day)] = true;
        }
        let mut holidays = hours
            .holidays
            .iter()
            .map(|h| {
                parse_date(h).ok_or_else(|| format!("businessHours.holidays `{h}` is not a date"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        holidays.sort_unstable();
        holidays.dedup();
        Ok(Calendar {
            name: hours.time_zone.clone(),
            zone,
            days,
            start,
            end,
            holidays,
        })
    }

    /// Whether `at` falls in business hours (a working day that is not a holiday, local opening <= t < closing).
    pub fn is_open(&self, at: Timestamp) -> bool {
        // The first window from `at` is clipped to start at `at` exactly when `at` is inside it.
        self.windows(at).next().is_some_and(|w| w.open == at)
    }

    /// `at` if open, else the next opening instant (the search bound if there is none within
    /// three years).
    pub fn next_open(&self, at: Timestamp) -> Timestamp {
        let mut windows = self.windows(at);
        match windows.next() {
            Some(w) => w.open,
            None => windows.stop,
        }
    }

    /// The instant by which `business` of business time has elapsed counting from `at` (time
    /// outside business hours does not count). `add(at, ZERO)` is `at` when open, else
    /// `next_open(at)`; an amount that ends exactly at a closing answers that closing instant.
    /// "4 business hours from Friday 15:00" with 09:00–17:00 Mon–Fri is Monday 11:00.
    pub fn add(&self, at: Timestamp, business: Duration) -> Timestamp {
        // Beyond ~292 billion years every answer is the search bound anyway.
        let mut remaining = SignedDuration::try_from(business).unwrap_or(SignedDuration::MAX);
        let mut windows = self.windows(at);
        for w in windows.by_ref() {
            let length = w.close.duration_since(w.open);
            if remaining <= length {
                return w.open.checked_add(remaining).unwrap_or(w.close);
            }
            remaining -= length;
        }
        windows.stop
    }

    /// Business time between `from` and `to` (zero when to <= from).
    pub fn elapsed(&self, from: Timestamp, to: Timestamp) -> Duration {
        let mut total = SignedDuration::ZERO;
        for w in self.windows(from).take_while(|w| w.open < to) {
            total = total.saturating_add(w.close.min(to).duration_since(w.open));
        }
        // Windows are clipped to `from`, so the total is never negative.
        Duration::try_from(total).unwrap_or_default()
    }

    /// "Next business day": the closing instant of the first business day whose local date is
    /// after `at`'s local date (the search bound if there is none within three years).
    pub fn next_business_day_close(&self, at: Timestamp) -> Timestamp {
        let today = at.to_zoned(self.zone.clone()).date();
        let mut windows = self.windows(at);
        match windows.find(|w| w.date > today) {
            Some(w) => w.close,
            None => windows.stop,
        }
    }

    /// The time zone's name, for messages.
    pub fn time_zone(&self) -> &str {
        &self.name
    }

    /// The business windows that end after `from`, in order, the first clipped to `from`.
    fn windows(&self, from: Timestamp) -> Windows<'_> {
        let today = from.to_zoned(self.zone.clone()).date();
        // Yesterday's window may still be open: a gap can push a late closing past midnight.
        let first = today.yesterday().unwrap_or(today);
        Windows {
            calendar: self,
            date: Some(first),
            cursor: from,
            idle: 0,
            stop: Timestamp::MAX,
        }
    }

    /// A date's business hours as instants, `None` on a day off or when a DST gap leaves nothing.
    fn window(&self, date: Date) -> Option<(Timestamp, Timestamp)> {
        let weekday = usize::try_from(date.weekday().to_monday_zero_offset()).ok()?;
        if !self.days[weekday] || self.holidays.binary_search(&date).is_ok() {
            return None;
        }
        let instant = |time: Time| {
            DateTime::from_parts(date, time)
                .to_zoned(self.zone.clone())
                .ok()
                .map(|z| z.timestamp())
        };
        let (open, close) = (instant(self.start)?, instant(self.end)?);
        // An opening inside a gap moves forward and may land after a closing just past the gap.
        (open < close).then_some((open, close))
    }

    /// The first instant of a local date (the search bound).
    fn start_of(&self, date: Date) -> Timestamp {
        date.to_zoned(self.zone.clone())
            .map_or(Timestamp::MAX, |z| z.timestamp())
    }
}

/// The walk behind every question: day windows in date order, clipped to the cursor.
struct Windows<'a> {
    calendar: &'a Calendar,
    /// The next date to look at; `None` past the last representable date.
    date: Option<Date>,
    /// Nothing before it is yielded again: the start instant, then the latest closing.
    cursor: Timestamp,
    /// Days looked at since the last window.
    idle: u32,
    /// Once the walk ended: where it gave up.
    stop: Timestamp,
}

impl Iterator for Windows<'_> {
    type Item = Window;

    fn next(&mut self) -> Option<Window> {
        loop {
            let Some(date) = self.date else {
                self.stop = Timestamp::MAX;
                return None;
            };
            if self.idle > HORIZON_DAYS {
                self.stop = self.calendar.start_of(date).max(self.cursor);
                return None;
            }
            self.date = date.tomorrow().ok();
            self.idle += 1;
            let Some((open, close)) = self.calendar.window(date) else {
                continue;
            };
            let open = open.max(self.cursor);
            if close <= open {
                continue;
            }
            self.cursor = close;
            self.idle = 0;
            return Some(Window { date, open, close });
        }
    }
}

fn monday_offset(day: Weekday) -> usize {
    match day {
        Weekday::Monday => 0,
        Weekday::Tuesday => 1,
        Weekday::Wednesday => 2,
        Weekday::Thursday => 3,
        Weekday::Friday => 4,
        Weekday::Saturday => 5,
        Weekday::Sunday => 6,
    }
}

/// Exactly `HH:MM`, 00:00 to 23:59.
fn parse_time(s: &str) -> Option<Time> {
    let (h, m) = s.split_once(':')?;
    let (h, m) = (two_digits(h)?, two_digits(m)?);
    Time::new(h, m, 0, 0).ok()
}

/// Exactly `YYYY-MM-DD`, a real date.
fn parse_date(s: &str) -> Option<Date> {
    let mut parts = s.split('-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || y.len() != 4 || !y.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Date::new(y.parse().ok()?, two_digits(m)?, two_digits(d)?).ok()
}

fn two_digits(s: &str) -> Option<i8> {
    let ok = s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit());
    ok.then(|| s.parse().ok()).flatten()
}

#[cfg(test)]
mod tests;
