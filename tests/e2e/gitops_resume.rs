//! Rollbacks that stick, resumed by Git (issue 18): a rollback asked with `gitopsResume:
//! OnNewRevision` pauses the Kustomization as usual and records its GitRepository's revision; while
//! Git does not move, the pause holds across Flux's intervals; once the revert is pushed the
//! operator resumes the Kustomization by itself — recorded first, so the operator killed between
//! the record and the resume finishes it on restart, once — and Flux and the cluster agree.

use incident_operator::api::{EntryType, Incident, PauseState};
use k8s_openapi::api::apps::v1::Deployment;
use kube::{Api, api::PostParams};
use serde_json::json;

use crate::{
    flux::{
        FLUX_ACTS, GitOps, SOURCE, V1, git_repositories, images_are, kustomizations, manifest,
        outlast_intervals,
    },
    lifecycle::{action_succeeded, entries, settle},
    support::{Operator, TestNamespace, client, install_crds, wait_for},
};

fn suspended(k: &kube::api::DynamicObject) -> bool {
    k.data["spec"]["suspend"] == json!(true)
}

#[tokio::test]
async fn a_pause_asked_to_resume_on_a_new_revision_resumes_once_the_revert_is_in_git() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::new(&client, "gitops-resume").await;
    let gitops = GitOps::start(&client, &ns.name).await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns.name);
    let v1 = gitops.good_then_broken().await;
    let broken = git_repositories(&client, &ns.name)
        .get(SOURCE)
        .await
        .expect("the GitRepository")
        .data["status"]["artifact"]["revision"]
        .as_str()
        .map(str::to_owned)
        .expect("its revision");

    // Killed once it has recorded the resume, before it changes the Kustomization.
    let operator = Operator::start_with_env(
        &ns.name,
        &[],
        &[("INCIDENT_OPERATOR_FAILPOINT", "before-resume")],
    )
    .await;
    let incident: Incident = serde_json::from_value(json!({
        "apiVersion": "incident.dev/v1alpha1", "kind": "Incident", "metadata": { "name": "bad-deploy" },
        "spec": { "title": "app v2 crashes", "severity": "P1",
                  "affected": [{ "kind": "Deployment", "name": "app" }],
                  "actions": [{ "name": "undo",
                                "rollback": { "deployment": "app", "gitopsResume": "OnNewRevision" } }] },
    }))
    .expect("an Incident");
    incidents
        .create(&PostParams::default(), &incident)
        .await
        .expect("create the incident");
    let done = action_succeeded(&incidents, "bad-deploy", "undo").await;
    let status = done.status.clone().expect("status");
    assert_eq!(status.gitops.len(), 1, "one pause: {:#?}", status.gitops);
    let pause = &status.gitops[0];
    assert_eq!(pause.state, PauseState::Paused);
    assert!(pause.resume_on_new_revision, "{pause:#?}");
    assert_eq!(
        pause.source.as_deref(),
        Some(format!("Flux GitRepository {}/{SOURCE}", ns.name).as_str())
    );
    assert_eq!(pause.source_revision.as_deref(), Some(broken.as_str()));
    wait_for(&deployments, "app", "back on v1", FLUX_ACTS, |d| {
        images_are(d, V1)
    })
    .await;
    let said = crate::plugin::plugin(&ns.name, &["show", "bad-deploy"]).await;
    let said = String::from_utf8_lossy(&said.stdout).into_owned();
    assert!(
        said.contains(&format!(
            "resumes by itself once Flux GitRepository {}/{SOURCE} moves on from {broken}",
            ns.name
        )),
        "{said}"
    );

    // Git has not moved: the pause holds and the rollback stays across Flux's intervals.
    outlast_intervals(&deployments, "app", |d| {
        assert_eq!(crate::remediation::images(d), [V1], "the rollback stuck");
    })
    .await;
    let holding = incidents.get("bad-deploy").await.expect("the incident");
    assert_eq!(
        holding.status.as_ref().map(|s| s.gitops[0].state),
        Some(PauseState::Paused),
        "nothing new in Git, nothing resumed"
    );

    // The revert lands in Git: the operator records the resume and is killed before acting on it.
    let revert = gitops
        .git
        .commit("revert app v2", &[("app/deployment.yaml", &manifest(&v1))]);
    assert!(
        operator.exits_abnormally(FLUX_ACTS).await,
        "the failpoint stops it once the resume is recorded"
    );
    let recorded = incidents.get("bad-deploy").await.expect("the incident");
    let pause = &recorded.status.as_ref().expect("status").gitops[0];
    assert_eq!(pause.state, PauseState::Resuming, "{pause:#?}");
    assert_eq!(pause.resumed_by.as_deref(), Some("incident-operator"));
    let kustomization = kustomizations(&client, &ns.name)
        .get("app")
        .await
        .expect("the Kustomization");
    assert!(suspended(&kustomization), "not yet resumed when killed");

    // Restarted: it finishes the resume it recorded, once; Flux applies the revert.
    let operator = Operator::start(&ns.name, &[]).await;
    let resumed = settle(&incidents, "bad-deploy", "the Kustomization resumed", |i| {
        i.status
            .as_ref()
            .is_some_and(|s| s.gitops.iter().all(|p| p.state == PauseState::Resumed))
    })
    .await;
    assert_eq!(entries(&resumed, EntryType::GitOpsResumed), 1);
    assert_eq!(entries(&resumed, EntryType::GitOpsPaused), 1);
    let entry = resumed
        .status
        .as_ref()
        .and_then(|s| {
            s.timeline
                .iter()
                .find(|e| e.type_ == EntryType::GitOpsResumed)
        })
        .expect("the resume's entry");
    assert_eq!(entry.actor.as_deref(), Some("incident-operator"));
    assert!(
        entry
            .message
            .contains(&format!("has a new revision, main@sha1:{revert}")),
        "{}",
        entry.message
    );
    let applied = gitops.wait_applied("app", &revert).await;
    assert!(!suspended(&applied), "resumed: {:?}", applied.data["spec"]);
    wait_for(
        &deployments,
        "app",
        "Flux and the cluster agree on v1",
        FLUX_ACTS,
        |d| images_are(d, V1),
    )
    .await;
    let after = incidents.get("bad-deploy").await.expect("the incident");
    assert_eq!(entries(&after, EntryType::GitOpsResumed), 1, "resumed once");
    operator.stop().await;
}
