//! Remediation against the real kube-controller-manager: rollback with `kubectl rollout undo`
//! semantics, exactly once across crashes, never over a concurrent deploy; restart, scale, dry run.

use std::time::Duration;

use incident_operator::api::{ActionPhase, ActionStatus, EntryType, Incident, Phase};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::{
    Api, Client, ResourceExt,
    api::{ListParams, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};

use crate::support::{Operator, TestNamespace, client, install_crds, wait_for};

pub const ROLLOUT: Duration = Duration::from_secs(90);
const REVISION: &str = "deployment.kubernetes.io/revision";

/// A Deployment `name` with one container per image, optionally with a kwok fault.
pub fn deployment(name: &str, images: &[&str], fault: Option<&str>) -> Deployment {
    let mut labels = json!({ "app": name });
    if let Some(fault) = fault {
        labels["incident.dev/fault"] = json!(fault);
    }
    let containers: Vec<Value> = images
        .iter()
        .enumerate()
        .map(|(i, image)| json!({ "name": format!("c{i}"), "image": image }))
        .collect();
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": name },
        "spec": {
            "replicas": 3,
            "selector": { "matchLabels": { "app": name } },
            "template": { "metadata": { "labels": labels }, "spec": { "containers": containers } }
        }
    }))
    .expect("valid Deployment")
}

/// The controller has seen the latest spec and every replica is updated and available.
pub fn rolled_out(d: &Deployment) -> bool {
    let Some(status) = &d.status else {
        return false;
    };
    let desired = d.spec.replicas.unwrap_or(1);
    status.observed_generation == d.metadata.generation
        && status.updated_replicas.unwrap_or(0) == desired
        && status.available_replicas.unwrap_or(0) == desired
        && status.replicas.unwrap_or(0) == desired
        && status.unavailable_replicas.unwrap_or(0) == 0
}

/// The controller has recorded the latest spec as a revision (even if pods never become ready).
pub fn observed(d: &Deployment) -> bool {
    d.status.as_ref().and_then(|s| s.observed_generation) == d.metadata.generation
}

pub fn revision(d: &Deployment) -> Option<String> {
    d.annotations().get(REVISION).cloned()
}

