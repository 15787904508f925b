//! The incident controller (controllers layer): for each Incident, follow its runbook, advance its
//! remediation actions one step at a time (storing each plan before the change it makes), then let
//! the pure lifecycle update compute the status and write it with its Events, metrics and the next
//! deadline to wake at. It writes nothing when nothing changed.

mod context;
mod gitops;
mod remediation;
mod runbook;
mod status;

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use kube::{
    Api, Client, ResourceExt,
    core::PartialObjectMeta,
    runtime::{
        Controller,
        controller::Action,
        reflector::{ObjectRef, Store},
        watcher,
    },
};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span};

use self::{
    context::Context,
    remediation::NextStep,
    status::{MAX_OBJECT_BYTES, observe_action, persist, refresh_open_gauge},
};
use crate::cluster::{
    assignment::Assignment,
    watch_list::{InitialLists, WatchScope},
};
use crate::{
    Error, Result,
    api::{ActionStatus, EscalationPolicy, Incident, PauseState, Runbook, WorkloadKind},
    cluster::{
        self,
        channels::{Cache, Channels, Policies, Schedules},
        workload_index::WorkloadIndex,
        workloads,
    },
    config::instance_name,
    core::{
        escalation::policy as escalation_policy,
        lifecycle::{LifecycleConfig, wakes},
        remediation::{
            gitops::{Gate, due_resumes, paused, resumed, resuming},
            step::{next_action, refuse},
        },
        text::cut,
        timeline::{Entry, MAX_MESSAGE, spec_actor},
    },
    metrics::Metrics,
};

