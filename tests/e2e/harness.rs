//! Proves the local control plane is real: Deployments roll out through the real controllers onto
//! kwok nodes, revisions are recorded, and each injected fault shows the status a kubelet would report.

use std::time::Duration;

use k8s_openapi::api::{
    apps::v1::{Deployment, ReplicaSet},
    core::v1::{ContainerStatus, Node, Pod},
};
use kube::{
    Api, Client, ResourceExt,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::json;

use crate::{
    nodes::TestNode,
    support::{TestNamespace, client, wait_for, wait_for_all},
};

const ROLLOUT: Duration = Duration::from_secs(90);
const REVISION: &str = "deployment.kubernetes.io/revision";

/// A Deployment of `replicas` pods labelled `app=<name>`, optionally carrying a kwok fault label.
fn deployment(name: &str, replicas: i32, image: &str, fault: Option<&str>) -> Deployment {
    let mut labels = json!({ "app": name });
    if let Some(fault) = fault {
        labels["incident.dev/fault"] = json!(fault);
    }
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": name },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": labels },
                "spec": { "containers": [{ "name": "app", "image": image }] }
            }
        }
    }))
    .expect("valid Deployment")
}

fn condition(deployment: &Deployment, type_: &str) -> Option<(String, String)> {
    let conditions = deployment.status.as_ref()?.conditions.as_ref()?;
    let found = conditions
        .iter()
        .find(|c| c.type_.as_deref() == Some(type_))?;
    Some((
        found.status.clone().unwrap_or_default(),
        found.reason.clone().unwrap_or_default(),
    ))
}

/// Rolled out: the controller saw the latest spec and every replica is updated and available.
fn rolled_out(deployment: Option<&Deployment>, replicas: i32) -> bool {
    let Some(d) = deployment else { return false };
    let Some(status) = &d.status else {
        return false;
    };
    status.observed_generation == d.metadata.generation
        && status.updated_replicas == Some(replicas)
        && status.available_replicas == Some(replicas)
        && status.unavailable_replicas.unwrap_or(0) == 0
        && condition(d, "Available").is_some_and(|(s, _)| s == "True")
}

fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn containers(pod: &Pod) -> &[ContainerStatus] {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_deref())
        .unwrap_or_default()
}

fn waiting_reason(pod: &Pod) -> Option<&str> {
    containers(pod)
        .first()?
        .state
        .as_ref()?
        .waiting
        .as_ref()?
        .reason
        .as_deref()
}

fn last_termination(pod: &Pod) -> Option<(&str, i32)> {
    let terminated = containers(pod)
        .first()?
        .last_state
        .as_ref()?
        .terminated
        .as_ref()?;
    Some((terminated.reason.as_deref()?, terminated.exit_code))
}

fn restarts(pod: &Pod) -> i32 {
    containers(pod).first().map_or(0, |c| c.restart_count)
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

async fn create(client: &Client, ns: &TestNamespace, deployment: &Deployment) -> Api<Deployment> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    api.create(&PostParams::default(), deployment)
        .await
        .expect("create Deployment");
    api
}

#[tokio::test]
async fn deployment_becomes_available_with_a_revision_one_replicaset_on_kwok_nodes() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "available").await;
    let deployments = create(
        &client,
        &ns,
        &deployment("web", 3, "registry.local/web:1.0", None),
    )
    .await;

    let web = wait_for(&deployments, "web", "3 replicas available", ROLLOUT, |d| {
        rolled_out(d, 3)
    })
    .await
    .expect("Deployment exists");

    let replicasets: Api<ReplicaSet> = Api::namespaced(client.clone(), &ns.name);
    let owned: Vec<ReplicaSet> = replicasets
        .list(&Default::default())
        .await
        .expect("list ReplicaSets")
        .items
        .into_iter()
        .filter(|rs| {
            rs.owner_references()
                .iter()
                .any(|o| Some(&o.uid) == web.metadata.uid.as_ref())
        })
        .collect();
    assert_eq!(
        owned.len(),
        1,
        "one ReplicaSet owned by the Deployment: {owned:#?}"
    );
    assert_eq!(
        owned[0].annotations().get(REVISION).map(String::as_str),
        Some("1")
    );

    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    let pods = wait_for_all(
        &pods,
        "app=web",
        "3 Running and Ready pods",
        ROLLOUT,
        |pods| pods.len() == 3 && pods.iter().all(|p| phase(p) == "Running" && pod_ready(p)),
    )
    .await;
    let nodes: Api<Node> = Api::all(client.clone());
    for pod in &pods {
        let node_name = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .expect("scheduled");
        let node = nodes.get(&node_name).await.expect("pod's node exists");
        assert_eq!(
            node.annotations()
                .get("kwok.x-k8s.io/node")
                .map(String::as_str),
            Some("fake"),
            "pod {} runs on a kwok node",
            pod.name_any()
        );
    }
}

