//! Grouping signals into problems (core layer): every signal of a workload's pods and of the
//! workload itself is one problem, so 50 crashing pods of one Deployment make one incident that
//! lists them.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;

use super::{
    classify::{ContainerTrouble, DeploymentHealth, SignalKind},
    settings::SeverityPolicy,
};
use crate::{
    api::{MAX_SIGNAL_PODS, Severity, Signal},
    core::text::{fingerprint, whole_second},
};

/// A workload pods belong to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Workload {
    pub namespace: String,
    /// Deployment, StatefulSet or DaemonSet.
    pub kind: String,
    pub name: String,
}

impl Workload {
    /// Stable identity of the problem "this workload is unhealthy" (the incident's label).
    pub fn fingerprint(&self) -> String {
        fingerprint(&[&self.namespace, &self.kind, &self.name])
    }

    /// Deterministic incident name: one problem can only ever be created once.
    pub fn incident_name(&self) -> String {
        let name: String = self.name.chars().take(200).collect();
        let print = self.fingerprint();
        format!("{}-{}-{}", self.kind.to_lowercase(), name, &print[..8])
    }
}

/// A pod's signals and the workload it belongs to.
#[derive(Clone, Debug)]
pub struct PodSignals {
    pub pod: String,
    pub workload: Workload,
    pub troubles: Vec<ContainerTrouble>,
}

/// One unhealthy workload, with everything seen on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub workload: Workload,
    pub severity: Severity,
    pub title: String,
    /// Signal kind → pods showing it (sorted); workload-level signals list no pods.
    pub signals: BTreeMap<SignalKind, BTreeSet<String>>,
    /// Desired and available replicas, when the workload is a Deployment.
    pub replicas: Option<(i32, i32)>,
    /// More for the incident's description (for a node: the workloads on it).
    pub detail: Option<String>,
}

/// A pod running on a node, with its workload.
#[derive(Clone, Debug)]
pub struct PodPlacement {
    pub node: String,
    pub pod: String,
    pub workload: Option<Workload>,
}

/// One problem per NotReady node, listing the pods and workloads on it, filed in `namespace`.
pub fn node_problems(
    not_ready: &[(String, String)],
    pods: &[PodPlacement],
    namespace: &str,
    severity: Severity,
) -> Vec<Problem> {
    not_ready
        .iter()
        .map(|(node, reason)| {
            let on_node: Vec<&PodPlacement> = pods.iter().filter(|p| &p.node == node).collect();
            let mut workloads: BTreeMap<String, usize> = BTreeMap::new();
            for pod in &on_node {
                if let Some(w) = &pod.workload {
                    *workloads
                        .entry(format!(
                            "{}/{} in {}",
                            w.kind.to_lowercase(),
                            w.name,
                            w.namespace
                        ))
                        .or_default() += 1;
                }
            }
            let names: BTreeSet<String> = on_node.iter().map(|p| p.pod.clone()).collect();
            let mut signals = BTreeMap::new();
            signals.insert(SignalKind::NodeNotReady, names);
            let title = format!(
                "node/{node} NotReady: {} pod{} of {} workload{} affected",
                on_node.len(),
                if on_node.len() == 1 { "" } else { "s" },
                workloads.len(),
                if workloads.len() == 1 { "" } else { "s" }
            );
            let detail = format!(
                "{reason}. Workloads on the node: {}.",
                if workloads.is_empty() {
                    "none".to_owned()
                } else {
                    workloads
                        .iter()
                        .map(|(w, n)| format!("{w} ({n} pods)"))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            );
            Problem {
                workload: Workload {
                    namespace: namespace.to_owned(),
                    kind: "Node".into(),
                    name: node.clone(),
                },
                severity,
                title: title.chars().take(200).collect(),
                signals,
                replicas: None,
                detail: Some(detail.chars().take(4000).collect()),
            }
        })
        .collect()
}

/// A signal read from something other than a pod's status (a Warning Event), already attributed
/// to its workload; `object` is the pod it is about, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectSignal {
    pub workload: Workload,
    pub kind: SignalKind,
    pub object: Option<String>,
}

