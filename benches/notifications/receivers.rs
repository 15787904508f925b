//! The two receivers: the live one (`tests/e2e/receivers/webhook_receiver.py`, verifying each
//! signature with the `standardwebhooks` package and stamping each delivery with its own clock) and
//! the dead one (accepts, reads, never answers), and the plain HTTP GET the benchmark talks with.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
    process::{Child, Command},
    task::JoinSet,
};

use crate::{SIGNING_KEY, common::Result};

/// The python with `standardwebhooks`: INCIDENT_E2E_PYTHON, else what `hack/python-env.sh` makes.
pub fn python() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("INCIDENT_E2E_PYTHON") {
        return Ok(PathBuf::from(path));
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/hack/python-env.sh");
    let output = std::process::Command::new(script)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("run {script}: {e}"))?;
    if !output.status.success() {
        return Err(
            format!("{script} failed: the receiver needs Python 3 with standardwebhooks").into(),
        );
    }
    Ok(PathBuf::from(
        String::from_utf8_lossy(&output.stdout).trim(),
    ))
}

/// `tests/e2e/receivers/webhook_receiver.py --secret <key>` on 127.0.0.1; killed when dropped.
pub struct LiveReceiver {
    _child: Child,
    addr: SocketAddr,
}

impl LiveReceiver {
    pub async fn start(python: &Path) -> Result<Self> {
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/e2e/receivers/webhook_receiver.py"
        );
        let mut child = Command::new(python)
            .args([script, "--secret", SIGNING_KEY])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("start {script}: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout pipe")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .map_err(|_| "the receiver printed no port within 20 s")??
            .ok_or("the receiver exited before printing its port")?;
        let port: u16 = line
            .strip_prefix("listening ")
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| format!("unexpected receiver line {line:?}"))?;
        Ok(Self {
            _child: child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Every delivery so far, oldest first.
    pub async fn received(&self) -> Result<Vec<Value>> {
        let (status, body) = get(self.addr, "/received").await?;
        if status != 200 {
            return Err(format!("GET /received answered {status}: {body}").into());
        }
        let records: Vec<Value> = serde_json::from_str(&body)
            .map_err(|e| format!("the receiver's /received is not a JSON list: {e}"))?;
        Ok(records)
    }
}

/// A receiver that accepts each connection, reads the request and never answers. Counts what it
/// got (a connection is one request: nothing is answered, so none is reused); stops (closing what
/// it holds) when dropped.
pub struct DeadReceiver {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    max_open: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

pub struct DeadCounts {
    pub accepted: usize,
    pub max_open: usize,
}

impl DeadReceiver {
    pub async fn start() -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let accepted = Arc::new(AtomicUsize::new(0));
        let max_open = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(AtomicUsize::new(0));
        let (count, max) = (accepted.clone(), max_open.clone());
        let task = tokio::spawn(async move {
            let mut held = JoinSet::new();
            while let Ok((mut stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::Relaxed);
                let now = open.fetch_add(1, Ordering::Relaxed) + 1;
                max.fetch_max(now, Ordering::Relaxed);
                let open = open.clone();
                held.spawn(async move {
                    // Read and drop everything until the client gives up; never write.
                    let mut buffer = [0u8; 4096];
                    while matches!(stream.read(&mut buffer).await, Ok(n) if n > 0) {}
                    open.fetch_sub(1, Ordering::Relaxed);
                });
                while held.try_join_next().is_some() {}
            }
        });
        Ok(Self {
            addr,
            accepted,
            max_open,
            task,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Waits until the receiver has had at least `want` requests.
    pub async fn await_requests(&self, want: usize, timeout: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.accepted.load(Ordering::Relaxed) < want {
            if tokio::time::Instant::now() >= deadline {
                return Err(format!(
                    "the dead receiver had {} requests, not {want}, within {timeout:?}",
                    self.accepted.load(Ordering::Relaxed)
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    pub fn counts(&self) -> DeadCounts {
        DeadCounts {
            accepted: self.accepted.load(Ordering::Relaxed),
            max_open: self.max_open.load(Ordering::Relaxed),
        }
    }
}

impl Drop for DeadReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A plain HTTP/1.1 GET: status code and body.
pub async fn get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
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
