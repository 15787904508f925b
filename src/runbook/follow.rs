//! Following a runbook on an incident (shell): choose it, gather the facts and evidence its steps
//! need, call [`engine::advance`], and add the action a step requests to the incident's
//! `spec.actions` (server-side apply, own field manager) before the status that records it is
//! written, so a crash in between asks again for the same action instead of losing or repeating it.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::{
    apps::v1::{Deployment, ReplicaSet},
    core::v1::Pod,
    events::v1::Event,
};
use kube::{
    Api, Client, ResourceExt,
    api::{ListParams, LogParams, Patch, PatchParams},
};
use serde_json::json;
use tracing::{debug, info};

use super::{
    engine::{self, DeploymentFacts, Facts},
    select::{self, Selection},
};
use crate::{
    Error, Result,
    api::{
        AffectedKind, CollectStep, Evidence, Incident, LogEvidence, Runbook, RunbookRun, StepKind,
    },
    detection::{
        classify::pod_signals,
        evidence::{MAX_LOG_BYTES, evidence, log_tail, log_target},
        group::{PodSignals, Workload},
    },
    lifecycle::decide::{ActionEntry, LifecycleConfig, RunbookProblem},
    remediation::executor::owned_replica_sets,
};

/// Field manager of the actions runbooks add to `spec.actions`.
pub const FIELD_MANAGER: &str = "incident-operator-runbook";
/// Set when a runbook changed the incident's severity; the detector then keeps it.
pub const SEVERITY_OVERRIDE_ANNOTATION: &str = "incident.dev/severity-override";

/// What following the runbook produced in this reconcile.
#[derive(Default)]
pub struct Followed {
    pub entries: Vec<ActionEntry>,
    pub wake_at: Option<Timestamp>,
    /// The named runbook cannot be followed; the lifecycle records it once and sets a condition.
    pub problem: Option<RunbookProblem>,
}

/// Chooses or continues the incident's runbook; updates `incident` (spec actions, severity,
/// status.runbook) in place so the caller's status write carries the run.
pub async fn follow(
    client: &Client,
    incident: &mut Incident,
    config: &LifecycleConfig,
    now: Timestamp,
) -> Result<Followed> {
    let mut followed = Followed::default();
    let namespace = incident.namespace().unwrap_or_default();
    let deployment = affected_deployment(client, incident).await?;
    let mut run = incident.status.as_ref().and_then(|s| s.runbook.clone());
    if run.is_none() {
        if incident.spec.resolution.is_some() {
            return Ok(followed);
        }
        let runbooks: Vec<Runbook> = Api::<Runbook>::namespaced(client.clone(), &namespace)
            .list(&ListParams::default())
            .await
            .map_err(Error::Kube)?
            .items;
        let labels = deployment
            .as_ref()
            .map(|d| d.metadata.labels.clone().unwrap_or_default());
        match select::choose(incident, &runbooks, labels.as_ref()) {
            Selection::Chosen { runbook, reason } => {
                let (started, mut entry) = engine::start(runbook, &reason);
                info!(runbook = %started.name, generation = started.generation, "following runbook");
                if let Some(severity) = runbook
                    .spec
                    .severity
                    .filter(|s| *s != incident.spec.severity)
                {
                    entry.message.push_str(&format!(
                        "; severity set from {} to {severity} by the runbook",
                        incident.spec.severity
                    ));
                    override_severity(client, incident, &started.name, severity).await?;
                }
                followed.entries.push(entry);
                run = Some(started);
            }
            Selection::Unusable {
                name,
                found,
                reason,
            } => {
                debug!(runbook = %name, %reason, "the incident's runbook cannot be followed");
                followed.problem = Some(RunbookProblem {
                    reason: if found { "NotUsable" } else { "NotFound" },
                    message: reason,
                });
                return Ok(followed);
            }
            Selection::None => return Ok(followed),
        }
    }
    let Some(run) = run else {
        return Ok(followed);
    };
    let finished = run.progress.iter().all(|p| p.phase.is_terminal());
    if !finished {
        let facts = facts(client, incident, &run, deployment.as_ref(), config).await?;
        let advance = engine::advance(&run, incident, &facts, now);
        if advance.request.is_some() {
            request_actions(client, incident, &advance.run, &facts).await?;
        }
        followed.entries.extend(advance.entries);
        followed.wake_at = advance.wake_at;
        incident.status.get_or_insert_with(Default::default).runbook = Some(advance.run);
    } else {
        incident.status.get_or_insert_with(Default::default).runbook = Some(run);
    }
    Ok(followed)
}

