//! The public status page against the real API server, operator and plugin: publish -> the
//! Statuspage v2 JSON (checked against a schema written from Statuspage's documentation, by
//! Python's jsonschema) shows it with the right enum values; a public update -> a new
//! `incident_updates` entry and a new Atom entry (parsed by feedparser); resolve -> history; an
//! unpublished incident, even a detected one with pod names in its evidence, never appears on any
//! public endpoint. Also the helpers the other `status_page_*` files share.

use std::{net::SocketAddr, process::Stdio, time::Duration};

use incident_operator::api::{Incident, StatusPage};
use kube::{Api, Client, ResourceExt, api::PostParams};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::{
    detection::{DETECT, DETECTED},
    plugin::{authenticated_user, ok},
    receiver::python,
    remediation::deployment,
    support::{Operator, TestNamespace, client, free_addr, install_crds, wait_for_all},
};

/// Every public endpoint, with the schema ($defs entry) its body must match.
pub const PUBLIC: [(&str, Option<&str>); 9] = [
    ("/", None),
    ("/history.atom", None),
    ("/api/v2/summary.json", Some("summary.json")),
    ("/api/v2/status.json", Some("status.json")),
    ("/api/v2/components.json", Some("components.json")),
    ("/api/v2/incidents.json", Some("incidents.json")),
    ("/api/v2/incidents/unresolved.json", Some("incidents.json")),
    (
        "/api/v2/scheduled-maintenances.json",
        Some("scheduled-maintenances.json"),
    ),
    (
        "/api/v2/scheduled-maintenances/upcoming.json",
        Some("scheduled-maintenances.json"),
    ),
];
pub const WITHIN: Duration = Duration::from_secs(30);

/// The operator serving the status page `shop` of `ns` on its own listener.
pub struct PageOperator {
    pub operator: Operator,
    pub page: SocketAddr,
}

impl PageOperator {
    pub async fn start(ns: &str, extra: &[&str]) -> Self {
        Self::start_with_env(ns, extra, &[]).await
    }

