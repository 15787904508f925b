//! Publishing events.k8s.io/v1 Events (cluster layer). Names are derived from the transition they
//! report, so a retry after a crash names the same Event and the API server refuses the copy: each
//! transition is published at most once, and before the status that records it, never lost. Past
//! ten Events of one reason on one object in ten minutes, the rest fold into one combined Event
//! whose series count grows (`core::timeline::similar`), as Kubernetes' own recorders do.

use std::sync::{LazyLock, Mutex};

use jiff::Timestamp;
use k8s_openapi::api::events::v1::EventSeries;
use k8s_openapi::{
    api::{core::v1::ObjectReference, events::v1::Event},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
};
use kube::{Api, Client, Resource, ResourceExt, api::PostParams};
use tracing::debug;

use crate::{
    Error, Result,
    api::metadata::REPORTING_CONTROLLER,
    core::timeline::{
        Notice,
        similar::{Publish, SimilarEvents},
    },
};

/// Recent Events per (object, reason), for aggregation; shared by every controller of the process.
static SIMILAR: LazyLock<Mutex<SimilarEvents>> = LazyLock::new(Default::default);

/// Creates the Event about `object` unless it already exists (published before a crash); the
/// notice's key must be stable for the transition it reports.
pub async fn publish<K>(
    client: &Client,
    instance: &str,
    object: &K,
    notice: &Notice,
    now: Timestamp,
) -> Result<()>
where
    K: Resource<DynamicType = ()>,
{
    let namespace = object.namespace().unwrap_or_default();
    let name = object.name_any();
    let uid = object
        .uid()
        .unwrap_or_else(|| format!("{namespace}/{name}"));
    let judged = match SIMILAR.lock() {
        Ok(mut similar) => similar.judge(&uid, notice.reason, now),
        // A panic elsewhere poisoned it: publish plainly rather than lose the Event.
        Err(_) => Publish::Own,
    };
    let (key, note) = match &judged {
        Publish::Own => (notice.key.clone(), notice.message.clone()),
        Publish::Combined(key) => (
            key.clone(),
            format!("(combined from similar events): {}", notice.message),
        ),
    };
    // Event names are at most 253 characters; the key keeps them unique per transition.
    let prefix: String = name.chars().take(200).collect();
    let event = Event {
        metadata: ObjectMeta {
            name: Some(format!("{prefix}.{key}")),
            namespace: Some(namespace.clone()),
            ..ObjectMeta::default()
        },
        event_time: Some(MicroTime(now)),
        action: Some(notice.reason.to_owned()),
        reason: Some(notice.reason.to_owned()),
        note: Some(note.chars().take(1024).collect()),
        type_: Some(if notice.warning { "Warning" } else { "Normal" }.to_owned()),
        regarding: Some(ObjectReference {
            api_version: Some(K::api_version(&()).into_owned()),
            kind: Some(K::kind(&()).into_owned()),
            name: Some(name),
            namespace: Some(namespace.clone()),
            uid: object.uid(),
            resource_version: object.resource_version(),
            field_path: None,
        }),
        reporting_controller: Some(REPORTING_CONTROLLER.to_owned()),
        reporting_instance: Some(instance.to_owned()),
        ..Event::default()
    };
    let events: Api<Event> = Api::namespaced(client.clone(), &namespace);
    match events.create(&PostParams::default(), &event).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => match judged {
            Publish::Own => {
                debug!(key = %notice.key, "event already published");
                Ok(())
            }
            Publish::Combined(_) => count(&events, &event, now).await,
        },
        Err(error) => Err(Error::Kube(error)),
    }
}

/// Counts one more occurrence into the combined Event `event` names (its series; the API server
/// keeps the first note: notes are immutable). A concurrent count is retried once, and a failed
/// count never fails the reconcile: the timeline is the record, an Event only a hint.
async fn count(events: &Api<Event>, event: &Event, now: Timestamp) -> Result<()> {
    let name = event.metadata.name.clone().unwrap_or_default();
    for _ in 0..2 {
        let mut stored = match events.get(&name).await {
            Ok(stored) => stored,
            Err(error) => {
                debug!(event = %name, %error, "combined event unreadable; one occurrence not counted");
                return Ok(());
            }
        };
        let seen = stored.series.as_ref().map_or(1, |s| s.count);
        stored.series = Some(EventSeries {
            count: seen + 1,
            last_observed_time: MicroTime(now),
        });
        match events.replace(&name, &PostParams::default(), &stored).await {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(status)) if status.code == 409 => continue,
            Err(error) => {
                debug!(event = %name, %error, "combined event not counted");
                return Ok(());
            }
        }
    }
    debug!(event = %name, "combined event busy; one occurrence not counted");
    Ok(())
}
