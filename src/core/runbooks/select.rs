//! Chooses the runbook an incident follows (core layer): an explicit `spec.runbookRef` wins;
//! otherwise the matching runbook with the most specific criteria, ties broken by name. Runbooks
//! that are not usable (see `validate`) are never chosen.

use std::collections::BTreeMap;

use kube::{
    ResourceExt,
    core::labels::{Selector, SelectorExt},
};

use super::validate::validate;
use crate::api::{AlertState, Incident, Runbook};

/// The outcome of choosing.
#[derive(Clone, Debug)]
pub enum Selection<'a> {
    /// Follow this runbook; `reason` says why (for the timeline).
    Chosen {
        runbook: &'a Runbook,
        reason: String,
    },
    /// The incident names a runbook that does not exist (`found` false) or is not usable.
    Unusable {
        name: String,
        found: bool,
        reason: String,
    },
    /// Nothing applies.
    None,
}

/// Whether an incident without a run may start one: a resolved incident starts none (a runbook
/// that appears after the fact must not act on it).
pub fn starts_a_run(incident: &Incident) -> bool {
    incident.spec.resolution.is_none()
}

/// Picks the runbook for `incident` among `runbooks` (its namespace's), given the labels of its
/// affected workload when known.
pub fn choose<'a>(
    incident: &Incident,
    runbooks: &'a [Runbook],
    workload_labels: Option<&BTreeMap<String, String>>,
) -> Selection<'a> {
    if let Some(reference) = &incident.spec.runbook_ref {
        return match runbooks.iter().find(|r| r.name_any() == reference.name) {
            None => Selection::Unusable {
                name: reference.name.clone(),
                found: false,
                reason: format!("runbook {} not found", reference.name),
            },
            Some(runbook) => match validate(&runbook.spec) {
                Ok(()) => Selection::Chosen {
                    runbook,
                    reason: "named by the incident (spec.runbookRef)".into(),
                },
                Err((_, message)) => Selection::Unusable {
                    name: reference.name.clone(),
                    found: true,
                    reason: format!("runbook {} is not usable: {message}", reference.name),
                },
            },
        };
    }
    let mut matching: Vec<(usize, &Runbook)> = runbooks
        .iter()
        .filter(|r| validate(&r.spec).is_ok())
        .filter_map(|r| Some((specificity(r, incident, workload_labels)?, r)))
        .collect();
    // Most specific first, then by name.
    matching.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then_with(|| a.1.name_any().cmp(&b.1.name_any()))
    });
    let Some((score, runbook)) = matching.first() else {
        return Selection::None;
    };
    let others: Vec<String> = matching[1..].iter().map(|(_, r)| r.name_any()).collect();
    let mut reason = match score {
        1 => "matched with 1 criterion".to_owned(),
        n => format!("matched with {n} criteria"),
    };
    if !others.is_empty() {
        reason.push_str(&format!(
            "; also matched, less specific or later by name: {}",
            others.join(", ")
        ));
    }
    Selection::Chosen { runbook, reason }
}

