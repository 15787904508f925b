//! How the page stands (core layer): each component's status (the worst open published incident
//! affecting it, maintenance, or a person's override), the page's overall indicator, maintenance
//! windows' status, and 90 days of uptime per component from incident history.

use jiff::{SignedDuration, Timestamp, ToSpan, civil::Date, tz::TimeZone};

use super::{HISTORY_DAYS, public::PublicIncident};
use crate::api::{ComponentStatus, Impact, Maintenance, PageComponent, StatusPage};

/// The status an open incident of this impact gives the components it affects.
pub fn impact_status(impact: Impact) -> ComponentStatus {
    match impact {
        Impact::None => ComponentStatus::Operational,
        Impact::Minor => ComponentStatus::DegradedPerformance,
        Impact::Major => ComponentStatus::PartialOutage,
        Impact::Critical => ComponentStatus::MajorOutage,
    }
}

/// Where a maintenance window stands, in Statuspage's words.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MaintenanceStatus {
    Scheduled,
    InProgress,
    Completed,
}

impl MaintenanceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MaintenanceStatus::Scheduled => "scheduled",
            MaintenanceStatus::InProgress => "in_progress",
            MaintenanceStatus::Completed => "completed",
        }
    }
}

pub fn maintenance_status(maintenance: &Maintenance, now: Timestamp) -> MaintenanceStatus {
    if now < maintenance.scheduled_for.0 {
        MaintenanceStatus::Scheduled
    } else if now < maintenance.scheduled_until.0 {
        MaintenanceStatus::InProgress
    } else {
        MaintenanceStatus::Completed
    }
}

/// A component as the page shows it now.
#[derive(Clone, Debug, PartialEq)]
pub struct ComponentView {
    pub name: String,
    pub shown_name: String,
    pub description: Option<String>,
    pub group: Option<String>,
    pub status: ComponentStatus,
    /// A person set the status (`override`), not the incidents.
    pub overridden: bool,
    pub uptime: Uptime,
}

/// A component's status: its override, else the worst of the open published incidents affecting
/// it, else under maintenance while a window naming it runs, else operational.
pub fn component_status(
    page: &StatusPage,
    component: &PageComponent,
    incidents: &[PublicIncident],
    now: Timestamp,
) -> ComponentStatus {
    if let Some(o) = &component.override_ {
        return o.status;
    }
    let from_incidents = incidents
        .iter()
        .filter(|i| !i.is_resolved() && i.components.contains(&component.name))
        .map(|i| impact_status(i.impact))
        .max()
        .unwrap_or(ComponentStatus::Operational);
    let maintained = page.spec.maintenances.iter().any(|m| {
        m.components.contains(&component.name)
            && maintenance_status(m, now) == MaintenanceStatus::InProgress
    });
    if maintained && from_incidents == ComponentStatus::Operational {
        ComponentStatus::UnderMaintenance
    } else {
        from_incidents
    }
}

/// Every component of the page, in its order.
pub fn components(
    page: &StatusPage,
    incidents: &[PublicIncident],
    now: Timestamp,
) -> Vec<ComponentView> {
    page.spec
        .components
        .iter()
        .map(|c| ComponentView {
            name: c.name.clone(),
            shown_name: c.shown_name().to_owned(),
            description: c.description.clone(),
            group: c.group.clone(),
            status: component_status(page, c, incidents, now),
            overridden: c.override_.is_some(),
            uptime: uptime(&c.name, incidents, now),
        })
        .collect()
}

/// The page's overall state, in Statuspage's words.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Indicator {
    None,
    Minor,
    Major,
    Critical,
}

impl Indicator {
    pub fn as_str(self) -> &'static str {
        match self {
            Indicator::None => "none",
            Indicator::Minor => "minor",
            Indicator::Major => "major",
            Indicator::Critical => "critical",
        }
    }
}

