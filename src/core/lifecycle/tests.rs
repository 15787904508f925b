//! Unit and property tests of the lifecycle update.
//!
//! The tests drive [`update`] the way the controller does: the status it returns is stored back
//! into the incident (through a JSON round trip, as the API server would store and return it)
//! before the next call, and every spec edit bumps `metadata.generation`.

use std::{collections::BTreeSet, time::Duration};

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use proptest::prelude::*;

use super::{LifecycleConfig, Observation, Related, RunbookProblem, Update, allowed, update};
use crate::api::{
    Acknowledgment, ActionItem, EntryType, Incident, IncidentSpec, IncidentStatus, MAX_NOTES,
    MAX_TIMELINE, Note, Phase, Postmortem, Resolution, RunbookRef, Severity, TimelineEntry,
    metadata::ACTOR_ANNOTATION,
};

const MIN: i64 = 60;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;
/// Creation time of every test incident.
const CREATED: i64 = 1_800_000_000;
const UID: &str = "7c1f6a52-3b7e-4c36-9d1e-0a5b2f8e4d11";
const PEOPLE: [&str; 4] = ["ana", "bo", "carol", "dan"];

/// `seconds` after the test incident was created.
fn t(seconds: i64) -> Timestamp {
    Timestamp::from_second(CREATED + seconds).expect("valid timestamp")
}

fn spec(severity: Severity) -> IncidentSpec {
    IncidentSpec {
        title: "Database down".to_owned(),
        severity,
        description: Some("checkout fails with 503".to_owned()),
        commander: Some("ana".to_owned()),
        affected: Vec::new(),
        acknowledgment: None,
        resolution: None,
        notes: Vec::new(),
        postmortem: None,
        actions: Vec::new(),
        signals: Vec::new(),
        runbook_ref: None,
        approvals: Vec::new(),
    }
}

fn incident(severity: Severity) -> Incident {
    let mut incident = Incident::new("db-down", spec(severity));
    incident.metadata.uid = Some(UID.to_owned());
    incident.metadata.namespace = Some("payments".to_owned());
    incident.metadata.generation = Some(1);
    incident.metadata.creation_timestamp = Some(Time(t(0)));
    incident
}

fn ack(by: &str) -> Option<Acknowledgment> {
    Some(Acknowledgment {
        by: by.to_owned(),
        note: Some("looking".to_owned()),
    })
}

fn resolution(root_cause: Option<&str>) -> Option<Resolution> {
    Some(Resolution {
        root_cause: root_cause.map(str::to_owned),
        summary: "rotated the certificate".to_owned(),
        by: "bo".to_owned(),
    })
}

fn note(author: &str, text: &str) -> Note {
    Note {
        author: author.to_owned(),
        text: text.to_owned(),
    }
}

fn completed_postmortem() -> Option<Postmortem> {
    Some(Postmortem {
        url: Some("https://wiki.example.com/pm/42".to_owned()),
        completed: true,
        action_items: vec![
            ActionItem {
                title: "alert on certificate expiry".to_owned(),
                owner: Some("bo".to_owned()),
                done: false,
            },
            ActionItem {
                title: "rotate certificates automatically".to_owned(),
                owner: None,
                done: true,
            },
        ],
    })
}

/// What the API server does to a status: serialize it and read it back.
fn round_trip(status: &IncidentStatus) -> IncidentStatus {
    let json = serde_json::to_value(status).expect("status serializes");
    serde_json::from_value(json).expect("status deserializes")
}

/// The controller loop around `decide`, with a hand on the clock.
struct Sim {
    incident: Incident,
    related: Related,
    config: LifecycleConfig,
    now: Timestamp,
}

impl Sim {
    fn new(severity: Severity) -> Self {
        Self {
            incident: incident(severity),
            related: Related::default(),
            config: LifecycleConfig::default(),
            now: t(0),
        }
    }

    fn with_config(mut self, config: LifecycleConfig) -> Self {
        self.config = config;
        self
    }

    /// Edits the spec; the API server bumps the generation when it changed.
    fn edit(&mut self, change: impl FnOnce(&mut IncidentSpec)) {
        let before = self.incident.spec.clone();
        change(&mut self.incident.spec);
        if self.incident.spec != before {
            let generation = self.incident.metadata.generation.get_or_insert(0);
            *generation += 1;
        }
    }

    fn set_actor(&mut self, actor: Option<&str>) {
        let annotations = self.incident.metadata.annotations.get_or_insert_default();
        match actor {
            Some(actor) => {
                annotations.insert(ACTOR_ANNOTATION.to_owned(), actor.to_owned());
            }
            None => {
                annotations.remove(ACTOR_ANNOTATION);
            }
        }
    }

    /// Decides at `now` without storing the result (as if the controller crashed before writing).
    fn peek(&self, now: Timestamp) -> Update {
        update(&self.incident, &self.related, now, &self.config)
    }

    /// Reconciles at the current time and stores the new status.
    fn reconcile(&mut self) -> Update {
        let decision = self.peek(self.now);
        self.incident.status = Some(round_trip(&decision.status));
        decision
    }

    /// Reconciles at `seconds` after creation.
    fn at(&mut self, seconds: i64) -> Update {
        self.now = t(seconds);
        self.reconcile()
    }

    fn status(&self) -> &IncidentStatus {
        self.incident
            .status
            .as_ref()
            .expect("reconciled at least once")
    }

    fn phase(&self) -> Option<Phase> {
        self.status().phase
    }

    fn entries(&self, type_: EntryType) -> Vec<&TimelineEntry> {
        self.status()
            .timeline
            .iter()
            .filter(|e| e.type_ == type_)
            .collect()
    }

    fn types_since(&self, index: usize) -> Vec<EntryType> {
        self.status().timeline[index..]
            .iter()
            .map(|e| e.type_)
            .collect()
    }

    fn condition(&self, type_: &str) -> &Condition {
        condition(self.status(), type_)
    }
}

fn condition<'a>(status: &'a IncidentStatus, type_: &str) -> &'a Condition {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {:?}", status.conditions))
}

fn reasons(decision: &Update) -> Vec<&'static str> {
    decision.notices.iter().map(|n| n.reason).collect()
}

fn keys(decision: &Update) -> Vec<String> {
    decision.notices.iter().map(|n| n.key.clone()).collect()
}

fn assert_condition(sim: &Sim, type_: &str, status: &str, reason: &str) {
    let c = sim.condition(type_);
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        (status, reason),
        "{type_}: {c:?}"
    );
}

/// Asserts that deciding at `seconds` changes nothing and emits nothing.
fn assert_quiet_at(sim: &mut Sim, seconds: i64) {
    let before = sim.status().clone();
    let decision = sim.at(seconds);
    assert_eq!(decision.notices, Vec::new(), "notices at +{seconds}s");
    assert_eq!(
        decision.observations,
        Vec::new(),
        "observations at +{seconds}s"
    );
    assert_eq!(decision.status, before, "status changed at +{seconds}s");
}

// ---------------------------------------------------------------------------------------------
// Detection
// ---------------------------------------------------------------------------------------------

#[test]
fn a_new_incident_is_detected_with_one_entry_one_notice_and_a_respond_by_deadline() {
    let mut sim = Sim::new(Severity::P0);
    let decision = sim.at(2);

    assert_eq!(sim.phase(), Some(Phase::Detected));
    let timeline = &sim.status().timeline;
    assert_eq!(timeline.len(), 1);
    assert_eq!(timeline[0].type_, EntryType::Detected);
    assert_eq!(
        timeline[0].message,
        "P0 incident opened: Database down (commander ana)"
    );
    // The Detected entry carries the detection (creation) time, not the first reconcile's.
    assert_eq!(timeline[0].time, Time(t(0)));
    let sla = sim.status().sla.as_ref().expect("sla");
    assert_eq!(sla.respond_by, Time(t(15 * MIN)));
    assert!(!sla.breached);
    assert_eq!(sla.postmortem_due_by, None);
    assert_eq!(decision.notices.len(), 1);
    assert_eq!(decision.notices[0].reason, "Detected");
    assert!(!decision.notices[0].warning);
    assert_eq!(decision.wake_at, Some(t(15 * MIN)));
    assert_eq!(decision.observations, Vec::new());

    let metrics = sim.status().metrics.as_ref().expect("metrics");
    assert_eq!(
        metrics.detected_at,
        Some(Time(t(0))),
        "detection is creation"
    );
    assert_eq!(metrics.acknowledged_at, None);
    assert_eq!(metrics.resolved_at, None);
    assert_eq!(sim.status().last_update_time, Some(Time(t(0))));
    assert_eq!(sim.status().observed_generation, Some(1));
}

