//! Detection at scale: a NotReady node carrying many pods is one node incident, and the storm
//! guard caps how many incidents a burst of breakage opens.

use incident_operator::api::Incident;
use k8s_openapi::api::apps::v1::Deployment;
use kube::{
    Api, ResourceExt,
    api::{ListParams, PostParams},
};

use crate::{
    detection::{DETECT, DETECTED, FLAGS, signal_count},
    nodes::TestNode,
    remediation::deployment,
    support::{Operator, TestNamespace, client, install_crds, wait_for_all},
};

#[tokio::test]
async fn a_not_ready_node_carrying_two_hundred_pods_is_one_node_incident_not_two_hundred() {
    use k8s_openapi::api::core::v1::Pod;

    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::new(&client, "detect-node").await;
    let node = TestNode::create(&client, "e2e-notready").await;

    // 200 pods pinned to the test node.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let mut pinned = deployment("pinned", &["registry.local/pinned:1"], None);
    pinned.spec.replicas = Some(200);
    node.pin(&mut pinned, &[]);
    deployments
        .create(&PostParams::default(), &pinned)
        .await
        .expect("create Deployment");
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    node.await_running(&pods, "pinned", 200, DETECT).await;

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
        |found| found.len() == 1 && signal_count(&found[0], "NodeNotReady") == 200,
    )
    .await;
    let incident = &found[0];
    assert_eq!(incident.spec.affected[0].name, node.name);
    assert!(
        incident.spec.title.contains("200 pods of 1 workload"),
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
    // Not one per pod: the pods' own troubles, if any, are at most their one workload's incident.
    let detected = incidents
        .list(&ListParams::default().labels("incident.dev/source=detector"))
        .await
        .expect("list");
    assert!(
        detected.items.len() <= 2,
        "one node incident and at most one workload incident: {:?}",
        detected
            .items
            .iter()
            .map(|i| i.name_any())
            .collect::<Vec<_>>()
    );
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
