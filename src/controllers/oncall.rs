//! The on-call controller (controllers layer): keeps the `Ready` condition of each OnCallSchedule
//! (its time zone and dates resolve) and each EscalationPolicy (every schedule, layer, member,
//! channel and calendar it names is usable), so a broken reference shows before an incident needs
//! it. A change of a schedule or channel rechecks the policies of its namespace. It writes status
//! with server-side apply, only when something changed.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{
    Client, Resource, ResourceExt,
    core::NamespaceResourceScope,
    runtime::{
        Controller,
        controller::{self, Action},
        reflector::{ObjectRef, Store},
        watcher,
    },
};
use serde::{Serialize, de::DeserializeOwned};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span};

use crate::cluster::assignment::Assignment;
use crate::{
    Error, Result,
    api::{
        Channel, EscalationPolicy, EscalationPolicyStatus, OnCallSchedule, OnCallScheduleStatus,
        metadata::ONCALL_STATUS_MANAGER,
    },
    cluster::{
        self,
        channels::{Channels, Schedules},
    },
    core::escalation::{oncall::Rota, policy, readiness},
    metrics::Metrics,
};

/// Rechecked this often without a trigger (a channel of the operator's namespace, say).
const RESYNC: Duration = Duration::from_secs(300);
const DEBOUNCE: Duration = Duration::from_millis(300);
const READY: Duration = Duration::from_secs(30);

struct Context {
    client: Client,
    metrics: Arc<Metrics>,
    operator_namespace: Option<String>,
    schedules: Schedules,
    channels: Channels,
    assignment: Assignment,
}

/// Runs both loops until `shutdown`, over one namespace or all.
pub async fn run(
    client: Client,
    namespace: Option<String>,
    operator_namespace: Option<String>,
    metrics: Arc<Metrics>,
    assignment: Assignment,
    shutdown: CancellationToken,
) -> Result<()> {
    let schedules = Schedules::watch(&client, namespace.as_deref(), operator_namespace.as_deref());
    let channels = Channels::watch(&client, namespace.as_deref(), operator_namespace.as_deref());
    schedules.ready(READY).await?;
    channels.ready(READY).await?;
    let context = Arc::new(Context {
        client: client.clone(),
        metrics,
        operator_namespace,
        schedules,
        channels,
        assignment,
    });
    info!(
        namespace = namespace.as_deref().unwrap_or("<all>"),
        "on-call controller started"
    );
    let policies = Controller::new(
        cluster::scoped::<EscalationPolicy>(&client, namespace.as_deref()),
        watcher::Config::default().any_semantic(),
    );
    let store = policies.store();
    let by_schedule = store.clone();
    let policies = policies
        .watches(
            cluster::scoped::<OnCallSchedule>(&client, namespace.as_deref()),
            watcher::Config::default(),
            move |s| in_namespace(&by_schedule, s.namespace()),
        )
        .watches(
            cluster::scoped::<Channel>(&client, namespace.as_deref()),
            watcher::Config::default(),
            move |c| in_namespace(&store, c.namespace()),
        )
        .with_config(controller::Config::default().debounce(DEBOUNCE))
        .graceful_shutdown_on(shutdown.clone().cancelled_owned())
        .run(reconcile_policy, error_policy, context.clone())
        .for_each(|outcome| async move {
            if let Err(error) = outcome {
                debug!(%error, "escalation policy reconcile did not run");
            }
        });
    let schedules = Controller::new(
        cluster::scoped::<OnCallSchedule>(&client, namespace.as_deref()),
        watcher::Config::default().any_semantic(),
    )
    .graceful_shutdown_on(shutdown.cancelled_owned())
    .run(reconcile_schedule, error_schedule, context)
    .for_each(|outcome| async move {
        if let Err(error) = outcome {
            debug!(%error, "schedule reconcile did not run");
        }
    });
    futures::join!(policies, schedules);
    Ok(())
}

fn in_namespace(
    store: &Store<EscalationPolicy>,
    namespace: Option<String>,
) -> Vec<ObjectRef<EscalationPolicy>> {
    store
        .state()
        .into_iter()
        .filter(|p| p.namespace() == namespace)
        .map(|p| ObjectRef::from_obj(p.as_ref()))
        .collect()
}

async fn reconcile_schedule(schedule: Arc<OnCallSchedule>, ctx: Arc<Context>) -> Result<Action> {
    let span = info_span!("reconcile_schedule", namespace = schedule.namespace().unwrap_or_default(), name = %schedule.name_any());
    async move {
        if !ctx
            .assignment
            .covers(&schedule.namespace().unwrap_or_default())
        {
            // Another shard's (or an unselected namespace's): that process handles it.
            return Ok(Action::await_change());
        }
        let problems = Rota::new(&schedule.spec).err().unwrap_or_default();
        let old = schedule.status.clone().unwrap_or_default();
        let (observed_generation, conditions) =
            readiness_of(schedule.as_ref(), &old.conditions, &problems);
        let desired = OnCallScheduleStatus {
            observed_generation,
            conditions,
        };
        if desired != old {
            write(&ctx, schedule.as_ref(), &desired, problems.len()).await?;
        }
        Ok(Action::requeue(RESYNC))
    }
    .instrument(span)
    .await
}

async fn reconcile_policy(escalation: Arc<EscalationPolicy>, ctx: Arc<Context>) -> Result<Action> {
    let span = info_span!("reconcile_policy", namespace = escalation.namespace().unwrap_or_default(), name = %escalation.name_any());
    async move {
        if !ctx
            .assignment
            .covers(&escalation.namespace().unwrap_or_default())
        {
            // Another shard's (or an unselected namespace's): that process handles it.
            return Ok(Action::await_change());
        }
        let problems = policy::problems(
            &escalation,
            &ctx.schedules.all(),
            &ctx.channels.all(),
            ctx.operator_namespace.as_deref(),
        );
        let old = escalation.status.clone().unwrap_or_default();
        let (observed_generation, conditions) =
            readiness_of(escalation.as_ref(), &old.conditions, &problems);
        let desired = EscalationPolicyStatus {
            observed_generation,
            conditions,
        };
        if desired != old {
            write(&ctx, escalation.as_ref(), &desired, problems.len()).await?;
        }
        Ok(Action::requeue(RESYNC))
    }
    .instrument(span)
    .await
}

/// The observed generation and the conditions for `problems` on `object`.
fn readiness_of<K: Resource>(
    object: &K,
    old: &[Condition],
    problems: &[String],
) -> (Option<i64>, Vec<Condition>) {
    let generation = object.meta().generation.unwrap_or(0);
    let conditions = readiness::conditions(problems, generation, old, Timestamp::now());
    (Some(generation), conditions)
}

async fn write<K>(ctx: &Context, object: &K, status: &impl Serialize, problems: usize) -> Result<()>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    cluster::apply_status_of(&ctx.client, object, status, ONCALL_STATUS_MANAGER).await?;
    debug!(problems, "status updated");
    Ok(())
}

fn error_policy(object: Arc<EscalationPolicy>, error: &Error, ctx: Arc<Context>) -> Action {
    let reference = ObjectRef::from(object.as_ref()).to_string();
    cluster::error_policy("escalationpolicy", &reference, error, &ctx.metrics)
}

fn error_schedule(object: Arc<OnCallSchedule>, error: &Error, ctx: Arc<Context>) -> Action {
    let reference = ObjectRef::from(object.as_ref()).to_string();
    cluster::error_policy("oncallschedule", &reference, error, &ctx.metrics)
}
