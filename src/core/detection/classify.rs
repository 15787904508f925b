//! Classifying health signals (core layer): what is wrong with a Pod, a Deployment or a Node, read
//! from the status the kubelet and the controllers report. Grouping and incident upserts build on
//! these.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{ContainerStatus, Node, Pod, PodCondition, PodStatus},
};

use crate::api::metadata::revision_text;

/// A kind of trouble the detector recognises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SignalKind {
    CrashLoopBackOff,
    ImagePullBackOff,
    OomKilled,
    CreateContainerConfigError,
    Unschedulable,
    DeploymentUnavailable,
    ProgressDeadlineExceeded,
    NodeNotReady,
    /// More new problems at once than the storm guard lets through.
    IncidentStorm,
    /// A Warning Event whose reason is configured as a signal (the reason, from configuration).
    Event(&'static str),
}

impl SignalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SignalKind::CrashLoopBackOff => "CrashLoopBackOff",
            SignalKind::ImagePullBackOff => "ImagePullBackOff",
            SignalKind::OomKilled => "OOMKilled",
            SignalKind::CreateContainerConfigError => "CreateContainerConfigError",
            SignalKind::Unschedulable => "Unschedulable",
            SignalKind::DeploymentUnavailable => "DeploymentUnavailable",
            SignalKind::ProgressDeadlineExceeded => "ProgressDeadlineExceeded",
            SignalKind::NodeNotReady => "NodeNotReady",
            SignalKind::IncidentStorm => "IncidentStorm",
            SignalKind::Event(reason) => reason,
        }
    }
}

/// One container's trouble, with what a responder wants to see first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerTrouble {
    pub kind: SignalKind,
    pub container: String,
    pub restarts: i32,
    /// Last termination reason and exit code, when the container ended before.
    pub last_termination: Option<(String, i32)>,
    pub message: Option<String>,
}

/// The signals of one pod, or nothing when it is healthy.
pub fn pod_signals(pod: &Pod, now: Timestamp, pending_grace_seconds: i64) -> Vec<ContainerTrouble> {
    let created = pod.metadata.creation_timestamp.as_ref().map(|t| t.0);
    pod.status.as_ref().map_or_else(Vec::new, |status| {
        status_signals(status, created, now, pending_grace_seconds)
    })
}

/// The signals of a pod's status; `created` (the pod's creation time) dates an unschedulable pod
/// whose condition carries no transition time.
pub fn status_signals(
    status: &PodStatus,
    created: Option<Timestamp>,
    now: Timestamp,
    pending_grace_seconds: i64,
) -> Vec<ContainerTrouble> {
    let mut troubles: Vec<ContainerTrouble> = status
        .container_statuses
        .iter()
        .flatten()
        .chain(status.init_container_statuses.iter().flatten())
        .filter_map(container_trouble)
        .collect();
    if let Some(condition) = status
        .conditions
        .iter()
        .flatten()
        .find(|c| unschedulable(c))
    {
        let since = condition
            .last_transition_time
            .as_ref()
            .map(|t| t.0)
            .or(created);
        let waited = since.map_or(0, |s| now.duration_since(s).as_secs());
        if waited >= pending_grace_seconds {
            troubles.push(ContainerTrouble {
                kind: SignalKind::Unschedulable,
                container: String::new(),
                restarts: 0,
                last_termination: None,
                message: condition.message.clone(),
            });
        }
    }
    troubles
}

fn unschedulable(condition: &PodCondition) -> bool {
    condition.type_ == "PodScheduled"
        && condition.status == "False"
        && condition.reason.as_deref() == Some("Unschedulable")
}

/// Whether this status can yield a signal without the pod changing (an unschedulable pod's only
/// matures with time). A pod for which it cannot needs no status in the detector's cache: its next
/// change arrives as a new status anyway.
pub fn may_signal(pod: &Pod) -> bool {
    pod.status.as_ref().is_some_and(status_may_signal)
}

/// [`may_signal`] of a status alone.
pub fn status_may_signal(status: &PodStatus) -> bool {
    status
        .container_statuses
        .iter()
        .flatten()
        .chain(status.init_container_statuses.iter().flatten())
        .any(|c| container_trouble(c).is_some())
        || status.conditions.iter().flatten().any(unschedulable)
}

