//! The status being computed (core layer): what one lifecycle update accumulates — the status, what
//! the timeline has recorded of the spec, the response metrics, the Events and metric observations
//! — and the one way to add a timeline entry, which also publishes its Event.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::Observation;
use crate::{
    api::{EntryType, Incident, IncidentStatus, Recorded, ResponseMetrics},
    core::{
        text::{fingerprint, to_second},
        timeline::{Notice, record, spec_actor},
    },
};

/// One update in progress.
pub(super) struct Draft {
    /// Now, to the second: status times are stored to the second; deciding at finer grain would
    /// never compare equal.
    pub now: Timestamp,
    pub status: IncidentStatus,
    pub recorded: Recorded,
    pub metrics: ResponseMetrics,
    pub notices: Vec<Notice>,
    pub observations: Vec<Observation>,
    /// The last update from responders, as far as this update knows.
    pub last_update: Option<Timestamp>,
    /// When the last update promised the next one, if it named a time.
    pub next_update: Option<Timestamp>,
    /// Who made the latest spec change (for entries whose actor the spec lacks).
    pub actor: Option<String>,
    /// The incident's generation, as text for Event keys.
    pub generation: String,
    uid: String,
    /// Entries the incident's whole history recorded before this update.
    recorded_before: usize,
}

impl Draft {
    pub fn new(incident: &Incident, now: Timestamp) -> Self {
        let mut status = incident.status.clone().unwrap_or_default();
        let recorded_before = status
            .timeline
            .iter()
            .map(|e| usize::try_from(e.count.unwrap_or(1)).unwrap_or(1))
            .sum();
        Draft {
            now: to_second(now),
            recorded: status.recorded.take().unwrap_or_default(),
            metrics: status.metrics.take().unwrap_or_default(),
            last_update: status.last_update_time.as_ref().map(at),
            next_update: status.next_update_time.as_ref().map(at),
            status,
            notices: Vec::new(),
            observations: Vec::new(),
            actor: spec_actor(incident),
            generation: incident.metadata.generation.unwrap_or(0).to_string(),
            uid: incident.metadata.uid.clone().unwrap_or_default(),
            recorded_before,
        }
    }

    /// A key for an Event about this incident, stable for the same transition.
    pub fn key(&self, parts: &[&str]) -> String {
        let mut all = vec![self.uid.as_str()];
        all.extend_from_slice(parts);
        fingerprint(&all)
    }

    /// Records a timeline entry now and the Event that announces it.
    pub fn entry(
        &mut self,
        type_: EntryType,
        message: String,
        who: Option<String>,
        notice_key: String,
        warning: bool,
    ) {
        let time = record(
            &mut self.status.timeline,
            self.now,
            type_,
            message.clone(),
            who.clone(),
        );
        // The position in the incident's whole history makes a repeated transition (found,
        // missing again) a new Event, while a retry of the same update names the same one.
        let position = (self.recorded_before + self.notices.len()).to_string();
        self.notices.push(Notice {
            key: fingerprint(&[&notice_key, &position]),
            warning,
            reason: reason(type_),
            message,
            actor: who,
            time,
        });
    }

    /// Marks this change as news from responders: the update clock starts again.
    pub fn touch(&mut self) {
        self.last_update = Some(self.now);
        self.next_update = None;
    }
}

pub(super) fn at(time: &Time) -> Timestamp {
    time.0
}

/// `time + duration`, cut to the second like every time in the status (durations may have a
/// fraction, e.g. `--update-interval 30m0.5s`): a deadline with a fraction would never compare
/// equal to its stored copy, so its miss would be recorded again on every reconcile.
pub(super) fn plus(time: Timestamp, duration: Duration) -> Timestamp {
    let duration = SignedDuration::try_from(duration).unwrap_or(SignedDuration::MAX);
    let sum = time.checked_add(duration).unwrap_or(Timestamp::MAX);
    to_second(sum)
}

pub(super) fn seconds_between(from: Timestamp, to: Timestamp) -> i64 {
    to.duration_since(from).as_secs().max(0)
}

/// Event reason for a timeline entry type.
fn reason(type_: EntryType) -> &'static str {
    match type_ {
        EntryType::Detected => "Detected",
        EntryType::Acknowledged => "Acknowledged",
        EntryType::SeverityChanged => "SeverityChanged",
        EntryType::CommanderChanged => "CommanderChanged",
        EntryType::Note => "Note",
        EntryType::Update => "Update",
        EntryType::AlertFiring => "AlertFiring",
        EntryType::AlertResolved => "AlertResolved",
        EntryType::RootCauseIdentified => "RootCauseIdentified",
        EntryType::Escalated => "AcknowledgeOverdue",
        EntryType::Paged => "Paged",
        EntryType::PageFailed => "PageFailed",
        EntryType::UpdateDue => "UpdateOverdue",
        EntryType::Resolved => "Resolved",
        EntryType::Reopened => "Reopened",
        EntryType::PostmortemDue => "PostmortemDue",
        EntryType::PostmortemOverdue => "PostmortemOverdue",
        EntryType::Closed => "Closed",
        EntryType::AffectedNotFound => "AffectedNotFound",
        EntryType::Summary => "TimelineFolded",
        EntryType::MessagesDropped => "MessagesDropped",
        EntryType::GitOpsPaused => "GitOpsPaused",
        EntryType::GitOpsResumed => "GitOpsResumed",
        EntryType::ActionRequested => "ActionRequested",
        EntryType::ActionStarted => "ActionStarted",
        EntryType::ActionApplied => "ActionApplied",
        EntryType::ActionSucceeded => "ActionSucceeded",
        EntryType::ActionFailed => "ActionFailed",
        EntryType::ActionSkipped => "ActionSkipped",
        EntryType::RunbookSelected => "RunbookSelected",
        EntryType::StepWaiting => "StepWaiting",
        EntryType::StepStarted => "StepStarted",
        EntryType::StepSucceeded => "StepSucceeded",
        EntryType::StepFailed => "StepFailed",
        EntryType::StepSkipped => "StepSkipped",
        EntryType::RunbookEscalated => "Escalated",
        EntryType::RunbookCompleted => "RunbookCompleted",
        EntryType::RunbookUnusable => "RunbookUnusable",
    }
}
