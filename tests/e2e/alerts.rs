//! Alerts end to end: a real Alertmanager routes alerts to the operator's receiver with a bearer
//! token from a file; a firing group opens one incident, its resolution resolves it, every step
//! on the timeline; a resend writes nothing; a wrong token, an oversize body and a wrong payload
//! are refused with the status Alertmanager expects, and nothing is written.

use std::time::Duration;

use incident_operator::api::{AlertState, EntryType, Incident};
use kube::{Api, api::ListParams};
use serde_json::{Value, json};

use crate::{
    alertmanager::{Alertmanager, Scratch},
    lifecycle::{entries, setup},
    support::{Operator, free_addr, wait_for_all},
};

const TOKEN: &str = "am-e2e-token-6f1c0d";
const ARRIVAL: Duration = Duration::from_secs(60);

/// The operator with its alert receiver on (token `token`, `extra` flags), incidents going to
/// `ns`; the receiver's address.
pub async fn receiver(
    ns: &str,
    scratch: &Scratch,
    token: &str,
    extra: &[&str],
) -> (Operator, std::net::SocketAddr) {
    let token = scratch.file("operator-token", &format!("{token}\n"));
    let addr = free_addr();
    let (addr_s, token) = (addr.to_string(), token.to_string_lossy().into_owned());
    let mut flags = vec![
        "--alerts-addr",
        addr_s.as_str(),
        "--alerts-token-file",
        token.as_str(),
        "--alerts-namespace",
        ns,
    ];
    flags.extend_from_slice(extra);
    (Operator::start(ns, &flags).await, addr)
}

/// The operator with its alert receiver on; the URL Alertmanager posts to.
async fn operator(ns: &str, scratch: &Scratch) -> (Operator, String) {
    let (operator, addr) = receiver(ns, scratch, TOKEN, &[]).await;
    (operator, format!("http://{addr}/alerts/alertmanager"))
}

fn alert(name: &str, severity: &str, ends_at: Option<&str>) -> Value {
    let mut alert = json!({
        "labels": { "alertname": name, "severity": severity, "service": "checkout" },
        "annotations": { "summary": "checkout answers 5xx", "runbook_url": "https://runbooks.example/5xx" },
        "generatorURL": "http://prometheus.example/graph?g0.expr=errors",
    });
    if let Some(ends_at) = ends_at {
        alert["endsAt"] = json!(ends_at);
    }
    alert
}

async fn post(url: &str, token: Option<&str>, body: String) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(url)
        .header("Content-Type", "application/json")
        .body(body);
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

async fn incidents(api: &Api<Incident>) -> Vec<Incident> {
    api.list(&ListParams::default())
        .await
        .expect("list incidents")
        .items
}

#[tokio::test]
async fn alertmanager_opens_an_incident_and_its_resolution_resolves_it() {
    let (_client, ns, api) = setup("alerts-am").await;
    let scratch = Scratch::new("alerts-am");
    let (_operator, url) = operator(&ns.name, &scratch).await;
    let am_token = scratch.file("am-token", TOKEN);
    let am = Alertmanager::start(&scratch, &url, &am_token).await;

    am.post(json!([alert("CheckoutErrors", "critical", None)]))
        .await;
    let opened = wait_for_all(
        &api,
        "incident.dev/source=alertmanager",
        "an incident from the alert",
        ARRIVAL,
        |all| {
            all.iter()
                .any(|i| i.spec.alerts.len() == 1 && entries(i, EntryType::AlertFiring) == 1)
        },
    )
    .await;
    assert_eq!(opened.len(), 1, "one incident per group");
    let incident = &opened[0];
    assert_eq!(incident.spec.severity.as_str(), "P1", "critical maps to P1");
    assert_eq!(incident.spec.title, "CheckoutErrors: checkout answers 5xx");
    let signal = &incident.spec.alerts[0];
    assert_eq!(signal.state, AlertState::Firing);
    assert_eq!(
        signal.runbook_url.as_deref(),
        Some("https://runbooks.example/5xx")
    );
    assert_eq!(
        signal.labels.get("service").map(String::as_str),
        Some("checkout")
    );
    let labels = incident.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels.get("incident.dev/source").map(String::as_str),
        Some("alertmanager")
    );

    // The alert ends (Prometheus sends it with endsAt): Alertmanager sends the resolution.
    let now = jiff::Timestamp::now().to_string();
    am.post(json!([alert("CheckoutErrors", "critical", Some(&now))]))
        .await;
    let resolved = wait_for_all(
        &api,
        "incident.dev/source=alertmanager",
        "the incident resolved",
        ARRIVAL,
        |all| {
            all.iter()
                .all(|i| i.spec.resolution.is_some() && entries(i, EntryType::Resolved) == 1)
                && !all.is_empty()
        },
    )
    .await;
    assert_eq!(resolved.len(), 1, "still one incident");
    let incident = &resolved[0];
    let resolution = incident.spec.resolution.as_ref().expect("resolution");
    assert_eq!(resolution.by, "incident-operator");
    assert_eq!(resolution.summary, "Every alert resolved: CheckoutErrors");
    assert_eq!(entries(incident, EntryType::AlertResolved), 1);
    assert_eq!(incident.spec.alerts[0].state, AlertState::Resolved);
}