fn container_trouble(container: &ContainerStatus) -> Option<ContainerTrouble> {
    let waiting = container.state.as_ref().and_then(|s| s.waiting.as_ref());
    let last = container
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .map(|t| (t.reason.clone().unwrap_or_default(), t.exit_code));
    let kind = match waiting.and_then(|w| w.reason.as_deref()) {
        // An OOM kill is the more specific story behind a crash loop.
        Some("CrashLoopBackOff") if last.as_ref().is_some_and(|(r, _)| r == "OOMKilled") => {
            SignalKind::OomKilled
        }
        Some("CrashLoopBackOff") => SignalKind::CrashLoopBackOff,
        Some("ImagePullBackOff" | "ErrImagePull") => SignalKind::ImagePullBackOff,
        Some("CreateContainerConfigError") => SignalKind::CreateContainerConfigError,
        _ if last.as_ref().is_some_and(|(r, _)| r == "OOMKilled")
            && container.restart_count > 0 =>
        {
            SignalKind::OomKilled
        }
        _ => return None,
    };
    Some(ContainerTrouble {
        kind,
        container: container.name.clone(),
        restarts: container.restart_count,
        last_termination: last,
        message: waiting.and_then(|w| w.message.clone()),
    })
}

/// How a Deployment is doing, as the detector sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeploymentHealth {
    pub desired: i32,
    pub available: i32,
    pub signals: Vec<SignalKind>,
    /// When a pending unavailability becomes a signal, if it lasts.
    pub matures_at: Option<Timestamp>,
}

/// Availability signals of a Deployment (its pods' signals are classified separately).
/// `unavailable_for` debounces unavailability: a rolling update briefly has unavailable replicas, so
/// it counts only once Available=False, or no rollout progress, has lasted that long.
pub fn deployment_health(
    deployment: &Deployment,
    now: Timestamp,
    unavailable_for: SignedDuration,
) -> DeploymentHealth {
    let desired = deployment.spec.replicas.unwrap_or(1);
    let status = deployment.status.clone().unwrap_or_default();
    let available = status.available_replicas.unwrap_or(0);
    let mut signals = Vec::new();
    let conditions = status.conditions.unwrap_or_default();
    let condition = |type_: &str| {
        conditions
            .iter()
            .find(|c| c.type_.as_deref() == Some(type_))
    };
    let available_condition = condition("Available");
    let down = available_condition.is_some_and(|c| c.status.as_deref() == Some("False"));
    let degraded =
        desired > 0 && available < desired && status.unavailable_replicas.unwrap_or(0) > 0;
    // A Deployment's first rollout that has not finished yet is starting, not down: a slow
    // scheduler or image pull would otherwise open an incident per new Deployment (measured: 500 at
    // once). Its deadline (ProgressDeadlineExceeded) and its pods' own signals still report it.
    let first_rollout = revision_text(&deployment.metadata) == Some("1");
    let starting = first_rollout
        && condition("Progressing").is_some_and(|c| {
            c.status.as_deref() == Some("True")
                && c.reason.as_deref() != Some("NewReplicaSetAvailable")
        });
    let mut matures_at = None;
    if (down || degraded) && desired > 0 && !starting {
        // Unavailable since the later of: Available turned False, the rollout last progressed.
        let since = [
            available_condition
                .filter(|_| down)
                .and_then(|c| c.last_transition_time.as_ref()),
            condition("Progressing").and_then(|c| c.last_update_time.as_ref()),
        ]
        .into_iter()
        .flatten()
        .map(|t| t.0)
        .max();
        let ready_at = since.map_or(now, |s| {
            s.checked_add(unavailable_for).unwrap_or(Timestamp::MAX)
        });
        if now >= ready_at {
            signals.push(SignalKind::DeploymentUnavailable);
        } else {
            matures_at = Some(ready_at);
        }
    }
    if condition("Progressing").is_some_and(|c| {
        c.status.as_deref() == Some("False")
            && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    }) {
        signals.push(SignalKind::ProgressDeadlineExceeded);
    }
    DeploymentHealth {
        desired,
        available,
        signals,
        matures_at,
    }
}

