//! More of what the operator's GitOps work relies on, shown with the real Flux (tests/e2e/flux.rs
//! has the harness and the problem itself): how a revert in Git is seen while the Kustomization is
//! suspended, and the per-object alternative to suspending a whole Kustomization.

use k8s_openapi::api::apps::v1::Deployment;
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
};
use serde_json::json;

use crate::{
    flux::{
        FLUX_ACTS, GitOps, OWNER_NAME, SOURCE, V1, V2, flux_dir, git_repositories, helm_releases,
        images_are, install_flux_crds, kustomizations, manifest, outlast_intervals, ready,
        roll_back_by_hand,
    },
    remediation::{ROLLOUT, images, rolled_out},
    support::{TestNamespace, client, wait_for},
};

/// Suspended, a Kustomization does not apply a new commit: the GitRepository's artifact moves to
/// it (`.status.artifact.revision`) while the Kustomization's `.status.lastAppliedRevision` stays
/// behind, which is how "Git was reverted" can be seen before resuming. Resumed after the revert,
/// Flux applies the revert; the rollback already matched it, so the Deployment's spec is untouched
/// (no new rollout).
#[tokio::test]
async fn a_revert_in_git_waits_for_resume_and_then_needs_no_rollout() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "flux-revert").await;
    let gitops = GitOps::start(&client, &ns.name).await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let v1 = gitops.good_then_broken().await;
    let broken_revision = kustomizations(&client, &ns.name)
        .get("app")
        .await
        .expect("read the Kustomization")
        .data["status"]["lastAppliedRevision"]
        .clone();

    gitops.suspend("app", true).await;
    roll_back_by_hand(&deployments, "app", &v1).await;
    let rolled_back = wait_for(&deployments, "app", "rolled back", ROLLOUT, |d| {
        d.is_some_and(|d| images(d) == [V1] && rolled_out(d))
    })
    .await
    .expect("the Deployment exists");

    // The developer reverts in Git; source-controller fetches it, kustomize-controller waits.
    let revert = gitops
        .git
        .commit("revert app v2", &[("app/deployment.yaml", &manifest(&v1))]);
    let revision = format!("main@sha1:{revert}");
    wait_for(
        &git_repositories(&client, &ns.name),
        SOURCE,
        "the revert fetched",
        FLUX_ACTS,
        |g| g.is_some_and(|g| g.data["status"]["artifact"]["revision"] == revision.as_str()),
    )
    .await;
    outlast_intervals(&deployments, "app", |d| {
        assert_eq!(images(d), [V1]);
    })
    .await;
    let waiting = kustomizations(&client, &ns.name)
        .get("app")
        .await
        .expect("read the Kustomization");
    assert_eq!(
        waiting.data["status"]["lastAppliedRevision"], broken_revision,
        "a suspended Kustomization applies no new revision"
    );
    assert_eq!(
        waiting.data["status"]["lastAttemptedRevision"], broken_revision,
        "nor attempts one"
    );

    // Resumed: the revert is applied, and it changes nothing in the Deployment's spec.
    gitops.suspend("app", false).await;
    let applied = gitops.wait_applied("app", &revert).await;
    assert!(ready(&applied));
    let after = deployments.get("app").await.expect("read the Deployment");
    assert_eq!(images(&after), [V1]);
    assert_eq!(
        after.metadata.generation, rolled_back.metadata.generation,
        "applying the revert over the rollback is no new rollout"
    );
}

/// The label or annotation `kustomize.toolkit.fluxcd.io/reconcile: disabled` on the object in the
/// cluster makes kustomize-controller skip that object alone: the rollback stays while the
/// Kustomization goes on reconciling (Ready, at its interval) everything else it applies. Taking
/// the annotation away puts Git's version back at the next interval.
#[tokio::test]
async fn an_object_marked_reconcile_disabled_keeps_its_rollback_while_its_kustomization_runs() {
    const DISABLED: &str = "kustomize.toolkit.fluxcd.io/reconcile";
    let client = client().await;
    let ns = TestNamespace::new(&client, "flux-object").await;
    let gitops = GitOps::start(&client, &ns.name).await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let v1 = gitops.good_then_broken().await;

    let annotate =
        |value: Option<&str>| json!({ "metadata": { "annotations": { DISABLED: value } } });
    let params = PatchParams::default();
    deployments
        .patch("app", &params, &Patch::Merge(annotate(Some("disabled"))))
        .await
        .expect("annotate the Deployment");
    // Once a reconcile requested after the annotation is handled, none that missed it is running.
    gitops.reconcile_now("app").await;
    roll_back_by_hand(&deployments, "app", &v1).await;
    let kept = wait_for(&deployments, "app", "rolled back", FLUX_ACTS, |d| {
        images_are(d, V1)
    })
    .await
    .expect("the Deployment exists");
    // The witness lives in another Kustomization; this one's own reconciles must go on too.
    let before = kustomizations(&client, &ns.name)
        .get("app")
        .await
        .expect("read the Kustomization");
    outlast_intervals(&deployments, "app", |d| {
        assert_eq!(images(d), [V1], "the rollback stays");
        assert_eq!(d.metadata.generation, kept.metadata.generation);
    })
    .await;
    // Each reconcile turns Ready to Unknown ("Reconciliation in progress") and back: wait for True.
    let after = wait_for(
        &kustomizations(&client, &ns.name),
        "app",
        "the Kustomization goes on, Ready",
        FLUX_ACTS,
        |k| k.is_some_and(ready),
    )
    .await
    .expect("the Kustomization exists");
    assert_eq!(
        after.data["spec"]["suspend"],
        before.data["spec"]["suspend"]
    );

    deployments
        .patch("app", &params, &Patch::Merge(annotate(None)))
        .await
        .expect("remove the annotation");
    wait_for(&deployments, "app", "Git's v2 back", FLUX_ACTS, |d| {
        images_are(d, V2)
    })
    .await;
}