#[tokio::test]
async fn a_resend_writes_nothing_and_bad_requests_are_refused_before_anything_is_written() {
    let (_client, ns, api) = setup("alerts-refused").await;
    let scratch = Scratch::new("alerts-refused");
    let (operator, url) = operator(&ns.name, &scratch).await;
    let message = json!({
        "version": "4", "groupKey": "{}:{alertname=\"DiskFull\"}", "status": "firing",
        "receiver": "operator", "truncatedAlerts": 0, "externalURL": "http://am.example",
        "groupLabels": { "alertname": "DiskFull" },
        "commonLabels": { "alertname": "DiskFull", "severity": "warning" },
        "commonAnnotations": { "summary": "the disk is 95% full" },
        "notification_reason": "first notification", "routeLabels": {},
        "alerts": [{
            "status": "firing", "labels": { "alertname": "DiskFull", "severity": "warning" },
            "annotations": { "summary": "the disk is 95% full" },
            "startsAt": "2026-11-30T09:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "", "fingerprint": "0123456789abcdef",
        }],
    });

    let (status, body) = post(&url, Some("wrong-token"), message.to_string()).await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (401, Some("unauthorized"))
    );
    let (status, _) = post(&url, None, message.to_string()).await;
    assert_eq!(status, 401);
    let huge = format!(
        "{{\"version\":\"4\",\"pad\":\"{}\"}}",
        "x".repeat(2 * 1024 * 1024)
    );
    let (status, body) = post(&url, Some(TOKEN), huge).await;
    assert_eq!((status, body["reason"].as_str()), (413, Some("too_large")));
    let (status, body) = post(&url, Some(TOKEN), "{not json".to_owned()).await;
    assert_eq!(status, 400, "{body}");
    let mut old = message.clone();
    old["version"] = json!("3");
    let (status, body) = post(&url, Some(TOKEN), old.to_string()).await;
    assert_eq!(status, 400);
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("version"),
        "{body}"
    );
    assert!(
        incidents(&api).await.is_empty(),
        "nothing written for a refused request"
    );

    let (status, body) = post(&url, Some(TOKEN), message.to_string()).await;
    assert_eq!(
        (status, body["change"].as_str()),
        (200, Some("created")),
        "{body}"
    );
    let stored = incidents(&api).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].spec.severity.as_str(), "P2", "warning maps to P2");
    let version = stored[0].metadata.resource_version.clone();

    // Alertmanager resends the group every repeat_interval and on retries: nothing changes.
    let (status, body) = post(&url, Some(TOKEN), message.to_string()).await;
    assert_eq!(
        (status, body["change"].as_str()),
        (200, Some("unchanged")),
        "{body}"
    );
    let again = api
        .get(stored[0].metadata.name.as_deref().unwrap_or_default())
        .await
        .expect("incident");
    assert_eq!(
        again.spec, stored[0].spec,
        "the resend changed nothing the receiver owns"
    );
    assert!(
        again.metadata.resource_version == version || again.status.is_some(),
        "only the incident controller's own status write may follow"
    );
    operator
        .await_metric(
            r#"incident_operator_alert_requests_total{source="alertmanager",result="rejected",reason="unauthorized"}"#,
            |v| v == Some(2.0),
        )
        .await;
    operator
        .await_metric(
            r#"incident_operator_alert_requests_total{source="alertmanager",result="duplicate",reason=""}"#,
            |v| v == Some(1.0),
        )
        .await;
}

#[tokio::test]
async fn the_severity_mapping_is_the_operators_to_choose() {
    let (_client, ns, api) = setup("alerts-severity").await;
    let scratch = Scratch::new("alerts-severity");
    let extra = [
        "--alerts-severity-label",
        "urgency",
        "--alerts-severity",
        "wake-someone=P0",
        "--alerts-default-severity",
        "P3",
    ];
    let (_operator, addr) = receiver(&ns.name, &scratch, TOKEN, &extra).await;
    let url = format!("http://{addr}/alerts/alertmanager");
    for (name, urgency) in [("PaymentsDown", "Wake-Someone"), ("CacheCold", "whenever")] {
        let message = json!({
            "version": "4", "groupKey": format!("{{}}:{{alertname=\"{name}\"}}"), "status": "firing",
            "groupLabels": { "alertname": name }, "commonLabels": { "alertname": name },
            "alerts": [{ "status": "firing", "labels": { "alertname": name, "urgency": urgency },
                         "startsAt": "2026-11-30T09:00:00Z", "fingerprint": format!("fp-{name}") }],
        });
        let (status, body) = post(&url, Some(TOKEN), message.to_string()).await;
        assert_eq!(status, 200, "{body}");
    }
    let mut stored: Vec<(String, String)> = incidents(&api)
        .await
        .iter()
        .map(|i| (i.spec.title.clone(), i.spec.severity.to_string()))
        .collect();
    stored.sort();
    assert_eq!(
        stored,
        [
            ("CacheCold is firing".to_owned(), "P3".to_owned()),
            ("PaymentsDown is firing".to_owned(), "P0".to_owned()),
        ]
    );
}

