//! Evidence for a problem (core layer): the troubled containers and the workload's recent rollout
//! history, flagged when a deploy landed shortly before detection (the runbooks' "check recent
//! deployments"), its Warning Events and the log tail; both the detector and a runbook's collect
//! step gather it.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::{apps::v1::ReplicaSet, core::v1::Pod, events::v1::Event};
use kube::ResourceExt;

use super::{
    classify::{SignalKind, pod_signals},
    group::{PodSignals, Workload},
};
use crate::{
    api::{
        CollectStep, ContainerEvidence, EventEvidence, Evidence, MAX_IMAGE, MAX_IMAGES,
        RevisionEvidence, metadata::revision,
    },
    core::text::{cut, whole_second},
};

pub const MAX_CONTAINERS: usize = 20;
pub const MAX_REVISIONS: usize = 5;
pub const MAX_EVENTS: usize = 10;
/// Most bytes of log kept in the evidence.
pub const MAX_LOG_BYTES: usize = 8 * 1024;
/// A revision this close before detection is flagged as a suspect.
pub const RECENT: SignedDuration = SignedDuration::from_hours(1);

/// Evidence from the problem's pods and the ReplicaSets of its Deployment.
pub fn evidence(
    pods: &[&PodSignals],
    replica_sets: &[ReplicaSet],
    events: &[&Event],
    detected: Timestamp,
) -> Evidence {
    let mut containers: Vec<ContainerEvidence> = pods
        .iter()
        .flat_map(|pod| {
            pod.troubles.iter().map(|t| ContainerEvidence {
                pod: pod.pod.clone(),
                container: t.container.clone(),
                state: t.kind.as_str().to_owned(),
                restarts: t.restarts,
                last_termination_reason: t.last_termination.as_ref().map(|(r, _)| cut(r, 128)),
                last_exit_code: t.last_termination.as_ref().map(|(_, c)| *c),
            })
        })
        .collect();
    containers.sort_by(|a, b| (&a.pod, &a.container).cmp(&(&b.pod, &b.container)));
    containers.truncate(MAX_CONTAINERS);

    let mut history: Vec<RevisionEvidence> = replica_sets
        .iter()
        .filter_map(|rs| {
            let annotations = rs.metadata.annotations.as_ref();
            Some(RevisionEvidence {
                revision: revision(&rs.metadata)?,
                images: rs
                    .spec
                    .template
                    .as_ref()
                    .and_then(|t| t.spec.as_ref())
                    .map(|s| {
                        s.containers
                            .iter()
                            .filter_map(|c| c.image.as_deref().map(|i| cut(i, MAX_IMAGE)))
                            .take(MAX_IMAGES)
                            .collect()
                    })
                    .unwrap_or_default(),
                change_cause: annotations
                    .and_then(|a| a.get("kubernetes.io/change-cause"))
                    .map(|c| cut(c, 512)),
                created_at: rs.metadata.creation_timestamp.clone(),
            })
        })
        .collect();
    history.sort_by_key(|r| std::cmp::Reverse(r.revision));
    history.truncate(MAX_REVISIONS);

    let recent_deploy = history.first().and_then(|newest| {
        let created = newest.created_at.as_ref()?.0;
        let before = detected.duration_since(created);
        (before >= SignedDuration::ZERO && before <= RECENT).then(|| {
            format!(
                "revision {} ({}) rolled out {} minutes before detection",
                newest.revision,
                newest.images.join(", "),
                before.as_secs() / 60
            )
        })
    });
    Evidence {
        containers,
        rollout_history: history,
        recent_deploy,
        events: warning_events(events),
        logs: None,
        managed_by: None,
    }
}

/// The container whose previous instance's log tells the story: the first crashed container (by
/// pod name) that has restarted.
pub fn log_target(pods: &[&PodSignals]) -> Option<(String, String)> {
    let mut candidates: Vec<(&str, &str)> = pods
        .iter()
        .flat_map(|pod| {
            pod.troubles
                .iter()
                .filter(|t| {
                    matches!(t.kind, SignalKind::CrashLoopBackOff | SignalKind::OomKilled)
                        && t.restarts > 0
                })
                .map(|t| (pod.pod.as_str(), t.container.as_str()))
        })
        .collect();
    candidates.sort_unstable();
    candidates
        .first()
        .map(|(pod, container)| ((*pod).to_owned(), (*container).to_owned()))
}

/// The last whole lines of `text` that fit in `max_bytes`.
pub fn log_tail(text: &str, max_bytes: usize) -> String {
    let text = text.trim_end_matches('\n');
    if text.len() <= max_bytes {
        return text.to_owned();
    }
    let mut start = text.len() - max_bytes;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let tail = &text[start..];
    // Drop the partial first line.
    match tail.find('\n') {
        Some(newline) => tail[newline + 1..].to_owned(),
        None => tail.to_owned(),
    }
}

