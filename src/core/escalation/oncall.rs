//! Who is on call (core layer): an OnCallSchedule resolved to the member answering a layer at an
//! instant, and the coming handoffs. A pure function of (schedule, layer, instant): a rotation or
//! override change mid-incident simply changes the answer for later instants.
//!
//! Turn `k` of a layer starts at local date `start + k * rotationDays` at local time `handoff` in
//! the schedule's time zone (jiff's "compatible" rule for gaps and folds) and belongs to
//! `members[k % members.len()]`. The last-listed override covering an instant wins over the
//! rotation. Stretches with the same member and override-ness are merged, except that in a layer
//! of one distinct member each handoff starts a new shift (else it would never end).

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Span, Timestamp};

use crate::api::{Member, OnCallScheduleSpec};

/// A schedule checked and ready to answer (its time zone and dates resolved).
#[derive(Clone, Debug)]
pub struct Rota<'a> {
    spec: &'a OnCallScheduleSpec,
    time_zone: TimeZone,
    layers: Vec<Rotation<'a>>,
}

/// Who is on call for a layer over a stretch of time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shift<'a> {
    pub member: &'a Member,
    /// When this member's stretch began (a handoff, or an override start/end).
    pub from: Timestamp,
    /// When it ends (the next change of who is on call for the layer; for the rotation, the next
    /// handoff; for an override, its end or the start of a later-listed override that takes over).
    pub until: Timestamp,
    /// True when an override put them there.
    pub by_override: bool,
}

/// One layer, resolved.
#[derive(Clone, Debug)]
struct Rotation<'a> {
    name: &'a str,
    members: Vec<&'a Member>,
    rotation_days: i64,
    start: Date,
    handoff: Time,
    /// The start of turn 0; nobody is on call by rotation before it.
    first: Timestamp,
    /// One distinct member: handoffs to themselves still split shifts, so a shift ends.
    alone: bool,
    /// This layer's overrides, in spec order (a later one wins).
    overrides: Vec<Cover<'a>>,
}

#[derive(Clone, Debug)]
struct Cover<'a> {
    member: &'a Member,
    start: Timestamp,
    end: Timestamp,
}

/// Between two consecutive boundaries (handoffs, override starts/ends) of a layer, the answer is
/// fixed: this is that elementary stretch.
#[derive(Clone, Copy, Debug)]
struct Piece<'a> {
    /// The member on call and whether by override; None before the first turn without override.
    who: Option<(&'a Member, bool)>,
    lo: Timestamp,
    hi: Timestamp,
    /// `lo` is a rotation handoff.
    at_handoff: bool,
}