#[tokio::test]
async fn without_a_token_the_receiver_refuses_to_start() {
    let scratch = Scratch::new("alerts-no-token");
    let empty = scratch.file("empty-token", "  \n");
    let binary = env!("CARGO_BIN_EXE_incident-operator");
    for (flags, expected) in [
        (
            vec!["--alerts-addr", "127.0.0.1:0"],
            "needs --alerts-token-file",
        ),
        (
            vec![
                "--alerts-addr",
                "127.0.0.1:0",
                "--alerts-token-file",
                empty.to_str().unwrap_or_default(),
            ],
            "is empty",
        ),
    ] {
        let output = tokio::process::Command::new(binary)
            .args([
                "run",
                "--http-addr",
                "127.0.0.1:0",
                "--kubeconfig",
                "/nonexistent",
            ])
            .args(&flags)
            .output()
            .await
            .expect("run the operator");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
    }
}

#[tokio::test]
async fn alertmanager_reaches_the_receiver_over_tls_with_its_ca_file() {
    let (_client, ns, api) = setup("alerts-tls").await;
    let scratch = Scratch::new("alerts-tls");
    // A CA of the test's own, and a serving certificate for 127.0.0.1 signed by it.
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().expect("server key");
    let params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("server params");
    let cert = params.signed_by(&key, &issuer).expect("server certificate");
    let ca_file = scratch.file("ca.pem", &ca.pem());
    let cert_file = scratch.file("tls.crt", &cert.pem());
    let key_file = scratch.file("tls.key", &key.serialize_pem());

    let (cert_s, key_s) = (
        cert_file.to_string_lossy().into_owned(),
        key_file.to_string_lossy().into_owned(),
    );
    let extra = [
        "--alerts-tls-cert-file",
        cert_s.as_str(),
        "--alerts-tls-key-file",
        key_s.as_str(),
    ];
    let (_operator, addr) = receiver(&ns.name, &scratch, TOKEN, &extra).await;
    let am_token = scratch.file("am-token", TOKEN);
    let am = Alertmanager::start_with_ca(
        &scratch,
        &format!("https://{addr}/alerts/alertmanager"),
        &am_token,
        Some(&ca_file),
    )
    .await;
    am.post(json!([alert("TlsCheck", "warning", None)])).await;
    let opened = wait_for_all(
        &api,
        "incident.dev/source=alertmanager",
        "an incident over TLS",
        ARRIVAL,
        |all| all.len() == 1,
    )
    .await;
    assert_eq!(opened[0].spec.title, "TlsCheck: checkout answers 5xx");

    // Plain HTTP to a TLS listener is no request at all.
    let plain = reqwest::Client::new()
        .post(format!("http://{addr}/alerts/alertmanager"))
        .bearer_auth(TOKEN)
        .body("{}")
        .send()
        .await;
    assert!(
        plain.is_err() || plain.is_ok_and(|r| !r.status().is_success()),
        "plain HTTP must not be served"
    );
}

#[tokio::test]
async fn an_alert_naming_a_pod_opens_the_incident_of_the_deployment_that_owns_it() {
    use incident_operator::core::detection::group::Workload;
    use k8s_openapi::api::{apps::v1::Deployment, core::v1::Pod};

    let (client, ns, api) = setup("alerts-pod").await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let web = crate::remediation::deployment("web", &["registry.local/web:1"], None);
    crate::remediation::create_rolled_out(&deployments, &web, crate::remediation::ROLLOUT).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    let pod = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .expect("pods")
        .items
        .into_iter()
        .next()
        .and_then(|p| p.metadata.name)
        .expect("a pod of web");
    let scratch = Scratch::new("alerts-pod");
    let (_operator, url) = operator(&ns.name, &scratch).await;
    let message = json!({
        "version": "4", "groupKey": "{}:{alertname=\"PodOOMKilled\"}", "status": "firing",
        "groupLabels": { "alertname": "PodOOMKilled" },
        "commonLabels": { "alertname": "PodOOMKilled", "namespace": ns.name, "pod": pod,
                          "severity": "warning" },
        "alerts": [{ "status": "firing",
                     "labels": { "alertname": "PodOOMKilled", "namespace": ns.name, "pod": pod },
                     "startsAt": "2026-11-30T09:00:00Z", "fingerprint": "00ff00ff00ff00ff" }],
    });
    let (status, body) = post(&url, Some(TOKEN), message.to_string()).await;
    assert_eq!(status, 200, "{body}");
    let stored = incidents(&api).await;
    assert_eq!(stored.len(), 1);
    let expected = Workload {
        namespace: ns.name.clone(),
        kind: "Deployment".into(),
        name: "web".into(),
    };
    assert_eq!(
        stored[0].metadata.name.as_deref(),
        Some(expected.incident_name().as_str()),
        "the detector's name for the Deployment's problem"
    );
    assert_eq!(stored[0].spec.affected[0].name, "web");
}
