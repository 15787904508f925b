//! Keeps each Runbook's status (shell around the pure [`desired_status`]): whether it is usable, as
//! kstatus-compatible `Ready` / `Stalled` conditions so Argo CD and Flux show its health, how many
//! incidents follow it and when it was last used. It writes status with server-side apply, only
//! when something changed, and never touches a runbook's spec.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{ListParams, Patch, PatchParams},
    runtime::{
        Controller,
        controller::{self, Action},
        reflector::ObjectRef,
        watcher,
    },
};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use super::validate::validate;
use crate::{
    Error, Result,
    api::{Incident, Runbook, RunbookSpec, RunbookStatus},
    events,
    lifecycle::decide::{condition as condition_of, fingerprint},
    metrics::{ErrorLabels, Metrics},
};

/// Field manager of every status write by this controller.
pub const FIELD_MANAGER: &str = "incident-operator-runbooks";
/// Condition type: the runbook can be matched and followed.
pub const READY: &str = "Ready";
/// Condition type (kstatus): the runbook is unusable and stays so until it is edited.
pub const STALLED: &str = "Stalled";
/// Reason of `Ready=True` and `Stalled=False`.
pub const VALID: &str = "Valid";

/// How often a runbook is recounted without any trigger: a safety net for changes the Incident
/// watch cannot attribute (an incident moving from one runbook to another requeues only the new).
const RESYNC: Duration = Duration::from_secs(600);
/// Incidents following a runbook write their status in bursts; one recount per burst is enough.
const DEBOUNCE: Duration = Duration::from_millis(300);

struct Context {
    client: Client,
    metrics: Arc<Metrics>,
    /// Identifies this replica in Events.
    instance: String,
}

/// Runs the controller until `shutdown`, over one namespace or all.
pub async fn run(
    client: Client,
    namespace: Option<String>,
    metrics: Arc<Metrics>,
    instance: String,
    shutdown: CancellationToken,
) -> Result<()> {
    let runbooks: Api<Runbook> = match &namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let incidents: Api<Incident> = match &namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let context = Arc::new(Context {
        client,
        metrics,
        instance,
    });
    info!(
        namespace = namespace.as_deref().unwrap_or("<all>"),
        "runbook controller started"
    );
    Controller::new(runbooks, watcher::Config::default().any_semantic())
        // An incident that starts, advances or stops following a runbook changes its count and
        // last use. Deletions arrive with the object's last state, so they are attributed too.
        .watches(incidents, watcher::Config::default(), |incident| {
            followed_runbook(&incident)
        })
        .with_config(controller::Config::default().debounce(DEBOUNCE))
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(reconcile, error_policy, context)
        .for_each(|outcome| async move {
            match outcome {
                Ok((object, _)) => debug!(runbook = %object, "reconciled"),
                // Includes incidents naming a runbook that does not exist: nothing to update.
                Err(error) => debug!(%error, "runbook reconcile did not run"),
            }
        })
        .await;
    Ok(())
}

/// The runbook an incident follows, as a reference in the incident's namespace.
fn followed_runbook(incident: &Incident) -> Option<ObjectRef<Runbook>> {
    let namespace = incident.namespace()?;
    let run = incident.status.as_ref()?.runbook.as_ref()?;
    Some(ObjectRef::new(&run.name).within(&namespace))
}

async fn reconcile(runbook: Arc<Runbook>, ctx: Arc<Context>) -> Result<Action> {
    let namespace = runbook.namespace().unwrap_or_default();
    let name = runbook.name_any();
    let span = info_span!("reconcile_runbook", namespace = %namespace, name = %name);
    async move {
        // The API server serves consistent lists from its watch cache; one list per (debounced)
        // trigger keeps no second copy of every incident in memory.
        let incidents: Api<Incident> = Api::namespaced(ctx.client.clone(), &namespace);
        let listed = incidents
            .list(&ListParams::default())
            .await
            .map_err(Error::Kube)?;
        let following = followers(&name, &listed.items);
        let desired = desired_status(
            &runbook.spec,
            runbook.meta().generation.unwrap_or_default(),
            &following,
            runbook.status.as_ref(),
            Timestamp::now(),
        );
        if runbook.status.as_ref() == Some(&desired) {
            debug!("status unchanged");
            return Ok(Action::requeue(RESYNC));
        }
        // Published before the status that records the flip: a crash in between publishes the
        // same Event (same name) again, which the API server refuses, instead of losing it.
        let flip = readiness_flip(runbook.status.as_ref(), &desired);
        if let Some(notice) = &flip {
            let key = fingerprint(&[
                &runbook.uid().unwrap_or_default(),
                &desired.observed_generation.unwrap_or_default().to_string(),
                notice.reason,
                notice.message,
            ]);
            let event = events::Notice {
                key: &key,
                ..notice.clone()
            };
            events::publish(
                &ctx.client,
                &ctx.instance,
                runbook.as_ref(),
                &event,
                Timestamp::now(),
            )
            .await?;
        }
        write_status(&ctx.client, &runbook, &desired).await?;
        match flip {
            Some(notice) if !notice.warning => info!(reason = notice.reason, "runbook is ready"),
            Some(notice) => {
                warn!(reason = notice.reason, why = %notice.message, "runbook is not usable")
            }
            None => debug!(
                matched = desired.matched_incidents,
                "runbook status updated"
            ),
        }
        Ok(Action::requeue(RESYNC))
    }
    .instrument(span)
    .await
}