pub fn images(d: &Deployment) -> Vec<String> {
    d.spec
        .template
        .spec
        .as_ref()
        .map(|s| {
            s.containers
                .iter()
                .filter_map(|c| c.image.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// Applies a new template (new images, fault label, change-cause) and waits for the controller.
pub async fn roll_to(api: &Api<Deployment>, template: &Deployment, cause: &str, ready: bool) {
    let name = template.name_any();
    let mut new_template = serde_json::to_value(&template.spec.template).expect("template");
    // A merge patch keeps labels it does not mention: clear the fault label explicitly.
    if let Some(labels) = new_template
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.entry("incident.dev/fault").or_insert(Value::Null);
    }
    let patch = json!({
        "metadata": { "annotations": { "kubernetes.io/change-cause": cause } },
        "spec": { "template": new_template },
    });
    api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("roll out a new template");
    wait_for(api, &name, cause, ROLLOUT, |d| {
        d.is_some_and(|d| if ready { rolled_out(d) } else { observed(d) })
    })
    .await;
}

/// Creates `deployment` and waits (at most `within`) until it is rolled out; returns it then.
pub async fn create_rolled_out(
    api: &Api<Deployment>,
    deployment: &Deployment,
    within: Duration,
) -> Deployment {
    let name = deployment.name_any();
    api.create(&PostParams::default(), deployment)
        .await
        .expect("create Deployment");
    wait_for(api, &name, &format!("{name} rolled out"), within, |d| {
        d.is_some_and(rolled_out)
    })
    .await
    .expect("Deployment")
}

/// Creates `name` and rolls it through v1 → v2 → v3, v3 crash-looping, like a bad deploy.
pub async fn bad_deploy_history(api: &Api<Deployment>, name: &str, containers: usize) {
    let images = |v: u32| -> Vec<String> {
        (0..containers)
            .map(|c| format!("registry.local/{name}-{c}:{v}"))
            .collect()
    };
    let (v1, v2, v3) = (images(1), images(2), images(3));
    let mut v1 = deployment(name, &refs(&v1), None);
    v1.annotations_mut()
        .insert("kubernetes.io/change-cause".into(), "deploy v1".into());
    create_rolled_out(api, &v1, ROLLOUT).await;
    roll_to(api, &deployment(name, &refs(&v2), None), "deploy v2", true).await;
    roll_to(
        api,
        &deployment(name, &refs(&v3), Some("crashloop")),
        "deploy v3",
        false,
    )
    .await;
}

fn refs(images: &[String]) -> Vec<&str> {
    images.iter().map(String::as_str).collect()
}

/// Opens the incident `name` asking for `actions`, as a responder would.
pub async fn request_actions(api: &Api<Incident>, name: &str, actions: Value) {
    let incident: Incident = serde_json::from_value(json!({
        "apiVersion": "incident.dev/v1alpha1", "kind": "Incident",
        "metadata": { "name": name },
        "spec": { "title": "Checkout crash-looping after deploy", "severity": "P1", "commander": "ana",
                  "actions": actions },
    }))
    .expect("valid Incident");
    api.create(&PostParams::default(), &incident)
        .await
        .expect("create Incident");
}

/// Opens the incident `name` asking for one action, `undo`: roll `deployment` back one revision.
pub async fn request_rollback(api: &Api<Incident>, name: &str, deployment: &str) {
    let undo = json!([{ "name": "undo", "rollback": { "deployment": deployment } }]);
    request_actions(api, name, undo).await;
}

pub fn action<'a>(incident: &'a Incident, name: &str) -> Option<&'a ActionStatus> {
    incident
        .status
        .as_ref()?
        .actions
        .iter()
        .find(|a| a.name == name)
}

pub async fn action_settles(api: &Api<Incident>, incident: &str, name: &str) -> Incident {
    wait_for(
        api,
        incident,
        &format!("action {name} finished"),
        ROLLOUT,
        |i| {
            i.and_then(|i| action(i, name))
                .is_some_and(|a| a.phase.is_terminal())
        },
    )
    .await
    .expect("Incident exists")
}

pub fn timeline_has(incident: &Incident, type_: EntryType, needle: &str) -> bool {
    incident.status.as_ref().is_some_and(|s| {
        s.timeline
            .iter()
            .any(|e| e.type_ == type_ && e.message.contains(needle))
    })
}

pub async fn revisions(client: &Client, ns: &str, app: &str) -> Vec<i64> {
    let api: Api<ReplicaSet> = Api::namespaced(client.clone(), ns);
    let mut revisions: Vec<i64> = api
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .expect("list ReplicaSets")
        .items
        .iter()
        .filter_map(|rs| rs.annotations().get(REVISION)?.parse().ok())
        .collect();
    revisions.sort();
    revisions
}

async fn setup(prefix: &str) -> (Client, TestNamespace, Api<Deployment>, Api<Incident>) {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::new(&client, prefix).await;
    let deployments = Api::namespaced(client.clone(), &ns.name);
    let incidents = Api::namespaced(client.clone(), &ns.name);
    (client, ns, deployments, incidents)
}

#[tokio::test]
async fn a_rollback_restores_the_previous_revision_and_verifies_the_rollout() {
    let (client, ns, deployments, incidents) = setup("rollback").await;
    bad_deploy_history(&deployments, "web", 1).await;
    let operator = Operator::start(&ns.name, &[]).await;

    request_rollback(&incidents, "web-down", "web").await;
    let done = action_settles(&incidents, "web-down", "undo").await;
    let undo = action(&done, "undo").expect("action status");
    assert_eq!(undo.phase, ActionPhase::Succeeded, "{undo:#?}");
    assert_eq!((undo.from_revision, undo.to_revision), (Some(3), Some(2)));
    assert_eq!(undo.images_before, ["registry.local/web-0:3"]);
    assert_eq!(undo.images_after, ["registry.local/web-0:2"]);

    let web = deployments.get("web").await.expect("get Deployment");
    assert_eq!(images(&web), ["registry.local/web-0:2"]);
    assert!(rolled_out(&web), "pods Ready again: {:#?}", web.status);
    let labels = web
        .spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    assert!(
        !labels.contains_key("incident.dev/fault"),
        "v2's template, without the fault"
    );
    assert!(!labels.contains_key("pod-template-hash"));
    assert_eq!(
        web.annotations()
            .get("incident.dev/incident")
            .map(String::as_str),
        Some("web-down")
    );
    assert_eq!(revision(&web).as_deref(), Some("4"), "one new revision");
    assert_eq!(revisions(&client, &ns.name, "web").await, [1, 3, 4]);

    let incident = wait_for(&incidents, "web-down", "Monitoring", ROLLOUT, |i| {
        i.and_then(|i| i.status.as_ref()).and_then(|s| s.phase) == Some(Phase::Monitoring)
    })
    .await
    .expect("Incident");
    assert!(timeline_has(
        &incident,
        EntryType::ActionRequested,
        "Rollback of deployment/web to the previous revision"
    ));
    assert!(timeline_has(
        &incident,
        EntryType::ActionStarted,
        "from revision 3 (registry.local/web-0:3) to revision 2 (registry.local/web-0:2)"
    ));
    assert!(timeline_has(
        &incident,
        EntryType::ActionApplied,
        "Rolled back deployment/web from revision 3 (registry.local/web-0:3) to revision 2"
    ));
    assert!(timeline_has(
        &incident,
        EntryType::ActionSucceeded,
        "rollout complete: 3/3 available"
    ));
    operator
        .await_metric(
            r#"incident_operator_actions_total{kind="rollback",result="succeeded"}"#,
            |v| v == Some(1.0),
        )
        .await;
    operator.stop().await;
}

/// Runs the rollback with the operator aborting at `failpoint`, checks what the crash left, then
/// lets a fresh operator finish. Returns the settled incident.
async fn rollback_across_a_crash(
    prefix: &str,
    failpoint: &str,
) -> (Client, TestNamespace, Api<Deployment>, Incident) {
    let (client, ns, deployments, incidents) = setup(prefix).await;
    bad_deploy_history(&deployments, "web", 1).await;
    let operator =
        Operator::start_with_env(&ns.name, &[], &[("INCIDENT_OPERATOR_FAILPOINT", failpoint)])
            .await;
    request_rollback(&incidents, "web-down", "web").await;
    assert!(
        operator.exits_abnormally(ROLLOUT).await,
        "the failpoint aborted the operator"
    );

    // The plan was recorded before the Deployment was touched.
    let crashed = incidents.get("web-down").await.expect("get Incident");
    let undo = action(&crashed, "undo").expect("intent recorded before the patch");
    assert_eq!(undo.phase, ActionPhase::Running, "{undo:#?}");
    let web = deployments.get("web").await.expect("get Deployment");
    let patched = images(&web) == ["registry.local/web-0:2"];
    assert_eq!(
        patched,
        failpoint == "after-patch",
        "patched exactly when the crash came after the patch"
    );

    let operator = Operator::start(&ns.name, &[]).await;
    let done = action_settles(&incidents, "web-down", "undo").await;
    operator.stop().await;
    (client, ns, deployments, done)
}

#[tokio::test]
async fn a_crash_before_the_patch_applies_the_rollback_exactly_once() {
    let (client, ns, deployments, done) =
        rollback_across_a_crash("crash-before", "before-patch").await;
    assert_eq!(
        action(&done, "undo").map(|a| a.phase),
        Some(ActionPhase::Succeeded)
    );
    let web = deployments.get("web").await.expect("get Deployment");
    assert_eq!(images(&web), ["registry.local/web-0:2"]);
    assert_eq!(
        revisions(&client, &ns.name, "web").await,
        [1, 3, 4],
        "exactly one new revision"
    );
}

#[tokio::test]
async fn a_crash_after_the_patch_never_rolls_back_twice() {
    let (client, ns, deployments, done) =
        rollback_across_a_crash("crash-after", "after-patch").await;
    assert_eq!(
        action(&done, "undo").map(|a| a.phase),
        Some(ActionPhase::Succeeded)
    );
    // A second rollback would have re-deployed v3 as revision 5.
    let web = deployments.get("web").await.expect("get Deployment");
    assert_eq!(images(&web), ["registry.local/web-0:2"]);
    assert_eq!(revision(&web).as_deref(), Some("4"));
    assert_eq!(
        revisions(&client, &ns.name, "web").await,
        [1, 3, 4],
        "exactly one new revision"
    );
    let applied = done.status.as_ref().map_or(0, |s| {
        s.timeline
            .iter()
            .filter(|e| e.type_ == EntryType::ActionApplied)
            .count()
    });
    assert_eq!(applied, 1, "recorded as applied once");
}

#[tokio::test]
async fn a_deploy_landing_between_plan_and_patch_is_not_overwritten() {
    let (_client, ns, deployments, incidents) = setup("concurrent").await;
    bad_deploy_history(&deployments, "web", 1).await;
    let operator = Operator::start_with_env(
        &ns.name,
        &[],
        &[("INCIDENT_OPERATOR_FAILPOINT", "before-patch")],
    )
    .await;
    request_rollback(&incidents, "web-down", "web").await;
    assert!(operator.exits_abnormally(ROLLOUT).await);

    // Someone ships a fix forward while the operator is down, after it planned the rollback.
    roll_to(
        &deployments,
        &deployment("web", &["registry.local/web-0:4"], None),
        "deploy v4",
        true,
    )
    .await;
    let operator = Operator::start(&ns.name, &[]).await;
    let done = action_settles(&incidents, "web-down", "undo").await;
    let undo = action(&done, "undo").expect("action");
    assert_eq!(undo.phase, ActionPhase::Failed);
    assert_eq!(
        undo.reason.as_deref(),
        Some("ConcurrentChange"),
        "{undo:#?}"
    );
    assert!(
        undo.message
            .as_deref()
            .unwrap_or_default()
            .contains("was not overwritten")
    );
    let web = deployments.get("web").await.expect("get Deployment");
    assert_eq!(
        images(&web),
        ["registry.local/web-0:4"],
        "the new deploy stands"
    );
    operator.stop().await;
}

#[tokio::test]
async fn restart_and_scale_are_applied_and_verified_and_a_dry_run_changes_nothing() {
    let (_client, ns, deployments, incidents) = setup("restart-scale").await;
    let v1 = deployment("api", &["registry.local/api:1"], None);
    let before = create_rolled_out(&deployments, &v1, ROLLOUT).await;
    let operator = Operator::start(&ns.name, &[]).await;

    let plan_only = json!([{ "name": "look", "dryRun": true, "scale": { "deployment": "api", "replicas": 5 } }]);
    request_actions(&incidents, "api-slow", plan_only).await;
    let looked = action_settles(&incidents, "api-slow", "look").await;
    let look = action(&looked, "look").expect("action");
    assert_eq!(
        (look.phase, look.reason.as_deref()),
        (ActionPhase::Skipped, Some("DryRun"))
    );
    assert!(
        look.message
            .as_deref()
            .unwrap_or_default()
            .contains("would scale deployment/api from 3 to 5 replicas")
    );
    let unchanged = deployments.get("api").await.expect("get Deployment");
    assert_eq!(
        unchanged.metadata.generation, before.metadata.generation,
        "a dry run changes nothing"
    );

    let more = json!({ "spec": { "actions": [
        { "name": "look", "dryRun": true, "scale": { "deployment": "api", "replicas": 5 } },
        { "name": "bounce", "restart": { "deployment": "api" } },
        { "name": "grow", "scale": { "deployment": "api", "replicas": 5 } },
    ] } });
    incidents
        .patch("api-slow", &PatchParams::default(), &Patch::Merge(&more))
        .await
        .expect("add actions");
    let bounced = action_settles(&incidents, "api-slow", "bounce").await;
    assert_eq!(
        action(&bounced, "bounce").map(|a| a.phase),
        Some(ActionPhase::Succeeded)
    );
    let grown = action_settles(&incidents, "api-slow", "grow").await;
    let grow = action(&grown, "grow").expect("action");
    assert_eq!(grow.phase, ActionPhase::Succeeded, "{grow:#?}");
    assert!(
        grow.message
            .as_deref()
            .unwrap_or_default()
            .contains("5/5 available")
    );

    let api = deployments.get("api").await.expect("get Deployment");
    let template_annotations = api
        .spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.annotations.clone())
        .unwrap_or_default();
    assert!(
        template_annotations.contains_key("kubectl.kubernetes.io/restartedAt"),
        "restarted like kubectl rollout restart"
    );
    assert_eq!(
        revision(&api).as_deref(),
        Some("2"),
        "a restart is a new revision"
    );
    assert_eq!(api.spec.replicas, Some(5));
    assert!(rolled_out(&api));
    operator.stop().await;
}

