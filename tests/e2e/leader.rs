//! Leader election: two operator processes share one Lease; only the leader acts, a SIGKILLed
//! leader is replaced within 15 s, and no remediation action runs twice across the handover.

use std::time::{Duration, Instant};

use incident_operator::api::{ActionPhase, EntryType, Incident};
use k8s_openapi::api::{apps::v1::Deployment, coordination::v1::Lease};
use kube::{
    Api,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::json;

use crate::{
    remediation::{
        action, action_settles, bad_deploy_history, images, request_rollback, revision, revisions,
    },
    support::{Operator, TestNamespace, client, install_crds, wait_for},
};

const LEASE: &str = "e2e-incident-operator";
const TAKEOVER_BUDGET: Duration = Duration::from_secs(15);
const LEADER: &str = "incident_operator_leader";
const RECONCILIATIONS: &str = "incident_operator_reconciliations_total";
const ROLLBACKS: &str = r#"incident_operator_actions_total{kind="rollback",result="succeeded"}"#;
const RESTARTS: &str = r#"incident_operator_actions_total{kind="restart",result="succeeded"}"#;

async fn start(ns: &str, pod: &str) -> Operator {
    start_with_env(ns, pod, &[]).await
}

async fn start_with_env(ns: &str, pod: &str, env: &[(&str, &str)]) -> Operator {
    let mut env = env.to_vec();
    env.push(("POD_NAME", pod));
    Operator::start_with_env(
        ns,
        &[
            "--leader-elect",
            "true",
            "--leader-election-namespace",
            ns,
            "--leader-election-name",
            LEASE,
        ],
        &env,
    )
    .await
}

/// Polls both operators until exactly one reports leader=1; returns its index.
async fn one_leader(operators: [&Operator; 2], within: Duration) -> usize {
    let deadline = Instant::now() + within;
    loop {
        let a = operators[0].metric(LEADER).await;
        let b = operators[1].metric(LEADER).await;
        match (a, b) {
            (Some(1.0), Some(0.0)) => return 0,
            (Some(0.0), Some(1.0)) => return 1,
            (Some(1.0), Some(1.0)) => panic!("two leaders at once"),
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "no single leader within {within:?}: {a:?} / {b:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn holder(lease: Option<&Lease>) -> Option<String> {
    lease?.spec.as_ref()?.holder_identity.clone()
}

fn count(incident: &Incident, type_: EntryType) -> usize {
    incident
        .status
        .as_ref()
        .map(|s| s.timeline.iter().filter(|e| e.type_ == type_).count())
        .unwrap_or(0)
}

#[tokio::test]
async fn only_the_leader_acts_and_a_killed_leader_is_replaced_without_repeating_actions() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::new(&client, "leader").await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns.name);
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns.name);
    bad_deploy_history(&deployments, "web", 1).await;

    let mut operators = vec![start(&ns.name, "op-a").await, start(&ns.name, "op-b").await];
    let first = one_leader([&operators[0], &operators[1]], TAKEOVER_BUDGET).await;
    let (leader_pod, follower_pod) = if first == 0 {
        ("op-a_", "op-b_")
    } else {
        ("op-b_", "op-a_")
    };
    let lease = leases.get(LEASE).await.expect("the Lease exists");
    assert!(
        holder(Some(&lease)).is_some_and(|h| h.starts_with(leader_pod)),
        "the Lease names the leader: {lease:#?}"
    );

    // The leader rolls back, once; the follower does nothing.
    request_rollback(&incidents, "web-down", "web").await;
    let done = action_settles(&incidents, "web-down", "undo").await;
    let undo = action(&done, "undo").expect("action status");
    assert_eq!(undo.phase, ActionPhase::Succeeded, "{undo:#?}");
    assert_eq!(revisions(&client, &ns.name, "web").await, [1, 3, 4]);
    let leader = &operators[first];
    let follower = &operators[1 - first];
    leader.await_metric(ROLLBACKS, |v| v == Some(1.0)).await;
    assert_eq!(follower.metric(ROLLBACKS).await, None, "the follower acted");
    assert_eq!(
        follower.metric(RECONCILIATIONS).await,
        Some(0.0),
        "the follower ran the incident controller"
    );
    assert_eq!(follower.metric(LEADER).await, Some(0.0), "still following");

    // SIGKILL the leader: it cannot release the Lease, which must expire.
    let killed = operators.remove(first);
    killed.kill().await;
    let killed_at = Instant::now();
    let survivor = operators.remove(0);
    loop {
        if survivor.metric(LEADER).await == Some(1.0) {
            break;
        }
        assert!(
            killed_at.elapsed() < TAKEOVER_BUDGET,
            "the follower did not take over within {TAKEOVER_BUDGET:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let takeover = killed_at.elapsed();
    eprintln!("leader election: takeover {takeover:?} after SIGKILL");
    assert!(takeover < TAKEOVER_BUDGET, "took over after {takeover:?}");
    let lease = leases.get(LEASE).await.expect("the Lease exists");
    assert!(
        holder(Some(&lease)).is_some_and(|h| h.starts_with(follower_pod)),
        "the Lease names the new leader: {lease:#?}"
    );
    assert!(
        lease
            .spec
            .as_ref()
            .and_then(|s| s.lease_transitions)
            .is_some_and(|t| t >= 1),
        "a change of holder is counted: {lease:#?}"
    );

    // The new leader continues: a second action runs, the first is not repeated.
    let more = json!({ "spec": { "actions": [
        { "name": "undo", "rollback": { "deployment": "web" } },
        { "name": "bounce", "restart": { "deployment": "web" } },
    ] } });
    incidents
        .patch("web-down", &PatchParams::default(), &Patch::Merge(&more))
        .await
        .expect("add an action");
    let done = action_settles(&incidents, "web-down", "bounce").await;
    let bounce = action(&done, "bounce").expect("action status");
    assert_eq!(bounce.phase, ActionPhase::Succeeded, "{bounce:#?}");
    survivor.await_metric(RESTARTS, |v| v == Some(1.0)).await;
    assert_eq!(
        survivor.metric(ROLLBACKS).await,
        None,
        "the rollback ran again in the new leader"
    );
    let undo = action(&done, "undo").expect("action status");
    assert_eq!(undo.phase, ActionPhase::Succeeded);
    assert_eq!((undo.from_revision, undo.to_revision), (Some(3), Some(2)));
    assert_eq!(count(&done, EntryType::ActionStarted), 2, "{done:#?}");
    assert_eq!(count(&done, EntryType::ActionSucceeded), 2, "{done:#?}");
    // One revision per action: rollback → 4, restart → 5; nothing else.
    assert_eq!(revisions(&client, &ns.name, "web").await, [1, 3, 4, 5]);
    let web = deployments.get("web").await.expect("get Deployment");
    assert_eq!(revision(&web).as_deref(), Some("5"));
    assert_eq!(images(&web), ["registry.local/web-0:2"]);

    // A clean stop hands the Lease over at once: no holder left.
    survivor.stop().await;
    wait_for(
        &leases,
        LEASE,
        "Lease released on SIGTERM",
        Duration::from_secs(5),
        |l| holder(l).is_none(),
    )
    .await;
}

#[tokio::test]
async fn a_leader_that_loses_its_lease_stops_acting_and_exits_non_zero() {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::new(&client, "leader-lost").await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns.name);
    let operator = start(&ns.name, "op-a").await;
    operator.await_metric(LEADER, |v| v == Some(1.0)).await;

    // Another holder takes the Lease (as after a partition): the old leader must give up.
    let mut lease = leases.get(LEASE).await.expect("the Lease exists");
    let spec = lease.spec.get_or_insert_with(Default::default);
    spec.holder_identity = Some("intruder".into());
    spec.renew_time = Some(MicroTime(jiff::Timestamp::now()));
    spec.lease_duration_seconds = Some(60);
    leases
        .replace(LEASE, &PostParams::default(), &lease)
        .await
        .expect("take the Lease");
    let taken_at = Instant::now();
    assert!(
        operator.exits_abnormally(Duration::from_secs(10)).await,
        "a leader that lost the Lease exits non-zero to restart as a follower"
    );
    eprintln!(
        "leader election: old leader exited {:?} after losing the Lease",
        taken_at.elapsed()
    );
    let lease = leases.get(LEASE).await.expect("the Lease exists");
    assert_eq!(
        holder(Some(&lease)).as_deref(),
        Some("intruder"),
        "the old leader neither released nor retook a Lease that is not its own"
    );
}

#[tokio::test]
async fn a_leader_killed_between_patch_and_record_is_replaced_and_the_rollback_is_not_repeated() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::new(&client, "leader-mid").await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns.name);
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns.name);
    bad_deploy_history(&deployments, "web", 1).await;

    // op-a leads and dies the instant its rollback patch lands, before recording it; op-b follows.
    let doomed = start_with_env(
        &ns.name,
        "op-a",
        &[("INCIDENT_OPERATOR_FAILPOINT", "after-patch")],
    )
    .await;
    doomed.await_metric(LEADER, |v| v == Some(1.0)).await;
    let survivor = start(&ns.name, "op-b").await;
    survivor.await_metric(LEADER, |v| v == Some(0.0)).await;

    request_rollback(&incidents, "web-down", "web").await;
    assert!(
        doomed.exits_abnormally(Duration::from_secs(60)).await,
        "the failpoint aborted the leader after its patch"
    );
    let died_at = Instant::now();
    let web = deployments.get("web").await.expect("get Deployment");
    assert_eq!(images(&web), ["registry.local/web-0:2"], "the patch landed");
    let crashed = incidents.get("web-down").await.expect("get Incident");
    assert_eq!(
        action(&crashed, "undo").map(|a| a.phase),
        Some(ActionPhase::Running),
        "the leader died before recording the outcome"
    );

    // The follower takes over once the Lease expires and finishes the same action.
    survivor.await_metric(LEADER, |v| v == Some(1.0)).await;
    let takeover = died_at.elapsed();
    eprintln!("leader election: takeover {takeover:?} after a crash mid-rollback");
    assert!(takeover < TAKEOVER_BUDGET, "took over after {takeover:?}");
    let lease = leases.get(LEASE).await.expect("the Lease exists");
    assert!(
        holder(Some(&lease)).is_some_and(|h| h.starts_with("op-b_")),
        "the Lease names the new leader: {lease:#?}"
    );
    let done = action_settles(&incidents, "web-down", "undo").await;
    let undo = action(&done, "undo").expect("action status");
    assert_eq!(undo.phase, ActionPhase::Succeeded, "{undo:#?}");
    assert_eq!((undo.from_revision, undo.to_revision), (Some(3), Some(2)));
    // A second rollback would have re-deployed v3 as revision 5.
    assert_eq!(revisions(&client, &ns.name, "web").await, [1, 3, 4]);
    let web = deployments.get("web").await.expect("get Deployment");
    assert_eq!(revision(&web).as_deref(), Some("4"));
    assert_eq!(count(&done, EntryType::ActionApplied), 1, "{done:#?}");
    assert_eq!(count(&done, EntryType::ActionSucceeded), 1, "{done:#?}");
    survivor.stop().await;
}
