use proptest::prelude::*;

use super::*;
use crate::{
    api::{Impact, PublicStatus},
    core::status_page::fixtures::{self as fx, t},
};

fn snapshot(at: i64) -> Snapshot {
    Snapshot::new(&fx::page(), &fx::incidents(), t(at))
}

/// Every public rendering, for the secret checks.
pub(crate) fn all_public(s: &Snapshot) -> Vec<String> {
    vec![
        summary(s).to_string(),
        status_only(s).to_string(),
        components_only(s).to_string(),
        incidents(s).to_string(),
        unresolved(s).to_string(),
        scheduled_maintenances(s, None).to_string(),
    ]
}

#[test]
fn summary_has_statuspages_fields_and_values() {
    let s = snapshot(30);
    let v = summary(&s);
    assert_eq!(v["status"]["indicator"], "major");
    assert_eq!(v["status"]["description"], "Partial System Outage");
    assert_eq!(v["page"]["time_zone"], "Etc/UTC");
    assert_eq!(v["page"]["name"], "Shop status");
    let open = v["incidents"].as_array().unwrap();
    assert_eq!(open.len(), 1);
    let incident = &open[0];
    assert_eq!(incident["name"], "Checkout is slow");
    assert_eq!(incident["status"], "identified");
    assert_eq!(incident["impact"], "major");
    assert_eq!(incident["resolved_at"], Value::Null);
    let updates = incident["incident_updates"].as_array().unwrap();
    assert_eq!(updates.len(), 2);
    assert_eq!(updates[0]["status"], "identified");
    assert_eq!(updates[0]["body"], "A fix is being rolled out");
    assert_eq!(updates[0]["incident_id"], incident["id"]);
    assert_eq!(incident["components"][0]["name"], "Checkout");
    assert_eq!(incident["components"][0]["status"], "partial_outage");
    let components = v["components"].as_array().unwrap();
    // Group "Shop" (checkout, search), then checkout, search, then api.
    let names: Vec<_> = components.iter().map(|c| c["name"].clone()).collect();
    assert_eq!(names, ["Shop", "Checkout", "Search", "Public API"]);
    assert_eq!(components[0]["group"], true);
    assert_eq!(components[0]["status"], "partial_outage");
    assert_eq!(components[1]["group_id"], components[0]["id"]);
    assert_eq!(components[0]["components"].as_array().unwrap().len(), 2);
    let maintenance = &v["scheduled_maintenances"][0];
    assert_eq!(maintenance["status"], "scheduled");
    assert_eq!(maintenance["impact"], "maintenance");
    assert!(
        maintenance["scheduled_for"]
            .as_str()
            .unwrap()
            .ends_with(".000Z")
    );
}

#[test]
fn history_lists_resolved_incidents_and_unresolved_only_open_ones() {
    let s = snapshot(30);
    let all = incidents(&s);
    let listed = all["incidents"].as_array().unwrap();
    assert_eq!(listed.len(), 2);
    let past = &listed[1];
    assert_eq!(past["status"], "resolved");
    assert!(past["resolved_at"].is_string());
    assert_eq!(unresolved(&s)["incidents"].as_array().unwrap().len(), 1);
    let m = scheduled_maintenances(&s, Some(MaintenanceStatus::InProgress));
    assert!(m["scheduled_maintenances"].as_array().unwrap().is_empty());
}

#[test]
fn internal_words_and_unpublished_incidents_never_show() {
    for at in [30, 90, 200] {
        for text in all_public(&snapshot(at)) {
            for secret in fx::SECRETS {
                assert!(!text.contains(secret), "{secret} in {text}");
            }
        }
    }
}

fn enum_values(v: &Value, key: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                if k == key
                    && let Some(s) = child.as_str()
                {
                    out.push(s.to_owned());
                }
                enum_values(child, key, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| enum_values(i, key, out)),
        _ => {}
    }
}

proptest! {
    /// Whatever is published, every enum field holds one of Statuspage's values.
    #[test]
    fn enum_values_are_statuspages(
        published in proptest::collection::vec((0usize..4, 0usize..4, any::<bool>()), 0..6),
        at in 0i64..200,
    ) {
        let all: Vec<_> = published
            .iter()
            .enumerate()
            .map(|(n, &(impact, status, checkout))| {
                let components: &[&str] = if checkout { &["checkout"] } else { &["api"] };
                fx::incident(
                    &format!("u{n}"),
                    Some(("Something", Impact::ALL[impact], components)),
                    &[(PublicStatus::ALL[status], "words", 1)],
                )
            })
            .collect();
        let s = Snapshot::new(&fx::page(), &all, t(at));
        let v = summary(&s);
        let mut values = Vec::new();
        enum_values(&v, "indicator", &mut values);
        prop_assert!(values.iter().all(|x| ["none", "minor", "major", "critical"].contains(&x.as_str())));
        let mut statuses = Vec::new();
        enum_values(&incidents(&s), "status", &mut statuses);
        enum_values(&v, "status", &mut statuses);
        let allowed = [
            "investigating", "identified", "monitoring", "resolved", "postmortem",
            "scheduled", "in_progress", "verifying", "completed",
            "operational", "degraded_performance", "partial_outage", "major_outage",
            "under_maintenance",
        ];
        prop_assert!(statuses.iter().all(|x| allowed.contains(&x.as_str())), "{statuses:?}");
        let mut impacts = Vec::new();
        enum_values(&incidents(&s), "impact", &mut impacts);
        prop_assert!(impacts.iter().all(|x| ["none", "minor", "major", "critical", "maintenance"].contains(&x.as_str())));
    }
}