async fn write_status(client: &Client, runbook: &Runbook, status: &RunbookStatus) -> Result<()> {
    let namespace = runbook.namespace().unwrap_or_default();
    let api: Api<Runbook> = Api::namespaced(client.clone(), &namespace);
    // The resourceVersion makes the write conditional: a status computed from a stale cache (not
    // yet showing our previous write, or an older spec) is refused with 409 and recomputed.
    let patch = serde_json::json!({
        "apiVersion": Runbook::api_version(&()),
        "kind": Runbook::kind(&()),
        "metadata": { "resourceVersion": runbook.resource_version() },
        "status": status,
    });
    api.patch_status(
        &runbook.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(|error| match error {
        kube::Error::Api(status) if status.code == 409 => Error::Conflict,
        other => Error::Kube(other),
    })?;
    Ok(())
}

fn error_policy(runbook: Arc<Runbook>, error: &Error, ctx: Arc<Context>) -> Action {
    if matches!(error, Error::Conflict) {
        debug!(runbook = %ObjectRef::from(runbook.as_ref()), "stale read; retrying");
        return Action::requeue(Duration::from_secs(1));
    }
    warn!(runbook = %ObjectRef::from(runbook.as_ref()), %error, "runbook reconcile failed; retrying");
    ctx.metrics
        .reconcile_errors
        .get_or_create(&ErrorLabels {
            controller: "runbook".to_owned(),
            error: error.metric_label().to_owned(),
        })
        .inc();
    Action::requeue(Duration::from_secs(5))
}

// ---- the pure part ---------------------------------------------------------------------------

/// The Event to publish when `desired` changes whether the runbook is Ready (also on the first
/// status): `Ready` (Normal) or `NotReady` (Warning) with the condition's message.
pub fn readiness_flip<'a>(
    current: Option<&RunbookStatus>,
    desired: &'a RunbookStatus,
) -> Option<events::Notice<'a>> {
    let ready = condition(desired, READY)?;
    let was = current.and_then(|s| condition(s, READY));
    if was.is_some_and(|w| w.status == ready.status) {
        return None;
    }
    let up = ready.status == "True";
    Some(events::Notice {
        key: "",
        reason: if up { "Ready" } else { "NotReady" },
        message: if up {
            "The runbook is valid and can be followed"
        } else {
            &ready.message
        },
        warning: !up,
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
            condition_of(
                READY,
                true,
                VALID,
                "the runbook is valid; incidents it matches follow it".to_owned(),
            ),
            condition_of(STALLED, false, VALID, String::new()),
        ),
        Err((reason, message)) => (
            condition_of(READY, false, reason, message.clone()),
            condition_of(STALLED, true, reason, message),
        ),
    };
    let conditions = [ready, stalled]
        .into_iter()
        .map(|mut c| {
            c.observed_generation = Some(generation);
            c.last_transition_time = old
                .and_then(|o| condition(o, &c.type_))
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

fn condition<'a>(status: &'a RunbookStatus, type_: &str) -> Option<&'a Condition> {
    status.conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::runbook::validate::INVALID_SELECTOR;

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
        condition(status, type_).expect("condition present")
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
        let reference = followed_runbook(&following).expect("a runbook");
        assert_eq!(reference.name, "crashloop");
        assert_eq!(reference.namespace.as_deref(), Some("shop"));
        assert!(followed_runbook(&incident("b", 0, None, &[])).is_none());
    }

    #[test]
    fn a_ready_flip_is_one_event_and_an_unchanged_verdict_none() {
        let first = desired_status(&invalid(), 1, &[], None, t(0));
        let flip = readiness_flip(None, &first).expect("the first verdict is an Event");
        assert_eq!((flip.reason, flip.warning), ("NotReady", true));
        assert!(flip.message.contains("Near"), "{}", flip.message);
        let again = desired_status(&invalid(), 1, &[], Some(&first), t(60));
        assert_eq!(readiness_flip(Some(&first), &again), None);
        let fixed = desired_status(&valid(), 2, &[], Some(&again), t(120));
        let flip = readiness_flip(Some(&again), &fixed).expect("fixed");
        assert_eq!((flip.reason, flip.warning), ("Ready", false));
    }
}
