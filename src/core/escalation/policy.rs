//! Which escalation policy an incident follows and what of it applies (core layer): the one the
//! incident names, else its namespace's default, else the operator namespace's default; the levels
//! kept for the incident's severity; the business clock for P2/P3; what a policy names that does
//! not exist (its Ready condition).

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use jiff::Timestamp;
use kube::{
    ResourceExt,
    core::labels::{Selector, SelectorExt},
};

use crate::{
    api::{
        Channel, EscalationLevel, EscalationPolicy, EscalationState, ExpertRule, Incident,
        OnCallSchedule, OutsideHours, Severity, Target, duration,
    },
    core::calendar::{self, Calendar},
};

use super::oncall::Rota;

/// The policy an incident follows.
#[derive(Clone, Debug)]
pub enum Choice {
    Policy(Arc<EscalationPolicy>),
    /// The incident names a policy that does not exist in its namespace.
    Missing(String),
    /// None named, no default.
    Nothing,
}

/// The policy for `incident`: `spec.escalationPolicy` in its namespace, else that namespace's
/// default, else the default of `operator_namespace`. Several defaults: the first by name.
pub fn choose(
    incident: &Incident,
    policies: &[Arc<EscalationPolicy>],
    operator_namespace: Option<&str>,
) -> Choice {
    let namespace = incident.namespace();
    let in_namespace = |ns: Option<&str>| {
        let mut found: Vec<&Arc<EscalationPolicy>> = policies
            .iter()
            .filter(|p| p.namespace().as_deref() == ns)
            .collect();
        found.sort_by_key(|p| p.name_any());
        found
    };
    if let Some(name) = &incident.spec.escalation_policy {
        return in_namespace(namespace.as_deref())
            .into_iter()
            .find(|p| &p.name_any() == name)
            .map_or_else(
                || Choice::Missing(name.clone()),
                |p| Choice::Policy(p.clone()),
            );
    }
    let default = |ns: Option<&str>| {
        in_namespace(ns)
            .into_iter()
            .find(|p| p.spec.default)
            .cloned()
    };
    match default(namespace.as_deref())
        .or_else(|| operator_namespace.and_then(|ns| default(Some(ns))))
    {
        Some(policy) => Choice::Policy(policy),
        None => Choice::Nothing,
    }
}

/// Whether a new or edited policy of `namespace` may concern `incident`: it is unresolved and not
/// climbing under a policy yet (none applied, or the one it names was missing). A policy of the
/// operator's namespace concerns every namespace.
pub fn wakes(
    incident: &Incident,
    namespace: Option<&str>,
    operator_namespace: Option<&str>,
) -> bool {
    let waiting = incident.status.as_ref().is_none_or(|s| {
        s.escalation.as_ref().is_none_or(|e| {
            matches!(
                e.state,
                EscalationState::None | EscalationState::PolicyNotFound
            )
        })
    });
    let near = namespace.is_some()
        && (incident.namespace().as_deref() == namespace || namespace == operator_namespace);
    near && waiting && incident.spec.resolution.is_none()
}

/// `namespace/name` of a policy.
pub fn policy_ref(policy: &EscalationPolicy) -> String {
    format!(
        "{}/{}",
        policy.namespace().unwrap_or_default(),
        policy.name_any()
    )
}

/// The levels that apply to `severity`, in order.
pub fn levels(policy: &EscalationPolicy, severity: Severity) -> Vec<&EscalationLevel> {
    policy
        .spec
        .levels
        .iter()
        .filter(|l| l.severities.is_empty() || l.severities.contains(&severity))
        .collect()
}

/// The expert rules that match the incident: its labels, or a workload it names.
pub fn experts<'a>(policy: &'a EscalationPolicy, incident: &Incident) -> Vec<&'a ExpertRule> {
    policy
        .spec
        .experts
        .iter()
        .filter(|rule| {
            let by_labels = rule.selector.as_ref().is_some_and(|s| {
                Selector::try_from(s.clone()).is_ok_and(|s| s.matches(incident.labels()))
            });
            let by_workload = incident
                .spec
                .affected
                .iter()
                .any(|a| a.namespace.is_none() && rule.workloads.iter().any(|w| w == &a.name));
            by_labels || by_workload
        })
        .collect()
}

/// How a severity's clocks count under a policy.
#[derive(Clone, Debug)]
pub struct Clock {
    /// The business hours, when the severity counts business time.
    pub calendar: Option<Calendar>,
    /// Wait for business hours before the first page.
    pub wait_for_hours: bool,
    /// The severity's response time, as configured.
    pub response_time: Duration,
    pub severity: Severity,
}

impl Clock {
    /// The clock of `severity` under `policy` (24x7 when it has no business hours, or they are
    /// broken: the policy's Ready condition says so).
    pub fn new(
        policy: Option<&EscalationPolicy>,
        severity: Severity,
        response_time: Duration,
    ) -> Clock {
        let calendar = policy.and_then(|p| {
            let hours = p.spec.business_hours.as_ref()?;
            if !p.spec.business_hours_for.contains(&severity) {
                return None;
            }
            Calendar::new(hours).ok()
        });
        let wait_for_hours = calendar.is_some()
            && policy.is_some_and(|p| p.spec.outside_business_hours == OutsideHours::Wait);
        Clock {
            calendar,
            wait_for_hours,
            response_time,
            severity,
        }
    }

