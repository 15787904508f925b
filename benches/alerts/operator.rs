//! The operator under measurement (the release binary with its alert receiver on), its metrics, the
//! run's scratch directory, the bench namespace and the cleanup.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use tokio::process::{Child, Command};

use crate::common::Result;

/// The bearer token the receiver expects (and Alertmanager presents, from the same file).
pub const TOKEN: &str = "bench-alerts-token-5e2a91";

/// target/bench-alerts: the logs, and the run's scratch directory below it.
pub fn log_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-alerts")
}

/// A free port on 127.0.0.1 (bound, read, released).
pub fn free_addr() -> Result<SocketAddr> {
    Ok(free_addrs::<1>()?[0])
}

/// N different free ports on 127.0.0.1 (all bound at once, then released).
pub fn free_addrs<const N: usize>() -> Result<[SocketAddr; N]> {
    let probes = (0..N)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()?;
    let mut addrs = [SocketAddr::from(([127, 0, 0, 1], 0)); N];
    for (addr, probe) in addrs.iter_mut().zip(&probes) {
        *addr = probe.local_addr()?;
    }
    Ok(addrs)
}

/// The run's files (token, configurations, Prometheus's and Alertmanager's data); removed when
/// dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new() -> Result<Self> {
        let dir = log_dir().join(format!("run-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(Self(dir))
    }

    /// Writes `text` to file `name` in it; its path.
    pub fn file(&self, name: &str, text: &str) -> Result<PathBuf> {
        let path = self.0.join(name);
        std::fs::write(&path, text)?;
        Ok(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The release operator; killed when dropped.
pub struct Operator {
    _child: Child,
    pub pid: Option<u32>,
    pub http: SocketAddr,
    pub alerts: SocketAddr,
}

impl Operator {
    pub async fn start(kubeconfig: &Path, ns: &str, scratch: &Scratch) -> Result<Self> {
        let [http, alerts] = free_addrs()?;
        let token_file = scratch.file("operator-token", &format!("{TOKEN}\n"))?;
        let log_path = log_dir().join("operator.log");
        let log = std::fs::File::create(&log_path)?;
        let mut child = Command::new(env!("CARGO_BIN_EXE_incident-operator"))
            .args(["run", "--http-addr", &http.to_string(), "--namespace", ns])
            .args(["--detection", "false", "--log-format", "json"])
            .args([
                "--alerts-addr",
                &alerts.to_string(),
                "--alerts-namespace",
                ns,
            ])
            .arg("--alerts-token-file")
            .arg(&token_file)
            .env("KUBECONFIG", kubeconfig)
            .env_remove("INCIDENT_KUBECONFIG")
            .env(
                "RUST_LOG",
                std::env::var("OPERATOR_LOG").unwrap_or_else(|_| "warn".to_owned()),
            )
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok((200, _)) = get(&format!("http://{http}/readyz")).await {
                return Ok(Self {
                    pid: child.id(),
                    _child: child,
                    http,
                    alerts,
                });
            }
            if let Some(status) = child.try_wait()? {
                return Err(
                    format!("the operator exited ({status}); see {}", log_path.display()).into(),
                );
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "the operator was not ready within 30 s; see {}",
                    log_path.display()
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn webhook_url(&self) -> String {
        format!("http://{}/alerts/alertmanager", self.alerts)
    }

    async fn metrics(&self) -> Result<String> {
        let (status, text) = get(&format!("http://{}/metrics", self.http)).await?;
        if status != 200 {
            return Err(format!("/metrics answered {status}").into());
        }
        Ok(text)
    }

    /// `incident_operator_alert_request_duration_seconds`: (sum in seconds, count) so far.
    pub async fn handling(&self) -> Result<Handling> {
        let text = self.metrics().await?;
        let value = |series: &str| {
            text.lines()
                .find_map(|l| {
                    l.strip_prefix(series)?
                        .strip_prefix(' ')?
                        .trim()
                        .parse()
                        .ok()
                })
                .unwrap_or(0.0)
        };
        Ok(Handling {
            seconds: value("incident_operator_alert_request_duration_seconds_sum"),
            count: value("incident_operator_alert_request_duration_seconds_count"),
        })
    }

    /// `incident_operator_alert_requests_total`, one `labels value` per series.
    pub async fn requests(&self) -> Result<String> {
        let text = self.metrics().await?;
        let series: Vec<String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("incident_operator_alert_requests_total"))
            .map(str::to_owned)
            .collect();
        Ok(series.join(", "))
    }
}

/// The receiver's own time spent answering, from its histogram.
#[derive(Clone, Copy)]
pub struct Handling {
    seconds: f64,
    count: f64,
}

impl Handling {
    /// Requests answered since `before`, and their mean handling time in ms.
    pub fn since(&self, before: &Handling) -> (f64, f64) {
        let count = self.count - before.count;
        (count, 1000.0 * (self.seconds - before.seconds) / count)
    }
}

/// A GET with a fresh client: status and body.
pub async fn get(url: &str) -> Result<(u16, String)> {
    let response = reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(10))
        .send()
        .await?;
    let status = response.status().as_u16();
    Ok((status, response.text().await?))
}
