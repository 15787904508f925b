//! The detector (shell): watches Pods, ReplicaSets (metadata only) and Deployments, groups their
//! signals into problems, and creates or updates one Incident per problem; resolves it once every
//! signal has stayed clear for `resolve_after`. State lives on the Incidents themselves.

use std::{collections::HashMap, sync::Arc, time::Duration};

use futures::{Stream, StreamExt, TryStreamExt};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::{
    apps::v1::{Deployment, ReplicaSet},
    core::v1::{Namespace, Node, Pod, PodSpec},
    events::v1::Event,
};
use kube::{
    Api, Client, Resource, ResourceExt,
    core::PartialObjectMeta,
    runtime::{
        WatchStreamExt,
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};
use serde_json::json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{
    classify::{SignalKind, deployment_health, may_signal, node_not_ready, pod_signals},
    evidence::last_observed,
    group::{
        ObjectSignal, PodPlacement, PodSignals, Problem, Workload, group, node_problems,
        storm_guard,
    },
    policy::{DetectionConfig, Pending, debounce, severity_owners},
    write::{Pass, mark_cleared, patch_merge, resolve, write_problem},
};
use crate::{Result, api::Incident, metrics::Metrics};

/// Incidents a pass writes at the same time; bounded so a storm cannot flood the API server.
const WRITES_IN_FLIGHT: usize = 8;

/// Field manager of everything the detector writes on Incidents.
pub const FIELD_MANAGER: &str = "incident-operator-detector";
/// Marks incidents the detector opened (and may resolve); people's incidents never carry it.
pub const SOURCE_LABEL: &str = "incident.dev/source";
pub const FINGERPRINT_LABEL: &str = "incident.dev/fingerprint";
/// What the incident is about: `workload` or `node`.
pub const PROBLEM_LABEL: &str = "incident.dev/problem";
/// When every signal of the incident was first seen clear.
pub const CLEARED_ANNOTATION: &str = "incident.dev/signals-cleared-at";
/// A person's incident carrying this label (value "true") is auto-resolved like a detected one.
pub const AUTO_RESOLVE_LABEL: &str = "incident.dev/auto-resolve";
/// When the objects of an opted-in incident were first seen in trouble.
pub const SEEN_ANNOTATION: &str = "incident.dev/signals-seen-at";
/// Who the detector's resolutions and edits are attributed to.
pub const RESOLVER: &str = "incident-operator";
pub(super) struct Stores {
    pub(super) pods: Store<Pod>,
    pub(super) replica_sets: Store<PartialObjectMeta<ReplicaSet>>,
    pub(super) deployments: Store<Deployment>,
    /// Nodes, trimmed to their name, labels and Ready condition; None when NodeNotReady is off.
    pub(super) nodes: Option<Store<Node>>,
    pub(super) incidents: Store<Incident>,
    /// Namespace labels, only when a namespace selector is configured.
    pub(super) namespaces: Option<Store<PartialObjectMeta<Namespace>>>,
    /// Warning Events of the configured reasons, only when any are configured.
    pub(super) events: Option<Store<Event>>,
}

/// Runs until `shutdown`, over one namespace or all but the excluded ones.
pub async fn run(
    client: Client,
    namespace: Option<String>,
    config: DetectionConfig,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> Result<()> {
    let changed = Arc::new(Notify::new());
    let (pods, pods_writer) = reflector::store();
    let (replica_sets, rs_writer) = reflector::store();
    let (deployments, deployments_writer) = reflector::store();
    let (incidents, incidents_writer) = reflector::store();

    // Keep only what classification needs of each Pod, so memory follows pods, not their specs.
    let pod_stream = watcher(api(&client, &namespace), watcher::Config::default())
        .default_backoff()
        .modify(|pod: &mut Pod| {
            // Of the spec only the node matters (which pods a NotReady node carries).
            pod.spec = pod.spec.take().map(|spec| PodSpec {
                node_name: spec.node_name,
                ..PodSpec::default()
            });
            pod.metadata.managed_fields = None;
            pod.metadata.annotations = None;
            pod.metadata.labels = None;
            // A healthy pod's status says nothing; keep statuses only where trouble can show.
            if !may_signal(pod) {
                pod.status = None;
            }
        })
        .reflect(pods_writer);
    let rs_stream = watcher(
        api::<PartialObjectMeta<ReplicaSet>>(&client, &namespace),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(rs_writer);
    let deployment_stream = watcher(
        api::<Deployment>(&client, &namespace),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(deployments_writer);
    // All incidents: the detector's own, and people's that opted in to auto-resolve.
    let incident_stream = watcher(
        api::<Incident>(&client, &namespace),
        watcher::Config::default(),
    )
    .default_backoff()
    .modify(|incident: &mut Incident| {
        // The timeline is the lifecycle controller's business; keep memory to what is used here:
        // of the managed fields, only who owns the severity.
        incident.metadata.managed_fields = severity_owners(incident.metadata.managed_fields.take());
        if let Some(status) = incident.status.as_mut() {
            status.timeline.clear();
        }
    })
    .reflect(incidents_writer);
    let mut drivers = vec![
        tokio::spawn(drive(pod_stream, changed.clone())),
        tokio::spawn(drive(rs_stream, changed.clone())),
        tokio::spawn(drive(deployment_stream, changed.clone())),
        tokio::spawn(drive(incident_stream, changed.clone())),
    ];
    let nodes = config.signals.enabled(SignalKind::NodeNotReady).then(|| {
        let (nodes, writer) = reflector::store();
        let node_config = watcher::Config::default().labels(&config.node_selector);
        let stream = watcher(Api::<Node>::all(client.clone()), node_config)
            .default_backoff()
            .modify(|node: &mut Node| {
                node.metadata.managed_fields = None;
                node.metadata.annotations = None;
                if let Some(status) = node.status.as_mut() {
                    status.images = None;
                    status.conditions = status
                        .conditions
                        .take()
                        .map(|cs| cs.into_iter().filter(|c| c.type_ == "Ready").collect());
                }
            })
            .reflect(writer);
        drivers.push(tokio::spawn(drive(stream, changed.clone())));
        nodes
    });
    let namespaces = config.scope.namespace_selector.is_some().then(|| {
        let (namespaces, writer) = reflector::store();
        let stream = watcher(
            Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
        .reflect(writer);
        drivers.push(tokio::spawn(drive(stream, changed.clone())));
        namespaces
    });
    let events = config.warning_events.watched().then(|| {
        let (events, writer) = reflector::store();
        let wanted = config.warning_events.clone();
        // Only Warning Events, and of those only the configured reasons, are kept.
        let stream = watcher(
            api::<Event>(&client, &namespace),
            watcher::Config::default().fields("type=Warning"),
        )
        .default_backoff()
        .modify(|event: &mut Event| {
            event.metadata.managed_fields = None;
            event.metadata.annotations = None;
            event.related = None;
            event.deprecated_source = None;
            event.note = event.note.take().map(|n| n.chars().take(256).collect());
        })
        .filter(move |item| {
            // Only the configured reasons reach the store (a field selector cannot OR reasons).
            let keep = match item {
                Ok(watcher::Event::Apply(e) | watcher::Event::InitApply(e)) => {
                    e.reason.as_deref().is_some_and(|r| wanted.wanted(r))
                }
                _ => true,
            };
            std::future::ready(keep)
        })
        .reflect(writer);
        drivers.push(tokio::spawn(drive(stream, changed.clone())));
        events
    });
    let stores = Stores {
        pods,
        replica_sets,
        deployments,
        nodes,
        incidents,
        namespaces,
        events,
    };
    let mut pending = Pending::new();
    info!(
        namespace = namespace.as_deref().unwrap_or("<all>"),
        "detector started"
    );

    let mut next_check: Option<Timestamp> = None;
    loop {
        let wait = next_check.map(|at| {
            Duration::from_millis(
                at.duration_since(Timestamp::now())
                    .as_millis()
                    .clamp(0, 3_600_000) as u64,
            )
        });
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = changed.notified() => {}
            () = sleep_or_forever(wait) => {}
        }
        // Let a burst of events settle into one pass.
        tokio::time::sleep(Duration::from_millis(100)).await;
        if !ready(&stores).await {
            continue;
        }
        let started = std::time::Instant::now();
        match evaluate(&client, &stores, &config, &mut pending).await {
            Ok(wake) => {
                metrics.detection_passes.inc();
                metrics
                    .detection_pass_duration
                    .observe(started.elapsed().as_secs_f64());
                next_check = wake;
            }
            Err(error) => {
                warn!(%error, "detection pass failed; retrying");
                next_check = Some(Timestamp::now() + SignedDuration::from_secs(2));
            }
        }
    }
    for driver in drivers {
        driver.abort();
    }
    Ok(())
}

fn api<K>(client: &Client, namespace: &Option<String>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

async fn drive<S, T, E>(stream: S, changed: Arc<Notify>)
where
    S: Stream<Item = std::result::Result<T, E>>,
    E: std::fmt::Display,
{
    let mut stream = std::pin::pin!(stream);
    while let Some(event) = stream.next().await {
        match event {
            Ok(_) => changed.notify_one(),
            Err(error) => debug!(%error, "watch error; the watcher retries"),
        }
    }
}

async fn sleep_or_forever(wait: Option<Duration>) {
    match wait {
        Some(wait) => tokio::time::sleep(wait).await,
        None => std::future::pending().await,
    }
}

async fn ready(stores: &Stores) -> bool {
    use futures::FutureExt;
    stores.pods.wait_until_ready().now_or_never().is_some()
        && stores
            .replica_sets
            .wait_until_ready()
            .now_or_never()
            .is_some()
        && stores
            .deployments
            .wait_until_ready()
            .now_or_never()
            .is_some()
        && stores.incidents.wait_until_ready().now_or_never().is_some()
        && stores
            .nodes
            .as_ref()
            .is_none_or(|s| s.wait_until_ready().now_or_never().is_some())
        && stores
            .namespaces
            .as_ref()
            .is_none_or(|s| s.wait_until_ready().now_or_never().is_some())
        && stores
            .events
            .as_ref()
            .is_none_or(|s| s.wait_until_ready().now_or_never().is_some())
}

/// One detection pass; returns when to look again (a pending auto-resolve, a signal maturing).
async fn evaluate(
    client: &Client,
    stores: &Stores,
    config: &DetectionConfig,
    pending: &mut Pending,
) -> Result<Option<Timestamp>> {
    let now = Timestamp::now();
    let in_scope = |ns: &str| {
        let labels = stores.namespaces.as_ref().and_then(|store| {
            store
                .get(&ObjectRef::new(ns))
                .map(|meta| meta.metadata.labels.clone().unwrap_or_default())
        });
        config.scope.includes(ns, labels.as_ref())
    };
    // ReplicaSet → owning Deployment, from metadata only.
    let owners: HashMap<(String, String), String> = stores
        .replica_sets
        .state()
        .iter()
        .filter_map(|rs| {
            let owner = rs
                .owner_references()
                .iter()
                .find(|o| o.controller == Some(true) && o.kind == "Deployment")?;
            Some((
                (rs.namespace().unwrap_or_default(), rs.name_any()),
                owner.name.clone(),
            ))
        })
        .collect();
    let settings = &config.signals;
    let grace =
        i64::try_from(settings.for_(SignalKind::Unschedulable).as_secs()).unwrap_or(i64::MAX);
    let unavailable_for =
        SignedDuration::try_from(settings.for_(SignalKind::DeploymentUnavailable))
            .unwrap_or(SignedDuration::MAX);
    let pods: Vec<PodSignals> = stores
        .pods
        .state()
        .iter()
        .filter(|pod| in_scope(&pod.namespace().unwrap_or_default()))
        .filter_map(|pod| {
            let mut troubles = pod_signals(pod, now, grace);
            troubles.retain(|t| settings.enabled(t.kind));
            if troubles.is_empty() {
                return None;
            }
            let workload = workload_of(pod, &owners)?;
            Some(PodSignals {
                pod: pod.name_any(),
                workload,
                troubles,
            })
        })
        .collect();
    let deployments: Vec<(Workload, _)> = stores
        .deployments
        .state()
        .iter()
        .filter(|d| in_scope(&d.namespace().unwrap_or_default()))
        .map(|d| {
            let workload = Workload {
                namespace: d.namespace().unwrap_or_default(),
                kind: "Deployment".into(),
                name: d.name_any(),
            };
            let mut health = deployment_health(d, now, unavailable_for);
            health.signals.retain(|kind| settings.enabled(*kind));
            (workload, health)
        })
        .collect();
    // Warning Events configured as signals count while observed within the window.
    let window =
        SignedDuration::try_from(config.warning_events.window).unwrap_or(SignedDuration::MAX);
    let mut event_expiry: Option<Timestamp> = None;
    let event_signals: Vec<ObjectSignal> = stores
        .events
        .iter()
        .flat_map(|store| store.state())
        .filter(|event| in_scope(&event.namespace().unwrap_or_default()))
        .filter_map(|event| {
            let kind = config.warning_events.signal(event.reason.as_deref()?)?;
            let expires = last_observed(&event)?.checked_add(window).ok()?;
            if expires <= now {
                return None;
            }
            let (workload, object) = event_workload(&event, stores, &owners)?;
            event_expiry = Some(event_expiry.map_or(expires, |e| e.min(expires)));
            Some(ObjectSignal {
                workload,
                kind,
                object,
            })
        })
        .collect();
    let mut problems = group(&pods, &deployments, &event_signals, &config.severity);
    let incidents = stores.incidents.state();
    let not_ready: Vec<(String, String)> = stores
        .nodes
        .iter()
        .flat_map(|store| store.state())
        .filter_map(|node| Some((node.name_any(), node_not_ready(&node)?)))
        .collect();
    if !not_ready.is_empty() {
        let placements: Vec<PodPlacement> = stores
            .pods
            .state()
            .iter()
            .filter_map(|pod| {
                Some(PodPlacement {
                    node: pod.spec.as_ref()?.node_name.clone()?,
                    pod: format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any()),
                    workload: workload_of(pod, &owners),
                })
            })
            .collect();
        problems.extend(node_problems(
            &not_ready,
            &placements,
            &config.node_incident_namespace,
            config.severity.node_not_ready,
        ));
    }
    // Each signal waits out its `for` unless the workload's open incident already lists it.
    let cooldown = SignedDuration::try_from(config.reopen_cooldown).unwrap_or(SignedDuration::MAX);
    let (problems, matures) = debounce(
        problems,
        pending,
        |workload, kind| {
            incidents.iter().any(|i| {
                i.spec.resolution.is_none()
                    && i.namespace().as_deref() == Some(workload.namespace.as_str())
                    && i.labels().get(FINGERPRINT_LABEL) == Some(&workload.fingerprint())
                    && i.spec.signals.iter().any(|s| s.type_ == kind.as_str())
            })
        },
        settings,
        now,
    );

    // Storm guard: problems without an incident yet share a per-minute budget of new incidents.
    let recent = incidents
        .iter()
        .filter(|i| detected(i))
        .filter(|i| i.labels().get(PROBLEM_LABEL).map(String::as_str) != Some("storm"))
        .filter(|i| {
            i.metadata
                .creation_timestamp
                .as_ref()
                .is_some_and(|t| now.duration_since(t.0) < SignedDuration::from_secs(60))
        })
        .count();
    let budget = config.storm_limit.saturating_sub(recent);
    let (known, fresh): (Vec<Problem>, Vec<Problem>) = problems
        .into_iter()
        .partition(|p| matches!(target(&incidents, p, now, cooldown), Target::Existing(_)));
    let (admitted, storm) = storm_guard(fresh, budget, &config.node_incident_namespace);
    let problems: Vec<Problem> = known.into_iter().chain(admitted).chain(storm).collect();

    // Problems are independent (one incident each), so their writes run side by side: a burst of
    // new problems no longer waits in line behind each other's evidence (ReplicaSets, log) writes.
    let pass = Pass {
        client,
        stores,
        config,
        incidents: &incidents,
        pods: &pods,
        owners: &owners,
        now,
        cooldown,
    };
    let writes: Vec<_> = problems.iter().map(|p| write_problem(&pass, p)).collect();
    futures::stream::iter(writes)
        .buffer_unordered(WRITES_IN_FLIGHT)
        .try_collect::<Vec<()>>()
        .await?;

    // Incidents whose problem is gone: note when, then resolve after `resolve_after`.
    // Look again when a pending unavailability would become a signal.
    let mut wake: Option<Timestamp> = deployments
        .iter()
        .filter_map(|(_, h)| h.matures_at)
        .chain(matures)
        .chain(event_expiry)
        .min();
    let Some(resolve_after) = config.resolve_after else {
        return Ok(wake);
    };
    let resolve_after = SignedDuration::try_from(resolve_after).unwrap_or(SignedDuration::MAX);
    for incident in incidents.iter() {
        let open = incident.spec.resolution.is_none();
        let opted_in = !detected(incident)
            && incident
                .labels()
                .get(AUTO_RESOLVE_LABEL)
                .map(String::as_str)
                == Some("true");
        if !open || !(detected(incident) || opted_in) {
            continue;
        }
        let active = if opted_in {
            problems.iter().any(|p| concerns(incident, p))
        } else {
            let fingerprint = incident
                .labels()
                .get(FINGERPRINT_LABEL)
                .cloned()
                .unwrap_or_default();
            problems.iter().any(|p| {
                p.workload.fingerprint() == fingerprint
                    && incident.namespace().as_deref() == Some(p.workload.namespace.as_str())
            })
        };
        if opted_in {
            // A person's incident resolves only after its objects were seen in trouble, then clear.
            let seen = incident.annotations().contains_key(SEEN_ANNOTATION);
            let cleared = incident.annotations().contains_key(CLEARED_ANNOTATION);
            if active && (!seen || cleared) {
                let stamp = Timestamp::from_second(now.as_second())
                    .unwrap_or(now)
                    .to_string();
                let patch = json!({ "metadata": { "annotations": {
                    SEEN_ANNOTATION: stamp, CLEARED_ANNOTATION: null } } });
                patch_merge(client, incident, &patch).await?;
            }
            if active || !seen {
                continue;
            }
        } else if active {
            continue;
        }
        let cleared = incident
            .annotations()
            .get(CLEARED_ANNOTATION)
            .and_then(|t| t.parse::<Timestamp>().ok());
        match cleared {
            None => mark_cleared(client, incident, now).await?,
            Some(since) if now >= since + resolve_after => resolve(client, incident).await?,
            Some(since) => {
                let at = since + resolve_after;
                wake = Some(wake.map_or(at, |w| w.min(at)));
            }
        }
    }
    Ok(wake)
}

/// Whether the detector opened this incident.
fn detected(incident: &Incident) -> bool {
    incident.labels().get(SOURCE_LABEL).map(String::as_str) == Some("detector")
}

/// Whether a problem is about one of the objects a (person's) incident names.
fn concerns(incident: &Incident, problem: &Problem) -> bool {
    let namespace = incident.namespace().unwrap_or_default();
    incident.spec.affected.iter().any(|a| {
        format!("{:?}", a.kind) == problem.workload.kind
            && a.name == problem.workload.name
            && (problem.workload.kind == "Node"
                || a.namespace.as_deref().unwrap_or(&namespace) == problem.workload.namespace)
    })
}

/// The workload a Warning Event is about, with the pod's name when it is about a pod.
pub(super) fn event_workload(
    event: &Event,
    stores: &Stores,
    owners: &HashMap<(String, String), String>,
) -> Option<(Workload, Option<String>)> {
    let regarding = event.regarding.as_ref()?;
    let namespace = regarding.namespace.clone().or_else(|| event.namespace())?;
    let name = regarding.name.clone()?;
    match regarding.kind.as_deref()? {
        "Pod" => {
            let pod = stores.pods.get(&ObjectRef::new(&name).within(&namespace))?;
            Some((workload_of(&pod, owners)?, Some(name)))
        }
        "ReplicaSet" => {
            let deployment = owners.get(&(namespace.clone(), name))?.clone();
            Some((
                Workload {
                    namespace,
                    kind: "Deployment".into(),
                    name: deployment,
                },
                None,
            ))
        }
        kind @ ("Deployment" | "StatefulSet" | "DaemonSet") => Some((
            Workload {
                namespace,
                kind: kind.to_owned(),
                name,
            },
            None,
        )),
        _ => None,
    }
}

fn workload_of(pod: &Pod, owners: &HashMap<(String, String), String>) -> Option<Workload> {
    let namespace = pod.namespace().unwrap_or_default();
    let owner = pod
        .owner_references()
        .iter()
        .find(|o| o.controller == Some(true))?;
    let (kind, name) = match owner.kind.as_str() {
        "ReplicaSet" => (
            "Deployment",
            owners
                .get(&(namespace.clone(), owner.name.clone()))?
                .clone(),
        ),
        "StatefulSet" | "DaemonSet" => (owner.kind.as_str(), owner.name.clone()),
        _ => return None,
    };
    Some(Workload {
        namespace,
        kind: kind.to_owned(),
        name,
    })
}

/// Which incident a problem belongs to.
pub(super) enum Target<'a> {
    Existing(&'a Incident),
    /// A new incident of this name.
    New(String),
}

/// The problem's latest incident while it is open or resolved less than `cooldown` ago; otherwise a
/// new one, named after the problem and how many incidents it already had.
pub(super) fn target<'a>(
    incidents: &'a [Arc<Incident>],
    problem: &Problem,
    now: Timestamp,
    cooldown: SignedDuration,
) -> Target<'a> {
    let fingerprint = problem.workload.fingerprint();
    let mut history: Vec<&Incident> = incidents
        .iter()
        .map(|i| i.as_ref())
        .filter(|i| {
            i.namespace().as_deref() == Some(problem.workload.namespace.as_str())
                && i.labels().get(FINGERPRINT_LABEL) == Some(&fingerprint)
        })
        .collect();
    history.sort_by_key(|i| {
        (
            i.metadata.creation_timestamp.as_ref().map(|t| t.0),
            i.name_any(),
        )
    });
    let base = problem.workload.incident_name();
    let Some(latest) = history.last() else {
        return Target::New(base);
    };
    if latest.spec.resolution.is_none() {
        return Target::Existing(latest);
    }
    let resolved_at = latest
        .status
        .as_ref()
        .and_then(|s| s.metrics.as_ref())
        .and_then(|m| m.resolved_at.as_ref())
        .map_or(now, |t| t.0);
    if now.duration_since(resolved_at) < cooldown {
        Target::Existing(latest)
    } else {
        Target::New(format!("{base}-{}", history.len() + 1))
    }
}
