//! A Runbook's own status (core layer): whether it is usable, as kstatus-compatible `Ready` /
//! `Stalled` conditions so Argo CD and Flux show its health, how many incidents follow it and when
//! it was last used, and the Event a readiness flip publishes. The runbook controller applies it.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::ResourceExt;

use super::validate::validate;
use crate::{
    api::{Incident, RunbookSpec, RunbookStatus},
    core::{text::condition, timeline::Notice},
};

/// Condition type: the runbook can be matched and followed.
pub const READY: &str = "Ready";
/// Condition type (kstatus): the runbook is unusable and stays so until it is edited.
pub const STALLED: &str = "Stalled";
/// Reason of `Ready=True` and `Stalled=False`.
pub const VALID: &str = "Valid";

/// The Event to publish when `desired` changes whether the runbook is Ready (also on the first
/// status): `Ready` (Normal) or `NotReady` (Warning) with the condition's message.
pub fn readiness_flip(
    current: Option<&RunbookStatus>,
    desired: &RunbookStatus,
    now: Timestamp,
) -> Option<Notice> {
    let ready = find(desired, READY)?;
    let was = current.and_then(|s| find(s, READY));
    if was.is_some_and(|w| w.status == ready.status) {
        return None;
    }
    let up = ready.status == "True";
    Some(Notice {
        key: String::new(),
        reason: if up { "Ready" } else { "NotReady" },
        message: if up {
            "The runbook is valid and can be followed".to_owned()
        } else {
            ready.message.clone()
        },
        warning: !up,
        actor: None,
        time: now,
    })
}

/// The incidents among `incidents` that follow the runbook `name` (their `status.runbook` names
/// it). The caller passes incidents of the runbook's namespace only.
pub fn followers<'a>(
    name: &str,
    incidents: impl IntoIterator<Item = &'a Incident>,
) -> Vec<&'a Incident> {
    incidents
        .into_iter()
        .filter(|incident| {
            incident
                .status
                .as_ref()
                .and_then(|s| s.runbook.as_ref())
                .is_some_and(|run| run.name == name)
        })
        .collect()
}

/// When an incident last used its runbook: the latest time one of the run's steps started or
/// finished, or the incident's creation if that is later (or nothing has run yet).
pub fn used_at(incident: &Incident) -> Option<Timestamp> {
    let created = incident.metadata.creation_timestamp.as_ref().map(|t| t.0);
    let steps = incident
        .status
        .as_ref()
        .and_then(|s| s.runbook.as_ref())
        .into_iter()
        .flat_map(|run| &run.progress)
        .flat_map(|step| [&step.started_at, &step.finished_at])
        .flatten()
        .map(|t| t.0);
    created.into_iter().chain(steps).max()
}

/// The status a runbook should have: `observedGeneration`; `Ready` and `Stalled` from
/// [`validate`], each with the generation they describe and a transition time kept while their
/// status stays the same; the number of incidents following it; and the last time one used it,
/// which never moves back (deleting old incidents does not erase that the runbook was used).
pub fn desired_status(
    spec: &RunbookSpec,
    generation: i64,
    followers: &[&Incident],
    old: Option<&RunbookStatus>,
    now: Timestamp,
) -> RunbookStatus {
    let (ready, stalled) = match validate(spec) {
        Ok(()) => (
            condition(
                READY,
                true,
                VALID,
                "the runbook is valid; incidents it matches follow it".to_owned(),
            ),
            condition(STALLED, false, VALID, String::new()),
        ),
        Err((reason, message)) => (
            condition(READY, false, reason, message.clone()),
            condition(STALLED, true, reason, message),
        ),
    };
    let conditions = [ready, stalled]
        .into_iter()
        .map(|mut c| {
            c.observed_generation = Some(generation);
            c.last_transition_time = old
                .and_then(|o| find(o, &c.type_))
                .filter(|previous| previous.status == c.status)
                .map_or(Time(now), |previous| previous.last_transition_time.clone());
            c
        })
        .collect();
    let last_used = followers
        .iter()
        .filter_map(|incident| used_at(incident))
        .chain(old.and_then(|o| o.last_used.as_ref()).map(|t| t.0))
        .max()
        .map(Time);
    RunbookStatus {
        observed_generation: Some(generation),
        conditions,
        matched_incidents: i32::try_from(followers.len()).unwrap_or(i32::MAX),
        last_used,
    }
}

fn find<'a>(status: &'a RunbookStatus, type_: &str) -> Option<&'a Condition> {
    status.conditions.iter().find(|c| c.type_ == type_)
}

