//! Plugin rendering, who is on call (plugin layer): per OnCallSchedule and layer, who answers at an
//! instant, since and until when, whether by an override, and the next handoffs — what `kubectl
//! incident oncall` prints. Times read in the schedule's own time zone, where its handoffs happen.

use std::fmt::Write;

use jiff::{Timestamp, Zoned, tz::TimeZone};
use kube::ResourceExt;

use super::queue::{NONE, table, truncate};
use crate::{
    api::OnCallSchedule,
    core::escalation::oncall::{Rota, Shift},
};

/// `--at`: an RFC 3339 instant (`2026-12-24T20:00:00+01:00`, `…Z`), or one with a time zone
/// (`2026-12-24T20:00[Europe/Berlin]`).
pub fn parse_at(text: &str) -> Result<Timestamp, String> {
    let text = text.trim();
    text.parse::<Timestamp>()
        .or_else(|_| text.parse::<Zoned>().map(|z| z.timestamp()))
        .map_err(|_| {
            format!("`{text}` is not a time: write RFC 3339, e.g. 2026-12-24T20:00:00+01:00")
        })
}

/// `time` in `zone`, with the weekday (handoffs fall on days) and the zone's abbreviation.
fn local(time: Timestamp, zone: &TimeZone) -> String {
    if time == Timestamp::MAX {
        return NONE.to_owned();
    }
    time.to_zoned(zone.clone())
        .strftime("%a %Y-%m-%d %H:%M %Z")
        .to_string()
}

/// Who holds a shift: the member, marked when an override put them there.
fn holder(shift: &Shift<'_>) -> String {
    if shift.by_override {
        format!("{} (override)", shift.member.name)
    } else {
        shift.member.name.clone()
    }
}

/// One schedule: who is on call per layer at `at`, then the next `handoffs` changes per layer; or,
/// for a schedule the rota refuses, its problems.
pub fn schedule(schedule: &OnCallSchedule, at: Timestamp, handoffs: usize) -> String {
    let spec = &schedule.spec;
    let mut out = format!(
        "Schedule {}/{}",
        schedule.namespace().unwrap_or_default(),
        schedule.name_any()
    );
    if let Some(description) = spec.description.as_deref().filter(|d| !d.trim().is_empty()) {
        let _ = write!(out, " ({})", truncate(description, 80));
    }
    let rota = match Rota::new(spec) {
        Ok(rota) => rota,
        Err(problems) => {
            out.push_str(": cannot say who is on call:\n");
            for problem in problems {
                let _ = writeln!(out, "  - {problem}");
            }
            return out;
        }
    };
    // The rota accepted the zone, so it resolves here too; UTC only if the database disagrees.
    let zone = TimeZone::get(&spec.time_zone).unwrap_or(TimeZone::UTC);
    let _ = writeln!(
        out,
        ", times in {}; on call at {}:",
        spec.time_zone,
        local(at, &zone)
    );
    let layers = rota.layers();
    let rows: Vec<Vec<String>> = layers
        .iter()
        .map(|layer| match rota.on_call(layer, at) {
            Some(shift) => vec![
                (*layer).to_owned(),
                holder(&shift),
                local(shift.from, &zone),
                local(shift.until, &zone),
            ],
            None => vec![
                (*layer).to_owned(),
                "nobody (before the first turn)".to_owned(),
                NONE.to_owned(),
                NONE.to_owned(),
            ],
        })
        .collect();
    indent(
        &mut out,
        &table(&["LAYER", "ON CALL", "SINCE", "UNTIL"], &rows),
    );
    if handoffs == 0 {
        return out;
    }
    let rows: Vec<Vec<String>> = layers
        .iter()
        .flat_map(|layer| {
            let zone = &zone;
            rota.handoffs(layer, at, handoffs)
                .into_iter()
                .map(move |shift| {
                    vec![
                        (*layer).to_owned(),
                        local(shift.from, zone),
                        holder(&shift),
                        local(shift.until, zone),
                    ]
                })
        })
        .collect();
    if rows.is_empty() {
        out.push_str("  No handoffs ahead.\n");
    } else {
        out.push_str("  Next handoffs:\n");
        indent(&mut out, &table(&["LAYER", "AT", "TO", "UNTIL"], &rows));
    }
    out
}

/// `kubectl incident oncall`: every schedule (by namespace, then name), a blank line between.
pub fn oncall(schedules: &[OnCallSchedule], at: Timestamp, handoffs: usize) -> String {
    let mut sorted: Vec<&OnCallSchedule> = schedules.iter().collect();
    sorted.sort_by_key(|s| (s.namespace(), s.name_any()));
    sorted
        .into_iter()
        .map(|s| schedule(s, at, handoffs))
        .collect::<Vec<_>>()
        .join("\n")
}

fn indent(out: &mut String, text: &str) {
    for line in text.lines() {
        let _ = writeln!(out, "  {line}");
    }
}

#[cfg(test)]
mod tests;
