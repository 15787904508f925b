//! Unit tests of alerts (core layer, tests): checking Alertmanager's message, grouping, severity,
//! and what a message does to its group's incident — create, repeat (nothing), resolve, reopen.

use serde_json::json;

use super::*;

fn message(status: &str, alerts: serde_json::Value) -> Message {
    serde_json::from_value(json!({
        "receiver": "incident\\.operator",
        "status": status,
        "alerts": alerts,
        "groupLabels": { "alertname": "HighErrorRate" },
        "commonLabels": { "alertname": "HighErrorRate", "namespace": "shop", "severity": "critical" },
        "commonAnnotations": { "summary": "checkout answers 5xx", "description": "12% of requests fail" },
        "externalURL": "http://am.example:9093",
        "version": "4",
        "groupKey": "{}/{team=\"shop\"}:{alertname=\"HighErrorRate\"}",
        "truncatedAlerts": 0,
        "notification_reason": "first notification",
        "routeLabels": {},
    }))
    .expect("a message")
}

fn alert(fingerprint: &str, status: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut alert = json!({
        "status": status,
        "labels": { "alertname": "HighErrorRate", "namespace": "shop", "severity": "critical",
                    "deployment": "checkout" },
        "annotations": { "summary": "checkout answers 5xx", "runbook_url": "https://runbooks/5xx" },
        "startsAt": "2026-11-30T09:00:00.123Z",
        "endsAt": if status == "firing" { "0001-01-01T00:00:00Z" } else { "2026-11-30T09:20:00Z" },
        "generatorURL": "http://prometheus:9090/graph?g0.expr=rate",
        "fingerprint": fingerprint,
    });
    if let (Some(base), Some(extra)) = (alert.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            base.insert(k.clone(), v.clone());
        }
    }
    alert
}

fn now() -> Timestamp {
    "2026-11-30T09:30:00Z".parse().expect("time")
}

/// The incident a Create plan would make, as the API server would return it.
fn created(plan: &Plan, resource_version: &str) -> Incident {
    let Plan::Create { body, .. } = plan else {
        panic!("expected a Create, got {plan:?}");
    };
    let mut body = body.clone();
    body["metadata"]["resourceVersion"] = json!(resource_version);
    body["metadata"]["creationTimestamp"] = json!("2026-11-30T09:01:00Z");
    serde_json::from_value(body).expect("the body is an Incident")
}

/// Applies a merge patch the way the API server would.
fn patched(incident: &Incident, plan: &Plan) -> Incident {
    let Plan::Update { patch, .. } = plan else {
        panic!("expected an Update, got {plan:?}");
    };
    let mut value = serde_json::to_value(incident).expect("json");
    merge_patch(&mut value, patch);
    serde_json::from_value(value).expect("still an Incident")
}

fn merge_patch(target: &mut serde_json::Value, patch: &serde_json::Value) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(target), Some(patch)) => {
            for (k, v) in patch {
                if v.is_null() {
                    target.remove(k);
                } else {
                    merge_patch(target.entry(k.clone()).or_insert(json!({})), v);
                }
            }
        }
        _ => *target = patch.clone(),
    }
}

fn settings() -> AlertSettings {
    AlertSettings {
        default_namespace: "incidents".into(),
        namespaces: ["shop".to_owned()].into(),
        ..AlertSettings::default()
    }
}

#[test]
fn alertmanagers_message_is_read_with_unknown_fields_and_checked() {
    let m = message(
        "firing",
        json!([alert("a1b2c3d4e5f60718", "firing", json!({}))]),
    );
    let heard = check(&m, &settings()).expect("valid");
    let signal = &heard[0].signal;
    assert_eq!(signal.name, "HighErrorRate");
    assert_eq!(signal.state, AlertState::Firing);
    assert_eq!(signal.ends_at, None, "the zero time means still firing");
    assert_eq!(signal.starts_at.0.to_string(), "2026-11-30T09:00:00Z");
    assert_eq!(signal.runbook_url.as_deref(), Some("https://runbooks/5xx"));

    let mut wrong = m.clone();
    wrong.version = "3".into();
    assert!(check(&wrong, &settings()).unwrap_err().contains("version"));
    let bad = message("firing", json!([alert("f", "pending", json!({}))]));
    assert!(
        check(&bad, &settings())
            .unwrap_err()
            .starts_with("alerts[0]: status")
    );
    let bad = message(
        "firing",
        json!([alert("f", "firing", json!({ "startsAt": "soon" }))]),
    );
    assert!(check(&bad, &settings()).unwrap_err().contains("startsAt"));
    let too_many = AlertSettings {
        max_alerts: 1,
        ..settings()
    };
    let two = message(
        "firing",
        json!([
            alert("f1", "firing", json!({})),
            alert("f2", "firing", json!({}))
        ]),
    );
    assert!(check(&two, &too_many).unwrap_err().contains("at most 1"));
}

