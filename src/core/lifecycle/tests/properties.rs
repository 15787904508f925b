//! Lifecycle tests (core layer, tests): invariants over random histories of edits and clock
//! advances (property tests).

use std::{collections::BTreeSet, time::Duration};

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use proptest::prelude::*;

use super::{HOUR, Sim, ack, note, resolution, round_trip, set_remediation, t};
use crate::{
    api::{EntryType, MAX_NOTES, MAX_TIMELINE, Note, Phase, Postmortem, Severity, TimelineEntry},
    core::lifecycle::{LifecycleConfig, allowed},
};

const PEOPLE: [&str; 4] = ["ana", "bo", "carol", "dan"];

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
