//! Following a runbook inside the incident reconcile (controllers layer): choose it, gather the
//! facts and evidence its steps need, call the pure engine, and add the action a step requests to
//! the incident's `spec.actions` (server-side apply, own field manager) before the status that
//! records it is written, so a crash in between asks again for the same action instead of losing
//! or repeating it.

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::Deployment;
use kube::{Client, ResourceExt};
use tracing::{debug, info};

use crate::{
    Result,
    api::{
        ARGOCD_NAMESPACE, AffectedKind, CollectStep, Evidence, GitOpsOwner, Incident, LogEvidence,
        Runbook, RunbookRun, StepKind,
        metadata::{CLEARED_ANNOTATION, revision},
    },
    cluster::{channels::Cache, incidents, workload_index::WorkloadIndex, workloads},
    core::{
        detection::{
            evidence::{about_deployment, collected, evidence, log_target, troubled},
            group::Workload,
        },
        lifecycle::{LifecycleConfig, RunbookProblem},
        remediation::rollout::{Progress, progress},
        runbooks::{
            engine::{self, DeploymentFacts, RunFacts},
            select::{self, Selection},
        },
        text::cut,
        timeline::{Entry, MAX_MESSAGE},
    },
};

/// What following the runbook produced in this reconcile.
#[derive(Default)]
pub struct Followed {
    pub entries: Vec<Entry>,
    pub wake_at: Option<Timestamp>,
    /// The named runbook cannot be followed; the lifecycle records it once and sets a condition.
    pub problem: Option<RunbookProblem>,
}

