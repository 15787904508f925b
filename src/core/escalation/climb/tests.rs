use std::{sync::Arc, time::Duration};

use jiff::Timestamp;
use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::api::{EscalationPolicy, Incident, IncidentStatus, NotificationEvent, ResponseMetrics};

/// 2026-11-30 (a Monday) 10:00 UTC.
fn t(minutes: i64) -> Timestamp {
    Timestamp::from_second(1_796_032_800 + minutes * 60).expect("time")
}

fn schedule() -> Arc<OnCallSchedule> {
    Arc::new(
        serde_json::from_value(json!({
            "apiVersion": "incident.dev/v1alpha1", "kind": "OnCallSchedule",
            "metadata": { "name": "team", "namespace": "shop" },
            "spec": { "timeZone": "UTC",
                "members": [
                    { "name": "alex", "contacts": { "slack": "U0ALEX", "webhook": "+1555001" } },
                    { "name": "sam", "contacts": { "webhook": "+1555002" } },
                    { "name": "casey" }, { "name": "robin" } ],
                "layers": [
                    // Daily turns at 12:00: alex until 2026-11-30 12:00 UTC, then sam.
                    { "name": "primary", "members": ["sam", "alex"], "rotationDays": 1,
                      "handoff": "12:00", "start": "2026-11-28" },
                    { "name": "secondary", "members": ["sam"], "start": "2026-11-01" },
                    { "name": "manager", "members": ["casey"], "start": "2026-11-01" },
                    { "name": "payments", "members": ["robin"], "start": "2026-11-01" } ] },
        }))
        .expect("a schedule"),
    )
}

fn policy(extra: Value) -> Arc<EscalationPolicy> {
    let mut spec = json!({
        "levels": [
            { "name": "primary", "after": "5m", "notify": [ { "layer": { "schedule": "team", "layer": "primary" } } ] },
            { "name": "secondary", "after": "5m", "notify": [ { "layer": { "schedule": "team", "layer": "secondary" } } ] },
            { "name": "manager", "after": "5m", "severities": ["P0", "P1"],
              "notify": [ { "layer": { "schedule": "team", "layer": "manager" } }, { "channel": "leads" } ] } ],
        "experts": [ { "name": "payments", "selector": { "matchLabels": { "component": "payments" } },
            "notify": [ { "layer": { "schedule": "team", "layer": "payments" } } ] } ],
    });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    Arc::new(
        serde_json::from_value(json!({
            "apiVersion": "incident.dev/v1alpha1", "kind": "EscalationPolicy",
            "metadata": { "name": "shop", "namespace": "shop" }, "spec": spec,
        }))
        .expect("a policy"),
    )
}

fn channel(name: &str, destination: Value) -> Arc<Channel> {
    let mut spec = destination;
    spec["route"] = json!({});
    Arc::new(
        serde_json::from_value(json!({
            "apiVersion": "incident.dev/v1alpha1", "kind": "Channel",
            "metadata": { "name": name, "namespace": "shop", "uid": format!("uid-{name}") },
            "spec": spec,
        }))
        .expect("a Channel"),
    )
}

fn channels() -> Vec<Arc<Channel>> {
    vec![
        channel(
            "slack",
            json!({ "slack": { "webhook": { "name": "s", "key": "url" } } }),
        ),
        channel(
            "sms",
            json!({ "webhook": { "url": { "name": "w", "key": "url" } } }),
        ),
        channel(
            "leads",
            json!({ "webhook": { "url": { "name": "l", "key": "url" } } }),
        ),
        channel(
            "pd",
            json!({ "pagerduty": { "routingKey": { "name": "p", "key": "key" } } }),
        ),
    ]
}

fn incident(severity: &str, labels: Value) -> Incident {
    serde_json::from_value(json!({
        "apiVersion": "incident.dev/v1alpha1", "kind": "Incident",
        "metadata": { "name": "i", "namespace": "shop", "uid": "inc-1", "labels": labels },
        "spec": { "title": "checkout down", "severity": severity },
    }))
    .expect("an Incident")
}

