//! The response clocks (core layer): acknowledge by the severity's response time, an update at
//! least every interval for P0/P1, the post-mortem within its time after resolution. A missed
//! deadline is recorded once; an unmissed one is when to look again.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{
    LifecycleConfig, Observation,
    draft::{Draft, at, plus, seconds_between},
};
use crate::{
    api::{EntryType, Incident, Severity},
    core::{
        calendar::{self, Calendar},
        text::{humanize, spelled_seconds as spelled, to_second},
    },
};

/// The last reminder time at or before `now`: the deadline, then every `interval` after it.
fn latest_reminder(due: Timestamp, now: Timestamp, interval: std::time::Duration) -> Timestamp {
    let interval = interval.as_secs().max(1) as i64;
    let late = seconds_between(due, now);
    let reminders = late / interval;
    plus(
        due,
        std::time::Duration::from_secs((reminders * interval) as u64),
    )
}

/// Where each clock stands after this update.
pub(super) struct Clocks {
    pub respond_by: Timestamp,
    pub acknowledged_at: Option<Timestamp>,
    pub resolved: bool,
    pub closed: bool,
    pub ack_overdue: bool,
    /// The response time was missed (SLA breached).
    pub breached: bool,
    /// The severity needs regular updates and the incident is open.
    pub needs_updates: bool,
    pub update_due: Timestamp,
    pub update_overdue: bool,
    pub postmortem_due_by: Option<Timestamp>,
    pub postmortem_overdue: bool,
    /// The nearest deadline not yet missed.
    pub wake_at: Option<Timestamp>,
}

/// Runs the three clocks over the draft, recording each miss once.
pub(super) fn run(
    d: &mut Draft,
    incident: &Incident,
    detected_at: Timestamp,
    config: &LifecycleConfig,
    business_hours: Option<&Calendar>,
) -> Clocks {
    let spec = &incident.spec;
    let now = d.now;
    let resolved = d.metrics.resolved_at.is_some();
    let response_time = config.response_time(spec.severity);
    let respond_by = match business_hours {
        Some(calendar) => to_second(calendar::deadline(
            calendar,
            spec.severity,
            detected_at,
            response_time,
        )),
        None => plus(detected_at, response_time),
    };
    let mut wake_at: Option<Timestamp> = None;
    let mut wake = |t: Timestamp| wake_at = Some(wake_at.map_or(t, |w: Timestamp| w.min(t)));

    let acknowledged_at = d.metrics.acknowledged_at.as_ref().map(at);
    let ack_overdue = acknowledged_at.is_none() && !resolved && now >= respond_by;
    if ack_overdue && d.recorded.escalated_for.as_ref().map(at) != Some(respond_by) {
        d.recorded.escalated_for = Some(Time(respond_by));
        d.observations.push(Observation::Overdue {
            severity: spec.severity,
            clock: "acknowledge",
        });
        let key = d.key(&["escalated", &respond_by.to_string()]);
        let severity = spec.severity;
        let message = match business_hours {
            Some(_) if severity == Severity::P3 => {
                format!("Not acknowledged by the next business day (the {severity} response time)")
            }
            Some(_) => format!(
                "Not acknowledged within the {severity} response time of {} of business time",
                humanize(response_time)
            ),
            None => format!(
                "Not acknowledged within the {severity} response time of {}",
                humanize(response_time)
            ),
        };
        d.entry(EntryType::Escalated, message, None, key, true);
    } else if acknowledged_at.is_none() && !resolved && now < respond_by {
        wake(respond_by);
    }
    let breached = ack_overdue
        || acknowledged_at.is_some_and(|a| a > respond_by)
        || (resolved
            && acknowledged_at.is_none()
            && d.metrics
                .resolved_at
                .as_ref()
                .map(at)
                .is_some_and(|r| r > respond_by));

    let needs_updates = !resolved && config.update_severities.contains(&spec.severity);
    let update_due = d
        .next_update
        .unwrap_or_else(|| plus(d.last_update.unwrap_or(detected_at), config.update_interval));
    let update_overdue = needs_updates && now >= update_due;
    if update_overdue {
        // A reminder at the deadline, then one every interval until someone posts an update.
        let reminder = latest_reminder(update_due, now, config.update_interval);
        if d.recorded.update_due_for.as_ref().map(at) != Some(reminder) {
            d.recorded.update_due_for = Some(Time(reminder));
            d.observations.push(Observation::Overdue {
                severity: spec.severity,
                clock: "update",
            });
            let key = d.key(&["update-due", &reminder.to_string()]);
            let silent = spelled(seconds_between(d.last_update.unwrap_or(detected_at), now));
            let mut message = format!(
                "No update for {silent}: {} incidents need one at least every {}",
                spec.severity,
                humanize(config.update_interval)
            );
            if let Some(commander) = &spec.commander {
                message.push_str(&format!("; {commander}, please post one"));
            }
            d.entry(EntryType::UpdateDue, message, None, key, true);
        }
        wake(plus(reminder, config.update_interval));
    } else if needs_updates {
        wake(update_due);
    }

    let postmortem_due_by = d
        .metrics
        .resolved_at
        .as_ref()
        .map(|r| plus(at(r), config.postmortem_due));
    let closed = d.metrics.closed_at.is_some();
    let postmortem_overdue = !closed && postmortem_due_by.is_some_and(|due| now >= due);
    if let Some(due) = postmortem_due_by
        && !closed
    {
        if postmortem_overdue && d.recorded.postmortem_overdue_for.as_ref().map(at) != Some(due) {
            d.recorded.postmortem_overdue_for = Some(Time(due));
            d.observations.push(Observation::Overdue {
                severity: spec.severity,
                clock: "postmortem",
            });
            let key = d.key(&["postmortem-overdue", &due.to_string()]);
            let message = format!(
                "Post-mortem not completed within {} of resolution",
                humanize(config.postmortem_due)
            );
            d.entry(EntryType::PostmortemOverdue, message, None, key, true);
        } else if !postmortem_overdue {
            wake(due);
        }
    }
    Clocks {
        respond_by,
        acknowledged_at,
        resolved,
        closed,
        ack_overdue,
        breached,
        needs_updates,
        update_due,
        update_overdue,
        postmortem_due_by,
        postmortem_overdue,
        wake_at,
    }
}
