//! Lifecycle tests (core layer, tests): conditions (transition times, generation, affected
//! objects, the runbook) and the phase remediation sets.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{
    HOUR, MIN, Sim, ack, assert_condition, assert_quiet_at, note, reasons, resolution,
    set_remediation, t,
};
use crate::{
    api::{EntryType, Phase, RunbookRef, Severity},
    core::lifecycle::{RunbookProblem, allowed},
};

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
