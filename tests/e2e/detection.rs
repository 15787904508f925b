//! Detection against the real control plane: kwok faults become one incident per workload, which
//! auto-resolves when the workload recovers; restarts create no duplicates.

use std::time::Duration;

use incident_operator::api::{EntryType, Incident, Phase, Severity};
use k8s_openapi::api::apps::v1::Deployment;
use kube::{
    Api, ResourceExt,
    api::{ListParams, Patch, PatchParams, PostParams},
};
use serde_json::json;

use crate::{
    nodes::TestNode,
    remediation::{create_rolled_out, deployment, roll_to},
    support::{Operator, TestNamespace, client, install_crds, wait_for, wait_for_all},
};

const DETECT: Duration = Duration::from_secs(90);
/// Workload incidents only: concurrently running tests may make their own nodes NotReady.
const DETECTED: &str = "incident.dev/source=detector,incident.dev/problem=workload";
const FLAGS: [&str; 4] = ["--detection", "true", "--resolve-after", "2s"];

/// A one-replica Deployment whose pod no node can take (a node selector nothing matches).
fn unschedulable(name: &str) -> Deployment {
    let mut stuck = deployment(name, &[&format!("registry.local/{name}:1")], None);
    stuck.spec.replicas = Some(1);
    if let Some(spec) = stuck.spec.template.spec.as_mut() {
        spec.node_selector =
            Some([("incident.dev/no-such-node".to_owned(), "true".to_owned())].into());
    }
    stuck
}

fn signal_count(incident: &Incident, type_: &str) -> i32 {
    incident
        .spec
        .signals
        .iter()
        .find(|s| s.type_ == type_)
        .map_or(0, |s| s.count)
}