fn detected(at: Timestamp) -> IncidentStatus {
    IncidentStatus {
        metrics: Some(ResponseMetrics {
            detected_at: Some(Time(at)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The world of one test: the policy, and the channels that carry pages (all but `leads` here).
struct World {
    choice: Choice,
    clock: Clock,
    schedules: Vec<Arc<OnCallSchedule>>,
    channels: Vec<Arc<Channel>>,
}

impl World {
    fn new(policy: Arc<EscalationPolicy>, severity: Severity) -> World {
        let clock = Clock::new(Some(&policy), severity, Duration::from_secs(3600));
        World {
            choice: Choice::Policy(policy),
            clock,
            schedules: vec![schedule()],
            channels: channels(),
        }
    }

    fn advance(&self, incident: &Incident, status: &mut IncidentStatus, now: Timestamp) -> Outcome {
        let page_channels: Vec<_> = self
            .channels
            .iter()
            .filter(|c| c.metadata.name.as_deref() != Some("leads"))
            .cloned()
            .collect();
        let inputs = Inputs {
            choice: &self.choice,
            clock: &self.clock,
            schedules: &self.schedules,
            page_channels: &page_channels,
            channels: &self.channels,
            operator_namespace: None,
        };
        advance(incident, status, &inputs, now)
    }
}

use crate::api::Severity;

/// (level, person) of each page, in order.
fn pages(status: &IncidentStatus) -> Vec<(String, Option<String>)> {
    status
        .escalation
        .as_ref()
        .map(|e| {
            e.pages
                .iter()
                .map(|p| (p.level.clone(), p.person.clone()))
                .collect()
        })
        .unwrap_or_default()
}

fn owned(level: &str, person: Option<&str>) -> (String, Option<String>) {
    (level.to_owned(), person.map(str::to_owned))
}

#[test]
fn nobody_answers_so_each_level_is_paged_at_its_deadline_then_the_chain_is_exhausted() {
    let world = World::new(policy(json!({})), Severity::P1);
    let incident = incident("P1", json!({}));
    let mut status = detected(t(0));

    let first = world.advance(&incident, &mut status, t(0));
    assert_eq!(pages(&status), [owned("primary", Some("alex"))]);
    let esc = status.escalation.clone().expect("escalation");
    assert_eq!(esc.state, EscalationState::Climbing);
    assert_eq!(esc.next_at, Some(Time(t(5))));
    assert_eq!(esc.next_level.as_deref(), Some("secondary"));
    assert_eq!(first.wake_at, Some(t(5)));
    // alex has a Slack id and a webhook handle; PagerDuty does not page people.
    let to: Vec<(&str, Option<&str>)> = first
        .pages
        .iter()
        .map(|n| {
            (
                n.channel.as_str(),
                n.recipient.as_ref().and_then(|r| r.handle.as_deref()),
            )
        })
        .collect();
    assert_eq!(
        to,
        [
            ("shop/slack", Some("U0ALEX")),
            ("shop/sms", Some("+1555001"))
        ]
    );
    assert!(
        first
            .pages
            .iter()
            .all(|n| n.event == NotificationEvent::Paged)
    );

    // Before the deadline nothing happens, and nothing is written again.
    let before = status.clone();
    let early = world.advance(&incident, &mut status, t(4));
    assert_eq!(status, before);
    assert!(early.pages.is_empty() && early.notices.is_empty());

    world.advance(&incident, &mut status, t(5));
    world.advance(&incident, &mut status, t(10));
    assert_eq!(
        pages(&status),
        [
            owned("primary", Some("alex")),
            owned("secondary", Some("sam")),
            owned("manager", Some("casey")),
            owned("manager", None),
        ]
    );
    let last = world.advance(&incident, &mut status, t(15));
    let esc = status.escalation.clone().expect("escalation");
    assert_eq!(esc.state, EscalationState::Exhausted);
    assert_eq!(esc.next_at, None);
    assert_eq!(last.news.len(), 1, "the channels hear that nobody answered");
    assert_eq!(last.wake_at, None);
}

#[test]
fn the_manager_level_is_kept_for_p0_and_p1_only() {
    let world = World::new(policy(json!({})), Severity::P2);
    let incident = incident("P2", json!({}));
    let mut status = detected(t(0));
    for minute in [0, 5, 10, 15] {
        world.advance(&incident, &mut status, t(minute));
    }
    assert_eq!(
        pages(&status),
        [
            owned("primary", Some("alex")),
            owned("secondary", Some("sam"))
        ]
    );
    assert_eq!(
        status.escalation.map(|e| e.state),
        Some(EscalationState::Exhausted)
    );
}

#[test]
fn an_acknowledgment_in_the_middle_stops_the_climb() {
    let world = World::new(policy(json!({})), Severity::P1);
    let mut incident = incident("P1", json!({}));
    let mut status = detected(t(0));
    world.advance(&incident, &mut status, t(0));
    world.advance(&incident, &mut status, t(5));
    incident.spec.acknowledgment = Some(crate::api::Acknowledgment {
        by: "sam".into(),
        note: None,
    });
    let after = world.advance(&incident, &mut status, t(6));
    assert_eq!(after.wake_at, None);
    world.advance(&incident, &mut status, t(60));
    assert_eq!(
        pages(&status).len(),
        2,
        "nobody paged after the acknowledgment"
    );
    let esc = status.escalation.expect("escalation");
    assert_eq!(esc.state, EscalationState::Acknowledged);
    assert_eq!(esc.next_at, None);
}

#[test]
fn a_domain_expert_is_paged_with_the_first_level_for_a_labelled_incident() {
    let world = World::new(policy(json!({})), Severity::P1);
    let labelled = incident("P1", json!({ "component": "payments" }));
    let mut status = detected(t(0));
    world.advance(&labelled, &mut status, t(0));
    assert_eq!(
        pages(&status),
        [
            owned("primary", Some("alex")),
            owned("expert:payments", Some("robin"))
        ]
    );
    let plain = incident("P1", json!({}));
    let mut status = detected(t(0));
    world.advance(&plain, &mut status, t(0));
    assert_eq!(pages(&status), [owned("primary", Some("alex"))]);
}

#[test]
fn after_a_long_outage_every_missed_level_is_paged_once_in_order() {
    let world = World::new(policy(json!({ "repeat": 1 })), Severity::P1);
    let incident = incident("P1", json!({}));
    let mut status = detected(t(0));
    world.advance(&incident, &mut status, t(0));
    // The operator was down from 0:01 to 0:12: secondary (0:05) and manager (0:10) are due.
    let caught_up = world.advance(&incident, &mut status, t(12));
    assert_eq!(
        pages(&status),
        [
            owned("primary", Some("alex")),
            owned("secondary", Some("sam")),
            owned("manager", Some("casey")),
            owned("manager", None),
        ]
    );
    assert_eq!(
        caught_up.wake_at,
        Some(t(15)),
        "round 2 starts on the chain's own clock"
    );
    let again = world.advance(&incident, &mut status, t(12));
    assert!(again.pages.is_empty(), "a repeated step pages nobody twice");
    let keys: std::collections::BTreeSet<_> =
        caught_up.pages.iter().map(|n| n.key.clone()).collect();
    assert_eq!(keys.len(), caught_up.pages.len(), "one key per page");
}

#[test]
fn the_second_round_pages_whoever_is_on_call_then() {
    // Daily primary handoff at 12:00 UTC: alex before, sam after.
    let world = World::new(
        policy(json!({ "repeat": 1, "levels": [
            { "name": "primary", "after": "3h", "notify": [ { "layer": { "schedule": "team", "layer": "primary" } } ] } ] })),
        Severity::P1,
    );
    let incident = incident("P1", json!({}));
    let mut status = detected(t(0));
    world.advance(&incident, &mut status, t(0));
    world.advance(&incident, &mut status, t(180));
    assert_eq!(
        pages(&status),
        [
            owned("primary", Some("alex")),
            owned("primary", Some("sam"))
        ],
        "alex stays paged; the next step goes to sam, on call since 12:00"
    );
}

#[test]
fn reopening_starts_a_new_climb_that_someone_must_own_again() {
    let world = World::new(policy(json!({})), Severity::P1);
    let mut incident = incident("P1", json!({}));
    let mut status = detected(t(0));
    world.advance(&incident, &mut status, t(0));
    incident.spec.acknowledgment = Some(crate::api::Acknowledgment {
        by: "alex".into(),
        note: None,
    });
    world.advance(&incident, &mut status, t(1));
    incident.spec.resolution = Some(crate::api::Resolution {
        root_cause: None,
        summary: "rolled back".into(),
        by: "alex".into(),
    });
    world.advance(&incident, &mut status, t(2));
    assert_eq!(
        status.escalation.as_ref().map(|e| e.state),
        Some(EscalationState::Resolved)
    );
    incident.spec.resolution = None;
    world.advance(&incident, &mut status, t(30));
    let esc = status.escalation.clone().expect("escalation");
    assert_eq!((esc.episode, esc.state), (2, EscalationState::Climbing));
    assert_eq!(esc.next_at, Some(Time(t(35))));
    assert_eq!(pages(&status).len(), 2, "the primary is paged again");
    // alex's old acknowledgment does not stop it; taking command does.
    world.advance(&incident, &mut status, t(35));
    assert_eq!(pages(&status).len(), 3);
    incident.spec.commander = Some("alex".into());
    world.advance(&incident, &mut status, t(36));
    assert_eq!(
        status.escalation.map(|e| e.state),
        Some(EscalationState::Acknowledged)
    );
}

#[test]
fn what_cannot_be_paged_is_said_and_the_climb_goes_on() {
    let mut world = World::new(
        policy(json!({ "levels": [
            { "name": "primary", "after": "5m", "notify": [ { "layer": { "schedule": "gone", "layer": "primary" } } ] },
            { "name": "secondary", "notify": [ { "layer": { "schedule": "team", "layer": "secondary" } } ] } ] })),
        Severity::P1,
    );
    let incident = incident("P1", json!({}));
    let mut status = detected(t(0));
    let out = world.advance(&incident, &mut status, t(0));
    assert_eq!(out.notices.len(), 1);
    assert_eq!(out.notices[0].reason, "PageFailed");
    assert!(
        out.notices[0]
            .message
            .contains("OnCallSchedule gone does not exist"),
        "{}",
        out.notices[0].message
    );
    world.channels.clear();
    let out = world.advance(&incident, &mut status, t(5));
    assert!(
        out.notices[0].message.contains("no Channel carries pages"),
        "{}",
        out.notices[0].message
    );
    assert_eq!(status.escalation.map(|e| e.steps), Some(2));
}

#[test]
fn a_missing_policy_is_said_once() {
    let mut world = World::new(policy(json!({})), Severity::P1);
    world.choice = Choice::Missing("gone".into());
    let incident = incident("P1", json!({}));
    let mut status = detected(t(0));
    let first = world.advance(&incident, &mut status, t(0));
    let again = world.advance(&incident, &mut status, t(1));
    assert_eq!(first.notices.len(), 1);
    assert!(again.notices.is_empty());
    assert_eq!(
        status.escalation.map(|e| e.state),
        Some(EscalationState::PolicyNotFound)
    );
}

#[test]
fn a_p3_opened_outside_business_hours_waits_for_the_morning() {
    let hours = json!({ "businessHours": { "timeZone": "UTC", "start": "09:00", "end": "17:00" } });
    let world = World::new(policy(hours), Severity::P3);
    let incident = incident("P3", json!({}));
    // Monday 20:00 UTC: closed until Tuesday 09:00.
    let night = t(10 * 60);
    let mut status = detected(night);
    let out = world.advance(&incident, &mut status, night);
    let esc = status.escalation.clone().expect("escalation");
    assert_eq!(esc.state, EscalationState::Waiting);
    let morning = t(23 * 60);
    assert_eq!(esc.next_at, Some(Time(morning)));
    assert_eq!(out.wake_at, Some(morning));
    assert!(pages(&status).is_empty());
    world.advance(&incident, &mut status, morning);
    assert_eq!(
        pages(&status),
        [owned("primary", Some("sam"))],
        "on call Tuesday morning"
    );
    // The next level waits 5 business minutes.
    assert_eq!(
        status.escalation.and_then(|e| e.next_at),
        Some(Time(t(23 * 60 + 5)))
    );
}

proptest! {
    /// However the reconciles fall (a crash skips some), each step is paged exactly once, in
    /// order, at or after its deadline, and none after the acknowledgment.
    #[test]
    fn each_step_is_paged_once_in_order_whenever_the_reconciles_happen(
        mut minutes in proptest::collection::vec(0i64..40, 1..12),
        ack_at in proptest::option::of(0i64..40),
    ) {
        minutes.sort();
        let world = World::new(policy(json!({ "repeat": 1 })), Severity::P1);
        let mut incident = incident("P1", json!({}));
        let mut status = detected(t(0));
        for minute in &minutes {
            if ack_at.is_some_and(|a| a <= *minute) {
                incident.spec.acknowledgment = Some(crate::api::Acknowledgment { by: "x".into(), note: None });
            }
            world.advance(&incident, &mut status, t(*minute));
        }
        let last = *minutes.last().unwrap_or(&0);
        // Steps due by the last reconcile before the acknowledgment.
        let horizon = match ack_at {
            Some(a) => minutes.iter().filter(|m| **m < a).max().copied(),
            None => Some(last),
        };
        let expected_steps = horizon.map_or(0, |h| (h / 5 + 1).min(6));
        let levels: Vec<String> = status
            .escalation
            .as_ref()
            .map(|e| e.pages.iter().filter(|p| p.person.is_some()).map(|p| p.level.clone()).collect())
            .unwrap_or_default();
        let chain = ["primary", "secondary", "manager", "primary", "secondary", "manager"];
        prop_assert_eq!(levels, chain[..expected_steps as usize].to_vec());
    }
}
