//! The bounded timeline (core layer, shared vocabulary): entries are appended in time order,
//! identical consecutive entries coalesce (count + lastTime), and past `MAX_TIMELINE` the oldest
//! fold into one summary entry at the top. Also the two things a transition produces besides the
//! entry: an [`Entry`] handed between domains and the [`Notice`] (a Kubernetes Event) that
//! announces it.

pub mod similar;

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use kube::ResourceExt;

use crate::api::{EntryType, Incident, MAX_TIMELINE, TimelineEntry, metadata::ACTOR_ANNOTATION};

/// Who made the incident's latest spec change, for entries whose actor the spec does not name: the
/// actor annotation (set by the plugin), else the commander.
pub fn spec_actor(incident: &Incident) -> Option<String> {
    incident
        .annotations()
        .get(ACTOR_ANNOTATION)
        .cloned()
        .or_else(|| incident.spec.commander.clone())
}

/// A timeline entry another domain (remediation, a runbook) asks the lifecycle to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub type_: EntryType,
    pub message: String,
    pub actor: Option<String>,
    /// Published as a Warning Event.
    pub warning: bool,
}

impl Entry {
    pub fn new(type_: EntryType, message: String, actor: Option<String>, warning: bool) -> Self {
        Entry {
            type_,
            message,
            actor,
            warning,
        }
    }
}

/// A Kubernetes Event to publish, and the news a channel may carry. `key` is stable for the same
/// transition, so a retry after a crash names the same Event (created at most once) and the same
/// message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    pub key: String,
    pub warning: bool,
    pub reason: &'static str,
    pub message: String,
    /// Who did it, when a person did.
    pub actor: Option<String>,
    /// When it happened (as the timeline records it).
    pub time: Timestamp,
}

/// Longest message kept in an entry; notes and summaries are cut to it.
pub const MAX_MESSAGE: usize = 512;
/// Longest actor kept, in characters (the spec's `by` fields are at most this).
pub const MAX_ACTOR: usize = 128;

/// Appends an entry at `now`, never before the last entry (clocks of different replicas may
/// disagree), coalescing with an identical predecessor and folding when the timeline is full.
pub fn record(
    timeline: &mut Vec<TimelineEntry>,
    now: Timestamp,
    type_: EntryType,
    message: impl Into<String>,
    actor: Option<String>,
) -> Timestamp {
    let message = truncate(message.into());
    let actor = actor.map(|a| crate::core::text::cut(&a, MAX_ACTOR));
    let latest = timeline
        .last()
        .map(|e| e.last_time.as_ref().unwrap_or(&e.time).0);
    let time = latest.map_or(now, |latest| latest.max(now));
    if let Some(last) = timeline.last_mut()
        && last.type_ == type_
        && last.message == message
        && last.actor == actor
        && type_ != EntryType::Summary
    {
        last.count = Some(last.count.unwrap_or(1).saturating_add(1));
        last.last_time = Some(Time(time));
        return time;
    }
    timeline.push(TimelineEntry {
        time: Time(time),
        type_,
        message,
        actor,
        count: None,
        last_time: None,
    });
    fold(timeline);
    time
}