#[tokio::test]
async fn twenty_crashing_pods_are_one_incident_that_resolves_when_fixed() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::new(&client, "detect-crash").await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns.name);
    let operator = Operator::start(&ns.name, &FLAGS).await;

    // A person's incident about the same workload must never be auto-resolved.
    let human: Incident = serde_json::from_value(json!({
        "apiVersion": "incident.dev/v1alpha1", "kind": "Incident", "metadata": { "name": "reported" },
        "spec": { "title": "Users report checkout errors", "severity": "P2",
                  "affected": [{ "kind": "Deployment", "name": "checkout" }] },
    }))
    .expect("Incident");
    incidents
        .create(&PostParams::default(), &human)
        .await
        .expect("create Incident");
    // ... unless it opts in.
    let opted_in: Incident = serde_json::from_value(json!({
        "apiVersion": "incident.dev/v1alpha1", "kind": "Incident",
        "metadata": { "name": "pager", "labels": { "incident.dev/auto-resolve": "true" } },
        "spec": { "title": "Checkout pods paging", "severity": "P2",
                  "affected": [{ "kind": "Deployment", "name": "checkout" }] },
    }))
    .expect("Incident");
    incidents
        .create(&PostParams::default(), &opted_in)
        .await
        .expect("create Incident");

    let mut bad = deployment(
        "checkout",
        &["registry.local/checkout:2"],
        Some("crashloop"),
    );
    bad.spec.replicas = Some(20);
    deployments
        .create(&PostParams::default(), &bad)
        .await
        .expect("create Deployment");

    let found = wait_for_all(
        &incidents,
        DETECTED,
        "one P1 incident listing 20 crashing pods",
        DETECT,
        |found| {
            found.len() == 1
                && found[0].spec.severity == Severity::P1
                && signal_count(&found[0], "CrashLoopBackOff") == 20
        },
    )
    .await;
    let incident = &found[0];
    let crash = incident
        .spec
        .signals
        .iter()
        .find(|s| s.type_ == "CrashLoopBackOff")
        .expect("signal");
    assert_eq!(crash.pods.len(), 20, "{crash:#?}");
    assert_eq!(incident.spec.affected[0].name, "checkout");
    assert!(
        incident
            .spec
            .title
            .starts_with("deployment/checkout: CrashLoopBackOff on 20 pods"),
        "{}",
        incident.spec.title
    );
    let name = incident.name_any();
    let with_evidence = wait_for(&incidents, &name, "evidence recorded", DETECT, |i| {
        i.and_then(|i| i.status.as_ref())
            .and_then(|s| s.evidence.as_ref())
            .is_some_and(|e| {
                !e.containers.is_empty()
                    && e.recent_deploy.is_some()
                    && !e.rollout_history.is_empty()
                    && e.logs.is_some()
            })
    })
    .await
    .expect("Incident");
    let evidence = with_evidence
        .status
        .and_then(|s| s.evidence)
        .expect("evidence");
    assert!(
        evidence
            .containers
            .iter()
            .all(|c| c.state == "CrashLoopBackOff" && c.restarts >= 1),
        "{evidence:#?}"
    );
    assert_eq!(evidence.containers[0].last_exit_code, Some(1));
    assert_eq!(
        evidence.rollout_history[0].images,
        ["registry.local/checkout:2"]
    );
    assert!(
        evidence
            .recent_deploy
            .as_deref()
            .unwrap_or_default()
            .contains("before detection")
    );
    // The local cluster's kwok serves canned container logs (hack/cluster/logs).
    let logs = evidence.logs.as_ref().expect("the previous instance's log");
    assert!(logs.previous && logs.container == "c0", "{logs:#?}");
    assert!(logs.pod.starts_with("checkout-"), "{logs:#?}");
    assert_eq!(logs.text.lines().count(), 50, "the last 50 lines");
    assert!(
        logs.text.ends_with("exiting with status 1"),
        "ends with the crash: {}",
        logs.text
    );

    // A restart finds the same incident instead of opening another.
    operator.stop().await;
    let operator = Operator::start(&ns.name, &FLAGS).await;

    let mut fixed = deployment("checkout", &["registry.local/checkout:3"], None);
    fixed.spec.replicas = Some(20);
    roll_to(&deployments, &fixed, "fix forward", true).await;
    let resolved = wait_for(
        &incidents,
        &name,
        "resolved: signals cleared",
        DETECT,
        |i| {
            i.is_some_and(|i| {
                i.spec
                    .resolution
                    .as_ref()
                    .is_some_and(|r| r.summary == "Signals cleared")
                    && i.status.as_ref().and_then(|s| s.phase) == Some(Phase::Resolved)
            })
        },
    )
    .await
    .expect("Incident");
    assert_eq!(
        resolved.spec.resolution.as_ref().map(|r| r.by.as_str()),
        Some("incident-operator")
    );

    let detected = incidents
        .list(&ListParams::default().labels(DETECTED))
        .await
        .expect("list");
    assert_eq!(detected.items.len(), 1, "never a duplicate");
    wait_for(
        &incidents,
        "pager",
        "the opted-in incident resolved",
        DETECT,
        |i| {
            i.is_some_and(|i| {
                i.spec
                    .resolution
                    .as_ref()
                    .is_some_and(|r| r.summary == "Signals cleared")
            })
        },
    )
    .await;
    let reported = incidents.get("reported").await.expect("get");
    assert!(
        reported.spec.resolution.is_none(),
        "people's incidents are not auto-resolved"
    );
    operator.stop().await;
}

#[tokio::test]
async fn image_pull_and_oom_kill_faults_open_their_own_incidents() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::new(&client, "detect-kinds").await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns.name);
    let operator = Operator::start(&ns.name, &FLAGS).await;
    for (name, fault) in [("pull", "imagepull"), ("cache", "oomkill")] {
        let d = deployment(name, &[&format!("registry.local/{name}:1")], Some(fault));
        deployments
            .create(&PostParams::default(), &d)
            .await
            .expect("create Deployment");
    }
    wait_for_all(
        &incidents,
        DETECTED,
        "one incident per workload, with its signal",
        DETECT,
        |found| {
            let of = |workload: &str| {
                found
                    .iter()
                    .find(|i| i.spec.affected.first().is_some_and(|a| a.name == workload))
            };
            found.len() == 2
                && of("pull").is_some_and(|i| {
                    signal_count(i, "ImagePullBackOff") == 3 && i.spec.severity == Severity::P1
                })
                && of("cache").is_some_and(|i| signal_count(i, "OOMKilled") >= 1)
        },
    )
    .await;
    operator.stop().await;
}

