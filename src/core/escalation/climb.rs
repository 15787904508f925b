//! The climb (core layer): one pure step of an incident's escalation. From the incident as the
//! lifecycle just computed it, the policy, the schedules and now, it pages every level whose
//! deadline has passed — in order, none skipped, each once — records each step in the timeline
//! and `status.escalation`, and returns the Events, the pages for the outbox and the next deadline.
//! All of it goes into the one status write, so a crash before it repeats nothing and a crash
//! after it loses nothing.

use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{
    page::{self, Reach, Step},
    policy::{self, Choice, Clock},
};
use crate::{
    api::{
        Channel, EntryType, EscalationState, Incident, IncidentStatus, MAX_PAGES, Notification,
        OnCallSchedule,
    },
    core::{
        text::{fingerprint, to_second},
        timeline::{Notice, record},
    },
};

/// What the climb needs besides the incident.
pub struct Inputs<'a> {
    pub choice: &'a Choice,
    pub clock: &'a Clock,
    /// OnCallSchedules of the policy's namespace.
    pub schedules: &'a [Arc<OnCallSchedule>],
    /// The Channels that carry pages for this incident (they hear `Paged`).
    pub page_channels: &'a [Arc<Channel>],
    /// Every Channel known, for channel targets.
    pub channels: &'a [Arc<Channel>],
    pub operator_namespace: Option<&'a str>,
}

/// What one step of the climb produced.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Events to publish (one per step taken or problem met).
    pub notices: Vec<Notice>,
    /// Of those, the news every channel hearing it gets (nobody answered at all).
    pub news: Vec<Notice>,
    /// The pages, for the outbox: one per (person or channel target, channel).
    pub pages: Vec<Notification>,
    /// When the next level is due.
    pub wake_at: Option<Timestamp>,
}

