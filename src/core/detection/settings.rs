//! What the detector is configured with (core layer): which signals are on, how long each must last
//! (`for`), which namespaces are in scope, which Warning Events count, and the severity each kind
//! of problem gets. Built by `config` from the configuration file and flags.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use kube::core::labels::{Selector, SelectorExt};

use super::classify::SignalKind;
use crate::api::Severity;

/// Namespaces never watched for signals, whatever the selector says.
pub const SYSTEM_NAMESPACES: [&str; 3] = ["kube-system", "kube-public", "kube-node-lease"];

/// Everything the detector is configured with.
#[derive(Clone, Debug)]
pub struct DetectionConfig {
    /// Resolve a detected incident once its signals stayed clear this long; None never.
    pub resolve_after: Option<Duration>,
    /// Namespace that holds node incidents (nodes have none of their own).
    pub node_incident_namespace: String,
    /// Only nodes matching this label selector are watched (empty: all).
    pub node_selector: String,
    /// At most this many new incidents a minute; the rest wait in one storm incident.
    pub storm_limit: usize,
    /// A problem returning within this long after its incident was resolved reopens it; later it
    /// opens a new incident.
    pub reopen_cooldown: Duration,
    pub scope: Scope,
    /// Lines of the crashed container's previous log kept as evidence; 0 fetches no logs.
    pub log_tail_lines: u16,
    pub signals: SignalSettings,
    pub warning_events: WarningEvents,
    pub severity: SeverityPolicy,
}

impl Default for DetectionConfig {
    fn default() -> Self {
        DetectionConfig {
            resolve_after: Some(Duration::from_secs(300)),
            node_incident_namespace: "default".into(),
            node_selector: String::new(),
            storm_limit: 20,
            reopen_cooldown: Duration::from_secs(600),
            scope: Scope::default(),
            log_tail_lines: 50,
            signals: SignalSettings::default(),
            warning_events: WarningEvents::default(),
            severity: SeverityPolicy::default(),
        }
    }
}

/// Which namespaces are watched for signals.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    /// Namespaces whose labels match are watched; None: every namespace.
    pub namespace_selector: Option<Selector>,
    /// Never watched, on top of the system namespaces (e.g. the operator's own).
    pub excluded: BTreeSet<String>,
}

impl Scope {
    /// Whether signals in `namespace` (with these labels, when known) count.
    pub fn includes(&self, namespace: &str, labels: Option<&BTreeMap<String, String>>) -> bool {
        if SYSTEM_NAMESPACES.contains(&namespace) || self.excluded.contains(namespace) {
            return false;
        }
        match (&self.namespace_selector, labels) {
            (None, _) => true,
            (Some(selector), Some(labels)) => selector.matches(labels),
            // A namespace not seen yet is out of scope until its labels are known.
            (Some(_), None) => false,
        }
    }
}

/// The built-in signals a configuration can switch off or debounce.
pub const BUILT_IN: [SignalKind; 8] = [
    SignalKind::CrashLoopBackOff,
    SignalKind::ImagePullBackOff,
    SignalKind::OomKilled,
    SignalKind::CreateContainerConfigError,
    SignalKind::Unschedulable,
    SignalKind::DeploymentUnavailable,
    SignalKind::ProgressDeadlineExceeded,
    SignalKind::NodeNotReady,
];

/// Per-signal switches and `for` durations.
#[derive(Clone, Debug)]
pub struct SignalSettings {
    pub disabled: BTreeSet<SignalKind>,
    /// How long a signal must last before it opens an incident or joins one; absent means 0.
    pub for_: BTreeMap<SignalKind, Duration>,
}

impl Default for SignalSettings {
    fn default() -> Self {
        SignalSettings {
            disabled: BTreeSet::new(),
            // The kubelet already backs off crashes and pulls, so those count at once; a rollout is
            // briefly unavailable and a pod briefly unschedulable while the cluster scales.
            for_: BTreeMap::from([
                (SignalKind::Unschedulable, Duration::from_secs(300)),
                (SignalKind::DeploymentUnavailable, Duration::from_secs(30)),
            ]),
        }
    }
}

impl SignalSettings {
    pub fn enabled(&self, kind: SignalKind) -> bool {
        !self.disabled.contains(&kind)
    }

