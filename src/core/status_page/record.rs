//! Recording public updates (core layer): each public update a person wrote in the spec is
//! recorded once, with the time the operator saw it, in `status.publication`; a resolution of a
//! published incident records a resolved update when the people did not post one. Called with the
//! lifecycle update, in the same status write.

use jiff::Timestamp;

use crate::{
    api::{
        Incident, IncidentStatus, MAX_RECORDED_PUBLIC_UPDATES, PublicStatus, PublicationStatus,
        RESOLVED_BODY, RecordedPublicUpdate,
    },
    core::text::{fingerprint, whole_second},
};

/// The id of a person's public update: the same words by the same author are one update.
pub fn update_id(uid: &str, status: PublicStatus, body: &str, author: &str) -> String {
    fingerprint(&["public-update", uid, status.as_str(), body, author])
}

/// Records what is new of the incident's public part into `status` (nothing for an incident that
/// was never published).
pub fn record(incident: &Incident, status: &mut IncidentStatus, now: Timestamp) {
    if incident.spec.publication.is_none() {
        return;
    }
    let at = whole_second(now);
    let uid = incident.metadata.uid.as_deref().unwrap_or_default();
    let publication = status.publication.get_or_insert_with(|| PublicationStatus {
        published_at: at.clone(),
        resolved_at: None,
        updates: Vec::new(),
    });
    for update in &incident.spec.public_updates {
        let id = update_id(uid, update.status, &update.body, &update.author);
        if publication.updates.iter().all(|u| u.id != id) {
            publication.updates.push(RecordedPublicUpdate {
                id,
                status: update.status,
                body: update.body.clone(),
                author: update.author.clone(),
                at: at.clone(),
            });
        }
    }
    let latest = publication.updates.last().map(|u| u.status);
    if let Some(resolution) = &incident.spec.resolution
        && latest != Some(PublicStatus::Resolved)
    {
        // Counted, so resolving again after a reopening records a new update.
        let count = publication.updates.len().to_string();
        publication.updates.push(RecordedPublicUpdate {
            id: fingerprint(&["public-resolved", uid, &resolution.by, &count]),
            status: PublicStatus::Resolved,
            body: RESOLVED_BODY.to_owned(),
            author: resolution.by.clone(),
            at: at.clone(),
        });
    }
    while publication.updates.len() > MAX_RECORDED_PUBLIC_UPDATES {
        // The first update stays: it says when and how the public first heard.
        publication.updates.remove(1);
    }
    publication.resolved_at = match publication.updates.last() {
        Some(last) if last.status == PublicStatus::Resolved => publication
            .resolved_at
            .clone()
            .or_else(|| Some(last.at.clone())),
        _ => None,
    };
}

#[cfg(test)]
mod tests {
    use jiff::SignedDuration;

    use super::*;
    use crate::api::{Impact, IncidentSpec, PublicUpdate, Publication, Resolution, Severity};

    fn t(minutes: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000).unwrap() + SignedDuration::from_mins(minutes)
    }

    fn incident() -> Incident {
        let spec: IncidentSpec = serde_json::from_value(serde_json::json!({
            "title": "pod checkout-7d9 OOMKilled", "severity": Severity::P1,
        }))
        .unwrap();
        let mut incident = Incident::new("checkout-oom", spec);
        incident.metadata.uid = Some("uid-1".into());
        incident
    }

    fn published() -> Incident {
        let mut incident = incident();
        incident.spec.publication = Some(Publication {
            title: "Checkout is slow".into(),
            impact: Impact::Major,
            components: vec!["checkout".into()],
        });
        incident
    }

    fn update(status: PublicStatus, body: &str) -> PublicUpdate {
        PublicUpdate {
            status,
            body: body.into(),
            author: "ana".into(),
        }
    }

    #[test]
    fn nothing_is_recorded_before_publication() {
        let mut status = IncidentStatus::default();
        record(&incident(), &mut status, t(0));
        assert_eq!(status.publication, None);
    }

    #[test]
    fn each_update_is_recorded_once_with_the_time_first_seen() {
        let mut incident = published();
        let mut status = IncidentStatus::default();
        record(&incident, &mut status, t(0));
        let publication = status.publication.clone().unwrap();
        assert_eq!(publication.published_at.0, t(0));
        assert!(publication.updates.is_empty());
        incident
            .spec
            .public_updates
            .push(update(PublicStatus::Investigating, "Looking"));
        record(&incident, &mut status, t(1));
        record(&incident, &mut status, t(2));
        incident
            .spec
            .public_updates
            .push(update(PublicStatus::Identified, "Found it"));
        record(&incident, &mut status, t(3));
        let updates = &status.publication.as_ref().unwrap().updates;
        assert_eq!(updates.len(), 2);
        assert_eq!(updates[0].at.0, t(1));
        assert_eq!(updates[1].at.0, t(3));
        assert_eq!(updates[1].status, PublicStatus::Identified);
        // Dropping an old update from the spec keeps it in the record.
        incident.spec.public_updates.remove(0);
        record(&incident, &mut status, t(4));
        assert_eq!(status.publication.unwrap().updates.len(), 2);
    }

    #[test]
    fn resolution_publishes_a_resolved_update_once() {
        let mut incident = published();
        let mut status = IncidentStatus::default();
        incident.spec.resolution = Some(Resolution {
            root_cause: Some("a bad pod in node-3".into()),
            summary: "rolled back checkout-7d9".into(),
            by: "ana".into(),
        });
        record(&incident, &mut status, t(5));
        record(&incident, &mut status, t(6));
        let publication = status.publication.clone().unwrap();
        assert_eq!(publication.updates.len(), 1);
        let resolved = &publication.updates[0];
        assert_eq!(resolved.status, PublicStatus::Resolved);
        // The internal summary and root cause stay internal.
        assert_eq!(resolved.body, RESOLVED_BODY);
        assert_eq!(publication.resolved_at.unwrap().0, t(5));
        // A later public update of another status reopens it publicly.
        incident.spec.resolution = None;
        incident
            .spec
            .public_updates
            .push(update(PublicStatus::Investigating, "Back again"));
        record(&incident, &mut status, t(7));
        assert_eq!(status.publication.as_ref().unwrap().resolved_at, None);
        // Resolving again records a second resolved update.
        incident.spec.resolution = Some(Resolution {
            root_cause: None,
            summary: "done".into(),
            by: "ana".into(),
        });
        record(&incident, &mut status, t(8));
        let publication = status.publication.unwrap();
        assert_eq!(publication.updates.len(), 3);
        assert_eq!(publication.resolved_at.unwrap().0, t(8));
    }

    #[test]
    fn the_record_is_bounded_and_keeps_the_first_update() {
        let mut incident = published();
        let mut status = IncidentStatus::default();
        for i in 0..(MAX_RECORDED_PUBLIC_UPDATES + 10) {
            incident.spec.public_updates =
                vec![update(PublicStatus::Monitoring, &format!("update {i}"))];
            record(&incident, &mut status, t(i as i64));
        }
        let updates = status.publication.unwrap().updates;
        assert_eq!(updates.len(), MAX_RECORDED_PUBLIC_UPDATES);
        assert_eq!(updates[0].body, "update 0");
        assert_eq!(updates.last().unwrap().body, "update 39");
    }
}
