//! Writes on Incidents (cluster layer), each as the field manager of its concern: the detector's
//! incident and evidence, the annotations that time auto-resolution and the resolution itself, a
//! runbook's actions and severity, and the controller's status. Each is safe to repeat after a
//! crash.

use jiff::Timestamp;
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use tracing::info;

use super::{apply, apply_status, apply_status_of, merge};
use crate::{
    Result,
    api::{
        DeliveryRecord, Evidence, Incident, IncidentStatus, RemediationAction, Severity,
        SlackThread,
        metadata::{
            ACTOR_ANNOTATION, AUTO_RESOLVE_MANAGER, CLEARED_ANNOTATION, DETECTOR_MANAGER,
            NOTIFICATIONS_MANAGER, OPERATOR_ACTOR, RUNBOOK_ACTIONS_MANAGER,
            RUNBOOK_SEVERITY_MANAGER, SEEN_ANNOTATION, SEVERITY_OVERRIDE_ANNOTATION,
            STATUS_MANAGER,
        },
    },
    core::text::to_second,
};

/// Opens or updates a detected incident with the body the detector decided on.
pub async fn apply_detected(
    client: &Client,
    namespace: &str,
    name: &str,
    body: Value,
) -> Result<()> {
    let incidents: Api<Incident> = Api::namespaced(client.clone(), namespace);
    apply(&incidents, name, body, DETECTOR_MANAGER).await?;
    Ok(())
}

/// Writes `status.evidence` of a detected incident (the detector's own field of the status).
pub async fn write_evidence(
    client: &Client,
    namespace: &str,
    name: &str,
    evidence: &Evidence,
) -> Result<()> {
    let incidents: Api<Incident> = Api::namespaced(client.clone(), namespace);
    let body = json!({ "status": { "evidence": evidence } });
    apply_status(&incidents, name, body, DETECTOR_MANAGER).await?;
    Ok(())
}

/// The problem is back: drops the detector's clearing note and, when `unresolve`, its resolution.
pub async fn undo_clearing(client: &Client, incident: &Incident, unresolve: bool) -> Result<()> {
    let mut patch = json!({ "metadata": { "annotations": { CLEARED_ANNOTATION: null } } });
    if unresolve {
        patch["spec"] = json!({ "resolution": null });
    }
    merge(client, incident, &patch, AUTO_RESOLVE_MANAGER).await?;
    Ok(())
}

/// Notes when an opted-in incident's objects were seen in trouble (and drops a clearing note).
pub async fn mark_seen(client: &Client, incident: &Incident, now: Timestamp) -> Result<()> {
    let patch = json!({ "metadata": { "annotations": {
        SEEN_ANNOTATION: to_second(now).to_string(), CLEARED_ANNOTATION: null } } });
    merge(client, incident, &patch, AUTO_RESOLVE_MANAGER).await?;
    Ok(())
}

/// Notes when every signal of the incident was first seen clear.
pub async fn mark_cleared(client: &Client, incident: &Incident, now: Timestamp) -> Result<()> {
    let patch = json!({
        "metadata": { "annotations": { CLEARED_ANNOTATION: to_second(now).to_string() } },
    });
    merge(client, incident, &patch, AUTO_RESOLVE_MANAGER).await?;
    Ok(())
}

/// Resolves an incident whose signals stayed clear, in the operator's name.
pub async fn resolve(client: &Client, incident: &Incident) -> Result<()> {
    let patch =
        json!({ "spec": { "resolution": { "summary": "Signals cleared", "by": OPERATOR_ACTOR } } });
    merge(client, incident, &patch, AUTO_RESOLVE_MANAGER).await?;
    info!(incident = %incident.name_any(), "signals cleared; resolved");
    Ok(())
}

/// Applies every action a runbook run has requested so far (the field manager's whole set, so none
/// is ever dropped); returns the incident as written.
pub async fn request_actions(
    client: &Client,
    incident: &Incident,
    actions: &[RemediationAction],
) -> Result<Incident> {
    let incidents: Api<Incident> = super::own_namespace(client, incident);
    let body = json!({ "spec": { "actions": actions } });
    apply(
        &incidents,
        &incident.name_any(),
        body,
        RUNBOOK_ACTIONS_MANAGER,
    )
    .await
}

/// Sets the severity a runbook asks for, marking it so the detector keeps it; returns the incident
/// as written.
pub async fn set_runbook_severity(
    client: &Client,
    incident: &Incident,
    runbook: &str,
    severity: Severity,
) -> Result<Incident> {
    let actor = format!("runbook/{runbook}");
    let patch = json!({
        "metadata": { "annotations": {
            ACTOR_ANNOTATION: actor.as_str(),
            SEVERITY_OVERRIDE_ANNOTATION: actor.as_str(),
        } },
        "spec": { "severity": severity },
    });
    merge(client, incident, &patch, RUNBOOK_SEVERITY_MANAGER).await
}

/// Writes the controller's status, only if the incident is still at the resourceVersion it was
/// read at; returns the incident as written. `status.deliveries` is left out: it is the
/// notifications controller's alone.
pub async fn write_status(
    client: &Client,
    incident: &Incident,
    status: &IncidentStatus,
) -> Result<Incident> {
    let mut own = status.clone();
    own.deliveries.clear();
    own.threads.clear();
    apply_status_of(client, incident, &own, STATUS_MANAGER).await
}

/// Writes the record of the incident's deliveries and its Slack messages (`status.deliveries`,
/// `status.threads`: the notifications controller's own fields), only if the incident is still at
/// the resourceVersion it was read at.
pub async fn write_deliveries(
    client: &Client,
    incident: &Incident,
    deliveries: &[DeliveryRecord],
    threads: &[SlackThread],
) -> Result<Incident> {
    let body = json!({
        "metadata": { "resourceVersion": incident.resource_version() },
        "status": { "deliveries": deliveries, "threads": threads },
    });
    let incidents: Api<Incident> = super::own_namespace(client, incident);
    apply_status(
        &incidents,
        &incident.name_any(),
        body,
        NOTIFICATIONS_MANAGER,
    )
    .await
}
