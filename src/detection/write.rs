//! The detector's writes (shell): one problem's incident (server-side apply, detector's field
//! manager), its evidence in status, and the annotations that time auto-resolution. A pass runs
//! these for its problems side by side; each is safe to repeat after a crash.

use std::{collections::HashMap, sync::Arc};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::{apps::v1::Deployment, core::v1::Pod, events::v1::Event};
use kube::{
    Api, Client, ResourceExt,
    api::{LogParams, Patch, PatchParams},
    runtime::reflector::ObjectRef,
};
use serde_json::json;
use tracing::{debug, info};

use super::{
    detector::{
        CLEARED_ANNOTATION, FIELD_MANAGER, FINGERPRINT_LABEL, PROBLEM_LABEL, RESOLVER,
        SOURCE_LABEL, Stores, Target, event_workload, target,
    },
    evidence::{MAX_LOG_BYTES, evidence, log_tail, log_target},
    group::{PodSignals, Problem, signals},
    policy::{DetectionConfig, severity_set_by_others},
};
use crate::{
    Error, Result,
    api::{Incident, LogEvidence, Signal},
    lifecycle::decide::ACTOR_ANNOTATION,
    remediation::executor::owned_replica_sets,
};

/// What every problem's writes in one pass share.
pub(super) struct Pass<'a> {
    pub(super) client: &'a Client,
    pub(super) stores: &'a Stores,
    pub(super) config: &'a DetectionConfig,
    pub(super) incidents: &'a [Arc<Incident>],
    pub(super) pods: &'a [PodSignals],
    pub(super) owners: &'a HashMap<(String, String), String>,
    pub(super) now: Timestamp,
    pub(super) cooldown: SignedDuration,
}

/// Opens or updates the problem's incident, then refreshes its evidence when the signals changed.
pub(super) async fn write_problem(pass: &Pass<'_>, problem: &Problem) -> Result<()> {
    let Pass {
        client,
        stores,
        config,
        incidents,
        pods,
        owners,
        now,
        cooldown,
    } = *pass;
    let (name, existing) = match target(incidents, problem, now, cooldown) {
        Target::Existing(incident) => (incident.name_any(), Some(incident)),
        Target::New(name) => (name, None),
    };
    let signals = upsert(client, problem, &name, existing, now).await?;
    let stale = existing.is_none_or(|i| {
        i.status
            .as_ref()
            .and_then(|s| s.evidence.as_ref())
            .is_none()
    });
    if problem.workload.kind != "Deployment" || (signals.is_none() && !stale) {
        return Ok(());
    }
    let signals =
        signals.unwrap_or_else(|| existing.map(|i| i.spec.signals.clone()).unwrap_or_default());
    let on_workload: Vec<&PodSignals> = pods
        .iter()
        .filter(|p| p.workload == problem.workload)
        .collect();
    let events: Vec<Arc<Event>> = stores
        .events
        .iter()
        .flat_map(|store| store.state())
        .filter(|e| {
            e.namespace().as_deref() == Some(problem.workload.namespace.as_str())
                && event_workload(e, stores, owners).is_some_and(|(w, _)| w == problem.workload)
        })
        .collect();
    let events: Vec<&Event> = events.iter().map(|e| e.as_ref()).collect();
    let deployment = stores
        .deployments
        .get(&ObjectRef::new(&problem.workload.name).within(&problem.workload.namespace));
    record_evidence(
        client,
        problem,
        &name,
        Seen {
            deployment: deployment.as_deref(),
            pods: &on_workload,
            events: &events,
        },
        // Detection time: the first signal's first sighting.
        signals.iter().map(|s| s.first_seen.0).min().unwrap_or(now),
        config.log_tail_lines,
    )
    .await
}

/// Creates or updates the problem's incident; writes only when what the detector owns changed.
/// Returns the signals written, or None when nothing needed writing.
async fn upsert(
    client: &Client,
    problem: &Problem,
    name: &str,
    existing: Option<&Incident>,
    now: Timestamp,
) -> Result<Option<Vec<Signal>>> {
    let workload = &problem.workload;
    let previous = existing
        .map(|i| i.spec.signals.as_slice())
        .unwrap_or_default();
    let signals = signals(previous, problem, now);
    // A severity set by a runbook or a person stays; otherwise the detector's judgement stands.
    let severity = existing
        .filter(|i| {
            i.annotations()
                .contains_key(crate::runbook::follow::SEVERITY_OVERRIDE_ANNOTATION)
                || severity_set_by_others(i.metadata.managed_fields.as_deref(), FIELD_MANAGER)
        })
        .map_or(problem.severity, |i| i.spec.severity);
    if let Some(incident) = existing {
        // The problem is back (or never went): undo our own clearing and resolving, never a person's.
        let resolved_by_us = incident
            .spec
            .resolution
            .as_ref()
            .is_some_and(|r| r.by == RESOLVER);
        if resolved_by_us || incident.annotations().contains_key(CLEARED_ANNOTATION) {
            let mut patch = json!({ "metadata": { "annotations": { CLEARED_ANNOTATION: null } } });
            if resolved_by_us {
                patch["spec"] = json!({ "resolution": null });
            }
            patch_merge(client, incident, &patch).await?;
        }
        let same = incident.spec.title == problem.title
            && incident.spec.severity == severity
            && incident.spec.signals == signals;
        if same {
            return Ok(None);
        }
    }
    let mut patch = json!({
        "apiVersion": "incident.dev/v1alpha1",
        "kind": "Incident",
        "metadata": {
            "name": name,
            "labels": {
                SOURCE_LABEL: "detector",
                FINGERPRINT_LABEL: workload.fingerprint(),
                PROBLEM_LABEL: match workload.kind.as_str() {
                    "Node" => "node",
                    "Storm" => "storm",
                    _ => "workload",
                },
            },
        },
        "spec": {
            "title": problem.title,
            "severity": severity,
            "description": format!(
                "Detected by incident-operator from the health of {}/{}. {}",
                workload.kind.to_lowercase(),
                workload.name,
                problem.detail.clone().unwrap_or_default()
            ),
            "affected": affected(problem),
            "signals": signals,
        },
    });
    // Claim authorship only of a severity we set: the annotation is one slot, and taking it on
    // every update would attribute a person's concurrent change to the operator.
    if existing.is_none_or(|i| i.spec.severity != severity) {
        patch["metadata"]["annotations"] = json!({ ACTOR_ANNOTATION: RESOLVER });
    }
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &workload.namespace);
    incidents
        .patch(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(Error::Kube)?;
    if existing.is_none() {
        info!(incident = %name, namespace = %workload.namespace, severity = %problem.severity, "opened incident");
    }
    Ok(Some(signals))
}