/// Runs the controller until `shutdown`, over one namespace or all.
pub async fn run(
    scope: WatchScope,
    config: LifecycleConfig,
    operator_namespace: Option<String>,
    metrics: Arc<Metrics>,
    assignment: Assignment,
    shutdown: CancellationToken,
) -> Result<()> {
    let WatchScope {
        client,
        namespace,
        lists,
    } = scope;
    // Transitions are judged against the Channels that hear them: know them before the first one.
    let channels = Channels::watch(&client, namespace.as_deref(), operator_namespace.as_deref());
    channels.ready(CHANNELS_READY).await?;
    // Escalation pages through them from the first reconcile on.
    let policies = Policies::watch(&client, namespace.as_deref(), operator_namespace.as_deref());
    let schedules = Schedules::watch(&client, namespace.as_deref(), operator_namespace.as_deref());
    policies.ready(CHANNELS_READY).await?;
    schedules.ready(CHANNELS_READY).await?;
    let incidents: Api<Incident> = cluster::scoped(&client, namespace.as_deref());
    let controller = Controller::new(incidents, watcher::Config::default().any_semantic());
    let store = controller.store();
    // A Deployment's rollout progress wakes the incidents verifying an action on it. Only its name
    // is read here, so only metadata is watched, streamed where served: a page of 500 whole
    // Deployments is several MiB of allocations that glibc keeps once freed (docs/benchmarks.md).
    let deployments: Api<PartialObjectMeta<Deployment>> =
        cluster::scoped(&client, namespace.as_deref());
    let incidents_store = store.clone();
    let controller = controller.watches(deployments, lists.config(), move |deployment| {
        let namespace = deployment.namespace();
        let name = deployment.name_any();
        incidents_store
            .state()
            .into_iter()
            .filter(|incident| wakes::by_deployment(incident, namespace.as_deref(), &name))
            .map(|incident| ObjectRef::from_obj(incident.as_ref()))
            .collect::<Vec<_>>()
    });
    // So do a StatefulSet's and a DaemonSet's.
    let scope = (&client, namespace.as_deref(), lists);
    let controller = wake_on::<StatefulSet>(controller, scope, &store);
    let controller = wake_on::<DaemonSet>(controller, scope, &store);
    // Reconciles read workloads' metadata and Runbooks from these caches, not with a request each.
    let workload_index = WorkloadIndex::watch(&client, namespace.as_deref(), lists);
    let runbook_cache: Cache<Runbook> = Cache::watch(&client, namespace.as_deref(), None);
    workload_index.ready(CHANNELS_READY).await?;
    runbook_cache.ready(CHANNELS_READY).await?;
    // A new or edited Runbook is considered by the open incidents of its namespace without one.
    let runbooks: Api<Runbook> = cluster::scoped(&client, namespace.as_deref());
    let waiting = store.clone();
    let controller = controller.watches(runbooks, watcher::Config::default(), move |runbook| {
        let namespace = runbook.namespace();
        waiting
            .state()
            .into_iter()
            .filter(|incident| wakes::by_runbook(incident, namespace.as_deref()))
            .map(|incident| ObjectRef::from_obj(incident.as_ref()))
            .collect::<Vec<_>>()
    });
    // A policy that appears (or is fixed) starts the climb of the open incidents that had none.
    let policy_api: Api<EscalationPolicy> = cluster::scoped(&client, namespace.as_deref());
    let idle = store.clone();
    let own = operator_namespace.clone();
    let controller = controller.watches(policy_api, watcher::Config::default(), move |policy| {
        let namespace = policy.namespace();
        idle.state()
            .into_iter()
            .filter(|i| escalation_policy::wakes(i, namespace.as_deref(), own.as_deref()))
            .map(|i| ObjectRef::from_obj(i.as_ref()))
            .collect::<Vec<_>>()
    });
    // A namespace that becomes selected has its incidents looked at now, not at their next change
    // (a look at an incident that has nothing to do costs no request).
    let controller = match assignment.changes() {
        None => controller,
        Some(changes) => controller.reconcile_all_on(changes),
    };
    let context = Arc::new(Context {
        client,
        config,
        metrics,
        instance: instance_name(),
        failpoints: crate::controllers::Failpoints::from_env(),
        // Test hook: a lower ceiling, as no object within the bounds reaches the real one.
        max_object_bytes: std::env::var("INCIDENT_OPERATOR_MAX_OBJECT_BYTES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(MAX_OBJECT_BYTES),
        store,
        channels,
        policies,
        schedules,
        operator_namespace,
        assignment,
        workloads: workload_index,
        runbooks: runbook_cache,
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

/// A workload kind whose changes wake the incidents acting on (or following a runbook for) it.
trait Woken:
    kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + Clone
    + std::fmt::Debug
    + serde::de::DeserializeOwned
    + Send
    + Sync
    + 'static
{
    const KIND: WorkloadKind;
}

impl Woken for StatefulSet {
    const KIND: WorkloadKind = WorkloadKind::StatefulSet;
}

impl Woken for DaemonSet {
    const KIND: WorkloadKind = WorkloadKind::DaemonSet;
}

fn wake_on<K: Woken>(
    controller: Controller<Incident>,
    (client, namespace, lists): (&Client, Option<&str>, InitialLists),
    store: &Store<Incident>,
) -> Controller<Incident> {
    let api: Api<PartialObjectMeta<K>> = cluster::scoped(client, namespace);
    let store = store.clone();
    controller.watches(api, lists.config(), move |object| {
        let namespace = object.namespace();
        let name = object.name_any();
        store
            .state()
            .into_iter()
            .filter(|i| wakes::by_workload(i, namespace.as_deref(), K::KIND, &name))
            .map(|i| ObjectRef::from_obj(i.as_ref()))
            .collect::<Vec<_>>()
    })
}

/// How long the Channel cache may take to fill at start.
const CHANNELS_READY: Duration = Duration::from_secs(30);

/// How long after a deadline the controller looks again.
const DEADLINE_MARGIN: Duration = Duration::from_millis(100);

/// Most remediation steps taken in one reconcile; the rest continue on the next.
const MAX_STEPS: usize = 8;

async fn reconcile(incident: Arc<Incident>, ctx: Arc<Context>) -> Result<Action> {
    let span = info_span!(
        "reconcile",
        namespace = incident.namespace().unwrap_or_default(),
        name = incident.name_any()
    );
    async move {
        if !ctx
            .assignment
            .covers(&incident.namespace().unwrap_or_default())
        {
            // Another shard's (or an unselected namespace's): that process handles it.
            return Ok(Action::await_change());
        }
        let missing = workloads::missing_affected(&ctx.client, &ctx.workloads, &incident).await?;
        let mut current = (*incident).clone();
        // What the API server holds: the yardstick for "changed", whatever `current` accumulates.
        let mut stored = incident.status.clone();
        // The runbook goes first: a step it starts adds its action before the executor looks.
        let followed = runbook::follow(
            &ctx.client,
            ctx.known(),
            &mut current,
            &ctx.config,
            Timestamp::now(),
        )
        .await?;
        let mut entries = followed.entries;
        let mut finished = Vec::new();
        let mut remediation_wake = None;
        let mut conflicts = 0;
        for _ in 0..MAX_STEPS {
            let now = Timestamp::now();
            let observed = (missing.as_slice(), followed.problem.as_ref());
            // A rollback of a GitOps-applied Deployment pauses its owner first (recorded first).
            match gitops::next_gate(&ctx.client, &current, now).await? {
                Gate::Proceed | Gate::Read(_) => {}
                Gate::Refuse { reason, message } => {
                    if let Some((Some(spec), status)) = next_action(&current) {
                        let by = spec_actor(&current);
                        let step = refuse(spec, status, (reason, message), by, now);
                        finished.push(step.status.clone());
                        upsert_action(&mut current, step.status);
                        entries.extend(step.entries);
                    }
                    continue;
                }
                Gate::Pause(pause) => {
                    let pending = pause.state == PauseState::Pausing;
                    gitops::pauses_mut(&mut current).push(*pause);
                    let index = gitops::pauses(&current).len() - 1;
                    let recorded = std::mem::take(&mut entries);
                    persist(&ctx, &mut current, &mut stored, observed, recorded, now).await?;
                    if pending {
                        pause_owner(&ctx, &mut current, index, &mut entries, now).await?;
                    }
                    continue;
                }
                Gate::Finish(index) => {
                    pause_owner(&ctx, &mut current, index, &mut entries, now).await?;
                    continue;
                }
            }
            let Some(NextStep {
                step,
                resource_version,
            }) = remediation::next_step(&ctx.client, &current, now).await?
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
                failpoint_at(&ctx, "before-patch", &step.status.name).await;
                let namespace = current.namespace().unwrap_or_default();
                let version = resource_version.unwrap_or_default();
                let target = (step.status.workload(), step.status.deployment.as_str());
                match workloads::apply_change(&ctx.client, &namespace, target, &version, change)
                    .await?
                {
                    workloads::Applied::Done => {
                        failpoint_at(&ctx, "after-patch", &step.status.name).await
                    }
                    workloads::Applied::Conflict => {
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
        // Owners paused to resume on a new source revision: resumed once the revert is in Git.
        let source_wake = gitops::follow_sources(&ctx.client, &mut current, now).await;
        // Owners paused for this incident are resumed once asked, each exactly once.
        for index in due_resumes(&current.spec, gitops::pauses(&current)) {
            let by = spec_actor(&current);
            resuming(&mut gitops::pauses_mut(&mut current)[index], by);
            let recorded = std::mem::take(&mut entries);
            persist(&ctx, &mut current, &mut stored, observed, recorded, now).await?;
            ctx.failpoints.at("before-resume").await;
            if gitops::reach_owner(&ctx.client, &mut current, index).await? {
                entries.push(resumed(&mut gitops::pauses_mut(&mut current)[index], now));
            }
        }
        let decision = persist(&ctx, &mut current, &mut stored, observed, entries, now).await?;
        for action in &finished {
            observe_action(&ctx.metrics, action);
        }
        refresh_open_gauge(&ctx.metrics, &ctx.store, &ctx.assignment);
        ctx.metrics.reconciliations.inc();
        let wake = [
            decision.wake_at,
            remediation_wake,
            followed.wake_at,
            source_wake,
        ]
        .into_iter()
        .flatten()
        .min();
        Ok(requeue(wake, now))
    }
    .instrument(span)
    .await
}

/// Changes the owner the pause at `index` names, then records it paused (its timeline entry goes
/// out with the next write), or failed with the reason.
async fn pause_owner(
    ctx: &Context,
    current: &mut Incident,
    index: usize,
    entries: &mut Vec<Entry>,
    now: Timestamp,
) -> Result<()> {
    ctx.failpoints.at("before-pause").await;
    if gitops::reach_owner(&ctx.client, current, index).await? {
        ctx.failpoints.at("after-pause").await;
        entries.push(paused(&mut gitops::pauses_mut(current)[index], now));
    }
    Ok(())
}

/// A failpoint, also at `name:action` for that action only (a run over several workloads is
/// stopped between two of them so).
async fn failpoint_at(ctx: &Context, name: &str, action: &str) {
    ctx.failpoints.at(name).await;
    ctx.failpoints.at(&format!("{name}:{action}")).await;
}

fn upsert_action(incident: &mut Incident, mut action: ActionStatus) {
    // Messages may carry an API server's error text: bounded like the timeline's.
    action.message = action.message.map(|m| cut(&m, MAX_MESSAGE));
    let status = incident.status.get_or_insert_with(Default::default);
    match status.actions.iter_mut().find(|a| a.name == action.name) {
        Some(existing) => *existing = action,
        None => status.actions.push(action),
    }
}

fn requeue(wake_at: Option<Timestamp>, now: Timestamp) -> Action {
    match wake_at {
        // A moment late rather than early: the deadline (a whole second) must have passed when we
        // look again; a whole second late would add up along an escalation chain.
        Some(at) => {
            let wait = Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO);
            Action::requeue(wait + DEADLINE_MARGIN)
        }
        None => Action::await_change(),
    }
}

fn error_policy(incident: Arc<Incident>, error: &Error, ctx: Arc<Context>) -> Action {
    let object = ObjectRef::from(incident.as_ref()).to_string();
    cluster::error_policy("incident", &object, error, &ctx.metrics)
}