    /// The deadline `wait` after `from` (business time on a business clock); with no `wait`, the
    /// severity's response time — "the next business day" for P3 on a business clock.
    pub fn after(&self, from: Timestamp, wait: Option<Duration>) -> Timestamp {
        match (&self.calendar, wait) {
            (None, wait) => plus(from, wait.unwrap_or(self.response_time)),
            (Some(calendar), None) => {
                calendar::deadline(calendar, self.severity, from, self.response_time)
            }
            (Some(calendar), Some(wait)) => calendar.add(from, wait),
        }
    }

    /// When the first page of a climb started at `start` goes out.
    pub fn first_page(&self, start: Timestamp) -> Timestamp {
        match &self.calendar {
            Some(calendar) if self.wait_for_hours => calendar.next_open(start),
            _ => start,
        }
    }
}

fn plus(time: Timestamp, duration: Duration) -> Timestamp {
    let duration = jiff::SignedDuration::try_from(duration).unwrap_or(jiff::SignedDuration::MAX);
    time.checked_add(duration).unwrap_or(Timestamp::MAX)
}

/// A level's own wait, if it names a valid one.
pub fn wait(level: &EscalationLevel) -> Option<Duration> {
    level.after.as_deref().and_then(|a| duration::parse(a).ok())
}

/// What `policy` names that does not exist or cannot be used, each a sentence: schedules, layers,
/// members, channels (in its namespace or, for channels, `operator_namespace`), a broken schedule
/// or business calendar. Empty when the policy is usable.
pub fn problems(
    policy: &EscalationPolicy,
    schedules: &[Arc<OnCallSchedule>],
    channels: &[Arc<Channel>],
    operator_namespace: Option<&str>,
) -> Vec<String> {
    let namespace = policy.namespace();
    let mut problems = BTreeSet::new();
    let schedule = |name: &str| {
        schedules
            .iter()
            .find(|s| s.namespace() == namespace && s.name_any() == name)
    };
    let targets = policy
        .spec
        .levels
        .iter()
        .map(|l| (format!("levels[{}]", l.name), &l.notify))
        .chain(
            policy
                .spec
                .experts
                .iter()
                .map(|e| (format!("experts[{}]", e.name), &e.notify)),
        );
    for (place, notify) in targets {
        for target in notify {
            if let Some(problem) = target_problem(
                target,
                &schedule,
                channels,
                namespace.as_deref(),
                operator_namespace,
            ) {
                problems.insert(format!("{place}: {problem}"));
            }
        }
    }
    if let Some(hours) = &policy.spec.business_hours
        && let Err(problem) = Calendar::new(hours)
    {
        problems.insert(problem);
    }
    problems.into_iter().collect()
}

fn target_problem<'a>(
    target: &Target,
    schedule: &impl Fn(&str) -> Option<&'a Arc<OnCallSchedule>>,
    channels: &[Arc<Channel>],
    namespace: Option<&str>,
    operator_namespace: Option<&str>,
) -> Option<String> {
    let check_schedule = |name: &str| -> Result<&'a Arc<OnCallSchedule>, String> {
        let found =
            schedule(name).ok_or_else(|| format!("OnCallSchedule {name} does not exist"))?;
        Rota::new(&found.spec)
            .map(|_| found)
            .map_err(|p| format!("OnCallSchedule {name} is not usable: {}", p.join("; ")))
    };
    if let Some(layer) = &target.layer {
        return match check_schedule(&layer.schedule) {
            Err(problem) => Some(problem),
            Ok(s) if !s.spec.layers.iter().any(|l| l.name == layer.layer) => Some(format!(
                "OnCallSchedule {} has no layer {}",
                layer.schedule, layer.layer
            )),
            Ok(_) => None,
        };
    }
    if let Some(person) = &target.person {
        return match check_schedule(&person.schedule) {
            Err(problem) => Some(problem),
            Ok(s) if !s.spec.members.iter().any(|m| m.name == person.member) => Some(format!(
                "OnCallSchedule {} has no member {}",
                person.schedule, person.member
            )),
            Ok(_) => None,
        };
    }
    let name = target.channel.as_deref()?;
    let found = find_channel(channels, name, namespace, operator_namespace);
    found
        .is_none()
        .then(|| format!("Channel {name} does not exist"))
}

/// A Channel named by a target: in the policy's namespace, else in the operator's.
pub fn find_channel<'a>(
    channels: &'a [Arc<Channel>],
    name: &str,
    namespace: Option<&str>,
    operator_namespace: Option<&str>,
) -> Option<&'a Arc<Channel>> {
    let in_ns = |ns: Option<&str>| {
        channels
            .iter()
            .find(|c| c.namespace().as_deref() == ns && c.name_any() == name)
    };
    in_ns(namespace).or_else(|| operator_namespace.and_then(|ns| in_ns(Some(ns))))
}

#[cfg(test)]
mod tests;