#[test]
fn a_new_incident_has_every_condition_in_its_initial_state() {
    let mut sim = Sim::new(Severity::P2);
    sim.at(0);
    assert_eq!(sim.status().conditions.len(), 6);
    assert_condition(&sim, "Acknowledged", "False", "AwaitingAcknowledgment");
    assert_condition(&sim, "Resolved", "False", "Unresolved");
    assert_condition(&sim, "AcknowledgeOverdue", "False", "WithinResponseTime");
    assert_condition(&sim, "UpdateOverdue", "False", "UpToDate");
    assert_condition(&sim, "PostmortemOverdue", "False", "OnTime");
    assert_condition(&sim, "AffectedFound", "True", "AllFound");
    for c in &sim.status().conditions {
        assert_eq!(c.observed_generation, Some(1), "{c:?}");
        assert_eq!(c.last_transition_time, Time(t(0)), "{c:?}");
    }
}

#[test]
fn respond_by_and_the_first_wake_up_follow_the_severity() {
    let cases = [
        (Severity::P0, 15 * MIN, 15 * MIN),
        // P1 needs an update every 30m, which comes before its 1h response time.
        (Severity::P1, HOUR, 30 * MIN),
        (Severity::P2, 4 * HOUR, 4 * HOUR),
        (Severity::P3, DAY, DAY),
    ];
    for (severity, respond_by, wake) in cases {
        let mut sim = Sim::new(severity);
        let decision = sim.at(0);
        let sla = sim.status().sla.as_ref().expect("sla");
        assert_eq!(sla.respond_by, Time(t(respond_by)), "{severity}");
        assert_eq!(decision.wake_at, Some(t(wake)), "{severity}");
    }
}

#[test]
fn an_incident_first_seen_after_its_deadline_escalates_at_once() {
    let mut sim = Sim::new(Severity::P2);
    let decision = sim.at(5 * HOUR);
    assert_eq!(
        sim.types_since(0),
        [EntryType::Detected, EntryType::Escalated]
    );
    assert_eq!(reasons(&decision), ["Detected", "AcknowledgeOverdue"]);
    assert_eq!(
        sim.status()
            .metrics
            .as_ref()
            .and_then(|m| m.detected_at.clone()),
        Some(Time(t(0)))
    );
    assert_condition(&sim, "AcknowledgeOverdue", "True", "ResponseTimeExceeded");
}

#[test]
fn sub_second_decision_times_are_cut_to_the_second() {
    let mut sim = Sim::new(Severity::P2);
    sim.now = t(10)
        .checked_add(jiff::SignedDuration::from_millis(750))
        .expect("valid");
    let decision = sim.reconcile();
    let conditions = &decision.status.conditions;
    assert!(
        conditions
            .iter()
            .all(|c| c.last_transition_time == Time(t(10)))
    );
    assert_eq!(
        sim.status(),
        &decision.status,
        "nothing lost in the round trip"
    );
}

// ---------------------------------------------------------------------------------------------
// Acknowledge, resolve, close, reopen
// ---------------------------------------------------------------------------------------------

#[test]
fn acknowledging_sets_the_phase_the_time_to_acknowledge_and_the_condition() {
    let mut sim = Sim::new(Severity::P0);
    sim.at(0);
    sim.edit(|s| s.acknowledgment = ack("bo"));
    let decision = sim.at(7 * MIN);

    assert_eq!(sim.phase(), Some(Phase::Acknowledged));
    let metrics = sim.status().metrics.as_ref().expect("metrics");
    assert_eq!(metrics.acknowledged_at, Some(Time(t(7 * MIN))));
    assert_eq!(metrics.time_to_acknowledge_seconds, Some(7 * MIN));
    assert_condition(&sim, "Acknowledged", "True", "Acknowledged");
    assert_eq!(sim.condition("Acknowledged").message, "Acknowledged by bo");
    assert_eq!(
        sim.condition("Acknowledged").last_transition_time,
        Time(t(7 * MIN))
    );
    let acks = sim.entries(EntryType::Acknowledged);
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].actor.as_deref(), Some("bo"));
    assert_eq!(acks[0].message, "Acknowledged by bo after 420s: looking");
    assert_eq!(reasons(&decision), ["Acknowledged"]);
    assert_eq!(
        decision.observations,
        [Observation::Acknowledged {
            severity: Severity::P0,
            seconds: 420.0
        }]
    );
    assert!(!sim.status().sla.as_ref().expect("sla").breached);
    assert_eq!(sim.status().last_update_time, Some(Time(t(7 * MIN))));
    // The respond-by clock stopped; only the update clock remains.
    assert_eq!(decision.wake_at, Some(t(37 * MIN)));
}

#[test]
fn acknowledging_is_recorded_once() {
    let mut sim = Sim::new(Severity::P2);
    sim.at(0);
    sim.edit(|s| s.acknowledgment = ack("bo"));
    sim.at(MIN);
    assert_quiet_at(&mut sim, 2 * MIN);
    // Handing the acknowledgment to someone else is not a second acknowledgment.
    sim.edit(|s| s.acknowledgment = ack("carol"));
    let decision = sim.at(3 * MIN);
    assert_eq!(decision.notices, Vec::new());
    assert_eq!(sim.entries(EntryType::Acknowledged).len(), 1);
}

#[test]
fn clearing_the_acknowledgment_does_not_unacknowledge() {
    let mut sim = Sim::new(Severity::P2);
    sim.at(0);
    sim.edit(|s| s.acknowledgment = ack("bo"));
    sim.at(MIN);
    sim.edit(|s| s.acknowledgment = None);
    let decision = sim.at(2 * MIN);
    assert_eq!(decision.notices, Vec::new());
    assert_eq!(sim.phase(), Some(Phase::Acknowledged));
    assert_condition(&sim, "Acknowledged", "True", "Acknowledged");
    assert_eq!(sim.entries(EntryType::Acknowledged).len(), 1);
}

/// P1 acknowledged at 10m and resolved with a root cause at 50m.
fn resolved_p1() -> (Sim, usize, Update) {
    let mut sim = Sim::new(Severity::P1);
    sim.at(0);
    sim.edit(|s| s.acknowledgment = ack("bo"));
    sim.at(10 * MIN);
    let before = sim.status().timeline.len();
    sim.edit(|s| s.resolution = resolution(Some("expired TLS certificate")));
    let decision = sim.at(50 * MIN);
    (sim, before, decision)
}

#[test]
fn resolving_records_root_cause_resolution_and_the_postmortem_clock() {
    let (sim, before, decision) = resolved_p1();

    assert_eq!(sim.phase(), Some(Phase::Resolved));
    assert_eq!(
        sim.types_since(before),
        [
            EntryType::RootCauseIdentified,
            EntryType::Resolved,
            EntryType::PostmortemDue
        ]
    );
    let timeline = &sim.status().timeline;
    assert_eq!(timeline[before].message, "expired TLS certificate");
    assert_eq!(timeline[before].actor.as_deref(), Some("bo"));
    assert_eq!(
        timeline[before + 1].message,
        "Resolved by bo after 3000s: rotated the certificate"
    );
    assert_eq!(
        reasons(&decision),
        ["RootCauseIdentified", "Resolved", "PostmortemDue"]
    );
    assert_eq!(
        decision.observations,
        [Observation::Resolved {
            severity: Severity::P1,
            seconds: 3000.0
        }]
    );

    let metrics = sim.status().metrics.as_ref().expect("metrics");
    assert_eq!(metrics.resolved_at, Some(Time(t(50 * MIN))));
    assert_eq!(metrics.time_to_resolve_seconds, Some(50 * MIN));
    let sla = sim.status().sla.as_ref().expect("sla");
    assert_eq!(sla.postmortem_due_by, Some(Time(t(50 * MIN + 48 * HOUR))));
    assert_eq!(decision.wake_at, Some(t(50 * MIN + 48 * HOUR)));

    assert_condition(&sim, "Resolved", "True", "Resolved");
    assert_eq!(
        sim.condition("Resolved").message,
        "Resolved by bo: rotated the certificate"
    );
    assert_condition(&sim, "UpdateOverdue", "False", "UpToDate");
    assert_eq!(
        sim.condition("UpdateOverdue").message,
        "No regular updates required"
    );
    assert_condition(&sim, "PostmortemOverdue", "False", "OnTime");
}

