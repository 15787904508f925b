//! Lifecycle tests (core layer, tests): acknowledgment, notes, severity changes and commander
//! handovers, each recorded once.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{MIN, Sim, ack, assert_condition, assert_quiet_at, keys, note, reasons, t};
use crate::{
    api::{EntryType, MAX_NOTES, Phase, Severity},
    core::lifecycle::Observation,
};

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
    // Notes and hand-overs are for responders; only updates restart the update clock.
    assert_eq!(sim.status().last_update_time, Some(Time(t(0))));
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
    assert_eq!(sim.status().last_update_time, Some(Time(t(0))));
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
    // Notes and hand-overs are for responders; only updates restart the update clock.
    assert_eq!(sim.status().last_update_time, Some(Time(t(0))));
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