#[tokio::test]
async fn changing_the_image_rolls_out_revision_two() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "revision").await;
    let deployments = create(
        &client,
        &ns,
        &deployment("api", 2, "registry.local/api:1.0", None),
    )
    .await;
    wait_for(&deployments, "api", "revision 1 rolled out", ROLLOUT, |d| {
        rolled_out(d, 2)
    })
    .await;

    let patch = json!({ "spec": { "template": { "spec": {
        "containers": [{ "name": "app", "image": "registry.local/api:2.0" }] } } } });
    deployments
        .patch("api", &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .expect("change image");
    let api = wait_for(&deployments, "api", "revision 2 rolled out", ROLLOUT, |d| {
        rolled_out(d, 2)
            && d.is_some_and(|d| d.annotations().get(REVISION).is_some_and(|r| r == "2"))
    })
    .await
    .expect("Deployment exists");

    let replicasets: Api<ReplicaSet> = Api::namespaced(client.clone(), &ns.name);
    let sets = wait_for_all(
        &replicasets,
        "app=api",
        "old ReplicaSet scaled to zero",
        ROLLOUT,
        |sets| sets.len() == 2 && sets.iter().any(|rs| rs.spec.replicas == Some(0)),
    )
    .await;
    let image_of = |rs: &ReplicaSet| {
        rs.spec
            .template
            .as_ref()
            .and_then(|t| t.spec.as_ref())
            .and_then(|s| s.containers.first())
            .and_then(|c| c.image.clone())
    };
    let revision_of = |rs: &ReplicaSet| rs.annotations().get(REVISION).cloned();
    for rs in &sets {
        assert!(
            rs.owner_references()
                .iter()
                .any(|o| Some(&o.uid) == api.metadata.uid.as_ref())
        );
        match revision_of(rs).as_deref() {
            Some("1") => assert_eq!(image_of(rs).as_deref(), Some("registry.local/api:1.0")),
            Some("2") => {
                assert_eq!(image_of(rs).as_deref(), Some("registry.local/api:2.0"));
                assert_eq!(rs.spec.replicas, Some(2));
            }
            other => panic!("unexpected revision {other:?} on {}", rs.name_any()),
        }
    }
}

#[tokio::test]
async fn crashloop_fault_backs_off_and_exceeds_the_progress_deadline() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "crashloop").await;
    let mut bad = deployment("worker", 2, "registry.local/worker:1.0", Some("crashloop"));
    bad.spec.progress_deadline_seconds = Some(10);
    let deployments = create(&client, &ns, &bad).await;

    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    let crashing = |pods: &[Pod], at_least: i32| {
        pods.len() == 2
            && pods.iter().all(|p| {
                phase(p) == "Running"
                    && !pod_ready(p)
                    && waiting_reason(p) == Some("CrashLoopBackOff")
                    && last_termination(p) == Some(("Error", 1))
                    && restarts(p) >= at_least
            })
    };
    let first = wait_for_all(
        &pods,
        "app=worker",
        "pods in CrashLoopBackOff",
        ROLLOUT,
        |p| crashing(p, 1),
    )
    .await;
    let before = first.iter().map(restarts).max().unwrap_or(0);
    // The restart count keeps climbing, as it does under a real kubelet's back-off.
    wait_for_all(&pods, "app=worker", "restartCount climbing", ROLLOUT, |p| {
        crashing(p, before + 2)
    })
    .await;

    wait_for(
        &deployments,
        "worker",
        "Progressing=False ProgressDeadlineExceeded",
        ROLLOUT,
        |d| {
            d.and_then(|d| condition(d, "Progressing"))
                .is_some_and(|(status, reason)| {
                    status == "False" && reason == "ProgressDeadlineExceeded"
                })
        },
    )
    .await;
}