/// The first Deployment the incident names, if it exists.
async fn affected_deployment(client: &Client, incident: &Incident) -> Result<Option<Deployment>> {
    let own = incident.namespace().unwrap_or_default();
    let Some(reference) = incident
        .spec
        .affected
        .iter()
        .find(|a| a.kind == AffectedKind::Deployment)
    else {
        return Ok(None);
    };
    // Runbooks act only inside the incident's own namespace.
    if reference.namespace.as_deref().is_some_and(|ns| ns != own) {
        return Ok(None);
    }
    Api::<Deployment>::namespaced(client.clone(), &own)
        .get_opt(&reference.name)
        .await
        .map_err(Error::Kube)
}

async fn facts(
    client: &Client,
    incident: &Incident,
    run: &RunbookRun,
    deployment: Option<&Deployment>,
    config: &LifecycleConfig,
) -> Result<Facts> {
    let namespace = incident.namespace().unwrap_or_default();
    let mut facts = Facts {
        detected_at: incident.metadata.creation_timestamp.as_ref().map(|t| t.0),
        signals_cleared_at: incident
            .annotations()
            .get(crate::detection::detector::CLEARED_ANNOTATION)
            .and_then(|t| t.parse().ok()),
        response_time: config.response_time(incident.spec.severity),
        ..Facts::default()
    };
    let Some(deployment) = deployment else {
        return Ok(facts);
    };
    let name = deployment.name_any();
    let replica_sets = owned_replica_sets(client, &namespace, deployment).await?;
    facts.deployment = Some(DeploymentFacts {
        name: name.clone(),
        // Healthy: the current generation fully rolled out and available, as `rollout status` says.
        healthy: matches!(
            crate::remediation::verify::progress(
                deployment,
                deployment.metadata.generation.unwrap_or(0)
            ),
            crate::remediation::verify::Progress::Complete { .. }
        ),
        newest_revision_at: replica_sets
            .iter()
            .max_by_key(|rs| revision(rs))
            .and_then(|rs| rs.metadata.creation_timestamp.as_ref().map(|t| t.0)),
    });
    if let Some(step) = engine::current(run).filter(|s| s.kind() == Some(StepKind::Collect)) {
        let what = step.collect.clone().unwrap_or_default();
        facts.collected = Some(
            collect(
                client,
                &namespace,
                deployment,
                &replica_sets,
                &what,
                facts.detected_at,
            )
            .await?,
        );
    }
    Ok(facts)
}