/// The overall indicator (the worst component or open incident) and its description.
pub fn indicator(
    components: &[ComponentView],
    incidents: &[PublicIncident],
) -> (Indicator, &'static str) {
    let by_component = components.iter().map(|c| match c.status {
        ComponentStatus::Operational | ComponentStatus::UnderMaintenance => Indicator::None,
        ComponentStatus::DegradedPerformance => Indicator::Minor,
        ComponentStatus::PartialOutage => Indicator::Major,
        ComponentStatus::MajorOutage => Indicator::Critical,
    });
    let by_incident = incidents
        .iter()
        .filter(|i| !i.is_resolved())
        .map(|i| match i.impact {
            Impact::None => Indicator::None,
            Impact::Minor => Indicator::Minor,
            Impact::Major => Indicator::Major,
            Impact::Critical => Indicator::Critical,
        });
    let worst = by_component
        .chain(by_incident)
        .max()
        .unwrap_or(Indicator::None);
    let maintenance = components
        .iter()
        .any(|c| c.status == ComponentStatus::UnderMaintenance);
    let description = match worst {
        Indicator::None if maintenance => "Service Under Maintenance",
        Indicator::None => "All Systems Operational",
        Indicator::Minor => "Minor Service Outage",
        Indicator::Major => "Partial System Outage",
        Indicator::Critical => "Major Service Outage",
    };
    (worst, description)
}

/// One day of a component's history (UTC).
#[derive(Clone, Debug, PartialEq)]
pub struct Day {
    pub date: Date,
    /// The worst status published incidents gave it that day.
    pub worst: ComponentStatus,
    /// Seconds of that day with an open incident affecting it.
    pub affected_seconds: i64,
}

/// A component's last [`HISTORY_DAYS`] days, oldest first, and its uptime over them.
#[derive(Clone, Debug, PartialEq)]
pub struct Uptime {
    pub days: Vec<Day>,
    /// Percent of the window up: a major outage counts whole, a partial outage 30%, degraded
    /// performance not at all (Statuspage's weights).
    pub percent: f64,
}

fn weight(status: ComponentStatus) -> f64 {
    match status {
        ComponentStatus::MajorOutage => 1.0,
        ComponentStatus::PartialOutage => 0.3,
        _ => 0.0,
    }
}

/// Uptime of component `name` from the incidents' history, up to `now`.
pub fn uptime(name: &str, incidents: &[PublicIncident], now: Timestamp) -> Uptime {
    let today = now.to_zoned(TimeZone::UTC).date();
    let spans: Vec<(Timestamp, Timestamp, ComponentStatus)> = incidents
        .iter()
        .filter(|i| i.components.iter().any(|c| c == name))
        .map(|i| (i.published_at, i.until(now), impact_status(i.impact)))
        .filter(|(from, until, status)| from < until && *status > ComponentStatus::Operational)
        .collect();
    let mut days = Vec::new();
    let mut down = 0.0;
    let mut observed = 0i64;
    for back in (0..HISTORY_DAYS).rev() {
        let Ok(date) = today.checked_sub(back.days()) else {
            continue;
        };
        let Ok(start) = date.to_zoned(TimeZone::UTC).map(|z| z.timestamp()) else {
            continue;
        };
        let end = (start + SignedDuration::from_hours(24)).min(now);
        let (worst, affected, weighted) = day_of(&spans, start, end);
        observed += end.duration_since(start).as_secs().max(0);
        down += weighted;
        days.push(Day {
            date,
            worst,
            affected_seconds: affected,
        });
    }
    let percent = if observed == 0 {
        100.0
    } else {
        (100.0 * (1.0 - down / observed as f64)).clamp(0.0, 100.0)
    };
    Uptime { days, percent }
}

/// The worst status, the seconds affected and the weighted seconds down within [start, end):
/// overlapping incidents count once, at the worst of them.
fn day_of(
    spans: &[(Timestamp, Timestamp, ComponentStatus)],
    start: Timestamp,
    end: Timestamp,
) -> (ComponentStatus, i64, f64) {
    let inside: Vec<_> = spans
        .iter()
        .filter_map(|&(from, until, status)| {
            let (from, until) = (from.max(start), until.min(end));
            (from < until).then_some((from, until, status))
        })
        .collect();
    let mut edges: Vec<Timestamp> = inside.iter().flat_map(|&(f, u, _)| [f, u]).collect();
    edges.sort();
    edges.dedup();
    let (mut worst, mut affected, mut weighted) = (ComponentStatus::Operational, 0i64, 0.0);
    for pair in edges.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let covering = inside
            .iter()
            .filter(|&&(f, u, _)| f <= a && b <= u)
            .map(|&(_, _, s)| s)
            .max();
        if let Some(status) = covering {
            let seconds = b.duration_since(a).as_secs();
            worst = worst.max(status);
            affected += seconds;
            weighted += weight(status) * seconds as f64;
        }
    }
    (worst, affected, weighted)
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