/// Folds the oldest entries into the summary at index 0 until at most `MAX_TIMELINE` remain.
fn fold(timeline: &mut Vec<TimelineEntry>) {
    if timeline.len() <= MAX_TIMELINE {
        return;
    }
    let has_summary = timeline
        .first()
        .is_some_and(|e| e.type_ == EntryType::Summary);
    // Keep MAX_TIMELINE - 1 ordinary entries after the summary.
    let keep_from = timeline.len() - (MAX_TIMELINE - 1);
    let start = usize::from(has_summary);
    let folded: Vec<TimelineEntry> = timeline.drain(start..keep_from).collect();
    let mut counts: BTreeMap<String, i64> = BTreeMap::new();
    let mut total = 0i64;
    let mut first = folded.first().map(|e| e.time.0);
    let mut last = folded
        .last()
        .map(|e| e.last_time.as_ref().unwrap_or(&e.time).0);
    if has_summary {
        let summary = &timeline[0];
        parse_counts(&summary.message, &mut counts);
        total += i64::from(summary.count.unwrap_or(0));
        first = Some(summary.time.0);
        last = last.or(summary.last_time.as_ref().map(|t| t.0));
    }
    for entry in &folded {
        let n = i64::from(entry.count.unwrap_or(1));
        *counts.entry(format!("{:?}", entry.type_)).or_default() += n;
        total += n;
    }
    let message = format!(
        "{total} earlier entries folded: {}",
        counts
            .iter()
            .map(|(kind, n)| format!("{n} {kind}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let summary = TimelineEntry {
        time: Time(first.unwrap_or_else(|| timeline[start].time.0)),
        type_: EntryType::Summary,
        message: truncate(message),
        actor: None,
        count: Some(i32::try_from(total).unwrap_or(i32::MAX)),
        last_time: last.map(Time),
    };
    if has_summary {
        timeline[0] = summary;
    } else {
        timeline.insert(0, summary);
    }
}

/// Reads "N Kind" pairs back out of a summary message.
fn parse_counts(message: &str, counts: &mut BTreeMap<String, i64>) {
    let Some((_, list)) = message.split_once(": ") else {
        return;
    };
    for item in list.split(", ") {
        if let Some((n, kind)) = item.split_once(' ')
            && let Ok(n) = n.parse::<i64>()
        {
            *counts.entry(kind.to_owned()).or_default() += n;
        }
    }
}

fn truncate(mut message: String) -> String {
    if message.len() > MAX_MESSAGE {
        let mut cut = MAX_MESSAGE - 3;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push_str("...");
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + second).expect("valid")
    }

    #[test]
    fn identical_consecutive_entries_coalesce() {
        let mut timeline = Vec::new();
        record(
            &mut timeline,
            at(0),
            EntryType::Note,
            "rollback started",
            Some("ana".into()),
        );
        record(
            &mut timeline,
            at(5),
            EntryType::Note,
            "rollback started",
            Some("ana".into()),
        );
        record(
            &mut timeline,
            at(9),
            EntryType::Note,
            "rollback started",
            Some("bo".into()),
        );
        assert_eq!(timeline.len(), 2);
        assert_eq!(timeline[0].count, Some(2));
        assert_eq!(timeline[0].last_time, Some(Time(at(5))));
        assert_eq!(timeline[1].count, None);
    }

    #[test]
    fn the_spec_actor_is_the_annotation_else_the_commander() {
        let mut incident: Incident = serde_json::from_value(serde_json::json!({
            "apiVersion": "incident.dev/v1alpha1", "kind": "Incident",
            "metadata": { "name": "i" },
            "spec": { "title": "t", "severity": "P2", "commander": "ana" },
        }))
        .expect("an Incident");
        assert_eq!(spec_actor(&incident).as_deref(), Some("ana"));
        incident.metadata.annotations =
            Some([(ACTOR_ANNOTATION.to_owned(), "bo".to_owned())].into());
        assert_eq!(spec_actor(&incident).as_deref(), Some("bo"));
        incident.metadata.annotations = None;
        incident.spec.commander = None;
        assert_eq!(spec_actor(&incident), None);
    }

    #[test]
    fn time_never_goes_backwards() {
        let mut timeline = Vec::new();
        record(&mut timeline, at(10), EntryType::Detected, "opened", None);
        let time = record(&mut timeline, at(3), EntryType::Note, "late clock", None);
        assert_eq!(time, at(10));
    }

    #[test]
    fn long_messages_are_cut() {
        let mut timeline = Vec::new();
        record(
            &mut timeline,
            at(0),
            EntryType::Note,
            "é".repeat(2000),
            None,
        );
        assert!(timeline[0].message.len() <= MAX_MESSAGE);
        assert!(timeline[0].message.ends_with("..."));
    }

    #[test]
    fn a_full_timeline_folds_the_oldest_into_one_summary() {
        let mut timeline = Vec::new();
        for i in 0..1000 {
            record(
                &mut timeline,
                at(i),
                EntryType::Note,
                format!("note {i}"),
                None,
            );
        }
        assert_eq!(timeline.len(), MAX_TIMELINE);
        let summary = &timeline[0];
        assert_eq!(summary.type_, EntryType::Summary);
        assert_eq!(summary.count, Some(1000 - (MAX_TIMELINE as i32 - 1)));
        assert_eq!(summary.time, Time(at(0)));
        assert!(summary.message.contains("901 Note"), "{}", summary.message);
        assert_eq!(
            timeline.last().map(|e| e.message.as_str()),
            Some("note 999")
        );
    }

    proptest! {
        #[test]
        fn bounded_ordered_and_nothing_lost(steps in prop::collection::vec((0i64..100, 0usize..4), 1..400)) {
            let mut timeline = Vec::new();
            let mut now = 0;
            let types = [EntryType::Note, EntryType::SeverityChanged, EntryType::Note, EntryType::UpdateDue];
            for (advance, kind) in &steps {
                now += advance - 20; // clocks may step back a little
                record(&mut timeline, at(now), types[*kind], format!("{kind}"), None);
            }
            prop_assert!(timeline.len() <= MAX_TIMELINE);
            let mut previous = None;
            for entry in &timeline {
                let start = entry.time.0;
                if let Some(previous) = previous {
                    prop_assert!(start >= previous, "times go backwards");
                }
                previous = Some(entry.last_time.as_ref().map_or(start, |t| t.0));
            }
            let total: i64 = timeline.iter().map(|e| i64::from(e.count.unwrap_or(1))).sum();
            prop_assert_eq!(total, steps.len() as i64);
        }
    }
}