#[tokio::test]
async fn a_not_ready_node_carrying_thirty_pods_is_one_node_incident() {
    use k8s_openapi::api::core::v1::Pod;

    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::new(&client, "detect-node").await;
    let node = TestNode::create(&client, "e2e-notready").await;

    // 30 pods pinned to the test node.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let mut pinned = deployment("pinned", &["registry.local/pinned:1"], None);
    pinned.spec.replicas = Some(30);
    node.pin(&mut pinned, &[]);
    deployments
        .create(&PostParams::default(), &pinned)
        .await
        .expect("create Deployment");
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    node.await_running(&pods, "pinned", 30, DETECT).await;

    let selector = node.selector();
    let operator = Operator::start(
        &ns.name,
        &[
            "--detection",
            "true",
            "--resolve-after",
            "2s",
            "--node-selector",
            &selector,
        ],
    )
    .await;
    node.set_fault(Some("notready")).await;

    let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns.name);
    let found = wait_for_all(
        &incidents,
        "incident.dev/source=detector,incident.dev/problem=node",
        "one node incident",
        DETECT,
        |found| found.len() == 1 && signal_count(&found[0], "NodeNotReady") == 30,
    )
    .await;
    let incident = &found[0];
    assert_eq!(incident.spec.affected[0].name, node.name);
    assert!(
        incident.spec.title.contains("30 pods of 1 workload"),
        "{}",
        incident.spec.title
    );
    assert!(
        incident
            .spec
            .description
            .as_deref()
            .unwrap_or_default()
            .contains("deployment/pinned")
    );
    operator.stop().await;
}

#[tokio::test]
async fn a_healthy_rolling_update_opens_no_incident() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::new(&client, "detect-quiet").await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns.name);
    let operator = Operator::start(&ns.name, &FLAGS).await;
    let mut web = deployment("web", &["registry.local/web:1"], None);
    web.spec.replicas = Some(10);
    create_rolled_out(&deployments, &web, DETECT).await;
    let mut next = deployment("web", &["registry.local/web:2"], None);
    next.spec.replicas = Some(10);
    roll_to(&deployments, &next, "deploy v2", true).await;

    // Once the detector has looked after the rollout finished, there must be nothing.
    let series = "incident_operator_detection_passes_total";
    let seen = operator.metric(series).await.unwrap_or(0.0);
    operator
        .await_metric(series, |v| v.unwrap_or(0.0) > seen)
        .await;
    let detected = incidents
        .list(&ListParams::default().labels(DETECTED))
        .await
        .expect("list");
    assert!(
        detected.items.is_empty(),
        "a rollout's brief unavailability is not an incident: {:#?}",
        detected.items
    );
    // Every pass is timed (the operator's share of detection latency).
    let passes = operator.metric(series).await.unwrap_or(0.0);
    let timed = operator
        .metric("incident_operator_detection_pass_duration_seconds_count")
        .await
        .unwrap_or(0.0);
    assert!(timed >= passes && passes > 0.0, "{timed} timed of {passes}");
    operator.stop().await;
}

#[tokio::test]
async fn the_storm_guard_holds_when_many_deployments_break_at_once() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::new(&client, "detect-storm").await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns.name);
    let mut flags = FLAGS.to_vec();
    // Other tests' NotReady nodes must not count against this test's budget.
    flags.extend([
        "--storm-limit",
        "5",
        "--node-selector",
        "incident.dev/e2e-no-such-node=true",
    ]);
    let operator = Operator::start(&ns.name, &flags).await;
    for i in 0..12 {
        let name = format!("svc-{i:02}");
        let mut broken = deployment(
            &name,
            &[&format!("registry.local/{name}:1")],
            Some("crashloop"),
        );
        broken.spec.replicas = Some(1);
        deployments
            .create(&PostParams::default(), &broken)
            .await
            .expect("create Deployment");
    }
    let storm = wait_for_all(
        &incidents,
        "incident.dev/source=detector,incident.dev/problem=storm",
        "one storm incident holding 7",
        DETECT,
        |found| found.len() == 1 && signal_count(&found[0], "IncidentStorm") == 7,
    )
    .await;
    assert_eq!(
        storm[0].spec.affected.len(),
        7,
        "names the held-back workloads"
    );
    let admitted = incidents
        .list(&ListParams::default().labels(DETECTED))
        .await
        .expect("list");
    assert_eq!(
        admitted.items.len(),
        5,
        "exactly the configured 5 new incidents in the minute"
    );
    operator.stop().await;
}

