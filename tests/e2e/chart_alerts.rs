//! The chart's alert receiver (`alerts.enabled`): the Deployment gets the receiver's port, flags and
//! the token Secret mounted read-only as the file the flag names; a Service `<fullname>-alerts`; the
//! NetworkPolicy admits only the configured peers to that port; NOTES show Alertmanager's
//! `webhook_configs`. The operator binary then runs out of cluster with the rendered flags, as the
//! chart's ServiceAccount, the Secret's token in the file the kubelet would mount: a POST with that
//! token stores an incident (200), without it or with another one gets 401. A token the chart
//! generates (`alerts.tokenSecret.create`) survives an upgrade.

use std::time::Duration;

use incident_operator::api::Incident;
use k8s_openapi::{
    ByteString,
    api::{
        apps::v1::Deployment,
        core::v1::{ConfigMap, Container, PodSpec, Secret, Service, ServiceAccount},
        networking::v1::NetworkPolicy,
    },
};
use kube::{
    Api,
    api::{ListParams, PostParams},
};
use serde_json::{Value, json};

use crate::{
    chart::{Release, enforce_restricted},
    chart_operator::service_account_kubeconfig,
    support::{TestNamespace, await_status, client, free_addr, start_with_env, terminate},
};

/// Alertmanager's pods, the only peers the NetworkPolicy lets reach the receiver.
fn alertmanager_peer() -> Value {
    json!({
        "namespaceSelector": { "matchLabels": { "kubernetes.io/metadata.name": "monitoring" } },
        "podSelector": { "matchLabels": { "app.kubernetes.io/name": "alertmanager" } },
    })
}

/// The operator container and its pod of the release's Deployment.
async fn operator_pod(deployments: &Api<Deployment>, name: &str) -> (PodSpec, Container) {
    let deployment = deployments
        .get(name)
        .await
        .unwrap_or_else(|e| panic!("Deployment {name}: {e}"));
    let pod = deployment.spec.template.spec.expect("pod spec");
    let container = pod.containers[0].clone();
    (pod, container)
}

/// The value of `--flag=value` in `args`.
fn flag<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.iter()
        .find_map(|a| a.strip_prefix(flag)?.strip_prefix('='))
}

/// One firing alert, as Alertmanager's webhook (version 4) sends it.
fn message() -> Value {
    json!({
        "version": "4", "groupKey": "{}:{alertname=\"CheckoutErrors\"}", "status": "firing",
        "receiver": "incidents", "truncatedAlerts": 0, "externalURL": "http://alertmanager.example",
        "groupLabels": { "alertname": "CheckoutErrors" },
        "commonLabels": { "alertname": "CheckoutErrors", "severity": "critical" },
        "commonAnnotations": { "summary": "checkout answers 5xx" },
        "alerts": [{
            "status": "firing", "labels": { "alertname": "CheckoutErrors", "severity": "critical" },
            "annotations": { "summary": "checkout answers 5xx" },
            "startsAt": "2026-11-30T09:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "", "fingerprint": "0f1e2d3c4b5a6978",
        }],
    })
}

