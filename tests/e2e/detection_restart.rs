//! Detection survives the operator being SIGKILLed in the middle of a scenario: the restarted
//! process finds the incidents the old one wrote (no duplicates), picks up what changed while
//! nobody was watching (no lost updates), keeps the auto-resolve clock and the storm budget it
//! left behind on the Incidents, and finishes what the old one started.
//!
//! "Exactly one" is checked with a list after every step: nothing in these scenarios deletes
//! incidents, so a duplicate, once written, would still be there. After each restart the checks
//! wait for the new process's first completed detection pass (`incident_operator_detection_passes_total`):
//! it starts from a fresh list of everything, so whatever that pass would duplicate or miss is
//! visible right after it.

use std::{collections::BTreeSet, time::Duration};

use incident_operator::api::{Incident, Phase};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{Node, Pod},
};
use kube::{
    Api, ResourceExt,
    api::{ListParams, Patch, PatchParams, PostParams},
};
use serde_json::json;

use crate::{
    nodes::TestNode,
    remediation::{deployment, roll_to},
    support::{Operator, TestNamespace, client, install_crds, wait_for, wait_for_all},
};

const DETECT: Duration = Duration::from_secs(90);
const PASSES: &str = "incident_operator_detection_passes_total";
const NODE_INCIDENTS: &str = "incident.dev/source=detector,incident.dev/problem=node";
const WORKLOAD_INCIDENTS: &str = "incident.dev/source=detector,incident.dev/problem=workload";
const STORM_INCIDENTS: &str = "incident.dev/source=detector,incident.dev/problem=storm";
const CLEARED: &str = "incident.dev/signals-cleared-at";

fn signal_count(incident: &Incident, type_: &str) -> i32 {
    incident
        .spec
        .signals
        .iter()
        .find(|s| s.type_ == type_)
        .map_or(0, |s| s.count)
}

/// Waits until this operator process has completed its first detection pass: its stores were
/// listed after everything the test changed before starting it, and every write of that pass is done.
async fn first_pass(operator: &Operator) {
    operator
        .await_metric(PASSES, |v| v.unwrap_or(0.0) >= 1.0)
        .await;
}

async fn list(incidents: &Api<Incident>, labels: &str) -> Vec<Incident> {
    let mut items = incidents
        .list(&ListParams::default().labels(labels))
        .await
        .expect("list incidents")
        .items;
    items.sort_by_key(|i| i.name_any());
    items
}

/// Lists the incidents matching `labels` and asserts there is exactly one, named `name`.
async fn the_only(incidents: &Api<Incident>, labels: &str, name: &str, step: &str) -> Incident {
    let found = list(incidents, labels).await;
    let names: Vec<String> = found.iter().map(|i| i.name_any()).collect();
    assert_eq!(names, [name], "{step}: exactly the one incident ({labels})");
    found.into_iter().next().expect("one incident")
}

fn node_ready(node: Option<&Node>) -> Option<String> {
    node?
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.clone())
}

fn crash_looping(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .is_some_and(|cs| {
            !cs.is_empty()
                && cs.iter().all(|c| {
                    c.state
                        .as_ref()
                        .and_then(|s| s.waiting.as_ref())
                        .and_then(|w| w.reason.as_deref())
                        == Some("CrashLoopBackOff")
                })
        })
}

