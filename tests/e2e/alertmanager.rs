//! A real Alertmanager and a real Prometheus for the e2e tests (built from their Go modules by
//! hack/cluster/monitoring.sh), on 127.0.0.1: Alertmanager routes every alert to the operator's
//! receiver with a bearer token read from a file, the way users configure it
//! (`http_config.authorization.credentials_file`); Prometheus scrapes a test's target and sends
//! what its rules fire to that Alertmanager.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use serde_json::Value;
use tokio::process::{Child, Command};

use crate::support::{free_addr, get};

/// A monitoring binary: `variable` when set, else what `hack/cluster/monitoring.sh` builds.
fn binary_of(variable: &str, name: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(variable) {
        return PathBuf::from(path);
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/hack/cluster/monitoring.sh");
    let output = std::process::Command::new(script)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("run {script} (it builds Alertmanager): {e}"));
    assert!(
        output.status.success(),
        "{script} failed: the alert tests need Alertmanager and Prometheus (make monitoring-build)"
    );
    PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()).join(name)
}

/// Polls `path` on `addr` until it answers 200, or fails naming `what`.
async fn await_ready(addr: SocketAddr, path: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok((200, _)) = get(addr, path).await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not get ready on {addr} within 60s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A scratch directory for one test, removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "incident-e2e-{name}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir_all(&dir).expect("make a scratch directory");
        Scratch(dir)
    }

    /// Writes `text` to a file in it; its path.
    pub fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("write a scratch file");
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One Alertmanager process; killed when dropped.
pub struct Alertmanager {
    _child: Child,
    pub addr: SocketAddr,
}

impl Alertmanager {
    /// Starts one that sends every group to `webhook` (resolved too) with the token in
    /// `token_file`, grouping by alertname, quickly (group_wait 1s, group_interval 2s).
    pub async fn start(scratch: &Scratch, webhook: &str, token_file: &Path) -> Self {
        Self::start_with_ca(scratch, webhook, token_file, None).await
    }

    /// Like [`Alertmanager::start`], trusting the receiver's TLS certificate through `ca_file`.
    pub async fn start_with_ca(
        scratch: &Scratch,
        webhook: &str,
        token_file: &Path,
        ca_file: Option<&Path>,
    ) -> Self {
        let tls = ca_file.map_or(String::new(), |ca| {
            format!("      tls_config:\n        ca_file: {}\n", ca.display())
        });
        let config = format!(
            "route:\n  receiver: operator\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 2s\n  repeat_interval: 1h\n\
             receivers:\n- name: operator\n  webhook_configs:\n  - url: {webhook}\n    send_resolved: true\n    http_config:\n      authorization:\n        credentials_file: {}\n{tls}",
            token_file.display()
        );
        let config = scratch.file("alertmanager.yml", &config);
        let storage = scratch.0.join("alertmanager-data");
        let addr = free_addr();
        let child = Command::new(binary_of("INCIDENT_E2E_ALERTMANAGER", "alertmanager"))
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", storage.display()))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--cluster.listen-address=")
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start alertmanager");
        await_ready(addr, "/-/ready", "alertmanager").await;
        Alertmanager {
            _child: child,
            addr,
        }
    }

    /// Posts alerts to its API (`/api/v2/alerts`), as Prometheus does.
    pub async fn post(&self, alerts: Value) {
        let response = reqwest::Client::new()
            .post(format!("http://{}/api/v2/alerts", self.addr))
            .header("Content-Type", "application/json")
            .body(alerts.to_string())
            .send()
            .await
            .expect("post alerts to alertmanager");
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        assert!(
            status.is_success(),
            "alertmanager answered {status}: {body}"
        );
    }
}

/// One Prometheus process; killed when dropped.
pub struct Prometheus {
    _child: Child,
    pub addr: SocketAddr,
}

impl Prometheus {
    /// Starts one that scrapes `target` every second (with `labels` on its series), evaluates
    /// `rules` (a rule file's text) every second, and sends alerts to `alertmanager`.
    pub async fn start(
        scratch: &Scratch,
        target: SocketAddr,
        labels: &Value,
        rules: &str,
        alertmanager: SocketAddr,
    ) -> Self {
        let rules = scratch.file("rules.yml", rules);
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files: [{}]\n\
             alerting:\n  alertmanagers:\n  - static_configs:\n    - targets: ['{alertmanager}']\n\
             scrape_configs:\n- job_name: app\n  static_configs:\n  - targets: ['{target}']\n    labels: {labels}\n",
            rules.display()
        );
        let config = scratch.file("prometheus.yml", &config);
        let addr = free_addr();
        let child = Command::new(binary_of("INCIDENT_E2E_PROMETHEUS", "prometheus"))
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                scratch.0.join("prometheus-data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start prometheus");
        await_ready(addr, "/-/ready", "prometheus").await;
        Prometheus {
            _child: child,
            addr,
        }
    }
}