impl<'a> Rota<'a> {
    /// Checks what admission cannot: the IANA time zone is known, each layer's start is a real
    /// date and its handoff a real time (and, defensively, what admission should have caught).
    /// Err: every problem, each a short sentence naming the field.
    pub fn new(spec: &'a OnCallScheduleSpec) -> Result<Rota<'a>, Vec<String>> {
        let mut problems = Vec::new();
        let time_zone = match TimeZone::get(&spec.time_zone) {
            Ok(tz) => Some(tz),
            Err(_) => {
                problems.push(format!(
                    "timeZone `{}` is not an IANA time zone",
                    spec.time_zone
                ));
                None
            }
        };
        let mut layers = Vec::with_capacity(spec.layers.len());
        for layer in &spec.layers {
            let name = layer.name.as_str();
            let start = parse_date(&layer.start);
            if start.is_none() {
                problems.push(format!(
                    "layers[{name}].start `{}` is not a date",
                    layer.start
                ));
            }
            let handoff = parse_time(&layer.handoff);
            if handoff.is_none() {
                problems.push(format!(
                    "layers[{name}].handoff `{}` is not a time of day (HH:MM)",
                    layer.handoff
                ));
            }
            if layer.rotation_days == 0 {
                problems.push(format!("layers[{name}].rotationDays must be at least 1"));
            }
            if layer.members.is_empty() {
                problems.push(format!("layers[{name}].members is empty"));
            }
            let mut members = Vec::with_capacity(layer.members.len());
            for wanted in &layer.members {
                match find_member(spec, wanted) {
                    Some(member) => members.push(member),
                    None => problems.push(format!(
                        "layers[{name}].members names `{wanted}`, who is not in members"
                    )),
                }
            }
            let (Some(tz), Some(start), Some(handoff)) = (&time_zone, start, handoff) else {
                continue;
            };
            let Ok(first) = tz.to_zoned(start.to_datetime(handoff)) else {
                problems.push(format!(
                    "layers[{name}].start `{}` at `{}` is outside the supported time range",
                    layer.start, layer.handoff
                ));
                continue;
            };
            let alone = members.iter().all(|m| m.name == members[0].name);
            layers.push(Rotation {
                name,
                members,
                rotation_days: i64::from(layer.rotation_days.max(1)),
                start,
                handoff,
                first: first.timestamp(),
                alone,
                overrides: Vec::new(),
            });
        }
        for (i, cover) in spec.overrides.iter().enumerate() {
            let member = find_member(spec, &cover.member);
            if member.is_none() {
                problems.push(format!(
                    "overrides[{i}].member `{}` is not in members",
                    cover.member
                ));
            }
            if !spec.layers.iter().any(|l| l.name == cover.layer) {
                problems.push(format!(
                    "overrides[{i}].layer `{}` is not a layer",
                    cover.layer
                ));
            }
            if cover.end.0 <= cover.start.0 {
                problems.push(format!("overrides[{i}].end is not after its start"));
            }
            let rotation = layers.iter_mut().find(|r| r.name == cover.layer);
            if let (Some(member), Some(rotation)) = (member, rotation) {
                rotation.overrides.push(Cover {
                    member,
                    start: cover.start.0,
                    end: cover.end.0,
                });
            }
        }
        match time_zone {
            Some(time_zone) if problems.is_empty() => Ok(Rota {
                spec,
                time_zone,
                layers,
            }),
            _ => Err(problems),
        }
    }

    /// Who is on call for `layer` at `at`: the last-listed override covering `at` wins; otherwise
    /// the rotation's member whose turn contains `at`. None when the layer is unknown, or `at` is
    /// before the layer's first turn and no override covers it.
    pub fn on_call(&self, layer: &str, at: Timestamp) -> Option<Shift<'a>> {
        let rotation = self.rotation(layer)?;
        let piece = self.piece(rotation, at);
        let (member, by_override) = piece.who?;
        let splits = |later: &Piece<'a>| {
            later.at_handoff && rotation.alone && later.who.is_some_and(|(_, o)| !o)
        };
        // A stretch spans at most a cycle of turns plus every override edge: a bound, not a loop
        // that trusts the time zone data.
        let most = rotation.members.len() + 2 * rotation.overrides.len() + 2;
        // Walk back over boundaries that change nothing to where this member's stretch began.
        let mut first = piece;
        for _ in 0..most {
            let Ok(before) = first.lo.checked_sub(SignedDuration::from_nanos(1)) else {
                break;
            };
            let earlier = self.piece(rotation, before);
            if !same(earlier.who, piece.who) || splits(&first) {
                break;
            }
            first = earlier;
        }
        // And forward to where it ends.
        let mut last = piece;
        for _ in 0..most {
            if last.hi == Timestamp::MAX {
                break;
            }
            let later = self.piece(rotation, last.hi);
            if !same(later.who, piece.who) || splits(&later) {
                break;
            }
            last = later;
        }
        Some(Shift {
            member,
            from: first.lo,
            until: last.hi,
            by_override,
        })
    }

    /// The next `count` changes of who is on call for `layer` strictly after `at` (rotation
    /// handoffs and override starts/ends), each as the shift that begins then; consecutive
    /// stretches with the same member and override-ness are merged. Empty when the layer is
    /// unknown.
    pub fn handoffs(&self, layer: &str, at: Timestamp, count: usize) -> Vec<Shift<'a>> {
        let mut shifts = Vec::with_capacity(count.min(64));
        let Some(rotation) = self.rotation(layer) else {
            return shifts;
        };
        let (mut now, mut current) = (at, self.on_call(layer, at));
        while shifts.len() < count {
            let next = match &current {
                Some(shift) => shift.until,
                // Nobody on call yet: the next boundary may bring someone.
                None => self.piece(rotation, now).hi,
            };
            if next == Timestamp::MAX {
                break;
            }
            current = self.on_call(layer, next);
            shifts.extend(current.clone());
            now = next;
        }
        shifts
    }

    /// A member by name.
    pub fn member(&self, name: &str) -> Option<&'a Member> {
        find_member(self.spec, name)
    }

    /// The layer names, in spec order.
    pub fn layers(&self) -> Vec<&'a str> {
        self.layers.iter().map(|r| r.name).collect()
    }

    fn rotation(&self, layer: &str) -> Option<&Rotation<'a>> {
        self.layers.iter().find(|r| r.name == layer)
    }

    /// The start of turn `k`; None past the end of representable time.
    fn turn_start(&self, rotation: &Rotation<'a>, k: i64) -> Option<Timestamp> {
        let days = Span::new()
            .try_days(k.checked_mul(rotation.rotation_days)?)
            .ok()?;
        let date = rotation.start.checked_add(days).ok()?;
        let local: DateTime = date.to_datetime(rotation.handoff);
        Some(self.time_zone.to_zoned(local).ok()?.timestamp())
    }

    /// The turn containing `at` and its start and end (end MAX past representable time); None
    /// before the first turn.
    fn turn(&self, rotation: &Rotation<'a>, at: Timestamp) -> Option<(i64, Timestamp, Timestamp)> {
        if at < rotation.first {
            return None;
        }
        // Jump near the turn by the local day count, then step: an offset moves it a day at most.
        let today = self.time_zone.to_datetime(at).date();
        let days = rotation
            .start
            .until(today)
            .map_or(0, |span| i64::from(span.get_days()));
        let mut k = days.div_euclid(rotation.rotation_days).max(0);
        let mut start = rotation.first;
        while k > 0 {
            match self.turn_start(rotation, k) {
                Some(begun) if begun <= at => {
                    start = begun;
                    break;
                }
                _ => k -= 1,
            }
        }
        loop {
            match self.turn_start(rotation, k + 1) {
                Some(next) if next <= at => {
                    k += 1;
                    start = next;
                }
                Some(next) => return Some((k, start, next)),
                None => return Some((k, start, Timestamp::MAX)),
            }
        }
    }

    /// The elementary stretch of `rotation` containing `at`.
    fn piece(&self, rotation: &Rotation<'a>, at: Timestamp) -> Piece<'a> {
        let covering = rotation
            .overrides
            .iter()
            .rev()
            .find(|c| c.start <= at && at < c.end);
        let (mut lo, mut hi, mut who, mut at_handoff) =
            (Timestamp::MIN, Timestamp::MAX, None, false);
        if let Some(cover) = covering {
            // Handoffs under an override change nothing; only override edges can.
            who = Some((cover.member, true));
        } else if let Some((k, start, end)) = self.turn(rotation, at) {
            let index = usize::try_from(k).unwrap_or(0) % rotation.members.len().max(1);
            who = rotation.members.get(index).map(|m| (*m, false));
            (lo, hi, at_handoff) = (start, end, true);
        } else {
            hi = rotation.first;
        }
        for cover in &rotation.overrides {
            for edge in [cover.start, cover.end] {
                if edge <= at && edge > lo {
                    (lo, at_handoff) = (edge, false);
                } else if edge > at && edge < hi {
                    hi = edge;
                }
            }
        }
        Piece {
            who,
            lo,
            hi,
            at_handoff,
        }
    }
}

fn same<'a>(a: Option<(&'a Member, bool)>, b: Option<(&'a Member, bool)>) -> bool {
    match (a, b) {
        (Some((x, xo)), Some((y, yo))) => x.name == y.name && xo == yo,
        _ => false,
    }
}

fn find_member<'a>(spec: &'a OnCallScheduleSpec, name: &str) -> Option<&'a Member> {
    spec.members.iter().find(|m| m.name == name)
}

/// `YYYY-MM-DD` as a real calendar date.
fn parse_date(text: &str) -> Option<Date> {
    let mut parts = text.split('-');
    let (year, month, day) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || year.len() != 4 || month.len() != 2 || day.len() != 2 {
        return None;
    }
    Date::new(year.parse().ok()?, month.parse().ok()?, day.parse().ok()?).ok()
}

/// `HH:MM` as a real time of day.
fn parse_time(text: &str) -> Option<Time> {
    let (hour, minute) = text.split_once(':')?;
    if hour.len() != 2 || minute.len() != 2 {
        return None;
    }
    Time::new(hour.parse().ok()?, minute.parse().ok()?, 0, 0).ok()
}

#[cfg(test)]
mod tests;
