//! What the detector decides about incidents (core layer): which incident a problem belongs to,
//! what it writes there and which severity stays, how many new incidents the storm guard admits,
//! and when an incident whose problem went away is resolved.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use serde_json::{Value, json};

use super::{
    classify::SignalKind,
    group::{Problem, Workload},
};
use crate::api::{
    Incident, Severity, Signal,
    metadata::{
        ACTOR_ANNOTATION, AUTO_RESOLVE_LABEL, CLEARED_ANNOTATION, DETECTOR_MANAGER,
        FINGERPRINT_LABEL, OPERATOR_ACTOR, PROBLEM_LABEL, SEEN_ANNOTATION,
        SEVERITY_OVERRIDE_ANNOTATION, SOURCE_DETECTOR, SOURCE_LABEL, severity_set_by_others,
    },
};

/// Whether the detector opened this incident.
pub fn detected(incident: &Incident) -> bool {
    incident.labels().get(SOURCE_LABEL).map(String::as_str) == Some(SOURCE_DETECTOR)
}

/// Whether a person's incident opted in to being resolved like a detected one.
pub fn opted_in(incident: &Incident) -> bool {
    !detected(incident)
        && incident
            .labels()
            .get(AUTO_RESOLVE_LABEL)
            .map(String::as_str)
            == Some("true")
}

/// Whether a problem is about one of the objects a (person's) incident names.
pub fn concerns(incident: &Incident, problem: &Problem) -> bool {
    let namespace = incident.namespace().unwrap_or_default();
    incident.spec.affected.iter().any(|a| {
        format!("{:?}", a.kind) == problem.workload.kind
            && a.name == problem.workload.name
            && (problem.workload.kind == "Node"
                || a.namespace.as_deref().unwrap_or(&namespace) == problem.workload.namespace)
    })
}

/// Whether the incident is the detector's incident for this workload.
fn about(incident: &Incident, workload: &Workload) -> bool {
    incident.namespace().as_deref() == Some(workload.namespace.as_str())
        && incident.labels().get(FINGERPRINT_LABEL) == Some(&workload.fingerprint())
}

/// Whether the workload's open incident already lists the signal (it then skips its `for`).
pub fn lists_signal(incidents: &[Arc<Incident>], workload: &Workload, kind: SignalKind) -> bool {
    incidents.iter().any(|i| {
        i.spec.resolution.is_none()
            && about(i, workload)
            && i.spec.signals.iter().any(|s| s.type_ == kind.as_str())
    })
}

/// Which incident a problem belongs to.
pub enum Target<'a> {
    Existing(&'a Incident),
    /// A new incident of this name.
    New(String),
}

/// The problem's latest incident while it is open or resolved less than `cooldown` ago; otherwise a
/// new one, named after the problem and how many incidents it already had.
pub fn target<'a>(
    incidents: &'a [Arc<Incident>],
    problem: &Problem,
    now: Timestamp,
    cooldown: SignedDuration,
) -> Target<'a> {
    let mut history: Vec<&Incident> = incidents
        .iter()
        .map(|i| i.as_ref())
        .filter(|i| about(i, &problem.workload))
        .collect();
    history.sort_by_key(|i| {
        (
            i.metadata.creation_timestamp.as_ref().map(|t| t.0),
            i.name_any(),
        )
    });
    let base = problem.workload.incident_name();
    let Some(latest) = history.last() else {
        return Target::New(base);
    };
    if latest.spec.resolution.is_none() {
        return Target::Existing(latest);
    }
    let resolved_at = latest
        .status
        .as_ref()
        .and_then(|s| s.metrics.as_ref())
        .and_then(|m| m.resolved_at.as_ref())
        .map_or(now, |t| t.0);
    if now.duration_since(resolved_at) < cooldown {
        Target::Existing(latest)
    } else {
        Target::New(format!("{base}-{}", history.len() + 1))
    }
}

/// How many new incidents the storm guard still admits this minute: `limit` less the incidents
/// the detector opened in the last minute (storm incidents do not count).
pub fn storm_budget(incidents: &[Arc<Incident>], limit: usize, now: Timestamp) -> usize {
    let recent = incidents
        .iter()
        .filter(|i| detected(i))
        .filter(|i| i.labels().get(PROBLEM_LABEL).map(String::as_str) != Some("storm"))
        .filter(|i| {
            i.metadata
                .creation_timestamp
                .as_ref()
                .is_some_and(|t| now.duration_since(t.0) < SignedDuration::from_secs(60))
        })
        .count();
    limit.saturating_sub(recent)
}