fn healthy(pod: &Pod) -> bool {
    !pod.labels().contains_key("incident.dev/fault")
        && pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// A NotReady node carrying a Deployment, with the operator SIGKILLed at three points:
///
/// 1. right after it opened the node incident; while it is down the Deployment grows from 30 to
///    35 pods on the node, and the next process's first pass must show 35 on the same incident;
/// 2. after that; while it is down the node comes back Ready, and the next process must note the
///    signals cleared on the incident it never saw open;
/// 3. inside the auto-resolve wait (cleared noted, not yet resolved); the next process must
///    resolve it on the clock the killed one left on the incident, not start a new wait.
///
/// `--resolve-after 5s` leaves seconds between noting the clear and resolving, so kill point 3
/// cannot be overtaken by the resolution.
#[tokio::test]
async fn a_node_incident_survives_operator_kills_without_duplicates_or_lost_updates() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::new(&client, "restart-node").await;
    let node = TestNode::create(&client, "e2e-restart").await;
    let nodes: Api<Node> = Api::all(client.clone());

    // Pods pinned to the test node. They tolerate the not-ready/unreachable taints the node
    // lifecycle controller adds, so more can be scheduled onto the NotReady node and none is
    // evicted while the test runs.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let mut pinned = deployment("pinned", &["registry.local/pinned:1"], None);
    pinned.spec.replicas = Some(30);
    node.pin(
        &mut pinned,
        &[
            "node.kubernetes.io/not-ready",
            "node.kubernetes.io/unreachable",
        ],
    );
    deployments
        .create(&PostParams::default(), &pinned)
        .await
        .expect("create Deployment");
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    node.await_running(&pods, "pinned", 30, DETECT).await;

    let selector = node.selector();
    let flags = [
        "--detection",
        "true",
        "--resolve-after",
        "5s",
        "--node-selector",
        &selector,
    ];
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns.name);

    // Kill point 1: right after the node incident appears.
    let operator = Operator::start(&ns.name, &flags).await;
    first_pass(&operator).await;
    assert!(
        list(&incidents, NODE_INCIDENTS).await.is_empty(),
        "a Ready node has no incident"
    );
    node.set_fault(Some("notready")).await;
    let found = wait_for_all(
        &incidents,
        NODE_INCIDENTS,
        "one node incident with 30 pods",
        DETECT,
        |found| found.len() == 1 && signal_count(&found[0], "NodeNotReady") == 30,
    )
    .await;
    operator.kill().await;
    let name = found[0].name_any();
    the_only(&incidents, NODE_INCIDENTS, &name, "after kill 1").await;

    // While nobody watches, the node's load grows to 35 pods.
    deployments
        .patch(
            "pinned",
            &PatchParams::default(),
            &Patch::Merge(&json!({ "spec": { "replicas": 35 } })),
        )
        .await
        .expect("scale to 35");
    wait_for_all(
        &pods,
        "app=pinned",
        "35 pods bound to the NotReady node",
        DETECT,
        |pods| pods.iter().filter(|p| node.hosts(p)).count() == 35,
    )
    .await;

    let operator = Operator::start(&ns.name, &flags).await;
    first_pass(&operator).await;
    // The new process keeps a record of exactly what is in scope: every pod, the one Deployment,
    // and only the node its selector picks.
    for (resource, count) in [("pods", 35.0), ("deployments", 1.0), ("nodes", 1.0)] {
        let series = format!("incident_operator_detection_records{{resource=\"{resource}\"}}");
        operator.await_metric(&series, |v| v == Some(count)).await;
    }
    // The pinned API server serves streaming lists, so a restart lists no workloads in pages
    // (watches are their only readers: a page of them is what a restart's memory peak was made of).
    for resource in ["deployments", "statefulsets", "daemonsets"] {
        let series = format!(
            "incident_operator_api_requests_total{{verb=\"list\",resource=\"{resource}\"}}"
        );
        assert_eq!(operator.metric(&series).await, None, "{series}");
        let watched = format!(
            "incident_operator_api_requests_total{{verb=\"watch\",resource=\"{resource}\"}}"
        );
        assert!(operator.metric(&watched).await.is_some(), "{watched}");
    }
    // A count-only update waits out the 10 s since the last one, which the incident itself dates
    // (so a restart neither forgets it nor writes early).
    let written = |i: &Incident| {
        i.spec
            .signals
            .iter()
            .map(|s| s.last_seen.0)
            .max()
            .expect("a signal")
    };
    let before = written(&found[0]);
    wait_for(
        &incidents,
        &name,
        "the pods added while the operator was down counted",
        DETECT,
        |i| i.is_some_and(|i| signal_count(i, "NodeNotReady") == 35),
    )
    .await;
    let incident = the_only(&incidents, NODE_INCIDENTS, &name, "after restart 1").await;
    assert!(
        written(&incident).duration_since(before) >= SignedDuration::from_secs(10),
        "updated {} after the last update, before the interval: {:#?}",
        written(&incident).duration_since(before),
        incident.spec.signals
    );
    assert!(
        incident.spec.title.contains("35 pods of 1 workload"),
        "{}",
        incident.spec.title
    );
    assert!(incident.spec.resolution.is_none(), "still open");

    // Kill point 2: the node recovers while the operator is down.
    operator.kill().await;
    node.set_fault(None).await;
    wait_for(&nodes, &node.name, "node Ready again", DETECT, |n| {
        node_ready(n).as_deref() == Some("True")
    })
    .await;

    let operator = Operator::start(&ns.name, &flags).await;
    first_pass(&operator).await;
    let incident = the_only(&incidents, NODE_INCIDENTS, &name, "after restart 2").await;
    let cleared_at = incident.annotations().get(CLEARED).cloned();
    assert!(
        cleared_at.is_some(),
        "the first pass notes that the signals cleared while nobody watched: {:#?}",
        incident.metadata.annotations
    );

    // Kill point 3: inside the auto-resolve wait.
    operator.kill().await;
    let incident = the_only(&incidents, NODE_INCIDENTS, &name, "after kill 3").await;
    assert!(
        incident.spec.resolution.is_none(),
        "killed before the auto-resolve was due (resolve-after 5s)"
    );
    // Stay down until 2 s after the note (of the 5 s wait): the note is kept to the second, so a
    // restarted clock (a new note) could not carry the same time as the killed operator's.
    let noted: Timestamp = cleared_at
        .as_deref()
        .and_then(|t| t.parse().ok())
        .expect("a timestamp in the annotation");
    let back = noted + SignedDuration::from_secs(2);
    let down_for = back.duration_since(Timestamp::now());
    if down_for.is_positive() {
        tokio::time::sleep(down_for.unsigned_abs()).await;
    }

    let operator = Operator::start(&ns.name, &flags).await;
    let resolved = wait_for(
        &incidents,
        &name,
        "auto-resolved after the restart",
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
    assert_eq!(
        resolved.annotations().get(CLEARED),
        cleared_at.as_ref(),
        "the restarted operator resolves on the clock the killed one started"
    );
    assert_eq!(signal_count(&resolved, "NodeNotReady"), 35);
    the_only(&incidents, NODE_INCIDENTS, &name, "at the end").await;
    operator.stop().await;
}

