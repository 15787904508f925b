//! One detection pass (controllers layer): read the watch caches, let the pure core classify,
//! group, debounce and judge, then write each problem's incident and evidence side by side and
//! act on the auto-resolve verdicts. Every write is safe to repeat after a crash.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use futures::{StreamExt, TryStreamExt};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::{apps::v1::Deployment, events::v1::Event};
use kube::{Client, ResourceExt};
use tracing::info;

use super::watch::Stores;
use crate::{
    Result,
    api::{ARGOCD_NAMESPACE, GitOpsOwner, Incident, LogEvidence, Signal},
    cluster::{incidents, workloads},
    core::detection::{
        classify::{SignalKind, available_now, deployment_health, node_not_ready},
        debounce::{Pending, debounce},
        evidence::{evidence, last_observed, log_target},
        group::{
            ObjectSignal, PodPlacement, PodSignals, Problem, Workload, group, node_problems,
            signals, storm_guard,
        },
        incidents::{
            AutoResolve, Target, Update, auto_resolve, incident_body, kept_severity, lists_signal,
            seen_at, storm_budget, target, undo_clearing, update_due,
        },
        settings::DetectionConfig,
        workloads::{Owners, event_workload},
    },
};

/// Incidents a pass writes at the same time; bounded so a storm cannot flood the API server.
const WRITES_IN_FLIGHT: usize = 8;

/// The workload of a pod in the cache, by (namespace, name).
fn pod_workload<'a>(
    stores: &'a Stores,
    owners: &'a Owners,
) -> impl Fn(&str, &str) -> Option<Workload> + 'a {
    move |namespace, name| {
        stores
            .pods
            .read(|pods| pods.get(namespace, name)?.workload(namespace, owners))
    }
}