async fn post(url: &str, token: Option<&str>) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(url)
        .header("Content-Type", "application/json")
        .body(message().to_string());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("post to the receiver");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn the_chart_runs_the_alert_receiver_with_the_secrets_token() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "chart-alerts").await;
    let apps = TestNamespace::new(&client, "chart-alerts-apps").await;
    enforce_restricted(&client, &ns.name).await;
    let release_name = ns.name.clone();
    let full = format!("{release_name}-incident-operator");
    // The token Secret exists before the chart, which only names it.
    let token = format!("chart-alerts-{}", ns.name);
    let secret: Secret = serde_json::from_value(json!({
        "metadata": { "name": "alertmanager-token" },
        "stringData": { "token": token },
    }))
    .expect("Secret");
    Api::<Secret>::namespaced(client.clone(), &ns.name)
        .create(&PostParams::default(), &secret)
        .await
        .expect("create the token Secret");
    let watch = format!("operator.watchNamespace={}", apps.name);
    let target = format!("alerts.namespace={}", apps.name);
    let peers = format!(
        "networkPolicy.alertsIngress={}",
        json!([alertmanager_peer()])
    );
    let mut release = Release::install(
        &release_name,
        &ns.name,
        &[
            "--set",
            "alerts.enabled=true",
            "--set",
            "alerts.tokenSecret.name=alertmanager-token",
            "--set",
            &watch,
            "--set",
            &target,
            "--set",
            "alerts.maxAlerts=50",
            "--set",
            "networkPolicy.enabled=true",
            "--set-json",
            &peers,
        ],
    );

    // The Deployment: the receiver's flags, port and the token Secret mounted read-only, 0440, as
    // the file --alerts-token-file names.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let (pod, container) = operator_pod(&deployments, &full).await;
    let args = container.args.clone().unwrap_or_default();
    assert_eq!(
        flag(&args, "--alerts-addr"),
        Some("0.0.0.0:9095"),
        "{args:?}"
    );
    assert_eq!(flag(&args, "--alerts-namespace"), Some(apps.name.as_str()));
    assert_eq!(flag(&args, "--alerts-max-body"), Some("1048576"));
    assert_eq!(flag(&args, "--alerts-max-alerts"), Some("50"));
    assert_eq!(flag(&args, "--alerts-namespaces"), None, "none opted in");
    let ports = container.ports.clone().unwrap_or_default();
    assert!(
        ports
            .iter()
            .any(|p| p.name.as_deref() == Some("alerts") && p.container_port == 9095),
        "{ports:?}"
    );
    let volume = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == "alerts-token")
        .expect("the token volume");
    let source = volume.secret.as_ref().expect("a secret volume");
    assert_eq!(source.secret_name.as_deref(), Some("alertmanager-token"));
    assert_eq!(source.default_mode, Some(0o440));
    let items = source.items.clone().unwrap_or_default();
    assert_eq!(items.len(), 1, "only the token's key is mounted");
    assert_eq!(items[0].key, "token");
    let mount = container
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.name == "alerts-token")
        .expect("the token mount");
    assert_eq!(mount.read_only, Some(true));
    assert_eq!(
        flag(&args, "--alerts-token-file"),
        Some(format!("{}/{}", mount.mount_path, items[0].path).as_str()),
        "the flag names the mounted file"
    );

    // The Service on the receiver's port, selecting the operator pods.
    let service = Api::<Service>::namespaced(client.clone(), &ns.name)
        .get(&format!("{full}-alerts"))
        .await
        .expect("the alerts Service");
    let spec = service.spec.expect("Service spec");
    let port = &spec.ports.as_ref().expect("ports")[0];
    assert_eq!((port.name.as_deref(), port.port), (Some("alerts"), 9095));
    let deployment = deployments.get(&full).await.expect("Deployment");
    assert_eq!(spec.selector, deployment.spec.selector.match_labels);

    // The NetworkPolicy: the metrics port as before, the alerts port from Alertmanager only.
    let policy = Api::<NetworkPolicy>::namespaced(client.clone(), &ns.name)
        .get(&full)
        .await
        .expect("NetworkPolicy");
    let ingress = serde_json::to_value(policy.spec.and_then(|s| s.ingress)).expect("JSON");
    assert_eq!(
        ingress,
        json!([
            { "ports": [{ "port": "http", "protocol": "TCP" }] },
            { "ports": [{ "port": "alerts", "protocol": "TCP" }], "from": [alertmanager_peer()] },
        ])
    );

    // NOTES: Alertmanager's webhook_configs for this release.
    let url = format!(
        "url: http://{full}-alerts.{}.svc:9095/alerts/alertmanager",
        ns.name
    );
    assert!(release.notes.contains(&url), "{}", release.notes);
    assert!(
        release
            .notes
            .contains("credentials_file: /etc/alertmanager/secrets/alertmanager-token/token"),
        "{}",
        release.notes
    );

    // The operator with exactly these flags, as the chart's ServiceAccount; only the addresses and
    // the files are local: the token file holds the Secret's bytes, as the kubelet mounts them.
    let dir = std::env::temp_dir().join(format!("incident-e2e-chart-alerts-{}", ns.name));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let kubeconfig = dir.join("kubeconfig");
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns.name);
    service_account_kubeconfig(&accounts, &full, &kubeconfig).await;
    let stored = Api::<Secret>::namespaced(client.clone(), &ns.name)
        .get("alertmanager-token")
        .await
        .expect("the token Secret");
    let ByteString(bytes) = stored
        .data
        .and_then(|mut d| d.remove("token"))
        .expect("data");
    let token_file = dir.join("token");
    std::fs::write(&token_file, bytes).expect("write the token file");
    let config_map = Api::<ConfigMap>::namespaced(client.clone(), &ns.name)
        .get(&full)
        .await
        .expect("the chart's ConfigMap");
    let text = config_map
        .data
        .and_then(|mut d| d.remove("operator.yaml"))
        .expect("operator.yaml");
    let config = dir.join("operator.yaml");
    std::fs::write(&config, text).expect("write the configuration file");
    let alerts_addr = free_addr();
    let local: Vec<String> = args
        .iter()
        .filter(|a| !a.starts_with("--http-addr="))
        .map(|a| match a.split_once('=') {
            Some(("--config", _)) => format!("--config={}", config.display()),
            Some(("--alerts-addr", _)) => format!("--alerts-addr={alerts_addr}"),
            Some(("--alerts-token-file", _)) => {
                format!("--alerts-token-file={}", token_file.display())
            }
            _ => a.clone(),
        })
        .collect();
    let local: Vec<&str> = local.iter().map(String::as_str).collect();
    let addr = free_addr();
    let child = start_with_env(
        &kubeconfig,
        addr,
        &local,
        &[
            ("POD_NAMESPACE", ns.name.as_str()),
            ("POD_NAME", "chart-alerts-e2e"),
        ],
    );
    await_status(addr, "/readyz", 200, Duration::from_secs(30)).await;

    let url = format!("http://{alerts_addr}/alerts/alertmanager");
    let (status, body) = post(&url, None).await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (401, Some("unauthorized"))
    );
    let (status, _) = post(&url, Some("not-the-token")).await;
    assert_eq!(status, 401);
    let (status, body) = post(&url, Some(&token)).await;
    assert_eq!(
        (status, body["change"].as_str()),
        (200, Some("created")),
        "{body}"
    );
    assert_eq!(body["namespace"].as_str(), Some(apps.name.as_str()));
    // Stored by the chart's ServiceAccount, in alerts.namespace.
    let incidents = Api::<Incident>::namespaced(client.clone(), &apps.name)
        .list(&ListParams::default().labels("incident.dev/source=alertmanager"))
        .await
        .expect("list incidents");
    assert_eq!(incidents.items.len(), 1);
    assert_eq!(incidents.items[0].spec.severity.as_str(), "P1");

    let status = terminate(child).await;
    assert_eq!(status.code(), Some(0), "clean exit on SIGTERM");
    let _ = std::fs::remove_dir_all(&dir);
    release.uninstall();
}