/// The newest Warning Events first, at most `MAX_EVENTS`, notes cut to 256 characters.
pub fn warning_events(events: &[&Event]) -> Vec<EventEvidence> {
    let mut out: Vec<(Option<Timestamp>, EventEvidence)> = events
        .iter()
        .filter_map(|event| {
            let regarding = event.regarding.as_ref()?;
            let seen = last_observed(event);
            Some((
                seen,
                EventEvidence {
                    reason: event.reason.clone()?,
                    object: format!(
                        "{}/{}",
                        regarding.kind.as_deref().unwrap_or("object").to_lowercase(),
                        regarding.name.as_deref().unwrap_or_default()
                    ),
                    note: event.note.as_deref().map(|n| cut(n, 256)),
                    count: event
                        .series
                        .as_ref()
                        .map(|s| s.count)
                        .or(event.deprecated_count)
                        .unwrap_or(1)
                        .max(1),
                    last_seen: seen.map(whole_second),
                },
            ))
        })
        .collect();
    out.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then_with(|| (&a.1.object, &a.1.reason).cmp(&(&b.1.object, &b.1.reason)))
    });
    out.truncate(MAX_EVENTS);
    out.into_iter().map(|(_, e)| e).collect()
}

/// When an event was last observed: its series, its event time, the legacy timestamp, or creation.
pub fn last_observed(event: &Event) -> Option<Timestamp> {
    event
        .series
        .as_ref()
        .map(|s| s.last_observed_time.0)
        .or_else(|| event.event_time.as_ref().map(|t| t.0))
        .or_else(|| event.deprecated_last_timestamp.as_ref().map(|t| t.0))
        .or_else(|| event.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// The troubled pods of a workload, with their signals.
pub fn troubled(workload: &Workload, pods: &[Pod], now: Timestamp) -> Vec<PodSignals> {
    pods.iter()
        .filter_map(|pod| {
            let troubles = pod_signals(pod, now, 0);
            (!troubles.is_empty()).then(|| PodSignals {
                pod: pod.name_any(),
                workload: workload.clone(),
                troubles,
            })
        })
        .collect()
}

/// The Warning Events about a workload (`kind`, `name`), its ReplicaSets (a Deployment's) or its pods.
pub fn about_workload<'a>(
    events: &'a [Event],
    (kind, name): (&str, &str),
    replica_sets: &[ReplicaSet],
    pods: &[Pod],
) -> Vec<&'a Event> {
    let pod_names: Vec<String> = pods.iter().map(|p| p.name_any()).collect();
    let rs_names: Vec<String> = replica_sets.iter().map(|r| r.name_any()).collect();
    events
        .iter()
        .filter(|e| {
            e.regarding.as_ref().is_some_and(|r| {
                let object = r.name.clone().unwrap_or_default();
                match r.kind.as_deref() {
                    Some("Pod") => pod_names.contains(&object),
                    Some("ReplicaSet") => rs_names.contains(&object),
                    Some(k) => k == kind && object == name,
                    None => false,
                }
            })
        })
        .collect()
}