    pub async fn start_with_env(ns: &str, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let page = free_addr();
        let (addr, reference) = (page.to_string(), format!("{ns}/shop"));
        let mut args = vec!["--status-page-addr", &addr, "--status-page", &reference];
        args.extend_from_slice(extra);
        let operator = Operator::start_with_env(ns, &args, env).await;
        Self { operator, page }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.page)
    }

    /// GET with optional headers: status, headers, body.
    pub async fn fetch(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (u16, reqwest::header::HeaderMap, String) {
        incident_operator::notifiers::install_crypto_provider();
        let mut request = reqwest::Client::new().get(self.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.text().await.unwrap_or_default();
        (status, headers, body)
    }

    pub async fn json(&self, path: &str) -> Value {
        let (status, _, body) = self.fetch(path, &[]).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("GET {path} is not JSON ({e}): {body}"))
    }

    /// Polls `path` until `check` holds on its JSON, or fails with the last body.
    pub async fn await_json(
        &self,
        path: &str,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + WITHIN;
        loop {
            let (status, _, body) = self.fetch(path, &[]).await;
            if status == 200
                && let Ok(value) = serde_json::from_str::<Value>(&body)
                && check(&value)
            {
                return value;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{path} never showed {what} within {WITHIN:?}; last ({status}): {body}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Runs tests/e2e/statuspage/check.py ARGS with `input` on stdin: (success, stdout).
pub async fn check(args: &[&str], input: &str) -> (bool, String) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/statuspage/check.py");
    let mut child = tokio::process::Command::new(python())
        .arg(script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run check.py");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(input.as_bytes())
        .await
        .expect("write to check.py");
    drop(stdin);
    let output = child.wait_with_output().await.expect("check.py output");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("ModuleNotFoundError"),
        "check.py needs feedparser and jsonschema: run hack/python-env.sh (or set \
         INCIDENT_E2E_PYTHON to a python that has hack/python/requirements.txt): {stderr}"
    );
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

/// The feed's entries as feedparser reads them; fails unless it is well-formed Atom 1.0.
pub async fn atom_entries(page: &PageOperator) -> Vec<Value> {
    let (status, headers, body) = page.fetch("/history.atom", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(
        headers["content-type"],
        "application/atom+xml; charset=utf-8"
    );
    let (valid, out) = check(&["atom"], &body).await;
    assert!(valid, "feedparser refused the feed: {out}\n{body}");
    serde_json::from_str(&out).expect("check.py prints the entries as JSON")
}

/// Creates the StatusPage `shop`: checkout (also any incident about the Deployment checkout) and
/// search, in the group Shop.
pub async fn create_page(client: &Client, ns: &str) {
    let page: StatusPage = serde_json::from_value(json!({
        "apiVersion": "incident.dev/v1alpha1", "kind": "StatusPage",
        "metadata": { "name": "shop" },
        "spec": {
            "title": "Shop status",
            "url": "https://status.example.com",
            "components": [
                { "name": "checkout", "displayName": "Checkout", "group": "Shop",
                  "description": "Paying for an order" },
                { "name": "search", "displayName": "Search", "group": "Shop" },
            ],
        },
    }))
    .expect("StatusPage");
    Api::<StatusPage>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &page)
        .await
        .expect("create StatusPage");
}

/// Creates a reported incident whose internal title and description must never be public.
pub async fn create_incident(client: &Client, ns: &str, name: &str) {
    let incident: Incident = serde_json::from_value(json!({
        "apiVersion": "incident.dev/v1alpha1", "kind": "Incident",
        "metadata": { "name": name },
        "spec": { "title": "db pool exhausted on payments-db-0 (internal)", "severity": "P1",
                  "description": "password rotation broke the pool; see pod payments-db-0 logs" },
    }))
    .expect("Incident");
    Api::<Incident>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &incident)
        .await
        .expect("create Incident");
}

/// Asserts that no public endpoint holds any of `words` and that each JSON one fits the schema.
pub async fn assert_public_holds_none(page: &PageOperator, words: &[String]) {
    for (path, schema) in PUBLIC {
        let (status, headers, body) = page.fetch(path, &[]).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        assert!(headers.get("set-cookie").is_none(), "{path} sets a cookie");
        for word in words {
            assert!(
                !body.contains(word.as_str()),
                "{path} shows {word:?}:\n{body}"
            );
        }
        if let Some(schema) = schema {
            let (valid, out) = check(&["json", schema], &body).await;
            assert!(
                valid,
                "{path} does not fit the Statuspage schema {schema}: {out}\n{body}"
            );
        }
    }
}

fn incident_updates(summary: &Value) -> usize {
    summary["incidents"][0]["incident_updates"]
        .as_array()
        .map_or(0, Vec::len)
}

#[tokio::test]
async fn publishing_updating_and_resolving_show_on_every_public_endpoint_and_nothing_else_does() {
    let client = client().await;
    install_crds(&client).await;
    let ns = TestNamespace::new(&client, "status-page").await;
    create_page(&client, &ns.name).await;
    let page = PageOperator::start(&ns.name, &["--detection", "true"]).await;

    // A detected incident (pod names in its signals and evidence) and a reported one: neither is
    // published, so neither shows.
    let mut crashing = deployment(
        "checkout",
        &["registry.local/checkout:2"],
        Some("crashloop"),
    );
    crashing.spec.replicas = Some(2);
    let deployments =
        Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(client.clone(), &ns.name);
    deployments
        .create(&PostParams::default(), &crashing)
        .await
        .expect("create Deployment");
    let incidents: Api<Incident> = Api::namespaced(client.clone(), &ns.name);
    let detected = wait_for_all(
        &incidents,
        DETECTED,
        "a detected incident with evidence",
        DETECT,
        |found| {
            found.len() == 1
                && found[0]
                    .status
                    .as_ref()
                    .is_some_and(|s| s.evidence.is_some())
                && found[0].spec.signals.iter().any(|s| !s.pods.is_empty())
        },
    )
    .await
    .remove(0);
    create_incident(&client, &ns.name, "slow-checkout").await;
    let mut internal: Vec<String> = detected
        .spec
        .signals
        .iter()
        .flat_map(|s| s.pods.clone())
        .collect();
    internal.extend([
        detected.spec.title.clone(),
        detected.name_any(),
        "slow-checkout".to_owned(),
        "payments-db-0".to_owned(),
        "password rotation".to_owned(),
    ]);
    let evidence =
        serde_json::to_string(&detected.status.as_ref().and_then(|s| s.evidence.clone()))
            .expect("evidence");
    assert!(
        internal.iter().any(|w| evidence.contains(w.as_str())),
        "the evidence names the pods: {evidence}"
    );
    assert_public_holds_none(&page, &internal).await;
    let summary = page.json("/api/v2/summary.json").await;
    assert_eq!(summary["status"]["indicator"], "none");
    assert_eq!(summary["incidents"], json!([]));

    // Published: the public title, impact and component, nothing else.
    ok(
        &ns.name,
        &[
            "publish",
            "slow-checkout",
            "--title",
            "Checkout is slow",
            "--component",
            "checkout",
            "--impact",
            "major",
        ],
    )
    .await;
    let summary = page
        .await_json("/api/v2/summary.json", "the published incident", |s| {
            s["incidents"][0]["name"] == "Checkout is slow"
        })
        .await;
    let incident = &summary["incidents"][0];
    assert_eq!(incident["impact"], "major");
    assert_eq!(incident["status"], "investigating");
    assert_eq!(summary["status"]["indicator"], "major");
    assert_eq!(summary["status"]["description"], "Partial System Outage");
    let checkout = summary["components"]
        .as_array()
        .expect("components")
        .iter()
        .find(|c| c["name"] == "Checkout")
        .expect("Checkout");
    assert_eq!(checkout["status"], "partial_outage");
    assert_public_holds_none(&page, &internal).await;

    // Each public update: one more incident_updates entry and one more Atom entry.
    ok(
        &ns.name,
        &[
            "update",
            "slow-checkout",
            "--public",
            "We are investigating slow checkouts",
            "--status",
            "investigating",
        ],
    )
    .await;
    page.await_json("/api/v2/summary.json", "one incident update", |s| {
        incident_updates(s) == 1
    })
    .await;
    assert_eq!(atom_entries(&page).await.len(), 1);
    ok(
        &ns.name,
        &[
            "update",
            "slow-checkout",
            "--public",
            "A fix is being rolled out",
            "--status",
            "identified",
        ],
    )
    .await;
    let summary = page
        .await_json("/api/v2/summary.json", "two incident updates", |s| {
            incident_updates(s) == 2
        })
        .await;
    let updates = &summary["incidents"][0]["incident_updates"];
    assert_eq!(updates[0]["status"], "identified");
    assert_eq!(updates[0]["body"], "A fix is being rolled out");
    assert_eq!(summary["incidents"][0]["status"], "identified");
    let entries = atom_entries(&page).await;
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert_eq!(entries[0]["title"], "Checkout is slow: Identified");
    assert_eq!(entries[0]["content"], "A fix is being rolled out");
    // The author is the user the API server authenticated, kept in the Incident (not published).
    let user = authenticated_user(&client).await;
    let stored = incidents.get("slow-checkout").await.expect("get Incident");
    assert!(stored.spec.public_updates.iter().all(|u| u.author == user));

    // Revalidation: the same body is a 304, with the security headers.
    let (status, headers, _) = page.fetch("/api/v2/summary.json", &[]).await;
    assert_eq!(status, 200);
    let etag = headers["etag"].to_str().expect("etag").to_owned();
    assert!(
        headers["content-security-policy"]
            .to_str()
            .expect("csp")
            .contains("frame-ancestors 'none'")
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(headers.contains_key("last-modified"));
    let (status, _, body) = page
        .fetch("/api/v2/summary.json", &[("If-None-Match", &etag)])
        .await;
    assert_eq!(status, 304, "{body}");

    // Resolved: history, with a resolved update the operator published.
    ok(
        &ns.name,
        &[
            "resolve",
            "slow-checkout",
            "--summary",
            "restarted payments-db-0 after the password rotation",
        ],
    )
    .await;
    let all = page
        .await_json("/api/v2/incidents.json", "the resolved incident", |s| {
            s["incidents"][0]["status"] == "resolved"
        })
        .await;
    assert!(all["incidents"][0]["resolved_at"].is_string());
    assert_eq!(
        all["incidents"][0]["incident_updates"][0]["body"],
        "This incident has been resolved."
    );
    assert_eq!(
        page.json("/api/v2/incidents/unresolved.json").await["incidents"],
        json!([])
    );
    assert_eq!(
        page.json("/api/v2/status.json").await["status"]["indicator"],
        "none"
    );
    let (_, _, html) = page.fetch("/", &[]).await;
    let past = html.find("Past incidents").expect("a history section");
    assert!(html[past..].contains("Checkout is slow"), "{html}");
    assert_eq!(atom_entries(&page).await.len(), 3);
    assert_public_holds_none(&page, &internal).await;
    page.operator.stop().await;
}