#[test]
fn resolving_is_recorded_once() {
    let (mut sim, _, _) = resolved_p1();
    assert_quiet_at(&mut sim, 51 * MIN);
    assert_quiet_at(&mut sim, 47 * HOUR);
}

#[test]
fn resolving_without_a_root_cause_records_none() {
    for root_cause in [None, Some("   ")] {
        let mut sim = Sim::new(Severity::P2);
        sim.at(0);
        let before = sim.status().timeline.len();
        sim.edit(|s| s.resolution = resolution(root_cause));
        sim.at(HOUR);
        assert_eq!(
            sim.types_since(before),
            [EntryType::Resolved, EntryType::PostmortemDue],
            "{root_cause:?}"
        );
    }
}

#[test]
fn a_root_cause_found_after_resolution_is_recorded_once() {
    let mut sim = Sim::new(Severity::P2);
    sim.at(0);
    sim.edit(|s| s.resolution = resolution(None));
    sim.at(HOUR);
    sim.edit(|s| s.resolution = resolution(Some("bad config push")));
    let decision = sim.at(2 * HOUR);
    assert_eq!(reasons(&decision), ["RootCauseIdentified"]);
    assert_eq!(sim.entries(EntryType::Resolved).len(), 1);
    assert_quiet_at(&mut sim, 3 * HOUR);
}

#[test]
fn completing_the_postmortem_closes_the_incident() {
    let (mut sim, _, _) = resolved_p1();
    sim.edit(|s| s.postmortem = completed_postmortem());
    let decision = sim.at(20 * HOUR);

    assert_eq!(sim.phase(), Some(Phase::Closed));
    let metrics = sim.status().metrics.as_ref().expect("metrics");
    assert_eq!(metrics.closed_at, Some(Time(t(20 * HOUR))));
    let closed = sim.entries(EntryType::Closed);
    assert_eq!(closed.len(), 1);
    assert_eq!(
        closed[0].message,
        "Closed: post-mortem completed, 1 action item(s) open"
    );
    assert_eq!(reasons(&decision), ["Closed"]);
    assert_eq!(
        sim.status().sla.as_ref().expect("sla").postmortem_due_by,
        None
    );
    assert_condition(&sim, "PostmortemOverdue", "False", "OnTime");
    assert_eq!(
        sim.condition("PostmortemOverdue").message,
        "No post-mortem pending"
    );
    assert_eq!(decision.wake_at, None, "a closed incident has no clocks");
    assert_quiet_at(&mut sim, 100 * DAY);
}

#[test]
fn resolving_with_the_postmortem_already_complete_closes_at_once() {
    let mut sim = Sim::new(Severity::P3);
    sim.at(0);
    sim.edit(|s| s.postmortem = completed_postmortem());
    sim.at(MIN);
    assert_eq!(sim.phase(), Some(Phase::Detected));
    sim.edit(|s| s.resolution = resolution(None));
    sim.at(2 * MIN);
    assert_eq!(sim.phase(), Some(Phase::Closed));
}

#[test]
fn clearing_the_resolution_reopens() {
    let (mut sim, _, _) = resolved_p1();
    sim.edit(|s| s.resolution = None);
    let decision = sim.at(2 * HOUR);

    assert_eq!(
        sim.phase(),
        Some(Phase::Acknowledged),
        "it stays acknowledged"
    );
    let reopened = sim.entries(EntryType::Reopened);
    assert_eq!(reopened.len(), 1);
    assert_eq!(
        reopened[0].message,
        "Reopened: the resolution was withdrawn"
    );
    assert_eq!(reopened[0].actor.as_deref(), Some("ana"), "the commander");
    assert_eq!(reasons(&decision), ["Reopened"]);
    assert!(decision.notices[0].warning);
    let metrics = sim.status().metrics.as_ref().expect("metrics");
    assert_eq!(metrics.resolved_at, None);
    assert_eq!(metrics.time_to_resolve_seconds, None);
    assert_condition(&sim, "Resolved", "False", "Unresolved");
    assert_eq!(
        sim.status().sla.as_ref().expect("sla").postmortem_due_by,
        None
    );
    // The update clock runs again from the reopening.
    assert_eq!(sim.status().last_update_time, Some(Time(t(2 * HOUR))));
    assert_eq!(decision.wake_at, Some(t(2 * HOUR + 30 * MIN)));
    assert_quiet_at(&mut sim, 2 * HOUR + MIN);
}

#[test]
fn reopening_an_unacknowledged_incident_returns_it_to_detected() {
    let mut sim = Sim::new(Severity::P3);
    sim.at(0);
    sim.edit(|s| s.resolution = resolution(None));
    sim.at(HOUR);
    sim.edit(|s| s.resolution = None);
    sim.at(2 * HOUR);
    assert_eq!(sim.phase(), Some(Phase::Detected));
    assert_condition(&sim, "Acknowledged", "False", "AwaitingAcknowledgment");
}

#[test]
fn clearing_the_resolution_of_a_closed_incident_reopens_it() {
    let (mut sim, _, _) = resolved_p1();
    sim.edit(|s| s.postmortem = completed_postmortem());
    sim.at(20 * HOUR);
    sim.edit(|s| s.resolution = None);
    let decision = sim.at(21 * HOUR);
    assert_eq!(sim.phase(), Some(Phase::Acknowledged));
    assert_eq!(reasons(&decision), ["Reopened"]);
    let metrics = sim.status().metrics.as_ref().expect("metrics");
    assert_eq!(metrics.closed_at, None);
    assert_eq!(metrics.resolved_at, None);
}

#[test]
fn uncompleting_the_postmortem_moves_a_closed_incident_back_to_resolved() {
    let (mut sim, _, _) = resolved_p1();
    sim.edit(|s| s.postmortem = completed_postmortem());
    sim.at(20 * HOUR);
    sim.edit(|s| {
        if let Some(p) = s.postmortem.as_mut() {
            p.completed = false;
        }
    });
    let decision = sim.at(21 * HOUR);
    assert_eq!(sim.phase(), Some(Phase::Resolved));
    assert_eq!(reasons(&decision), ["Reopened"]);
    assert_eq!(
        sim.status().timeline.last().map(|e| e.message.as_str()),
        Some("Post-mortem reopened")
    );
    assert_eq!(
        sim.status().sla.as_ref().expect("sla").postmortem_due_by,
        Some(Time(t(50 * MIN + 48 * HOUR)))
    );
    assert_eq!(decision.wake_at, Some(t(50 * MIN + 48 * HOUR)));
}

#[test]
fn re_resolving_starts_a_new_postmortem_clock() {
    let (mut sim, _, _) = resolved_p1();
    sim.edit(|s| s.resolution = None);
    sim.at(2 * HOUR);
    sim.edit(|s| s.resolution = resolution(Some("expired TLS certificate")));
    let decision = sim.at(3 * HOUR);
    assert_eq!(
        reasons(&decision),
        ["Resolved", "PostmortemDue"],
        "same cause"
    );
    assert_eq!(sim.entries(EntryType::Resolved).len(), 2);
    assert_eq!(
        sim.status().sla.as_ref().expect("sla").postmortem_due_by,
        Some(Time(t(51 * HOUR)))
    );
}