#[tokio::test]
async fn refused_actions_fail_with_a_clear_reason_and_touch_nothing() {
    let (_client, ns, deployments, incidents) = setup("refused").await;
    let mut guarded = deployment("ledger", &["registry.local/ledger:1"], None);
    guarded
        .annotations_mut()
        .insert("incident.dev/remediation".into(), "disabled".into());
    let before = create_rolled_out(&deployments, &guarded, ROLLOUT).await;
    let operator = Operator::start(&ns.name, &[]).await;
    let request = json!([
        { "name": "hands-off", "restart": { "deployment": "ledger" } },
        { "name": "ghost", "scale": { "deployment": "no-such-deployment", "replicas": 2 } },
    ]);
    request_actions(&incidents, "ledger-slow", request).await;
    let done = action_settles(&incidents, "ledger-slow", "ghost").await;
    let hands_off = action(&done, "hands-off").expect("action");
    assert_eq!(
        (hands_off.phase, hands_off.reason.as_deref()),
        (ActionPhase::Failed, Some("RemediationDisabled"))
    );
    let ghost = action(&done, "ghost").expect("action");
    assert_eq!(
        (ghost.phase, ghost.reason.as_deref()),
        (ActionPhase::Failed, Some("DeploymentNotFound"))
    );
    assert!(timeline_has(
        &done,
        EntryType::ActionFailed,
        "RemediationDisabled"
    ));
    let after = deployments.get("ledger").await.expect("get Deployment");
    assert_eq!(
        after.metadata.generation, before.metadata.generation,
        "never touched"
    );
    operator.stop().await;
}