/// Groups pod, Deployment and event signals into one problem per workload.
pub fn group(
    pods: &[PodSignals],
    deployments: &[(Workload, DeploymentHealth)],
    others: &[ObjectSignal],
    severity: &SeverityPolicy,
) -> Vec<Problem> {
    let mut signals: BTreeMap<Workload, BTreeMap<SignalKind, BTreeSet<String>>> = BTreeMap::new();
    for other in others {
        let pods = signals
            .entry(other.workload.clone())
            .or_default()
            .entry(other.kind)
            .or_default();
        if let Some(object) = &other.object {
            pods.insert(object.clone());
        }
    }
    for pod in pods {
        for trouble in &pod.troubles {
            signals
                .entry(pod.workload.clone())
                .or_default()
                .entry(trouble.kind)
                .or_default()
                .insert(pod.pod.clone());
        }
    }
    let health: BTreeMap<&Workload, &DeploymentHealth> =
        deployments.iter().map(|(w, h)| (w, h)).collect();
    for (workload, h) in deployments {
        for kind in &h.signals {
            signals
                .entry(workload.clone())
                .or_default()
                .entry(*kind)
                .or_default();
        }
    }
    signals
        .into_iter()
        .map(|(workload, signals)| {
            let replicas = health.get(&workload).map(|h| (h.desired, h.available));
            let severity = severity.of_workload(replicas);
            let title = title(&workload, &signals, replicas);
            Problem {
                workload,
                severity,
                title,
                signals,
                replicas,
                detail: None,
            }
        })
        .collect()
}

fn title(
    workload: &Workload,
    signals: &BTreeMap<SignalKind, BTreeSet<String>>,
    replicas: Option<(i32, i32)>,
) -> String {
    let pod_level: Vec<String> = signals
        .iter()
        .filter(|(_, pods)| !pods.is_empty())
        .map(|(kind, pods)| {
            format!(
                "{} on {} pod{}",
                kind.as_str(),
                pods.len(),
                if pods.len() == 1 { "" } else { "s" }
            )
        })
        .collect();
    let mut title = format!("{}/{}: ", workload.kind.to_lowercase(), workload.name);
    if pod_level.is_empty() {
        let kinds: Vec<&str> = signals.keys().map(|k| k.as_str()).collect();
        title.push_str(&kinds.join(", "));
    } else {
        title.push_str(&pod_level.join(", "));
    }
    if let Some((desired, available)) = replicas {
        title.push_str(&format!(" ({available}/{desired} available)"));
    }
    title.chars().take(200).collect()
}

/// The `spec.signals` for a problem, keeping when each signal was first seen and touching
/// `lastSeen` only when what is seen changes (so a steady problem causes no writes).
pub fn signals(existing: &[Signal], problem: &Problem, now: Timestamp) -> Vec<Signal> {
    let now = whole_second(now);
    let mut out: Vec<Signal> = problem
        .signals
        .iter()
        .map(|(kind, pods)| {
            let count = if pods.is_empty() {
                problem
                    .replicas
                    .map_or(0, |(desired, available)| (desired - available).max(0))
            } else {
                i32::try_from(pods.len()).unwrap_or(i32::MAX)
            };
            let pods: Vec<String> = pods.iter().take(MAX_SIGNAL_PODS).cloned().collect();
            match existing.iter().find(|s| s.type_ == kind.as_str()) {
                Some(seen) if seen.count == count && seen.pods == pods => seen.clone(),
                Some(seen) => Signal {
                    last_seen: now.clone(),
                    count,
                    pods,
                    ..seen.clone()
                },
                None => Signal {
                    type_: kind.as_str().to_owned(),
                    first_seen: now.clone(),
                    last_seen: now.clone(),
                    count,
                    pods,
                },
            }
        })
        .collect();
    // Signals that stopped are kept, as last seen, so the incident still tells the whole story.
    for old in existing {
        if !out.iter().any(|s| s.type_ == old.type_) {
            out.push(old.clone());
        }
    }
    out.sort_by(|a, b| a.type_.cmp(&b.type_));
    out.truncate(20);
    out
}