// ---------------------------------------------------------------------------------------------
// Clocks
// ---------------------------------------------------------------------------------------------

#[test]
fn an_unacknowledged_incident_past_respond_by_escalates_exactly_once() {
    let mut sim = Sim::new(Severity::P2);
    sim.at(0);
    let decision = sim.at(4 * HOUR - 1);
    assert_eq!(decision.notices, Vec::new());
    assert_eq!(decision.wake_at, Some(t(4 * HOUR)));
    assert_condition(&sim, "AcknowledgeOverdue", "False", "WithinResponseTime");

    let decision = sim.at(4 * HOUR);
    let escalated = sim.entries(EntryType::Escalated);
    assert_eq!(escalated.len(), 1);
    assert_eq!(
        escalated[0].message,
        "Not acknowledged within the P2 response time of 4h"
    );
    assert_eq!(decision.notices.len(), 1);
    assert_eq!(decision.notices[0].reason, "AcknowledgeOverdue");
    assert!(decision.notices[0].warning);
    assert_eq!(
        decision.observations,
        [Observation::Overdue {
            severity: Severity::P2,
            clock: "acknowledge"
        }]
    );
    assert_condition(&sim, "AcknowledgeOverdue", "True", "ResponseTimeExceeded");
    assert_eq!(
        sim.condition("AcknowledgeOverdue").last_transition_time,
        Time(t(4 * HOUR))
    );
    assert!(sim.status().sla.as_ref().expect("sla").breached);
    assert_eq!(decision.wake_at, None);
    assert_eq!(sim.phase(), Some(Phase::Detected));

    for later in [4 * HOUR, 4 * HOUR + 1, 5 * HOUR, 30 * DAY, 3650 * DAY] {
        assert_quiet_at(&mut sim, later);
    }
    assert_eq!(sim.entries(EntryType::Escalated).len(), 1);
}

#[test]
fn acknowledging_late_clears_the_overdue_condition_but_keeps_the_breach() {
    let mut sim = Sim::new(Severity::P2);
    sim.at(0);
    sim.at(4 * HOUR);
    sim.edit(|s| s.acknowledgment = ack("bo"));
    let decision = sim.at(5 * HOUR);
    assert_eq!(reasons(&decision), ["Acknowledged"]);
    assert_eq!(sim.phase(), Some(Phase::Acknowledged));
    assert_condition(&sim, "AcknowledgeOverdue", "False", "WithinResponseTime");
    assert!(sim.status().sla.as_ref().expect("sla").breached);
    assert_eq!(sim.entries(EntryType::Escalated).len(), 1);
}

#[test]
fn acknowledging_in_time_never_escalates() {
    let mut sim = Sim::new(Severity::P0);
    sim.at(0);
    sim.edit(|s| s.acknowledgment = ack("bo"));
    sim.at(14 * MIN);
    for later in [15 * MIN, HOUR, DAY] {
        sim.at(later);
    }
    assert_eq!(
        sim.entries(EntryType::Escalated),
        Vec::<&TimelineEntry>::new()
    );
    assert!(!sim.status().sla.as_ref().expect("sla").breached);
    assert_condition(&sim, "AcknowledgeOverdue", "False", "WithinResponseTime");
}

#[test]
fn resolving_before_the_deadline_never_escalates() {
    let mut sim = Sim::new(Severity::P2);
    sim.at(0);
    sim.edit(|s| s.resolution = resolution(None));
    sim.at(HOUR);
    sim.at(10 * HOUR);
    assert_eq!(sim.entries(EntryType::Escalated).len(), 0);
    assert!(!sim.status().sla.as_ref().expect("sla").breached);
}

#[test]
fn raising_the_severity_brings_the_deadline_forward() {
    let mut sim = Sim::new(Severity::P3);
    sim.at(0);
    sim.edit(|s| s.severity = Severity::P1);
    let decision = sim.at(2 * HOUR);
    assert_eq!(
        sim.status().sla.as_ref().expect("sla").respond_by,
        Time(t(HOUR))
    );
    assert_eq!(
        reasons(&decision),
        ["SeverityChanged", "AcknowledgeOverdue"]
    );
    assert_eq!(sim.entries(EntryType::Escalated).len(), 1);
}

#[test]
fn p0_and_p1_without_updates_get_update_due_once_per_deadline() {
    for severity in [Severity::P0, Severity::P1] {
        let mut sim = Sim::new(severity);
        sim.at(0);
        sim.edit(|s| s.acknowledgment = ack("bo"));
        sim.at(5 * MIN);

        let decision = sim.at(35 * MIN - 1);
        assert_eq!(decision.notices, Vec::new(), "{severity}");
        assert_eq!(decision.wake_at, Some(t(35 * MIN)), "{severity}");
        assert_condition(&sim, "UpdateOverdue", "False", "UpToDate");

        let decision = sim.at(35 * MIN);
        let due = sim.entries(EntryType::UpdateDue);
        assert_eq!(due.len(), 1, "{severity}");
        assert_eq!(
            due[0].message,
            format!("No update for 30m: {severity} incidents need one at least every 30m")
        );
        assert_eq!(reasons(&decision), ["UpdateOverdue"], "{severity}");
        assert!(decision.notices[0].warning);
        assert_eq!(
            decision.observations,
            [Observation::Overdue {
                severity,
                clock: "update"
            }]
        );
        assert_condition(&sim, "UpdateOverdue", "True", "NoRecentUpdate");
        assert_eq!(decision.wake_at, None, "{severity}");
        assert_quiet_at(&mut sim, 3 * HOUR);

        // A note is an update: the condition clears and the next deadline moves.
        sim.edit(|s| s.notes.push(note("bo", "failover done, replaying writes")));
        let decision = sim.at(3 * HOUR + 10 * MIN);
        assert_eq!(reasons(&decision), ["Note"], "{severity}");
        assert_condition(&sim, "UpdateOverdue", "False", "UpToDate");
        assert_eq!(
            sim.status().last_update_time,
            Some(Time(t(3 * HOUR + 10 * MIN)))
        );
        assert_eq!(decision.wake_at, Some(t(3 * HOUR + 40 * MIN)), "{severity}");
        assert_eq!(sim.entries(EntryType::UpdateDue).len(), 1);

        let decision = sim.at(3 * HOUR + 40 * MIN);
        assert_eq!(reasons(&decision), ["UpdateOverdue"], "{severity}");
        assert_eq!(sim.entries(EntryType::UpdateDue).len(), 2, "{severity}");
    }
}

#[test]
fn p2_and_p3_never_get_update_due() {
    for severity in [Severity::P2, Severity::P3] {
        let mut sim = Sim::new(severity);
        sim.at(0);
        sim.edit(|s| s.acknowledgment = ack("bo"));
        let decision = sim.at(5 * MIN);
        assert_eq!(decision.wake_at, None, "{severity}");
        for later in [HOUR, DAY, 30 * DAY] {
            assert_quiet_at(&mut sim, later);
        }
        assert_eq!(sim.entries(EntryType::UpdateDue).len(), 0, "{severity}");
        assert_condition(&sim, "UpdateOverdue", "False", "UpToDate");
        assert_eq!(
            sim.condition("UpdateOverdue").message,
            "No regular updates required"
        );
    }
}

#[test]
fn lowering_the_severity_stops_the_update_clock() {
    let mut sim = Sim::new(Severity::P0);
    sim.at(0);
    sim.edit(|s| {
        s.acknowledgment = ack("bo");
        s.severity = Severity::P2;
    });
    sim.at(MIN);
    sim.at(DAY);
    assert_eq!(sim.entries(EntryType::UpdateDue).len(), 0);
}