/// The runbook an incident follows, as (namespace, name): what a change of the incident wakes.
pub fn followed(incident: &Incident) -> Option<(String, String)> {
    let namespace = incident.namespace()?;
    let run = incident.status.as_ref()?.runbook.as_ref()?;
    Some((namespace, run.name.clone()))
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::core::runbooks::validate::INVALID_SELECTOR;

    const CREATED: i64 = 1_800_000_000;

    fn t(seconds: i64) -> Timestamp {
        Timestamp::from_second(CREATED + seconds).expect("valid timestamp")
    }

    fn spec(value: Value) -> RunbookSpec {
        serde_json::from_value(value).expect("a RunbookSpec")
    }

    fn valid() -> RunbookSpec {
        spec(json!({ "steps": [{ "name": "collect", "collect": { "events": true } }] }))
    }

    fn invalid() -> RunbookSpec {
        spec(json!({
            "match": { "workloadSelector": { "matchExpressions": [
                { "key": "zone", "operator": "Near", "values": ["eu"] }] } },
            "steps": [{ "name": "collect", "collect": { "events": true } }],
        }))
    }

    /// An incident created at `t(created)`, following `runbook` (if any) with steps that started
    /// and finished at the given offsets.
    fn incident(
        name: &str,
        created: i64,
        runbook: Option<&str>,
        steps: &[(Option<i64>, Option<i64>)],
    ) -> Incident {
        let progress: Vec<Value> = steps
            .iter()
            .enumerate()
            .map(|(i, (started, finished))| {
                let mut step = json!({ "name": format!("s{i}"), "kind": "collect",
                    "phase": if finished.is_some() { "Succeeded" } else { "Running" } });
                if let Some(s) = started {
                    step["startedAt"] = json!(t(*s).to_string());
                }
                if let Some(f) = finished {
                    step["finishedAt"] = json!(t(*f).to_string());
                }
                step
            })
            .collect();
        let status = runbook.map(|rb| {
            json!({ "runbook": {
                "name": rb, "generation": 1, "reason": "matched",
                "steps": [{ "name": "s0", "collect": {} }], "progress": progress,
            } })
        });
        serde_json::from_value(json!({
            "apiVersion": "incident.dev/v1alpha1", "kind": "Incident",
            "metadata": { "name": name, "namespace": "shop",
                "creationTimestamp": t(created).to_string() },
            "spec": { "title": "checkout down", "severity": "P2" },
            "status": status.unwrap_or(json!({})),
        }))
        .expect("an Incident")
    }

    /// The status as the API server would store and return it.
    fn stored(status: &RunbookStatus) -> RunbookStatus {
        serde_json::from_value(serde_json::to_value(status).expect("serialize"))
            .expect("deserialize")
    }

    fn get<'a>(status: &'a RunbookStatus, type_: &str) -> &'a Condition {
        find(status, type_).expect("condition present")
    }

    #[test]
    fn a_valid_runbook_is_ready_and_not_stalled() {
        let status = desired_status(&valid(), 3, &[], None, t(10));
        assert_eq!(status.observed_generation, Some(3));
        let ready = get(&status, READY);
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("True", VALID)
        );
        assert_eq!(ready.observed_generation, Some(3));
        assert_eq!(ready.last_transition_time, Time(t(10)));
        let stalled = get(&status, STALLED);
        assert_eq!(
            (stalled.status.as_str(), stalled.reason.as_str()),
            ("False", VALID)
        );
        assert_eq!(stalled.observed_generation, Some(3));
        assert_eq!(status.matched_incidents, 0);
        assert_eq!(status.last_used, None);
    }

    #[test]
    fn an_invalid_runbook_is_not_ready_and_stalled_with_the_reason() {
        let status = desired_status(&invalid(), 1, &[], None, t(0));
        let ready = get(&status, READY);
        let stalled = get(&status, STALLED);
        assert_eq!(ready.status, "False");
        assert_eq!(stalled.status, "True");
        assert_eq!(ready.reason, INVALID_SELECTOR);
        assert_eq!(stalled.reason, INVALID_SELECTOR);
        assert!(ready.message.contains("Near"), "{}", ready.message);
        assert_eq!(ready.message, stalled.message);
    }

    #[test]
    fn nothing_changes_when_nothing_happened() {
        let first = stored(&desired_status(&valid(), 1, &[], None, t(0)));
        let again = desired_status(&valid(), 1, &[], Some(&first), t(500));
        assert_eq!(again, first, "a later reconcile computes the same status");
    }

    #[test]
    fn transition_times_move_only_when_a_status_flips() {
        let valid_at_0 = stored(&desired_status(&valid(), 1, &[], None, t(0)));
        // An edit that keeps it valid: new observedGeneration, same transition times.
        let edited = desired_status(&valid(), 2, &[], Some(&valid_at_0), t(100));
        assert_eq!(edited.observed_generation, Some(2));
        assert_eq!(get(&edited, READY).observed_generation, Some(2));
        assert_eq!(get(&edited, READY).last_transition_time, Time(t(0)));
        assert_eq!(get(&edited, STALLED).last_transition_time, Time(t(0)));
        // Broken: both flip at the time it was seen.
        let broken = stored(&desired_status(&invalid(), 3, &[], Some(&edited), t(200)));
        assert_eq!(get(&broken, READY).status, "False");
        assert_eq!(get(&broken, READY).last_transition_time, Time(t(200)));
        assert_eq!(get(&broken, STALLED).last_transition_time, Time(t(200)));
        // Fixed: flip back.
        let fixed = desired_status(&valid(), 4, &[], Some(&broken), t(300));
        assert_eq!(get(&fixed, READY).status, "True");
        assert_eq!(get(&fixed, READY).reason, VALID);
        assert_eq!(get(&fixed, READY).observed_generation, Some(4));
        assert_eq!(get(&fixed, READY).last_transition_time, Time(t(300)));
        assert_eq!(get(&fixed, STALLED).status, "False");
    }

    #[test]
    fn only_incidents_following_the_runbook_count() {
        let incidents = [
            incident("a", 0, Some("crashloop"), &[]),
            incident("b", 10, Some("image-pull"), &[]),
            incident("c", 20, None, &[]),
            incident("d", 30, Some("crashloop"), &[]),
        ];
        let following = followers("crashloop", &incidents);
        let names: Vec<String> = following.iter().map(|i| i.name_any()).collect();
        assert_eq!(names, ["a", "d"]);
        let status = desired_status(&valid(), 1, &following, None, t(100));
        assert_eq!(status.matched_incidents, 2);
        assert_eq!(status.last_used, Some(Time(t(30))));
        assert!(followers("node-notready", &incidents).is_empty());
    }

    #[test]
    fn last_use_is_the_latest_step_activity_or_creation() {
        // Created at 0, its steps ran at 50 and 80: used at 80.
        let ran = incident(
            "a",
            0,
            Some("rb"),
            &[(Some(50), Some(60)), (Some(80), None)],
        );
        assert_eq!(used_at(&ran), Some(t(80)));
        let finished_last = incident("b", 0, Some("rb"), &[(Some(50), Some(90))]);
        assert_eq!(used_at(&finished_last), Some(t(90)));
        // Nothing ran yet: its creation.
        let pending = incident("c", 40, Some("rb"), &[(None, None)]);
        assert_eq!(used_at(&pending), Some(t(40)));
        let status = desired_status(&valid(), 1, &[&ran, &finished_last, &pending], None, t(100));
        assert_eq!(status.last_used, Some(Time(t(90))));
        assert_eq!(status.matched_incidents, 3);
    }

    #[test]
    fn last_use_survives_the_incidents_being_deleted() {
        let used = incident("a", 0, Some("rb"), &[(Some(70), None)]);
        let before = stored(&desired_status(&valid(), 1, &[&used], None, t(100)));
        assert_eq!(before.last_used, Some(Time(t(70))));
        let after = desired_status(&valid(), 1, &[], Some(&before), t(200));
        assert_eq!(after.matched_incidents, 0);
        assert_eq!(after.last_used, Some(Time(t(70))));
        // And it never moves back when an older incident is all that is left.
        let older = incident("b", 5, Some("rb"), &[]);
        let later = desired_status(&valid(), 1, &[&older], Some(&before), t(300));
        assert_eq!(later.last_used, Some(Time(t(70))));
    }

    #[test]
    fn the_mapper_names_the_followed_runbook_in_the_incidents_namespace() {
        let following = incident("a", 0, Some("crashloop"), &[]);
        assert_eq!(
            followed(&following),
            Some(("shop".to_owned(), "crashloop".to_owned()))
        );
        assert!(followed(&incident("b", 0, None, &[])).is_none());
    }

    #[test]
    fn a_ready_flip_is_one_event_and_an_unchanged_verdict_none() {
        let first = desired_status(&invalid(), 1, &[], None, t(0));
        let flip = readiness_flip(None, &first, t(0)).expect("the first verdict is an Event");
        assert_eq!((flip.reason, flip.warning), ("NotReady", true));
        assert!(flip.message.contains("Near"), "{}", flip.message);
        let again = desired_status(&invalid(), 1, &[], Some(&first), t(60));
        assert_eq!(readiness_flip(Some(&first), &again, t(60)), None);
        let fixed = desired_status(&valid(), 2, &[], Some(&again), t(120));
        let flip = readiness_flip(Some(&again), &fixed, t(120)).expect("fixed");
        assert_eq!((flip.reason, flip.warning), ("Ready", false));
    }
}
