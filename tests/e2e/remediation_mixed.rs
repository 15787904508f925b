//! Every affected workload, every kind: an incident naming a Deployment, a StatefulSet and a
//! DaemonSet, followed by a runbook that rolls back automatically, rolls back each in the order
//! named, each exactly once, each verified before the next — with the operator aborted right
//! after the first workload's patch and again right after the second's (the failpoints the
//! single-workload crash tests use), a fresh operator finishing each time. A collect step gathers
//! the evidence of the first workload named, whatever its kind.

use incident_operator::api::{ActionPhase, EntryType, Incident, Runbook};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::json;

use crate::{
    parity_sets::{Kind, deploy, manifest, revisions as controller_revisions},
    remediation::{ROLLOUT, action, bad_deploy_history, images, revisions},
    support::{Operator, TestNamespace, client, install_crds, wait_for},
};

const INCIDENT: &str = "shop-down";
const ACTIONS: [&str; 3] = [
    "runbook-roll-back",
    "runbook-roll-back--2",
    "runbook-roll-back--3",
];

async fn setup() -> (Client, TestNamespace, Api<Incident>) {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::new(&client, "mixed").await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    tokio::join!(
        bad_deploy_history(&deployments, "web", 1),
        async {
            deploy(&client, &ns.name, Kind::StatefulSet, "db", 1).await;
            deploy(&client, &ns.name, Kind::StatefulSet, "db", 2).await;
        },
        async {
            deploy(&client, &ns.name, Kind::DaemonSet, "agent", 1).await;
            deploy(&client, &ns.name, Kind::DaemonSet, "agent", 2).await;
        },
    );
    let runbooks: Api<Runbook> = Api::namespaced(client.clone(), &ns.name);
    let runbook = json!({
        "apiVersion": "incident.dev/v1alpha1", "kind": "Runbook",
        "metadata": { "name": "roll-everything-back" },
        "spec": { "match": { "incidentSelector": { "matchLabels": { "service": "shop" } } },
                  "steps": [ { "name": "roll-back", "rollback": {}, "automaticFor": ["P2"] } ] },
    });
    runbooks
        .patch(
            "roll-everything-back",
            &PatchParams::apply("e2e").force(),
            &Patch::Apply(&runbook),
        )
        .await
        .expect("apply the Runbook");
    let incidents = Api::namespaced(client.clone(), &ns.name);
    (client, ns, incidents)
}

async fn open_incident(incidents: &Api<Incident>) {
    let incident: Incident = serde_json::from_value(json!({
        "apiVersion": "incident.dev/v1alpha1", "kind": "Incident",
        "metadata": { "name": INCIDENT, "labels": { "service": "shop" } },
        "spec": { "title": "shop broken after a release", "severity": "P2",
                  "affected": [ { "kind": "Deployment", "name": "web" },
                                { "kind": "StatefulSet", "name": "db" },
                                { "kind": "DaemonSet", "name": "agent" } ] },
    }))
    .expect("an Incident");
    incidents
        .create(&PostParams::default(), &incident)
        .await
        .expect("create the Incident");
}

fn image_of(template: &k8s_openapi::api::core::v1::PodTemplateSpec) -> String {
    template
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default()
}

async fn db_image(client: &Client, ns: &str) -> String {
    let api: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    image_of(&api.get("db").await.expect("get db").spec.template)
}

async fn agent_image(client: &Client, ns: &str) -> String {
    let api: Api<DaemonSet> = Api::namespaced(client.clone(), ns);
    image_of(&api.get("agent").await.expect("get agent").spec.template)
}

/// Runs an operator that aborts at `failpoint` and returns once it did.
async fn crash_at(ns: &str, failpoint: &str) {
    let operator =
        Operator::start_with_env(ns, &[], &[("INCIDENT_OPERATOR_FAILPOINT", failpoint)]).await;
    assert!(
        operator.exits_abnormally(ROLLOUT).await,
        "the operator aborted at {failpoint}"
    );
}

