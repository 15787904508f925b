//! The Incident resource (api layer): one problem, from detection to post-mortem. People (kubectl,
//! GitOps, the plugin) and the detector write `spec`; only the controller writes `status`.

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{IncidentStatus, PublicUpdate, Publication, RemediationAction, Severity};

/// Most notes kept in `spec.notes`; older ones stay in the timeline once recorded.
pub const MAX_NOTES: usize = 30;
/// Most updates kept in `spec.updates`; older ones stay in the timeline once recorded.
pub const MAX_UPDATES: usize = 20;
/// Most alerts kept in `spec.alerts` (the resolved, then the oldest, go first).
pub const MAX_ALERTS: usize = 20;
/// Most labels kept of one alert.
pub const MAX_ALERT_LABELS: usize = 12;
/// Longest alert summary kept.
pub const MAX_ALERT_TEXT: usize = 512;
/// Longest runbook or generator URL kept (a longer one is dropped: a cut URL leads nowhere).
pub const MAX_ALERT_URL: usize = 1024;
/// Most kinds of trouble recorded on one incident (there are eight).
pub const MAX_SIGNALS: usize = 10;
/// Most pod names kept per signal ("some of the pods").
pub const MAX_SIGNAL_PODS: usize = 10;
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
    derive = "PartialEq",
    printcolumn = r#"{"name":"Severity","type":"string","jsonPath":".spec.severity"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Title","type":"string","jsonPath":".spec.title"}"#,
    printcolumn = r#"{"name":"Commander","type":"string","jsonPath":".status.commander"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(oldSelf.actions) || has(self.actions) && oldSelf.actions.all(o, self.actions.exists(n, n.name == o.name && n == o))").message("a requested action cannot be changed or removed; add an action with a new name instead").field_path(".actions"))]
#[x_kube(validation = Rule::new("!has(self.publicUpdates) || size(self.publicUpdates) == 0 || has(self.publication)").message("public updates need a publication: publish the incident first (spec.publication)"))]
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

    /// How the incident came to us (e.g. `user-report`, `support-ticket`, `monitoring`): a
    /// lowercase word, or words joined by dashes. Incidents the operator opens itself say where
    /// they came from in the `incident.dev/source` label instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
    )]
    pub source: Option<String>,

    /// Who reported it: a person, a team, a customer's contact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub reporter: Option<String>,

    /// Where the report lives (a support ticket, a chat thread): an http(s) URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), regex(pattern = r"^https?://\S+$"))]
    pub ticket: Option<String>,

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
    #[schemars(length(max = MAX_NOTES))]
    pub notes: Vec<Note>,

    /// Updates for the people following the incident: what is known, what is being done, when the
    /// next one comes. Each is recorded once and sent to the channels; on P0/P1 incidents only
    /// these (and the acknowledgment) reset the update clock. Drop old ones to add new ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_UPDATES))]
    pub updates: Vec<StatusUpdate>,

    /// Follow-up after resolution; `completed: true` closes the incident.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postmortem: Option<Postmortem>,

    /// Remediation requests, each executed at most once, in order: a record, so an action once
    /// requested can be neither changed nor removed. Add a new one (new name) to act again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub actions: Vec<RemediationAction>,

    /// Health signals behind an incident the operator detected (written by the detector).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_SIGNALS))]
    pub signals: Vec<Signal>,

    /// Alerts from monitors behind the incident, by fingerprint (written by the alert receiver).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_ALERTS))]
    pub alerts: Vec<AlertSignal>,

    /// The runbook to follow, instead of the one matching would choose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runbook_ref: Option<RunbookRef>,

    /// The EscalationPolicy (in the incident's namespace) that pages people until someone
    /// acknowledges, instead of the namespace's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub escalation_policy: Option<String>,

    /// Runbook steps a person approved (a remediation waiting for approval) or marked done (a
    /// checkpoint).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["step"]))]
    pub approvals: Vec<StepApproval>,

    /// What to do with the GitOps owners paused for this incident's rollbacks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gitops: Option<IncidentGitOps>,

    /// The incident's public part: set it to show the incident on the status page (public title,
    /// impact, components). Without it nothing of the incident is public.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publication: Option<Publication>,

    /// Updates for the public status page, each recorded once (with its time) in
    /// `status.publication`; drop old ones to add new ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub public_updates: Vec<PublicUpdate>,
}

/// Resuming the GitOps owners paused for the incident (`kubectl incident resume-gitops`).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct IncidentGitOps {
    /// Resume every owner paused for this incident (once the fix is in Git).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub resume: bool,
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

/// One alert from a monitor (Alertmanager), as last heard.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AlertSignal {
    /// The monitor's identity of the alert (Alertmanager: the hash of its labels).
    #[schemars(length(min = 1, max = 64))]
    pub fingerprint: String,
    /// The alert's name (`alertname`).
    #[schemars(length(min = 1, max = 128))]
    pub name: String,
    pub state: AlertState,
    pub starts_at: Time,
    /// When it resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_ALERT_TEXT))]
    pub summary: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_ALERT_URL))]
    pub runbook_url: Option<String>,
    /// Where the monitor shows it (Prometheus: the rule's expression in its UI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_ALERT_URL))]
    pub generator_url: Option<String>,
    /// The alert's labels (at most 12; keys of at most 128 bytes, values of at most 256).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 12, "additionalProperties" = {"type": "string", "maxLength": 256}))]
    #[x_kube(validation = Rule::new("self.all(k, size(k) <= 128)").message("alert label names are at most 128 bytes"))]
    pub labels: std::collections::BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    Firing,
    Resolved,
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
    #[schemars(length(max = MAX_SIGNAL_PODS), inner(length(max = 253)))]
    pub pods: Vec<String>,
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
    // An Argo Rollouts Rollout (argoproj.io/v1alpha1) in the incident's namespace.
    Rollout,
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

/// One update from the responders (the seeds' update message).
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct StatusUpdate {
    #[schemars(length(min = 1, max = 128))]
    pub author: String,
    /// What is known and what is being done.
    #[schemars(length(min = 1, max = 2000))]
    pub text: String,
    /// How the response stands now (default: as the phase says).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ResponseStatus>,
    /// When the next update comes, from this one (e.g. `30m`); the update clock's next deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32), regex(pattern = super::duration::PATTERN))]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1s') && duration(self) <= duration('24h')").message("nextUpdateIn must be between 1s and 24h"))]
    pub next_update_in: Option<String>,
}

/// How the response stands, in the words of the seeds' update message.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum ResponseStatus {
    Investigating,
    /// The cause is known.
    Identified,
    /// A fix is being applied.
    Fixing,
    /// A fix is in; watching that it holds.
    Monitoring,
}

impl ResponseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ResponseStatus::Investigating => "investigating",
            ResponseStatus::Identified => "identified",
            ResponseStatus::Fixing => "fixing",
            ResponseStatus::Monitoring => "monitoring",
        }
    }
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
