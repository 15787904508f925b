//! The Helm chart's ServiceAccount runs the operator: after `helm install`, the operator binary
//! runs out of cluster *as the chart's ServiceAccount* (a TokenRequest token in a kubeconfig), with
//! the chart's rendered configuration file and leader election, through the main scenario
//! (detection, a runbook from Git, a rollback) — proving the chart's RBAC is enough — while reading
//! other namespaces' Secrets is denied.

use std::{path::Path, time::Duration};

use incident_operator::{
    api::{ActionPhase, Incident, Runbook},
    config::file::ConfigFile,
};
use k8s_openapi::api::{
    apps::v1::Deployment,
    authentication::v1::{TokenRequest, TokenRequestSpec},
    authorization::v1::{ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec},
    coordination::v1::Lease,
    core::v1::{ConfigMap, Secret, Service, ServiceAccount},
    events::v1::Event,
    flowcontrol::v1::FlowSchema,
    policy::v1::PodDisruptionBudget,
    rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding},
};
use kube::{
    Api, Client,
    api::PostParams,
    config::{KubeConfigOptions, Kubeconfig},
};
use serde_json::json;

use crate::{
    chart::{Release, enforce_restricted},
    remediation::{create_rolled_out, deployment, images, roll_to},
    support::{
        TestNamespace, await_status, client, free_addr, kubeconfig_path, start_with_env, terminate,
        wait_for, wait_for_all,
    },
};

const DETECTED: &str = "incident.dev/source=detector,incident.dev/problem=workload";

/// A kubeconfig for the same API server that authenticates with `token` only.
fn token_kubeconfig(token: &str, file: &Path) {
    let admin = Kubeconfig::read_from(kubeconfig_path()).expect("read the e2e kubeconfig");
    let context = admin.current_context.clone().expect("current context");
    let cluster_name = admin
        .contexts
        .iter()
        .find(|c| c.name == context)
        .and_then(|c| c.context.as_ref())
        .map(|c| c.cluster.clone())
        .expect("current context names a cluster");
    let cluster = admin
        .clusters
        .iter()
        .find(|c| c.name == cluster_name)
        .and_then(|c| c.cluster.clone())
        .expect("the context's cluster");
    let mut entry = json!({ "server": cluster.server.expect("server") });
    if let Some(data) = cluster.certificate_authority_data {
        entry["certificate-authority-data"] = json!(data);
    }
    if let Some(path) = cluster.certificate_authority {
        entry["certificate-authority"] = json!(path);
    }
    // JSON is YAML: kubeconfig readers take it as it is.
    let config = json!({
        "apiVersion": "v1", "kind": "Config", "current-context": "chart",
        "clusters": [{ "name": "chart", "cluster": entry }],
        "users": [{ "name": "chart", "user": { "token": token } }],
        "contexts": [{ "name": "chart", "context": { "cluster": "chart", "user": "chart" } }],
    });
    std::fs::write(file, serde_json::to_vec_pretty(&config).expect("JSON")).expect("write");
}