#[test]
fn a_group_lives_in_its_namespace_when_that_opted_in_else_the_default_one() {
    let m = message("firing", json!([alert("f1", "firing", json!({}))]));
    let g = group(&m, &settings(), None);
    assert_eq!(g.namespace, "shop");
    assert!(
        g.base_name.starts_with("alert-higherrorrate-"),
        "{}",
        g.base_name
    );
    assert_eq!(g, group(&m, &settings(), None), "stable");
    let elsewhere = group(&m, &AlertSettings::default(), None);
    assert_eq!(elsewhere.namespace, "default");
}

#[test]
fn a_firing_group_opens_one_incident_and_a_repeat_writes_nothing() {
    let m = message("firing", json!([alert("f1", "firing", json!({}))]));
    let s = settings();
    let heard = check(&m, &s).expect("valid");
    let g = group(&m, &s, None);
    let plan = plan(&m, &heard, &g, &[], &s, now());
    let Plan::Create { name, body } = &plan else {
        panic!("{plan:?}");
    };
    assert_eq!(name, &g.base_name);
    assert_eq!(body["metadata"]["namespace"], "shop");
    assert_eq!(
        body["metadata"]["labels"][SOURCE_LABEL],
        SOURCE_ALERTMANAGER
    );
    assert_eq!(
        body["metadata"]["labels"][ALERT_GROUP_LABEL],
        g.label.as_str()
    );
    assert_eq!(body["spec"]["title"], "HighErrorRate: checkout answers 5xx");
    assert_eq!(body["spec"]["severity"], "P1", "critical maps to P1");
    let incident = created(&plan, "1");
    assert_eq!(incident.spec.alerts.len(), 1);

    let again = super::plan(&m, &heard, &g, &[incident], &s, now());
    assert_eq!(
        again,
        Plan::Nothing,
        "Alertmanager's resend changes nothing"
    );
}

