//! The Incident resource: one problem, from detection to post-mortem. People (kubectl, GitOps, the
//! plugin) and the detector write `spec`; only the controller writes `status`.

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Most notes kept in `spec.notes`; older ones stay in the timeline once recorded.
pub const MAX_NOTES: usize = 50;
/// Most entries kept in `status.timeline`; older ones fold into one summary entry.
pub const MAX_TIMELINE: usize = 100;

#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "incident.dev",
    version = "v1alpha1",
    kind = "Incident",
    namespaced,
    shortname = "inc",
    category = "incidents",
    status = "IncidentStatus",
    printcolumn = r#"{"name":"Severity","type":"string","jsonPath":".spec.severity"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Title","type":"string","jsonPath":".spec.title"}"#,
    printcolumn = r#"{"name":"Commander","type":"string","jsonPath":".spec.commander"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct IncidentSpec {
    /// What is wrong, in a line a responder understands at a glance.
    #[schemars(length(min = 1, max = 200))]
    #[x_kube(validation = Rule::new("self.matches('\\\\S')").message("title must not be blank"))]
    pub title: String,

    /// How bad it is; sets the response time (P0 15m, P1 1h, P2 4h, P3 24h by default).
    pub severity: Severity,

    /// Symptoms and scope, as known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub description: Option<String>,

    /// Who leads the response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub commander: Option<String>,

    /// Objects the incident is about; a namespace left empty means the incident's own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub affected: Vec<AffectedRef>,

    /// Setting it acknowledges the incident (someone has claimed it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledgment: Option<Acknowledgment>,

    /// Setting it resolves the incident; clearing it reopens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<Resolution>,

    /// Responders' log. Each note is recorded once in the timeline; drop old notes to add new ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    pub notes: Vec<Note>,

    /// Follow-up after resolution; `completed: true` closes the incident.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postmortem: Option<Postmortem>,

    /// Remediation requests, each executed at most once, in order. Add a new one (new name) to act
    /// again; a requested action cannot be changed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    #[x_kube(validation = Rule::new("oldSelf.all(o, !self.exists(n, n.name == o.name) || self.exists(n, n.name == o.name && n == o))").message("a requested action cannot be changed; add an action with a new name instead"))]
    pub actions: Vec<RemediationAction>,

    /// Health signals behind an incident the operator detected (written by the detector).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub signals: Vec<Signal>,

    /// The runbook to follow, instead of the one matching would choose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runbook_ref: Option<RunbookRef>,

    /// Runbook steps a person approved (a remediation waiting for approval) or marked done (a
    /// checkpoint).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["step"]))]
    pub approvals: Vec<StepApproval>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
pub struct RunbookRef {
    /// A Runbook in the incident's namespace.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub name: String,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
pub struct StepApproval {
    /// The runbook step's name.
    #[schemars(length(min = 1, max = 40))]
    pub step: String,
    /// Who approved it.
    #[schemars(length(min = 1, max = 128))]
    pub by: String,
}

/// One kind of trouble seen on the affected workload.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Signal {
    /// CrashLoopBackOff, ImagePullBackOff, OOMKilled, CreateContainerConfigError, Unschedulable,
    /// DeploymentUnavailable, ProgressDeadlineExceeded, NodeNotReady.
    #[schemars(length(min = 1, max = 64))]
    #[serde(rename = "type")]
    pub type_: String,
    pub first_seen: Time,
    pub last_seen: Time,
    /// Pods (or replicas) showing it when last seen.
    pub count: i32,
    /// Some of the pods showing it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    pub pods: Vec<String>,
}

/// One remediation request: exactly one of `rollback`, `restart` or `scale`.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(has(self.rollback) ? 1 : 0) + (has(self.restart) ? 1 : 0) + (has(self.scale) ? 1 : 0) == 1").message("an action needs exactly one of rollback, restart or scale"))]
pub struct RemediationAction {
    /// Unique within the incident; names the action in status and on the Deployment.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Compute and show the plan; change nothing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    /// Give up verifying after this long (default 600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 10, max = 86400))]
    pub timeout_seconds: Option<i64>,
    /// `kubectl rollout undo`: back to the previous revision, or to `toRevision`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RollbackAction>,
    /// `kubectl rollout restart`: replace every pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<RestartAction>,
    /// Set the replica count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<ScaleAction>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RollbackAction {
    /// A Deployment in the incident's namespace.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub deployment: String,
    /// Revision to return to; 0 or absent means the previous one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub to_revision: Option<i64>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
pub struct RestartAction {
    /// A Deployment in the incident's namespace.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub deployment: String,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
pub struct ScaleAction {
    /// A Deployment in the incident's namespace.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub deployment: String,
    #[schemars(range(min = 0, max = 10000))]
    pub replicas: i32,
}

impl RemediationAction {
    /// The Deployment the action targets.
    pub fn deployment(&self) -> &str {
        match (&self.rollback, &self.restart, &self.scale) {
            (Some(r), _, _) => &r.deployment,
            (_, Some(r), _) => &r.deployment,
            (_, _, Some(s)) => &s.deployment,
            _ => "",
        }
    }

