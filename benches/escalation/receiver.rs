//! The live receiver (`tests/e2e/receivers/webhook_receiver.py`, verifying each signature with the
//! `standardwebhooks` package and stamping each delivery with its own clock) and the plain HTTP GET
//! the benchmark talks with: a copy of the notifications benchmark's, without its dead receiver, and
//! with a deeper listen backlog.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
    process::{Child, Command},
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

/// Runs the script with a listen backlog of 128, not Python's 5, which ten pages at once overflowed
/// now and then: the kernel resent the dropped SYN a second later (docs/benchmarks.md).
const WITH_BACKLOG: &str = "import runpy, sys
from http.server import ThreadingHTTPServer
ThreadingHTTPServer.request_queue_size = 128
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name='__main__')";

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
            .args(["-c", WITH_BACKLOG, script, "--secret", SIGNING_KEY])
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
