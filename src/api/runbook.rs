//! The Runbook resource (api layer): a response procedure kept in Git. The operator matches it to
//! incidents and runs its steps in order: collect evidence, remediate (behind an approval gate),
//! verify, wait for people at checkpoints, escalate. Its status is kstatus-compatible (Ready /
//! Stalled).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::severity::Severity;

#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "incident.dev",
    version = "v1alpha1",
    kind = "Runbook",
    namespaced,
    shortname = "rb",
    category = "incidents",
    status = "RunbookStatus",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Matched","type":"integer","jsonPath":".status.matchedIncidents"}"#,
    printcolumn = r#"{"name":"Owner","type":"string","jsonPath":".spec.owner"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct RunbookSpec {
    /// What the procedure is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2000))]
    pub description: Option<String>,

    /// The team that keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub owner: Option<String>,

    /// Which incidents it applies to; every criterion given must hold. An incident can also name the
    /// runbook in `spec.runbookRef`, which wins over matching.
    #[serde(default, rename = "match")]
    pub match_: RunbookMatch,

    /// Severity the incidents it runs on are raised (or lowered) to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,

    /// The procedure, in order.
    #[schemars(length(min = 1, max = 20), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    #[x_kube(validation = Rule::new("self.filter(s, has(s.collect)).size() <= 2").message("at most 2 collect steps: what each gathers is kept in the incident's status"))]
    pub steps: Vec<RunbookStep>,

    /// What a failed step does to the rest: `Escalate` (stop and escalate, the default) or
    /// `Continue`.
    #[serde(default)]
    pub on_failure: OnFailure,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RunbookMatch {
    /// Signal types (e.g. CrashLoopBackOff) or names of firing alerts (e.g. HighErrorRate); the
    /// incident must carry one of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20), inner(length(max = 64)))]
    pub signals: Vec<String>,
    /// The incident's severity must be one of these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 4))]
    pub severities: Vec<Severity>,
    /// Labels of the incident's affected workload (its Deployment, StatefulSet or DaemonSet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::selector::bounded")]
    pub workload_selector: Option<LabelSelector>,
    /// Labels of the incident itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::selector::bounded")]
    pub incident_selector: Option<LabelSelector>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OnFailure {
    #[default]
    Escalate,
    Continue,
}

/// One step: a name and exactly one kind.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(has(self.collect) ? 1 : 0) + (has(self.rollback) ? 1 : 0) + (has(self.restart) ? 1 : 0) + (has(self.scale) ? 1 : 0) + (has(self.verify) ? 1 : 0) + (has(self.checkpoint) ? 1 : 0) + (has(self.escalate) ? 1 : 0) == 1").message("a step needs exactly one of collect, rollback, restart, scale, verify, checkpoint or escalate"))]
#[x_kube(validation = Rule::new("!has(self.approval) && !has(self.automaticFor) || has(self.rollback) || has(self.restart) || has(self.scale)").message("approval applies to rollback, restart and scale steps only"))]
pub struct RunbookStep {
    /// Unique within the runbook; names the step in the incident's status and approvals. No
    /// double hyphen: the step's actions on later workloads are named `runbook-STEP--N`.
    #[schemars(
        length(min = 1, max = 40),
        regex(pattern = r"^[a-z0-9]+(-[a-z0-9]+)*$")
    )]
    pub name: String,
    /// Runs the step only when this holds; otherwise it is skipped with the reason recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<StepCondition>,
    /// For remediation steps: `Required` (default) waits for a person's approval in the incident's
    /// `spec.approvals`; `Automatic` runs at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
    /// Severities at which the remediation runs without approval, whatever `approval` says.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 4))]
    pub automatic_for: Vec<Severity>,

    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collect: Option<CollectStep>,
    /// `kubectl rollout undo` of the incident's affected Deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RollbackStep>,
    /// `kubectl rollout restart` of the incident's affected Deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<RestartStep>,
    /// Scale the incident's affected Deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<ScaleStep>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<VerifyStep>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<CheckpointStep>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalate: Option<EscalateStep>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Approval {
    Automatic,
    #[default]
    Required,
}

#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct StepCondition {
    /// Only when the affected Deployment's newest revision was rolled out at most this long before
    /// the incident was detected (a recent deploy is the suspect).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32), regex(pattern = super::duration::PATTERN))]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1s') && duration(self) <= duration('720h')").message("rolledOutWithin must be between 1s and 720h"))]
    pub rolled_out_within: Option<String>,
    /// Only when the incident carries this signal type (or a firing alert of this name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub signal: Option<String>,
}

