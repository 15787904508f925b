//! The operator process under measurement: started, probed through /metrics and /proc, killed on drop.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::Path,
    process::Stdio,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
    process::{Child, Command},
};

use crate::{
    PASSES, Settings, TICKS_PER_SEC,
    common::{Result, TIMEOUT},
};

pub struct Operator {
    /// Killed when dropped.
    _child: Child,
    pub pid: u32,
    pub addr: SocketAddr,
    /// Its warnings and errors: how often each message was logged (the first of each is printed).
    complaints: Arc<Mutex<BTreeMap<String, usize>>>,
}

#[derive(Clone, Copy)]
pub struct Usage {
    pub rss_mib: f64,
    pub hwm_mib: f64,
    pub cpu_secs: f64,
}

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "VmRSS {:.1} MiB, VmHWM {:.1} MiB, CPU {:.1} s",
            self.rss_mib, self.hwm_mib, self.cpu_secs
        )
    }
}

impl Operator {
    /// Starts the operator under measurement (OPERATOR_BIN) on `ns`.
    pub async fn start(kubeconfig: &Path, ns: &str, settings: &Settings) -> Result<Self> {
        Self::start_binary(&settings.operator_bin, kubeconfig, ns, settings).await
    }

    /// Starts `binary` on `ns` and waits until /readyz answers 200.
    pub async fn start_binary(
        binary: &Path,
        kubeconfig: &Path,
        ns: &str,
        settings: &Settings,
    ) -> Result<Self> {
        let extra: Vec<&str> = match &settings.unavailable_for {
            Some(d) => vec!["--unavailable-for", d],
            None => Vec::new(),
        };
        let mut child = Command::new(binary)
            .args([
                "run",
                "--http-addr",
                "127.0.0.1:0",
                "--namespace",
                ns,
                "--detection",
                "true",
                "--storm-limit",
                "1000",
                "--resolve-after",
                "off",
                "--log-format",
                "json",
            ])
            .args(extra)
            .env("KUBECONFIG", kubeconfig)
            .env_remove("INCIDENT_KUBECONFIG")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let pid = child.id().ok_or("the operator exited at once")?;
        let stderr = child.stderr.take().ok_or("no stderr pipe")?;
        let mut lines = BufReader::new(stderr).lines();
        // The address it bound is in its log; read up to that line, then keep draining the pipe.
        let addr = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await? {
                let Ok(log) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                if let Some(addr) = log.get("addr").and_then(Value::as_str) {
                    return Ok(addr.parse::<SocketAddr>()?);
                }
            }
            Result::Err("the operator exited before serving HTTP".into())
        })
        .await
        .map_err(|_| "the operator logged no HTTP address within 30 s")??;
        let complaints = Arc::new(Mutex::new(BTreeMap::new()));
        let record = complaints.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let log = serde_json::from_str::<Value>(&line).ok();
                let field = |key: &str| {
                    log.as_ref()
                        .and_then(|l| l.get(key))
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                };
                let key = match field("level").as_deref() {
                    Some(level @ ("WARN" | "ERROR")) => {
                        format!("{level} {}", field("message").unwrap_or_default())
                    }
                    Some(_) => continue,
                    None => line.clone(),
                };
                let Ok(mut seen) = record.lock() else { return };
                let count: &mut usize = seen.entry(key).or_default();
                *count += 1;
                if *count == 1 {
                    eprintln!("operator: {line}");
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok((200, _)) = get(addr, "/readyz").await {
                break;
            }
            if Instant::now() >= deadline {
                return Err("the operator's /readyz never answered 200 within 30 s".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(Self {
            _child: child,
            pid,
            addr,
            complaints,
        })
    }

    pub async fn metric(&self, series: &str) -> Result<Option<f64>> {
        metric(self.addr, series).await
    }

    /// Polls /metrics until the detector has completed at least `passes` passes.
    pub async fn await_passes(&self, passes: f64) -> Result<()> {
        self.await_metric(PASSES, passes).await
    }

    /// Polls /metrics until `series` is at least `value`.
    pub async fn await_metric(&self, series: &str, value: f64) -> Result<()> {
        let deadline = Instant::now() + TIMEOUT * 2;
        loop {
            if self.metric(series).await?.unwrap_or(0.0) >= value {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("{series} never reached {value}").into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn usage(&self) -> Result<Usage> {
        usage(self.pid)
    }

    /// "N× message" for each warning or error the operator logged.
    pub fn complaints(&self) -> String {
        let seen = self
            .complaints
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if seen.is_empty() {
            return "none".to_owned();
        }
        seen.iter()
            .map(|(message, n)| format!("{n}× {message}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Resident memory now and at its peak, and CPU time (user + system) of process `pid`.
pub fn usage(pid: u32) -> Result<Usage> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = |key: &str| -> Result<f64> {
        let line = status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .ok_or_else(|| format!("{key} missing from /proc/{pid}/status"))?;
        let value = line.trim().trim_end_matches("kB").trim();
        Ok(value.parse::<f64>()?)
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start with field 3, `state`.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |field: usize| -> Result<f64> {
        Ok(fields
            .get(field - 3)
            .ok_or("short /proc/<pid>/stat")?
            .parse::<f64>()?)
    };
    Ok(Usage {
        rss_mib: kib("VmRSS:")? / 1024.0,
        hwm_mib: kib("VmHWM:")? / 1024.0,
        cpu_secs: (ticks(14)? + ticks(15)?) / TICKS_PER_SEC,
    })
}

pub async fn metric(addr: SocketAddr, series: &str) -> Result<Option<f64>> {
    let (_, text) = get(addr, "/metrics").await?;
    Ok(text.lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok()).flatten()
    }))
}

/// A plain HTTP/1.1 GET: status code and body.
async fn get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {response:?}")))?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}
