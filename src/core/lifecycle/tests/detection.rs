//! Lifecycle tests (core layer, tests): detection of a new incident, and notices that keep their
//! keys when a decision is retried, idempotent reconciles and the API round trip.

use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{
    DAY, HOUR, MIN, Sim, assert_condition, assert_quiet_at, keys, note, reasons, resolution, t,
};
use crate::api::{EntryType, Phase, Severity};

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