#[test]
fn the_postmortem_is_overdue_48h_after_resolution_once() {
    let mut sim = Sim::new(Severity::P2);
    sim.at(0);
    sim.edit(|s| s.resolution = resolution(None));
    sim.at(HOUR);

    let decision = sim.at(49 * HOUR - 1);
    assert_eq!(decision.notices, Vec::new());
    assert_eq!(decision.wake_at, Some(t(49 * HOUR)));

    let decision = sim.at(49 * HOUR);
    let overdue = sim.entries(EntryType::PostmortemOverdue);
    assert_eq!(overdue.len(), 1);
    assert_eq!(
        overdue[0].message,
        "Post-mortem not completed within 48h of resolution"
    );
    assert_eq!(reasons(&decision), ["PostmortemOverdue"]);
    assert!(decision.notices[0].warning);
    assert_eq!(
        decision.observations,
        [Observation::Overdue {
            severity: Severity::P2,
            clock: "postmortem"
        }]
    );
    assert_condition(&sim, "PostmortemOverdue", "True", "PostmortemNotCompleted");
    assert_eq!(decision.wake_at, None);
    assert_eq!(sim.phase(), Some(Phase::Resolved));

    assert_quiet_at(&mut sim, 100 * HOUR);
    assert_quiet_at(&mut sim, 365 * DAY);

    // Completing it late closes the incident and clears the condition.
    sim.edit(|s| s.postmortem = completed_postmortem());
    sim.at(366 * DAY);
    assert_eq!(sim.phase(), Some(Phase::Closed));
    assert_condition(&sim, "PostmortemOverdue", "False", "OnTime");
}

#[test]
fn a_closed_incident_is_never_postmortem_overdue() {
    let mut sim = Sim::new(Severity::P2);
    sim.at(0);
    sim.edit(|s| s.resolution = resolution(None));
    sim.at(HOUR);
    sim.edit(|s| s.postmortem = completed_postmortem());
    sim.at(2 * HOUR);
    for later in [49 * HOUR, 100 * HOUR, 365 * DAY] {
        assert_quiet_at(&mut sim, later);
    }
    assert_eq!(sim.entries(EntryType::PostmortemOverdue).len(), 0);
    assert_condition(&sim, "PostmortemOverdue", "False", "OnTime");
}

#[test]
fn conditions_keep_their_transition_time_until_they_flip() {
    let mut sim = Sim::new(Severity::P2);
    sim.at(0);
    sim.edit(|s| s.notes.push(note("bo", "looking at logs")));
    sim.at(HOUR);
    assert_eq!(
        sim.condition("AcknowledgeOverdue").last_transition_time,
        Time(t(0))
    );
    sim.at(4 * HOUR);
    assert_eq!(
        sim.condition("AcknowledgeOverdue").last_transition_time,
        Time(t(4 * HOUR))
    );
    assert_eq!(
        sim.condition("Resolved").last_transition_time,
        Time(t(0)),
        "unchanged"
    );
}

#[test]
fn conditions_observe_the_current_generation() {
    let mut sim = Sim::new(Severity::P2);
    sim.at(0);
    sim.edit(|s| s.title = "Database down in eu-west".to_owned());
    sim.edit(|s| s.description = None);
    sim.at(MIN);
    assert_eq!(sim.incident.metadata.generation, Some(3));
    assert_eq!(sim.status().observed_generation, Some(3));
    for c in &sim.status().conditions {
        assert_eq!(c.observed_generation, Some(3), "{c:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Notes, severity, commander, affected objects
// ---------------------------------------------------------------------------------------------

fn note_messages(sim: &Sim) -> Vec<(String, Option<String>, i32)> {
    sim.entries(EntryType::Note)
        .into_iter()
        .map(|e| (e.message.clone(), e.actor.clone(), e.count.unwrap_or(1)))
        .collect()
}

#[test]
fn each_note_is_recorded_once() {
    let mut sim = Sim::new(Severity::P2);
    sim.at(0);
    sim.edit(|s| {
        s.notes.push(note("ana", "paging the DBA"));
        s.notes.push(note("bo", "replica lag 40s"));
    });
    let decision = sim.at(MIN);
    assert_eq!(reasons(&decision), ["Note", "Note"]);
    assert_eq!(
        note_messages(&sim),
        [
            ("paging the DBA".to_owned(), Some("ana".to_owned()), 1),
            ("replica lag 40s".to_owned(), Some("bo".to_owned()), 1),
        ]
    );
    assert_eq!(sim.status().last_update_time, Some(Time(t(MIN))));
    assert_quiet_at(&mut sim, 2 * MIN);

    sim.edit(|s| s.notes.push(note("ana", "failing over")));
    let decision = sim.at(3 * MIN);
    assert_eq!(reasons(&decision), ["Note"]);
    assert_eq!(decision.notices[0].message, "failing over");
    assert_eq!(sim.entries(EntryType::Note).len(), 3);
}

#[test]
fn identical_duplicate_notes_count_as_two() {
    let mut sim = Sim::new(Severity::P2);
    sim.at(0);
    sim.edit(|s| {
        s.notes.push(note("ana", "still investigating"));
        s.notes.push(note("ana", "still investigating"));
    });
    let decision = sim.at(MIN);
    assert_eq!(reasons(&decision), ["Note", "Note"]);
    let first_keys = keys(&decision);
    assert_ne!(
        first_keys[0], first_keys[1],
        "each occurrence has its own key"
    );
    let total: i32 = note_messages(&sim).iter().map(|(_, _, n)| n).sum();
    assert_eq!(total, 2);

    // A third identical note, added later, is a third note.
    sim.edit(|s| s.notes.push(note("ana", "still investigating")));
    let decision = sim.at(2 * MIN);
    assert_eq!(reasons(&decision), ["Note"]);
    let total: i32 = note_messages(&sim).iter().map(|(_, _, n)| n).sum();
    assert_eq!(total, 3);
    assert_quiet_at(&mut sim, 3 * MIN);
}

#[test]
fn dropping_old_notes_and_adding_new_ones_records_only_the_new() {
    let mut sim = Sim::new(Severity::P2);
    sim.at(0);
    sim.edit(|s| {
        s.notes = vec![note("ana", "a"), note("bo", "b"), note("ana", "c")];
    });
    sim.at(MIN);
    sim.edit(|s| {
        s.notes = vec![note("ana", "c"), note("bo", "d"), note("carol", "e")];
    });
    let decision = sim.at(2 * MIN);
    let messages: Vec<&str> = decision
        .notices
        .iter()
        .map(|n| n.message.as_str())
        .collect();
    assert_eq!(messages, ["d", "e"]);
    assert_eq!(sim.entries(EntryType::Note).len(), 5);

    // Only dropping notes records nothing.
    sim.edit(|s| s.notes.truncate(1));
    let decision = sim.at(3 * MIN);
    assert_eq!(decision.notices, Vec::new());
    assert_eq!(sim.entries(EntryType::Note).len(), 5);
}

#[test]
fn a_full_notes_list_rotated_one_at_a_time_records_each_note_once() {
    let mut sim = Sim::new(Severity::P3);
    sim.at(0);
    for i in 0..(MAX_NOTES as i64 + 30) {
        sim.edit(|s| {
            if s.notes.len() == MAX_NOTES {
                s.notes.remove(0);
            }
            s.notes.push(note("ana", &format!("update {i}")));
        });
        let decision = sim.at(MIN * (i + 1));
        assert_eq!(reasons(&decision), ["Note"], "note {i}");
    }
    assert_eq!(sim.entries(EntryType::Note).len(), MAX_NOTES + 30);
}

#[test]
fn a_severity_change_is_recorded_once_with_the_annotated_actor() {
    let mut sim = Sim::new(Severity::P2);
    sim.at(0);
    sim.set_actor(Some("carol"));
    sim.edit(|s| s.severity = Severity::P0);
    let decision = sim.at(5 * MIN);
    let changes = sim.entries(EntryType::SeverityChanged);
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].message, "Severity raised from P2 to P0");
    assert_eq!(changes[0].actor.as_deref(), Some("carol"));
    assert_eq!(reasons(&decision), ["SeverityChanged"]);
    assert_eq!(sim.status().last_update_time, Some(Time(t(5 * MIN))));
    assert_eq!(
        sim.status().sla.as_ref().expect("sla").respond_by,
        Time(t(15 * MIN))
    );
    assert_quiet_at(&mut sim, 6 * MIN);
}

#[test]
fn a_severity_change_without_the_annotation_is_attributed_to_the_commander() {
    let mut sim = Sim::new(Severity::P1);
    sim.at(0);
    sim.edit(|s| s.severity = Severity::P3);
    sim.at(MIN);
    let changes = sim.entries(EntryType::SeverityChanged);
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].message, "Severity lowered from P1 to P3");
    assert_eq!(changes[0].actor.as_deref(), Some("ana"));
}

