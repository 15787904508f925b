//! A real webhook receiver for the notification tests: `receivers/webhook_receiver.py` on
//! 127.0.0.1, which checks every signature with the `standardwebhooks` package (the reference
//! implementation, nobody's code here), records each delivery, and answers as the test scripts.

use std::{
    net::SocketAddr,
    process::Stdio,
    time::{Duration, Instant},
};

use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
    process::{Child, Command},
};

use crate::support::get;

/// A Standard Webhooks secret for the tests (`whsec_` + base64 of 24 bytes).
pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// The python with the e2e packages: INCIDENT_E2E_PYTHON, else what `hack/python-env.sh` makes.
pub fn python() -> String {
    if let Some(path) = std::env::var_os("INCIDENT_E2E_PYTHON") {
        return path.to_string_lossy().into_owned();
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/hack/python-env.sh");
    let output = std::process::Command::new(script)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("run {script} (it makes the e2e Python environment): {e}"));
    assert!(
        output.status.success(),
        "{script} failed: the e2e tests need Python 3 with the packages of hack/python/requirements.txt"
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// One receiver process; killed when dropped.
pub struct Receiver {
    _child: Child,
    addr: SocketAddr,
}

impl Receiver {
    /// Starts a receiver; with `secret`, it verifies every request's signature with it.
    pub async fn start(secret: Option<&str>) -> Self {
        match secret {
            Some(secret) => Self::spawn(&["--secret", secret]).await,
            None => Self::spawn(&[]).await,
        }
    }

    /// Starts a receiver that answers like PagerDuty's Events API v2 (202 with a JSON body).
    pub async fn pagerduty() -> Self {
        Self::spawn(&["--pagerduty"]).await
    }

    /// Starts a receiver that answers like Slack: its Web API for a bot holding `token`, and an
    /// incoming webhook on `/hook`.
    pub async fn slack(token: &str) -> Self {
        Self::spawn(&["--slack-token", token]).await
    }

    async fn spawn(args: &[&str]) -> Self {
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/e2e/receivers/webhook_receiver.py"
        );
        let mut command = Command::new(python());
        command
            .arg(script)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        command.args(args);
        let mut child = command.spawn().expect("start the webhook receiver");
        let stdout = child.stdout.take().expect("receiver stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("the receiver says where it listens within 20s")
            .expect("read the receiver's stdout")
            .expect("the receiver printed its port");
        let port: u16 = line
            .strip_prefix("listening ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected receiver line {line:?}"));
        Receiver {
            _child: child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    /// The URL the operator posts to.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// The URL of a PagerDuty-like events endpoint.
    pub fn events_url(&self) -> String {
        format!("http://{}/v2/enqueue", self.addr)
    }

    /// The base URL of a Slack-like Web API (`…/api`, methods below it).
    pub fn slack_api_url(&self) -> String {
        format!("http://{}/api", self.addr)
    }

    /// Queues the receiver's next answers, e.g. `[{"status": 500}, {"status": 429, "retryAfter": 1}]`.
    pub async fn script(&self, answers: Value) {
        let body = serde_json::json!({ "answers": answers }).to_string();
        let mut stream = TcpStream::connect(self.addr).await.expect("connect");
        let request = format!(
            "POST /script HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        stream
            .write_all(request.as_bytes())
            .await
            .expect("send script");
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .await
            .expect("read answer");
        assert!(
            response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200"),
            "{response}"
        );
    }

    /// Every delivery so far, oldest first.
    pub async fn received(&self) -> Vec<Value> {
        let (status, body) = get(self.addr, "/received").await.expect("GET /received");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).expect("the receiver's record is JSON")
    }

    /// Waits until the deliveries satisfy `check`, or fails after `timeout` showing them.
    pub async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        check: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let received = self.received().await;
            if check(&received) {
                return received;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not within {timeout:?}; received: {}",
                serde_json::to_string_pretty(&received).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The deliveries the receiver answered 200, as (event, webhook-id), in order.
pub fn delivered(received: &[Value]) -> Vec<(String, String)> {
    received
        .iter()
        .filter(|r| r["answered"] == 200 || r["answered"] == 202)
        .map(|r| {
            (
                r["body"]["event"].as_str().unwrap_or_default().to_owned(),
                r["id"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// The events of the delivered messages, in order.
pub fn events(received: &[Value]) -> Vec<String> {
    delivered(received)
        .into_iter()
        .map(|(event, _)| event)
        .collect()
}
