//! The monitoring side of part 3, on 127.0.0.1: a tiny metrics server whose error rate the bench
//! flips, a real Prometheus scraping it and evaluating one rule per round, and a real Alertmanager
//! sending to the operator's receiver. The binaries are INCIDENT_E2E_PROMETHEUS and
//! INCIDENT_E2E_ALERTMANAGER, else what `hack/cluster/monitoring.sh` builds (as the e2e tests).

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
    process::{Child, Command},
    task::JoinHandle,
};

use crate::{
    common::Result,
    operator::{Scratch, TOKEN, free_addr, get, log_dir},
};

/// The alert of round `r`: a new name, so a new Alertmanager group and a new incident each round.
pub fn alertname(round: usize) -> String {
    format!("BenchErrorRate{round}")
}

/// The metrics server: 100 requests a second, `errors` percent of them 500s, counted in
/// `http_requests_total{code}` (updated every 100 ms), and the gauge `bench_round`.
pub struct App {
    pub addr: SocketAddr,
    errors: Arc<AtomicU64>,
    round: Arc<AtomicU64>,
    _tasks: [JoinHandle<()>; 2],
}

impl App {
    pub async fn start() -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (errors, round) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        // In hundredths of a request, so that a 100 ms tick adds whole numbers.
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
        let server = {
            let round = round.clone();
            tokio::spawn(async move {
                while let Ok((mut stream, _)) = listener.accept().await {
                    let (counts, round) = (counts.clone(), round.clone());
                    tokio::spawn(async move {
                        let mut request = [0u8; 4096];
                        let _ = stream.read(&mut request).await;
                        let body = format!(
                            "# TYPE http_requests_total counter\n\
                             http_requests_total{{code=\"200\"}} {}\n\
                             http_requests_total{{code=\"500\"}} {}\n\
                             # TYPE bench_round gauge\nbench_round {}\n",
                            counts[0].load(Ordering::SeqCst) as f64 / 100.0,
                            counts[1].load(Ordering::SeqCst) as f64 / 100.0,
                            round.load(Ordering::SeqCst),
                        );
                        let response = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n\
                             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = stream.write_all(response.as_bytes()).await;
                    });
                }
            })
        };
        Ok(Self {
            addr,
            errors,
            round,
            _tasks: [ticker, server],
        })
    }

    pub fn set_errors(&self, percent: u64) {
        self.errors.store(percent, Ordering::SeqCst);
    }

    pub fn set_round(&self, round: usize) {
        self.round.store(round as u64, Ordering::SeqCst);
    }
}

/// Round r's rule: more than 10 % of requests failing over 5 s, while `bench_round` is r. No `for`:
/// firing at the first evaluation that sees it.
fn rules(rounds: usize) -> String {
    let mut text = "groups:\n- name: bench\n  rules:\n".to_owned();
    for round in 1..=rounds {
        text.push_str(&format!(
            "  - alert: {}\n    expr: >-\n      (sum(rate(http_requests_total{{code=\"500\"}}[5s])) / sum(rate(http_requests_total[5s])) > 0.1)\n      and on() (bench_round == {round})\n    labels: {{ severity: critical }}\n    annotations: {{ summary: \"the bench app answers 5xx\" }}\n",
            alertname(round)
        ));
    }
    text
}

/// A monitoring binary: `variable` when set, else from `hack/cluster/monitoring.sh`'s directory.
fn binary(variable: &str, name: &str) -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(variable) {
        return Ok(PathBuf::from(path));
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/hack/cluster/monitoring.sh");
    let output = std::process::Command::new(script)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("run {script}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "{script} failed: part 3 needs Prometheus and Alertmanager (make monitoring-build)"
        )
        .into());
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()).join(name))
}

/// A Prometheus or Alertmanager process; killed when dropped.
pub struct Process {
    _child: Child,
    pub addr: SocketAddr,
}

impl Process {
    async fn spawn(
        name: &str,
        variable: &str,
        args: Vec<String>,
        addr: SocketAddr,
    ) -> Result<Self> {
        let log_path = log_dir().join(format!("{name}.log"));
        let child = Command::new(binary(variable, name)?)
            .args(args)
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_path)?)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("start {name}: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while !matches!(get(&format!("http://{addr}/-/ready")).await, Ok((200, _))) {
            if Instant::now() >= deadline {
                return Err(format!(
                    "{name} not ready on {addr} within 60 s; see {}",
                    log_path.display()
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(Self {
            _child: child,
            addr,
        })
    }

    /// Alertmanager sending every group (grouped by alertname; group_wait 1s, group_interval 2s)
    /// to `webhook` with the token from a file, resolutions too.
    pub async fn alertmanager(scratch: &Scratch, webhook: &str) -> Result<Self> {
        let token = scratch.file("alertmanager-token", TOKEN)?;
        let config = format!(
            "route:\n  receiver: operator\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 2s\n  repeat_interval: 1h\n\
             receivers:\n- name: operator\n  webhook_configs:\n  - url: {webhook}\n    send_resolved: true\n    max_alerts: 0\n    http_config:\n      authorization:\n        credentials_file: {}\n",
            token.display()
        );
        let config = scratch.file("alertmanager.yml", &config)?;
        let args = vec![
            format!("--config.file={}", config.display()),
            format!(
                "--storage.path={}",
                scratch.0.join("alertmanager-data").display()
            ),
            "--cluster.listen-address=".to_owned(),
        ];
        Self::spawn(
            "alertmanager",
            "INCIDENT_E2E_ALERTMANAGER",
            args,
            free_addr()?,
        )
        .await
    }

    /// Prometheus scraping `target` and evaluating every second, sending to `alertmanager`.
    pub async fn prometheus(
        scratch: &Scratch,
        target: SocketAddr,
        alertmanager: SocketAddr,
        rounds: usize,
    ) -> Result<Self> {
        let rules = scratch.file("rules.yml", &rules(rounds))?;
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files: [{}]\n\
             alerting:\n  alertmanagers:\n  - static_configs:\n    - targets: ['{alertmanager}']\n\
             scrape_configs:\n- job_name: app\n  static_configs:\n  - targets: ['{target}']\n",
            rules.display()
        );
        let config = scratch.file("prometheus.yml", &config)?;
        let args = vec![
            format!("--config.file={}", config.display()),
            format!(
                "--storage.tsdb.path={}",
                scratch.0.join("prometheus-data").display()
            ),
        ];
        Self::spawn("prometheus", "INCIDENT_E2E_PROMETHEUS", args, free_addr()?).await
    }

    /// GET `path` as JSON.
    pub async fn json(&self, path: &str) -> Result<serde_json::Value> {
        let (status, body) = get(&format!("http://{}{path}", self.addr)).await?;
        if status != 200 {
            return Err(format!("GET {path} answered {status}: {body}").into());
        }
        Ok(serde_json::from_str(&body)?)
    }
}