/// How specific a runbook's match is for this incident (criteria given, selector terms counted),
/// or None when it does not match.
fn specificity(
    runbook: &Runbook,
    incident: &Incident,
    workload_labels: Option<&BTreeMap<String, String>>,
) -> Option<usize> {
    let criteria = &runbook.spec.match_;
    let mut score = 0;
    if !criteria.signals.is_empty() {
        let spec = &incident.spec;
        // A firing alert's name is a signal too: runbooks match alert incidents the same way.
        let carried = spec
            .signals
            .iter()
            .any(|s| criteria.signals.contains(&s.type_))
            || spec
                .alerts
                .iter()
                .any(|a| a.state == AlertState::Firing && criteria.signals.contains(&a.name));
        if !carried {
            return None;
        }
        score += 1;
    }
    if !criteria.severities.is_empty() {
        if !criteria.severities.contains(&incident.spec.severity) {
            return None;
        }
        score += 1;
    }
    if let Some(selector) = &criteria.workload_selector {
        let selector = Selector::try_from(selector.clone()).ok()?;
        if !selector.matches(workload_labels?) {
            return None;
        }
        score += 1 + selector.into_iter().count();
    }
    if let Some(selector) = &criteria.incident_selector {
        let selector = Selector::try_from(selector.clone()).ok()?;
        if !selector.matches(
            incident
                .metadata
                .labels
                .as_ref()
                .unwrap_or(&BTreeMap::new()),
        ) {
            return None;
        }
        score += 1 + selector.into_iter().count();
    }
    Some(score)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn runbook(name: &str, criteria: serde_json::Value) -> Runbook {
        serde_json::from_value(json!({
            "apiVersion": "incident.dev/v1alpha1", "kind": "Runbook",
            "metadata": { "name": name, "generation": 1 },
            "spec": { "match": criteria,
                      "steps": [{ "name": "page", "escalate": { "message": "call the owner" } }] },
        }))
        .expect("runbook")
    }

    fn incident(signal: &str, severity: &str, runbook_ref: Option<&str>) -> Incident {
        let mut spec = json!({
            "title": "t", "severity": severity,
            "signals": [{ "type": signal, "firstSeen": "2026-11-22T10:00:00Z",
                          "lastSeen": "2026-11-22T10:00:00Z", "count": 1 }],
        });
        if let Some(name) = runbook_ref {
            spec["runbookRef"] = json!({ "name": name });
        }
        serde_json::from_value(json!({
            "apiVersion": "incident.dev/v1alpha1", "kind": "Incident",
            "metadata": { "name": "i", "labels": { "team": "shop" } },
            "spec": spec,
        }))
        .expect("incident")
    }

    fn chosen(selection: Selection<'_>) -> String {
        match selection {
            Selection::Chosen { runbook, .. } => runbook.name_any(),
            other => panic!("nothing chosen: {other:?}"),
        }
    }

    #[test]
    fn a_resolved_incident_starts_no_run() {
        let mut open = incident("CrashLoopBackOff", "P2", None);
        assert!(starts_a_run(&open));
        open.spec.resolution = Some(crate::api::Resolution {
            root_cause: None,
            summary: "fixed".into(),
            by: "ana".into(),
        });
        assert!(!starts_a_run(&open));
    }

    #[test]
    fn the_most_specific_match_wins_then_the_name() {
        let books = [
            runbook("b-any-crash", json!({ "signals": ["CrashLoopBackOff"] })),
            runbook("a-any-crash", json!({ "signals": ["CrashLoopBackOff"] })),
            runbook(
                "z-payments-crash",
                json!({ "signals": ["CrashLoopBackOff"],
                        "workloadSelector": { "matchLabels": { "app": "payments" } } }),
            ),
            runbook("pulls", json!({ "signals": ["ImagePullBackOff"] })),
        ];
        let crash = incident("CrashLoopBackOff", "P2", None);
        let payments = BTreeMap::from([("app".to_owned(), "payments".to_owned())]);
        let web = BTreeMap::from([("app".to_owned(), "web".to_owned())]);
        assert_eq!(
            chosen(choose(&crash, &books, Some(&payments))),
            "z-payments-crash"
        );
        let Selection::Chosen { reason, .. } = choose(&crash, &books, Some(&web)) else {
            panic!("a match");
        };
        assert!(reason.contains("also matched"), "{reason}");
        assert_eq!(chosen(choose(&crash, &books, Some(&web))), "a-any-crash");
        assert_eq!(chosen(choose(&crash, &books, None)), "a-any-crash");
        assert!(matches!(
            choose(&incident("NodeNotReady", "P2", None), &books, None),
            Selection::None
        ));
    }

    #[test]
    fn severities_and_incident_labels_narrow_the_match() {
        let books = [
            runbook("urgent", json!({ "severities": ["P0", "P1"] })),
            runbook(
                "other-team",
                json!({ "incidentSelector": { "matchLabels": { "team": "ads" } } }),
            ),
        ];
        assert!(matches!(
            choose(&incident("X", "P3", None), &books, None),
            Selection::None
        ));
        assert_eq!(
            chosen(choose(&incident("X", "P1", None), &books, None)),
            "urgent"
        );
    }

    #[test]
    fn a_firing_alerts_name_matches_like_a_signal_and_a_resolved_one_does_not() {
        let books = [runbook("errors", json!({ "signals": ["HighErrorRate"] }))];
        let mut alerting = incident("X", "P1", None);
        alerting.spec.signals.clear();
        alerting.spec.alerts = serde_json::from_value(json!([{
            "fingerprint": "f1", "name": "HighErrorRate", "state": "firing",
            "startsAt": "2026-11-30T09:00:00Z" }]))
        .expect("alerts");
        assert_eq!(chosen(choose(&alerting, &books, None)), "errors");
        alerting.spec.alerts[0].state = AlertState::Resolved;
        assert!(matches!(choose(&alerting, &books, None), Selection::None));
    }

    #[test]
    fn an_explicit_reference_wins_and_a_missing_one_is_reported() {
        let books = [
            runbook("specific", json!({ "signals": ["CrashLoopBackOff"] })),
            runbook("by-hand", json!({ "signals": ["Other"] })),
        ];
        assert_eq!(
            chosen(choose(
                &incident("CrashLoopBackOff", "P2", Some("by-hand")),
                &books,
                None
            )),
            "by-hand"
        );
        assert!(matches!(
            choose(
                &incident("CrashLoopBackOff", "P2", Some("gone")),
                &books,
                None
            ),
            Selection::Unusable { .. }
        ));
    }
}