#[test]
fn a_severity_changed_and_changed_back_between_reconciles_records_nothing() {
    let mut sim = Sim::new(Severity::P1);
    sim.at(0);
    sim.edit(|s| s.severity = Severity::P0);
    sim.edit(|s| s.severity = Severity::P1);
    let decision = sim.at(MIN);
    assert_eq!(decision.notices, Vec::new());
}

#[test]
fn a_commander_handover_is_recorded_once() {
    let mut sim = Sim::new(Severity::P2);
    sim.at(0);
    sim.edit(|s| s.commander = Some("bo".to_owned()));
    let decision = sim.at(MIN);
    let changes = sim.entries(EntryType::CommanderChanged);
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].message, "Command handed over from ana to bo");
    assert_eq!(changes[0].actor.as_deref(), Some("bo"), "the new commander");
    assert_eq!(reasons(&decision), ["CommanderChanged"]);
    assert_eq!(sim.status().last_update_time, Some(Time(t(MIN))));
    assert_quiet_at(&mut sim, 2 * MIN);

    sim.set_actor(Some("carol"));
    sim.edit(|s| s.commander = None);
    sim.at(3 * MIN);
    let last = sim.status().timeline.last().expect("entry");
    assert_eq!(last.message, "bo stepped down as commander");
    assert_eq!(last.actor.as_deref(), Some("carol"));

    sim.set_actor(None);
    sim.edit(|s| s.commander = Some("dan".to_owned()));
    sim.at(4 * MIN);
    let last = sim.status().timeline.last().expect("entry");
    assert_eq!(last.message, "dan took command");
    assert_eq!(last.actor.as_deref(), Some("dan"));
    assert_eq!(sim.entries(EntryType::CommanderChanged).len(), 3);
}

#[test]
fn missing_affected_objects_are_recorded_once() {
    let mut sim = Sim::new(Severity::P2);
    sim.at(0);
    sim.related.missing_affected = vec![
        "Service payments/db".to_owned(),
        "Deployment payments/api".to_owned(),
    ];
    let decision = sim.at(MIN);
    let missing = sim.entries(EntryType::AffectedNotFound);
    assert_eq!(missing.len(), 1);
    assert_eq!(
        missing[0].message,
        "Not found: Deployment payments/api, Service payments/db"
    );
    assert_eq!(reasons(&decision), ["AffectedNotFound"]);
    assert!(decision.notices[0].warning);
    assert_condition(&sim, "AffectedFound", "False", "NotFound");
    assert_eq!(
        sim.condition("AffectedFound").message,
        "Not found: Deployment payments/api, Service payments/db"
    );
    assert_quiet_at(&mut sim, 2 * MIN);

    // The same set in another order is the same set.
    sim.related.missing_affected.reverse();
    assert_quiet_at(&mut sim, 3 * MIN);

    // Found again: the condition clears without an entry.
    sim.related.missing_affected.clear();
    let decision = sim.at(4 * MIN);
    assert_eq!(decision.notices, Vec::new());
    assert_condition(&sim, "AffectedFound", "True", "AllFound");
    assert_eq!(sim.entries(EntryType::AffectedNotFound).len(), 1);

    // A different set is recorded.
    sim.related.missing_affected = vec!["Deployment payments/api".to_owned()];
    let decision = sim.at(5 * MIN);
    assert_eq!(reasons(&decision), ["AffectedNotFound"]);
    assert_eq!(sim.entries(EntryType::AffectedNotFound).len(), 2);
}

#[test]
fn a_named_runbook_that_cannot_be_followed_is_recorded_once_with_a_condition() {
    let mut sim = Sim::new(Severity::P2);
    sim.at(0);
    assert!(
        sim.status()
            .conditions
            .iter()
            .all(|c| c.type_ != "RunbookUsable"),
        "no condition while the incident names no runbook"
    );
    sim.edit(|s| {
        s.runbook_ref = Some(RunbookRef {
            name: "crash".to_owned(),
        })
    });
    sim.related.runbook_problem = Some(RunbookProblem {
        reason: "NotFound",
        message: "runbook crash not found".to_owned(),
    });
    let decision = sim.at(MIN);
    assert_eq!(reasons(&decision), ["RunbookUnusable"]);
    assert!(decision.notices[0].warning);
    let entries = sim.entries(EntryType::RunbookUnusable);
    assert_eq!(
        entries[0].message,
        "runbook crash not found; no runbook is followed until it is fixed"
    );
    assert_condition(&sim, "RunbookUsable", "False", "NotFound");
    // The same problem on every reconcile changes nothing.
    assert_quiet_at(&mut sim, 2 * MIN);

    // A different problem is recorded.
    sim.related.runbook_problem = Some(RunbookProblem {
        reason: "NotUsable",
        message: "runbook crash is not usable: step 1 has two kinds".to_owned(),
    });
    let decision = sim.at(3 * MIN);
    assert_eq!(reasons(&decision), ["RunbookUnusable"]);
    assert_condition(&sim, "RunbookUsable", "False", "NotUsable");
    assert_eq!(sim.entries(EntryType::RunbookUnusable).len(), 2);

    // Fixed and followed: the condition turns True without another problem entry.
    sim.related.runbook_problem = None;
    let mut status = sim.incident.status.clone().unwrap_or_default();
    status.runbook = Some(
        serde_json::from_value(serde_json::json!({
            "name": "crash", "generation": 2, "reason": "named by the incident", "steps": [], "progress": []
        }))
        .expect("run"),
    );
    sim.incident.status = Some(status);
    sim.at(4 * MIN);
    assert_condition(&sim, "RunbookUsable", "True", "Following");
    assert_eq!(
        sim.condition("RunbookUsable").message,
        "Following runbook crash (generation 2)"
    );
    assert_eq!(sim.entries(EntryType::RunbookUnusable).len(), 2);
}

// ---------------------------------------------------------------------------------------------
// Notice keys, idempotency, round trip
// ---------------------------------------------------------------------------------------------

/// An incident with many transitions pending at once.
fn busy_sim() -> Sim {
    let mut sim = Sim::new(Severity::P1);
    sim.at(0);
    sim.set_actor(Some("carol"));
    sim.edit(|s| {
        s.severity = Severity::P0;
        s.commander = Some("bo".to_owned());
        s.notes = vec![
            note("bo", "failing over"),
            note("ana", "paging DBA"),
            note("bo", "failing over"),
        ];
        s.resolution = resolution(Some("expired TLS certificate"));
    });
    sim.related.missing_affected = vec!["Deployment payments/api".to_owned()];
    sim
}

#[test]
fn notice_keys_are_stable_when_a_decision_is_retried() {
    let sim = busy_sim();
    // The controller crashes after emitting Events but before writing status, then retries.
    let first = sim.peek(t(20 * MIN));
    let same_time = sim.peek(t(20 * MIN));
    let later = sim.peek(t(20 * MIN + 5));
    assert_eq!(
        reasons(&first),
        [
            "SeverityChanged",
            "CommanderChanged",
            "Note",
            "Note",
            "Note",
            "RootCauseIdentified",
            "Resolved",
            "PostmortemDue",
            "AffectedNotFound"
        ]
    );
    assert_eq!(keys(&first), keys(&same_time));
    assert_eq!(keys(&first), keys(&later));
    assert_eq!(first, same_time, "decide is a pure function");
}

