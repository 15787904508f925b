//! The page at one instant (core layer): the published incidents, each component's status and the
//! overall indicator, computed once per request and rendered as JSON, HTML or Atom.

use jiff::Timestamp;

use super::{
    public::{PublicIncident, collect},
    state::{
        ComponentView, Indicator, MaintenanceStatus, components, indicator, maintenance_status,
    },
};
use crate::{
    api::{Incident, Maintenance, StatusPage},
    core::text::fingerprint,
};

pub struct Snapshot {
    pub page: StatusPage,
    /// Opaque and stable: a hash of the StatusPage's uid.
    pub page_id: String,
    /// Newest first; open and resolved within the history window.
    pub incidents: Vec<PublicIncident>,
    pub components: Vec<ComponentView>,
    pub indicator: Indicator,
    pub description: &'static str,
    /// The latest public change (Last-Modified).
    pub updated_at: Timestamp,
    pub now: Timestamp,
}

impl Snapshot {
    pub fn new<I: std::borrow::Borrow<Incident>>(
        page: &StatusPage,
        incidents: &[I],
        now: Timestamp,
    ) -> Snapshot {
        let incidents = collect(page, incidents, now);
        let components = components(page, &incidents, now);
        let (indicator, description) = indicator(&components, &incidents);
        let created = page
            .metadata
            .creation_timestamp
            .as_ref()
            .map_or(Timestamp::UNIX_EPOCH, |t| t.0);
        let maintenance_edges = page
            .spec
            .maintenances
            .iter()
            .flat_map(|m| [m.scheduled_for.0, m.scheduled_until.0])
            .filter(|t| *t <= now);
        let updated_at = incidents
            .iter()
            .map(|i| i.updated_at)
            .chain(maintenance_edges)
            .fold(created, Timestamp::max);
        let uid = page.metadata.uid.as_deref().unwrap_or_default();
        Snapshot {
            page: page.clone(),
            page_id: fingerprint(&["status-page", uid]),
            incidents,
            components,
            indicator,
            description,
            updated_at,
            now,
        }
    }

    pub fn open(&self) -> impl Iterator<Item = &PublicIncident> {
        self.incidents.iter().filter(|i| !i.is_resolved())
    }

    pub fn resolved(&self) -> impl Iterator<Item = &PublicIncident> {
        self.incidents.iter().filter(|i| i.is_resolved())
    }

    /// Maintenance windows with their status, soonest first.
    pub fn maintenances(&self) -> Vec<(&Maintenance, MaintenanceStatus)> {
        let mut all: Vec<_> = self
            .page
            .spec
            .maintenances
            .iter()
            .map(|m| (m, maintenance_status(m, self.now)))
            .collect();
        all.sort_by_key(|(m, _)| m.scheduled_for.0);
        all
    }

    /// A component's shown name.
    pub fn component_name(&self, name: &str) -> String {
        self.components
            .iter()
            .find(|c| c.name == name)
            .map_or_else(|| name.to_owned(), |c| c.shown_name.clone())
    }
}
