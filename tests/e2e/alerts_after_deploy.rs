//! The headline scenario with real monitoring: a new version of `checkout` rolls out and its error
//! rate jumps; a real Prometheus scrapes the app's counters and fires HighErrorRate; a real
//! Alertmanager sends it to the operator, which opens the incident for the Deployment; the example
//! runbook `error-rate-after-deploy` rolls the Deployment back with no human in the loop; the app
//! is healthy again on the old version, the alert resolves, and the incident resolves — every step
//! on the timeline.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use incident_operator::api::{EntryType, Incident, Runbook};
use k8s_openapi::api::apps::v1::Deployment;
use kube::{Api, api::PostParams};
use serde_json::json;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
    task::JoinHandle,
};

use crate::{
    alertmanager::{Alertmanager, Prometheus, Scratch},
    lifecycle::setup,
    remediation::{ROLLOUT, create_rolled_out, deployment, images, roll_to},
    support::{Operator, free_addr, get, wait_for, wait_for_all},
};

const TOKEN: &str = "am-headline-token-0c9a";
const WAIT: Duration = Duration::from_secs(120);

/// The app's metrics endpoint: 100 requests a second, `errors` percent of them answered 500.
struct App {
    addr: SocketAddr,
    errors: Arc<AtomicU64>,
    _tasks: [JoinHandle<()>; 2],
}

impl App {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let errors = Arc::new(AtomicU64::new(0));
        // Counters in hundredths of a request, so a tick of 0.1 s adds whole numbers.
        let counts = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
        let ticker = {
            let (errors, counts) = (errors.clone(), counts.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(100));
                loop {
                    tick.tick().await;
                    let failed = errors.load(Ordering::SeqCst).min(100);
                    counts[0].fetch_add(100 - failed, Ordering::SeqCst);
                    counts[1].fetch_add(failed, Ordering::SeqCst);
                }
            })
        };
        let server = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let counts = counts.clone();
                tokio::spawn(async move {
                    let mut request = [0u8; 4096];
                    let _ = stream.read(&mut request).await;
                    let body = format!(
                        "# TYPE http_requests_total counter\n\
                         http_requests_total{{code=\"200\"}} {}\n\
                         http_requests_total{{code=\"500\"}} {}\n",
                        counts[0].load(Ordering::SeqCst) as f64 / 100.0,
                        counts[1].load(Ordering::SeqCst) as f64 / 100.0,
                    );
                    let response = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n\
                         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                });
            }
        });
        App {
            addr,
            errors,
            _tasks: [ticker, server],
        }
    }

    fn set_errors(&self, percent: u64) {
        self.errors.store(percent, Ordering::SeqCst);
    }
}

const RULES: &str = r#"groups:
- name: checkout
  rules:
  - alert: HighErrorRate
    expr: >-
      sum by (namespace, deployment) (rate(http_requests_total{code="500"}[5s]))
      / sum by (namespace, deployment) (rate(http_requests_total[5s])) > 0.1
    labels: { severity: critical }
    annotations: { summary: "checkout answers 5xx" }
"#;

fn position(incident: &Incident, type_: EntryType) -> Option<usize> {
    incident
        .status
        .as_ref()?
        .timeline
        .iter()
        .position(|e| e.type_ == type_)
}

#[tokio::test]
async fn an_error_spike_after_a_deploy_is_rolled_back_by_the_runbook_and_resolves_with_the_alert() {
    let (client, ns, incidents) = setup("alerts-headline").await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let runbooks: Api<Runbook> = Api::namespaced(client.clone(), &ns.name);
    let example: Runbook = serde_yaml_ng::from_str(include_str!(
        "../../examples/runbooks/error-rate-after-deploy.yaml"
    ))
    .expect("the example runbook");
    runbooks
        .create(&PostParams::default(), &example)
        .await
        .expect("apply the runbook");
    let v1 = deployment("checkout", &["registry.local/checkout:1"], None);
    create_rolled_out(&deployments, &v1, ROLLOUT).await;
    let v2 = deployment("checkout", &["registry.local/checkout:2"], None);
    roll_to(&deployments, &v2, "deploy v2", true).await;

    let scratch = Scratch::new("alerts-headline");
    let operator_token = scratch.file("operator-token", TOKEN);
    let receiver = free_addr();
    let (receiver_s, token_s) = (
        receiver.to_string(),
        operator_token.to_string_lossy().into_owned(),
    );
    let flags = [
        "--alerts-addr",
        receiver_s.as_str(),
        "--alerts-token-file",
        token_s.as_str(),
        "--alerts-namespace",
        ns.name.as_str(),
    ];
    let _operator = Operator::start(&ns.name, &flags).await;
    let app = App::start().await;
    let am_token = scratch.file("am-token", TOKEN);
    let am = Alertmanager::start(
        &scratch,
        &format!("http://{receiver}/alerts/alertmanager"),
        &am_token,
    )
    .await;
    let labels = json!({ "namespace": ns.name, "deployment": "checkout" });
    let prometheus = Prometheus::start(&scratch, app.addr, &labels, RULES, am.addr).await;
    let (status, rules) = get(prometheus.addr, "/api/v1/rules").await.expect("rules");
    assert!(
        status == 200 && rules.contains("\"name\":\"HighErrorRate\""),
        "Prometheus loaded the rule: {rules}"
    );

    // v3 rolls out healthy pods, but the app answers 500 to half the requests.
    let v3 = deployment("checkout", &["registry.local/checkout:3"], None);
    roll_to(&deployments, &v3, "deploy v3", true).await;
    app.set_errors(50);

    // Prometheus fires, Alertmanager sends it, the runbook rolls v3 back to v2.
    wait_for(&deployments, "checkout", "rolled back to v2", WAIT, |d| {
        d.is_some_and(|d| images(d) == ["registry.local/checkout:2"])
    })
    .await;
    app.set_errors(0);

    let resolved = wait_for_all(
        &incidents,
        "incident.dev/source=alertmanager",
        "the incident resolved with the alert",
        WAIT,
        |all| {
            all.len() == 1
                && all[0].spec.resolution.is_some()
                && position(&all[0], EntryType::Resolved).is_some()
        },
    )
    .await;
    let incident = &resolved[0];
    assert_eq!(incident.spec.severity.as_str(), "P1");
    assert_eq!(
        incident.spec.affected[0].name, "checkout",
        "the alert named the Deployment"
    );
    let resolution = incident.spec.resolution.as_ref().expect("resolution");
    assert_eq!(resolution.by, "incident-operator");
    let order = [
        EntryType::AlertFiring,
        EntryType::RunbookSelected,
        EntryType::ActionSucceeded,
        EntryType::AlertResolved,
        EntryType::Resolved,
    ];
    let positions: Vec<Option<usize>> = order.iter().map(|t| position(incident, *t)).collect();
    let timeline: Vec<(EntryType, String)> = incident
        .status
        .as_ref()
        .map(|s| {
            s.timeline
                .iter()
                .map(|e| (e.type_, e.message.clone()))
                .collect()
        })
        .unwrap_or_default();
    assert!(
        positions.iter().all(Option::is_some) && positions.windows(2).all(|w| w[0] < w[1]),
        "every step on the timeline, in order {order:?}: {timeline:#?}"
    );
    let rolled = deployments.get("checkout").await.expect("checkout");
    assert_eq!(images(&rolled), ["registry.local/checkout:2"]);
}