/// The objects an incident names: the workload or node, or for a storm the held-back workloads.
fn affected(problem: &Problem) -> serde_json::Value {
    let workload = &problem.workload;
    if workload.kind != "Storm" {
        return json!([{ "kind": workload.kind, "name": workload.name }]);
    }
    let held = problem
        .signals
        .values()
        .flatten()
        .take(20)
        .filter_map(|name| {
            let mut parts = name.splitn(3, '/');
            let (namespace, kind, name) = (parts.next()?, parts.next()?, parts.next()?);
            // Nodes have no namespace (the schema refuses one); workloads keep theirs.
            Some(match kind {
                "node" => json!({ "kind": "Node", "name": name }),
                "statefulset" => {
                    json!({ "kind": "StatefulSet", "name": name, "namespace": namespace })
                }
                "daemonset" => json!({ "kind": "DaemonSet", "name": name, "namespace": namespace }),
                _ => json!({ "kind": "Deployment", "name": name, "namespace": namespace }),
            })
        });
    serde_json::Value::Array(held.collect())
}

/// What the detector's caches hold about one troubled workload.
struct Seen<'a> {
    deployment: Option<&'a Deployment>,
    pods: &'a [&'a PodSignals],
    events: &'a [&'a Event],
}

/// Writes `status.evidence` (detector's own field manager), refreshed whenever the signals change.
/// `detected` dates the problem, for "rolled out N minutes before detection".
async fn record_evidence(
    client: &Client,
    problem: &Problem,
    name: &str,
    seen: Seen<'_>,
    detected: Timestamp,
    log_tail_lines: u16,
) -> Result<()> {
    let Seen {
        deployment,
        pods,
        events,
    } = seen;
    let workload = &problem.workload;
    let owned = match deployment {
        Some(deployment) => owned_replica_sets(client, &workload.namespace, deployment).await?,
        None => Vec::new(),
    };
    let mut evidence = evidence(pods, &owned, events, detected);
    if let Some((pod, container)) = log_target(pods).filter(|_| log_tail_lines > 0) {
        evidence.logs = previous_log(
            client,
            &workload.namespace,
            &pod,
            &container,
            log_tail_lines,
        )
        .await
        .map(|text| LogEvidence {
            pod,
            container,
            previous: true,
            text,
        });
    }
    let patch = json!({
        "apiVersion": "incident.dev/v1alpha1",
        "kind": "Incident",
        "status": { "evidence": evidence },
    });
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &workload.namespace);
    incidents
        .patch_status(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(Error::Kube)?;
    Ok(())
}

/// The tail of a container's previous log, or None where the API serves no logs (the evidence is
/// still written without them).
async fn previous_log(
    client: &Client,
    namespace: &str,
    pod: &str,
    container: &str,
    lines: u16,
) -> Option<String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let params = LogParams {
        container: Some(container.to_owned()),
        previous: true,
        tail_lines: Some(i64::from(lines)),
        // Lines can be long; the API stops sending well before the evidence would overflow.
        limit_bytes: Some(64 * 1024),
        ..LogParams::default()
    };
    match pods.logs(pod, &params).await {
        Ok(text) => Some(log_tail(&text, MAX_LOG_BYTES)),
        Err(error) => {
            debug!(%error, pod, container, "no previous log for the evidence");
            None
        }
    }
}

pub(super) async fn mark_cleared(
    client: &Client,
    incident: &Incident,
    now: Timestamp,
) -> Result<()> {
    let patch = json!({
        "metadata": { "annotations": { CLEARED_ANNOTATION: Timestamp::from_second(now.as_second()).unwrap_or(now).to_string() } },
    });
    patch_merge(client, incident, &patch).await
}

pub(super) async fn resolve(client: &Client, incident: &Incident) -> Result<()> {
    let patch =
        json!({ "spec": { "resolution": { "summary": "Signals cleared", "by": RESOLVER } } });
    patch_merge(client, incident, &patch).await?;
    info!(incident = %incident.name_any(), "signals cleared; resolved");
    Ok(())
}

pub(super) async fn patch_merge(
    client: &Client,
    incident: &Incident,
    patch: &serde_json::Value,
) -> Result<()> {
    let incidents: Api<Incident> =
        Api::namespaced(client.clone(), &incident.namespace().unwrap_or_default());
    incidents
        .patch(
            &incident.name_any(),
            &PatchParams::default(),
            &Patch::Merge(patch),
        )
        .await
        .map_err(Error::Kube)?;
    Ok(())
}
