//! Remediation requests and their outcome (api layer): what `spec.actions` may ask for (rollback,
//! restart, scale) and what `status.actions` reports of each.

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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

/// The workload kinds remediation acts on; absent means Deployment (the field's first meaning).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum WorkloadKind {
    #[default]
    Deployment,
    StatefulSet,
    DaemonSet,
    // An Argo Rollouts Rollout (argoproj.io/v1alpha1): a rollback aborts its update. (A plain
    // comment: a doc comment on one variant changes the generated schema of every field.)
    Rollout,
}

impl WorkloadKind {
    /// kubectl's resource word, as in `statefulset/db`.
    pub fn resource(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "deployment",
            WorkloadKind::StatefulSet => "statefulset",
            WorkloadKind::DaemonSet => "daemonset",
            WorkloadKind::Rollout => "rollout",
        }
    }
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Eq)]
#[x_kube(validation = Rule::new("!has(self.gitopsResume) || self.gitopsResume == 'OnRequest' || !has(self.gitops) || self.gitops == 'PauseAndRollback'").message("gitopsResume: OnNewRevision resumes a paused owner: it needs gitops: PauseAndRollback"))]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.kind) || self.kind != 'Rollout' || !has(self.toRevision) || self.toRevision == 0").message("a Rollout is rolled back by aborting its update (its stable ReplicaSet stays): toRevision does not apply; use kubectl argo rollouts undo --to-revision"))]
pub struct RollbackAction {
    /// The workload's name, in the incident's namespace (the field predates `kind`: it names a
    /// StatefulSet or DaemonSet too when `kind` says so).
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub deployment: String,
    /// Deployment (the default), StatefulSet, DaemonSet, or Rollout (aborts its update, as
    /// `kubectl argo rollouts abort` does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<WorkloadKind>,
    /// Revision to return to; 0 or absent means the previous one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub to_revision: Option<i64>,
    /// For a Deployment Flux or Argo CD applies: pause its owner first (`PauseAndRollback`, the
    /// default) so the rollback sticks, or roll back only (`RollbackOnly`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gitops: Option<super::GitOpsMode>,
    /// Pause an owner that applies other workloads too (they stay as they are while it is paused,
    /// and are listed); `false` fails the action instead. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause_shared_owner: Option<bool>,
    /// When the paused owner resumes: `OnRequest` (default: `kubectl incident resume-gitops`) or
    /// also `OnNewRevision` (by itself once its source has a new revision: the revert is in Git).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gitops_resume: Option<super::GitOpsResume>,
}

#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Eq)]
#[x_kube(validation = Rule::new("!has(self.kind) || self.kind != 'Rollout'").message("a Rollout is restarted by its own controller (kubectl argo rollouts restart sets spec.restartAt); the operator only aborts a Rollout's update: use rollback with kind Rollout"))]
pub struct RestartAction {
    /// The workload's name, in the incident's namespace (of the kind `kind` says).
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub deployment: String,
    /// Deployment (the default), StatefulSet or DaemonSet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<WorkloadKind>,
}

#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Eq)]
#[x_kube(validation = Rule::new("!has(self.kind) || self.kind != 'DaemonSet'").message("a DaemonSet runs one pod per eligible node and has no replica count: it cannot be scaled"))]
#[x_kube(validation = Rule::new("!has(self.kind) || self.kind != 'Rollout'").message("a Rollout's replicas are split between its stable and canary ReplicaSets by its steps: scale it with kubectl argo rollouts or in Git; the operator only aborts a Rollout's update (rollback with kind Rollout)"))]
pub struct ScaleAction {
    /// The workload's name, in the incident's namespace (of the kind `kind` says).
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub deployment: String,
    /// Deployment (the default) or StatefulSet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<WorkloadKind>,
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

    /// `statefulset/db`, as kubectl names the target.
    pub fn target(&self) -> String {
        format!("{}/{}", self.workload_kind().resource(), self.deployment())
    }

    /// The kind of workload the action targets.
    pub fn workload_kind(&self) -> WorkloadKind {
        match (&self.rollback, &self.restart, &self.scale) {
            (Some(r), _, _) => r.kind,
            (_, Some(r), _) => r.kind,
            (_, _, Some(s)) => s.kind,
            _ => None,
        }
        .unwrap_or_default()
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
    /// The kind of workload the action acts on.
    pub fn workload(&self) -> WorkloadKind {
        self.workload_kind.unwrap_or_default()
    }

    /// `statefulset/db`, as kubectl names it.
    pub fn target(&self) -> String {
        format!("{}/{}", self.workload().resource(), self.deployment)
    }

    /// A requested action not yet planned.
    pub fn pending(name: &str, kind: ActionKind, target: (WorkloadKind, &str)) -> Self {
        Self {
            name: name.to_owned(),
            kind,
            deployment: target.1.to_owned(),
            workload_kind: (target.0 != WorkloadKind::Deployment).then_some(target.0),
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
    /// The workload's name (of the kind `workloadKind` says).
    pub deployment: String,
    /// StatefulSet, DaemonSet or Rollout; absent means Deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_kind: Option<WorkloadKind>,
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
