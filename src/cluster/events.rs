//! Publishing events.k8s.io/v1 Events (cluster layer). Names are derived from the transition they
//! report, so a retry after a crash names the same Event and the API server refuses the copy: each
//! transition is published at most once, and before the status that records it, never lost.

use jiff::Timestamp;
use k8s_openapi::{
    api::{core::v1::ObjectReference, events::v1::Event},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
};
use kube::{Api, Client, Resource, ResourceExt, api::PostParams};
use tracing::debug;

use crate::{Error, Result, api::metadata::REPORTING_CONTROLLER, core::timeline::Notice};

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
    // Event names are at most 253 characters; the key keeps them unique per transition.
    let prefix: String = name.chars().take(200).collect();
    let event = Event {
        metadata: ObjectMeta {
            name: Some(format!("{prefix}.{}", notice.key)),
            namespace: Some(namespace.clone()),
            ..ObjectMeta::default()
        },
        event_time: Some(MicroTime(now)),
        action: Some(notice.reason.to_owned()),
        reason: Some(notice.reason.to_owned()),
        note: Some(notice.message.chars().take(1024).collect()),
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
        Err(kube::Error::Api(status)) if status.code == 409 => {
            debug!(key = %notice.key, "event already published");
            Ok(())
        }
        Err(error) => Err(Error::Kube(error)),
    }
}