/// The HelmRelease CRD is installed with the others (generated from helm-controller's API module;
/// no helm-controller runs here), so the operator's patch can be checked against its schema:
/// `spec.suspend` is a boolean on `helm.toolkit.fluxcd.io/v2`, as on a Kustomization.
#[tokio::test]
async fn a_helmrelease_takes_the_same_suspend_patch() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "flux-helm").await;
    install_flux_crds(&client, &flux_dir()).await;
    let api = helm_releases(&client, &ns.name);
    let release = json!({
        "apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
        "metadata": { "name": "app" },
        "spec": { "interval": "2s", "chart": { "spec": {
            "chart": "app", "sourceRef": { "kind": "HelmRepository", "name": "charts" } } } }
    });
    api.patch(
        "app",
        &PatchParams::apply("incident-e2e"),
        &Patch::Apply(&release),
    )
    .await
    .expect("create a HelmRelease");
    let suspend = |value: serde_json::Value| json!({ "spec": { "suspend": value } });
    let patched = api
        .patch(
            "app",
            &PatchParams::default(),
            &Patch::Merge(suspend(json!(true))),
        )
        .await
        .expect("suspend the HelmRelease");
    assert_eq!(patched.data["spec"]["suspend"], true);
    let refused = api
        .patch(
            "app",
            &PatchParams::default(),
            &Patch::Merge(suspend(json!("yes"))),
        )
        .await;
    assert!(
        matches!(&refused, Err(kube::Error::Api(status)) if status.code == 422),
        "the CRD's schema is enforced: {refused:?}"
    );
}

/// Flux's own layout: Kustomizations are themselves in Git, applied by a parent Kustomization.
/// Pausing the child with a patch survives the parent's reconciles while Git does not set
/// `spec.suspend` (server-side apply leaves a field it does not apply to its other manager); once
/// Git sets it, even to `false`, the parent's forced apply takes the pause back.
#[tokio::test]
async fn a_pause_survives_the_parent_kustomization_until_git_sets_suspend() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "flux-nested").await;
    let gitops = GitOps::start(&client, &ns.name).await;
    let api = kustomizations(&client, &ns.name);
    let v1 = crate::remediation::deployment("app", &[V1], None);
    let child = gitops.kustomization_manifest("app", "./app");
    let yaml = |value: &serde_json::Value| serde_yaml_ng::to_string(value).expect("YAML");
    let first = gitops.git.commit(
        "app v1 and its Kustomization",
        &[
            ("app/deployment.yaml", &manifest(&v1)),
            ("flux/app.yaml", &yaml(&child)),
        ],
    );
    gitops.kustomization("root", "./flux").await;
    gitops.wait_applied("root", &first).await;
    let applied = gitops.wait_applied("app", &first).await;
    assert_eq!(
        applied.labels().get(OWNER_NAME).map(String::as_str),
        Some("root"),
        "the child Kustomization names its parent"
    );

    gitops.suspend("app", true).await;
    // Two reconciles of the parent, each requested after the pause.
    gitops.reconcile_now("root").await;
    gitops.reconcile_now("root").await;
    let kept = api.get("app").await.expect("read the Kustomization");
    assert_eq!(
        kept.data["spec"]["suspend"], true,
        "the pause survives the parent"
    );

    let mut explicit = child.clone();
    explicit["spec"]["suspend"] = json!(false);
    let second = gitops
        .git
        .commit("say suspend: false", &[("flux/app.yaml", &yaml(&explicit))]);
    gitops.wait_applied("root", &second).await;
    wait_for(
        &api,
        "app",
        "the parent takes the pause back",
        FLUX_ACTS,
        |k| k.is_some_and(|k| k.data["spec"]["suspend"] == false),
    )
    .await;
}