fn revision(rs: &ReplicaSet) -> i64 {
    rs.annotations()
        .get("deployment.kubernetes.io/revision")
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// Gathers what a collect step asks for, with the detector's evidence rules.
async fn collect(
    client: &Client,
    namespace: &str,
    deployment: &Deployment,
    replica_sets: &[ReplicaSet],
    what: &CollectStep,
    detected: Option<Timestamp>,
) -> Result<Evidence> {
    let name = deployment.name_any();
    let selector = deployment
        .spec
        .selector
        .match_labels
        .as_ref()
        .map(|labels| {
            labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let now = Timestamp::now();
    let workload = Workload {
        namespace: namespace.to_owned(),
        kind: "Deployment".into(),
        name: name.clone(),
    };
    let pods: Vec<Pod> = if selector.is_empty() {
        Vec::new()
    } else {
        Api::<Pod>::namespaced(client.clone(), namespace)
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(Error::Kube)?
            .items
    };
    let troubled: Vec<PodSignals> = pods
        .iter()
        .filter_map(|pod| {
            let troubles = pod_signals(pod, now, 0);
            (!troubles.is_empty()).then(|| PodSignals {
                pod: pod.name_any(),
                workload: workload.clone(),
                troubles,
            })
        })
        .collect();
    let refs: Vec<&PodSignals> = troubled.iter().collect();
    let events: Vec<Event> = if what.events {
        let pod_names: Vec<String> = pods.iter().map(|p| p.name_any()).collect();
        let rs_names: Vec<String> = replica_sets.iter().map(|r| r.name_any()).collect();
        Api::<Event>::namespaced(client.clone(), namespace)
            .list(&ListParams::default().fields("type=Warning"))
            .await
            .map_err(Error::Kube)?
            .items
            .into_iter()
            .filter(|e| {
                e.regarding.as_ref().is_some_and(|r| {
                    let object = r.name.clone().unwrap_or_default();
                    match r.kind.as_deref() {
                        Some("Pod") => pod_names.contains(&object),
                        Some("ReplicaSet") => rs_names.contains(&object),
                        Some("Deployment") => object == name,
                        _ => false,
                    }
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    let event_refs: Vec<&Event> = events.iter().collect();
    let mut gathered = evidence(&refs, replica_sets, &event_refs, detected.unwrap_or(now));
    if !what.pod_states {
        gathered.containers.clear();
    }
    if !what.rollout_history {
        gathered.rollout_history.clear();
        gathered.recent_deploy = None;
    }
    if let Some(logs) = &what.logs
        && let Some((pod, container)) = log_target(&refs)
    {
        let params = LogParams {
            container: Some(container.clone()),
            previous: true,
            tail_lines: Some(logs.tail_lines),
            limit_bytes: Some(64 * 1024),
            ..LogParams::default()
        };
        match Api::<Pod>::namespaced(client.clone(), namespace)
            .logs(&pod, &params)
            .await
        {
            Ok(text) => {
                gathered.logs = Some(LogEvidence {
                    pod,
                    container,
                    previous: true,
                    text: log_tail(&text, MAX_LOG_BYTES),
                })
            }
            Err(error) => debug!(%error, "no previous log to collect"),
        }
    }
    Ok(gathered)
}

/// Applies every action the run has requested so far (the field manager's whole set, so none is
/// ever dropped), and adds them to `incident` so this reconcile can start executing at once.
async fn request_actions(
    client: &Client,
    incident: &mut Incident,
    run: &RunbookRun,
    facts: &Facts,
) -> Result<()> {
    let Some(deployment) = &facts.deployment else {
        return Ok(());
    };
    let actions: Vec<_> = run
        .steps
        .iter()
        .zip(&run.progress)
        .filter(|(_, p)| p.action.is_some())
        .filter_map(|(step, _)| engine::action_for(step, &deployment.name))
        .collect();
    let patch = json!({
        "apiVersion": "incident.dev/v1alpha1",
        "kind": "Incident",
        "spec": { "actions": actions },
    });
    let incidents: Api<Incident> =
        Api::namespaced(client.clone(), &incident.namespace().unwrap_or_default());
    let written = incidents
        .patch(
            &incident.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(Error::Kube)?;
    incident.spec.actions = written.spec.actions.clone();
    incident.metadata.resource_version = written.resource_version();
    incident.metadata.generation = written.metadata.generation;
    Ok(())
}

async fn override_severity(
    client: &Client,
    incident: &mut Incident,
    runbook: &str,
    severity: crate::api::Severity,
) -> Result<()> {
    let actor = format!("runbook/{runbook}");
    let patch = json!({
        "metadata": { "annotations": BTreeMap::from([
            ("incident.dev/actor", actor.as_str()),
            (SEVERITY_OVERRIDE_ANNOTATION, actor.as_str()),
        ]) },
        "spec": { "severity": severity },
    });
    let incidents: Api<Incident> =
        Api::namespaced(client.clone(), &incident.namespace().unwrap_or_default());
    let written = incidents
        .patch(
            &incident.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .map_err(Error::Kube)?;
    incident.spec.severity = written.spec.severity;
    incident.metadata = written.metadata;
    Ok(())
}
