//! Workloads a GitOps tool applies (api layer): how Flux and Argo CD mark what they apply, and how a
//! rollback treats such a workload — pause its owner first (the way people pause it by hand), roll
//! back only, or only escalate. The marks are the tools' own contract, read here so every part of
//! the operator recognises the same owners.

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Labels Flux's kustomize-controller puts on what it applies.
pub const FLUX_KUSTOMIZATION_NAME: &str = "kustomize.toolkit.fluxcd.io/name";
pub const FLUX_KUSTOMIZATION_NAMESPACE: &str = "kustomize.toolkit.fluxcd.io/namespace";
/// Labels Flux's helm-controller puts on what a HelmRelease installs.
pub const FLUX_HELMRELEASE_NAME: &str = "helm.toolkit.fluxcd.io/name";
pub const FLUX_HELMRELEASE_NAMESPACE: &str = "helm.toolkit.fluxcd.io/namespace";
/// Argo CD's tracking annotation (its default since 3.0):
/// `<app>:<group>/<Kind>:<namespace>/<name>`, where `<app>` is `<namespace>_<name>` for an
/// Application outside Argo CD's own namespace.
pub const ARGOCD_TRACKING_ID: &str = "argocd.argoproj.io/tracking-id";
/// Where Argo CD keeps Applications (its install's default namespace).
pub const ARGOCD_NAMESPACE: &str = "argocd";
/// What `kubectl apply` leaves behind.
pub use super::metadata::LAST_APPLIED_ANNOTATION as LAST_APPLIED;

/// Who puts a workload's spec back when it changes.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GitOpsTool {
    Flux,
    ArgoCD,
    /// No controller: a later `kubectl apply` of the old file would undo a rollback.
    KubectlApply,
}

/// The object that applies a workload.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct GitOpsOwner {
    pub tool: GitOpsTool,
    /// Kustomization, HelmRelease or Application (absent for kubectl apply).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl GitOpsOwner {
    /// The owner a workload's marks name, if any. `argocd_namespace` is where Argo CD keeps
    /// Applications named without a namespace.
    pub fn of(meta: &ObjectMeta, argocd_namespace: &str) -> Option<GitOpsOwner> {
        let label = |key: &str| meta.labels.as_ref()?.get(key).filter(|v| !v.is_empty());
        let annotation = |key: &str| meta.annotations.as_ref()?.get(key);
        let owner = |tool, kind: &str, namespace: &str, name: &str| GitOpsOwner {
            tool,
            kind: Some(kind.to_owned()),
            namespace: Some(namespace.to_owned()),
            name: Some(name.to_owned()),
        };
        if let (Some(name), Some(namespace)) = (
            label(FLUX_KUSTOMIZATION_NAME),
            label(FLUX_KUSTOMIZATION_NAMESPACE),
        ) {
            return Some(owner(GitOpsTool::Flux, "Kustomization", namespace, name));
        }
        if let (Some(name), Some(namespace)) = (
            label(FLUX_HELMRELEASE_NAME),
            label(FLUX_HELMRELEASE_NAMESPACE),
        ) {
            return Some(owner(GitOpsTool::Flux, "HelmRelease", namespace, name));
        }
        if let Some(tracking) = annotation(ARGOCD_TRACKING_ID) {
            let app = tracking.split(':').next().filter(|a| !a.is_empty())?;
            let (namespace, name) = app.split_once('_').unwrap_or((argocd_namespace, app));
            return Some(owner(GitOpsTool::ArgoCD, "Application", namespace, name));
        }
        annotation(LAST_APPLIED).map(|_| GitOpsOwner {
            tool: GitOpsTool::KubectlApply,
            kind: None,
            namespace: None,
            name: None,
        })
    }

    /// A controller that puts the old spec back by itself (not a person re-applying a file).
    pub fn reverts(&self) -> bool {
        self.tool != GitOpsTool::KubectlApply
    }
}

impl fmt::Display for GitOpsOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.tool, &self.kind, &self.namespace, &self.name) {
            (GitOpsTool::KubectlApply, ..) => write!(f, "kubectl apply"),
            (tool, Some(kind), Some(namespace), Some(name)) => {
                let tool = match tool {
                    GitOpsTool::Flux => "Flux",
                    _ => "Argo CD",
                };
                write!(f, "{tool} {kind} {namespace}/{name}")
            }
            (tool, ..) => write!(f, "{tool:?}"),
        }
    }
}

/// How a rollback treats a workload a GitOps controller applies.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum GitOpsMode {
    /// Pause the owner (Flux: `spec.suspend`; Argo CD: automated sync off), then roll back.
    #[default]
    PauseAndRollback,
    /// Roll back and leave the owner alone (it may put the old version back).
    RollbackOnly,
    /// Do not roll back: escalate to a person (runbook steps only).
    EscalateOnly,
}

