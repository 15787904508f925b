//! The object contract (api layer): every `incident.dev/*` label and annotation the operator reads
//! or writes, the Kubernetes annotations it shares with kubectl and the Deployment controller,
//! every field manager it writes as (one per concern), and the helpers that read them. One home, so
//! a name is spelt once.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry, ObjectMeta};
use serde_json::json;

/// API group of every resource the operator defines.
pub const GROUP: &str = "incident.dev";
/// `apiVersion` of every resource the operator defines.
pub const API_VERSION: &str = "incident.dev/v1alpha1";

// ---- labels and annotations on Incidents -------------------------------------------------------

/// Who made the latest spec change, for entries whose actor the spec lacks (severity, commander).
/// The kubectl plugin sets it; without it the commander is assumed.
pub const ACTOR_ANNOTATION: &str = "incident.dev/actor";
/// Marks incidents the detector opened (value `detector`); people's incidents never carry it.
pub const SOURCE_LABEL: &str = "incident.dev/source";
/// The value of [`SOURCE_LABEL`] on incidents the detector opened.
pub const SOURCE_DETECTOR: &str = "detector";
/// The value of [`SOURCE_LABEL`] on incidents an Alertmanager alert group opened.
pub const SOURCE_ALERTMANAGER: &str = "alertmanager";
/// On incidents opened by alerts: the fingerprint of the Alertmanager group (its `groupKey`).
pub const ALERT_GROUP_LABEL: &str = "incident.dev/alert-group";
/// Stable identity of the problem an incident is about (one incident per problem).
pub const FINGERPRINT_LABEL: &str = "incident.dev/fingerprint";
/// What a detected incident is about: `workload`, `node` or `storm`.
pub const PROBLEM_LABEL: &str = "incident.dev/problem";
/// When every signal of the incident was first seen clear.
pub const CLEARED_ANNOTATION: &str = "incident.dev/signals-cleared-at";
/// A person's incident carrying this label (value "true") is auto-resolved like a detected one.
pub const AUTO_RESOLVE_LABEL: &str = "incident.dev/auto-resolve";
/// When the objects of an opted-in incident were first seen in trouble.
pub const SEEN_ANNOTATION: &str = "incident.dev/signals-seen-at";
/// Set when a runbook changed the incident's severity; the detector then keeps it.
pub const SEVERITY_OVERRIDE_ANNOTATION: &str = "incident.dev/severity-override";
/// Who the operator's own resolutions and edits are attributed to (`resolution.by`, the actor).
pub const OPERATOR_ACTOR: &str = "incident-operator";

// ---- annotations on Deployments -----------------------------------------------------------------

/// Set on a Deployment (value `disabled`) to forbid the operator from ever changing it.
pub const CONSENT_ANNOTATION: &str = "incident.dev/remediation";
/// Names the incident whose action last changed the Deployment.
pub const INCIDENT_ANNOTATION: &str = "incident.dev/incident";
/// `<incident uid>/<action name>` of the action that last changed the Deployment: how a restarted
/// operator tells whether its change already landed.
pub const ACTION_ANNOTATION: &str = "incident.dev/action";
/// What `kubectl rollout restart` sets on the pod template.
pub const RESTARTED_AT_ANNOTATION: &str = "kubectl.kubernetes.io/restartedAt";
/// What `kubectl apply` records of the last applied object.
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// The revision the Deployment controller gives each rollout (on Deployments and ReplicaSets).
pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";
/// The label the Deployment controller puts on each ReplicaSet's pods.
pub const POD_TEMPLATE_HASH_LABEL: &str = "pod-template-hash";

// ---- field managers: one per concern ------------------------------------------------------------

/// The Incident controller's status writes (timeline, clocks, conditions, actions, runbook run).
pub const STATUS_MANAGER: &str = "incident-operator";
/// The detector's incidents: their spec, labels and `status.evidence`.
pub const DETECTOR_MANAGER: &str = "incident-operator-detector";
/// The detector's merge patches that time auto-resolution and resolve (annotations, resolution).
pub const AUTO_RESOLVE_MANAGER: &str = "incident-operator-auto-resolve";
/// The actions runbook steps add to an incident's `spec.actions`.
pub const RUNBOOK_ACTIONS_MANAGER: &str = "incident-operator-runbook";
/// A runbook's severity written onto the incident it is followed by.
pub const RUNBOOK_SEVERITY_MANAGER: &str = "incident-operator-runbook-severity";
/// The Runbook controller's status writes.
pub const RUNBOOK_STATUS_MANAGER: &str = "incident-operator-runbooks";
/// The changes remediation makes to Deployments (rollback, restart, scale).
pub const REMEDIATION_MANAGER: &str = "incident-operator-remediation";
/// The pauses and resumes of GitOps owners (Flux `spec.suspend`, Argo CD automated sync).
pub const GITOPS_MANAGER: &str = "incident-operator-gitops";
/// The notifications controller's record of each delivery (`status.deliveries`).
pub const NOTIFICATIONS_MANAGER: &str = "incident-operator-notifications";
/// The channel controller's status writes.
pub const CHANNEL_STATUS_MANAGER: &str = "incident-operator-channels";
/// The on-call controller's status writes (OnCallSchedule, EscalationPolicy).
pub const ONCALL_STATUS_MANAGER: &str = "incident-operator-oncall";
/// The kubectl plugin's writes.
pub const PLUGIN_MANAGER: &str = "kubectl-incident";
/// The alert receiver (opens incidents from alerts and keeps `spec.alerts`).
pub const ALERTS_MANAGER: &str = "incident-operator-alerts";

