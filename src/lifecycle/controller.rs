//! The Incident controller (shell): read the incident and the objects it references, call
//! [`decide`], then emit Events, write status with server-side apply, record metrics and requeue at
//! the next deadline. It writes nothing when nothing changed.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::{
    apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet},
    batch::v1::{CronJob, Job},
    core::v1::{Namespace, Node, PersistentVolumeClaim, Pod, Service},
    networking::v1::Ingress,
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{ApiResource, DynamicObject, Patch, PatchParams},
    runtime::{
        Controller,
        controller::Action,
        reflector::{ObjectRef, Store},
        watcher,
    },
};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use super::decide::{
    self, ActionEntry, Decision, LifecycleConfig, Notice, Observation, Related, RunbookProblem,
};
use crate::remediation::{
    executor::{self, Advance, Applied},
    step::kind_label,
};
use crate::runbook;
use crate::{
    Error, Result,
    api::{ActionPhase, ActionStatus, AffectedKind, Incident, IncidentStatus, Phase, Runbook},
    events,
    metrics::{
        ActionLabels, ErrorLabels, KindLabels, Metrics, OpenLabels, OverdueLabels, SeverityLabels,
    },
};

/// Field manager of every status write by this controller.
pub const FIELD_MANAGER: &str = "incident-operator";

/// What every reconcile needs.
pub struct Context {
    pub client: Client,
    pub config: LifecycleConfig,
    pub metrics: Arc<Metrics>,
    /// Identifies this replica in Events (pod name or host name).
    pub instance: String,
    /// Test hook: the named point at which to abort (INCIDENT_OPERATOR_FAILPOINT).
    pub failpoint: Option<String>,
    store: Store<Incident>,
}

/// Runs the controller until `shutdown`, over one namespace or all.
pub async fn run(
    client: Client,
    namespace: Option<String>,
    config: LifecycleConfig,
    metrics: Arc<Metrics>,
    instance: String,
    shutdown: CancellationToken,
) -> Result<()> {
    let incidents: Api<Incident> = match &namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let controller = Controller::new(incidents, watcher::Config::default().any_semantic());
    let store = controller.store();
    // A Deployment's rollout progress wakes the incidents verifying an action on it.
    let deployments: Api<Deployment> = match &namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let incidents_store = store.clone();
    let controller =
        controller.watches(deployments, watcher::Config::default(), move |deployment| {
            let namespace = deployment.namespace();
            let name = deployment.name_any();
            incidents_store
                .state()
                .into_iter()
                .filter(|incident| {
                    let verifying = incident.status.as_ref().is_some_and(|s| {
                        s.actions
                            .iter()
                            .any(|a| a.deployment == name && !a.phase.is_terminal())
                    });
                    // A runbook in progress may be verifying this Deployment.
                    let following = incident.status.as_ref().is_some_and(|s| {
                        s.runbook
                            .as_ref()
                            .is_some_and(|r| r.progress.iter().any(|p| !p.phase.is_terminal()))
                    }) && incident
                        .spec
                        .affected
                        .iter()
                        .any(|a| a.kind == AffectedKind::Deployment && a.name == name);
                    incident.namespace() == namespace && (verifying || following)
                })
                .map(|incident| ObjectRef::from_obj(incident.as_ref()))
                .collect::<Vec<_>>()
        });
    // A new or edited Runbook is considered by the open incidents of its namespace without one.
    let runbooks: Api<Runbook> = match &namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let waiting = store.clone();
    let controller = controller.watches(runbooks, watcher::Config::default(), move |runbook| {
        let namespace = runbook.namespace();
        waiting
            .state()
            .into_iter()
            .filter(|incident| {
                incident.namespace() == namespace
                    && incident.spec.resolution.is_none()
                    && incident.status.as_ref().is_none_or(|s| s.runbook.is_none())
            })
            .map(|incident| ObjectRef::from_obj(incident.as_ref()))
            .collect::<Vec<_>>()
    });
    let context = Arc::new(Context {
        client,
        config,
        metrics,
        instance,
        failpoint: std::env::var("INCIDENT_OPERATOR_FAILPOINT")
            .ok()
            .filter(|v| !v.is_empty()),
        store,
    });
    info!(
        namespace = namespace.as_deref().unwrap_or("<all>"),
        "incident controller started"
    );
    controller
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(reconcile, error_policy, context)
        .for_each(|outcome| async move {
            match outcome {
                Ok((object, _)) => debug!(incident = %object, "reconciled"),
                Err(error) => debug!(%error, "reconcile failed"),
            }
        })
        .await;
    Ok(())
}

