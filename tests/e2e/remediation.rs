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
    let patch = json!({
        "metadata": { "annotations": { "kubernetes.io/change-cause": cause } },
        "spec": { "template": template.spec.template },
    });
    api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("roll out a new template");
    wait_for(api, &name, cause, ROLLOUT, |d| {
        d.is_some_and(|d| if ready { rolled_out(d) } else { observed(d) })
    })
    .await;
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
    api.create(&PostParams::default(), &v1)
        .await
        .expect("create Deployment");
    wait_for(api, name, "v1 rolled out", ROLLOUT, |d| {
        d.is_some_and(rolled_out)
    })
    .await;
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

pub fn incident_with_actions(name: &str, actions: Value) -> Incident {
    serde_json::from_value(json!({
        "apiVersion": "incident.dev/v1alpha1", "kind": "Incident",
        "metadata": { "name": name },
        "spec": { "title": "Checkout crash-looping after deploy", "severity": "P1", "commander": "ana",
                  "actions": actions },
    }))
    .expect("valid Incident")
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

    let request = json!([{ "name": "undo", "rollback": { "deployment": "web" } }]);
    incidents
        .create(
            &PostParams::default(),
            &incident_with_actions("web-down", request),
        )
        .await
        .expect("create Incident");
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
