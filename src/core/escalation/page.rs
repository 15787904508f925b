//! Paging one step (core layer): a level's or an expert's targets become people — whoever is on
//! call for a layer now, or a named member — and channel targets; each person gets one message per
//! channel that carries pages, with their handle for that channel's type; what cannot be paged
//! (a missing schedule, nobody on call, no channel) is said, never silently dropped.

use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use super::{
    oncall::Rota,
    policy::{find_channel, policy_ref},
};
use crate::{
    api::{
        Channel, Destination, EscalationLevel, EscalationPolicy, ExpertRule, MAX_PAGE_CHANNELS,
        Member, Notification, NotificationEvent, OnCallSchedule, Page, Recipient, Target,
    },
    core::text::fingerprint,
};

/// Who can be reached, and through what.
pub struct Reach<'a> {
    /// OnCallSchedules of the policy's namespace.
    pub schedules: &'a [Arc<OnCallSchedule>],
    /// The Channels that carry pages for this incident.
    pub page_channels: &'a [Arc<Channel>],
    /// Every Channel known, for channel targets.
    pub channels: &'a [Arc<Channel>],
    pub operator_namespace: Option<&'a str>,
}

/// One step's targets and how they are described.
pub struct Step<'a> {
    /// `primary`, or `expert:payments`: part of every key of the step.
    pub label: String,
    /// How the timeline introduces the step.
    pub heading: String,
    pub targets: &'a [Target],
    pub expert: Option<&'a str>,
}