/// One detection pass; returns when to look again (a pending auto-resolve, a signal maturing).
pub(super) async fn evaluate(
    client: &Client,
    stores: &Stores,
    config: &DetectionConfig,
    pending: &mut Pending,
) -> Result<Option<Timestamp>> {
    let now = Timestamp::now();
    let in_scope = |ns: &str| match &stores.namespaces {
        Some(namespaces) => namespaces.read(|all| config.scope.includes(ns, all.get("", ns))),
        None => config.scope.includes(ns, None),
    };
    // ReplicaSet → owning Deployment or Rollout, from metadata only.
    let owners: Owners = stores.replica_sets.read(|all| {
        all.iter()
            .filter_map(|(ns, name, owner)| {
                let (kind, owner) = owner.as_ref()?;
                Some(((ns.to_owned(), name.to_owned()), (*kind, owner.to_string())))
            })
            .collect()
    });
    let settings = &config.signals;
    let grace =
        i64::try_from(settings.for_(SignalKind::Unschedulable).as_secs()).unwrap_or(i64::MAX);
    let unavailable_for =
        SignedDuration::try_from(settings.for_(SignalKind::DeploymentUnavailable))
            .unwrap_or(SignedDuration::MAX);
    let pods: Vec<PodSignals> = stores.pods.read(|all| {
        all.iter()
            .filter(|(ns, _, _)| in_scope(ns))
            .filter_map(|(ns, name, pod)| {
                let mut troubles = pod.signals(now, grace);
                troubles.retain(|t| settings.enabled(t.kind));
                if troubles.is_empty() {
                    return None;
                }
                let workload = pod.workload(ns, &owners)?;
                Some(PodSignals {
                    pod: name.to_owned(),
                    workload,
                    troubles,
                })
            })
            .collect()
    });
    let mut deployments: Vec<(Workload, _)> = stores
        .deployments
        .values()
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
    // A troubled workload's availability as of its pods, which the Deployment's status trails.
    let troubled: BTreeSet<&Workload> = pods.iter().map(|p| &p.workload).collect();
    if !troubled.is_empty() {
        let namespaces: BTreeSet<&str> = troubled.iter().map(|w| w.namespace.as_str()).collect();
        let mut seen: BTreeMap<Workload, (usize, usize)> = BTreeMap::new();
        stores.pods.read(|all| {
            for (ns, _, pod) in all.iter() {
                if !namespaces.contains(ns) {
                    continue;
                }
                if let Some(workload) = pod.workload(ns, &owners)
                    && troubled.contains(&workload)
                {
                    let (pods, unready) = seen.entry(workload).or_default();
                    *pods += 1;
                    *unready += usize::from(pod.known_unready());
                }
            }
        });
        for (workload, health) in &mut deployments {
            if let Some((pods, unready)) = seen.get(workload) {
                available_now(health, *pods, *unready);
            }
        }
    }
    // Warning Events configured as signals count while observed within the window.
    let window =
        SignedDuration::try_from(config.warning_events.window).unwrap_or(SignedDuration::MAX);
    let mut event_expiry: Option<Timestamp> = None;
    let event_signals: Vec<ObjectSignal> = stores
        .events
        .iter()
        .flat_map(|cache| cache.values())
        .filter(|event| in_scope(&event.namespace().unwrap_or_default()))
        .filter_map(|event| {
            let kind = config.warning_events.signal(event.reason.as_deref()?)?;
            let expires = last_observed(&event)?.checked_add(window).ok()?;
            if expires <= now {
                return None;
            }
            let (workload, object) =
                event_workload(&event, pod_workload(stores, &owners), &owners)?;
            event_expiry = Some(event_expiry.map_or(expires, |e| e.min(expires)));
            Some(ObjectSignal {
                workload,
                kind,
                object,
            })
        })
        .collect();
    let mut problems = group(&pods, &deployments, &event_signals, &config.severity);
    let incidents = stores.incidents.values();
    let not_ready: Vec<(String, String)> = stores
        .nodes
        .iter()
        .flat_map(|cache| cache.values())
        .filter_map(|node| Some((node.name_any(), node_not_ready(&node)?)))
        .collect();
    if !not_ready.is_empty() {
        let placements: Vec<PodPlacement> = stores.pods.read(|all| {
            all.iter()
                .filter_map(|(ns, name, pod)| {
                    Some(PodPlacement {
                        node: pod.node.as_deref()?.to_owned(),
                        pod: format!("{ns}/{name}"),
                        workload: pod.workload(ns, &owners),
                    })
                })
                .collect()
        });
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
        |workload, kind| lists_signal(&incidents, workload, kind),
        settings,
        now,
    );

    // Storm guard: problems without an incident yet share a per-minute budget of new incidents.
    let budget = storm_budget(&incidents, config.storm_limit, now);
    let (known, fresh): (Vec<Problem>, Vec<Problem>) = problems
        .into_iter()
        .partition(|p| matches!(target(&incidents, p, now, cooldown), Target::Existing(_)));
    let (admitted, storm) = storm_guard(fresh, budget, &config.node_incident_namespace);
    let problems: Vec<Problem> = known.into_iter().chain(admitted).chain(storm).collect();

    // Problems are independent (one incident each), so their writes run side by side. New
    // problems go first and every incident is written before any evidence is gathered: in a
    // storm, the next problem's incident does not wait behind others' ReplicaSets, logs, evidence.
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
    let (known, fresh): (Vec<&Problem>, Vec<&Problem>) = problems
        .iter()
        .partition(|p| matches!(target(&incidents, p, now, cooldown), Target::Existing(_)));
    let updates: Vec<_> = fresh
        .into_iter()
        .chain(known)
        .map(|p| update_incident(&pass, p))
        .collect();
    let written: Vec<Written> = futures::stream::iter(updates)
        .buffered(WRITES_IN_FLIGHT)
        .try_collect()
        .await?;
    let deferred = written.iter().filter_map(|w| w.due).min();
    let evidence: Vec<_> = written
        .iter()
        .filter_map(|w| {
            Some(write_evidence(
                &pass,
                w.problem,
                &w.name,
                w.evidence.as_deref()?,
            ))
        })
        .collect();
    futures::stream::iter(evidence)
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
        .chain(deferred)
        .min();
    let Some(resolve_after) = config.resolve_after else {
        return Ok(wake);
    };
    let resolve_after = SignedDuration::try_from(resolve_after).unwrap_or(SignedDuration::MAX);
    for incident in incidents.iter() {
        match auto_resolve(incident, &problems, now, resolve_after) {
            AutoResolve::Leave => {}
            AutoResolve::MarkSeen => incidents::mark_seen(client, incident, now).await?,
            AutoResolve::MarkCleared => incidents::mark_cleared(client, incident, now).await?,
            AutoResolve::Resolve => incidents::resolve(client, incident).await?,
            AutoResolve::WaitUntil(at) => wake = Some(wake.map_or(at, |w| w.min(at))),
        }
    }
    Ok(wake)
}

/// What every problem's writes in one pass share.
struct Pass<'a> {
    client: &'a Client,
    stores: &'a Stores,
    config: &'a DetectionConfig,
    incidents: &'a [Arc<Incident>],
    pods: &'a [PodSignals],
    owners: &'a Owners,
    now: Timestamp,
    cooldown: SignedDuration,
}

