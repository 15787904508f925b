//! Following a runbook inside the incident reconcile (controllers layer): choose it, gather the
//! facts and evidence its steps need, call the pure engine, and add the action a step requests to
//! the incident's `spec.actions` (server-side apply, own field manager) before the status that
//! records it is written, so a crash in between asks again for the same action instead of losing
//! or repeating it.

use jiff::Timestamp;
use kube::{Client, ResourceExt};
use tracing::{debug, info};

use crate::{
    Result,
    api::{
        ARGOCD_NAMESPACE, AffectedKind, AffectedRef, CollectStep, Evidence, GitOpsOwner, Incident,
        LogEvidence, Runbook, RunbookRun, StepKind, WorkloadKind,
        metadata::{CLEARED_ANNOTATION, revision},
    },
    cluster::{channels::Cache, incidents, workload_index::WorkloadIndex, workloads},
    core::{
        detection::{
            evidence::{about_workload, collected, evidence, log_target, troubled},
            group::Workload as Group,
        },
        lifecycle::{LifecycleConfig, RunbookProblem},
        remediation::{
            rollout::{Progress, progress_of},
            sets::{Workload, WorkloadRef},
        },
        runbooks::{
            engine::{self, RunFacts, WorkloadFacts},
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
        // The first workload found speaks for the incident's labels, as the first Deployment did.
        let labels = affected_references(incident)
            .iter()
            .find_map(|r| known.workloads.labels(r.kind, &namespace, &r.name));
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
        // A run in progress works on the whole workloads: read them fresh.
        let workloads = affected_workloads(client, incident).await?;
        let facts = facts(client, incident, &run, &workloads, config).await?;
        let advance = engine::advance(&run, incident, &facts, now);
        if let Some(request) = &advance.request {
            let actions =
                engine::requested_actions(&advance.run, incident, &facts.workloads, Some(request));
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

/// The Deployments, StatefulSets, DaemonSets and Rollouts the incident names in its own namespace,
/// in its order, once each.
fn affected_references(incident: &Incident) -> Vec<&AffectedRef> {
    let own = incident.namespace().unwrap_or_default();
    let mut found: Vec<&AffectedRef> = Vec::new();
    for reference in &incident.spec.affected {
        // Runbooks act only inside the incident's own namespace.
        if workload_kind(reference.kind).is_none()
            || reference.namespace.as_deref().is_some_and(|ns| ns != own)
            || found
                .iter()
                .any(|r| r.kind == reference.kind && r.name == reference.name)
        {
            continue;
        }
        found.push(reference);
    }
    found
}

/// Those workloads with what exists of them, read from the API server.
async fn affected_workloads(
    client: &Client,
    incident: &Incident,
) -> Result<Vec<(AffectedRef, Option<Workload>)>> {
    let own = incident.namespace().unwrap_or_default();
    let mut found = Vec::new();
    for reference in affected_references(incident) {
        let kind = workload_kind(reference.kind).unwrap_or_default();
        let workload = workloads::workload(client, &own, kind, &reference.name).await?;
        found.push((reference.clone(), workload));
    }
    Ok(found)
}

/// What the reconcile knows from its watch caches.
#[derive(Clone, Copy)]
pub struct Known<'a> {
    pub workloads: &'a WorkloadIndex,
    pub runbooks: &'a Cache<Runbook>,
}

fn workload_kind(kind: AffectedKind) -> Option<WorkloadKind> {
    match kind {
        AffectedKind::Deployment => Some(WorkloadKind::Deployment),
        AffectedKind::StatefulSet => Some(WorkloadKind::StatefulSet),
        AffectedKind::DaemonSet => Some(WorkloadKind::DaemonSet),
        AffectedKind::Rollout => Some(WorkloadKind::Rollout),
        _ => None,
    }
}

/// What a step needs to know of one workload: its rollout and its newest revision's time.
async fn workload_facts(
    client: &Client,
    namespace: &str,
    reference: &AffectedRef,
    workload: Option<&Workload>,
) -> Result<WorkloadFacts> {
    let kind = workload_kind(reference.kind).unwrap_or_default();
    let mut facts = WorkloadFacts {
        kind,
        name: reference.name.clone(),
        healthy: false,
        newest_revision_at: None,
    };
    let Some(workload) = workload else {
        return Ok(facts);
    };
    let seen = workload.as_ref();
    // Healthy: the current generation fully rolled out and available, as `rollout status` says.
    facts.healthy = matches!(
        progress_of(seen, seen.metadata().generation.unwrap_or(0)),
        Progress::Complete { .. }
    );
    if let Workload::Rollout(view) = workload {
        // Its ReplicaSets were read with it; their revision annotation is Argo Rollouts' own.
        facts.newest_revision_at = view
            .replica_sets
            .iter()
            .filter_map(|rs| rs.metadata.creation_timestamp.as_ref().map(|t| t.0))
            .max();
        return Ok(facts);
    }
    let (replica_sets, revisions) = workloads::history(client, namespace, workload).await?;
    let newest_rs = replica_sets
        .iter()
        .max_by_key(|rs| revision(&rs.metadata).unwrap_or(0))
        .map(|rs| &rs.metadata);
    let newest_cr = revisions
        .iter()
        .max_by_key(|r| r.revision.unwrap_or(0))
        .map(|r| &r.metadata);
    facts.newest_revision_at = newest_rs
        .or(newest_cr)
        .and_then(|m| m.creation_timestamp.as_ref().map(|t| t.0));
    Ok(facts)
}

async fn facts(
    client: &Client,
    incident: &Incident,
    run: &RunbookRun,
    workloads: &[(AffectedRef, Option<Workload>)],
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
    for (reference, workload) in workloads {
        let one = workload_facts(client, &namespace, reference, workload.as_ref()).await?;
        facts.workloads.push(one);
    }
    // Evidence is gathered for the first workload the incident names that exists, of any kind.
    let Some(workload) = workloads.iter().find_map(|(_, w)| w.as_ref()) else {
        return Ok(facts);
    };
    if let Some(step) = engine::current(run).filter(|s| s.kind() == Some(StepKind::Collect)) {
        let what = step.collect.clone().unwrap_or_default();
        // A Deployment's history is its ReplicaSets; the others keep theirs in ControllerRevisions.
        let replica_sets = match workload {
            Workload::Deployment(d) => workloads::owned_replica_sets(client, &namespace, d).await?,
            _ => Vec::new(),
        };
        facts.collected = Some(
            collect(
                client,
                &namespace,
                workload.as_ref(),
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
    target: WorkloadRef<'_>,
    replica_sets: &[k8s_openapi::api::apps::v1::ReplicaSet],
    what: &CollectStep,
    detected: Option<Timestamp>,
) -> Result<Evidence> {
    let now = Timestamp::now();
    let workload = Group {
        namespace: namespace.to_owned(),
        kind: target.kind().to_string(),
        name: target.metadata().name.clone().unwrap_or_default(),
    };
    let pods = match target.selector() {
        Some(selector) => workloads::pods_of(client, namespace, selector).await?,
        None => Vec::new(),
    };
    let troubled = troubled(&workload, &pods, now);
    let refs: Vec<_> = troubled.iter().collect();
    let events = if what.events {
        workloads::warning_events(client, namespace).await?
    } else {
        Vec::new()
    };
    let about = about_workload(
        &events,
        (workload.kind.as_str(), workload.name.as_str()),
        replica_sets,
        &pods,
    );
    let gathered = evidence(&refs, replica_sets, &about, detected.unwrap_or(now));
    let mut gathered = collected(what, gathered);
    gathered.managed_by = GitOpsOwner::of(target.metadata(), ARGOCD_NAMESPACE);
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
