//! The Incident's status (api layer): written only by the operator — phase, timeline, clocks,
//! response metrics, evidence, the runbook run and what the timeline has recorded of the spec.

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ActionStatus, NotificationEvent, Severity};

/// Where an incident stands. Mitigating and Monitoring are set by remediation.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    Detected,
    Acknowledged,
    Mitigating,
    Monitoring,
    Resolved,
    Closed,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Written only by the controller.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct IncidentStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// What happened when, oldest first; bounded (see MAX_TIMELINE).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timeline: Vec<TimelineEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sla: Option<Sla>,
    /// Who leads the response: `spec.commander`, else whoever acknowledged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commander: Option<String>,
    /// Who was paged, when and how, and when the next level is due (written with the timeline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation: Option<Escalation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<ResponseMetrics>,
    /// Time of the last update from responders (detection, acknowledgment, an update, reopening).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_time: Option<Time>,
    /// When the last update promised the next one, if it named a time (else the update interval
    /// after the last update).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_update_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Remediation actions, by name, in the order they were requested.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<ActionStatus>,
    /// What the detector saw (bounded), for detected incidents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Evidence>,
    /// The runbook this incident follows, as it was when chosen, and each step's progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runbook: Option<RunbookRun>,
    /// What the timeline has already recorded of the spec, so each change is recorded exactly once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded: Option<Recorded>,
    /// Messages for the incident's channels (the outbox): each is written here, in the same write
    /// as the transition it announces, before it is sent; bounded (see MAX_NOTIFICATIONS).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["key"]))]
    pub notifications: Vec<Notification>,
    /// How the delivery of each message stands, by key; written only by the notifications
    /// controller, so a crash after sending resends under the same key and nothing is lost.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["key"]))]
    pub deliveries: Vec<DeliveryRecord>,
    /// The incident's message in each Slack channel a bot posts to, kept current and replied to;
    /// written only by the notifications controller.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["channel"]))]
    pub threads: Vec<SlackThread>,
    /// GitOps owners paused so that a rollback sticks; bounded (see MAX_PAUSES).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gitops: Vec<crate::api::GitOpsPause>,
    /// What the public status page shows of the incident: the public updates as recorded (see
    /// `spec.publication`); written with the lifecycle update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publication: Option<super::PublicationStatus>,
}

/// Most Slack threads kept in `status.threads`.
pub const MAX_THREADS: usize = 20;

/// Where the incident's message is in one Slack channel.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SlackThread {
    /// The Channel, as namespace/name.
    pub channel: String,
    /// The Slack channel's id, as Slack answered.
    pub slack_channel: String,
    /// The message's timestamp (Slack's id of it).
    pub ts: String,
}

/// Most container images recorded of one pod template (evidence, remediation plans).
pub const MAX_IMAGES: usize = 5;
/// Longest image reference recorded, in characters.
pub const MAX_IMAGE: usize = 256;

/// Most messages kept in `status.notifications`; the oldest delivered or failed ones go first.
pub const MAX_NOTIFICATIONS: usize = 80;

/// One message for one channel, in the outbox.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    /// Stable for (incident, transition, channel): the idempotency key receivers see (the
    /// `webhook-id`), so a resend is recognisably the same message.
    pub key: String,
    /// The Channel, as namespace/name.
    pub channel: String,
    pub event: NotificationEvent,
    /// When the transition happened.
    pub time: Time,
    /// The timeline's words for it.
    pub summary: String,
    /// Who did it, when a person did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// The person a page is for, with their handle on this channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<Recipient>,
}

/// Whom a page asks to respond.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Recipient {
    /// The member's name on the schedule.
    pub name: String,
    /// Why them: e.g. `primary on call (level 1)`.
    pub role: String,
    /// Their handle on this channel's type (a Slack member id, a webhook handle), if they have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle: Option<String>,
}

/// Most pages kept in `status.escalation.pages`; the oldest go first.
pub const MAX_PAGES: usize = 50;
/// Most Channels recorded on one page (every carrying Channel still gets the message).
pub const MAX_PAGE_CHANNELS: usize = 3;

