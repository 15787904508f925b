//! A Git repository served over plain HTTP on 127.0.0.1, as Flux's source-controller clones it:
//! `git http-backend` (Git's own smart-HTTP server, a CGI program) behind a small CGI bridge, no
//! auth. The test commits to a work tree with the `git` command and pushes to the served bare
//! repository, so every commit is what a developer's push would be.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use axum::{
    Router,
    body::{Body, to_bytes},
    extract::{Request, State},
    http::{HeaderName, HeaderValue, StatusCode},
    response::Response,
};
use tokio::{io::AsyncWriteExt, process::Command, task::JoinHandle};

/// Runs `git` with `args` in `dir`; panics with its output when it fails.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let output = std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        // The test's commits must not depend on the user's Git configuration.
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "e2e")
        .env("GIT_AUTHOR_EMAIL", "e2e@incident.dev")
        .env("GIT_COMMITTER_NAME", "e2e")
        .env("GIT_COMMITTER_EMAIL", "e2e@incident.dev")
        .output()
        .unwrap_or_else(|e| {
            panic!("run git {args:?} (is git installed? apt-get install git): {e}")
        });
    assert!(
        output.status.success(),
        "git {args:?} in {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// `git http-backend`, located through `git --exec-path` (it is not on PATH).
fn http_backend() -> PathBuf {
    let exec_path = git(Path::new("/"), &["--exec-path"]);
    let backend = Path::new(&exec_path).join("git-http-backend");
    assert!(
        backend.is_file(),
        "{} is missing: the Flux tests serve Git with it (apt-get install git)",
        backend.display()
    );
    backend
}

/// One repository on branch `main`, served at `url()` until dropped.
pub struct GitServer {
    work: PathBuf,
    pub addr: SocketAddr,
    /// Requests for the ref advertisement (`info/refs`): one per fetch a client makes.
    fetches: Arc<AtomicU64>,
    server: JoinHandle<()>,
}

struct Backend {
    program: PathBuf,
    root: PathBuf,
    fetches: Arc<AtomicU64>,
}

impl GitServer {
    /// A repository `name` under `dir` (a work tree and the served bare copy), with nothing
    /// committed yet, and the server for it on a free loopback port.
    pub async fn start(dir: &Path, name: &str) -> Self {
        let root = dir.join("served");
        let work = dir.join("work");
        std::fs::create_dir_all(&root).expect("make the served directory");
        std::fs::create_dir_all(&work).expect("make the work tree");
        git(
            &root,
            &["init", "--quiet", "--bare", "--initial-branch=main", name],
        );
        git(&work, &["init", "--quiet", "--initial-branch=main"]);
        let served = root.join(name);
        git(
            &work,
            &["remote", "add", "origin", &served.display().to_string()],
        );

        let fetches = Arc::new(AtomicU64::new(0));
        let backend = Arc::new(Backend {
            program: http_backend(),
            root,
            fetches: fetches.clone(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the Git server");
        let addr = listener.local_addr().expect("Git server address");
        let app = Router::new().fallback(cgi).with_state(backend);
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve Git");
        });
        GitServer {
            work,
            addr,
            fetches,
            server,
        }
    }

    /// The clone URL of repository `name`.
    pub fn url(&self, name: &str) -> String {
        format!("http://{}/{name}", self.addr)
    }

    /// How many fetches clients have started so far.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::SeqCst)
    }

    /// Writes `files` (path relative to the repository, content) and commits and pushes them;
    /// the new commit's full SHA-1.
    pub fn commit(&self, message: &str, files: &[(&str, &str)]) -> String {
        for (path, content) in files {
            let path = self.work.join(path);
            std::fs::create_dir_all(path.parent().expect("a file in a directory"))
                .expect("make the file's directory");
            std::fs::write(&path, content).expect("write a file to commit");
        }
        git(&self.work, &["add", "--all"]);
        git(&self.work, &["commit", "--quiet", "-m", message]);
        git(&self.work, &["push", "--quiet", "origin", "main"]);
        git(&self.work, &["rev-parse", "HEAD"])
    }
}

impl Drop for GitServer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The CGI bridge: the request becomes `git http-backend`'s environment and standard input, its
/// standard output (CGI headers, a blank line, the body) becomes the response.
async fn cgi(State(backend): State<Arc<Backend>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = match to_bytes(body, 64 << 20).await {
        Ok(body) => body,
        Err(e) => return plain(StatusCode::BAD_REQUEST, format!("request body: {e}")),
    };
    if parts.uri.path().ends_with("/info/refs") {
        backend.fetches.fetch_add(1, Ordering::SeqCst);
    }
    let mut command = Command::new(&backend.program);
    command
        .env_clear()
        .env("GIT_PROJECT_ROOT", &backend.root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GATEWAY_INTERFACE", "CGI/1.1")
        .env("SERVER_PROTOCOL", "HTTP/1.1")
        .env("REQUEST_METHOD", parts.method.as_str())
        .env("PATH_INFO", parts.uri.path())
        .env("QUERY_STRING", parts.uri.query().unwrap_or(""))
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    for (name, value) in &parts.headers {
        let Ok(value) = value.to_str() else { continue };
        let name = name.as_str().to_ascii_uppercase().replace('-', "_");
        match name.as_str() {
            "CONTENT_TYPE" => command.env("CONTENT_TYPE", value),
            // Git's protocol version travels in this header; the backend reads it as GIT_PROTOCOL.
            "GIT_PROTOCOL" => command.env("GIT_PROTOCOL", value),
            _ => command.env(format!("HTTP_{name}"), value),
        };
    }
    let mut child = match command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => return plain(StatusCode::INTERNAL_SERVER_ERROR, format!("spawn: {e}")),
    };
    let mut stdin = child.stdin.take().expect("piped stdin");
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(&body).await;
    });
    let output = match child.wait_with_output().await {
        Ok(output) => output,
        Err(e) => return plain(StatusCode::INTERNAL_SERVER_ERROR, format!("wait: {e}")),
    };
    let _ = writer.await;
    if !output.stderr.is_empty() {
        eprintln!(
            "git http-backend {} {}: {}",
            parts.method,
            parts.uri,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    cgi_response(&output.stdout)
}

/// Parses a CGI program's output into a response (status from its `Status:` header, else 200).
fn cgi_response(stdout: &[u8]) -> Response {
    let split = stdout
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, i + 4))
        .or_else(|| {
            stdout
                .windows(2)
                .position(|w| w == b"\n\n")
                .map(|i| (i, i + 2))
        });
    let Some((end, body)) = split else {
        return plain(
            StatusCode::BAD_GATEWAY,
            "git http-backend wrote no headers".into(),
        );
    };
    let mut response = Response::new(Body::from(stdout[body..].to_vec()));
    for line in String::from_utf8_lossy(&stdout[..end]).lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split_whitespace().next().unwrap_or("500");
            *response.status_mut() = code
                .parse::<u16>()
                .ok()
                .and_then(|c| StatusCode::from_u16(c).ok())
                .unwrap_or(StatusCode::BAD_GATEWAY);
        } else if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.trim()),
            HeaderValue::try_from(value),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    response
}

fn plain(status: StatusCode, text: String) -> Response {
    let mut response = Response::new(Body::from(text));
    *response.status_mut() = status;
    response
}
