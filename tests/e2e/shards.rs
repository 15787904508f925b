//! Shards: four operator processes split the test's namespaces as `--shard 0/2` and `--shard 1/2`
//! (a leader and a standby each, `--namespace-selector` keeping them to this test's namespaces).
//! Every incident is handled by exactly the shard its namespace hashes to; a namespace outside the
//! selector is handled by nobody until it is labelled; a crash loop is detected by its shard only;
//! SIGKILLing one shard's leader hands its namespaces to that shard's standby only, while the other
//! shard's leader keeps its Lease.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use incident_operator::{
    api::{Incident, Phase},
    core::shard::shard_of,
};
use k8s_openapi::api::{
    apps::v1::Deployment,
    coordination::v1::Lease,
    core::v1::{Event, Namespace},
};
use kube::{
    Api, Client,
    api::{ListParams, Patch, PatchParams, PostParams},
};
use serde_json::json;

use crate::{
    lifecycle::{edit, incident, phase},
    remediation::deployment,
    support::{
        Operator, TestNamespace, await_status, client, free_addr, install_crds, kubeconfig_path,
        start_with_env, wait_for, wait_for_all,
    },
};

const LEASE: &str = "e2e-shards";
const SHARDS: u32 = 2;
const LEADER: &str = "incident_operator_leader";
const TAKEOVER_BUDGET: Duration = Duration::from_secs(20);
const SETTLE: Duration = Duration::from_secs(60);
const DETECTED: &str = "incident.dev/source=detector,incident.dev/problem=workload";
/// The detector writes Incidents (not their status) with server-side apply patches.
const DETECTOR_WRITES: &str =
    r#"incident_operator_api_requests_total{verb="patch",resource="incidents"}"#;

/// One replica of one shard, named `shard<N>-<replica>` in its Events and its Lease.
async fn replica(shard: u32, name: &str, selector: &str, lease_ns: &str) -> Operator {
    let addr = free_addr();
    let shard_flag = format!("{shard}/{SHARDS}");
    let child = start_with_env(
        &kubeconfig_path(),
        addr,
        &[
            "--detection",
            "true",
            "--shard",
            &shard_flag,
            "--namespace-selector",
            selector,
            // No node carries this label: other tests' NotReady nodes stay out of this one.
            "--node-selector",
            selector,
            "--leader-elect",
            "true",
            "--leader-election-namespace",
            lease_ns,
            "--leader-election-name",
            LEASE,
        ],
        &[("POD_NAME", name), ("POD_NAMESPACE", lease_ns)],
    );
    await_status(addr, "/readyz", 200, Duration::from_secs(30)).await;
    Operator { child, addr }
}

fn holder(lease: Option<&Lease>) -> Option<String> {
    lease?.spec.as_ref()?.holder_identity.clone()
}

/// Waits until the shard's Lease is held by the replica whose name starts `who`.
async fn lease_held_by(leases: &Api<Lease>, shard: u32, who: &str) -> Lease {
    let name = format!("{LEASE}-shard-{shard}-of-{SHARDS}");
    wait_for(
        leases,
        &name,
        &format!("{name} held by {who}"),
        TAKEOVER_BUDGET,
        |l| holder(l).is_some_and(|h| h.starts_with(&format!("{who}_"))),
    )
    .await
    .expect("the shard's Lease")
}

/// Which replicas published Events about the incident `name` in `ns`.
async fn reporters(client: &Client, ns: &str, name: &str) -> Vec<String> {
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    let params = ListParams::default().fields(&format!("involvedObject.name={name}"));
    let mut seen: Vec<String> = events
        .list(&params)
        .await
        .expect("list Events")
        .items
        .into_iter()
        .filter_map(|e| e.reporting_instance)
        .collect();
    seen.sort();
    seen.dedup();
    seen
}

/// Waits until the incident has reached `want`, then returns who reported it.
async fn handled(client: &Client, ns: &str, want: Phase) -> Vec<String> {
    let api: Api<Incident> = Api::namespaced(client.clone(), ns);
    wait_for(&api, "outage", &format!("{ns}: {want:?}"), SETTLE, |i| {
        i.and_then(phase) == Some(want)
    })
    .await;
    // The Event of the transition follows the status write: wait for it too.
    let deadline = Instant::now() + SETTLE;
    loop {
        let seen = reporters(client, ns, "outage").await;
        let events = Api::<Event>::namespaced(client.clone(), ns)
            .list(&ListParams::default().fields("involvedObject.name=outage"))
            .await
            .expect("list Events")
            .items;
        let reasons = events.iter().filter_map(|e| e.reason.as_deref());
        let expected = match want {
            Phase::Acknowledged => "Acknowledged",
            _ => "Detected",
        };
        if reasons.clone().any(|r| r == expected) {
            return seen;
        }
        assert!(Instant::now() < deadline, "{ns}: no {expected} Event");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn label(client: &Client, ns: &str, selector: (&str, &str)) {
    Api::<Namespace>::all(client.clone())
        .patch(
            ns,
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "labels": { selector.0: selector.1 } } })),
        )
        .await
        .expect("label the namespace");
}