#[test]
fn notice_keys_of_clock_transitions_are_stable_when_retried() {
    let mut sim = Sim::new(Severity::P0);
    sim.at(0);
    let first = sim.peek(t(HOUR));
    let later = sim.peek(t(HOUR + 30));
    assert_eq!(reasons(&first), ["AcknowledgeOverdue", "UpdateOverdue"]);
    assert_eq!(keys(&first), keys(&later));

    let fresh = Sim::new(Severity::P0);
    let first = fresh.peek(t(1));
    let later = fresh.peek(t(9));
    assert_eq!(reasons(&first), ["Detected"]);
    assert_eq!(keys(&first), keys(&later));
}

#[test]
fn notice_keys_are_unique_within_a_decision_and_between_incidents() {
    let sim = busy_sim();
    let decision = sim.peek(t(20 * MIN));
    let unique: BTreeSet<&String> = decision.notices.iter().map(|n| &n.key).collect();
    assert_eq!(unique.len(), decision.notices.len(), "{decision:?}");
    for notice in &decision.notices {
        assert_eq!(notice.key.len(), 16, "{notice:?}");
        assert!(
            notice.key.bytes().all(|b| b.is_ascii_hexdigit()),
            "{notice:?}"
        );
    }

    let mut other = busy_sim();
    other.incident.metadata.uid = Some("another-uid".to_owned());
    let other = other.peek(t(20 * MIN));
    for (a, b) in decision.notices.iter().zip(&other.notices) {
        assert_ne!(a.key, b.key, "{}", a.reason);
    }
}

#[test]
fn reconciling_an_unchanged_incident_changes_nothing() {
    let mut sim = busy_sim();
    sim.at(20 * MIN);
    assert_quiet_at(&mut sim, 20 * MIN);
    assert_quiet_at(&mut sim, 21 * MIN);
}

#[test]
fn the_status_survives_the_api_round_trip() {
    let mut sim = busy_sim();
    let decision = sim.at(20 * MIN);
    assert_eq!(sim.status(), &decision.status);
}

#[test]
fn sub_second_clock_settings_fire_each_deadline_once() {
    // Durations such as `--update-interval 30m0.25s` parse; status times are whole seconds.
    let config = LifecycleConfig {
        response_times: [
            Duration::from_millis(15 * 60_000 + 500),
            Duration::from_millis(60 * 60_000 + 500),
            Duration::from_millis(4 * 3_600_000 + 500),
            Duration::from_millis(24 * 3_600_000 + 500),
        ],
        update_interval: Duration::from_millis(30 * 60_000 + 250),
        update_severities: vec![Severity::P0, Severity::P1],
        postmortem_due: Duration::from_millis(48 * 3_600_000 + 750),
    };
    let mut sim = Sim::new(Severity::P0).with_config(config);
    let decision = sim.at(0);
    assert_eq!(
        sim.status(),
        &decision.status,
        "nothing lost in the round trip"
    );
    let decision = sim.at(HOUR);
    assert_eq!(reasons(&decision), ["AcknowledgeOverdue", "UpdateOverdue"]);
    assert_quiet_at(&mut sim, HOUR + 1);
    assert_quiet_at(&mut sim, 2 * HOUR);

    sim.edit(|s| s.resolution = resolution(None));
    sim.at(3 * HOUR);
    let decision = sim.at(60 * HOUR);
    assert_eq!(reasons(&decision), ["PostmortemOverdue"]);
    assert_quiet_at(&mut sim, 61 * HOUR);
}

/// Puts remediation in the state that yields `phase`: an action under way (Mitigating) or a last
/// action that succeeded (Monitoring).
fn set_remediation(status: &mut IncidentStatus, phase: Phase) {
    use crate::api::{ActionKind, ActionPhase, ActionStatus};
    let action_phase = match phase {
        Phase::Mitigating => ActionPhase::Running,
        _ => ActionPhase::Succeeded,
    };
    if phase == Phase::Mitigating || status.actions.is_empty() {
        let mut action = ActionStatus::pending(
            &format!("action-{}", status.actions.len()),
            ActionKind::Rollback,
            "app",
        );
        action.phase = action_phase;
        status.actions.push(action);
    } else if let Some(last) = status.actions.last_mut() {
        last.phase = action_phase;
    }
}

#[test]
fn a_phase_set_by_remediation_is_kept_until_resolution() {
    // Remediation (another writer of status.phase) may start mitigating before anyone
    // acknowledges: `allowed(Detected, Mitigating)`.
    for acknowledged in [false, true] {
        let mut sim = Sim::new(Severity::P2);
        sim.at(0);
        if acknowledged {
            sim.edit(|s| s.acknowledgment = ack("bo"));
            sim.at(MIN);
        }
        for phase in [Phase::Mitigating, Phase::Monitoring] {
            let current = sim.phase();
            assert!(allowed(current, phase), "{current:?} -> {phase:?}");
            if let Some(status) = sim.incident.status.as_mut() {
                set_remediation(status, phase);
            }
            sim.at(2 * MIN);
            assert_eq!(sim.phase(), Some(phase), "acknowledged: {acknowledged}");
        }
        sim.edit(|s| s.resolution = resolution(None));
        sim.at(3 * MIN);
        assert_eq!(sim.phase(), Some(Phase::Resolved));
    }
}

// ---------------------------------------------------------------------------------------------
// Properties over random histories
// ---------------------------------------------------------------------------------------------

/// One thing that happens to an incident between reconciles.
#[derive(Clone, Debug)]
enum Op {
    Advance(i64),
    Acknowledge(usize),
    ClearAcknowledgment,
    Resolve(Option<usize>),
    Unresolve,
    /// A new note by someone, with text never used before.
    AddNote(usize),
    /// Several new notes by someone in one edit.
    AddNotes(usize, usize),
    /// Another copy of an existing note (by index, modulo the count).
    DuplicateNote(usize),
    RemoveOldestNotes(usize),
    Severity(Severity),
    Commander(Option<usize>),
    Actor(Option<usize>),
    CompletePostmortem(bool),
    Missing(BTreeSet<usize>),
    /// Remediation writes the phase (when `allowed`).
    Remediate(Phase),
}

fn severity() -> impl Strategy<Value = Severity> {
    prop::sample::select(Severity::ALL.to_vec())
}

fn person() -> impl Strategy<Value = usize> {
    0..PEOPLE.len()
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => prop_oneof![0..120i64, 0..2 * HOUR, 0..72 * HOUR].prop_map(Op::Advance),
        2 => person().prop_map(Op::Acknowledge),
        1 => Just(Op::ClearAcknowledgment),
        2 => prop::option::of(0..3usize).prop_map(Op::Resolve),
        2 => Just(Op::Unresolve),
        4 => person().prop_map(Op::AddNote),
        1 => (person(), 2..8usize).prop_map(|(by, n)| Op::AddNotes(by, n)),
        2 => any::<usize>().prop_map(Op::DuplicateNote),
        1 => (1..5usize).prop_map(Op::RemoveOldestNotes),
        2 => severity().prop_map(Op::Severity),
        1 => prop::option::of(person()).prop_map(Op::Commander),
        1 => prop::option::of(person()).prop_map(Op::Actor),
        2 => any::<bool>().prop_map(Op::CompletePostmortem),
        1 => prop::collection::btree_set(0..3usize, 0..3).prop_map(Op::Missing),
        1 => prop::sample::select(vec![Phase::Mitigating, Phase::Monitoring])
            .prop_map(Op::Remediate),
    ]
}

/// The default clocks, or random ones (down to the millisecond).
fn config() -> impl Strategy<Value = LifecycleConfig> {
    let millis = |max_hours: u64| (1_000..max_hours * 3_600_000).prop_map(Duration::from_millis);
    prop_oneof![
        Just(LifecycleConfig::default()),
        (
            prop::array::uniform4(millis(6)),
            millis(3),
            prop::collection::vec(severity(), 0..4),
            millis(72),
        )
            .prop_map(
                |(response_times, update_interval, update_severities, postmortem_due)| {
                    LifecycleConfig {
                        response_times,
                        update_interval,
                        update_severities,
                        postmortem_due,
                    }
                }
            ),
    ]
}