/// Twelve Deployments break at once under `--storm-limit 5`: five incidents and one storm incident
/// holding seven. The operator is SIGKILLed; while it is down three held-back Deployments are fixed
/// and two more break. The restarted operator, within the same minute, must keep the five
/// incidents and the one storm incident (the budget is counted from the incidents' creation times,
/// so a restart frees none of it), hold the six problems now present, and finish the evidence.
#[tokio::test]
async fn the_storm_guard_survives_an_operator_kill() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::new(&client, "restart-storm").await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns.name);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    // No node is watched: other tests' NotReady nodes would be new problems under this budget.
    let no_nodes = format!("incident.dev/e2e-node={}", ns.name);
    let flags = [
        "--detection",
        "true",
        "--resolve-after",
        "2s",
        "--storm-limit",
        "5",
        "--node-selector",
        &no_nodes,
    ];
    let broken = |i: usize| {
        let name = format!("svc-{i:02}");
        let mut d = deployment(
            &name,
            &[&format!("registry.local/{name}:1")],
            Some("crashloop"),
        );
        d.spec.replicas = Some(1);
        d
    };

    let operator = Operator::start(&ns.name, &flags).await;
    for i in 0..12 {
        deployments
            .create(&PostParams::default(), &broken(i))
            .await
            .expect("create Deployment");
    }
    let storm = wait_for_all(
        &incidents,
        STORM_INCIDENTS,
        "one storm incident holding 7",
        DETECT,
        |found| found.len() == 1 && signal_count(&found[0], "IncidentStorm") == 7,
    )
    .await;
    operator.kill().await;

    let storm_name = storm[0].name_any();
    let held: BTreeSet<String> = storm[0]
        .spec
        .affected
        .iter()
        .map(|a| a.name.clone())
        .collect();
    assert_eq!(held.len(), 7, "names the held-back workloads: {held:?}");
    let admitted = list(&incidents, WORKLOAD_INCIDENTS).await;
    let admitted_names: Vec<String> = admitted.iter().map(|i| i.name_any()).collect();
    assert_eq!(admitted_names.len(), 5, "the budget: {admitted_names:?}");
    let oldest = admitted
        .iter()
        .filter_map(|i| i.metadata.creation_timestamp.as_ref().map(|t| t.0))
        .min()
        .expect("creation timestamps");

    // While the operator is down: three held-back Deployments are fixed, two more break.
    let fixed: Vec<String> = held.iter().take(3).cloned().collect();
    for name in &fixed {
        let mut good = deployment(name, &[&format!("registry.local/{name}:2")], None);
        good.spec.replicas = Some(1);
        roll_to(&deployments, &good, "fix", true).await;
        wait_for_all(
            &pods,
            &format!("app={name}"),
            "only the fixed pod left",
            DETECT,
            |pods| pods.len() == 1 && healthy(&pods[0]),
        )
        .await;
    }
    for i in 12..14 {
        deployments
            .create(&PostParams::default(), &broken(i))
            .await
            .expect("create Deployment");
        wait_for_all(
            &pods,
            &format!("app=svc-{i:02}"),
            "the new pod crash-looping",
            DETECT,
            |pods| pods.len() == 1 && crash_looping(&pods[0]),
        )
        .await;
    }
    let expected: BTreeSet<String> = held
        .iter()
        .filter(|n| !fixed.contains(n))
        .cloned()
        .chain(["svc-12".to_owned(), "svc-13".to_owned()])
        .collect();

    let operator = Operator::start(&ns.name, &flags).await;
    first_pass(&operator).await;
    // Which problems the storm holds is an update of the same trouble: at most one per 10 s.
    let held_by = |i: &Incident| -> BTreeSet<String> {
        i.spec.affected.iter().map(|a| a.name.clone()).collect()
    };
    wait_for(
        &incidents,
        &storm_name,
        "the storm incident holding exactly the problems present after the restart",
        DETECT,
        |i| i.is_some_and(|i| held_by(i) == expected),
    )
    .await;
    let checked = Timestamp::now();
    let storm = the_only(&incidents, STORM_INCIDENTS, &storm_name, "after restart").await;
    assert_eq!(held_by(&storm), expected);
    assert_eq!(signal_count(&storm, "IncidentStorm"), 6);
    assert!(storm.spec.resolution.is_none(), "the storm is still open");
    let workload = list(&incidents, WORKLOAD_INCIDENTS).await;
    let workload_names: Vec<String> = workload.iter().map(|i| i.name_any()).collect();
    assert_eq!(
        workload_names, admitted_names,
        "no incident beyond the per-minute budget because the process restarted"
    );
    // The assertion above only means something while the five still fill the minute's budget.
    assert!(
        checked.duration_since(oldest) < SignedDuration::from_secs(60),
        "the scenario took too long ({} since the first incident) to test the per-minute budget",
        checked.duration_since(oldest)
    );
    assert!(
        workload
            .iter()
            .all(|i| i.status.as_ref().is_some_and(|s| s.evidence.is_some())),
        "evidence the killed operator may not have finished is written by the first pass"
    );
    operator.stop().await;
}
