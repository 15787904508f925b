//! Rollbacks that stick for every kind (issue 18), with the real Flux: one Kustomization applies a
//! StatefulSet and a DaemonSet; their broken versions arrive through Git; an incident rolls both
//! back. The Kustomization is paused once (before the first rollback, naming the other workload it
//! applies), each is rolled back to its previous revision, and both stay so across several Flux
//! intervals.

use incident_operator::api::{ActionPhase, EntryType, Incident, PauseState};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use kube::{Api, api::PostParams};
use serde_json::json;

use crate::{
    flux::{FLUX_ACTS, GitOps, WITNESS, kustomizations, manifest, outlast_intervals},
    lifecycle::{entries, settle},
    parity_sets::{Kind, manifest as workload, revisions, rolled_out},
    support::{Operator, TestNamespace, client, install_crds, wait_for},
};

fn yaml(value: &serde_json::Value) -> String {
    serde_yaml_ng::to_string(value).expect("a manifest as YAML")
}

fn image(template: &k8s_openapi::api::core::v1::PodTemplateSpec) -> String {
    template
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_flux_kustomization_applying_a_statefulset_and_a_daemonset_is_paused_once_and_both_rollbacks_stick()
 {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::new(&client, "gitops-sets").await;
    let gitops = GitOps::start(&client, &ns.name).await;
    let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), &ns.name);
    let daemonsets: Api<DaemonSet> = Api::namespaced(client.clone(), &ns.name);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);

    // v1 of both, and the witness Deployment that shows Flux's intervals going by.
    let witness = crate::remediation::deployment("witness", &[WITNESS], None);
    let first = gitops.git.commit(
        "db and agent v1",
        &[
            ("sets/db.yaml", &yaml(&workload(Kind::StatefulSet, "db", 1))),
            (
                "sets/agent.yaml",
                &yaml(&workload(Kind::DaemonSet, "agent", 1)),
            ),
            ("witness/deployment.yaml", &manifest(&witness)),
        ],
    );
    gitops.kustomization("sets", "./sets").await;
    gitops.kustomization("witness", "./witness").await;
    gitops.wait_applied("sets", &first).await;
    gitops.wait_applied("witness", &first).await;
    rolled_out(&client, &ns.name, Kind::StatefulSet, "db").await;
    rolled_out(&client, &ns.name, Kind::DaemonSet, "agent").await;
    let second = gitops.git.commit(
        "db and agent v2",
        &[
            ("sets/db.yaml", &yaml(&workload(Kind::StatefulSet, "db", 2))),
            (
                "sets/agent.yaml",
                &yaml(&workload(Kind::DaemonSet, "agent", 2)),
            ),
        ],
    );
    gitops.wait_applied("sets", &second).await;
    rolled_out(&client, &ns.name, Kind::StatefulSet, "db").await;
    rolled_out(&client, &ns.name, Kind::DaemonSet, "agent").await;
    wait_for(&statefulsets, "db", "db v2 applied", FLUX_ACTS, |s| {
        s.is_some_and(|s| image(&s.spec.template) == "registry.local/db:2")
    })
    .await;

    let operator = Operator::start(&ns.name, &[]).await;
    let incident: Incident = serde_json::from_value(json!({
        "apiVersion": "incident.dev/v1alpha1", "kind": "Incident", "metadata": { "name": "bad-release" },
        "spec": { "title": "db and agent v2 misbehave", "severity": "P2",
                  "affected": [{ "kind": "StatefulSet", "name": "db" }, { "kind": "DaemonSet", "name": "agent" }],
                  "actions": [
                      { "name": "undo-db", "rollback": { "deployment": "db", "kind": "StatefulSet" } },
                      { "name": "undo-agent", "rollback": { "deployment": "agent", "kind": "DaemonSet" } } ] },
    }))
    .expect("an Incident");
    Api::<Incident>::namespaced(client.clone(), &ns.name)
        .create(&PostParams::default(), &incident)
        .await
        .expect("create the incident");
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns.name);
    let done = settle(&incidents, "bad-release", "both rollbacks succeeded", |i| {
        i.status.as_ref().is_some_and(|s| {
            s.actions.len() == 2 && s.actions.iter().all(|a| a.phase == ActionPhase::Succeeded)
        })
    })
    .await;
    let status = done.status.clone().expect("status");
    assert_eq!(status.gitops.len(), 1, "paused once: {:#?}", status.gitops);
    let pause = &status.gitops[0];
    assert_eq!(pause.state, PauseState::Paused);
    assert_eq!(
        pause.owner.to_string(),
        format!("Flux Kustomization {}/sets", ns.name)
    );
    assert_eq!(pause.workload, "StatefulSet/db");
    assert_eq!(
        pause.also_manages,
        [format!("DaemonSet/{}/agent", ns.name)],
        "says what else it holds still"
    );
    assert_eq!(entries(&done, EntryType::GitOpsPaused), 1);
    let sets = kustomizations(&client, &ns.name)
        .get("sets")
        .await
        .expect("the Kustomization");
    assert_eq!(sets.data["spec"]["suspend"], json!(true));
    rolled_out(&client, &ns.name, Kind::StatefulSet, "db").await;
    rolled_out(&client, &ns.name, Kind::DaemonSet, "agent").await;
    // `kubectl rollout undo` semantics: revision 1 comes back as revision 3.
    assert_eq!(revisions(&client, &ns.name, "db").await, [2, 3]);
    assert_eq!(revisions(&client, &ns.name, "agent").await, [2, 3]);
    let generations =
        |s: &StatefulSet, d: &DaemonSet| (s.metadata.generation, d.metadata.generation);
    let before = generations(
        &statefulsets.get("db").await.expect("db"),
        &daemonsets.get("agent").await.expect("agent"),
    );

    // Flux keeps reconciling the witness; nothing puts v2 back on the paused Kustomization's sets.
    outlast_intervals(&deployments, "witness", |_| {}).await;
    let db = statefulsets.get("db").await.expect("db");
    let agent = daemonsets.get("agent").await.expect("agent");
    assert_eq!(
        image(&db.spec.template),
        "registry.local/db:1",
        "db's rollback stuck"
    );
    assert_eq!(
        image(&agent.spec.template),
        "registry.local/agent:1",
        "agent's rollback stuck"
    );
    assert_eq!(
        generations(&db, &agent),
        before,
        "nobody wrote their specs since"
    );
    operator.stop().await;
}