#[tokio::test]
async fn malformed_actions_are_rejected_at_admission() {
    use kube::api::{ApiResource, DynamicObject};
    let (client, ns, _, incidents) = setup("bad-actions").await;
    let resource = ApiResource::erase::<Incident>(&());
    let api: Api<DynamicObject> = Api::namespaced_with(client, &ns.name, &resource);
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let cases = [
        (
            json!([{ "name": "a", "scale": { "deployment": "web", "replicas": 1 } },
                { "name": "a", "restart": { "deployment": "web" } }]),
            "Duplicate value",
        ),
        (
            json!([{ "name": "a", "scale": { "deployment": "web", "replicas": -1 } }]),
            "should be greater than or equal to 0",
        ),
        (
            json!([{ "name": "a" }]),
            "exactly one of rollback, restart or scale",
        ),
        (
            json!([{ "name": "a", "restart": { "deployment": "web" }, "scale": { "deployment": "web", "replicas": 1 } }]),
            "exactly one of rollback, restart or scale",
        ),
        (
            json!([{ "name": "Not_Valid", "restart": { "deployment": "web" } }]),
            "spec.actions[0].name",
        ),
        (
            json!([{ "name": "a", "restart": { "deployment": "Web App" } }]),
            "spec.actions[0].restart.deployment",
        ),
    ];
    for (actions, expected) in cases {
        let object: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "incident.dev/v1alpha1", "kind": "Incident", "metadata": { "name": "bad" },
            "spec": { "title": "x", "severity": "P2", "actions": actions },
        }))
        .expect("object");
        let error = match api.create(&dry_run, &object).await {
            Ok(_) => panic!("accepted {actions}"),
            Err(kube::Error::Api(status)) => status.message,
            Err(other) => panic!("{other}"),
        };
        assert!(
            error.contains(expected),
            "for {actions}\nexpected: {expected}\n     got: {error}"
        );
    }

    // A requested action can be neither changed nor removed afterwards: the list is the record
    // that keeps each action exactly once.
    let request = json!([{ "name": "grow", "scale": { "deployment": "web", "replicas": 2 } }]);
    request_actions(&incidents, "fixed", request).await;
    let change = json!([{ "name": "grow", "scale": { "deployment": "web", "replicas": 9 } }]);
    for actions in [change, serde_json::Value::Null] {
        let patch = json!({ "spec": { "actions": actions } });
        let error = incidents
            .patch("fixed", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect_err("changing or removing a requested action is refused");
        let said = error.to_string();
        assert!(said.contains("cannot be changed or removed"), "{said}");
    }
}