/// Breaks `checkout`, waits for its incident, fixes it, waits for the auto-resolution; returns the
/// incident's name.
async fn break_and_recover(
    deployments: &Api<Deployment>,
    incidents: &Api<Incident>,
    version: u32,
) -> String {
    let mut broken = deployment(
        "checkout",
        &[&format!("registry.local/checkout:{version}")],
        Some("crashloop"),
    );
    broken.spec.replicas = Some(2);
    roll_to(
        deployments,
        &broken,
        &format!("bad deploy {version}"),
        false,
    )
    .await;
    let open = wait_for_all(incidents, DETECTED, "an open incident", DETECT, |found| {
        found.iter().filter(|i| i.spec.resolution.is_none()).count() == 1
    })
    .await;
    let name = open
        .iter()
        .find(|i| i.spec.resolution.is_none())
        .map(|i| i.name_any())
        .expect("open incident");
    let mut fixed = deployment(
        "checkout",
        &[&format!("registry.local/checkout:{version}.1")],
        None,
    );
    fixed.spec.replicas = Some(2);
    roll_to(deployments, &fixed, &format!("fix {version}"), true).await;
    wait_for(incidents, &name, "auto-resolved", DETECT, |i| {
        i.and_then(|i| i.status.as_ref()).and_then(|s| s.phase) == Some(Phase::Resolved)
    })
    .await;
    name
}

#[tokio::test]
async fn a_returning_problem_reopens_within_the_cooldown_and_opens_anew_after_it() {
    use incident_operator::api::EntryType;
    let client = client().await;
    install_crds(&client).await;
    for (cooldown, reopens) in [("10m", true), ("0s", false)] {
        let ns = TestNamespace::new(&client, "detect-return").await;
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
        let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns.name);
        deployments
            .create(
                &PostParams::default(),
                &deployment("checkout", &["registry.local/checkout:1"], None),
            )
            .await
            .expect("create Deployment");
        let mut flags = FLAGS.to_vec();
        flags.extend(["--reopen-cooldown", cooldown]);
        let operator = Operator::start(&ns.name, &flags).await;
        let first = break_and_recover(&deployments, &incidents, 2).await;
        let second = break_and_recover(&deployments, &incidents, 3).await;
        let all = incidents
            .list(&ListParams::default().labels(DETECTED))
            .await
            .expect("list");
        if reopens {
            assert_eq!(first, second, "reopened within the cooldown");
            assert_eq!(all.items.len(), 1);
            let incident = incidents.get(&first).await.expect("get");
            let reopened = incident.status.map_or(0, |s| {
                s.timeline
                    .iter()
                    .filter(|e| e.type_ == EntryType::Reopened)
                    .count()
            });
            assert_eq!(reopened, 1, "one Reopened entry");
        } else {
            assert_ne!(first, second, "a new incident after the cooldown");
            assert_eq!(all.items.len(), 2);
        }
        operator.stop().await;
    }
}

/// Writes a configuration file for one test's operator.
fn config_file(test: &str, yaml: &str) -> String {
    let path =
        std::env::temp_dir().join(format!("incident-e2e-{test}-{}.yaml", std::process::id()));
    std::fs::write(&path, yaml).expect("write config file");
    path.to_string_lossy().into_owned()
}