/// The escalation of an incident: a climb per opening (the first at detection, one more on each
/// reopening), each step recorded before its messages go out.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Escalation {
    /// The EscalationPolicy followed, as namespace/name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    pub state: EscalationState,
    /// Which climb: 1 from detection, one more for each reopening.
    pub episode: i32,
    /// When this climb started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// Who owned the incident when this climb started (`acknowledger/commander`): a change of it
    /// (an acknowledgment, someone taking command) stops the climb.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owned_by: Option<String>,
    /// Steps of this climb taken so far (round × levels + level): the next step's index.
    pub steps: i32,
    /// The level last paged (its name) and the round it was in (1 = the first run of the chain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    #[serde(default)]
    pub round: i32,
    /// When the next level is due, while climbing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_at: Option<Time>,
    /// The next level's name, while climbing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_level: Option<String>,
    /// What stopped the climb, or what could not be paged (a missing schedule, an empty layer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Who was paged, oldest first; bounded (see MAX_PAGES).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pages: Vec<Page>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum EscalationState {
    /// No policy applies (none named, no default).
    #[default]
    None,
    /// Business-time incident opened outside business hours: the first page waits for them.
    Waiting,
    /// Paging level after level until someone acknowledges.
    Climbing,
    /// Someone acknowledged or took command.
    Acknowledged,
    Resolved,
    /// Every level of every round was paged and nobody answered.
    Exhausted,
    /// The named policy does not exist.
    PolicyNotFound,
}

/// One person (or channel) paged at one step.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Page {
    pub time: Time,
    pub episode: i32,
    /// The round of the chain (1 = first).
    pub round: i32,
    /// The level's name, or `expert:<rule>` for a domain expert.
    pub level: String,
    /// The member paged; absent when a channel was paged without a person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<String>,
    /// Why them: `primary on call`, `named`, `expert payments`.
    pub role: String,
    /// The Channels the page went out through (namespace/name).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<String>,
}

/// How the delivery of one message stands.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryRecord {
    /// The message's key.
    pub key: String,
    pub state: DeliveryState,
    /// Attempts made so far.
    #[serde(default)]
    pub attempts: i32,
    /// When the last attempt was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt_at: Option<Time>,
    /// When to try again, while pending after a failed attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<Time>,
    /// Why the last attempt failed, without the destination's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeliveryState {
    /// Not delivered yet (or a retry is due).
    Pending,
    Sent,
    /// Given up: refused by the receiver, or undeliverable for a day.
    Failed,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TimelineEntry {
    pub time: Time,
    #[serde(rename = "type")]
    pub type_: EntryType,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// How many identical consecutive entries this one stands for (absent means 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<i32>,
    /// Time of the last of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_time: Option<Time>,
}

/// Kinds of timeline entry, after the runbooks' timeline (detection to review).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntryType {
    Detected,
    Acknowledged,
    SeverityChanged,
    CommanderChanged,
    Note,
    /// An update from the responders for the people following the incident.
    Update,
    /// An alert from a monitor started firing (or fired again).
    AlertFiring,
    /// An alert from a monitor resolved.
    AlertResolved,
    RootCauseIdentified,
    /// Not acknowledged within the severity's response time.
    Escalated,
    /// A level of the escalation policy paged people (or a domain expert was paged).
    Paged,
    /// The escalation could not page someone it should have (a missing schedule, nobody on call).
    PageFailed,
    /// A P0/P1 incident went too long without an update.
    UpdateDue,
    Resolved,
    Reopened,
    /// Resolution started the post-mortem clock.
    PostmortemDue,
    PostmortemOverdue,
    Closed,
    /// A referenced object does not exist.
    AffectedNotFound,
    /// A remediation action was requested.
    ActionRequested,
    /// A remediation action's plan was recorded and is being applied.
    ActionStarted,
    /// The change reached the Deployment (fix deployed).
    ActionApplied,
    /// The rollout completed (service recovered).
    ActionSucceeded,
    ActionFailed,
    ActionSkipped,
    /// A runbook was chosen for the incident.
    RunbookSelected,
    /// A runbook step waits for a person (approval or checkpoint).
    StepWaiting,
    /// A runbook step requested its action.
    StepStarted,
    StepSucceeded,
    StepFailed,
    /// A runbook step's `when` did not hold, or the incident was resolved before it.
    StepSkipped,
    /// A runbook escalated (an escalate step, an approval waiting too long, a failed step).
    RunbookEscalated,
    RunbookCompleted,
    /// The runbook named by `spec.runbookRef` does not exist or cannot be used.
    RunbookUnusable,
    /// Older entries folded together to keep the timeline bounded.
    Summary,
    /// Undelivered messages dropped from a full outbox (receivers down for long).
    MessagesDropped,
    /// A GitOps owner was paused so that a rollback sticks.
    GitOpsPaused,
    /// A paused GitOps owner was resumed.
    GitOpsResumed,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Sla {
    /// Acknowledge by then: detection plus the severity's response time.
    pub respond_by: Time,
    /// The response time was missed.
    pub breached: bool,
    /// The time zone whose business hours the response clock counts in; absent: 24x7.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub business_hours: Option<String>,
    /// The post-mortem is due by then (set once resolved).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postmortem_due_by: Option<Time>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ResponseMetrics {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detected_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_to_acknowledge_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_to_resolve_seconds: Option<i64>,
}