/// Replicas of a Deployment available as of the freshest view. Its status counts a pod that just
/// turned unready until the Deployment controller catches up (a round trip through the
/// ReplicaSet), while the pod's own status arrives at once; no more pods can be available than
/// the pods seen (`pods`) that are not known to be unready (`unready`).
pub fn available_now(health: &mut DeploymentHealth, pods: usize, unready: usize) {
    let possible = i32::try_from(pods.saturating_sub(unready)).unwrap_or(i32::MAX);
    health.available = health.available.min(possible);
}

/// A node whose Ready condition is False or Unknown.
pub fn node_not_ready(node: &Node) -> Option<String> {
    let ready = node
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")?;
    (ready.status != "True").then(|| {
        format!(
            "Ready={} ({})",
            ready.status,
            ready
                .reason
                .clone()
                .unwrap_or_else(|| "no reason given".into())
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::metadata::REVISION_ANNOTATION;
    use serde_json::json;

    fn now() -> Timestamp {
        "2026-11-22T15:00:00Z".parse().expect("time")
    }

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": { "name": "web-1", "creationTimestamp": "2026-11-22T14:50:00Z" },
            "status": status,
        }))
        .expect("pod")
    }

    fn waiting(reason: &str, last: Option<(&str, i32)>, restarts: i32) -> serde_json::Value {
        let mut container = json!({
            "name": "app", "image": "web:3", "imageID": "", "ready": false, "restartCount": restarts,
            "state": { "waiting": { "reason": reason, "message": "details" } },
        });
        if let Some((reason, code)) = last {
            container["lastState"] =
                json!({ "terminated": { "reason": reason, "exitCode": code } });
        }
        json!({ "phase": "Running", "containerStatuses": [container] })
    }

    #[test]
    fn crash_loops_image_pulls_and_config_errors_are_recognised() {
        let cases = [
            (
                "CrashLoopBackOff",
                Some(("Error", 1)),
                SignalKind::CrashLoopBackOff,
            ),
            ("ImagePullBackOff", None, SignalKind::ImagePullBackOff),
            ("ErrImagePull", None, SignalKind::ImagePullBackOff),
            (
                "CreateContainerConfigError",
                None,
                SignalKind::CreateContainerConfigError,
            ),
            (
                "CrashLoopBackOff",
                Some(("OOMKilled", 137)),
                SignalKind::OomKilled,
            ),
        ];
        for (reason, last, kind) in cases {
            let signals = pod_signals(&pod(waiting(reason, last, 4)), now(), 300);
            assert_eq!(signals.len(), 1, "{reason}");
            assert_eq!(signals[0].kind, kind, "{reason}");
            assert_eq!(signals[0].restarts, 4);
            assert_eq!(
                signals[0].last_termination,
                last.map(|(r, c)| (r.to_owned(), c))
            );
        }
    }

    #[test]
    fn a_running_container_that_was_oom_killed_is_a_signal() {
        let status = json!({ "phase": "Running", "containerStatuses": [{
            "name": "app", "image": "cache:1", "imageID": "", "ready": true, "restartCount": 2,
            "state": { "running": {} },
            "lastState": { "terminated": { "reason": "OOMKilled", "exitCode": 137 } },
        }] });
        let signals = pod_signals(&pod(status), now(), 300);
        assert_eq!(
            signals.iter().map(|s| s.kind).collect::<Vec<_>>(),
            [SignalKind::OomKilled]
        );
    }

    #[test]
    fn only_pods_that_may_signal_keep_their_status() {
        let statuses = [
            waiting("CrashLoopBackOff", Some(("Error", 1)), 4),
            waiting("ImagePullBackOff", None, 0),
            waiting("ContainerCreating", None, 0),
            waiting("PodInitializing", None, 0),
            json!({ "phase": "Running", "containerStatuses": [{
                "name": "app", "image": "cache:1", "imageID": "", "ready": true, "restartCount": 2,
                "state": { "running": {} },
                "lastState": { "terminated": { "reason": "OOMKilled", "exitCode": 137 } } }] }),
            json!({ "phase": "Running", "containerStatuses": [{
                "name": "app", "image": "web:2", "imageID": "", "ready": true, "restartCount": 0,
                "state": { "running": {} } }] }),
            json!({ "phase": "Pending", "conditions": [{ "type": "PodScheduled",
                "status": "False", "reason": "Unschedulable", "message": "0/3 nodes",
                "lastTransitionTime": "2026-11-22T14:50:00Z" }] }),
            json!({ "phase": "Pending", "conditions": [{ "type": "PodScheduled",
                "status": "True" }] }),
            json!({ "phase": "Succeeded" }),
        ];
        for status in statuses {
            let pod = pod(status.clone());
            // However long one waits, a pod that may not signal never does.
            let later = now() + SignedDuration::from_hours(24 * 365);
            let signals = !pod_signals(&pod, later, 0).is_empty();
            assert_eq!(may_signal(&pod), signals, "{status}");
        }
        assert!(!may_signal(&Pod::default()));
    }

    #[test]
    fn healthy_and_statusless_pods_have_no_signals() {
        let healthy = json!({ "phase": "Running", "containerStatuses": [{
            "name": "app", "image": "web:2", "imageID": "", "ready": true, "restartCount": 0,
            "state": { "running": {} } }] });
        assert!(pod_signals(&pod(healthy), now(), 300).is_empty());
        let bare: Pod =
            serde_json::from_value(json!({ "metadata": { "name": "x" } })).expect("pod");
        assert!(pod_signals(&bare, now(), 300).is_empty());
    }

    #[test]
    fn unschedulable_pods_count_only_after_the_grace_period() {
        let status = json!({ "phase": "Pending", "conditions": [{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "lastTransitionTime": "2026-11-22T14:58:00Z", "message": "0/3 nodes are available" }] });
        assert!(
            pod_signals(&pod(status.clone()), now(), 300).is_empty(),
            "2 minutes < 5"
        );
        let signals = pod_signals(&pod(status), now(), 60);
        assert_eq!(signals[0].kind, SignalKind::Unschedulable);
    }

    fn deployment(status: serde_json::Value) -> Deployment {
        serde_json::from_value(json!({
            "metadata": { "name": "web" },
            "spec": { "replicas": 3, "selector": {}, "template": {} },
            "status": status,
        }))
        .expect("deployment")
    }

    #[test]
    fn a_first_rollout_still_progressing_is_starting_not_unavailable() {
        let mut new = deployment(
            json!({ "availableReplicas": 0, "unavailableReplicas": 3, "conditions": [
            { "type": "Available", "status": "False" },
            { "type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated" }] }),
        );
        new.metadata.annotations = Some(
            [(REVISION_ANNOTATION.to_owned(), "1".to_owned())]
                .into_iter()
                .collect(),
        );
        let health = deployment_health(&new, now(), SignedDuration::ZERO);
        assert_eq!(health.signals, []);
        assert_eq!(health.matures_at, None);
        assert_eq!(
            (health.desired, health.available),
            (3, 0),
            "severity still sees it"
        );

        // Past its deadline it is reported.
        let mut stalled = new.clone();
        stalled.status = deployment(
            json!({ "availableReplicas": 0, "unavailableReplicas": 3, "conditions": [
            { "type": "Available", "status": "False" },
            { "type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded" }] }),
        )
        .status;
        assert_eq!(
            deployment_health(&stalled, now(), SignedDuration::ZERO).signals,
            [
                SignalKind::DeploymentUnavailable,
                SignalKind::ProgressDeadlineExceeded
            ]
        );
        // Once it completed a rollout, losing its pods is unavailability again.
        let mut lost = new.clone();
        lost.status = deployment(
            json!({ "availableReplicas": 0, "unavailableReplicas": 3, "conditions": [
            { "type": "Available", "status": "False" },
            { "type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable" }] }),
        )
        .status;
        assert_eq!(
            deployment_health(&lost, now(), SignedDuration::ZERO).signals,
            [SignalKind::DeploymentUnavailable]
        );
        // A later rollout (revision 2) is not starting either.
        let mut second = new;
        second.metadata.annotations = Some(
            [(REVISION_ANNOTATION.to_owned(), "2".to_owned())]
                .into_iter()
                .collect(),
        );
        assert_eq!(
            deployment_health(&second, now(), SignedDuration::ZERO).signals,
            [SignalKind::DeploymentUnavailable]
        );
    }

    #[test]
    fn deployment_availability_and_stalled_rollouts_are_signals() {
        let down = deployment(
            json!({ "availableReplicas": 0, "unavailableReplicas": 3, "conditions": [
            { "type": "Available", "status": "False" },
            { "type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded" }] }),
        );
        let health = deployment_health(&down, now(), SignedDuration::ZERO);
        assert_eq!((health.desired, health.available), (3, 0));
        assert_eq!(
            health.signals,
            [
                SignalKind::DeploymentUnavailable,
                SignalKind::ProgressDeadlineExceeded
            ]
        );
        let degraded = deployment(
            json!({ "availableReplicas": 2, "unavailableReplicas": 1, "conditions": [
            { "type": "Available", "status": "True" }] }),
        );
        assert_eq!(
            deployment_health(&degraded, now(), SignedDuration::ZERO).signals,
            [SignalKind::DeploymentUnavailable]
        );
        let fine = deployment(json!({ "availableReplicas": 3, "conditions": [
            { "type": "Available", "status": "True" }] }));
        assert!(
            deployment_health(&fine, now(), SignedDuration::ZERO)
                .signals
                .is_empty()
        );
    }

    #[test]
    fn unavailability_counts_only_after_it_lasted() {
        let rolling = deployment(
            json!({ "availableReplicas": 2, "unavailableReplicas": 1, "conditions": [
            { "type": "Available", "status": "True", "lastTransitionTime": "2026-11-22T14:00:00Z" },
            { "type": "Progressing", "status": "True", "lastUpdateTime": "2026-11-22T14:59:50Z" }] }),
        );
        let wait = SignedDuration::from_secs(30);
        let health = deployment_health(&rolling, now(), wait);
        assert!(
            health.signals.is_empty(),
            "progressed 10s ago: still a rollout"
        );
        assert_eq!(
            health.matures_at,
            Some("2026-11-22T15:00:20Z".parse().expect("time"))
        );
        let later = now()
            .checked_add(SignedDuration::from_secs(25))
            .expect("time");
        assert_eq!(
            deployment_health(&rolling, later, wait).signals,
            [SignalKind::DeploymentUnavailable]
        );
    }

    #[test]
    fn nodes_not_ready_or_unknown_are_signals() {
        let node = |status: &str| -> Node {
            serde_json::from_value(
                json!({ "metadata": { "name": "n" }, "status": { "conditions": [
                { "type": "Ready", "status": status, "reason": "KubeletNotReady" }] } }),
            )
            .expect("node")
        };
        assert_eq!(node_not_ready(&node("True")), None);
        assert_eq!(
            node_not_ready(&node("False")).as_deref(),
            Some("Ready=False (KubeletNotReady)")
        );
        assert!(node_not_ready(&node("Unknown")).is_some());
    }

    #[test]
    fn a_pod_seen_unready_is_not_available_before_the_deployment_says_so() {
        let health = |available| DeploymentHealth {
            desired: 4,
            available,
            signals: Vec::new(),
            matures_at: None,
        };
        let mut stale = health(4);
        available_now(&mut stale, 4, 1);
        assert_eq!(
            stale.available, 3,
            "the status still counts the crashed pod"
        );
        let mut surge = health(4);
        available_now(&mut surge, 5, 1);
        assert_eq!(surge.available, 4, "a surge pod is the one that crashed");
        let mut caught_up = health(2);
        available_now(&mut caught_up, 4, 1);
        assert_eq!(caught_up.available, 2, "never more than the status says");
        let mut gone = health(1);
        available_now(&mut gone, 1, 3);
        assert_eq!(gone.available, 0);
    }
}
