//! What the detector looks for and how it judges it (pure data + pure decisions): which signals are
//! on, how long each must last (`for`), which namespaces are in scope, which Warning Events count,
//! and the severity each kind of problem gets. Built from the configuration file and flags.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};
use kube::core::labels::{Selector, SelectorExt};
use serde_json::json;

use super::{
    classify::SignalKind,
    group::{Problem, Workload},
};
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

/// When each (workload, signal) pending its `for` was first seen; kept in memory by the detector.
pub type Pending = BTreeMap<(Workload, SignalKind), Timestamp>;

/// Holds back each signal until it has lasted its `for`, unless the workload's incident already
/// lists it (`listed`). Problems left with no signal are dropped. Returns the problems that count
/// and when the earliest held-back signal matures. Signals with their own clock from the object
/// (Unschedulable, DeploymentUnavailable: condition times) are debounced by the classifier instead.
pub fn debounce(
    problems: Vec<Problem>,
    pending: &mut Pending,
    listed: impl Fn(&Workload, SignalKind) -> bool,
    settings: &SignalSettings,
    now: Timestamp,
) -> (Vec<Problem>, Option<Timestamp>) {
    let mut seen: BTreeSet<(Workload, SignalKind)> = BTreeSet::new();
    let mut wake: Option<Timestamp> = None;
    let mut out = Vec::with_capacity(problems.len());
    for mut problem in problems {
        let workload = problem.workload.clone();
        problem.signals.retain(|kind, _| {
            let wait = match kind {
                SignalKind::Unschedulable
                | SignalKind::DeploymentUnavailable
                | SignalKind::IncidentStorm => return true,
                other => settings.for_(*other),
            };
            if wait.is_zero() || listed(&workload, *kind) {
                return true;
            }
            let key = (workload.clone(), *kind);
            seen.insert(key.clone());
            let since = *pending.entry(key).or_insert(now);
            let matures = since
                .checked_add(SignedDuration::try_from(wait).unwrap_or(SignedDuration::MAX))
                .unwrap_or(Timestamp::MAX);
            if now >= matures {
                return true;
            }
            wake = Some(wake.map_or(matures, |w| w.min(matures)));
            false
        });
        if !problem.signals.is_empty() {
            out.push(problem);
        }
    }
    // A signal that went away starts its wait afresh when it returns.
    pending.retain(|key, _| seen.contains(key));
    (out, wake)
}

fn owns_severity(entry: &ManagedFieldsEntry) -> bool {
    entry
        .fields_v1
        .as_ref()
        .and_then(|f| f.0.get("f:spec"))
        .and_then(|spec| spec.get("f:severity"))
        .is_some()
}

/// The managed-fields entries that own `spec.severity`, reduced to that one field: all the
/// detector's incident cache keeps of them (the rest costs memory and is never read).
pub fn severity_owners(
    managed: Option<Vec<ManagedFieldsEntry>>,
) -> Option<Vec<ManagedFieldsEntry>> {
    let owners: Vec<ManagedFieldsEntry> = managed?
        .into_iter()
        .filter(owns_severity)
        .map(|m| ManagedFieldsEntry {
            fields_v1: Some(FieldsV1(json!({ "f:spec": { "f:severity": {} } }))),
            ..m
        })
        .collect();
    (!owners.is_empty()).then_some(owners)
}

