//! The responders' board (core layer): the open incidents of the page's namespace, most urgent
//! first as the plugin's queue orders them (unacknowledged first, then severity, then the time left
//! to respond), with who leads, the phase, the last update,
//! the runbook step under way and the approvals it waits for; and one incident's timeline. It
//! shows internal data, so the shell serves it only to users RBAC lets read the Incidents.

use std::{borrow::Borrow, sync::OnceLock};

use jiff::Timestamp;
use minijinja::Environment;
use serde_json::{Value, json};

use super::html::STYLESHEET_PATH;
use crate::{
    api::{Incident, Phase, StepPhase},
    core::text::age,
};

/// One open incident on the board.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub name: String,
    pub title: String,
    pub severity: String,
    pub phase: String,
    pub commander: Option<String>,
    /// Time left to acknowledge, when not yet acknowledged (negative: overdue).
    pub respond_in: Option<i64>,
    pub last_update: Option<Timestamp>,
    /// The runbook step under way, as `runbook: step`.
    pub running_step: Option<String>,
    /// Runbook steps waiting for a person's approval.
    pub pending_approvals: Vec<String>,
    /// Acknowledged or not, severity rank and deadline, for the order (the plugin's queue's).
    order: (bool, u8, Timestamp),
}

fn is_open(incident: &Incident) -> bool {
    !matches!(
        incident.status.as_ref().and_then(|s| s.phase),
        Some(Phase::Resolved | Phase::Closed)
    ) && incident.spec.resolution.is_none()
}

/// The board's rows: open incidents, most urgent first.
pub fn rows<I: Borrow<Incident>>(incidents: &[I], now: Timestamp) -> Vec<Row> {
    let mut rows: Vec<Row> = incidents
        .iter()
        .map(Borrow::borrow)
        .filter(|i| is_open(i))
        .map(|i| row(i, now))
        .collect();
    rows.sort_by(|a, b| a.order.cmp(&b.order).then_with(|| a.name.cmp(&b.name)));
    rows
}

fn row(incident: &Incident, now: Timestamp) -> Row {
    let status = incident.status.clone().unwrap_or_default();
    let acknowledged = incident.spec.acknowledgment.is_some();
    let respond_by = status.sla.as_ref().map(|s| s.respond_by.0);
    let runbook = status.runbook.as_ref();
    let running_step = runbook.and_then(|r| {
        r.progress
            .iter()
            .find(|p| p.phase == StepPhase::Running)
            .map(|p| format!("{}: {}", r.name, p.name))
    });
    let pending_approvals = runbook
        .map(|r| {
            r.progress
                .iter()
                .filter(|p| p.phase == StepPhase::WaitingApproval)
                .map(|p| p.name.clone())
                .collect()
        })
        .unwrap_or_default();
    let created = incident
        .metadata
        .creation_timestamp
        .as_ref()
        .map_or(now, |t| t.0);
    Row {
        name: incident.metadata.name.clone().unwrap_or_default(),
        title: incident.spec.title.clone(),
        severity: incident.spec.severity.as_str().to_owned(),
        phase: status
            .phase
            .map_or_else(|| "Detected".to_owned(), |p| p.to_string()),
        commander: status.commander.clone(),
        respond_in: respond_by
            .filter(|_| !acknowledged)
            .map(|by| by.as_second() - now.as_second()),
        last_update: status.last_update_time.as_ref().map(|t| t.0),
        running_step,
        pending_approvals,
        order: (
            acknowledged,
            incident.spec.severity as u8,
            respond_by.filter(|_| !acknowledged).unwrap_or(created),
        ),
    }
}

fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, source) in [
            ("board.html", include_str!("board.html")),
            ("timeline.html", include_str!("timeline.html")),
        ] {
            if let Err(error) = env.add_template(name, source) {
                panic!("{name}: {error}");
            }
        }
        env
    })
}