/// The storm guard: at most `budget` of the `fresh` problems (no incident yet) get incidents now;
/// the rest are held in one "incident storm" problem filed in `namespace`, naming their workloads.
pub fn storm_guard(
    fresh: Vec<Problem>,
    budget: usize,
    namespace: &str,
) -> (Vec<Problem>, Option<Problem>) {
    if fresh.len() <= budget {
        return (fresh, None);
    }
    let mut fresh = fresh;
    // The most severe go first.
    fresh.sort_by(|a, b| (a.severity, &a.workload).cmp(&(b.severity, &b.workload)));
    let held = fresh.split_off(budget);
    let names: BTreeSet<String> = held
        .iter()
        .map(|p| {
            format!(
                "{}/{}/{}",
                p.workload.namespace,
                p.workload.kind.to_lowercase(),
                p.workload.name
            )
        })
        .collect();
    let severity = held
        .iter()
        .map(|p| p.severity)
        .min()
        .unwrap_or(Severity::P2);
    let mut signals = BTreeMap::new();
    signals.insert(SignalKind::IncidentStorm, names.clone());
    let storm = Problem {
        workload: Workload {
            namespace: namespace.to_owned(),
            kind: "Storm".into(),
            name: "incident-storm".into(),
        },
        severity,
        title: format!("Incident storm: {} more problems held back by the storm guard", held.len()),
        signals,
        replicas: None,
        detail: Some(
            format!(
                "More than {budget} new problems in a minute; these get their own incidents as the limit allows: {}.",
                names.iter().cloned().collect::<Vec<_>>().join(", ")
            )
            .chars()
            .take(4000)
            .collect(),
        ),
    };
    (fresh, Some(storm))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn web() -> Workload {
        Workload {
            namespace: "shop".into(),
            kind: "Deployment".into(),
            name: "web".into(),
        }
    }

    fn crashing(pod: &str) -> PodSignals {
        PodSignals {
            pod: pod.into(),
            workload: web(),
            troubles: vec![ContainerTrouble {
                kind: SignalKind::CrashLoopBackOff,
                container: "app".into(),
                restarts: 3,
                last_termination: Some(("Error".into(), 1)),
                message: None,
            }],
        }
    }

    fn health(desired: i32, available: i32) -> DeploymentHealth {
        DeploymentHealth {
            desired,
            available,
            signals: if available < desired {
                vec![SignalKind::DeploymentUnavailable]
            } else {
                vec![]
            },
            matures_at: None,
        }
    }

    #[test]
    fn fifty_crashing_pods_of_one_deployment_are_one_problem() {
        let pods: Vec<PodSignals> = (0..50).map(|i| crashing(&format!("web-{i}"))).collect();
        let problems = group(
            &pods,
            &[(web(), health(50, 0))],
            &[],
            &SeverityPolicy::default(),
        );
        assert_eq!(problems.len(), 1);
        let problem = &problems[0];
        assert_eq!(problem.severity, Severity::P1);
        assert_eq!(problem.signals[&SignalKind::CrashLoopBackOff].len(), 50);
        assert!(
            problem
                .signals
                .contains_key(&SignalKind::DeploymentUnavailable)
        );
        assert_eq!(
            problem.title,
            "deployment/web: CrashLoopBackOff on 50 pods (0/50 available)"
        );
    }

    #[test]
    fn severity_follows_availability() {
        let pods = [crashing("web-0")];
        assert_eq!(
            group(
                &pods,
                &[(web(), health(3, 0))],
                &[],
                &SeverityPolicy::default()
            )[0]
            .severity,
            Severity::P1
        );
        assert_eq!(
            group(
                &pods,
                &[(web(), health(3, 2))],
                &[],
                &SeverityPolicy::default()
            )[0]
            .severity,
            Severity::P2
        );
        assert_eq!(
            group(
                &pods,
                &[(web(), health(3, 3))],
                &[],
                &SeverityPolicy::default()
            )[0]
            .severity,
            Severity::P3
        );
        assert!(
            group(
                &[],
                &[(web(), health(3, 3))],
                &[],
                &SeverityPolicy::default()
            )
            .is_empty(),
            "healthy: no problem"
        );
    }

    #[test]
    fn a_not_ready_node_is_one_problem_listing_its_workloads() {
        let pods: Vec<PodPlacement> = (0..30)
            .map(|i| PodPlacement {
                node: "n1".into(),
                pod: format!("web-{i}"),
                workload: Some(web()),
            })
            .chain([PodPlacement {
                node: "n2".into(),
                pod: "other".into(),
                workload: None,
            }])
            .collect();
        let problems = node_problems(
            &[("n1".into(), "Ready=False (KubeletNotReady)".into())],
            &pods,
            "ops",
            Severity::P2,
        );
        assert_eq!(problems.len(), 1);
        let problem = &problems[0];
        assert_eq!(
            problem.title,
            "node/n1 NotReady: 30 pods of 1 workload affected"
        );
        assert_eq!(problem.signals[&SignalKind::NodeNotReady].len(), 30);
        assert_eq!(problem.severity, Severity::P2);
        assert!(
            problem
                .detail
                .as_deref()
                .unwrap_or_default()
                .contains("deployment/web in shop (30 pods)")
        );
        assert!(problem.workload.incident_name().starts_with("node-n1-"));
    }

    #[test]
    fn event_signals_join_the_workload_problem() {
        let events = [
            ObjectSignal {
                workload: web(),
                kind: SignalKind::Event("FailedMount"),
                object: Some("web-1".into()),
            },
            ObjectSignal {
                workload: web(),
                kind: SignalKind::Event("FailedMount"),
                object: Some("web-2".into()),
            },
        ];
        let problems = group(
            &[crashing("web-3")],
            &[(web(), health(3, 1))],
            &events,
            &SeverityPolicy::default(),
        );
        assert_eq!(problems.len(), 1, "one problem per workload");
        let problem = &problems[0];
        assert_eq!(problem.signals[&SignalKind::Event("FailedMount")].len(), 2);
        assert_eq!(problem.signals[&SignalKind::CrashLoopBackOff].len(), 1);
        assert_eq!(problem.severity, Severity::P2);
    }

    #[test]
    fn the_storm_guard_lets_the_budget_through_and_holds_the_rest() {
        let problems: Vec<Problem> = (0..12)
            .map(|i| {
                let w = Workload {
                    name: format!("app-{i:02}"),
                    ..web()
                };
                group(
                    &[PodSignals {
                        workload: w.clone(),
                        ..crashing("p")
                    }],
                    &[],
                    &[],
                    &SeverityPolicy::default(),
                )[0]
                .clone()
            })
            .collect();
        let (now, storm) = storm_guard(problems.clone(), 5, "ops");
        assert_eq!(now.len(), 5);
        let storm = storm.expect("a storm");
        assert_eq!(storm.signals[&SignalKind::IncidentStorm].len(), 7);
        assert_eq!(
            storm.workload.incident_name(),
            storm_guard(problems.clone(), 5, "ops")
                .1
                .expect("storm")
                .workload
                .incident_name()
        );
        assert_eq!(
            storm_guard(problems, 20, "ops").1,
            None,
            "under the limit: no storm"
        );
    }

    #[test]
    fn names_and_fingerprints_are_deterministic() {
        assert_eq!(web().incident_name(), web().incident_name());
        assert!(web().incident_name().starts_with("deployment-web-"));
        let other = Workload {
            name: "api".into(),
            ..web()
        };
        assert_ne!(web().fingerprint(), other.fingerprint());
    }

    #[test]
    fn a_steady_problem_keeps_its_signals_unchanged() {
        let t0: Timestamp = "2026-11-22T15:00:00Z".parse().expect("time");
        let t1: Timestamp = "2026-11-22T15:05:00Z".parse().expect("time");
        let pods = [crashing("web-0"), crashing("web-1")];
        let problem = &group(
            &pods,
            &[(web(), health(2, 0))],
            &[],
            &SeverityPolicy::default(),
        )[0];
        let first = signals(&[], problem, t0);
        assert_eq!(
            signals(&first, problem, t1),
            first,
            "nothing changed, nothing to write"
        );
        let fewer = &group(
            &pods[..1],
            &[(web(), health(2, 1))],
            &[],
            &SeverityPolicy::default(),
        )[0];
        let later = signals(&first, fewer, t1);
        let crash = later
            .iter()
            .find(|s| s.type_ == "CrashLoopBackOff")
            .expect("signal");
        assert_eq!(
            (crash.count, crash.first_seen.0, crash.last_seen.0),
            (1, t0, t1)
        );
    }
}