/// What a problem's incident needs after its update.
struct Written<'p> {
    problem: &'p Problem,
    name: String,
    /// The signals to gather evidence for, when the signals changed or evidence is missing.
    evidence: Option<Vec<Signal>>,
    /// When an update held back by the interval is due.
    due: Option<Timestamp>,
}

/// Opens or updates the problem's incident; says whether its evidence needs refreshing.
async fn update_incident<'p>(pass: &Pass<'_>, problem: &'p Problem) -> Result<Written<'p>> {
    let Pass {
        client,
        incidents,
        now,
        cooldown,
        ..
    } = *pass;
    let (name, existing) = match target(incidents, problem, now, cooldown) {
        Target::Existing(incident) => (incident.name_any(), Some(incident)),
        Target::New(name) => (name, None),
    };
    let (signals, due) = upsert(client, problem, &name, existing, now).await?;
    let stale = existing.is_none_or(|i| {
        i.status
            .as_ref()
            .and_then(|s| s.evidence.as_ref())
            .is_none()
    });
    let evidence =
        (problem.workload.kind == "Deployment" && (signals.is_some() || stale)).then(|| {
            signals.unwrap_or_else(|| existing.map(|i| i.spec.signals.clone()).unwrap_or_default())
        });
    Ok(Written {
        problem,
        name,
        evidence,
        due,
    })
}

/// Refreshes the evidence of the problem's incident `name` from what the caches hold.
async fn write_evidence(
    pass: &Pass<'_>,
    problem: &Problem,
    name: &str,
    signals: &[Signal],
) -> Result<()> {
    let Pass {
        client,
        stores,
        config,
        pods,
        owners,
        now,
        ..
    } = *pass;
    let on_workload: Vec<&PodSignals> = pods
        .iter()
        .filter(|p| p.workload == problem.workload)
        .collect();
    let events: Vec<Arc<Event>> = stores
        .events
        .iter()
        .flat_map(|cache| cache.values())
        .filter(|e| {
            e.namespace().as_deref() == Some(problem.workload.namespace.as_str())
                && event_workload(e, pod_workload(stores, owners), owners)
                    .is_some_and(|(w, _)| w == problem.workload)
        })
        .collect();
    let events: Vec<&Event> = events.iter().map(|e| e.as_ref()).collect();
    let deployment = stores
        .deployments
        .get(&problem.workload.namespace, &problem.workload.name);
    record_evidence(
        client,
        problem,
        name,
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

/// Creates or updates the problem's incident; writes only when what the detector owns changed,
/// and an update of the same kinds of trouble at most once per interval.
/// Returns the signals written (None when nothing was written) and when a held-back update is due.
async fn upsert(
    client: &Client,
    problem: &Problem,
    name: &str,
    existing: Option<&Incident>,
    now: Timestamp,
) -> Result<(Option<Vec<Signal>>, Option<Timestamp>)> {
    let previous = existing
        .map(|i| i.spec.signals.as_slice())
        .unwrap_or_default();
    let mut signals = signals(previous, problem, now);
    let severity = kept_severity(existing, problem);
    if let Some(incident) = existing {
        if let Some(unresolve) = undo_clearing(incident) {
            incidents::undo_clearing(client, incident, unresolve).await?;
        }
        match update_due(incident, problem, severity, &signals, now) {
            Update::Unchanged => return Ok((None, None)),
            Update::At(due) => return Ok((None, Some(due))),
            Update::Now => seen_at(&mut signals, problem, now),
        }
    }
    let body = incident_body(problem, name, existing, severity, &signals);
    incidents::apply_detected(client, &problem.workload.namespace, name, body).await?;
    if existing.is_none() {
        info!(incident = %name, namespace = %problem.workload.namespace, severity = %problem.severity, "opened incident");
    }
    Ok((Some(signals), None))
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
        Some(deployment) => {
            workloads::owned_replica_sets(client, &workload.namespace, deployment).await?
        }
        None => Vec::new(),
    };
    let mut evidence = evidence(pods, &owned, events, detected);
    evidence.managed_by = deployment.and_then(|d| GitOpsOwner::of(&d.metadata, ARGOCD_NAMESPACE));
    if let Some((pod, container)) = log_target(pods).filter(|_| log_tail_lines > 0) {
        evidence.logs = workloads::previous_log(
            client,
            &workload.namespace,
            &pod,
            &container,
            i64::from(log_tail_lines),
        )
        .await
        .map(|text| LogEvidence {
            pod,
            container,
            previous: true,
            text,
        });
    }
    incidents::write_evidence(client, &workload.namespace, name, &evidence).await
}