    pub fn for_(&self, kind: SignalKind) -> Duration {
        self.for_.get(&kind).copied().unwrap_or_default()
    }
}

/// Warning Events (events.k8s.io/v1) the detector reads.
#[derive(Clone, Debug)]
pub struct WarningEvents {
    /// Reasons kept as evidence on the incident of the workload they are about.
    pub evidence_reasons: BTreeSet<String>,
    /// Reasons that are signals of their own (they open or join an incident). Static because
    /// they name a `SignalKind`; read once from the configuration at start.
    pub signal_reasons: BTreeSet<&'static str>,
    /// An event signal stays present this long after the event was last observed.
    pub window: Duration,
}

impl Default for WarningEvents {
    fn default() -> Self {
        WarningEvents {
            evidence_reasons: [
                "BackOff",
                "Unhealthy",
                "FailedMount",
                "FailedScheduling",
                "Evicted",
                "FailedCreate",
                "OOMKilling",
            ]
            .into_iter()
            .map(String::from)
            .collect(),
            signal_reasons: BTreeSet::new(),
            window: Duration::from_secs(300),
        }
    }
}

impl WarningEvents {
    /// Whether the detector needs to watch Events at all.
    pub fn watched(&self) -> bool {
        !self.evidence_reasons.is_empty() || !self.signal_reasons.is_empty()
    }

    pub fn wanted(&self, reason: &str) -> bool {
        self.evidence_reasons.contains(reason) || self.signal_reasons.contains(reason)
    }

    /// The signal kind of a configured reason.
    pub fn signal(&self, reason: &str) -> Option<SignalKind> {
        self.signal_reasons
            .get(reason)
            .map(|r| SignalKind::Event(r))
    }
}

/// The severity each kind of problem opens with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeverityPolicy {
    /// Every replica of the workload unavailable.
    pub all_unavailable: Severity,
    /// Some replicas unavailable.
    pub some_unavailable: Severity,
    /// A node NotReady or Unknown.
    pub node_not_ready: Severity,
    /// Pods in trouble while the workload stays available.
    pub pods_restarting: Severity,
}

impl Default for SeverityPolicy {
    fn default() -> Self {
        SeverityPolicy {
            all_unavailable: Severity::P1,
            some_unavailable: Severity::P2,
            node_not_ready: Severity::P2,
            pods_restarting: Severity::P3,
        }
    }
}

impl SeverityPolicy {
    /// Severity of a workload problem from its (desired, available) replicas.
    pub fn of_workload(&self, replicas: Option<(i32, i32)>) -> Severity {
        match replicas {
            Some((desired, 0)) if desired > 0 => self.all_unavailable,
            Some((desired, available)) if available < desired => self.some_unavailable,
            _ => self.pods_restarting,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::labels::Expression;

    #[test]
    fn scope_excludes_system_and_listed_namespaces_and_follows_the_selector() {
        let mut scope = Scope::default();
        assert!(scope.includes("shop", None));
        assert!(!scope.includes("kube-system", None));
        scope.excluded.insert("incident-operator".into());
        assert!(!scope.includes("incident-operator", None));
        scope.namespace_selector = Some(Selector::from_iter([
            Expression::Equal("team".into(), "shop".into()),
            Expression::DoesNotExist("incident.dev/ignore".into()),
        ]));
        let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert!(scope.includes("shop", Some(&labels(&[("team", "shop")]))));
        assert!(!scope.includes("shop", Some(&labels(&[("team", "ads")]))));
        assert!(!scope.includes(
            "shop",
            Some(&labels(&[("team", "shop"), ("incident.dev/ignore", "")]))
        ));
        assert!(!scope.includes("shop", None), "labels unknown yet");
    }

    #[test]
    fn severity_follows_the_policy() {
        let policy = SeverityPolicy {
            all_unavailable: Severity::P0,
            ..SeverityPolicy::default()
        };
        assert_eq!(policy.of_workload(Some((3, 0))), Severity::P0);
        assert_eq!(policy.of_workload(Some((3, 1))), Severity::P2);
        assert_eq!(policy.of_workload(Some((3, 3))), Severity::P3);
        assert_eq!(policy.of_workload(None), Severity::P3);
    }
}
