//! Lifecycle tests (core layer, tests): resolving, reopening, closing and the post-mortem.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{
    DAY, HOUR, MIN, Sim, ack, assert_condition, assert_quiet_at, completed_postmortem, reasons,
    resolution, t,
};
use crate::{
    api::{EntryType, Phase, Severity},
    core::lifecycle::{Observation, Update},
};

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
