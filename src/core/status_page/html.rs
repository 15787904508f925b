//! The HTML page (core layer): semantic markup that needs no JavaScript, refreshed by a meta
//! refresh, styled by one stylesheet served beside it (so the CSP allows no inline code), readable
//! on a phone. Rendered with minijinja, which escapes every value for HTML.

use std::sync::OnceLock;

use minijinja::Environment;
use serde_json::{Value, json};

use super::{
    HISTORY_DAYS, MAX_LISTED,
    atom::capitalized,
    public::PublicIncident,
    snapshot::Snapshot,
    state::{ComponentView, MaintenanceStatus},
};
use crate::api::ComponentStatus;

/// The stylesheet the page links to (served at [`STYLESHEET_PATH`]).
pub const STYLESHEET: &str = include_str!("page.css");
pub const STYLESHEET_PATH: &str = "/status.css";

fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        // A template that does not parse is a build mistake the unit tests catch.
        if let Err(error) = env.add_template("page.html", include_str!("page.html")) {
            panic!("page.html: {error}");
        }
        env
    })
}

/// When a time reads on the page: UTC, to the minute.
fn shown(time: jiff::Timestamp) -> String {
    time.strftime("%b %-d, %Y %H:%M UTC").to_string()
}

fn datetime(time: jiff::Timestamp) -> String {
    time.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn css_class(status: ComponentStatus) -> &'static str {
    match status {
        ComponentStatus::Operational => "ok",
        ComponentStatus::UnderMaintenance => "maintenance",
        ComponentStatus::DegradedPerformance => "degraded",
        ComponentStatus::PartialOutage => "partial",
        ComponentStatus::MajorOutage => "major",
    }
}

fn incident(s: &Snapshot, i: &PublicIncident) -> Value {
    json!({
        "id": i.id,
        "title": i.title,
        "impact": i.impact.as_str(),
        "status": capitalized(i.status.as_str()),
        "components": i.components.iter().map(|c| s.component_name(c)).collect::<Vec<_>>(),
        "published": shown(i.published_at),
        "published_at": datetime(i.published_at),
        "resolved": i.resolved_at.map(shown),
        "updates": i.updates.iter().map(|u| json!({
            "status": capitalized(u.status.as_str()),
            "body": u.body,
            "at": datetime(u.at),
            "shown": shown(u.at),
        })).collect::<Vec<_>>(),
    })
}

fn component(c: &ComponentView) -> Value {
    let days: Vec<Value> = c
        .uptime
        .days
        .iter()
        .map(|d| {
            let said = if d.affected_seconds == 0 {
                "No incidents".to_owned()
            } else {
                format!(
                    "{}, {} min",
                    d.worst.label(),
                    (d.affected_seconds + 59) / 60
                )
            };
            json!({
                "class": css_class(d.worst),
                "title": format!("{}: {said}", d.date),
            })
        })
        .collect();
    json!({
        "name": c.shown_name,
        "description": c.description,
        "status": c.status.label(),
        "class": css_class(c.status),
        "uptime": format!("{:.2}", c.uptime.percent),
        "days": days,
    })
}

/// The page's sections as data for the template.
fn context(s: &Snapshot, refresh_seconds: u32) -> Value {
    let mut groups: Vec<(Option<String>, Vec<Value>)> = Vec::new();
    for c in &s.components {
        match groups
            .iter_mut()
            .find(|(g, _)| g.is_some() && *g == c.group)
        {
            Some((_, members)) => members.push(component(c)),
            None => groups.push((c.group.clone(), vec![component(c)])),
        }
    }
    let maintenances: Vec<Value> = s
        .maintenances()
        .into_iter()
        .filter(|(_, status)| *status != MaintenanceStatus::Completed)
        .map(|(m, status)| {
            json!({
                "title": m.title,
                "description": m.description,
                "status": capitalized(&status.as_str().replace('_', " ")),
                "from": shown(m.scheduled_for.0),
                "from_at": datetime(m.scheduled_for.0),
                "until": shown(m.scheduled_until.0),
                "until_at": datetime(m.scheduled_until.0),
                "components": m.components.iter().map(|c| s.component_name(c)).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "title": s.page.spec.title,
        "indicator": s.indicator.as_str(),
        "description": s.description,
        "refresh": refresh_seconds,
        "stylesheet": STYLESHEET_PATH,
        "updated": shown(s.updated_at),
        "updated_at": datetime(s.updated_at),
        "open": s.open().map(|i| incident(s, i)).collect::<Vec<_>>(),
        // The bars carry the whole window; the list, the most recent (the JSON has the rest).
        "past": s.resolved().take(MAX_LISTED).map(|i| incident(s, i)).collect::<Vec<_>>(),
        "maintenances": maintenances,
        "groups": groups.into_iter().map(|(name, members)| json!({"name": name, "components": members})).collect::<Vec<_>>(),
        "history_days": HISTORY_DAYS,
    })
}

/// The page, refreshing itself every `refresh_seconds`.
pub fn page(s: &Snapshot, refresh_seconds: u32) -> Result<String, String> {
    environment()
        .get_template("page.html")
        .and_then(|t| t.render(minijinja::value::Serde(context(s, refresh_seconds))))
        .map_err(|e| format!("the status page did not render: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::status_page::fixtures::{self as fx, t};

    fn render(at: i64) -> String {
        page(&Snapshot::new(&fx::page(), &fx::incidents(), t(at)), 30).unwrap()
    }

    #[test]
    fn the_page_shows_status_components_open_incidents_and_history() {
        let html = render(30);
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("<html lang=\"en\">"));
        assert!(html.contains("<meta http-equiv=\"refresh\" content=\"30\">"));
        assert!(html.contains("name=\"viewport\""));
        assert!(html.contains("Partial System Outage"));
        assert!(html.contains("Checkout is slow"));
        assert!(html.contains("A fix is being rolled out"));
        assert!(html.contains("Search was down"));
        assert!(html.contains("Database upgrade"));
        assert!(html.contains("<main"));
        assert!(!html.contains("<script"));
        assert!(
            !html.contains("style=\""),
            "inline styles would need CSP 'unsafe-inline'"
        );
        for secret in fx::SECRETS {
            assert!(!html.contains(secret), "{secret}");
        }
    }

    #[test]
    fn published_words_are_escaped() {
        let mut incidents = fx::incidents();
        incidents[0].spec.publication.as_mut().unwrap().title = "<script>alert(1)</script>".into();
        let html = page(&Snapshot::new(&fx::page(), &incidents, t(30)), 30).unwrap();
        assert!(!html.contains("<script>"));
        assert!(html.contains("&lt;script&gt;"));
    }
}