#[tokio::test]
async fn each_affected_workload_is_rolled_back_in_order_once_across_two_crashes() {
    let (client, ns, incidents) = setup().await;
    let ns = ns.name.clone();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    open_incident(&incidents).await;

    // Killed right after web's patch: db and agent untouched, nothing asked of them yet.
    crash_at(&ns, "after-patch:runbook-roll-back").await;
    let web = deployments.get("web").await.expect("get web");
    assert_eq!(images(&web), ["registry.local/web-0:2"]);
    assert_eq!(db_image(&client, &ns).await, "registry.local/db:2");
    assert_eq!(agent_image(&client, &ns).await, "registry.local/agent:2");
    let crashed = incidents.get(INCIDENT).await.expect("get the Incident");
    assert_eq!(crashed.spec.actions.len(), 1, "{:#?}", crashed.spec.actions);

    // Killed right after db's patch: web verified first, agent still untouched.
    crash_at(&ns, "after-patch:runbook-roll-back--2").await;
    let crashed = incidents.get(INCIDENT).await.expect("get the Incident");
    assert_eq!(
        action(&crashed, ACTIONS[0]).map(|a| a.phase),
        Some(ActionPhase::Succeeded),
        "web verified before db was touched"
    );
    assert_eq!(db_image(&client, &ns).await, "registry.local/db:1");
    assert_eq!(agent_image(&client, &ns).await, "registry.local/agent:2");

    let operator = Operator::start(&ns, &[]).await;
    let done = wait_for(
        &incidents,
        INCIDENT,
        "every action succeeded",
        ROLLOUT,
        |i| {
            i.is_some_and(|i| {
                ACTIONS
                    .iter()
                    .all(|name| action(i, name).is_some_and(|a| a.phase == ActionPhase::Succeeded))
            })
        },
    )
    .await
    .expect("the Incident");
    operator.stop().await;

    // Each exactly once: one new revision per workload, each at its previous version.
    assert_eq!(revisions(&client, &ns, "web").await, [1, 3, 4]);
    assert_eq!(controller_revisions(&client, &ns, "db").await, [2, 3]);
    assert_eq!(controller_revisions(&client, &ns, "agent").await, [2, 3]);
    assert_eq!(db_image(&client, &ns).await, "registry.local/db:1");
    assert_eq!(agent_image(&client, &ns).await, "registry.local/agent:1");
    // In the order named, each applied once.
    let status = done.status.as_ref().expect("status");
    let applied: Vec<&str> = status
        .timeline
        .iter()
        .filter(|e| e.type_ == EntryType::ActionApplied)
        .map(|e| e.message.as_str())
        .collect();
    assert_eq!(applied.len(), 3, "{applied:#?}");
    for (entry, target) in
        applied
            .iter()
            .zip(["deployment/web", "statefulset/db", "daemonset/agent"])
    {
        assert!(
            entry.starts_with(&format!("Rolled back {target} ")),
            "{applied:#?}"
        );
    }
    let kinds: Vec<String> = ACTIONS
        .iter()
        .filter_map(|name| action(&done, name))
        .map(|a| a.target())
        .collect();
    assert_eq!(
        kinds,
        ["deployment/web", "statefulset/db", "daemonset/agent"]
    );
}

#[tokio::test]
async fn a_collect_step_gathers_the_evidence_of_the_statefulset_the_incident_names() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::new(&client, "collect-sts").await;
    // Its pods crash (kwok's fault stage), as the StatefulSet's own pods: no Deployment in sight.
    let mut db = manifest(Kind::StatefulSet, "db", 1);
    db["spec"]["template"]["metadata"]["labels"]["incident.dev/fault"] = json!("crashloop");
    Api::<StatefulSet>::namespaced(client.clone(), &ns.name)
        .patch("db", &PatchParams::apply("e2e").force(), &Patch::Apply(&db))
        .await
        .expect("apply the StatefulSet");
    let runbook = json!({
        "apiVersion": "incident.dev/v1alpha1", "kind": "Runbook",
        "metadata": { "name": "look-first" },
        "spec": { "match": { "incidentSelector": { "matchLabels": { "service": "db" } } },
                  "steps": [ { "name": "gather", "collect": { "events": true, "podStates": true } } ] },
    });
    Api::<Runbook>::namespaced(client.clone(), &ns.name)
        .patch(
            "look-first",
            &PatchParams::apply("e2e").force(),
            &Patch::Apply(&runbook),
        )
        .await
        .expect("apply the Runbook");
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns.name);
    let incident: Incident = serde_json::from_value(json!({
        "apiVersion": "incident.dev/v1alpha1", "kind": "Incident",
        "metadata": { "name": "db-down", "labels": { "service": "db" } },
        "spec": { "title": "db crashes", "severity": "P3",
                  "affected": [ { "kind": "StatefulSet", "name": "db" } ] },
    }))
    .expect("an Incident");
    // Created once its pods crash, so that the step finds them.
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), &ns.name);
    wait_for(&pods, "db-0", "db-0 crash-looping", ROLLOUT, |p| {
        p.and_then(|p| p.status.as_ref()?.container_statuses.clone())
            .is_some_and(|c| {
                c.iter().any(|c| {
                    c.state
                        .as_ref()
                        .and_then(|s| s.waiting.as_ref())
                        .is_some_and(|w| w.reason.as_deref() == Some("CrashLoopBackOff"))
                })
            })
    })
    .await;
    let operator = Operator::start(&ns.name, &[]).await;
    incidents
        .create(&PostParams::default(), &incident)
        .await
        .expect("create the Incident");
    let done = wait_for(
        &incidents,
        "db-down",
        "the collect step gathered",
        ROLLOUT,
        |i| {
            i.and_then(|i| {
                i.status
                    .as_ref()?
                    .runbook
                    .as_ref()?
                    .progress
                    .first()
                    .cloned()
            })
            .is_some_and(|p| p.evidence.is_some())
        },
    )
    .await
    .expect("the Incident");
    operator.stop().await;
    let gathered = done
        .status
        .and_then(|s| s.runbook?.progress.first()?.evidence.clone())
        .expect("evidence");
    assert!(
        gathered
            .containers
            .iter()
            .any(|c| c.pod.starts_with("db-") && c.state == "CrashLoopBackOff"),
        "the StatefulSet's crashing pods: {gathered:#?}"
    );
}