/// Evidence to gather into the step's result.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct CollectStep {
    /// Recent Warning Events of the workload and its pods.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub events: bool,
    /// Container states, restart counts, last termination.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pod_states: bool,
    /// The Deployment's revisions (images, change-cause, when).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rollout_history: bool,
    /// The last lines of the crashed container's previous instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs: Option<LogCollect>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LogCollect {
    #[schemars(range(min = 1, max = 1000))]
    pub tail_lines: i64,
}

#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Eq, Default)]
#[x_kube(validation = Rule::new("!has(self.gitopsResume) || self.gitopsResume == 'OnRequest' || !has(self.gitops) || self.gitops == 'PauseAndRollback'").message("gitopsResume: OnNewRevision resumes a paused owner: it needs gitops: PauseAndRollback"))]
#[serde(rename_all = "camelCase")]
pub struct RollbackStep {
    /// Revision to return to; absent means the previous one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub to_revision: Option<i64>,
    /// For a Deployment Flux or Argo CD applies: `PauseAndRollback` (default: pause the owner,
    /// then roll back), `RollbackOnly`, or `EscalateOnly` (no rollback: escalate to a person).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gitops: Option<super::GitOpsMode>,
    /// Pause an owner that applies other workloads too; `false` escalates instead. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause_shared_owner: Option<bool>,
    /// When the paused owner resumes: `OnRequest` (default) or also `OnNewRevision`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gitops_resume: Option<super::GitOpsResume>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
pub struct RestartStep {}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
pub struct ScaleStep {
    #[schemars(range(min = 0, max = 10000))]
    pub replicas: i32,
}

/// Waits until the affected Deployment is available (and, if given, the incident's signals have
/// stayed clear for a while), failing after `timeout`.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct VerifyStep {
    #[schemars(length(max = 32), regex(pattern = super::duration::PATTERN))]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1s') && duration(self) <= duration('24h')").message("verify.timeout must be between 1s and 24h"))]
    pub timeout: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32), regex(pattern = super::duration::PATTERN))]
    #[x_kube(validation = Rule::new("duration(self) <= duration('24h')").message("verify.signalsClearedFor must be at most 24h"))]
    pub signals_cleared_for: Option<String>,
}

/// A step a person marks done in the incident's `spec.approvals`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
pub struct CheckpointStep {
    #[schemars(length(min = 1, max = 500))]
    pub prompt: String,
}

/// Records an escalation (timeline entry and Warning Event).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
pub struct EscalateStep {
    #[schemars(length(min = 1, max = 500))]
    pub message: String,
    /// Who to escalate to (a team, a rota).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub to: Option<String>,
}

/// kstatus-compatible: `Ready` True when the runbook is usable, `Stalled` True when it is not and
/// will not become so without an edit.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RunbookStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Incidents that have followed this runbook.
    #[serde(default)]
    pub matched_incidents: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used: Option<Time>,
}

/// What kind of step this is, for display and dispatch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepKind {
    Collect,
    Rollback,
    Restart,
    Scale,
    Verify,
    Checkpoint,
    Escalate,
}

impl StepKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Collect => "collect",
            StepKind::Rollback => "rollback",
            StepKind::Restart => "restart",
            StepKind::Scale => "scale",
            StepKind::Verify => "verify",
            StepKind::Checkpoint => "checkpoint",
            StepKind::Escalate => "escalate",
        }
    }

    pub fn remediates(self) -> bool {
        matches!(
            self,
            StepKind::Rollback | StepKind::Restart | StepKind::Scale
        )
    }
}

impl RunbookStep {
    /// The step's kind; None when it has none or several (the schema refuses both).
    pub fn kind(&self) -> Option<StepKind> {
        let kinds = [
            (self.collect.is_some(), StepKind::Collect),
            (self.rollback.is_some(), StepKind::Rollback),
            (self.restart.is_some(), StepKind::Restart),
            (self.scale.is_some(), StepKind::Scale),
            (self.verify.is_some(), StepKind::Verify),
            (self.checkpoint.is_some(), StepKind::Checkpoint),
            (self.escalate.is_some(), StepKind::Escalate),
        ];
        let mut present = kinds.iter().filter(|(set, _)| *set).map(|(_, k)| *k);
        match (present.next(), present.next()) {
            (Some(kind), None) => Some(kind),
            _ => None,
        }
    }
}