#[tokio::test]
async fn a_namespace_outside_the_selector_produces_nothing_until_it_is_selected() {
    use k8s_openapi::api::core::v1::{Namespace, Pod};
    use kube::api::{Patch, PatchParams};

    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::new(&client, "detect-scope").await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns.name);
    let config = config_file(
        "scope",
        &format!(
            "detection:\n  namespaceSelector:\n    matchLabels: {{ incident.dev/e2e-detect: {} }}\n",
            ns.name
        ),
    );
    let mut flags = FLAGS.to_vec();
    flags.extend(["--config", config.as_str()]);
    let operator = Operator::start(&ns.name, &flags).await;

    let mut broken = deployment("web", &["registry.local/web:2"], Some("crashloop"));
    broken.spec.replicas = Some(2);
    deployments
        .create(&PostParams::default(), &broken)
        .await
        .expect("create Deployment");
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    wait_for_all(
        &pods,
        "app=web",
        "both pods crash-looping",
        DETECT,
        |pods| {
            pods.len() == 2
                && pods.iter().all(|p| {
                    p.status
                        .as_ref()
                        .and_then(|s| s.container_statuses.as_ref())
                        .and_then(|cs| cs.first())
                        .and_then(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone())
                        .as_deref()
                        == Some("CrashLoopBackOff")
                })
        },
    )
    .await;
    // A pass after the pods crash-looped, and still nothing: the namespace is not selected.
    let series = "incident_operator_detection_passes_total";
    let seen = operator.metric(series).await.unwrap_or(0.0);
    operator
        .await_metric(series, |v| v.unwrap_or(0.0) > seen)
        .await;
    let detected = incidents
        .list(&ListParams::default().labels(DETECTED))
        .await
        .expect("list");
    assert!(
        detected.items.is_empty(),
        "the namespace is outside the selector: {:#?}",
        detected.items
    );

    // Selecting the namespace makes the same problem count.
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let label = json!({ "metadata": { "labels": { "incident.dev/e2e-detect": ns.name } } });
    namespaces
        .patch(&ns.name, &PatchParams::default(), &Patch::Merge(&label))
        .await
        .expect("label the namespace");
    wait_for_all(
        &incidents,
        DETECTED,
        "an incident once the namespace is selected",
        DETECT,
        |found| found.len() == 1 && signal_count(&found[0], "CrashLoopBackOff") == 2,
    )
    .await;
    operator.stop().await;
    let _ = std::fs::remove_file(config);
}

#[tokio::test]
async fn a_warning_event_configured_as_a_signal_opens_an_incident_with_it_as_evidence() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::new(&client, "detect-events").await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns.name);
    // The scheduler's FailedScheduling counts at once; neither the pending grace nor the
    // Deployment's unavailability could open the incident within this test.
    let config = config_file(
        "events",
        "detection:\n  warningEvents:\n    signals: [FailedScheduling]\n  severity:\n    allReplicasUnavailable: P0\n",
    );
    let mut flags = FLAGS.to_vec();
    flags.extend([
        "--config",
        config.as_str(),
        "--pending-grace",
        "1h",
        "--unavailable-for",
        "1h",
    ]);
    let operator = Operator::start(&ns.name, &flags).await;

    let stuck = unschedulable("batch");
    deployments
        .create(&PostParams::default(), &stuck)
        .await
        .expect("create Deployment");

    let found = wait_for_all(
        &incidents,
        DETECTED,
        "one incident from the FailedScheduling event",
        DETECT,
        |found| found.len() == 1 && signal_count(&found[0], "FailedScheduling") == 1,
    )
    .await;
    let incident = &found[0];
    assert!(
        incident
            .spec
            .signals
            .iter()
            .all(|s| s.type_ == "FailedScheduling"),
        "only the event signal: {:#?}",
        incident.spec.signals
    );
    assert_eq!(
        incident.spec.severity,
        Severity::P0,
        "the configured severity"
    );
    let name = incident.name_any();
    let with_events = wait_for(
        &incidents,
        &name,
        "the event in the evidence",
        DETECT,
        |i| {
            i.and_then(|i| i.status.as_ref())
                .and_then(|s| s.evidence.as_ref())
                .is_some_and(|e| e.events.iter().any(|e| e.reason == "FailedScheduling"))
        },
    )
    .await
    .expect("Incident");
    let evidence = with_events
        .status
        .and_then(|s| s.evidence)
        .expect("evidence");
    let event = &evidence.events[0];
    assert!(event.object.starts_with("pod/batch-"), "{event:#?}");
    assert!(
        event.note.as_deref().unwrap_or_default().contains("node"),
        "the scheduler's explanation: {event:#?}"
    );
    operator.stop().await;
    let _ = std::fs::remove_file(config);
}

