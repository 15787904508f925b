//! Rollbacks that stick (issue 18), with the real Flux: the broken version arrives through Git,
//! an incident asks for a rollback, the operator pauses the Kustomization that applies the
//! Deployment (recorded first) and rolls back; the cluster stays on the good version across
//! several Flux intervals; after the revert is pushed, `resume-gitops` puts the Kustomization back
//! and Flux and the cluster agree. The operator is killed right after the pause: nothing is
//! paused twice and nothing is lost.

use incident_operator::api::{EntryType, Incident, PauseState};
use k8s_openapi::api::apps::v1::Deployment;
use kube::{Api, api::PostParams};
use serde_json::json;

use crate::{
    flux::{FLUX_ACTS, GitOps, V1, images_are, kustomizations, manifest, outlast_intervals},
    lifecycle::{action_succeeded, entries, settle},
    support::{Operator, TestNamespace, client, install_crds, wait_for},
};

fn suspended(k: &kube::api::DynamicObject) -> bool {
    k.data["spec"]["suspend"] == json!(true)
}

#[tokio::test]
async fn a_rollback_of_a_flux_deployment_pauses_its_kustomization_once_and_sticks() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::new(&client, "gitops-rollback").await;
    let gitops = GitOps::start(&client, &ns.name).await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns.name);
    let v1 = gitops.good_then_broken().await;

    // Killed right after the pause, before the rollback.
    let operator = Operator::start_with_env(
        &ns.name,
        &[],
        &[("INCIDENT_OPERATOR_FAILPOINT", "after-pause")],
    )
    .await;
    let incident: Incident = serde_json::from_value(json!({
        "apiVersion": "incident.dev/v1alpha1", "kind": "Incident", "metadata": { "name": "bad-deploy" },
        "spec": { "title": "app v2 crashes", "severity": "P1",
                  "affected": [{ "kind": "Deployment", "name": "app" }],
                  "actions": [{ "name": "undo", "rollback": { "deployment": "app" } }] },
    }))
    .expect("an Incident");
    incidents
        .create(&PostParams::default(), &incident)
        .await
        .expect("create the incident");
    assert!(
        operator.exits_abnormally(FLUX_ACTS).await,
        "the failpoint stops it after the pause"
    );
    let kustomization = kustomizations(&client, &ns.name)
        .get("app")
        .await
        .expect("the Kustomization");
    assert!(suspended(&kustomization), "paused before the kill");

    // Restarted: the pause is found, recorded once, and the rollback goes on.
    let operator = Operator::start(&ns.name, &[]).await;
    let done = action_succeeded(&incidents, "bad-deploy", "undo").await;
    let status = done.status.clone().expect("status");
    assert_eq!(status.gitops.len(), 1, "one pause: {:#?}", status.gitops);
    let pause = &status.gitops[0];
    assert_eq!(pause.state, PauseState::Paused);
    assert_eq!(
        pause.owner.to_string(),
        format!("Flux Kustomization {}/app", ns.name)
    );
    assert_eq!(pause.workload, "Deployment/app");
    assert_eq!(pause.previous.as_deref(), Some("false"));
    assert!(pause.also_manages.is_empty(), "{pause:#?}");
    assert_eq!(entries(&done, EntryType::GitOpsPaused), 1);
    wait_for(&deployments, "app", "back on v1", FLUX_ACTS, |d| {
        images_are(d, V1)
    })
    .await;

    // Flux keeps reconciling (the witness drifts and comes back); the rollback stays.
    outlast_intervals(&deployments, "app", |d| {
        assert_eq!(crate::remediation::images(d), [V1], "the rollback stuck");
    })
    .await;

    // The fix in Git (the revert), then resume: Flux applies the revert, and agrees with the cluster.
    let revert = gitops
        .git
        .commit("revert app v2", &[("app/deployment.yaml", &manifest(&v1))]);
    // As a person does it: the plugin asks, naming what it resumes.
    let asked = crate::plugin::plugin(&ns.name, &["resume-gitops", "bad-deploy"]).await;
    let said = String::from_utf8_lossy(&asked.stdout);
    assert!(
        asked.status.success(),
        "{said} {}",
        String::from_utf8_lossy(&asked.stderr)
    );
    assert!(
        said.contains(&format!("resuming Flux Kustomization {}/app", ns.name)),
        "{said}"
    );
    let resumed = settle(&incidents, "bad-deploy", "the Kustomization resumed", |i| {
        i.status
            .as_ref()
            .is_some_and(|s| s.gitops.iter().all(|p| p.state == PauseState::Resumed))
    })
    .await;
    assert_eq!(entries(&resumed, EntryType::GitOpsResumed), 1);
    let applied = gitops.wait_applied("app", &revert).await;
    assert!(!suspended(&applied), "resumed: {:?}", applied.data["spec"]);
    // Flux's apply of the revert may touch the spec (a new generation to observe): wait for it.
    wait_for(
        &deployments,
        "app",
        "Flux and the cluster agree on v1",
        FLUX_ACTS,
        |d| images_are(d, V1),
    )
    .await;
    // Resumed once: asking again changes nothing.
    let after = incidents.get("bad-deploy").await.expect("the incident");
    assert_eq!(entries(&after, EntryType::GitOpsResumed), 1);
    assert_eq!(entries(&after, EntryType::GitOpsPaused), 1);
    operator.stop().await;
}