/// The severity the problem's incident gets: one set by a runbook or a person stays; otherwise the
/// detector's judgement stands.
pub fn kept_severity(existing: Option<&Incident>, problem: &Problem) -> Severity {
    existing
        .filter(|i| {
            i.annotations().contains_key(SEVERITY_OVERRIDE_ANNOTATION)
                || severity_set_by_others(i.metadata.managed_fields.as_deref(), DETECTOR_MANAGER)
        })
        .map_or(problem.severity, |i| i.spec.severity)
}

/// What the detector undoes on its incident when the problem is back (or never went): its own
/// clearing note, and its own resolution (`Some(true)`), never a person's. None: nothing to undo.
pub fn undo_clearing(incident: &Incident) -> Option<bool> {
    let resolved_by_us = incident
        .spec
        .resolution
        .as_ref()
        .is_some_and(|r| r.by == OPERATOR_ACTOR);
    (resolved_by_us || incident.annotations().contains_key(CLEARED_ANNOTATION))
        .then_some(resolved_by_us)
}

/// Whether the incident already shows what the detector would write (then nothing is written).
pub fn unchanged(
    incident: &Incident,
    problem: &Problem,
    severity: Severity,
    signals: &[Signal],
) -> bool {
    incident.spec.title == problem.title
        && incident.spec.severity == severity
        && incident.spec.signals == signals
}

/// What the detector server-side applies for a problem: labels, title, severity, description, the
/// affected objects and the signals. It claims authorship (the actor annotation) only of a
/// severity it sets: the annotation is one slot, and taking it on every update would attribute a
/// person's concurrent change to the operator.
pub fn incident_body(
    problem: &Problem,
    name: &str,
    existing: Option<&Incident>,
    severity: Severity,
    signals: &[Signal],
) -> Value {
    let workload = &problem.workload;
    let mut body = json!({
        "metadata": {
            "name": name,
            "labels": {
                SOURCE_LABEL: SOURCE_DETECTOR,
                FINGERPRINT_LABEL: workload.fingerprint(),
                PROBLEM_LABEL: match workload.kind.as_str() {
                    "Node" => "node",
                    "Storm" => "storm",
                    _ => "workload",
                },
            },
        },
        "spec": {
            "title": problem.title,
            "severity": severity,
            "description": format!(
                "Detected by incident-operator from the health of {}/{}. {}",
                workload.kind.to_lowercase(),
                workload.name,
                problem.detail.clone().unwrap_or_default()
            ),
            "affected": affected(problem),
            "signals": signals,
        },
    });
    if existing.is_none_or(|i| i.spec.severity != severity) {
        body["metadata"]["annotations"] = json!({ ACTOR_ANNOTATION: OPERATOR_ACTOR });
    }
    body
}

/// The objects an incident names: the workload or node, or for a storm the held-back workloads.
fn affected(problem: &Problem) -> Value {
    let workload = &problem.workload;
    if workload.kind != "Storm" {
        return json!([{ "kind": workload.kind, "name": workload.name }]);
    }
    let held = problem
        .signals
        .values()
        .flatten()
        .take(20)
        .filter_map(|name| {
            let mut parts = name.splitn(3, '/');
            let (namespace, kind, name) = (parts.next()?, parts.next()?, parts.next()?);
            // Nodes have no namespace (the schema refuses one); workloads keep theirs.
            Some(match kind {
                "node" => json!({ "kind": "Node", "name": name }),
                "statefulset" => {
                    json!({ "kind": "StatefulSet", "name": name, "namespace": namespace })
                }
                "daemonset" => json!({ "kind": "DaemonSet", "name": name, "namespace": namespace }),
                _ => json!({ "kind": "Deployment", "name": name, "namespace": namespace }),
            })
        });
    Value::Array(held.collect())
}

/// What happens to an incident in a pass, as far as auto-resolution goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AutoResolve {
    /// Not the detector's business, or its problem is still there.
    Leave,
    /// A person's opted-in incident whose objects are (again) in trouble: note since when, and
    /// drop an earlier clearing note.
    MarkSeen,
    /// The problem is gone: note since when.
    MarkCleared,
    /// Clear for `resolve_after`: resolve it.
    Resolve,
    /// Clear, not yet long enough: look again then.
    WaitUntil(Timestamp),
}