/// When an owner paused for a rollback is resumed.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum GitOpsResume {
    /// When a person asks (`kubectl incident resume-gitops`).
    #[default]
    OnRequest,
    /// Also by itself, once the owner's source has a revision newer than the one it had when
    /// paused (the revert landed in Git): for teams whose fix always goes through Git.
    OnNewRevision,
}

/// Where a pause stands.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PauseState {
    /// Recorded, the owner not yet changed (or not yet seen changed).
    Pausing,
    Paused,
    /// Resume recorded, the owner not yet changed back.
    Resuming,
    Resumed,
    /// The owner could not be paused (or resumed): the message says why.
    Failed,
}

/// Most pauses kept on one incident.
pub const MAX_PAUSES: usize = 5;
/// Most other workloads named as managed by a paused owner.
pub const MAX_ALSO_MANAGED: usize = 5;

/// An owner the operator paused for this incident: recorded before it is changed, so it is paused
/// once and resumed exactly once, whatever crashes in between.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct GitOpsPause {
    pub owner: GitOpsOwner,
    /// The workload whose rollback it protects, as `Kind/name`.
    pub workload: String,
    pub state: PauseState,
    /// What the owner had before, to restore on resume: Flux's `spec.suspend` (`false` or absent)
    /// or Argo CD's `spec.syncPolicy.automated` as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    /// The owner was already paused by someone else: it is left paused on resume.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub already_paused: bool,
    /// Other workloads the owner applies, which stay on their current version while it is paused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also_manages: Vec<String>,
    /// The source revision the owner had applied when paused (to resume on a new one, if asked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// Resume by itself on a new source revision (`gitopsResume: OnNewRevision`, as asked when paused).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub resume_on_new_revision: bool,
    /// The owner's source, as `Kind namespace/name` (Flux), when it was read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The source's revision when paused: a different one means something new landed in Git.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_revision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed_at: Option<Time>,
    /// Who asked for the resume (a person, or `incident-operator` on a new revision).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn meta(labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> ObjectMeta {
        let map = |pairs: &[(&str, &str)]| {
            Some(
                pairs
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect::<BTreeMap<_, _>>(),
            )
        };
        ObjectMeta {
            labels: map(labels),
            annotations: map(annotations),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn each_tools_marks_name_its_owner() {
        let flux = meta(
            &[
                (FLUX_KUSTOMIZATION_NAME, "apps"),
                (FLUX_KUSTOMIZATION_NAMESPACE, "flux-system"),
            ],
            &[(LAST_APPLIED, "{}")],
        );
        let owner = GitOpsOwner::of(&flux, "argocd").expect("Flux");
        assert_eq!(owner.to_string(), "Flux Kustomization flux-system/apps");
        assert!(owner.reverts());

        let helm = meta(
            &[
                (FLUX_HELMRELEASE_NAME, "shop"),
                (FLUX_HELMRELEASE_NAMESPACE, "shop"),
            ],
            &[],
        );
        assert_eq!(
            GitOpsOwner::of(&helm, "argocd").map(|o| o.to_string()),
            Some("Flux HelmRelease shop/shop".into())
        );

        let argo = meta(
            &[],
            &[(ARGOCD_TRACKING_ID, "checkout:apps/Deployment:shop/web")],
        );
        assert_eq!(
            GitOpsOwner::of(&argo, "argocd").map(|o| o.to_string()),
            Some("Argo CD Application argocd/checkout".into())
        );
        let anywhere = meta(
            &[],
            &[(
                ARGOCD_TRACKING_ID,
                "team-a_checkout:apps/Deployment:shop/web",
            )],
        );
        assert_eq!(
            GitOpsOwner::of(&anywhere, "argocd").map(|o| o.to_string()),
            Some("Argo CD Application team-a/checkout".into())
        );

        let applied =
            GitOpsOwner::of(&meta(&[], &[(LAST_APPLIED, "{}")]), "argocd").expect("kubectl");
        assert_eq!(applied.tool, GitOpsTool::KubectlApply);
        assert!(!applied.reverts());

        assert_eq!(GitOpsOwner::of(&meta(&[], &[]), "argocd"), None);
        // Half a mark is no mark: Flux always sets both labels.
        let half = meta(&[(FLUX_KUSTOMIZATION_NAME, "apps")], &[]);
        assert_eq!(GitOpsOwner::of(&half, "argocd"), None);
        assert_eq!(
            GitOpsOwner::of(&meta(&[], &[(ARGOCD_TRACKING_ID, ":x")]), "argocd"),
            None
        );
    }
}
