//! Value enums and parsers of the plugin's flags (plugin layer): what `--status` and `--impact`
//! accept and what they mean for an internal and a public update; the workload a rollback names.

use clap::ValueEnum;

use crate::api::{GitOpsResume, Impact, PublicStatus, ResponseStatus, WorkloadKind};

/// The workload `rollback` acts on: `NAME` (a Deployment) or `KIND/NAME` as `kubectl rollout undo`
/// takes it (`deployment/web`, `sts/db`, `daemonset/agent`), or an Argo Rollouts Rollout
/// (`rollout/web`, `ro/web`, its CRD's short name), which is aborted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    pub kind: WorkloadKind,
    pub name: String,
}

impl Workload {
    pub fn parse(text: &str) -> Result<Workload, String> {
        let (kind, name) = match text.split_once('/') {
            None => (WorkloadKind::Deployment, text),
            Some((kind, name)) => {
                let kind = match kind {
                    "deployment" | "deployments" | "deploy" => WorkloadKind::Deployment,
                    "statefulset" | "statefulsets" | "sts" => WorkloadKind::StatefulSet,
                    "daemonset" | "daemonsets" | "ds" => WorkloadKind::DaemonSet,
                    "rollout" | "rollouts" | "ro" => WorkloadKind::Rollout,
                    other => {
                        return Err(format!(
                            "`{other}` cannot be rolled back: name a deployment, statefulset, \
                             daemonset or rollout (e.g. sts/{name})"
                        ));
                    }
                };
                (kind, name)
            }
        };
        Ok(Workload {
            kind,
            name: super::report::object_name(name)?,
        })
    }

    /// As kubectl prints it: `deployment/web`.
    pub fn reference(&self) -> String {
        format!("{}/{}", self.kind.to_string().to_lowercase(), self.name)
    }
}

/// `--gitops-resume` of a rollback whose workload Flux or Argo CD applies.
#[derive(Clone, Copy, ValueEnum)]
pub enum ResumeOwner {
    /// When someone runs `kubectl incident resume-gitops` (the default).
    OnRequest,
    /// Also by itself once the owner's source has a new revision (the revert is in Git).
    OnNewRevision,
}

impl ResumeOwner {
    pub fn into_api(self) -> GitOpsResume {
        match self {
            ResumeOwner::OnRequest => GitOpsResume::OnRequest,
            ResumeOwner::OnNewRevision => GitOpsResume::OnNewRevision,
        }
    }
}

/// `--status` of an update (resolved only for a public one).
#[derive(Clone, Copy, ValueEnum)]
pub enum UpdateStatus {
    Investigating,
    Identified,
    Fixing,
    Monitoring,
    Resolved,
}

impl UpdateStatus {
    pub fn into_api(self) -> ResponseStatus {
        match self {
            UpdateStatus::Investigating => ResponseStatus::Investigating,
            UpdateStatus::Identified => ResponseStatus::Identified,
            UpdateStatus::Fixing => ResponseStatus::Fixing,
            // Refused before: an internal update is never "resolved" (use `resolve`).
            UpdateStatus::Monitoring | UpdateStatus::Resolved => ResponseStatus::Monitoring,
        }
    }

    /// None for `fixing`, which the public page does not know (refused before any request).
    pub fn into_public(self) -> Option<PublicStatus> {
        match self {
            UpdateStatus::Investigating => Some(PublicStatus::Investigating),
            UpdateStatus::Identified => Some(PublicStatus::Identified),
            UpdateStatus::Monitoring => Some(PublicStatus::Monitoring),
            UpdateStatus::Resolved => Some(PublicStatus::Resolved),
            UpdateStatus::Fixing => None,
        }
    }

    /// Why this status cannot go with an internal (`text`) or a public update, if it cannot.
    pub fn problem(self, text: bool, public: bool) -> Option<&'static str> {
        match self {
            UpdateStatus::Fixing if public => Some(
                "a public update's --status is investigating, identified, monitoring or resolved",
            ),
            UpdateStatus::Resolved if text => Some(
                "an update's --status is never resolved: resolve with `kubectl incident resolve` \
                 (a published incident then gets its resolved update), or post only --public",
            ),
            _ => None,
        }
    }
}

/// `--impact` of a publication.
#[derive(Clone, Copy, ValueEnum)]
pub enum PublicImpact {
    None,
    Minor,
    Major,
    Critical,
}

impl PublicImpact {
    pub fn into_api(self) -> Impact {
        match self {
            PublicImpact::None => Impact::None,
            PublicImpact::Minor => Impact::Minor,
            PublicImpact::Major => Impact::Major,
            PublicImpact::Critical => Impact::Critical,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rollback_names_its_workload_as_kubectl_rollout_undo_does() {
        let web = Workload::parse("web").expect("a Deployment by default");
        assert_eq!(web.kind, WorkloadKind::Deployment);
        assert_eq!(web.reference(), "deployment/web");
        for (text, kind) in [
            ("deploy/web", WorkloadKind::Deployment),
            ("sts/db", WorkloadKind::StatefulSet),
            ("statefulset/db", WorkloadKind::StatefulSet),
            ("ds/agent", WorkloadKind::DaemonSet),
            ("daemonsets/agent", WorkloadKind::DaemonSet),
            ("ro/canary", WorkloadKind::Rollout),
            ("rollout/canary", WorkloadKind::Rollout),
        ] {
            assert_eq!(Workload::parse(text).map(|w| w.kind), Ok(kind), "{text}");
        }
        assert_eq!(
            Workload::parse("sts/db").map(|w| w.reference()),
            Ok("statefulset/db".to_owned())
        );
        let refused = Workload::parse("job/x").expect_err("no rollback for Jobs");
        assert!(
            refused.contains("deployment, statefulset, daemonset or rollout"),
            "{refused}"
        );
        assert!(Workload::parse("sts/Bad_Name").is_err());
        assert!(Workload::parse("sts/").is_err());
    }
}