/// True when someone other than `detector` set the incident's severity (a person with
/// `kubectl incident severity` or `kubectl edit`, a runbook): the detector then keeps it, so a
/// responder's judgement is never silently undone.
pub fn severity_set_by_others(managed: Option<&[ManagedFieldsEntry]>, detector: &str) -> bool {
    managed
        .unwrap_or_default()
        .iter()
        .any(|m| m.manager.as_deref() != Some(detector) && owns_severity(m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::labels::Expression;
    use std::collections::BTreeSet;

    fn web() -> Workload {
        Workload {
            namespace: "shop".into(),
            kind: "Deployment".into(),
            name: "web".into(),
        }
    }

    fn problem(kinds: &[SignalKind]) -> Problem {
        Problem {
            workload: web(),
            severity: Severity::P3,
            title: "web".into(),
            signals: kinds
                .iter()
                .map(|k| (*k, BTreeSet::from(["web-1".to_owned()])))
                .collect(),
            replicas: None,
            detail: None,
        }
    }

    fn settings(kind: SignalKind, secs: u64) -> SignalSettings {
        let mut s = SignalSettings::default();
        s.for_.insert(kind, Duration::from_secs(secs));
        s
    }

    #[test]
    fn a_signal_counts_only_after_its_for() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().expect("time");
        let s = settings(SignalKind::CrashLoopBackOff, 60);
        let mut pending = Pending::new();
        let (out, wake) = debounce(
            vec![problem(&[SignalKind::CrashLoopBackOff])],
            &mut pending,
            |_, _| false,
            &s,
            t0,
        );
        assert!(out.is_empty());
        assert_eq!(wake, Some(t0 + SignedDuration::from_secs(60)));
        let (out, _) = debounce(
            vec![problem(&[SignalKind::CrashLoopBackOff])],
            &mut pending,
            |_, _| false,
            &s,
            t0 + SignedDuration::from_secs(59),
        );
        assert!(out.is_empty());
        let (out, wake) = debounce(
            vec![problem(&[SignalKind::CrashLoopBackOff])],
            &mut pending,
            |_, _| false,
            &s,
            t0 + SignedDuration::from_secs(60),
        );
        assert_eq!(out.len(), 1);
        assert_eq!(wake, None);
    }

    #[test]
    fn a_signal_that_goes_away_waits_afresh() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().expect("time");
        let s = settings(SignalKind::ImagePullBackOff, 60);
        let mut pending = Pending::new();
        debounce(
            vec![problem(&[SignalKind::ImagePullBackOff])],
            &mut pending,
            |_, _| false,
            &s,
            t0,
        );
        debounce(
            Vec::new(),
            &mut pending,
            |_, _| false,
            &s,
            t0 + SignedDuration::from_secs(30),
        );
        let (out, _) = debounce(
            vec![problem(&[SignalKind::ImagePullBackOff])],
            &mut pending,
            |_, _| false,
            &s,
            t0 + SignedDuration::from_secs(61),
        );
        assert!(
            out.is_empty(),
            "the wait restarted when the signal returned"
        );
    }

    #[test]
    fn signals_already_on_the_incident_and_zero_for_pass_at_once() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().expect("time");
        let s = settings(SignalKind::OomKilled, 600);
        let mut pending = Pending::new();
        let (out, _) = debounce(
            vec![problem(&[
                SignalKind::OomKilled,
                SignalKind::CrashLoopBackOff,
            ])],
            &mut pending,
            |_, kind| kind == SignalKind::OomKilled,
            &s,
            t0,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].signals.len(), 2);
        let (out, _) = debounce(
            vec![problem(&[
                SignalKind::OomKilled,
                SignalKind::CrashLoopBackOff,
            ])],
            &mut pending,
            |_, _| false,
            &s,
            t0,
        );
        assert_eq!(
            out[0].signals.keys().copied().collect::<Vec<_>>(),
            vec![SignalKind::CrashLoopBackOff],
            "a new OOMKilled waits while the crash loop counts"
        );
    }

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

    #[test]
    fn a_severity_set_by_someone_else_is_kept_and_only_its_owners_are_cached() {
        let entry = |manager: &str, fields: serde_json::Value| ManagedFieldsEntry {
            manager: Some(manager.to_owned()),
            operation: Some("Update".to_owned()),
            fields_v1: Some(FieldsV1(fields)),
            ..ManagedFieldsEntry::default()
        };
        let detector = "incident-operator-detector";
        let created = vec![
            entry(
                detector,
                json!({ "f:spec": { "f:severity": {}, "f:title": {} } }),
            ),
            entry(
                "incident-operator",
                json!({ "f:status": { "f:phase": {} } }),
            ),
        ];
        let kept = severity_owners(Some(created.clone())).expect("the detector owns it");
        assert_eq!(kept.len(), 1);
        assert_eq!(
            kept[0].fields_v1.as_ref().map(|f| f.0.clone()),
            Some(json!({ "f:spec": { "f:severity": {} } }))
        );
        assert!(!severity_set_by_others(Some(&kept), detector));

        let mut edited = created;
        edited.push(entry(
            "kubectl-incident",
            json!({ "f:spec": { "f:severity": {} } }),
        ));
        let kept = severity_owners(Some(edited));
        assert!(severity_set_by_others(kept.as_deref(), detector));
        assert!(!severity_set_by_others(None, detector));
        assert_eq!(severity_owners(Some(Vec::new())), None);
    }
}