/// `alerts.tokenSecret.create`: the chart makes the Secret with a random token, mounts it, and an
/// upgrade keeps the token (Alertmanager's copy stays valid); uninstall removes it.
#[tokio::test]
async fn a_token_the_chart_generates_is_kept_on_upgrade() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "chart-alerts-token").await;
    let full = format!("{}-incident-operator", ns.name);
    let secret_name = format!("{full}-alerts-token");
    let mut release = Release::install(
        &ns.name,
        &ns.name,
        &[
            "--set",
            "alerts.enabled=true",
            "--set",
            "alerts.tokenSecret.create=true",
        ],
    );
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    let token = |secret: Secret| -> Vec<u8> {
        let ByteString(bytes) = secret
            .data
            .and_then(|mut d| d.remove("token"))
            .expect("token");
        bytes
    };
    let first = token(
        secrets
            .get(&secret_name)
            .await
            .expect("the generated Secret"),
    );
    assert_eq!(first.len(), 48);
    assert!(first.iter().all(u8::is_ascii_alphanumeric));
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let (pod, _) = operator_pod(&deployments, &full).await;
    let mounted = pod
        .volumes
        .iter()
        .flatten()
        .find_map(|v| v.secret.as_ref()?.secret_name.clone());
    assert_eq!(mounted.as_deref(), Some(secret_name.as_str()));
    assert!(release.notes.contains("generated by the chart"));

    release.upgrade(&["--reuse-values", "--set", "alerts.maxAlerts=10"]);
    let (_, container) = operator_pod(&deployments, &full).await;
    let args = container.args.unwrap_or_default();
    assert_eq!(flag(&args, "--alerts-max-alerts"), Some("10"));
    let second = token(secrets.get(&secret_name).await.expect("the Secret"));
    assert_eq!(first, second, "the upgrade kept the token");

    release.uninstall();
    assert!(
        secrets
            .get_opt(&secret_name)
            .await
            .expect("get Secret")
            .is_none()
    );
}