/// What a runbook's collect step keeps of the evidence: the parts it asked for.
pub fn collected(what: &CollectStep, mut gathered: Evidence) -> Evidence {
    if !what.pod_states {
        gathered.containers.clear();
    }
    if !what.rollout_history {
        gathered.rollout_history.clear();
        gathered.recent_deploy = None;
    }
    gathered
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::detection::{
        classify::{ContainerTrouble, SignalKind},
        group::Workload,
    };
    use serde_json::json;

    fn rs(revision: i64, image: &str, created: &str) -> ReplicaSet {
        serde_json::from_value(json!({
            "metadata": { "name": format!("web-{revision}"), "creationTimestamp": created,
                          "annotations": { "deployment.kubernetes.io/revision": revision.to_string(),
                                           "kubernetes.io/change-cause": format!("deploy {image}") } },
            "spec": { "selector": {}, "template": { "spec": { "containers": [{ "name": "app", "image": image }] } } },
        }))
        .expect("rs")
    }

    #[test]
    fn a_deploy_shortly_before_detection_is_flagged_with_the_history_newest_first() {
        let pod = PodSignals {
            pod: "web-1".into(),
            workload: Workload {
                namespace: "shop".into(),
                kind: "Deployment".into(),
                name: "web".into(),
            },
            troubles: vec![ContainerTrouble {
                kind: SignalKind::CrashLoopBackOff,
                container: "app".into(),
                restarts: 7,
                last_termination: Some(("Error".into(), 1)),
                message: None,
            }],
        };
        let sets = [
            rs(1, "web:1", "2026-11-20T10:00:00Z"),
            rs(3, "web:3", "2026-11-22T14:48:00Z"),
            rs(2, "web:2", "2026-11-21T10:00:00Z"),
        ];
        let detected: Timestamp = "2026-11-22T15:00:00Z".parse().expect("time");
        let seen = evidence(&[&pod], &sets, &[], detected);
        assert_eq!(
            seen.rollout_history
                .iter()
                .map(|r| r.revision)
                .collect::<Vec<_>>(),
            [3, 2, 1]
        );
        assert_eq!(
            seen.rollout_history[0].change_cause.as_deref(),
            Some("deploy web:3")
        );
        assert_eq!(
            seen.recent_deploy.as_deref(),
            Some("revision 3 (web:3) rolled out 12 minutes before detection")
        );
        assert_eq!(seen.containers[0].restarts, 7);
        assert_eq!(seen.containers[0].last_exit_code, Some(1));

        let much_later: Timestamp = "2026-11-23T15:00:00Z".parse().expect("time");
        assert_eq!(
            evidence(&[&pod], &sets, &[], much_later).recent_deploy,
            None,
            "a day old: not flagged"
        );
    }

    #[test]
    fn warning_events_are_newest_first_and_bounded() {
        let events: Vec<Event> = (0..15)
            .map(|i| {
                serde_json::from_value(json!({
                    "metadata": { "name": format!("e{i}"), "creationTimestamp": "2026-11-22T10:00:00Z" },
                    "eventTime": format!("2026-11-22T10:{i:02}:00.000000Z"),
                    "reason": "FailedMount", "type": "Warning", "note": "x".repeat(1000),
                    "regarding": { "kind": "Pod", "name": format!("web-{i}") },
                    "series": if i == 14 { json!({ "count": 4, "lastObservedTime": "2026-11-22T11:00:00.000000Z" }) } else { json!(null) },
                }))
                .expect("event")
            })
            .collect();
        let refs: Vec<&Event> = events.iter().collect();
        let out = warning_events(&refs);
        assert_eq!(out.len(), MAX_EVENTS);
        assert_eq!(out[0].object, "pod/web-14");
        assert_eq!(out[0].count, 4);
        assert_eq!(out[1].object, "pod/web-13");
        assert_eq!(out[1].count, 1);
        assert_eq!(out[0].note.as_ref().map(|n| n.len()), Some(256));
    }

    #[test]
    fn the_log_tail_keeps_whole_lines_within_the_limit() {
        let text: String = (0..100).map(|i| format!("line {i:03}\n")).collect();
        let tail = log_tail(&text, 50);
        assert!(tail.len() <= 50);
        assert!(tail.starts_with("line "), "{tail}");
        assert!(tail.ends_with("line 099"), "{tail}");
        assert_eq!(log_tail("short\n", 50), "short");
        let multibyte = "é".repeat(40);
        assert!(log_tail(&multibyte, 11).chars().all(|c| c == 'é'));
    }

    #[test]
    fn the_log_target_is_a_restarted_crashing_container() {
        let pod = |name: &str, kind: SignalKind, restarts: i32| PodSignals {
            pod: name.into(),
            workload: Workload {
                namespace: "shop".into(),
                kind: "Deployment".into(),
                name: "web".into(),
            },
            troubles: vec![ContainerTrouble {
                kind,
                container: "app".into(),
                restarts,
                last_termination: None,
                message: None,
            }],
        };
        let pulling = pod("web-a", SignalKind::ImagePullBackOff, 0);
        let fresh = pod("web-b", SignalKind::CrashLoopBackOff, 0);
        let crashed = pod("web-d", SignalKind::CrashLoopBackOff, 3);
        let oom = pod("web-c", SignalKind::OomKilled, 1);
        assert_eq!(log_target(&[&pulling, &fresh]), None);
        assert_eq!(
            log_target(&[&crashed, &pulling, &oom]),
            Some(("web-c".into(), "app".into()))
        );
    }

    #[test]
    fn a_collect_step_keeps_the_events_about_the_deployment_and_the_parts_it_asked_for() {
        let event = |kind: &str, name: &str| -> Event {
            serde_json::from_value(json!({
                "metadata": { "name": format!("{name}.1"), "namespace": "shop" },
                "eventTime": null, "reason": "BackOff",
                "regarding": { "kind": kind, "name": name },
            }))
            .expect("an Event")
        };
        let events = [
            event("Pod", "web-1-a"),
            event("ReplicaSet", "web-1"),
            event("Deployment", "web"),
            event("Deployment", "api"),
            event("Pod", "api-1-b"),
        ];
        let pods: Vec<Pod> = vec![
            serde_json::from_value(json!({ "metadata": { "name": "web-1-a" } })).expect("a Pod"),
        ];
        let replica_sets = [rs(1, "web:1", "2026-11-22T10:00:00Z")];
        let about = about_workload(&events, ("Deployment", "web"), &replica_sets, &pods);
        let names: Vec<_> = about
            .iter()
            .filter_map(|e| e.regarding.as_ref()?.name.clone())
            .collect();
        assert_eq!(names, ["web-1-a", "web-1", "web"]);

        let full = evidence(
            &[],
            &replica_sets,
            &about,
            "2026-11-22T10:30:00Z".parse().expect("time"),
        );
        assert_eq!(full.rollout_history.len(), 1);
        assert!(full.recent_deploy.is_some());
        let what: CollectStep =
            serde_json::from_value(json!({ "podStates": true, "rolloutHistory": false }))
                .expect("a collect step");
        let kept = collected(&what, full.clone());
        assert!(kept.rollout_history.is_empty() && kept.recent_deploy.is_none());
        assert_eq!(
            kept.events, full.events,
            "events are kept unless asked away by the shell"
        );
    }
}
