//! Rollbacks that stick with Argo CD (issue 18): Argo CD's own Application CRD (from the release's
//! module, hack/cluster/argocd-crds.sh) on the real API server; no Argo CD controller runs here (see
//! docs/gitops.md). What the operator does is checked on the objects: the Deployment carries Argo
//! CD's tracking annotation, the Application lists it; the rollback first turns automated sync off
//! (recording exactly what it was), rolls back, and `resume-gitops` puts automated sync back as it was.

use std::path::PathBuf;

use incident_operator::api::{EntryType, Incident, PauseState};
use k8s_openapi::api::apps::v1::Deployment;
use kube::{
    Api,
    api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams},
};
use serde_json::json;

use crate::{
    lifecycle::{action_succeeded, entries, settle},
    notifications::{DELIVERY, channel, secret},
    receiver::{Receiver, SECRET},
    remediation::{bad_deploy_history, revisions},
    support::{Operator, TestNamespace, client, install_crds},
};

/// The directory of Argo CD's CRDs: INCIDENT_E2E_ARGOCD_CRDS (as `make test` sets it), else the
/// script's answer.
fn crds_dir() -> PathBuf {
    let how = "run hack/cluster/argocd-crds.sh and set INCIDENT_E2E_ARGOCD_CRDS to the directory it \
               prints, or run `make test`";
    let dir = match std::env::var_os("INCIDENT_E2E_ARGOCD_CRDS") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/hack/cluster/argocd-crds.sh");
            let output = std::process::Command::new(script)
                .stderr(std::process::Stdio::inherit())
                .output()
                .unwrap_or_else(|e| panic!("run {script}: {e}; {how}"));
            assert!(output.status.success(), "{script} failed; {how}");
            PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
        }
    };
    assert!(
        dir.join("application-crd.yaml").is_file(),
        "no application-crd.yaml in {}; {how}",
        dir.display()
    );
    dir
}

fn applications(client: &kube::Client, ns: &str) -> Api<DynamicObject> {
    let resource = ApiResource {
        group: "argoproj.io".into(),
        version: "v1alpha1".into(),
        api_version: "argoproj.io/v1alpha1".into(),
        kind: "Application".into(),
        plural: "applications".into(),
    };
    Api::namespaced_with(client.clone(), ns, &resource)
}

#[tokio::test]
async fn a_rollback_of_an_argo_cd_deployment_turns_automated_sync_off_once_and_back_on_resume() {
    let client = client().await;
    install_crds(&client).await;
    crate::support::apply_crd_files(&client, &[crds_dir().join("application-crd.yaml")]).await;

    let ns = TestNamespace::new(&client, "gitops-argocd").await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    bad_deploy_history(&deployments, "web", 1).await;
    // As Argo CD marks what it applies (an Application outside its own namespace: `<ns>_<name>`).
    let tracking = format!("{0}_shop:apps/Deployment:{0}/web", ns.name);
    deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "annotations": {
                "argocd.argoproj.io/tracking-id": tracking } } })),
        )
        .await
        .expect("mark the Deployment");
    let automated = json!({ "prune": true, "selfHeal": true });
    let application: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": { "name": "shop" },
        "spec": { "project": "default",
                  "destination": { "server": "https://kubernetes.default.svc", "namespace": ns.name },
                  "source": { "repoURL": "https://git.example.com/shop.git", "path": "deploy", "targetRevision": "HEAD" },
                  "syncPolicy": { "automated": automated } },
        "status": { "sync": { "status": "Synced", "revision": "4f2c1a9" },
                    "resources": [ { "group": "apps", "version": "v1", "kind": "Deployment",
                                     "namespace": ns.name, "name": "web" } ] },
    }))
    .expect("an Application");
    let apps = applications(&client, &ns.name);
    apps.create(&PostParams::default(), &application)
        .await
        .expect("create the Application");

    // The team's channel hears of the pause and the resume.
    let receiver = Receiver::start(Some(SECRET)).await;
    secret(&client, &ns.name, "hook", &receiver.url(), Some(SECRET)).await;
    channel(
        &client,
        &ns.name,
        "team",
        "hook",
        true,
        json!({ "events": ["GitOpsPaused", "GitOpsResumed"] }),
    )
    .await;
    let operator = Operator::start(&ns.name, &[]).await;
    let incident: Incident = serde_json::from_value(json!({
        "apiVersion": "incident.dev/v1alpha1", "kind": "Incident", "metadata": { "name": "bad-deploy" },
        "spec": { "title": "web v3 crashes", "severity": "P2",
                  "actions": [{ "name": "undo", "rollback": { "deployment": "web" } }] },
    }))
    .expect("an Incident");
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns.name);
    incidents
        .create(&PostParams::default(), &incident)
        .await
        .expect("create the incident");
    let done = action_succeeded(&incidents, "bad-deploy", "undo").await;
    assert_eq!(
        revisions(&client, &ns.name, "web").await,
        [1, 3, 4],
        "rolled back once"
    );
    let status = done.status.clone().expect("status");
    assert_eq!(status.gitops.len(), 1, "{:#?}", status.gitops);
    let pause = &status.gitops[0];
    assert_eq!(pause.state, PauseState::Paused);
    assert_eq!(
        pause.owner.to_string(),
        format!("Argo CD Application {}/shop", ns.name)
    );
    assert_eq!(
        pause.previous.as_deref(),
        Some(automated.to_string().as_str())
    );
    assert_eq!(pause.revision.as_deref(), Some("4f2c1a9"));
    assert_eq!(entries(&done, EntryType::GitOpsPaused), 1);
    // What the operator wrote: automated sync gone (self-heal off), and nothing else.
    let paused = apps.get("shop").await.expect("the Application");
    assert!(
        paused.data["spec"]["syncPolicy"]["automated"].is_null(),
        "{:?}",
        paused.data["spec"]
    );
    assert_eq!(
        paused.data["spec"]["source"]["path"], "deploy",
        "nothing else changed"
    );

    // Resume: automated sync back exactly as it was, once.
    let asked = crate::plugin::plugin(&ns.name, &["resume-gitops", "bad-deploy"]).await;
    assert!(
        asked.status.success(),
        "{}",
        String::from_utf8_lossy(&asked.stderr)
    );
    let resumed = settle(&incidents, "bad-deploy", "the Application resumed", |i| {
        i.status
            .as_ref()
            .is_some_and(|s| s.gitops.iter().all(|p| p.state == PauseState::Resumed))
    })
    .await;
    assert_eq!(entries(&resumed, EntryType::GitOpsResumed), 1);
    let back = apps.get("shop").await.expect("the Application");
    assert_eq!(back.data["spec"]["syncPolicy"]["automated"], automated);
    // Said to people: what was paused and what to do, then that it resumed (signed, verified).
    let received = receiver
        .wait_for("the pause and the resume said", DELIVERY, |r| {
            crate::receiver::events(r).len() >= 2
        })
        .await;
    assert_eq!(
        crate::receiver::events(&received),
        ["GitOpsPaused", "GitOpsResumed"]
    );
    let said = received[0]["body"]["text"].as_str().unwrap_or_default();
    assert!(
        said.contains(&format!("Paused Argo CD Application {}/shop", ns.name))
            && said.contains("Revert the change in Git"),
        "{said}"
    );
    assert!(
        received.iter().all(|r| r["verified"] == true),
        "{received:?}"
    );
    operator.stop().await;
}