/// Note entries in the timeline, including those folded into the summary.
fn recorded_notes(timeline: &[TimelineEntry]) -> i64 {
    timeline
        .iter()
        .map(|e| match e.type_ {
            EntryType::Note => i64::from(e.count.unwrap_or(1)),
            EntryType::Summary => e.message.split_once(": ").map_or(0, |(_, list)| {
                list.split(", ")
                    .filter_map(|item| item.split_once(' '))
                    .filter(|(_, kind)| *kind == "Note")
                    .filter_map(|(n, _)| n.parse::<i64>().ok())
                    .sum()
            }),
            _ => 0,
        })
        .sum()
}

/// The random history: the simulated cluster plus what the test knows was added.
struct History {
    sim: Sim,
    notes_added: i64,
    next_note: usize,
}

impl History {
    fn apply(&mut self, op: Op) -> Result<(), TestCaseError> {
        let sim = &mut self.sim;
        match op {
            Op::Advance(seconds) => {
                sim.now = sim
                    .now
                    .checked_add(jiff::SignedDuration::from_secs(seconds))
                    .expect("in range");
            }
            Op::Acknowledge(by) => sim.edit(|s| s.acknowledgment = ack(PEOPLE[by])),
            Op::ClearAcknowledgment => sim.edit(|s| s.acknowledgment = None),
            Op::Resolve(cause) => {
                let cause = cause.map(|c| format!("cause {c}"));
                sim.edit(|s| s.resolution = resolution(cause.as_deref()));
            }
            Op::Unresolve => sim.edit(|s| s.resolution = None),
            // Nothing to duplicate yet: add a new note instead.
            Op::DuplicateNote(_) if sim.incident.spec.notes.is_empty() => {
                let text = self.fresh_text();
                self.add(note(PEOPLE[0], &text));
            }
            Op::AddNote(by) => {
                self.make_room(1)?;
                let text = self.fresh_text();
                self.add(note(PEOPLE[by], &text));
            }
            Op::AddNotes(by, n) => {
                self.make_room(n)?;
                let notes: Vec<Note> = (0..n)
                    .map(|_| note(PEOPLE[by], &self.fresh_text()))
                    .collect();
                self.sim.edit(|s| s.notes.extend(notes));
                self.notes_added += n as i64;
            }
            Op::DuplicateNote(index) => {
                let notes = &sim.incident.spec.notes;
                let copy = notes[index % notes.len()].clone();
                // Room is made in an edit of its own: dropping the original and adding the copy
                // in one edit would look like no change at all.
                self.make_room(1)?;
                self.add(copy);
            }
            Op::RemoveOldestNotes(n) => sim.edit(|s| {
                let n = n.min(s.notes.len());
                s.notes.drain(..n);
            }),
            Op::Severity(severity) => sim.edit(|s| s.severity = severity),
            Op::Commander(who) => sim.edit(|s| s.commander = who.map(|w| PEOPLE[w].to_owned())),
            Op::Actor(who) => sim.set_actor(who.map(|w| PEOPLE[w])),
            Op::CompletePostmortem(completed) => sim.edit(|s| {
                s.postmortem = Some(Postmortem {
                    completed,
                    ..Postmortem::default()
                })
            }),
            Op::Missing(indexes) => {
                sim.related.missing_affected = indexes
                    .into_iter()
                    .map(|i| format!("Deployment payments/app-{i}"))
                    .collect();
            }
            Op::Remediate(phase) => {
                let status = sim.incident.status.as_mut().expect("reconciled");
                set_remediation(status, phase);
            }
        }
        self.reconcile_and_check()
    }

    fn fresh_text(&mut self) -> String {
        self.next_note += 1;
        format!("update {}", self.next_note)
    }

    fn add(&mut self, note: Note) {
        self.sim.edit(|s| s.notes.push(note));
        self.notes_added += 1;
    }

    /// Keeps the spec within MAX_NOTES by dropping the oldest notes in an edit of its own.
    fn make_room(&mut self, room: usize) -> Result<(), TestCaseError> {
        let len = self.sim.incident.spec.notes.len();
        if len + room > MAX_NOTES {
            let drop = (len + room - MAX_NOTES).max(10).min(len);
            self.sim.edit(|s| {
                s.notes.drain(..drop);
            });
            self.reconcile_and_check()?;
        }
        Ok(())
    }

    fn reconcile_and_check(&mut self) -> Result<(), TestCaseError> {
        let sim = &mut self.sim;
        let old_phase = sim.incident.status.as_ref().and_then(|s| s.phase);
        let decision = sim.peek(sim.now);
        sim.incident.status = Some(round_trip(&decision.status));
        let status = &decision.status;
        let generation = sim.incident.metadata.generation;

        // (2) Only allowed phase changes.
        let phase = status.phase.expect("a phase");
        prop_assert!(allowed(old_phase, phase), "{:?} -> {:?}", old_phase, phase);

        // (1) Timeline times never go backwards.
        let mut previous: Option<Timestamp> = None;
        for entry in &status.timeline {
            if let Some(previous) = previous {
                prop_assert!(entry.time.0 >= previous, "backwards at {:?}", entry);
            }
            previous = Some(entry.last_time.as_ref().unwrap_or(&entry.time).0);
        }

        // (5) The timeline is bounded.
        prop_assert!(status.timeline.len() <= MAX_TIMELINE);

        // (6) Conditions observe the current generation.
        prop_assert_eq!(status.observed_generation, generation);
        prop_assert_eq!(status.conditions.len(), 6);
        for c in &status.conditions {
            prop_assert_eq!(c.observed_generation, generation, "{:?}", c);
        }

        // (4) Every note added is recorded exactly once.
        prop_assert_eq!(recorded_notes(&status.timeline), self.notes_added);

        // The status is stored without loss, and notices of one decision have distinct keys.
        prop_assert_eq!(sim.incident.status.as_ref(), Some(status));
        let unique: BTreeSet<&String> = decision.notices.iter().map(|n| &n.key).collect();
        prop_assert_eq!(unique.len(), decision.notices.len());

        // (3) Reconciling again with nothing changed is a no-op.
        let again = sim.peek(sim.now);
        prop_assert_eq!(&again.status, status);
        prop_assert_eq!(again.notices, Vec::new());
        prop_assert_eq!(again.observations, Vec::new());
        prop_assert_eq!(again.wake_at, decision.wake_at);

        // Every wake-up is in the future.
        if let Some(wake_at) = decision.wake_at {
            prop_assert!(wake_at > sim.now, "wake at {} <= now {}", wake_at, sim.now);
        }
        Ok(())
    }
}

fn run_history(
    config: LifecycleConfig,
    severity: Severity,
    first_seen: i64,
    ops: Vec<Op>,
) -> Result<(), TestCaseError> {
    let mut history = History {
        sim: Sim::new(severity).with_config(config),
        notes_added: 0,
        next_note: 0,
    };
    history.sim.now = t(first_seen);
    history.reconcile_and_check()?;
    for op in ops {
        history.apply(op)?;
    }
    Ok(())
}

proptest! {
    // No regression file: failures print the minimal history to turn into a unit test.
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn lifecycle_invariants_hold_over_random_histories(
        config in config(),
        severity in severity(),
        first_seen in 0..HOUR,
        ops in prop::collection::vec(op(), 1..120),
    ) {
        run_history(config, severity, first_seen, ops)?;
    }
}

proptest! {
    // Long enough for the notes list to rotate and the timeline to fold.
    #![proptest_config(ProptestConfig {
        cases: 24,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn lifecycle_invariants_hold_over_long_histories(
        config in config(),
        severity in severity(),
        ops in prop::collection::vec(op(), 300..500),
    ) {
        run_history(config, severity, 0, ops)?;
    }
}

#[test]
fn summary_counts_are_read_back() {
    let timeline = vec![TimelineEntry {
        time: Time(t(0)),
        type_: EntryType::Summary,
        message: "7 earlier entries folded: 2 Detected, 5 Note".to_owned(),
        actor: None,
        count: Some(7),
        last_time: None,
    }];
    assert_eq!(recorded_notes(&timeline), 5);
}
