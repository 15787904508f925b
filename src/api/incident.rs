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