fn render(template: &str, context: Value) -> Result<String, String> {
    environment()
        .get_template(template)
        .and_then(|t| t.render(minijinja::value::Serde(context)))
        .map_err(|e| format!("the board did not render: {e}"))
}

fn when(time: Timestamp) -> String {
    time.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// The board page of `namespace`, each row linking to `link_prefix` + the incident's name.
pub fn page(
    namespace: &str,
    rows: &[Row],
    link_prefix: &str,
    now: Timestamp,
    refresh_seconds: u32,
) -> Result<String, String> {
    let rows: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "name": r.name,
                "href": format!("{link_prefix}{}", r.name),
                "title": r.title,
                "severity": r.severity,
                "phase": r.phase,
                "commander": r.commander,
                "respond": r.respond_in.map(|s| if s < 0 {
                    format!("overdue by {}", age(jiff::SignedDuration::from_secs(-s)))
                } else {
                    age(jiff::SignedDuration::from_secs(s))
                }),
                "overdue": r.respond_in.is_some_and(|s| s < 0),
                "last_update": r.last_update.map(|t| format!("{} ago", age(now.duration_since(t)))),
                "running_step": r.running_step,
                "approvals": r.pending_approvals,
            })
        })
        .collect();
    render(
        "board.html",
        json!({
            "namespace": namespace, "rows": rows, "stylesheet": STYLESHEET_PATH,
            "refresh": refresh_seconds, "now": when(now),
        }),
    )
}

/// One incident's timeline, for responders.
pub fn timeline(incident: &Incident, board_href: &str) -> Result<String, String> {
    let status = incident.status.clone().unwrap_or_default();
    let entries: Vec<Value> = status
        .timeline
        .iter()
        .map(|e| {
            json!({
                "time": when(e.time.0),
                "type": format!("{:?}", e.type_),
                "message": e.message,
                "actor": e.actor,
            })
        })
        .collect();
    render(
        "timeline.html",
        json!({
            "name": incident.metadata.name, "title": incident.spec.title,
            "severity": incident.spec.severity.as_str(),
            "phase": status.phase.map(|p| p.to_string()),
            "commander": status.commander, "entries": entries, "board": board_href,
            "stylesheet": STYLESHEET_PATH,
        }),
    )
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;
    use crate::{
        api::{Acknowledgment, Severity, Sla},
        core::status_page::fixtures::{self as fx, t},
    };

    fn open(uid: &str, severity: Severity, respond_by: i64) -> Incident {
        let mut i = fx::incident(uid, None, &[]);
        i.metadata.name = Some(uid.into());
        i.spec.severity = severity;
        let status = i.status.get_or_insert_default();
        status.phase = Some(Phase::Detected);
        status.sla = Some(Sla {
            respond_by: Time(t(respond_by)),
            breached: false,
            business_hours: None,
            postmortem_due_by: None,
        });
        i
    }

    #[test]
    fn the_most_urgent_come_first_and_closed_ones_not_at_all() {
        let mut resolved = open("done", Severity::P0, 0);
        resolved.status.as_mut().unwrap().phase = Some(Phase::Resolved);
        let mut acked = open("acked", Severity::P1, 1);
        acked.spec.acknowledgment = Some(Acknowledgment {
            by: "ana".into(),
            note: None,
        });
        let all = [
            open("p2", Severity::P2, 5),
            open("p1-later", Severity::P1, 50),
            open("p1-sooner", Severity::P1, 10),
            resolved,
            acked,
        ];
        let rows = rows(&all, t(20));
        let names: Vec<_> = rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["p1-sooner", "p1-later", "p2", "acked"]);
        assert_eq!(rows[0].respond_in, Some(-600));
        assert_eq!(rows[3].respond_in, None);
        let html = page("shop", &rows, "/board/incidents/", t(20), 30).unwrap();
        assert!(html.contains("overdue by 10m"));
        assert!(html.contains("incidents&#x2f;p1-sooner\">"), "{html}");
        // The board is internal: the internal title shows.
        assert!(html.contains("internal-title"));
    }
}