impl<'a> Step<'a> {
    pub fn level(level: &'a EscalationLevel, round: i32, repeats: bool) -> Step<'a> {
        let heading = if repeats {
            format!("Level {} (round {round})", level.name)
        } else {
            format!("Level {}", level.name)
        };
        Step {
            label: level.name.clone(),
            heading,
            targets: &level.notify,
            expert: None,
        }
    }

    pub fn expert(rule: &'a ExpertRule) -> Step<'a> {
        Step {
            label: format!("expert:{}", rule.name),
            heading: format!("Domain expert {}", rule.name),
            targets: &rule.notify,
            expert: Some(&rule.name),
        }
    }
}

/// Someone (or a channel) paged at a step.
pub struct Paged {
    pub person: Option<String>,
    pub role: String,
    pub channels: Vec<String>,
}

impl Paged {
    pub fn into_page(self, now: Timestamp, episode: i32, round: i32, step: &Step) -> Page {
        Page {
            time: Time(now),
            episode,
            round,
            level: step.label.clone(),
            person: self.person,
            role: self.role,
            channels: self.channels,
        }
    }
}

/// What paging one step produced.
#[derive(Default)]
pub struct Outcome {
    /// The timeline's words for it, when anyone was paged.
    pub message: Option<String>,
    pub problems: Vec<String>,
    pub pages: Vec<Paged>,
    /// Keys are relative to the step (the climb prefixes them).
    pub notifications: Vec<Notification>,
}

/// Pages the targets of `step` at `now`.
pub fn page(step: &Step, inputs: &Reach, policy: &EscalationPolicy, now: Timestamp) -> Outcome {
    let mut out = Outcome::default();
    let namespace = policy.namespace();
    let mut said = Vec::new();
    for target in step.targets {
        match resolve(target, inputs.schedules, namespace.as_deref(), now) {
            Resolved::Person(member, role) => {
                let role = match step.expert {
                    Some(expert) => format!("{expert} expert, {role}"),
                    None => role,
                };
                if out
                    .pages
                    .iter()
                    .any(|p| p.person.as_deref() == Some(&member.name))
                {
                    continue;
                }
                let channels: Vec<&Arc<Channel>> = inputs
                    .page_channels
                    .iter()
                    .filter(|c| handle_kind(c).is_some())
                    .collect();
                if channels.is_empty() {
                    out.problems.push(format!(
                        "{}: {} ({role}) not paged: no Channel carries pages for this incident",
                        step.heading, member.name
                    ));
                    continue;
                }
                for channel in &channels {
                    let handle = match handle_kind(channel) {
                        Some(HandleKind::Slack) => member.contacts.slack.clone(),
                        Some(HandleKind::Webhook) => member.contacts.webhook.clone(),
                        None => None,
                    };
                    out.notifications.push(message(
                        now,
                        channel,
                        format!("{}: you are paged as {role}", step.heading),
                        Some(Recipient {
                            name: member.name.clone(),
                            role: role.clone(),
                            handle,
                        }),
                    ));
                }
                let refs: Vec<String> = channels.iter().map(|c| channel_ref(c)).collect();
                said.push(format!("{} ({role}) via {}", member.name, refs.join(", ")));
                out.pages.push(Paged {
                    person: Some(member.name.clone()),
                    role,
                    channels: refs.into_iter().take(MAX_PAGE_CHANNELS).collect(),
                });
            }
            Resolved::Channel(name) => {
                match find_channel(
                    inputs.channels,
                    &name,
                    namespace.as_deref(),
                    inputs.operator_namespace,
                ) {
                    Some(channel) => {
                        let reference = channel_ref(channel);
                        out.notifications.push(message(
                            now,
                            channel,
                            format!("{}: the incident needs a responder", step.heading),
                            None,
                        ));
                        said.push(format!("channel {reference}"));
                        out.pages.push(Paged {
                            person: None,
                            role: "channel".to_owned(),
                            channels: vec![reference],
                        });
                    }
                    None => out.problems.push(format!(
                        "{}: Channel {name} of {} does not exist",
                        step.heading,
                        policy_ref(policy)
                    )),
                }
            }
            Resolved::Problem(problem) => {
                out.problems.push(format!("{}: {problem}", step.heading));
            }
        }
    }
    if !said.is_empty() {
        out.message = Some(format!("{}: paged {}", step.heading, said.join("; ")));
    }
    out
}

enum Resolved<'a> {
    Person(&'a Member, String),
    Channel(String),
    Problem(String),
}

/// Whom a target means at `now`.
fn resolve<'a>(
    target: &Target,
    schedules: &'a [Arc<OnCallSchedule>],
    namespace: Option<&str>,
    now: Timestamp,
) -> Resolved<'a> {
    let find = |name: &str| -> Result<Rota<'a>, String> {
        let schedule = schedules
            .iter()
            .find(|s| s.namespace().as_deref() == namespace && s.name_any() == name)
            .ok_or_else(|| format!("OnCallSchedule {name} does not exist"))?;
        Rota::new(&schedule.spec)
            .map_err(|p| format!("OnCallSchedule {name} is not usable: {}", p.join("; ")))
    };
    if let Some(layer) = &target.layer {
        return match find(&layer.schedule) {
            Err(problem) => Resolved::Problem(problem),
            Ok(rota) => match rota.on_call(&layer.layer, now) {
                Some(shift) => Resolved::Person(shift.member, format!("{} on call", layer.layer)),
                None => Resolved::Problem(format!(
                    "nobody is on call for {}/{}",
                    layer.schedule, layer.layer
                )),
            },
        };
    }
    if let Some(person) = &target.person {
        return match find(&person.schedule) {
            Err(problem) => Resolved::Problem(problem),
            Ok(rota) => match rota.member(&person.member) {
                Some(member) => Resolved::Person(member, "named in the policy".to_owned()),
                None => Resolved::Problem(format!(
                    "OnCallSchedule {} has no member {}",
                    person.schedule, person.member
                )),
            },
        };
    }
    match &target.channel {
        Some(name) => Resolved::Channel(name.clone()),
        None => Resolved::Problem("a target names nobody".to_owned()),
    }
}

enum HandleKind {
    Slack,
    Webhook,
}

/// The handle a channel's pages carry; None for destinations that do not page people (PagerDuty
/// runs its own escalation).
fn handle_kind(channel: &Channel) -> Option<HandleKind> {
    match channel.spec.destination()? {
        Destination::Slack(_) => Some(HandleKind::Slack),
        Destination::Webhook(_) => Some(HandleKind::Webhook),
        Destination::PagerDuty(_) => None,
    }
}

fn channel_ref(channel: &Channel) -> String {
    format!(
        "{}/{}",
        channel.namespace().unwrap_or_default(),
        channel.name_any()
    )
}

fn message(
    now: Timestamp,
    channel: &Channel,
    summary: String,
    recipient: Option<Recipient>,
) -> Notification {
    let who = recipient.as_ref().map_or("", |r| r.name.as_str());
    Notification {
        key: fingerprint(&[who, &channel.uid().unwrap_or_default()]),
        channel: channel_ref(channel),
        event: NotificationEvent::Paged,
        time: Time(now),
        summary,
        actor: None,
        recipient,
    }
}
