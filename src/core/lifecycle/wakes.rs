//! Which changes elsewhere wake an incident's reconcile (core layer): a workload's rollout
//! progress, a Runbook that appears or changes. The incident controller maps watch events with
//! them.

use kube::ResourceExt;

use crate::api::{AffectedKind, Incident, WorkloadKind};

/// Whether a change of the Deployment `namespace/name` concerns the incident: an action of it is
/// under way on that Deployment, or a runbook it follows is in progress and it names the Deployment.
pub fn by_deployment(incident: &Incident, namespace: Option<&str>, name: &str) -> bool {
    by_workload(incident, namespace, WorkloadKind::Deployment, name)
}

/// [`by_deployment`] for a workload of any kind remediation acts on.
pub fn by_workload(
    incident: &Incident,
    namespace: Option<&str>,
    kind: WorkloadKind,
    name: &str,
) -> bool {
    let verifying = incident.status.as_ref().is_some_and(|s| {
        s.actions
            .iter()
            .any(|a| a.workload() == kind && a.deployment == name && !a.phase.is_terminal())
    });
    let affected_kind = match kind {
        WorkloadKind::Deployment => AffectedKind::Deployment,
        WorkloadKind::StatefulSet => AffectedKind::StatefulSet,
        WorkloadKind::DaemonSet => AffectedKind::DaemonSet,
        WorkloadKind::Rollout => AffectedKind::Rollout,
    };
    // A runbook in progress may be verifying this Deployment.
    let following = incident.status.as_ref().is_some_and(|s| {
        s.runbook
            .as_ref()
            .is_some_and(|r| r.progress.iter().any(|p| !p.phase.is_terminal()))
    }) && incident
        .spec
        .affected
        .iter()
        .any(|a| a.kind == affected_kind && a.name == name);
    incident.namespace().as_deref() == namespace && (verifying || following)
}

/// Whether a new or edited Runbook of `namespace` may be chosen by the incident: it is open in that
/// namespace and follows none yet.
pub fn by_runbook(incident: &Incident, namespace: Option<&str>) -> bool {
    incident.namespace().as_deref() == namespace
        && incident.spec.resolution.is_none()
        && incident.status.as_ref().is_none_or(|s| s.runbook.is_none())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn incident(status: serde_json::Value, affected: &str) -> Incident {
        serde_json::from_value(json!({
            "apiVersion": "incident.dev/v1alpha1", "kind": "Incident",
            "metadata": { "name": "i", "namespace": "shop" },
            "spec": { "title": "t", "severity": "P2",
                "affected": [{ "kind": "Deployment", "name": affected }] },
            "status": status,
        }))
        .expect("an Incident")
    }

    fn action(deployment: &str, phase: &str) -> serde_json::Value {
        json!({ "actions": [{ "name": "a", "kind": "Rollback", "deployment": deployment,
            "phase": phase }] })
    }

    #[test]
    fn a_deployment_wakes_the_incidents_acting_on_it_in_its_namespace() {
        let verifying = incident(action("web", "Verifying"), "other");
        assert!(by_deployment(&verifying, Some("shop"), "web"));
        assert!(
            !by_deployment(&verifying, Some("ads"), "web"),
            "other namespace"
        );
        assert!(
            !by_deployment(&verifying, Some("shop"), "api"),
            "other deployment"
        );
        let done = incident(action("web", "Succeeded"), "web");
        assert!(
            !by_deployment(&done, Some("shop"), "web"),
            "nothing under way"
        );
    }

    #[test]
    fn a_deployment_wakes_a_runbook_in_progress_that_names_it() {
        let run = |phase: &str| {
            json!({ "runbook": { "name": "rb", "generation": 1, "reason": "matched",
                "steps": [{ "name": "v", "verify": { "timeout": "5m" } }],
                "progress": [{ "name": "v", "kind": "verify", "phase": phase }] } })
        };
        assert!(by_deployment(
            &incident(run("Running"), "web"),
            Some("shop"),
            "web"
        ));
        assert!(!by_deployment(
            &incident(run("Running"), "api"),
            Some("shop"),
            "web"
        ));
        assert!(!by_deployment(
            &incident(run("Succeeded"), "web"),
            Some("shop"),
            "web"
        ));
    }

    #[test]
    fn a_runbook_wakes_open_incidents_without_one() {
        let open = incident(json!({}), "web");
        assert!(by_runbook(&open, Some("shop")));
        assert!(!by_runbook(&open, Some("ads")));
        let mut resolved = open.clone();
        resolved.spec.resolution = Some(crate::api::Resolution {
            root_cause: None,
            summary: "fixed".into(),
            by: "ana".into(),
        });
        assert!(!by_runbook(&resolved, Some("shop")));
        let following = incident(
            json!({ "runbook": { "name": "rb", "generation": 1, "reason": "matched",
                "steps": [], "progress": [] } }),
            "web",
        );
        assert!(!by_runbook(&following, Some("shop")));
    }
}