    pub fn kind(&self) -> ActionKind {
        match (&self.rollback, &self.restart) {
            (Some(_), _) => ActionKind::Rollback,
            (_, Some(_)) => ActionKind::Restart,
            _ => ActionKind::Scale,
        }
    }
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ActionKind {
    Rollback,
    Restart,
    Scale,
}

impl fmt::Display for ActionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ActionPhase {
    /// Requested, not yet planned.
    Pending,
    /// Planned and recorded; the change is being applied.
    Running,
    /// Applied; following the rollout.
    Verifying,
    Succeeded,
    Failed,
    /// Nothing to do (already at the target) or a dry run.
    Skipped,
}

impl ActionPhase {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            ActionPhase::Succeeded | ActionPhase::Failed | ActionPhase::Skipped
        )
    }
}

impl ActionStatus {
    /// A requested action not yet planned.
    pub fn pending(name: &str, kind: ActionKind, deployment: &str) -> Self {
        Self {
            name: name.to_owned(),
            kind,
            deployment: deployment.to_owned(),
            phase: ActionPhase::Pending,
            reason: None,
            message: None,
            from_revision: None,
            to_revision: None,
            images_before: Vec::new(),
            images_after: Vec::new(),
            started_at: None,
            finished_at: None,
            planned_generation: None,
            applied_generation: None,
            applied_at: None,
        }
    }
}

/// What happened to one action.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ActionStatus {
    pub name: String,
    pub kind: ActionKind,
    pub deployment: String,
    pub phase: ActionPhase,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_revision: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_revision: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images_before: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images_after: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    /// The Deployment's generation the plan was made against; a different one means someone
    /// else changed the Deployment in between.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planned_generation: Option<i64>,
    /// The Deployment's generation after the change; the rollout to verify.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_generation: Option<i64>,
    /// When the change reached the Deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_at: Option<Time>,
}

/// Incident severity, most urgent first.
#[derive(
    Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
pub enum Severity {
    /// Critical: major outage or security breach.
    P0,
    /// High: a major feature broken.
    P1,
    /// Medium: significant degradation.
    P2,
    /// Low: minor issue.
    P3,
}

impl Severity {
    pub const ALL: [Severity; 4] = [Severity::P0, Severity::P1, Severity::P2, Severity::P3];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::P0 => "P0",
            Severity::P1 => "P1",
            Severity::P2 => "P2",
            Severity::P3 => "P3",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A reference to an object the incident is about.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Eq, Hash)]
#[x_kube(validation = Rule::new("self.kind != 'Node' && self.kind != 'Namespace' || !has(self.__namespace__)").message("Node and Namespace are cluster-scoped: leave namespace empty"))]
pub struct AffectedRef {
    pub kind: AffectedKind,
    /// The object's name.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub name: String,
    /// The object's namespace; empty means the incident's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub namespace: Option<String>,
}

/// Kinds an incident can reference; the operator checks that the object exists.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AffectedKind {
    Deployment,
    StatefulSet,
    DaemonSet,
    ReplicaSet,
    Pod,
    Service,
    Job,
    CronJob,
    Ingress,
    PersistentVolumeClaim,
    Node,
    Namespace,
}

impl AffectedKind {
    /// True for kinds that live outside any namespace.
    pub fn cluster_scoped(self) -> bool {
        matches!(self, AffectedKind::Node | AffectedKind::Namespace)
    }
}

impl fmt::Display for AffectedRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{:?} {}/{}", self.kind, ns, self.name),
            None => write!(f, "{:?} {}", self.kind, self.name),
        }
    }
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
pub struct Acknowledgment {
    /// Who claimed the incident.
    #[schemars(length(min = 1, max = 128))]
    pub by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2000))]
    pub note: Option<String>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct Resolution {
    /// Why it happened, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2000))]
    pub root_cause: Option<String>,
    /// What was done to resolve it.
    #[schemars(length(min = 1, max = 2000))]
    pub summary: String,
    /// Who resolved it.
    #[schemars(length(min = 1, max = 128))]
    pub by: String,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Note {
    #[schemars(length(min = 1, max = 128))]
    pub author: String,
    #[schemars(length(min = 1, max = 2000))]
    pub text: String,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Postmortem {
    /// Where the write-up lives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), regex(pattern = r"^https?://\S+$"))]
    pub url: Option<String>,
    /// The review is done; closes a resolved incident.
    #[serde(default)]
    pub completed: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    pub action_items: Vec<ActionItem>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
pub struct ActionItem {
    #[schemars(length(min = 1, max = 200))]
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub owner: Option<String>,
    #[serde(default)]
    pub done: bool,
}

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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<ResponseMetrics>,
    /// Time of the last update from responders (detection, acknowledgment, notes, changes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_time: Option<Time>,
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
    RootCauseIdentified,
    /// Not acknowledged within the severity's response time.
    Escalated,
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
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Sla {
    /// Acknowledge by then: detection plus the severity's response time.
    pub respond_by: Time,
    /// The response time was missed.
    pub breached: bool,
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
    /// The update deadline whose miss was recorded.
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