#[tokio::test]
async fn imagepull_fault_alternates_errimagepull_and_imagepullbackoff() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "imagepull").await;
    create(
        &client,
        &ns,
        &deployment("pull", 1, "registry.local/missing:0.0", Some("imagepull")),
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    for reason in ["ErrImagePull", "ImagePullBackOff", "ErrImagePull"] {
        wait_for_all(&pods, "app=pull", reason, ROLLOUT, |pods| {
            pods.len() == 1
                && phase(&pods[0]) == "Pending"
                && !pod_ready(&pods[0])
                && waiting_reason(&pods[0]) == Some(reason)
        })
        .await;
    }
}

#[tokio::test]
async fn oomkill_fault_restarts_with_oomkilled_last_state() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "oomkill").await;
    create(
        &client,
        &ns,
        &deployment("cache", 1, "registry.local/cache:1.0", Some("oomkill")),
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    let killed = wait_for_all(
        &pods,
        "app=cache",
        "OOMKilled and backing off",
        ROLLOUT,
        |pods| {
            pods.len() == 1
                && last_termination(&pods[0]) == Some(("OOMKilled", 137))
                && waiting_reason(&pods[0]) == Some("CrashLoopBackOff")
        },
    )
    .await;
    let count = restarts(&killed[0]);
    assert!(count >= 1, "an OOM kill counts a restart");
    // It starts again and keeps the memory of how it last ended.
    wait_for_all(
        &pods,
        "app=cache",
        "running again after the OOM kill",
        ROLLOUT,
        |pods| {
            pods.len() == 1
                && last_termination(&pods[0]) == Some(("OOMKilled", 137))
                && containers(&pods[0])
                    .first()
                    .and_then(|c| c.state.as_ref())
                    .is_some_and(|s| s.running.is_some())
                && restarts(&pods[0]) >= count
        },
    )
    .await;
}

#[tokio::test]
async fn unready_fault_runs_but_is_never_ready() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "unready").await;
    let deployments = create(
        &client,
        &ns,
        &deployment("probe", 2, "registry.local/probe:1.0", Some("unready")),
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    wait_for_all(
        &pods,
        "app=probe",
        "Running but not Ready",
        ROLLOUT,
        |pods| {
            pods.len() == 2
                && pods.iter().all(|p| {
                    phase(p) == "Running"
                        && !pod_ready(p)
                        && containers(p)
                            .first()
                            .is_some_and(|c| c.started == Some(true) && !c.ready)
                })
        },
    )
    .await;
    let probe = deployments.get("probe").await.expect("Deployment");
    let status = probe.status.unwrap_or_default();
    assert_eq!(
        status.available_replicas.unwrap_or(0),
        0,
        "unready pods are not available"
    );
}

fn node_ready(node: Option<&Node>) -> Option<(String, String)> {
    let conditions = node?.status.as_ref()?.conditions.as_ref()?;
    let ready = conditions.iter().find(|c| c.type_ == "Ready")?;
    Some((
        ready.status.clone(),
        ready.reason.clone().unwrap_or_default(),
    ))
}

#[tokio::test]
async fn a_node_goes_notready_on_demand_and_recovers() {
    let client = client().await;
    let api: Api<Node> = Api::all(client.clone());
    let node = TestNode::create(&client, "e2e-node").await;
    let name = &node.name;

    let timeout = Duration::from_secs(60);
    wait_for(&api, name, "Ready=True", timeout, |n| {
        node_ready(n).is_some_and(|(s, _)| s == "True")
    })
    .await;

    node.set_fault(Some("notready")).await;
    wait_for(&api, name, "Ready=False KubeletNotReady", timeout, |n| {
        node_ready(n).is_some_and(|(s, r)| s == "False" && r == "KubeletNotReady")
    })
    .await;

    node.set_fault(None).await;
    wait_for(&api, name, "Ready=True again", timeout, |n| {
        node_ready(n).is_some_and(|(s, _)| s == "True")
    })
    .await;
}