#[test]
fn severity_comes_from_the_label_map_and_p0_only_when_asked() {
    let s = settings();
    let sev = |extra: serde_json::Value| {
        let m = message("firing", json!([alert("f1", "firing", extra)]));
        let heard = check(&m, &s).expect("valid");
        match plan(&m, &heard, &group(&m, &s, None), &[], &s, now()) {
            Plan::Create { body, .. } => body["spec"]["severity"].clone(),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(sev(json!({})), "P1");
    let labels = |severity: &str| json!({ "labels": { "alertname": "X", "severity": severity } });
    assert_eq!(sev(labels("warning")), "P2");
    assert_eq!(sev(labels("info")), "P3");
    assert_eq!(sev(labels("page-me")), "P2", "unmapped: the default");
    assert_eq!(
        sev(
            json!({ "labels": { "alertname": "X", "severity": "critical", "incident_severity": "P0" } })
        ),
        "P0"
    );
    assert_eq!(
        sev(json!({ "annotations": { "incident_severity": "p3" } })),
        "P3",
        "the annotation counts too"
    );
    let m = message(
        "firing",
        json!([alert(
            "f1",
            "firing",
            json!({ "labels": { "incident_severity": "P9" } })
        )]),
    );
    assert!(check(&m, &s).unwrap_err().contains("P9"));
}

#[test]
fn every_alert_resolved_resolves_the_incident_and_a_new_firing_reopens_it() {
    let s = settings();
    let firing = message(
        "firing",
        json!([
            alert("f1", "firing", json!({})),
            alert("f2", "firing", json!({}))
        ]),
    );
    let g = group(&firing, &s, None);
    let heard = check(&firing, &s).expect("valid");
    let incident = created(&plan(&firing, &heard, &g, &[], &s, now()), "1");

    // One of two resolved: recorded, the incident stays open.
    let partly = message("firing", json!([alert("f1", "resolved", json!({}))]));
    let heard = check(&partly, &s).expect("valid");
    let step = plan(
        &partly,
        &heard,
        &g,
        std::slice::from_ref(&incident),
        &s,
        now(),
    );
    let incident = patched(&incident, &step);
    assert!(incident.spec.resolution.is_none());
    assert_eq!(incident.spec.alerts[0].state, AlertState::Resolved);
    assert!(incident.spec.alerts[0].ends_at.is_some());
    let Plan::Update { patch, .. } = &step else {
        unreachable!()
    };
    assert_eq!(
        patch["metadata"]["resourceVersion"], "1",
        "optimistic concurrency"
    );

    // Both resolved: the incident resolves, by the operator.
    let done = message("resolved", json!([alert("f2", "resolved", json!({}))]));
    let heard = check(&done, &s).expect("valid");
    let mut incident = patched(
        &incident,
        &plan(
            &done,
            &heard,
            &g,
            std::slice::from_ref(&incident),
            &s,
            now(),
        ),
    );
    let resolution = incident.spec.resolution.clone().expect("resolved");
    assert_eq!(resolution.by, OPERATOR_ACTOR);
    assert_eq!(resolution.summary, "Every alert resolved: HighErrorRate");
    assert_eq!(
        plan(
            &done,
            &heard,
            &g,
            std::slice::from_ref(&incident),
            &s,
            now()
        ),
        Plan::Nothing,
        "the resolved resend changes nothing"
    );

    // It fires again five minutes after resolving: the same incident reopens.
    incident.status = Some(
        serde_json::from_value(json!({
        "metrics": { "resolvedAt": "2026-11-30T09:25:00Z" } }))
        .expect("status"),
    );
    let heard = check(&firing, &s).expect("valid");
    let reopened = patched(
        &incident,
        &plan(
            &firing,
            &heard,
            &g,
            std::slice::from_ref(&incident),
            &s,
            now(),
        ),
    );
    assert!(reopened.spec.resolution.is_none());

    // An hour later it is a new incident, numbered.
    let later = now() + SignedDuration::from_hours(1);
    match plan(
        &firing,
        &heard,
        &g,
        std::slice::from_ref(&incident),
        &s,
        later,
    ) {
        Plan::Create { name, .. } => assert_eq!(name, format!("{}-2", g.base_name)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_persons_resolution_is_never_undone_and_resolved_alerts_alone_open_nothing() {
    let s = settings();
    let firing = message("firing", json!([alert("f1", "firing", json!({}))]));
    let g = group(&firing, &s, None);
    let heard = check(&firing, &s).expect("valid");
    let mut incident = created(&plan(&firing, &heard, &g, &[], &s, now()), "1");
    incident.spec.resolution = Some(Resolution {
        root_cause: None,
        summary: "fixed by hand".into(),
        by: "ana".into(),
    });
    incident.status = Some(
        serde_json::from_value(json!({
        "metrics": { "resolvedAt": "2026-11-30T09:25:00Z" } }))
        .expect("status"),
    );
    assert_eq!(
        plan(&firing, &heard, &g, &[incident], &s, now()),
        Plan::Nothing
    );

    let resolved = message("resolved", json!([alert("f9", "resolved", json!({}))]));
    let heard = check(&resolved, &s).expect("valid");
    assert_eq!(plan(&resolved, &heard, &g, &[], &s, now()), Plan::Nothing);
}

#[test]
fn the_alert_list_stays_bounded_dropping_the_oldest_resolved_first() {
    let signal = |i: usize, state: AlertState| AlertSignal {
        fingerprint: format!("f{i}"),
        name: "X".into(),
        state,
        starts_at: Time(Timestamp::from_second(i as i64).expect("time")),
        ends_at: None,
        summary: None,
        runbook_url: None,
        generator_url: None,
        labels: BTreeMap::new(),
    };
    let current: Vec<AlertSignal> = (0..MAX_ALERTS)
        .map(|i| {
            signal(
                i,
                if i < 5 {
                    AlertState::Resolved
                } else {
                    AlertState::Firing
                },
            )
        })
        .collect();
    let new = Heard {
        signal: signal(1000, AlertState::Firing),
        explicit: None,
        severity_word: None,
    };
    let merged = merge(&current, &[new]);
    assert_eq!(merged.len(), MAX_ALERTS);
    assert!(
        !merged.iter().any(|a| a.fingerprint == "f0"),
        "the oldest resolved went"
    );
    assert!(
        merged.iter().any(|a| a.fingerprint == "f5"),
        "firing ones stay"
    );
    assert!(merged.iter().any(|a| a.fingerprint == "f1000"));
}

#[test]
fn a_group_naming_a_workload_joins_the_detectors_incident_for_it() {
    let s = settings();
    let mut m = message("firing", json!([alert("f1", "firing", json!({}))]));
    m.common_labels
        .insert("deployment".into(), "checkout".into());
    let g = group(&m, &s, None);
    let workload = g.workload.clone().expect("the workload");
    assert_eq!(
        (workload.kind.as_str(), workload.name.as_str()),
        ("Deployment", "checkout")
    );
    assert_eq!(g.namespace, "shop");
    assert_eq!(g.base_name, workload.incident_name(), "the detector's name");
    assert_eq!(
        g.selector(),
        format!("{FINGERPRINT_LABEL}={}", workload.fingerprint())
    );

    let heard = check(&m, &s).expect("valid");
    let plan = plan(&m, &heard, &g, &[], &s, now());
    let Plan::Create { body, .. } = &plan else {
        panic!("{plan:?}");
    };
    assert_eq!(
        body["metadata"]["labels"][FINGERPRINT_LABEL],
        workload.fingerprint()
    );
    assert_eq!(
        body["spec"]["affected"],
        json!([{ "kind": "Deployment", "name": "checkout" }])
    );

    // The detector's incident, already open: the alert joins it and resolves nothing of it.
    let mut detected = created(&plan, "7");
    detected
        .metadata
        .labels
        .get_or_insert_default()
        .insert(SOURCE_LABEL.into(), "detector".into());
    detected.spec.alerts.clear();
    let joined = patched(
        &detected,
        &super::plan(&m, &heard, &g, std::slice::from_ref(&detected), &s, now()),
    );
    assert_eq!(joined.spec.alerts.len(), 1);
    let done = message("resolved", json!([alert("f1", "resolved", json!({}))]));
    let heard = check(&done, &s).expect("valid");
    let after = patched(
        &joined,
        &super::plan(&done, &heard, &g, std::slice::from_ref(&joined), &s, now()),
    );
    assert!(
        after.spec.resolution.is_none(),
        "the detector resolves its own incident"
    );

    // A namespace that did not opt in: no workload, the default namespace.
    let elsewhere = AlertSettings::default();
    let g = group(&m, &elsewhere, None);
    assert_eq!((g.workload, g.namespace.as_str()), (None, "default"));
}

#[test]
fn a_node_alert_joins_the_node_incident_and_a_pod_alert_asks_for_its_owner() {
    let with_nodes = AlertSettings {
        node_namespace: Some("ops".into()),
        ..settings()
    };
    let mut m = message("firing", json!([alert("f1", "firing", json!({}))]));
    m.common_labels.remove("namespace");
    m.common_labels.insert("node".into(), "worker-3".into());
    let g = group(&m, &with_nodes, None);
    let node = g.workload.clone().expect("the node");
    assert_eq!(
        (node.kind.as_str(), node.name.as_str()),
        ("Node", "worker-3")
    );
    assert_eq!(
        g.namespace, "ops",
        "where the detector keeps node incidents"
    );
    let heard = check(&m, &with_nodes).expect("valid");
    let Plan::Create { body, .. } = plan(&m, &heard, &g, &[], &with_nodes, now()) else {
        panic!("a create");
    };
    assert_eq!(body["metadata"]["labels"][PROBLEM_LABEL], "node");
    assert_eq!(
        body["spec"]["affected"],
        json!([{ "kind": "Node", "name": "worker-3" }])
    );
    assert_eq!(
        group(&m, &settings(), None).workload,
        None,
        "no node incidents: a plain group"
    );

    let mut m = message("firing", json!([alert("f1", "firing", json!({}))]));
    m.common_labels
        .insert("pod".into(), "checkout-7d9f-x2x".into());
    assert_eq!(
        pod_of(&m, &settings()),
        Some(("shop".to_owned(), "checkout-7d9f-x2x".to_owned()))
    );
    let owner = Workload {
        namespace: "shop".into(),
        kind: "Deployment".into(),
        name: "checkout".into(),
    };
    let g = group(&m, &settings(), Some(owner.clone()));
    assert_eq!(g.base_name, owner.incident_name());
    m.common_labels
        .insert("deployment".into(), "checkout".into());
    assert_eq!(
        pod_of(&m, &settings()),
        None,
        "the workload label says it already"
    );
}