/// What the detector collected about a problem; bounded so the object stays small.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Evidence {
    /// Troubled containers (at most 20).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub containers: Vec<ContainerEvidence>,
    /// The workload's recent revisions, newest first (at most 5).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rollout_history: Vec<RevisionEvidence>,
    /// "rolled out N minutes before detection", when the newest revision is that recent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recent_deploy: Option<String>,
    /// The workload's recent Warning Events, newest first (at most 10).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<EventEvidence>,
    /// The last lines the crashing container's previous instance wrote, where the API serves logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs: Option<LogEvidence>,
    /// Who applies the workload (Flux, Argo CD, or `kubectl apply`), which may undo a rollback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_by: Option<crate::api::GitOpsOwner>,
}

/// The tail of one container's log.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LogEvidence {
    pub pod: String,
    pub container: String,
    /// True when these are the previous (crashed) instance's lines.
    pub previous: bool,
    /// The last lines, oldest first, at most 50 lines and 8 KiB.
    pub text: String,
}

/// A Warning Event about the workload or one of its pods.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EventEvidence {
    pub reason: String,
    /// What it is about, e.g. `pod/web-7d4b9-x2x1q`.
    pub object: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// How many times it was observed.
    pub count: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<Time>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ContainerEvidence {
    pub pod: String,
    pub container: String,
    /// The signal: CrashLoopBackOff, OOMKilled, ...
    pub state: String,
    pub restarts: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_termination_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_exit_code: Option<i32>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RevisionEvidence {
    pub revision: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_cause: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Time>,
}

/// Fingerprints of the spec values the timeline has recorded.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Recorded {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commander: Option<String>,
    /// Fingerprints of the notes in spec that have been recorded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Fingerprints of the updates in spec that have been recorded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub updates: Vec<String>,
    /// The alert states recorded (fingerprint, state and start of each alert in spec).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_cause: Option<String>,
    /// Referenced objects last found missing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
    /// Why the named runbook could not be followed, as last recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runbook_problem: Option<String>,
    /// The respond-by deadline whose miss was escalated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalated_for: Option<Time>,
    /// The update reminder last recorded (the deadline, then every interval after it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_due_for: Option<Time>,
    /// The post-mortem deadline whose miss was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postmortem_overdue_for: Option<Time>,
}

/// A runbook run: which runbook, at which generation (edits made later never change the run), its
/// steps as they were then, and how far each got.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RunbookRun {
    pub name: String,
    pub generation: i64,
    /// Why this runbook (explicit reference, or the match that chose it).
    pub reason: String,
    /// As many as a Runbook has (its CEL rules are costed per item: the bound keeps them cheap).
    #[schemars(length(max = 20))]
    pub steps: Vec<crate::api::RunbookStep>,
    #[serde(default)]
    pub on_failure: crate::api::OnFailure,
    pub progress: Vec<StepProgress>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StepProgress {
    pub name: String,
    /// collect, rollback, restart, scale, verify, checkpoint, escalate.
    pub kind: String,
    pub phase: StepPhase,
    /// Why it is in this phase (e.g. why it was skipped or failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Who approved it or marked it done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    /// What a collect step gathered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Evidence>,
    /// The remediation action a rollback, restart or scale step requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepPhase {
    Pending,
    WaitingApproval,
    Running,
    Succeeded,
    Failed,
    Skipped,
}

impl StepPhase {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            StepPhase::Succeeded | StepPhase::Failed | StepPhase::Skipped
        )
    }
}