/// Chooses or continues the incident's runbook; updates `incident` (spec actions, severity,
/// status.runbook) in place so the caller's status write carries the run.
pub async fn follow(
    client: &Client,
    known: Known<'_>,
    incident: &mut Incident,
    config: &LifecycleConfig,
    now: Timestamp,
) -> Result<Followed> {
    let mut followed = Followed::default();
    let namespace = incident.namespace().unwrap_or_default();
    let target = affected_deployment(incident).map(str::to_owned);
    let mut run = incident.status.as_ref().and_then(|s| s.runbook.clone());
    if run.is_none() {
        if !select::starts_a_run(incident) {
            return Ok(followed);
        }
        // From the watch caches: an incident without a runbook looks again at no cost.
        let runbooks: Vec<Runbook> = known
            .runbooks
            .all()
            .into_iter()
            .filter(|r| r.namespace().as_deref() == Some(namespace.as_str()))
            .map(|r| (*r).clone())
            .collect();
        let labels = target
            .as_deref()
            .and_then(|name| known.workloads.deployment(&namespace, name))
            .map(|d| d.metadata.labels.clone().unwrap_or_default());
        match select::choose(incident, &runbooks, labels.as_ref()) {
            Selection::Chosen { runbook, reason } => {
                let started = engine::start(runbook, &reason, incident.spec.severity);
                info!(runbook = %started.run.name, generation = started.run.generation, "following runbook");
                if let Some(severity) = started.severity {
                    let written = incidents::set_runbook_severity(
                        client,
                        incident,
                        &started.run.name,
                        severity,
                    )
                    .await?;
                    incident.spec.severity = written.spec.severity;
                    incident.metadata = written.metadata;
                }
                followed.entries.push(started.entry);
                run = Some(started.run);
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
        // A run in progress works on the whole Deployment: read it fresh.
        let deployment = match &target {
            Some(name) => workloads::deployment(client, &namespace, name).await?,
            None => None,
        };
        let facts = facts(client, incident, &run, deployment.as_ref(), config).await?;
        let advance = engine::advance(&run, incident, &facts, now);
        if advance.request.is_some()
            && let Some(deployment) = &facts.deployment
        {
            let actions = engine::requested_actions(&advance.run, &deployment.name);
            let written = incidents::request_actions(client, incident, &actions).await?;
            // Added to `incident` too, so this reconcile can start executing at once.
            incident.spec.actions = written.spec.actions.clone();
            incident.metadata.resource_version = written.resource_version();
            incident.metadata.generation = written.metadata.generation;
        }
        followed.entries.extend(advance.entries);
        followed.wake_at = advance.wake_at;
        let mut run = advance.run;
        // Reasons may carry an API server's error text: bounded like the timeline's.
        for step in &mut run.progress {
            step.reason = step.reason.take().map(|r| cut(&r, MAX_MESSAGE));
        }
        incident.status.get_or_insert_with(Default::default).runbook = Some(run);
    } else {
        incident.status.get_or_insert_with(Default::default).runbook = Some(run);
    }
    Ok(followed)
}

/// The name of the first Deployment the incident names in its own namespace.
fn affected_deployment(incident: &Incident) -> Option<&str> {
    let own = incident.namespace().unwrap_or_default();
    let reference = incident
        .spec
        .affected
        .iter()
        .find(|a| a.kind == AffectedKind::Deployment)?;
    // Runbooks act only inside the incident's own namespace.
    if reference.namespace.as_deref().is_some_and(|ns| ns != own) {
        return None;
    }
    Some(reference.name.as_str())
}

/// What the reconcile knows from its watch caches.
#[derive(Clone, Copy)]
pub struct Known<'a> {
    pub workloads: &'a WorkloadIndex,
    pub runbooks: &'a Cache<Runbook>,
}

async fn facts(
    client: &Client,
    incident: &Incident,
    run: &RunbookRun,
    deployment: Option<&Deployment>,
    config: &LifecycleConfig,
) -> Result<RunFacts> {
    let namespace = incident.namespace().unwrap_or_default();
    let mut facts = RunFacts {
        detected_at: incident.metadata.creation_timestamp.as_ref().map(|t| t.0),
        signals_cleared_at: incident
            .annotations()
            .get(CLEARED_ANNOTATION)
            .and_then(|t| t.parse().ok()),
        response_time: config.response_time(incident.spec.severity),
        ..RunFacts::default()
    };
    let Some(deployment) = deployment else {
        return Ok(facts);
    };
    let replica_sets = workloads::owned_replica_sets(client, &namespace, deployment).await?;
    facts.deployment = Some(DeploymentFacts {
        name: deployment.name_any(),
        // Healthy: the current generation fully rolled out and available, as `rollout status` says.
        healthy: matches!(
            progress(deployment, deployment.metadata.generation.unwrap_or(0)),
            Progress::Complete { .. }
        ),
        newest_revision_at: replica_sets
            .iter()
            .max_by_key(|rs| revision(&rs.metadata).unwrap_or(0))
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

/// Gathers what a collect step asks for, with the detector's evidence rules.
async fn collect(
    client: &Client,
    namespace: &str,
    deployment: &Deployment,
    replica_sets: &[k8s_openapi::api::apps::v1::ReplicaSet],
    what: &CollectStep,
    detected: Option<Timestamp>,
) -> Result<Evidence> {
    let now = Timestamp::now();
    let workload = Workload {
        namespace: namespace.to_owned(),
        kind: "Deployment".into(),
        name: deployment.name_any(),
    };
    let pods = workloads::pods_of(client, namespace, deployment).await?;
    let troubled = troubled(&workload, &pods, now);
    let refs: Vec<_> = troubled.iter().collect();
    let events = if what.events {
        workloads::warning_events(client, namespace).await?
    } else {
        Vec::new()
    };
    let about = about_deployment(&events, &workload.name, replica_sets, &pods);
    let gathered = evidence(&refs, replica_sets, &about, detected.unwrap_or(now));
    let mut gathered = collected(what, gathered);
    gathered.managed_by = GitOpsOwner::of(&deployment.metadata, ARGOCD_NAMESPACE);
    if let Some(logs) = &what.logs
        && let Some((pod, container)) = log_target(&refs)
        && let Some(text) =
            workloads::previous_log(client, namespace, &pod, &container, logs.tail_lines).await
    {
        gathered.logs = Some(LogEvidence {
            pod,
            container,
            previous: true,
            text,
        });
    }
    Ok(gathered)
}
