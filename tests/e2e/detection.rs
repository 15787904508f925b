//! Detection against the real control plane: kwok faults become one incident per workload, which
//! auto-resolves when the workload recovers; restarts create no duplicates. This file holds the
//! workload faults and the helpers the other `detection_*` files share: `detection_scale` (a
//! NotReady node, the storm guard), `detection_config` (the namespace selector, warning events as
//! signals) and `detection_updates` (a returning problem, a person's severity).

use std::time::Duration;

use incident_operator::api::{Incident, MAX_SIGNAL_PODS, Phase, Severity};
use k8s_openapi::api::apps::v1::Deployment;
use kube::{
    Api, ResourceExt,
    api::{ListParams, PostParams},
};
use serde_json::json;

use crate::{
    remediation::{create_rolled_out, deployment, roll_to},
    support::{Operator, TestNamespace, client, install_crds, wait_for, wait_for_all},
};

pub const DETECT: Duration = Duration::from_secs(90);
/// Workload incidents only: concurrently running tests may make their own nodes NotReady.
pub const DETECTED: &str = "incident.dev/source=detector,incident.dev/problem=workload";
pub const FLAGS: [&str; 4] = ["--detection", "true", "--resolve-after", "2s"];

/// A one-replica Deployment whose pod no node can take (a node selector nothing matches).
pub fn unschedulable(name: &str) -> Deployment {
    let mut stuck = deployment(name, &[&format!("registry.local/{name}:1")], None);
    stuck.spec.replicas = Some(1);
    if let Some(spec) = stuck.spec.template.spec.as_mut() {
        spec.node_selector =
            Some([("incident.dev/no-such-node".to_owned(), "true".to_owned())].into());
    }
    stuck
}

pub fn signal_count(incident: &Incident, type_: &str) -> i32 {
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
    assert_eq!(crash.count, 20, "{crash:#?}");
    assert_eq!(
        crash.pods.len(),
        MAX_SIGNAL_PODS,
        "some of the pods: {crash:#?}"
    );
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
    // Counted before the rollout: a finished rollout's last change may already have had its pass, and
    // Ready pods start none, so waiting for a pass after it could wait for nothing.
    let series = "incident_operator_detection_passes_total";
    let seen = operator.metric(series).await.unwrap_or(0.0);
    let mut next = deployment("web", &["registry.local/web:2"], None);
    next.spec.replicas = Some(10);
    roll_to(&deployments, &next, "deploy v2", true).await;

    // Once the detector has looked during and after the rollout, there must be nothing.
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