/// `reportingController` of every Event the operator publishes.
pub const REPORTING_CONTROLLER: &str = "incident.dev/incident-operator";

// ---- readers -----------------------------------------------------------------------------------

/// The text of the Deployment controller's revision annotation, when present.
pub fn revision_text(metadata: &ObjectMeta) -> Option<&str> {
    metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION_ANNOTATION))
        .map(String::as_str)
}

/// The revision of a Deployment or ReplicaSet; None when absent or not a number.
pub fn revision(metadata: &ObjectMeta) -> Option<i64> {
    revision_text(metadata).and_then(|r| r.parse().ok())
}

/// Whether a managed-fields entry owns `spec.severity`.
fn owns_severity(entry: &ManagedFieldsEntry) -> bool {
    entry
        .fields_v1
        .as_ref()
        .and_then(|f| f.0.get("f:spec"))
        .and_then(|spec| spec.get("f:severity"))
        .is_some()
}

/// The managed-fields entries that own `spec.severity`, reduced to that one field: all the
/// detector's incident cache keeps of them (the rest costs memory and is never read).
pub fn severity_owners(
    managed: Option<Vec<ManagedFieldsEntry>>,
) -> Option<Vec<ManagedFieldsEntry>> {
    let owners: Vec<ManagedFieldsEntry> = managed?
        .into_iter()
        .filter(owns_severity)
        .map(|m| ManagedFieldsEntry {
            fields_v1: Some(FieldsV1(json!({ "f:spec": { "f:severity": {} } }))),
            ..m
        })
        .collect();
    (!owners.is_empty()).then_some(owners)
}

/// True when a manager other than `manager` owns the incident's severity (a person with
/// `kubectl incident severity` or `kubectl edit`, a runbook).
pub fn severity_set_by_others(managed: Option<&[ManagedFieldsEntry]>, manager: &str) -> bool {
    managed
        .unwrap_or_default()
        .iter()
        .any(|m| m.manager.as_deref() != Some(manager) && owns_severity(m))
}

#[cfg(test)]
mod tests {
    use kube::Resource;

    use super::*;
    use crate::api::{Incident, Runbook};

    #[test]
    fn the_api_version_is_the_resources_own() {
        assert_eq!(Incident::api_version(&()), API_VERSION);
        assert_eq!(Runbook::api_version(&()), API_VERSION);
        assert_eq!(Incident::group(&()), GROUP);
    }

    #[test]
    fn a_severity_set_by_someone_else_is_kept_and_only_its_owners_are_cached() {
        let entry = |manager: &str, fields: serde_json::Value| ManagedFieldsEntry {
            manager: Some(manager.to_owned()),
            operation: Some("Update".to_owned()),
            fields_v1: Some(FieldsV1(fields)),
            ..ManagedFieldsEntry::default()
        };
        let detector = DETECTOR_MANAGER;
        let created = vec![
            entry(
                detector,
                json!({ "f:spec": { "f:severity": {}, "f:title": {} } }),
            ),
            entry(STATUS_MANAGER, json!({ "f:status": { "f:phase": {} } })),
        ];
        let kept = severity_owners(Some(created.clone())).expect("the detector owns it");
        assert_eq!(kept.len(), 1);
        assert_eq!(
            kept[0].fields_v1.as_ref().map(|f| f.0.clone()),
            Some(json!({ "f:spec": { "f:severity": {} } }))
        );
        assert!(!severity_set_by_others(Some(&kept), detector));

        let mut edited = created;
        edited.push(entry(
            PLUGIN_MANAGER,
            json!({ "f:spec": { "f:severity": {} } }),
        ));
        let kept = severity_owners(Some(edited));
        assert!(severity_set_by_others(kept.as_deref(), detector));
        assert!(!severity_set_by_others(None, detector));
        assert_eq!(severity_owners(Some(Vec::new())), None);
    }
}