/// Most remediation steps taken in one reconcile; the rest continue on the next.
const MAX_STEPS: usize = 8;

async fn reconcile(incident: Arc<Incident>, ctx: Arc<Context>) -> Result<Action> {
    let span = info_span!(
        "reconcile",
        namespace = incident.namespace().unwrap_or_default(),
        name = incident.name_any()
    );
    async move {
        let missing = missing_affected(&ctx.client, &incident).await?;
        let mut current = (*incident).clone();
        // What the API server holds: the yardstick for "changed", whatever `current` accumulates.
        let mut stored = incident.status.clone();
        // The runbook goes first: a step it starts adds its action before the executor looks.
        let followed =
            runbook::follow::follow(&ctx.client, &mut current, &ctx.config, Timestamp::now())
                .await?;
        let mut entries = followed.entries;
        let mut finished = Vec::new();
        let mut remediation_wake = None;
        let mut conflicts = 0;
        for _ in 0..MAX_STEPS {
            let now = Timestamp::now();
            let Some(Advance {
                step,
                resource_version,
            }) = executor::advance(&ctx.client, &current, now).await?
            else {
                break;
            };
            let before = current
                .status
                .as_ref()
                .and_then(|s| s.actions.iter().find(|a| a.name == step.status.name))
                .cloned();
            let progressed = before.as_ref() != Some(&step.status) || !step.entries.is_empty();
            remediation_wake = step.wake_at;
            if step.status.phase.is_terminal() && progressed {
                finished.push(step.status.clone());
            }
            upsert_action(&mut current, step.status.clone());
            entries.extend(step.entries);
            if let Some(change) = &step.change {
                // The plan is stored before the Deployment is touched: after a crash the next run
                // finds it and checks whether the change landed instead of applying it twice.
                persist(
                    &ctx,
                    &mut current,
                    &mut stored,
                    (&missing, followed.problem.as_ref()),
                    std::mem::take(&mut entries),
                    now,
                )
                .await?;
                failpoint(&ctx, "before-patch");
                let namespace = current.namespace().unwrap_or_default();
                let version = resource_version.unwrap_or_default();
                match executor::apply_change(
                    &ctx.client,
                    &namespace,
                    &step.status.deployment,
                    &version,
                    change,
                )
                .await?
                {
                    Applied::Done(_) => failpoint(&ctx, "after-patch"),
                    Applied::Conflict => {
                        conflicts += 1;
                        debug!(
                            conflicts,
                            "deployment changed while applying; re-reading it"
                        );
                    }
                }
                continue;
            }
            if !progressed {
                break;
            }
        }
        let now = Timestamp::now();
        let observed = (missing.as_slice(), followed.problem.as_ref());
        let decision = persist(&ctx, &mut current, &mut stored, observed, entries, now).await?;
        for action in &finished {
            observe_action(&ctx.metrics, action);
        }
        refresh_open_gauge(&ctx);
        ctx.metrics.reconciliations.inc();
        let wake = [decision.wake_at, remediation_wake, followed.wake_at]
            .into_iter()
            .flatten()
            .min();
        Ok(requeue(wake, now))
    }
    .instrument(span)
    .await
}

/// Stops the process at a named point when INCIDENT_OPERATOR_FAILPOINT says so: how the e2e tests
/// kill the operator exactly before or after it changes a Deployment.
fn failpoint(ctx: &Context, name: &str) {
    if ctx.failpoint.as_deref() == Some(name) {
        eprintln!("failpoint {name}: aborting");
        std::process::abort();
    }
}

fn upsert_action(incident: &mut Incident, action: ActionStatus) {
    let status = incident.status.get_or_insert_with(Default::default);
    match status.actions.iter_mut().find(|a| a.name == action.name) {
        Some(existing) => *existing = action,
        None => status.actions.push(action),
    }
}

