//! Evidence for a detected problem (pure): the troubled containers and the workload's recent
//! rollout history, flagged when a deploy landed shortly before detection (the runbooks' "check
//! recent deployments").

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::{api::apps::v1::ReplicaSet, apimachinery::pkg::apis::meta::v1::Time};

use super::group::PodSignals;
use crate::api::{ContainerEvidence, Evidence, RevisionEvidence};

pub const MAX_CONTAINERS: usize = 20;
pub const MAX_REVISIONS: usize = 5;
/// A revision this close before detection is flagged as a suspect.
pub const RECENT: SignedDuration = SignedDuration::from_hours(1);

/// Evidence from the problem's pods and the ReplicaSets of its Deployment.
pub fn evidence(
    pods: &[&PodSignals],
    replica_sets: &[ReplicaSet],
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
                last_termination_reason: t.last_termination.as_ref().map(|(r, _)| r.clone()),
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
            let revision = annotations?
                .get("deployment.kubernetes.io/revision")?
                .parse()
                .ok()?;
            Some(RevisionEvidence {
                revision,
                images: rs
                    .spec
                    .template
                    .as_ref()
                    .and_then(|t| t.spec.as_ref())
                    .map(|s| {
                        s.containers
                            .iter()
                            .filter_map(|c| c.image.clone())
                            .collect()
                    })
                    .unwrap_or_default(),
                change_cause: annotations
                    .and_then(|a| a.get("kubernetes.io/change-cause").cloned()),
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
    }
}

/// Stored to the second, like every status time.
pub fn whole_second(time: Timestamp) -> Time {
    Time(Timestamp::from_second(time.as_second()).unwrap_or(time))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detection::{
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
        let seen = evidence(&[&pod], &sets, detected);
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
            evidence(&[&pod], &sets, much_later).recent_deploy,
            None,
            "a day old: not flagged"
        );
    }
}