#[tokio::test]
async fn a_severity_a_person_set_survives_the_detectors_later_updates() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::new(&client, "detect-severity").await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns.name);
    let operator = Operator::start(&ns.name, &FLAGS).await;
    let d = deployment("pull", &["registry.local/pull:1"], Some("imagepull"));
    deployments
        .create(&PostParams::default(), &d)
        .await
        .expect("create Deployment");
    // Opened as P1 and recorded so (a raise before the first reconcile would just open it as P0).
    let found = wait_for_all(&incidents, DETECTED, "the P1 incident", DETECT, |found| {
        found.len() == 1
            && signal_count(&found[0], "ImagePullBackOff") == 3
            && found[0].spec.severity == Severity::P1
            && found[0].status.as_ref().is_some_and(|s| {
                s.timeline
                    .iter()
                    .any(|e| e.type_ == EntryType::Detected && e.message.starts_with("P1 "))
            })
    })
    .await;
    let name = found[0].name_any();

    // The responder raises it, as `kubectl incident severity NAME P0` does.
    let raise = json!({
        "metadata": { "annotations": { "incident.dev/actor": "alice" } },
        "spec": { "severity": "P0" },
    });
    let as_person = PatchParams {
        field_manager: Some("kubectl-incident".into()),
        ..PatchParams::default()
    };
    incidents
        .patch(&name, &as_person, &Patch::Merge(&raise))
        .await
        .expect("raise the severity");

    // The problem grows: the detector rewrites the incident, and keeps the person's severity.
    deployments
        .patch(
            "pull",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "replicas": 5 } })),
        )
        .await
        .expect("scale up");
    let grown = wait_for(&incidents, &name, "five pods counted", DETECT, |i| {
        i.is_some_and(|i| signal_count(i, "ImagePullBackOff") == 5)
    })
    .await
    .expect("incident");
    assert_eq!(grown.spec.severity, Severity::P0, "{:?}", grown.spec);
    let recorded = wait_for(&incidents, &name, "the raise recorded", DETECT, |i| {
        i.and_then(|i| i.status.as_ref()).is_some_and(|s| {
            s.timeline
                .iter()
                .any(|e| e.type_ == EntryType::SeverityChanged)
        })
    })
    .await
    .expect("incident");
    let changes: Vec<_> = recorded
        .status
        .iter()
        .flat_map(|s| &s.timeline)
        .filter(|e| e.type_ == EntryType::SeverityChanged)
        .map(|e| (e.message.clone(), e.actor.clone()))
        .collect();
    assert_eq!(changes.len(), 1, "one change, by the person: {changes:?}");
    assert_eq!(changes[0].1.as_deref(), Some("alice"), "{changes:?}");
    operator.stop().await;
}

#[tokio::test]
async fn a_new_deployment_still_rolling_out_is_starting_until_its_progress_deadline() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::new(&client, "detect-starting").await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns.name);
    // Unavailability would count after 1 s; the unschedulable pod not within the test.
    let mut flags = FLAGS.to_vec();
    flags.extend(["--unavailable-for", "1s", "--pending-grace", "1h"]);
    let operator = Operator::start(&ns.name, &flags).await;

    // A first rollout that cannot place its pod (as behind a slow scheduler), with a short deadline.
    let mut stuck = unschedulable("batch");
    stuck.spec.progress_deadline_seconds = Some(4);
    deployments
        .create(&PostParams::default(), &stuck)
        .await
        .expect("create Deployment");
    let stalled = wait_for(
        &deployments,
        "batch",
        "ProgressDeadlineExceeded",
        DETECT,
        |d| {
            d.and_then(|d| d.status.as_ref())
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| {
                    c.iter().any(|c| {
                        c.type_.as_deref() == Some("Progressing")
                            && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
                    })
                })
        },
    )
    .await
    .expect("Deployment");
    let deadline = stalled
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_.as_deref() == Some("Progressing"))
        .and_then(|c| c.last_transition_time)
        .expect("Progressing transition time");

    let found = wait_for_all(
        &incidents,
        DETECTED,
        "one incident once the deadline passed",
        DETECT,
        |found| found.len() == 1 && signal_count(&found[0], "ProgressDeadlineExceeded") >= 1,
    )
    .await;
    let opened = found[0]
        .metadata
        .creation_timestamp
        .clone()
        .expect("creationTimestamp");
    // Without the rule the incident would have opened about a second after creation, before it.
    assert!(
        opened >= deadline,
        "opened {opened:?} before the rollout's deadline {deadline:?}: {:#?}",
        found[0].spec.signals
    );
    operator.stop().await;
}
