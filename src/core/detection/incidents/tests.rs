//! Unit tests of the detector's incident decisions (core layer, tests).
use std::collections::{BTreeMap, BTreeSet};

use jiff::SignedDuration;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};
use serde_json::json;

use super::*;
use crate::api::metadata::PLUGIN_MANAGER;
use crate::core::detection::group::signals;

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
    let mut person = (*detected_incident("i", 0, json!({}), json!({ "severity": "P3" }))).clone();
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
fn a_firing_alert_keeps_the_detected_incident_open_after_its_pods_recover() {
    let after = SignedDuration::from_mins(5);
    let alert = |state: &str| {
        json!({ "alerts": [{ "fingerprint": "f1", "name": "HighErrorRate", "state": state,
                             "startsAt": "2026-11-30T09:00:00Z" }] })
    };
    let alerting = detected_incident("i", 0, json!({}), alert("firing"));
    assert_eq!(
        auto_resolve(&alerting, &[], at(10), after),
        AutoResolve::Leave
    );
    let quiet = detected_incident("i", 0, json!({}), alert("resolved"));
    assert_eq!(
        auto_resolve(&quiet, &[], at(10), after),
        AutoResolve::MarkCleared
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

#[test]
fn an_update_of_the_same_kinds_waits_out_the_interval_and_a_new_kind_does_not() {
    let p = problem(web(), Severity::P2);
    // Written at 0 with one crashing pod; at 3 s a second pod joins.
    let incident = detected_incident(
        "i",
        0,
        json!({}),
        json!({ "title": p.title, "signals": [{ "type": "CrashLoopBackOff",
            "firstSeen": at(0).to_string(), "lastSeen": at(0).to_string(), "count": 1,
            "pods": ["web-1"] }] }),
    );
    let mut two = p.clone();
    two.signals.insert(
        SignalKind::CrashLoopBackOff,
        BTreeSet::from(["web-1".to_owned(), "web-2".to_owned()]),
    );
    let due = |problem: &Problem, severity, now| {
        let signals = signals(&incident.spec.signals, problem, now);
        update_due(&incident, problem, severity, &signals, now)
    };
    assert_eq!(due(&p, Severity::P2, at(3)), Update::Unchanged);
    assert_eq!(due(&two, Severity::P2, at(3)), Update::At(at(10)));
    assert_eq!(
        due(&two, Severity::P1, at(3)),
        Update::At(at(10)),
        "a severity change of the same trouble waits too"
    );
    assert_eq!(due(&two, Severity::P2, at(10)), Update::Now);
    let mut oom = p.clone();
    oom.signals
        .insert(SignalKind::OomKilled, BTreeSet::from(["web-2".to_owned()]));
    assert_eq!(due(&oom, Severity::P2, at(3)), Update::Now, "a new kind");

    // The update stamps every current kind, so the next one counts its interval from it.
    let mut written = signals(&incident.spec.signals, &two, at(12));
    written[0].count = 1;
    written[0].last_seen = whole_second(at(0));
    seen_at(&mut written, &two, at(12));
    assert_eq!(written[0].last_seen, whole_second(at(12)));
}