/// Advances the escalation in `status` (the lifecycle's new status of `incident`) to `now`.
pub fn advance(
    incident: &Incident,
    status: &mut IncidentStatus,
    inputs: &Inputs,
    now: Timestamp,
) -> Outcome {
    let now = to_second(now);
    let mut out = Outcome::default();
    let mut esc = status.escalation.clone().unwrap_or_default();
    let uid = incident.metadata.uid.clone().unwrap_or_default();
    let policy = match inputs.choice {
        Choice::Policy(policy) => policy,
        Choice::Missing(name) => {
            if esc.state != EscalationState::PolicyNotFound {
                esc.state = EscalationState::PolicyNotFound;
                esc.next_at = None;
                esc.next_level = None;
                let message = format!("EscalationPolicy {name} does not exist: nobody is paged");
                esc.message = Some(message.clone());
                let key = fingerprint(&[&uid, "policy-missing", name, &esc.episode.to_string()]);
                let time = record(
                    &mut status.timeline,
                    now,
                    EntryType::PageFailed,
                    message.clone(),
                    None,
                );
                out.notices
                    .push(notice(key, "PageFailed", message, time, true));
            }
            status.escalation = Some(esc);
            return out;
        }
        Choice::Nothing => {
            if status.escalation.is_some() {
                esc.state = EscalationState::None;
                esc.next_at = None;
                esc.next_level = None;
                status.escalation = Some(esc);
            }
            return out;
        }
    };
    esc.policy = Some(policy::policy_ref(policy));
    let spec = &incident.spec;
    let metrics = status.metrics.clone().unwrap_or_default();
    let resolved = metrics.resolved_at.is_some() || spec.resolution.is_some();
    let owner = owner(incident);

    // Where the climb stands: start one at detection, and again on each reopening.
    let started = esc.started_at.is_some();
    if resolved {
        if started && esc.state != EscalationState::Resolved {
            esc.state = EscalationState::Resolved;
            esc.next_at = None;
            esc.next_level = None;
            esc.message = None;
        }
        status.escalation = Some(esc);
        return out;
    }
    if !started
        || esc.state == EscalationState::Resolved
        || esc.state == EscalationState::PolicyNotFound
    {
        let first = !started;
        let start = if first {
            metrics.detected_at.as_ref().map_or(now, |t| t.0)
        } else {
            now
        };
        esc.episode += 1;
        esc.started_at = Some(Time(to_second(start)));
        esc.steps = 0;
        esc.round = 0;
        esc.level = None;
        esc.message = None;
        // Owned from the start (acknowledged when detected): nobody needs paging.
        esc.owned_by = Some(owner.clone());
        esc.state = if first && spec.acknowledgment.is_some() {
            EscalationState::Acknowledged
        } else {
            EscalationState::Climbing
        };
    }
    if matches!(
        esc.state,
        EscalationState::Climbing | EscalationState::Waiting | EscalationState::Exhausted
    ) && esc.owned_by.as_deref() != Some(owner.as_str())
    {
        esc.state = EscalationState::Acknowledged;
        esc.next_at = None;
        esc.next_level = None;
    }
    if !matches!(
        esc.state,
        EscalationState::Climbing | EscalationState::Waiting
    ) {
        status.escalation = Some(esc);
        return out;
    }

    let reach = Reach {
        schedules: inputs.schedules,
        page_channels: inputs.page_channels,
        channels: inputs.channels,
        operator_namespace: inputs.operator_namespace,
    };
    let levels = policy::levels(policy, spec.severity);
    let total = levels.len() as i32 * (policy.spec.repeat as i32 + 1);
    let start = esc.started_at.as_ref().map_or(now, |t| t.0);
    let due = |k: i32| -> Timestamp {
        let mut t = inputs.clock.first_page(start);
        for i in 0..k {
            t = inputs
                .clock
                .after(t, policy::wait(levels[i as usize % levels.len()]));
        }
        to_second(t)
    };
    while esc.steps < total && due(esc.steps) <= now {
        let k = esc.steps;
        let level = levels[k as usize % levels.len()];
        let round = k / levels.len() as i32 + 1;
        let mut steps = vec![Step::level(level, round, total > levels.len() as i32)];
        if k == 0 {
            steps.extend(
                policy::experts(policy, incident)
                    .into_iter()
                    .map(Step::expert),
            );
        }
        for step in steps {
            let paged = page::page(&step, &reach, policy, now);
            let key = fingerprint(&[
                &uid,
                "paged",
                &esc.episode.to_string(),
                &k.to_string(),
                &step.label,
            ]);
            for (problem, i) in paged.problems.iter().zip(0..) {
                let time = record(
                    &mut status.timeline,
                    now,
                    EntryType::PageFailed,
                    problem.clone(),
                    None,
                );
                let problem_key = fingerprint(&[&key, "problem", &i.to_string()]);
                out.notices.push(notice(
                    problem_key,
                    "PageFailed",
                    problem.clone(),
                    time,
                    true,
                ));
            }
            if let Some(message) = paged.message {
                let time = record(
                    &mut status.timeline,
                    now,
                    EntryType::Paged,
                    message.clone(),
                    None,
                );
                out.notices
                    .push(notice(key.clone(), "Paged", message, time, false));
            }
            for p in paged.pages {
                esc.pages.push(p.into_page(now, esc.episode, round, &step));
            }
            out.pages
                .extend(paged.notifications.into_iter().map(|mut n| {
                    n.key = fingerprint(&[&key, &n.key]);
                    n.time = Time(now);
                    n
                }));
        }
        esc.level = Some(level.name.clone());
        esc.round = round;
        esc.steps += 1;
    }
    let excess = esc.pages.len().saturating_sub(MAX_PAGES);
    esc.pages.drain(..excess);
    if esc.steps < total {
        let next = due(esc.steps);
        esc.next_at = Some(Time(next));
        esc.next_level = Some(levels[esc.steps as usize % levels.len()].name.clone());
        esc.state = if esc.steps == 0 && next > start {
            EscalationState::Waiting
        } else {
            EscalationState::Climbing
        };
        out.wake_at = Some(next);
    } else if due(total) > now {
        // The last level still has its wait to answer in.
        let end = due(total);
        esc.next_at = Some(Time(end));
        esc.next_level = None;
        esc.state = EscalationState::Climbing;
        out.wake_at = Some(end);
    } else {
        esc.state = EscalationState::Exhausted;
        esc.next_at = None;
        esc.next_level = None;
        let message = if total == 0 {
            format!(
                "EscalationPolicy {} has no level for {}: nobody is paged",
                policy::policy_ref(policy),
                spec.severity
            )
        } else {
            format!(
                "Nobody acknowledged: every level of {} was paged {}",
                policy::policy_ref(policy),
                times(policy.spec.repeat + 1)
            )
        };
        esc.message = Some(message.clone());
        let key = fingerprint(&[&uid, "exhausted", &esc.episode.to_string()]);
        let time = record(
            &mut status.timeline,
            now,
            EntryType::Escalated,
            message.clone(),
            None,
        );
        let news = notice(key, "Escalated", message, time, true);
        out.notices.push(news.clone());
        out.news.push(news);
    }
    status.escalation = Some(esc);
    out
}

/// Who owns the incident, as the climb compares it: the acknowledger and the commander.
fn owner(incident: &Incident) -> String {
    let spec = &incident.spec;
    format!(
        "{}/{}",
        spec.acknowledgment.as_ref().map_or("", |a| a.by.as_str()),
        spec.commander.as_deref().unwrap_or("")
    )
}

fn times(n: u32) -> String {
    match n {
        1 => "once".to_owned(),
        2 => "twice".to_owned(),
        n => format!("{n} times"),
    }
}

fn notice(
    key: String,
    reason: &'static str,
    message: String,
    time: Timestamp,
    warning: bool,
) -> Notice {
    Notice {
        key,
        warning,
        reason,
        message,
        actor: None,
        time,
    }
}

#[cfg(test)]
mod tests;
