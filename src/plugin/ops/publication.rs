//! The incident's public part from the plugin (plugin layer): `publish` sets the public title,
//! impact and components; `update --public` appends a public update under the authenticated
//! user's name. The operator records both for the status page; resolving publishes the resolved
//! update by itself.

use kube::Api;
use serde_json::{Value, json};

use super::{Session, reference};
use crate::{
    api::{
        Impact, Incident, MAX_PUBLIC_UPDATES, PublicStatus, PublicUpdate, Publication, StatusPage,
        metadata::ACTOR_ANNOTATION,
    },
    plugin::{PluginError, Result},
};

fn metadata(actor: &str, incident: &Incident) -> Value {
    let mut metadata = json!({ "annotations": { ACTOR_ANNOTATION: actor } });
    if let Some(rv) = &incident.metadata.resource_version {
        metadata["resourceVersion"] = json!(rv);
    }
    metadata
}

/// The patch that publishes `incident` as `publication`.
pub fn publish_patch(incident: &Incident, actor: &str, publication: &Publication) -> Value {
    json!({
        "metadata": metadata(actor, incident),
        "spec": { "publication": publication },
    })
}

/// `spec.publicUpdates` with one appended, against the version read; the oldest are dropped to
/// stay within [`MAX_PUBLIC_UPDATES`] (the status keeps them).
pub fn public_update_patch(
    incident: &Incident,
    actor: &str,
    body: &str,
    status: PublicStatus,
) -> Value {
    let mut updates = incident.spec.public_updates.clone();
    updates.push(PublicUpdate {
        status,
        body: body.to_owned(),
        author: actor.to_owned(),
    });
    let excess = updates.len().saturating_sub(MAX_PUBLIC_UPDATES);
    updates.drain(..excess);
    json!({
        "metadata": metadata(actor, incident),
        "spec": { "publicUpdates": updates },
    })
}

/// The public status an update keeps when none is given: the last one recorded, else investigating.
pub fn current_status(incident: &Incident) -> PublicStatus {
    incident
        .status
        .as_ref()
        .and_then(|s| s.publication.as_ref())
        .and_then(|p| p.updates.last())
        .map(|u| u.status)
        .or_else(|| incident.spec.public_updates.last().map(|u| u.status))
        .filter(|s| *s != PublicStatus::Resolved)
        .unwrap_or(PublicStatus::Investigating)
}

impl Session {
    /// Components the namespace's StatusPages define; None when there are none to check against.
    async fn known_components(&self) -> Option<Vec<String>> {
        let pages = Api::<StatusPage>::namespaced(self.client.clone(), &self.namespace)
            .list(&Default::default())
            .await
            .ok()?;
        let names: Vec<String> = pages
            .items
            .iter()
            .flat_map(|p| p.spec.components.iter().map(|c| c.name.clone()))
            .collect();
        (!pages.items.is_empty()).then_some(names)
    }

    /// Publishes the incident: its public title, impact and components (`spec.publication`).
    pub async fn publish(
        &self,
        name: &str,
        title: &str,
        impact: Impact,
        components: &[String],
    ) -> Result<String> {
        if let Some(known) = self.known_components().await
            && let Some(unknown) = components.iter().find(|c| !known.contains(c))
        {
            return Err(PluginError::Refused {
                name: name.to_owned(),
                message: format!(
                    "cannot name component {unknown:?}: the StatusPages of namespace {} define {}",
                    self.namespace,
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ),
            });
        }
        let actor = self.actor().await?;
        let publication = Publication {
            title: title.trim().to_owned(),
            impact,
            components: components.to_vec(),
        };
        self.edit(name, |incident| {
            Ok((incident.spec.publication.as_ref() != Some(&publication))
                .then(|| publish_patch(incident, actor, &publication)))
        })
        .await?;
        Ok(format!("{} published", reference(name)))
    }

    /// Appends a public update; without `status`, the public status stays as it is.
    pub async fn public_update(
        &self,
        name: &str,
        body: &str,
        status: Option<PublicStatus>,
    ) -> Result<String> {
        let actor = self.actor().await?;
        self.edit(name, |incident| {
            if incident.spec.publication.is_none() {
                return Err(PluginError::Refused {
                    name: name.to_owned(),
                    message: "is not published: run `kubectl incident publish` first".to_owned(),
                });
            }
            let status = status.unwrap_or_else(|| current_status(incident));
            Ok(Some(public_update_patch(incident, actor, body, status)))
        })
        .await?;
        Ok(format!("{} updated publicly", reference(name)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{IncidentSpec, Severity};

    fn incident() -> Incident {
        let spec: IncidentSpec =
            serde_json::from_value(json!({"title": "t", "severity": Severity::P1})).unwrap();
        let mut incident = Incident::new("x", spec);
        incident.metadata.resource_version = Some("7".into());
        incident
    }

    #[test]
    fn a_public_update_names_the_actor_and_keeps_the_list_bounded() {
        let mut incident = incident();
        for n in 0..MAX_PUBLIC_UPDATES {
            incident.spec.public_updates.push(PublicUpdate {
                status: PublicStatus::Investigating,
                body: format!("old {n}"),
                author: "bo".into(),
            });
        }
        let patch = public_update_patch(&incident, "ana", "better now", PublicStatus::Monitoring);
        let updates = patch["spec"]["publicUpdates"].as_array().unwrap();
        assert_eq!(updates.len(), MAX_PUBLIC_UPDATES);
        assert_eq!(updates[0]["body"], "old 1");
        let last = updates.last().unwrap();
        assert_eq!(last["author"], "ana");
        assert_eq!(last["status"], "monitoring");
        assert_eq!(patch["metadata"]["resourceVersion"], "7");
        assert_eq!(patch["metadata"]["annotations"][ACTOR_ANNOTATION], "ana");
    }

    #[test]
    fn the_status_stays_unless_given() {
        let mut incident = incident();
        assert_eq!(current_status(&incident), PublicStatus::Investigating);
        incident.spec.public_updates.push(PublicUpdate {
            status: PublicStatus::Identified,
            body: "b".into(),
            author: "a".into(),
        });
        assert_eq!(current_status(&incident), PublicStatus::Identified);
    }
}