/// The auto-resolve verdict for one incident, given the problems of this pass. A person's
/// incident (opted in) resolves only after its objects were seen in trouble, then clear.
pub fn auto_resolve(
    incident: &Incident,
    problems: &[Problem],
    now: Timestamp,
    resolve_after: SignedDuration,
) -> AutoResolve {
    let opted_in = opted_in(incident);
    if incident.spec.resolution.is_some() || !(detected(incident) || opted_in) {
        return AutoResolve::Leave;
    }
    let active = if opted_in {
        problems.iter().any(|p| concerns(incident, p))
    } else {
        problems.iter().any(|p| about(incident, &p.workload))
    };
    if opted_in {
        let seen = incident.annotations().contains_key(SEEN_ANNOTATION);
        let cleared = incident.annotations().contains_key(CLEARED_ANNOTATION);
        if active && (!seen || cleared) {
            return AutoResolve::MarkSeen;
        }
        if active || !seen {
            return AutoResolve::Leave;
        }
    } else if active {
        return AutoResolve::Leave;
    }
    let cleared = incident
        .annotations()
        .get(CLEARED_ANNOTATION)
        .and_then(|t| t.parse::<Timestamp>().ok());
    match cleared {
        None => AutoResolve::MarkCleared,
        Some(since) if now >= since + resolve_after => AutoResolve::Resolve,
        Some(since) => AutoResolve::WaitUntil(since + resolve_after),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use jiff::SignedDuration;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};
    use serde_json::json;

    use super::*;
    use crate::api::metadata::PLUGIN_MANAGER;

    const T0: i64 = 1_800_000_000;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(T0 + seconds).expect("valid timestamp")
    }

    fn web() -> Workload {
        Workload {
            namespace: "shop".into(),
            kind: "Deployment".into(),
            name: "web".into(),
        }
    }

    fn problem(workload: Workload, severity: Severity) -> Problem {
        Problem {
            workload,
            severity,
            title: "deployment/web: CrashLoopBackOff on 1 pod".into(),
            signals: BTreeMap::from([(
                SignalKind::CrashLoopBackOff,
                BTreeSet::from(["web-1".to_owned()]),
            )]),
            replicas: Some((2, 1)),
            detail: None,
        }
    }

    /// The detector's incident for `web`, created at `created`, with extra metadata and spec.
    fn detected_incident(name: &str, created: i64, metadata: Value, spec: Value) -> Arc<Incident> {
        let mut meta = json!({ "name": name, "namespace": "shop",
            "creationTimestamp": at(created).to_string(),
            "labels": { SOURCE_LABEL: SOURCE_DETECTOR, FINGERPRINT_LABEL: web().fingerprint() } });
        merge(&mut meta, metadata);
        let mut body = json!({ "title": "web", "severity": "P2" });
        merge(&mut body, spec);
        Arc::new(
            serde_json::from_value(json!({
                "apiVersion": "incident.dev/v1alpha1", "kind": "Incident",
                "metadata": meta, "spec": body,
            }))
            .expect("an Incident"),
        )
    }

    fn merge(into: &mut Value, from: Value) {
        if let (Some(into), Value::Object(from)) = (into.as_object_mut(), from) {
            for (k, v) in from {
                match (into.get_mut(&k), v) {
                    (Some(existing @ Value::Object(_)), v @ Value::Object(_)) => merge(existing, v),
                    (_, v) => {
                        into.insert(k, v);
                    }
                }
            }
        }
    }

    fn resolved_by(by: &str) -> Value {
        json!({ "resolution": { "summary": "gone", "by": by } })
    }

    #[test]
    fn a_problem_goes_to_its_open_incident_else_a_numbered_new_one_after_the_cooldown() {
        let cooldown = SignedDuration::from_mins(10);
        let p = problem(web(), Severity::P2);
        assert!(
            matches!(target(&[], &p, at(0), cooldown), Target::New(n) if n == web().incident_name())
        );
        let open = [detected_incident("first", 0, json!({}), json!({}))];
        assert!(
            matches!(target(&open, &p, at(60), cooldown), Target::Existing(i) if i.name_any() == "first")
        );
        let mut resolved = detected_incident("first", 0, json!({}), resolved_by(OPERATOR_ACTOR));
        Arc::make_mut(&mut resolved).status = Some(
            serde_json::from_value(json!({ "metrics": { "resolvedAt": at(100).to_string() } }))
                .expect("status"),
        );
        let history = [resolved];
        assert!(
            matches!(
                target(&history, &p, at(100 + 599), cooldown),
                Target::Existing(_)
            ),
            "within the cooldown the incident reopens"
        );
        match target(&history, &p, at(100 + 600), cooldown) {
            Target::New(name) => assert_eq!(name, format!("{}-2", web().incident_name())),
            Target::Existing(_) => panic!("after the cooldown a new incident opens"),
        }
        let elsewhere = Workload {
            namespace: "ads".into(),
            ..web()
        };
        assert!(matches!(
            target(&open, &problem(elsewhere, Severity::P2), at(60), cooldown),
            Target::New(_)
        ));
    }

    #[test]
    fn the_storm_budget_counts_the_detectors_incidents_of_the_last_minute_only() {
        let incidents = [
            detected_incident("a", 0, json!({}), json!({})),
            detected_incident("b", 30, json!({}), json!({})),
            detected_incident(
                "storm",
                50,
                json!({ "labels": { PROBLEM_LABEL: "storm" } }),
                json!({}),
            ),
            detected_incident("old", -61, json!({}), json!({})),
            detected_incident("person", 40, json!({}), json!({})),
        ];
        // A person's incident carries no source label.
        let incidents: Vec<Arc<Incident>> = incidents
            .into_iter()
            .map(|mut i| {
                if i.name_any() == "person" {
                    Arc::make_mut(&mut i).metadata.labels = None;
                }
                i
            })
            .collect();
        assert_eq!(storm_budget(&incidents, 20, at(59)), 18);
        assert_eq!(storm_budget(&incidents, 1, at(59)), 0, "never below zero");
        assert_eq!(storm_budget(&incidents, 20, at(200)), 20, "a minute later");
    }

    #[test]
    fn a_severity_someone_else_set_is_kept_else_the_detector_judges() {
        let p = problem(web(), Severity::P1);
        assert_eq!(kept_severity(None, &p), Severity::P1);
        let own = detected_incident("i", 0, json!({}), json!({}));
        assert_eq!(kept_severity(Some(&own), &p), Severity::P1);
        let runbook = detected_incident(
            "i",
            0,
            json!({ "annotations": { SEVERITY_OVERRIDE_ANNOTATION: "runbook/rb" } }),
            json!({ "severity": "P0" }),
        );
        assert_eq!(kept_severity(Some(&runbook), &p), Severity::P0);
        let mut person =
            (*detected_incident("i", 0, json!({}), json!({ "severity": "P3" }))).clone();
        person.metadata.managed_fields = Some(vec![ManagedFieldsEntry {
            manager: Some(PLUGIN_MANAGER.into()),
            fields_v1: Some(FieldsV1(json!({ "f:spec": { "f:severity": {} } }))),
            ..ManagedFieldsEntry::default()
        }]);
        assert_eq!(kept_severity(Some(&person), &p), Severity::P3);
    }

    #[test]
    fn only_the_detectors_own_clearing_and_resolution_are_undone() {
        assert_eq!(
            undo_clearing(&detected_incident("i", 0, json!({}), json!({}))),
            None
        );
        let cleared = detected_incident(
            "i",
            0,
            json!({ "annotations": { CLEARED_ANNOTATION: at(5).to_string() } }),
            json!({}),
        );
        assert_eq!(undo_clearing(&cleared), Some(false));
        let by_us = detected_incident("i", 0, json!({}), resolved_by(OPERATOR_ACTOR));
        assert_eq!(undo_clearing(&by_us), Some(true));
        let by_person = detected_incident("i", 0, json!({}), resolved_by("ana"));
        assert_eq!(
            undo_clearing(&by_person),
            None,
            "a person's resolution stays"
        );
    }

    #[test]
    fn the_body_claims_the_actor_only_for_a_severity_it_sets() {
        let p = problem(web(), Severity::P2);
        let signals = Vec::new();
        let new = incident_body(&p, "n", None, Severity::P2, &signals);
        assert_eq!(
            new["metadata"]["annotations"][ACTOR_ANNOTATION],
            OPERATOR_ACTOR
        );
        assert_eq!(new["metadata"]["labels"][PROBLEM_LABEL], "workload");
        assert_eq!(
            new["spec"]["affected"],
            json!([{ "kind": "Deployment", "name": "web" }])
        );
        let same = detected_incident("n", 0, json!({}), json!({}));
        let update = incident_body(&p, "n", Some(&same), Severity::P2, &signals);
        assert!(update["metadata"].get("annotations").is_none());
        assert!(
            !unchanged(&same, &p, Severity::P2, &signals),
            "the title differs"
        );
    }

    #[test]
    fn a_detected_incident_is_cleared_then_resolved_after_the_wait() {
        let after = SignedDuration::from_mins(5);
        let p = problem(web(), Severity::P2);
        let open = detected_incident("i", 0, json!({}), json!({}));
        assert_eq!(
            auto_resolve(&open, std::slice::from_ref(&p), at(10), after),
            AutoResolve::Leave
        );
        assert_eq!(
            auto_resolve(&open, &[], at(10), after),
            AutoResolve::MarkCleared
        );
        let cleared = detected_incident(
            "i",
            0,
            json!({ "annotations": { CLEARED_ANNOTATION: at(10).to_string() } }),
            json!({}),
        );
        assert_eq!(
            auto_resolve(&cleared, &[], at(100), after),
            AutoResolve::WaitUntil(at(310))
        );
        assert_eq!(
            auto_resolve(&cleared, &[], at(310), after),
            AutoResolve::Resolve
        );
        let resolved = detected_incident("i", 0, json!({}), resolved_by(OPERATOR_ACTOR));
        assert_eq!(
            auto_resolve(&resolved, &[], at(400), after),
            AutoResolve::Leave
        );
    }

    #[test]
    fn a_persons_incident_resolves_only_when_opted_in_and_after_its_objects_were_in_trouble() {
        let after = SignedDuration::from_mins(5);
        let p = problem(web(), Severity::P2);
        let person = |labels: Value, annotations: Value| {
            let mut i = (*detected_incident(
                "mine",
                0,
                json!({ "annotations": annotations }),
                json!({ "affected": [{ "kind": "Deployment", "name": "web" }] }),
            ))
            .clone();
            i.metadata.labels = serde_json::from_value(labels).expect("labels");
            i
        };
        let plain = person(json!({}), json!({}));
        assert_eq!(auto_resolve(&plain, &[], at(10), after), AutoResolve::Leave);
        let opted = person(json!({ AUTO_RESOLVE_LABEL: "true" }), json!({}));
        assert_eq!(
            auto_resolve(&opted, &[], at(10), after),
            AutoResolve::Leave,
            "never seen"
        );
        assert_eq!(
            auto_resolve(&opted, std::slice::from_ref(&p), at(10), after),
            AutoResolve::MarkSeen
        );
        let seen = person(
            json!({ AUTO_RESOLVE_LABEL: "true" }),
            json!({ SEEN_ANNOTATION: at(10).to_string() }),
        );
        assert_eq!(
            auto_resolve(&seen, std::slice::from_ref(&p), at(20), after),
            AutoResolve::Leave
        );
        assert_eq!(
            auto_resolve(&seen, &[], at(20), after),
            AutoResolve::MarkCleared
        );
        let back = person(
            json!({ AUTO_RESOLVE_LABEL: "true" }),
            json!({ SEEN_ANNOTATION: at(10).to_string(), CLEARED_ANNOTATION: at(20).to_string() }),
        );
        assert_eq!(
            auto_resolve(&back, std::slice::from_ref(&p), at(30), after),
            AutoResolve::MarkSeen,
            "trouble again drops the clearing note"
        );
        assert!(concerns(&back, &p));
        assert!(!detected(&back) && opted_in(&back));
    }

    #[test]
    fn an_open_incident_listing_a_signal_lets_it_skip_its_wait() {
        let listed = detected_incident(
            "i",
            0,
            json!({}),
            json!({ "signals": [{ "type": "OOMKilled", "firstSeen": at(0).to_string(),
                "lastSeen": at(0).to_string(), "count": 1 }] }),
        );
        assert!(lists_signal(
            std::slice::from_ref(&listed),
            &web(),
            SignalKind::OomKilled
        ));
        assert!(!lists_signal(
            std::slice::from_ref(&listed),
            &web(),
            SignalKind::CrashLoopBackOff
        ));
        let resolved = detected_incident("i", 0, json!({}), resolved_by(OPERATOR_ACTOR));
        assert!(!lists_signal(&[resolved], &web(), SignalKind::OomKilled));
    }
}
