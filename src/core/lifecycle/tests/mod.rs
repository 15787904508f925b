//! Unit and property tests of the lifecycle update (core layer, tests): the simulated controller
//! loop and helpers every test file shares; the tests are in one file per part of the lifecycle.
//!
//! The tests drive [`update`] the way the controller does: the status it returns is stored back
//! into the incident (through a JSON round trip, as the API server would store and return it)
//! before the next call, and every spec edit bumps `metadata.generation`.

mod acknowledgment;
mod clocks;
mod conditions;
mod detection;
mod properties;
mod resolution;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::{LifecycleConfig, Related, Update, update};
use crate::api::{
    Acknowledgment, ActionItem, EntryType, Incident, IncidentSpec, IncidentStatus, Note, Phase,
    Postmortem, Resolution, Severity, StatusUpdate, TimelineEntry, metadata::ACTOR_ANNOTATION,
};

pub(super) const MIN: i64 = 60;
pub(super) const HOUR: i64 = 60 * MIN;
pub(super) const DAY: i64 = 24 * HOUR;
/// Creation time of every test incident.
const CREATED: i64 = 1_800_000_000;
const UID: &str = "7c1f6a52-3b7e-4c36-9d1e-0a5b2f8e4d11";

/// `seconds` after the test incident was created.
pub(super) fn t(seconds: i64) -> Timestamp {
    Timestamp::from_second(CREATED + seconds).expect("valid timestamp")
}

fn spec(severity: Severity) -> IncidentSpec {
    IncidentSpec {
        title: "Database down".to_owned(),
        severity,
        description: Some("checkout fails with 503".to_owned()),
        commander: Some("ana".to_owned()),
        source: None,
        reporter: None,
        ticket: None,
        affected: Vec::new(),
        acknowledgment: None,
        resolution: None,
        notes: Vec::new(),
        updates: Vec::new(),
        alerts: Vec::new(),
        postmortem: None,
        actions: Vec::new(),
        signals: Vec::new(),
        runbook_ref: None,
        escalation_policy: None,
        approvals: Vec::new(),
        gitops: None,
        publication: None,
        public_updates: Vec::new(),
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

pub(super) fn ack(by: &str) -> Option<Acknowledgment> {
    Some(Acknowledgment {
        by: by.to_owned(),
        note: Some("looking".to_owned()),
    })
}

pub(super) fn resolution(root_cause: Option<&str>) -> Option<Resolution> {
    Some(Resolution {
        root_cause: root_cause.map(str::to_owned),
        summary: "rotated the certificate".to_owned(),
        by: "bo".to_owned(),
    })
}

pub(super) fn status_update(author: &str, text: &str, next: Option<&str>) -> StatusUpdate {
    StatusUpdate {
        author: author.to_owned(),
        text: text.to_owned(),
        status: None,
        next_update_in: next.map(str::to_owned),
    }
}

pub(super) fn note(author: &str, text: &str) -> Note {
    Note {
        author: author.to_owned(),
        text: text.to_owned(),
    }
}

pub(super) fn completed_postmortem() -> Option<Postmortem> {
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
pub(super) fn round_trip(status: &IncidentStatus) -> IncidentStatus {
    let json = serde_json::to_value(status).expect("status serializes");
    serde_json::from_value(json).expect("status deserializes")
}

/// The controller loop around `decide`, with a hand on the clock.
pub(super) struct Sim {
    pub(super) incident: Incident,
    pub(super) related: Related,
    pub(super) config: LifecycleConfig,
    pub(super) now: Timestamp,
}

impl Sim {
    pub(super) fn new(severity: Severity) -> Self {
        Self {
            incident: incident(severity),
            related: Related::default(),
            config: LifecycleConfig::default(),
            now: t(0),
        }
    }

    pub(super) fn with_config(mut self, config: LifecycleConfig) -> Self {
        self.config = config;
        self
    }

    /// Edits the spec; the API server bumps the generation when it changed.
    pub(super) fn edit(&mut self, change: impl FnOnce(&mut IncidentSpec)) {
        let before = self.incident.spec.clone();
        change(&mut self.incident.spec);
        if self.incident.spec != before {
            let generation = self.incident.metadata.generation.get_or_insert(0);
            *generation += 1;
        }
    }

    pub(super) fn set_actor(&mut self, actor: Option<&str>) {
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
    pub(super) fn peek(&self, now: Timestamp) -> Update {
        update(&self.incident, &self.related, now, &self.config)
    }

    /// Reconciles at the current time and stores the new status.
    pub(super) fn reconcile(&mut self) -> Update {
        let decision = self.peek(self.now);
        self.incident.status = Some(round_trip(&decision.status));
        decision
    }

    /// Reconciles at `seconds` after creation.
    pub(super) fn at(&mut self, seconds: i64) -> Update {
        self.now = t(seconds);
        self.reconcile()
    }

    pub(super) fn status(&self) -> &IncidentStatus {
        self.incident
            .status
            .as_ref()
            .expect("reconciled at least once")
    }

    pub(super) fn phase(&self) -> Option<Phase> {
        self.status().phase
    }

    pub(super) fn entries(&self, type_: EntryType) -> Vec<&TimelineEntry> {
        self.status()
            .timeline
            .iter()
            .filter(|e| e.type_ == type_)
            .collect()
    }

    pub(super) fn types_since(&self, index: usize) -> Vec<EntryType> {
        self.status().timeline[index..]
            .iter()
            .map(|e| e.type_)
            .collect()
    }

    pub(super) fn condition(&self, type_: &str) -> &Condition {
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

pub(super) fn reasons(decision: &Update) -> Vec<&'static str> {
    decision.notices.iter().map(|n| n.reason).collect()
}

pub(super) fn keys(decision: &Update) -> Vec<String> {
    decision.notices.iter().map(|n| n.key.clone()).collect()
}

pub(super) fn assert_condition(sim: &Sim, type_: &str, status: &str, reason: &str) {
    let c = sim.condition(type_);
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        (status, reason),
        "{type_}: {c:?}"
    );
}

/// Asserts that deciding at `seconds` changes nothing and emits nothing.
pub(super) fn assert_quiet_at(sim: &mut Sim, seconds: i64) {
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

/// Puts remediation in the state that yields `phase`: an action under way (Mitigating) or a last
/// action that succeeded (Monitoring).
pub(super) fn set_remediation(status: &mut IncidentStatus, phase: Phase) {
    use crate::api::{ActionKind, ActionPhase, ActionStatus};
    let action_phase = match phase {
        Phase::Mitigating => ActionPhase::Running,
        _ => ActionPhase::Succeeded,
    };
    if phase == Phase::Mitigating || status.actions.is_empty() {
        let mut action = ActionStatus::pending(
            &format!("action-{}", status.actions.len()),
            ActionKind::Rollback,
            (crate::api::WorkloadKind::Deployment, "app"),
        );
        action.phase = action_phase;
        status.actions.push(action);
    } else if let Some(last) = status.actions.last_mut() {
        last.phase = action_phase;
    }
}
