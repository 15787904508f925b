//! Every replica serves the status page from its own watch cache: with two operators sharing a
//! Lease, the follower shows what the leader recorded, and keeps serving when the leader is killed
//! (before it takes over).

use std::time::{Duration, Instant};

use crate::{
    plugin::ok,
    status_page::{PageOperator, create_incident, create_page},
    support::{TestNamespace, client, install_crds},
};

const LEADER: &str = "incident_operator_leader";

async fn replica(ns: &str, pod: &str) -> PageOperator {
    let flags = [
        "--leader-elect",
        "true",
        "--leader-election-namespace",
        ns,
        "--leader-election-name",
        "status-page",
    ];
    PageOperator::start_with_env(ns, &flags, &[("POD_NAME", pod)]).await
}

#[tokio::test]
async fn the_follower_serves_the_page_and_keeps_serving_when_the_leader_dies() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::new(&client, "status-replicas").await;
    create_page(&client, &ns.name).await;
    create_incident(&client, &ns.name, "slow-checkout").await;
    let replicas = [
        replica(&ns.name, "op-a").await,
        replica(&ns.name, "op-b").await,
    ];
    let deadline = Instant::now() + Duration::from_secs(30);
    let leader = loop {
        let a = replicas[0].operator.metric(LEADER).await;
        let b = replicas[1].operator.metric(LEADER).await;
        match (a, b) {
            (Some(1.0), Some(0.0)) => break 0,
            (Some(0.0), Some(1.0)) => break 1,
            _ => assert!(Instant::now() < deadline, "no single leader: {a:?} / {b:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    ok(
        &ns.name,
        &[
            "publish",
            "slow-checkout",
            "--title",
            "Checkout is slow",
            "--component",
            "checkout",
            "--impact",
            "critical",
        ],
    )
    .await;
    ok(
        &ns.name,
        &[
            "update",
            "slow-checkout",
            "--public",
            "Payments fail for some users",
            "--status",
            "investigating",
        ],
    )
    .await;
    for page in &replicas {
        let summary = page
            .await_json("/api/v2/summary.json", "the update on this replica", |s| {
                s["incidents"][0]["incident_updates"][0]["body"] == "Payments fail for some users"
            })
            .await;
        assert_eq!(summary["status"]["indicator"], "critical");
    }
    let [a, b] = replicas;
    let (dead, follower) = if leader == 0 { (a, b) } else { (b, a) };
    dead.operator.kill().await;
    // At once, before the follower could hold the Lease: the page is its own, not the leader's.
    assert_eq!(follower.operator.metric(LEADER).await, Some(0.0));
    let summary = follower.json("/api/v2/summary.json").await;
    assert_eq!(summary["incidents"][0]["name"], "Checkout is slow");
    let (status, _, html) = follower.fetch("/", &[]).await;
    assert_eq!(status, 200);
    assert!(html.contains("Payments fail for some users"));
    follower.operator.stop().await;
}
