//! Test data shared by the status page's tests: a page with grouped components and published,
//! unpublished and resolved incidents whose internal parts must never show.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::{
    Impact, Incident, IncidentSpec, IncidentStatus, PublicStatus, Publication, PublicationStatus,
    RecordedPublicUpdate, Severity, StatusPage, StatusPageSpec,
};

/// Words that exist only in the internal parts of the fixtures' incidents.
pub const SECRETS: &[&str] = &[
    "checkout-7d9f-xk2",
    "OOMKilled",
    "db password rotated",
    "internal-title",
    "root cause: node-3",
    "ana@corp",
    "checkout-oom",
];

pub fn t(minutes: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000).unwrap() + SignedDuration::from_mins(minutes)
}

pub fn page() -> StatusPage {
    let spec: StatusPageSpec = serde_json::from_value(serde_json::json!({
        "title": "Shop status",
        "url": "https://status.example.com",
        "components": [
            {"name": "checkout", "displayName": "Checkout", "group": "Shop",
             "description": "Paying for an order",
             "match": {"affected": [{"kind": "Deployment", "name": "payments"}]}},
            {"name": "search", "displayName": "Search", "group": "Shop"},
            {"name": "api", "displayName": "Public API",
             "match": {"incidentLabels": {"team": "api"}}},
        ],
        "maintenances": [
            {"name": "db-upgrade", "title": "Database upgrade", "components": ["search"],
             "description": "Search may be slow",
             "scheduledFor": Time(t(60)), "scheduledUntil": Time(t(120))},
        ],
    }))
    .unwrap();
    let mut page = StatusPage::new("shop", spec);
    page.metadata.namespace = Some("shop".into());
    page.metadata.uid = Some("page-uid".into());
    page.metadata.creation_timestamp = Some(Time(t(-100_000)));
    page
}

/// An incident with internal words everywhere; published when `publication` is given, with
/// recorded updates (status, body, minute).
pub fn incident(
    uid: &str,
    publication: Option<(&str, Impact, &[&str])>,
    updates: &[(PublicStatus, &str, i64)],
) -> Incident {
    let mut spec: IncidentSpec = serde_json::from_value(serde_json::json!({
        "title": "internal-title: pod checkout-7d9f-xk2 OOMKilled",
        "severity": Severity::P1,
        "description": "db password rotated",
        "notes": [{"author": "ana@corp", "text": "root cause: node-3"}],
        "signals": [{"type": "OOMKilled", "firstSeen": Time(t(0)), "lastSeen": Time(t(1)),
                      "count": 1, "pods": ["checkout-7d9f-xk2"]}],
    }))
    .unwrap();
    spec.publication = publication.map(|(title, impact, components)| Publication {
        title: title.into(),
        impact,
        components: components.iter().map(|c| c.to_string()).collect(),
    });
    let mut incident = Incident::new("checkout-oom", spec);
    incident.metadata.namespace = Some("shop".into());
    incident.metadata.uid = Some(uid.into());
    incident.metadata.creation_timestamp = Some(Time(t(-5)));
    let resolved_at = updates
        .last()
        .filter(|u| u.0 == PublicStatus::Resolved)
        .map(|u| Time(t(u.2)));
    incident.status = Some(IncidentStatus {
        publication: incident
            .spec
            .publication
            .as_ref()
            .map(|_| PublicationStatus {
                published_at: Time(t(updates.first().map_or(0, |u| u.2.min(0)))),
                resolved_at,
                updates: updates
                    .iter()
                    .enumerate()
                    .map(|(n, (status, body, minute))| RecordedPublicUpdate {
                        id: format!("{uid}-{n}"),
                        status: *status,
                        body: body.to_string(),
                        author: "ana@corp".into(),
                        at: Time(t(*minute)),
                    })
                    .collect(),
            }),
        ..IncidentStatus::default()
    });
    incident
}

/// A published open incident on checkout, an unpublished one, and a resolved one on search.
pub fn incidents() -> Vec<Incident> {
    vec![
        incident(
            "open",
            Some(("Checkout is slow", Impact::Major, &["checkout"])),
            &[
                (
                    PublicStatus::Investigating,
                    "We are looking into slow checkouts",
                    1,
                ),
                (PublicStatus::Identified, "A fix is being rolled out", 10),
            ],
        ),
        incident("hidden", None, &[]),
        incident(
            "past",
            Some(("Search was down", Impact::Critical, &["search"])),
            &[
                (PublicStatus::Investigating, "Search fails", -300),
                (PublicStatus::Resolved, "Search works again", -240),
            ],
        ),
    ]
}
