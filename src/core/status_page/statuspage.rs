//! Atlassian Statuspage's public v2 API shapes (core layer): `summary.json`, `status.json`,
//! `components.json`, `incidents.json`, `incidents/unresolved.json` and the
//! `scheduled-maintenances` lists, with its field names and enum values, so widgets and monitors
//! written for Statuspage read this page unchanged. Built only from a [`Snapshot`].

use jiff::Timestamp;
use serde_json::{Value, json};

use super::{
    MAX_LISTED,
    public::PublicIncident,
    snapshot::Snapshot,
    state::{ComponentView, MaintenanceStatus},
};
use crate::{
    api::{ComponentStatus, Maintenance},
    core::text::fingerprint,
};

/// Times as Statuspage writes them: ISO 8601 with milliseconds, in UTC.
pub fn iso(time: Timestamp) -> String {
    time.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

fn page(s: &Snapshot) -> Value {
    json!({
        "id": s.page_id,
        "name": s.page.spec.title,
        "url": s.page.spec.url.clone().unwrap_or_default(),
        "time_zone": "Etc/UTC",
        "updated_at": iso(s.updated_at),
    })
}

fn status(s: &Snapshot) -> Value {
    json!({ "indicator": s.indicator.as_str(), "description": s.description })
}

fn component_id(s: &Snapshot, name: &str) -> String {
    fingerprint(&["component", &s.page_id, name])
}

fn group_id(s: &Snapshot, group: &str) -> String {
    fingerprint(&["component-group", &s.page_id, group])
}

fn created(s: &Snapshot) -> String {
    iso(s
        .page
        .metadata
        .creation_timestamp
        .as_ref()
        .map_or(Timestamp::UNIX_EPOCH, |t| t.0))
}

/// When a component last changed: the latest public change of an incident affecting it.
fn changed(s: &Snapshot, name: &str) -> String {
    let latest = s
        .incidents
        .iter()
        .filter(|i| i.components.iter().any(|c| c == name))
        .map(|i| i.updated_at)
        .max();
    latest.map_or_else(|| created(s), iso)
}

fn component(s: &Snapshot, c: &ComponentView, position: usize) -> Value {
    json!({
        "id": component_id(s, &c.name),
        "name": c.shown_name,
        "status": c.status.as_str(),
        "created_at": created(s),
        "updated_at": changed(s, &c.name),
        "position": position,
        "description": c.description,
        "showcase": true,
        "start_date": null,
        "group_id": c.group.as_deref().map(|g| group_id(s, g)),
        "page_id": s.page_id,
        "group": false,
        "only_show_if_degraded": false,
    })
}

/// The components, each group as a component of its own (`group: true`) listing its members'
/// ids, placed where its first member is, as Statuspage does.
fn components(s: &Snapshot) -> Vec<Value> {
    let mut out = Vec::new();
    let mut groups_seen: Vec<&str> = Vec::new();
    for c in &s.components {
        if let Some(group) = c.group.as_deref()
            && !groups_seen.contains(&group)
        {
            groups_seen.push(group);
            let members: Vec<&ComponentView> = s
                .components
                .iter()
                .filter(|m| m.group.as_deref() == Some(group))
                .collect();
            let worst = members
                .iter()
                .map(|m| m.status)
                .max()
                .unwrap_or(ComponentStatus::Operational);
            out.push(json!({
                "id": group_id(s, group),
                "name": group,
                "status": worst.as_str(),
                "created_at": created(s),
                "updated_at": created(s),
                "position": out.len() + 1,
                "description": null,
                "showcase": false,
                "start_date": null,
                "group_id": null,
                "page_id": s.page_id,
                "group": true,
                "only_show_if_degraded": false,
                "components": members.iter().map(|m| component_id(s, &m.name)).collect::<Vec<_>>(),
            }));
        }
        let position = out.len() + 1;
        out.push(component(s, c, position));
    }
    out
}

fn shortlink(s: &Snapshot, anchor: &str) -> Value {
    match &s.page.spec.url {
        Some(url) => json!(format!("{}/#{anchor}", url.trim_end_matches('/'))),
        None => Value::Null,
    }
}

fn incident_components(s: &Snapshot, names: &[String]) -> Vec<Value> {
    s.components
        .iter()
        .enumerate()
        .filter(|(_, c)| names.contains(&c.name))
        .map(|(n, c)| component(s, c, n + 1))
        .collect()
}

fn incident(s: &Snapshot, i: &PublicIncident) -> Value {
    let updates: Vec<Value> = i
        .updates
        .iter()
        .map(|u| {
            json!({
                "id": u.id,
                "status": u.status.as_str(),
                "body": u.body,
                "incident_id": i.id,
                "created_at": iso(u.at),
                "updated_at": iso(u.at),
                "display_at": iso(u.at),
                "affected_components": null,
                "deliver_notifications": true,
                "custom_tweet": null,
                "tweet_id": null,
            })
        })
        .collect();
    json!({
        "id": i.id,
        "name": i.title,
        "status": i.status.as_str(),
        "created_at": iso(i.published_at),
        "updated_at": iso(i.updated_at),
        "monitoring_at": i.monitoring_at.map(iso),
        "resolved_at": i.resolved_at.map(iso),
        "impact": i.impact.as_str(),
        "shortlink": shortlink(s, &format!("incident-{}", i.id)),
        "started_at": iso(i.published_at),
        "page_id": s.page_id,
        "incident_updates": updates,
        "components": incident_components(s, &i.components),
    })
}

fn maintenance(s: &Snapshot, m: &Maintenance, status: MaintenanceStatus) -> Value {
    let id = fingerprint(&["maintenance", &s.page_id, &m.name]);
    let body = m.description.clone().unwrap_or_else(|| m.title.clone());
    let at = match status {
        MaintenanceStatus::Scheduled => created(s),
        MaintenanceStatus::InProgress => iso(m.scheduled_for.0),
        MaintenanceStatus::Completed => iso(m.scheduled_until.0),
    };
    json!({
        "id": id,
        "name": m.title,
        "status": status.as_str(),
        "created_at": created(s),
        "updated_at": at,
        "monitoring_at": null,
        "resolved_at": (status == MaintenanceStatus::Completed).then(|| iso(m.scheduled_until.0)),
        "impact": "maintenance",
        "shortlink": shortlink(s, &format!("maintenance-{id}")),
        "started_at": iso(m.scheduled_for.0),
        "page_id": s.page_id,
        "incident_updates": [{
            "id": fingerprint(&["maintenance-update", &id, status.as_str()]),
            "status": status.as_str(),
            "body": body,
            "incident_id": id,
            "created_at": at,
            "updated_at": at,
            "display_at": at,
            "affected_components": null,
            "deliver_notifications": true,
            "custom_tweet": null,
            "tweet_id": null,
        }],
        "components": incident_components(s, &m.components),
        "scheduled_for": iso(m.scheduled_for.0),
        "scheduled_until": iso(m.scheduled_until.0),
    })
}

fn maintenances(s: &Snapshot, keep: impl Fn(MaintenanceStatus) -> bool) -> Vec<Value> {
    s.maintenances()
        .into_iter()
        .filter(|(_, status)| keep(*status))
        .map(|(m, status)| maintenance(s, m, status))
        .collect()
}

/// `/api/v2/summary.json`: page, components, open incidents, maintenance not yet completed, status.
pub fn summary(s: &Snapshot) -> Value {
    json!({
        "page": page(s),
        "components": components(s),
        "incidents": s.open().map(|i| incident(s, i)).collect::<Vec<_>>(),
        "scheduled_maintenances": maintenances(s, |m| m != MaintenanceStatus::Completed),
        "status": status(s),
    })
}

/// `/api/v2/status.json`.
pub fn status_only(s: &Snapshot) -> Value {
    json!({ "page": page(s), "status": status(s) })
}

/// `/api/v2/components.json`.
pub fn components_only(s: &Snapshot) -> Value {
    json!({ "page": page(s), "components": components(s) })
}

/// `/api/v2/incidents.json`: the most recent incidents, open or resolved.
pub fn incidents(s: &Snapshot) -> Value {
    let listed: Vec<Value> = s
        .incidents
        .iter()
        .take(MAX_LISTED)
        .map(|i| incident(s, i))
        .collect();
    json!({ "page": page(s), "incidents": listed })
}

/// `/api/v2/incidents/unresolved.json`.
pub fn unresolved(s: &Snapshot) -> Value {
    let open: Vec<Value> = s.open().map(|i| incident(s, i)).collect();
    json!({ "page": page(s), "incidents": open })
}

/// `/api/v2/scheduled-maintenances.json`, `…/upcoming.json` and `…/active.json`.
pub fn scheduled_maintenances(s: &Snapshot, which: Option<MaintenanceStatus>) -> Value {
    let listed = maintenances(s, |m| which.is_none_or(|w| w == m));
    json!({ "page": page(s), "scheduled_maintenances": listed })
}

#[cfg(test)]
#[path = "statuspage_tests.rs"]
mod tests;
