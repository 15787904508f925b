//! What the public may know of an incident (core layer): the one place that reads an Incident for
//! the public page. It copies the publication (public title, impact, components) and the recorded
//! public updates, and nothing else: not the name, internal title, description, labels, evidence,
//! notes, authors or timeline.

use std::borrow::Borrow;

use jiff::{SignedDuration, Timestamp};

use super::{HISTORY_DAYS, MAX_HISTORY};
use crate::{
    api::{AffectedRef, Impact, Incident, PageComponent, PublicStatus, StatusPage},
    core::text::fingerprint,
};

/// A published incident as the public sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicIncident {
    /// Opaque and stable (a hash of the Incident's uid), never the Incident's name.
    pub id: String,
    pub title: String,
    pub impact: Impact,
    /// The page's components it affects, in the page's order.
    pub components: Vec<String>,
    pub status: PublicStatus,
    pub published_at: Timestamp,
    pub monitoring_at: Option<Timestamp>,
    pub resolved_at: Option<Timestamp>,
    /// The latest public change: the last update, else the publication.
    pub updated_at: Timestamp,
    /// Newest first, as Statuspage lists them.
    pub updates: Vec<PublicEntry>,
}

/// One public update.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicEntry {
    pub id: String,
    pub status: PublicStatus,
    pub body: String,
    pub at: Timestamp,
}

impl PublicIncident {
    pub fn is_resolved(&self) -> bool {
        self.status == PublicStatus::Resolved
    }

    /// When it stops counting against its components: its resolution, else `now`.
    pub fn until(&self, now: Timestamp) -> Timestamp {
        self.resolved_at.unwrap_or(now)
    }
}

/// The incident as the public sees it, or None while it is not published (no publication in the
/// spec, or the operator has not recorded it yet).
pub fn project(page: &StatusPage, incident: &Incident) -> Option<PublicIncident> {
    let publication = incident.spec.publication.as_ref()?;
    let recorded = incident.status.as_ref()?.publication.as_ref()?;
    let uid = incident.metadata.uid.as_deref().unwrap_or_default();
    let updates: Vec<PublicEntry> = recorded
        .updates
        .iter()
        .rev()
        .map(|u| PublicEntry {
            id: u.id.clone(),
            status: u.status,
            body: u.body.clone(),
            at: u.at.0,
        })
        .collect();
    let status = updates
        .first()
        .map_or(PublicStatus::Investigating, |u| u.status);
    let monitoring_at = updates
        .iter()
        .filter(|u| u.status == PublicStatus::Monitoring)
        .map(|u| u.at)
        .max();
    let components = page
        .spec
        .components
        .iter()
        .filter(|c| affects(c, publication.components.as_slice(), incident))
        .map(|c| c.name.clone())
        .collect();
    let published_at = recorded.published_at.0;
    Some(PublicIncident {
        id: fingerprint(&["public-incident", uid]),
        title: publication.title.clone(),
        impact: publication.impact,
        components,
        status,
        published_at,
        monitoring_at,
        resolved_at: (status == PublicStatus::Resolved)
            .then(|| recorded.resolved_at.as_ref().map(|t| t.0))
            .flatten(),
        updated_at: updates
            .first()
            .map_or(published_at, |u| u.at.max(published_at)),
        updates,
    })
}

/// Whether a published incident affects a component: it names it, or the component's match
/// selects it by labels or by a workload it lists.
fn affects(component: &PageComponent, named: &[String], incident: &Incident) -> bool {
    if named.contains(&component.name) {
        return true;
    }
    let Some(rule) = &component.match_ else {
        return false;
    };
    let labels = incident.metadata.labels.as_ref();
    let by_labels = !rule.incident_labels.is_empty()
        && rule
            .incident_labels
            .iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v));
    let own = incident.metadata.namespace.as_deref();
    let by_workload = incident.spec.affected.iter().any(|a: &AffectedRef| {
        let here = a.namespace.is_none() || a.namespace.as_deref() == own;
        here && rule
            .affected
            .iter()
            .any(|w| w.kind == a.kind && w.name == a.name)
    });
    by_labels || by_workload
}

/// The page's published incidents: of its namespace, open or resolved within the history window,
/// newest first, at most [`MAX_HISTORY`].
pub fn collect<I: Borrow<Incident>>(
    page: &StatusPage,
    incidents: &[I],
    now: Timestamp,
) -> Vec<PublicIncident> {
    let since = now - SignedDuration::from_hours(24 * HISTORY_DAYS);
    let namespace = page.metadata.namespace.as_deref();
    let mut public: Vec<PublicIncident> = incidents
        .iter()
        .map(Borrow::borrow)
        .filter(|i| i.metadata.namespace.as_deref() == namespace)
        .filter_map(|i| project(page, i))
        .filter(|p| p.resolved_at.is_none_or(|r| r >= since))
        .collect();
    public.sort_by(|a, b| {
        b.published_at
            .cmp(&a.published_at)
            .then_with(|| a.id.cmp(&b.id))
    });
    public.truncate(MAX_HISTORY);
    public
}