#[tokio::test]
async fn each_namespace_is_handled_by_its_own_shard_and_a_killed_leader_hands_over_only_its_own() {
    let client = client().await;
    install_crds(&client).await;
    let home = TestNamespace::new(&client, "shards").await;
    let selector = ("incident.dev/e2e-shards", home.name.as_str());
    let selector_text = format!("{}={}", selector.0, selector.1);

    // Two namespaces per shard at least (names are random, so make them until the hash agrees).
    let mut namespaces: Vec<TestNamespace> = Vec::new();
    let mut per_shard = [0_usize; SHARDS as usize];
    while per_shard.iter().any(|&n| n < 2) {
        assert!(namespaces.len() < 24, "the hash never reached both shards");
        let ns = TestNamespace::new(&client, "shard").await;
        let shard = shard_of(&ns.name, SHARDS);
        if per_shard[shard as usize] < 2 {
            per_shard[shard as usize] += 1;
            label(&client, &ns.name, selector).await;
            namespaces.push(ns);
        }
    }
    let outsider = TestNamespace::new(&client, "shard-out").await;

    // The first replica of each shard takes its Lease before the standbys start.
    let mut operators: BTreeMap<&str, Operator> = BTreeMap::new();
    for (name, shard) in [("shard0-a", 0), ("shard1-a", 1)] {
        let operator = replica(shard, name, &selector_text, &home.name).await;
        operator.await_metric(LEADER, |v| v == Some(1.0)).await;
        operators.insert(name, operator);
    }
    for (name, shard) in [("shard0-b", 0), ("shard1-b", 1)] {
        let operator = replica(shard, name, &selector_text, &home.name).await;
        operators.insert(name, operator);
    }
    let leases: Api<Lease> = Api::namespaced(client.clone(), &home.name);
    lease_held_by(&leases, 0, "shard0-a").await;
    let shard1_lease = lease_held_by(&leases, 1, "shard1-a").await;
    for name in ["shard0-b", "shard1-b"] {
        operators[name]
            .await_metric(LEADER, |v| v == Some(0.0))
            .await;
    }

    // One incident per namespace: each handled by its shard's leader, and only by it.
    let spec = json!({ "title": "Outage", "severity": "P2" });
    for ns in namespaces.iter().chain([&outsider]) {
        Api::<Incident>::namespaced(client.clone(), &ns.name)
            .create(&PostParams::default(), &incident("outage", spec.clone()))
            .await
            .expect("create Incident");
    }
    for ns in &namespaces {
        let leader = format!("shard{}-a", shard_of(&ns.name, SHARDS));
        assert_eq!(
            handled(&client, &ns.name, Phase::Detected).await,
            [leader],
            "{}",
            ns.name
        );
    }
    // Outside the selector nobody acted, though every namespace above has been handled.
    let outside: Api<Incident> = Api::namespaced(client.clone(), &outsider.name);
    let untouched = outside.get("outage").await.expect("get Incident");
    assert!(untouched.status.is_none(), "{untouched:#?}");
    assert!(
        reporters(&client, &outsider.name, "outage")
            .await
            .is_empty()
    );
    // Labelled, it joins its shard at once (no change to the incident needed).
    label(&client, &outsider.name, selector).await;
    let owner = format!("shard{}-a", shard_of(&outsider.name, SHARDS));
    assert_eq!(
        handled(&client, &outsider.name, Phase::Detected).await,
        [owner]
    );

    // Detection too: a crash-looping Deployment in one of shard 0's namespaces is detected by
    // shard 0's leader only (the detector writes Incidents with patches; shard 1's sent none).
    let target = namespaces
        .iter()
        .find(|ns| shard_of(&ns.name, SHARDS) == 0)
        .expect("a namespace of shard 0");
    Api::<Deployment>::namespaced(client.clone(), &target.name)
        .create(
            &PostParams::default(),
            &deployment("web", &["registry.local/web:2"], Some("crashloop")),
        )
        .await
        .expect("create Deployment");
    wait_for_all(
        &Api::<Incident>::namespaced(client.clone(), &target.name),
        DETECTED,
        "the crash loop detected",
        SETTLE,
        |found| found.len() == 1,
    )
    .await;
    assert!(
        operators["shard0-a"]
            .metric(DETECTOR_WRITES)
            .await
            .unwrap_or(0.0)
            > 0.0
    );
    assert_eq!(
        operators["shard1-a"]
            .metric(DETECTOR_WRITES)
            .await
            .unwrap_or(0.0),
        0.0,
        "shard 1 wrote an Incident"
    );

    // Kill shard 0's leader: its standby takes shard 0's namespaces; shard 1 is not disturbed.
    let killed = operators.remove("shard0-a").expect("shard0-a");
    killed.kill().await;
    lease_held_by(&leases, 0, "shard0-b").await;
    operators["shard0-b"]
        .await_metric(LEADER, |v| v == Some(1.0))
        .await;
    for ns in &namespaces {
        let api: Api<Incident> = Api::namespaced(client.clone(), &ns.name);
        edit(&api, "outage", json!({ "acknowledgment": { "by": "ana" } })).await;
    }
    for ns in &namespaces {
        let shard = shard_of(&ns.name, SHARDS);
        let mut expected = vec![format!("shard{shard}-a")];
        if shard == 0 {
            expected.push("shard0-b".to_owned());
        }
        assert_eq!(
            handled(&client, &ns.name, Phase::Acknowledged).await,
            expected,
            "{}: the acknowledgment is reported by the shard's leader of the moment",
            ns.name
        );
    }
    let after = leases
        .get(&format!("{LEASE}-shard-1-of-{SHARDS}"))
        .await
        .expect("shard 1's Lease");
    assert_eq!(holder(Some(&after)), holder(Some(&shard1_lease)));
    assert_eq!(
        after.spec.as_ref().and_then(|s| s.lease_transitions),
        shard1_lease.spec.as_ref().and_then(|s| s.lease_transitions),
        "shard 1 never changed hands"
    );
    assert_eq!(operators["shard1-b"].metric(LEADER).await, Some(0.0));
    for (_, operator) in operators {
        operator.stop().await;
    }
}