/// Writes to `file` a kubeconfig that authenticates as the ServiceAccount `name` (a TokenRequest
/// token valid for an hour).
pub async fn service_account_kubeconfig(accounts: &Api<ServiceAccount>, name: &str, file: &Path) {
    let token = accounts
        .create_token_request(
            name,
            &PostParams::default(),
            &TokenRequest {
                spec: Some(TokenRequestSpec {
                    expiration_seconds: Some(3600),
                    ..TokenRequestSpec::default()
                }),
                ..TokenRequest::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("TokenRequest for the ServiceAccount {name}: {e}"))
        .status
        .and_then(|s| s.token)
        .expect("token");
    token_kubeconfig(&token, file);
}

pub async fn client_from(file: &Path) -> Client {
    let kubeconfig = Kubeconfig::read_from(file).expect("read token kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("token kubeconfig");
    Client::try_from(config).expect("client")
}

/// Requests the API server dispatched under `schema`, from its own APF metrics.
async fn dispatched_by_flow_schema(client: &Client, schema: &str) -> f64 {
    let request = axum::http::Request::get("/metrics")
        .body(Vec::new())
        .expect("request");
    let text = client
        .request_text(request)
        .await
        .expect("the API server's /metrics");
    let label = format!("flow_schema=\"{schema}\"");
    text.lines()
        .filter(|l| l.starts_with("apiserver_flowcontrol_dispatched_requests_total{"))
        .filter(|l| l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn allowed(client: &Client, verb: &str, group: &str, resource: &str, ns: &str) -> bool {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                group: Some(group.into()),
                resource: Some(resource.into()),
                namespace: Some(ns.into()),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    };
    Api::<SelfSubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .expect("SelfSubjectAccessReview")
        .status
        .is_some_and(|s| s.allowed)
}

#[tokio::test]
async fn the_chart_installs_and_its_service_account_runs_the_operator() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "chart").await;
    let workloads = TestNamespace::new(&client, "chart-apps").await;
    // The namespace name is unique, so it doubles as a release name no other test uses.
    let release_name = ns.name.clone();
    let full = format!("{release_name}-incident-operator");
    enforce_restricted(&client, &ns.name).await;
    let mut release = Release::install(&release_name, &ns.name, &[]);

    // Every object is there, as the chart rendered it (the API server accepted them all).
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns.name);
    accounts
        .get(&full)
        .await
        .unwrap_or_else(|e| panic!("ServiceAccount {full}: {e}"));
    let config_map = Api::<ConfigMap>::namespaced(client.clone(), &ns.name)
        .get(&full)
        .await
        .unwrap_or_else(|e| panic!("ConfigMap {full}: {e}"));
    Api::<Service>::namespaced(client.clone(), &ns.name)
        .get(&full)
        .await
        .unwrap_or_else(|e| panic!("Service {full}: {e}"));
    Api::<PodDisruptionBudget>::namespaced(client.clone(), &ns.name)
        .get(&full)
        .await
        .unwrap_or_else(|e| panic!("PodDisruptionBudget {full}: {e}"));
    let cluster_role = Api::<ClusterRole>::all(client.clone())
        .get(&full)
        .await
        .unwrap_or_else(|e| panic!("ClusterRole {full}: {e}"));
    Api::<ClusterRoleBinding>::all(client.clone())
        .get(&full)
        .await
        .unwrap_or_else(|e| panic!("ClusterRoleBinding {full}: {e}"));
    let lease_role = format!("{full}-leader-election");
    Api::<Role>::namespaced(client.clone(), &ns.name)
        .get(&lease_role)
        .await
        .expect("leader-election Role exists");
    Api::<RoleBinding>::namespaced(client.clone(), &ns.name)
        .get(&lease_role)
        .await
        .expect("leader-election RoleBinding exists");
    let operator = Api::<Deployment>::namespaced(client.clone(), &ns.name)
        .get(&full)
        .await
        .unwrap_or_else(|e| panic!("Deployment {full}: {e}"));

    // Two replicas (kwok runs any image, so `--wait` saw them Ready), leader election on,
    // restricted pod security.
    let spec = &operator.spec;
    assert_eq!(spec.replicas, Some(2));
    assert_eq!(
        operator.status.as_ref().and_then(|s| s.ready_replicas),
        Some(2)
    );
    let pod = spec.template.spec.as_ref().expect("pod spec");
    let container = &pod.containers[0];
    let args = container.args.clone().unwrap_or_default();
    assert!(args.contains(&"--leader-elect=true".to_owned()), "{args:?}");
    assert!(
        args.contains(&"--config=/etc/incident-operator/operator.yaml".to_owned()),
        "{args:?}"
    );
    // The chart names its trust policies; run with them, readiness proves its RBAC can watch them.
    let policies = args
        .iter()
        .find(|a| a.starts_with("--admission-policies="))
        .cloned()
        .unwrap_or_else(|| panic!("the chart names its admission policies: {args:?}"));
    let security = container
        .security_context
        .as_ref()
        .expect("securityContext");
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_eq!(
        security.capabilities.as_ref().and_then(|c| c.drop.clone()),
        Some(vec!["ALL".to_owned()])
    );
    let pod_security = pod.security_context.as_ref().expect("pod securityContext");
    assert_eq!(pod_security.run_as_non_root, Some(true));
    assert_eq!(
        pod_security
            .seccomp_profile
            .as_ref()
            .map(|s| s.type_.as_str()),
        Some("RuntimeDefault")
    );
    for probe in [&container.liveness_probe, &container.readiness_probe] {
        assert!(probe.as_ref().and_then(|p| p.http_get.as_ref()).is_some());
    }
    assert!(
        container
            .resources
            .as_ref()
            .and_then(|r| r.limits.as_ref())
            .is_some()
    );

    // No rule names Secrets, and nothing is granted on every resource or verb.
    for rule in cluster_role.rules.iter().flatten() {
        let resources = rule.resources.clone().unwrap_or_default();
        assert!(
            !resources.iter().any(|r| r == "secrets" || r == "*"),
            "{rule:?}"
        );
        assert!(
            !rule.verbs.iter().any(|v| v == "*" || v == "delete"),
            "{rule:?}"
        );
    }

    // The rendered configuration file is one the operator accepts.
    let text = config_map
        .data
        .as_ref()
        .and_then(|d| d.get("operator.yaml"))
        .expect("operator.yaml in the ConfigMap")
        .clone();
    ConfigFile::parse(&text).expect("the chart's configuration file parses");

    // Run the operator as the chart's ServiceAccount, out of cluster.
    let dir = std::env::temp_dir().join(format!("incident-e2e-chart-{}", ns.name));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let kubeconfig = dir.join("kubeconfig");
    service_account_kubeconfig(&accounts, &full, &kubeconfig).await;
    let config_file = dir.join("operator.yaml");
    std::fs::write(&config_file, &text).expect("write config");

    let sa = client_from(&kubeconfig).await;
    // Secrets: `get` only in the release namespace, for the platform Channels' Secrets
    // (notifications.releaseNamespaceSecrets); denied everywhere else and never listed, by review
    // and in fact.
    assert!(allowed(&sa, "get", "", "secrets", &ns.name).await);
    assert!(!allowed(&sa, "get", "", "secrets", &workloads.name).await);
    assert!(!allowed(&sa, "list", "", "secrets", &ns.name).await);
    match Api::<Secret>::namespaced(sa.clone(), &ns.name)
        .list(&Default::default())
        .await
    {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403),
        other => panic!("listing Secrets as the operator must be forbidden: {other:?}"),
    }
    // What it needs: allowed.
    assert!(allowed(&sa, "patch", "apps", "deployments", &workloads.name).await);
    assert!(
        allowed(
            &sa,
            "patch",
            "incident.dev",
            "incidents/status",
            &workloads.name
        )
        .await
    );
    assert!(!allowed(&sa, "delete", "apps", "deployments", &workloads.name).await);

    let addr = free_addr();
    // Leader election with the chart's Lease name: the leader-election Role allows exactly this Lease.
    let child = start_with_env(
        &kubeconfig,
        addr,
        &[
            "--namespace",
            &workloads.name,
            "--config",
            &config_file.to_string_lossy(),
            "--resolve-after",
            "2s",
            "--leader-elect=true",
            "--leader-election-namespace",
            &ns.name,
            "--leader-election-name",
            &full,
            &policies,
        ],
        &[
            ("POD_NAMESPACE", ns.name.as_str()),
            ("POD_NAME", "chart-e2e"),
        ],
    );
    await_status(addr, "/readyz", 200, Duration::from_secs(30)).await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns.name);
    wait_for(
        &leases,
        &full,
        "the operator holds the chart's Lease",
        Duration::from_secs(30),
        |l| {
            l.and_then(|l| l.spec.as_ref())
                .and_then(|s| s.holder_identity.as_deref())
                .is_some_and(|h| h.starts_with("chart-e2e"))
        },
    )
    .await;

    // The main story, every write made as the chart's ServiceAccount: a healthy Deployment gets a
    // crash-looping release; the detector opens an incident with evidence (pods/log, events,
    // ReplicaSets), the example runbook from Git is followed (runbooks, runbooks/status), rolls the
    // Deployment back (deployments patch) and the incident records it all (incidents/status).
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &workloads.name);
    create_rolled_out(
        &deployments,
        &deployment("checkout", &["registry.local/checkout:1"], None),
        Duration::from_secs(90),
    )
    .await;
    let runbook: serde_json::Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/runbooks/crashloop-after-deploy.yaml"
        ))
        .expect("read the example runbook"),
    )
    .expect("the example runbook is YAML");
    let runbooks: Api<Runbook> = Api::namespaced(client.clone(), &workloads.name);
    runbooks
        .create(
            &PostParams::default(),
            &serde_json::from_value(runbook).expect("a Runbook"),
        )
        .await
        .expect("create the example runbook");
    roll_to(
        &deployments,
        &deployment(
            "checkout",
            &["registry.local/checkout:2"],
            Some("crashloop"),
        ),
        "release 2",
        false,
    )
    .await;
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &workloads.name);
    let found = wait_for_all(
        &incidents,
        DETECTED,
        "a detected incident whose runbook rolled the Deployment back",
        Duration::from_secs(120),
        |found| {
            found.len() == 1
                && found[0].status.as_ref().is_some_and(|s| {
                    !s.timeline.is_empty()
                        && s.evidence.as_ref().is_some_and(|e| e.logs.is_some())
                        && s.actions.iter().any(|a| a.phase == ActionPhase::Succeeded)
                })
        },
    )
    .await;
    let run = found[0]
        .status
        .as_ref()
        .and_then(|s| s.runbook.as_ref())
        .expect("the runbook run");
    assert_eq!(run.name, "crashloop-after-deploy");
    let checkout = deployments.get("checkout").await.expect("get Deployment");
    assert_eq!(images(&checkout), ["registry.local/checkout:1"]);
    wait_for(
        &runbooks,
        "crashloop-after-deploy",
        "the runbook's status counts the incident",
        Duration::from_secs(60),
        |r| {
            r.and_then(|r| r.status.as_ref())
                .is_some_and(|s| s.matched_incidents == 1)
        },
    )
    .await;
    // The timeline is published as events.k8s.io Events (create), also as the ServiceAccount.
    let events: Api<Event> = Api::namespaced(client.clone(), &workloads.name);
    wait_for_all(
        &events,
        "",
        "a timeline Event about the incident",
        Duration::from_secs(30),
        |found| {
            found
                .iter()
                .any(|e| e.regarding.as_ref().and_then(|r| r.kind.as_deref()) == Some("Incident"))
        },
    )
    .await;
    // API Priority and Fairness: the API server classified the operator's requests under the
    // chart's FlowSchemas (its own level for the work, another for Lease renewals).
    let lease_schema = format!("{full}-leader-election");
    for schema in [&full, &lease_schema] {
        let dispatched = dispatched_by_flow_schema(&client, schema).await;
        assert!(
            dispatched > 0.0,
            "the API server dispatched no request under FlowSchema {schema}"
        );
    }
    let status = terminate(child).await;
    assert_eq!(status.code(), Some(0), "clean exit on SIGTERM");
    let _ = std::fs::remove_dir_all(&dir);

    // Uninstall removes the cluster-scoped objects too.
    release.uninstall();
    assert!(
        Api::<FlowSchema>::all(client.clone())
            .get_opt(&full)
            .await
            .expect("get FlowSchema")
            .is_none()
    );
    assert!(
        Api::<ClusterRole>::all(client.clone())
            .get_opt(&full)
            .await
            .expect("get ClusterRole")
            .is_none()
    );
    assert!(
        Api::<ClusterRoleBinding>::all(client.clone())
            .get_opt(&full)
            .await
            .expect("get ClusterRoleBinding")
            .is_none()
    );
}
