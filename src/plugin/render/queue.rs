//! Plugin rendering, the pager queue (plugin layer): how urgent an incident is, the queue's order,
//! its age and time left to respond (wall or business time, as its clock counts), and the
//! kubectl-style table the list prints.

use std::{collections::BTreeMap, fmt::Write};

use jiff::{SignedDuration, Timestamp};

use crate::{
    api::{Incident, Phase},
    core::{calendar::Calendar, text::age},
};

/// Shown where a value is not known (yet).
pub(super) const NONE: &str = "-";

/// Where an incident stands in the response, most urgent group first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Urgency {
    /// Nobody has claimed it yet.
    Unacknowledged,
    /// Someone is on it.
    InProgress,
    Resolved,
    Closed,
}

pub(super) fn phase(incident: &Incident) -> Option<Phase> {
    incident.status.as_ref().and_then(|s| s.phase)
}

fn urgency(incident: &Incident) -> Urgency {
    match phase(incident) {
        Some(Phase::Closed) => Urgency::Closed,
        Some(Phase::Resolved) => Urgency::Resolved,
        Some(Phase::Detected) => Urgency::Unacknowledged,
        Some(Phase::Acknowledged | Phase::Mitigating | Phase::Monitoring) => Urgency::InProgress,
        // Not reconciled yet: judge by the spec.
        None if incident.spec.resolution.is_some() => Urgency::Resolved,
        None if incident.spec.acknowledgment.is_some() => Urgency::InProgress,
        None => Urgency::Unacknowledged,
    }
}

fn respond_by(incident: &Incident) -> Option<Timestamp> {
    incident
        .status
        .as_ref()
        .and_then(|s| s.sla.as_ref())
        .map(|sla| sla.respond_by.0)
}

fn created(incident: &Incident) -> Option<Timestamp> {
    incident.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

/// Whether an incident belongs in the pager queue: everything until it is closed (a resolved one
/// still owes its post-mortem).
pub fn in_queue(incident: &Incident) -> bool {
    urgency(incident) != Urgency::Closed
}

/// Sorts incidents most urgent first: unacknowledged before in progress before resolved before
/// closed; then by severity (P0 first); then the nearest respond-by deadline; then the oldest.
pub fn sort_by_urgency(incidents: &mut [Incident]) {
    incidents.sort_by(|a, b| {
        let key = |i: &Incident| {
            (
                urgency(i),
                i.spec.severity,
                respond_by(i).unwrap_or(Timestamp::MAX),
                created(i).unwrap_or(Timestamp::MAX),
                i.metadata.name.clone().unwrap_or_default(),
            )
        };
        key(a).cmp(&key(b))
    });
}

/// Age of the incident at `now`.
pub fn incident_age(incident: &Incident, now: Timestamp) -> String {
    match created(incident) {
        Some(created) => age(now.duration_since(created).max(SignedDuration::ZERO)),
        None => NONE.to_owned(),
    }
}

/// Business hours by EscalationPolicy (`namespace/name`): what the response clocks of the
/// policies' business-time incidents count in.
pub type Calendars = BTreeMap<String, Calendar>;

/// The business hours an incident's response clock counts in: its policy's, when the operator set
/// the clock to business time and the policy's hours are known (else the clock reads wall time).
fn business_hours<'a>(incident: &Incident, calendars: &'a Calendars) -> Option<&'a Calendar> {
    let status = incident.status.as_ref()?;
    status.sla.as_ref()?.business_hours.as_ref()?;
    calendars.get(status.escalation.as_ref()?.policy.as_deref()?)
}

/// Time left to acknowledge: `12m` while the clock runs, `overdue 3m` once missed, `acked` once
/// someone claimed it, `-` when resolved or the controller has not set the deadline yet.
pub fn time_left(incident: &Incident, now: Timestamp) -> String {
    time_left_in(incident, now, &Calendars::new())
}

/// [`time_left`] in the clock's own terms: business time (`3h10m bh`, `overdue 20m bh`) for an
/// incident whose clock counts its policy's business hours, found in `calendars`; wall time else.
pub fn time_left_in(incident: &Incident, now: Timestamp, calendars: &Calendars) -> String {
    match urgency(incident) {
        Urgency::InProgress => return "acked".to_owned(),
        Urgency::Resolved | Urgency::Closed => return NONE.to_owned(),
        Urgency::Unacknowledged => {}
    }
    let Some(deadline) = respond_by(incident) else {
        return NONE.to_owned();
    };
    if let Some(calendar) = business_hours(incident, calendars) {
        let business = |from, to| {
            age(SignedDuration::try_from(calendar.elapsed(from, to)).unwrap_or(SignedDuration::MAX))
        };
        return if deadline < now {
            format!("overdue {} bh", business(deadline, now))
        } else {
            format!("{} bh", business(now, deadline))
        };
    }
    let left = deadline.duration_since(now);
    if left.is_negative() {
        format!("overdue {}", age(left))
    } else {
        age(left)
    }
}

/// Cuts `text` to one line of at most `max` characters, with `…` when cut.
pub(super) fn truncate(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or_default().trim();
    let cut = line.chars().count() > max || text.trim().lines().nth(1).is_some();
    if line.chars().count() > max {
        let kept: String = line.chars().take(max.saturating_sub(1)).collect();
        format!("{kept}…")
    } else if cut {
        format!("{line} …")
    } else {
        line.to_owned()
    }
}

/// Lays out rows as kubectl does: upper-case headers, columns padded to the widest cell, three
/// spaces apart, no trailing spaces.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let header: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let pad = widths.get(i).copied().unwrap_or(0);
                let _ = write!(line, "{cell:<pad$}   ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The pager queue: most urgent first, with severity, phase, title, age and time left to respond
/// (in business time for the clocks that count it, see [`time_left_in`]); with `namespaces`
/// (kubectl's `-A`) a NAMESPACE column comes first, as kubectl prints it.
pub fn list_table(
    incidents: &[Incident],
    now: Timestamp,
    namespaces: bool,
    calendars: &Calendars,
) -> String {
    let mut sorted = incidents.to_vec();
    sort_by_urgency(&mut sorted);
    let rows: Vec<Vec<String>> = sorted
        .iter()
        .map(|i| {
            let namespace = namespaces.then(|| i.metadata.namespace.clone().unwrap_or_default());
            namespace
                .into_iter()
                .chain([
                    i.metadata.name.clone().unwrap_or_default(),
                    i.spec.severity.to_string(),
                    phase(i).map_or_else(|| "Pending".to_owned(), |p| p.to_string()),
                    truncate(&i.spec.title, 60),
                    incident_age(i, now),
                    time_left_in(i, now, calendars),
                ])
                .collect()
        })
        .collect();
    let headers = ["NAME", "SEVERITY", "PHASE", "TITLE", "AGE", "RESPOND IN"];
    if namespaces {
        let mut with_namespace = vec!["NAMESPACE"];
        with_namespace.extend(headers);
        table(&with_namespace, &rows)
    } else {
        table(&headers, &rows)
    }
}