/// Runs the lifecycle decision over `incident` and writes the result if it changed; `incident`
/// then holds the stored status.
async fn persist(
    ctx: &Context,
    incident: &mut Incident,
    stored: &mut Option<IncidentStatus>,
    (missing, runbook_problem): (&[String], Option<&RunbookProblem>),
    action_entries: Vec<ActionEntry>,
    now: Timestamp,
) -> Result<Decision> {
    let related = Related {
        missing_affected: missing.to_vec(),
        runbook_problem: runbook_problem.cloned(),
        action_entries,
    };
    let decision = decide::decide(incident, &related, now, &ctx.config);
    if stored.as_ref() != Some(&decision.status) {
        apply(ctx, incident, &decision, now).await?;
        *stored = Some(decision.status.clone());
    }
    incident.status = Some(decision.status.clone());
    Ok(decision)
}

/// Emits the Events, then writes status. Event names are derived from the transition, so a retry
/// after a crash between the two finds them already there instead of creating duplicates.
async fn apply(
    ctx: &Context,
    incident: &mut Incident,
    decision: &Decision,
    now: Timestamp,
) -> Result<()> {
    let namespace = incident.namespace().unwrap_or_default();
    for notice in &decision.notices {
        emit(ctx, incident, notice, now).await?;
    }
    let incidents: Api<Incident> = Api::namespaced(ctx.client.clone(), &namespace);
    // The resourceVersion makes the write conditional: a decision made from a stale cache (the
    // watch not yet showing our previous write) is refused with 409 and retried on fresh data.
    let patch = serde_json::json!({
        "apiVersion": Incident::api_version(&()),
        "kind": Incident::kind(&()),
        "metadata": { "resourceVersion": incident.resource_version() },
        "status": decision.status,
    });
    let written = incidents
        .patch_status(
            &incident.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(|error| match error {
            kube::Error::Api(status) if status.code == 409 => Error::Conflict,
            other => Error::Kube(other),
        })?;
    incident.metadata.resource_version = written.resource_version();
    for notice in &decision.notices {
        info!(reason = notice.reason, message = %notice.message, "recorded");
    }
    observe(&ctx.metrics, &decision.observations);
    Ok(())
}

async fn emit(ctx: &Context, incident: &Incident, notice: &Notice, now: Timestamp) -> Result<()> {
    let event = events::Notice {
        key: &notice.key,
        reason: notice.reason,
        message: &notice.message,
        warning: notice.warning,
    };
    events::publish(&ctx.client, &ctx.instance, incident, &event, now).await
}

fn observe_action(metrics: &Metrics, action: &ActionStatus) {
    let kind = kind_label(action.kind).to_owned();
    let result = match action.phase {
        ActionPhase::Succeeded => "succeeded",
        ActionPhase::Failed => "failed",
        _ => "skipped",
    };
    metrics
        .actions
        .get_or_create(&ActionLabels {
            kind: kind.clone(),
            result: result.to_owned(),
        })
        .inc();
    if let (Some(started), Some(finished)) = (&action.started_at, &action.finished_at) {
        let seconds = finished.0.duration_since(started.0).as_secs_f64().max(0.0);
        metrics
            .action_duration
            .get_or_create(&KindLabels { kind })
            .observe(seconds);
    }
}

fn observe(metrics: &Metrics, observations: &[Observation]) {
    for observation in observations {
        match observation {
            Observation::Acknowledged { severity, seconds } => metrics
                .time_to_acknowledge
                .get_or_create(&SeverityLabels {
                    severity: severity.to_string(),
                })
                .observe(*seconds),
            Observation::Resolved { severity, seconds } => metrics
                .time_to_resolve
                .get_or_create(&SeverityLabels {
                    severity: severity.to_string(),
                })
                .observe(*seconds),
            Observation::Overdue { severity, clock } => {
                metrics
                    .overdue
                    .get_or_create(&OverdueLabels {
                        severity: severity.to_string(),
                        clock: (*clock).to_owned(),
                    })
                    .inc();
            }
        }
    }
}

/// Recounts open incidents from the controller's cache, so restarts never double count.
fn refresh_open_gauge(ctx: &Context) {
    let gauge = &ctx.metrics.incidents_open;
    gauge.clear();
    for incident in ctx.store.state() {
        if incident.status.as_ref().and_then(|s| s.phase) == Some(Phase::Closed) {
            continue;
        }
        gauge
            .get_or_create(&OpenLabels {
                severity: incident.spec.severity.to_string(),
                phase: decide::phase_label(incident.status.as_ref()).to_owned(),
            })
            .inc();
    }
}

fn requeue(wake_at: Option<Timestamp>, now: Timestamp) -> Action {
    match wake_at {
        // A second late rather than early: the deadline must have passed when we look again.
        Some(at) => {
            let wait = at.duration_since(now).as_secs().max(0) as u64 + 1;
            Action::requeue(Duration::from_secs(wait))
        }
        None => Action::await_change(),
    }
}

fn error_policy(incident: Arc<Incident>, error: &Error, ctx: Arc<Context>) -> Action {
    if matches!(error, Error::Conflict) {
        // Expected when the cache lags our own last write; the watch brings the fresh object.
        debug!(incident = %ObjectRef::from(incident.as_ref()), "stale read; retrying");
        return Action::requeue(Duration::from_secs(1));
    }
    // The cause chain says what the API server refused, not just that it did.
    let cause = std::error::Error::source(error)
        .map(|source| source.to_string())
        .unwrap_or_default();
    warn!(incident = %ObjectRef::from(incident.as_ref()), %error, %cause, "reconcile failed; retrying");
    ctx.metrics
        .reconcile_errors
        .get_or_create(&ErrorLabels {
            controller: "incident".to_owned(),
            error: error.metric_label().to_owned(),
        })
        .inc();
    Action::requeue(Duration::from_secs(5))
}

fn api_resource(kind: AffectedKind) -> ApiResource {
    match kind {
        AffectedKind::Deployment => ApiResource::erase::<Deployment>(&()),
        AffectedKind::StatefulSet => ApiResource::erase::<StatefulSet>(&()),
        AffectedKind::DaemonSet => ApiResource::erase::<DaemonSet>(&()),
        AffectedKind::ReplicaSet => ApiResource::erase::<ReplicaSet>(&()),
        AffectedKind::Pod => ApiResource::erase::<Pod>(&()),
        AffectedKind::Service => ApiResource::erase::<Service>(&()),
        AffectedKind::Job => ApiResource::erase::<Job>(&()),
        AffectedKind::CronJob => ApiResource::erase::<CronJob>(&()),
        AffectedKind::Ingress => ApiResource::erase::<Ingress>(&()),
        AffectedKind::PersistentVolumeClaim => ApiResource::erase::<PersistentVolumeClaim>(&()),
        AffectedKind::Node => ApiResource::erase::<Node>(&()),
        AffectedKind::Namespace => ApiResource::erase::<Namespace>(&()),
    }
}

/// The referenced objects that do not exist. Objects the operator may not read count as present:
/// only a definite 404 is reported.
async fn missing_affected(client: &Client, incident: &Incident) -> Result<Vec<String>> {
    let own_namespace = incident.namespace().unwrap_or_default();
    let mut missing = Vec::new();
    for reference in &incident.spec.affected {
        let resource = api_resource(reference.kind);
        let api: Api<DynamicObject> = if reference.kind.cluster_scoped() {
            Api::all_with(client.clone(), &resource)
        } else {
            let ns = reference.namespace.as_deref().unwrap_or(&own_namespace);
            Api::namespaced_with(client.clone(), ns, &resource)
        };
        match api.get_metadata_opt(&reference.name).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                let mut shown = reference.clone();
                if !reference.kind.cluster_scoped() && shown.namespace.is_none() {
                    shown.namespace = Some(own_namespace.clone());
                }
                missing.push(shown.to_string());
            }
            Err(kube::Error::Api(status)) if status.code == 403 => {
                debug!(reference = %reference, "no permission to check; assuming present");
            }
            Err(error) => return Err(Error::Kube(error)),
        }
    }
    Ok(missing)
}
