//! Detection against the real control plane: kwok faults become one incident per workload, which
//! auto-resolves when the workload recovers; restarts create no duplicates.

use std::time::Duration;

use incident_operator::api::{Incident, Phase, Severity};
use k8s_openapi::api::apps::v1::Deployment;
use kube::{
    Api, ResourceExt,
    api::{ListParams, PostParams},
};
use serde_json::json;

use crate::{
    remediation::{deployment, roll_to},
    support::{Operator, TestNamespace, client, install_crds, wait_for, wait_for_all},
};

const DETECT: Duration = Duration::from_secs(90);
const DETECTED: &str = "incident.dev/source=detector";
const FLAGS: [&str; 4] = ["--detection", "true", "--resolve-after", "2s"];

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
