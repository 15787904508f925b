//! The operator binary itself: it finds the cluster like kubectl, reports health, readiness and
//! metrics over HTTP, refuses bad flags with exit code 2, and stops cleanly on SIGTERM.

use std::{path::PathBuf, time::Duration};

use tokio::process::Command;

use crate::support::{
    BINARY, await_status, client, free_addr, get, kubeconfig_path, start, start_with, terminate,
    try_connect,
};

/// One sample of the OpenMetrics text format.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: String,
    value: f64,
}

/// Parses OpenMetrics text strictly enough to catch a malformed exposition.
fn parse_metrics(text: &str) -> Result<Vec<Sample>, String> {
    let lines: Vec<&str> = text.lines().collect();
    if lines.last() != Some(&"# EOF") {
        return Err("exposition does not end with # EOF".into());
    }
    let mut samples = Vec::new();
    for line in &lines[..lines.len() - 1] {
        if let Some(meta) = line.strip_prefix("# ") {
            let kind = meta.split_whitespace().next().unwrap_or_default();
            if !["HELP", "TYPE", "UNIT"].contains(&kind) {
                return Err(format!("unknown metadata line {line:?}"));
            }
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .ok_or_else(|| format!("no value in {line:?}"))?;
        let value: f64 = value
            .parse()
            .map_err(|_| format!("bad value in {line:?}"))?;
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (
                name,
                rest.strip_suffix('}')
                    .ok_or_else(|| format!("unclosed labels in {line:?}"))?,
            ),
            None => (series, ""),
        };
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        {
            return Err(format!("bad metric name in {line:?}"));
        }
        samples.push(Sample {
            name: name.into(),
            labels: labels.into(),
            value,
        });
    }
    Ok(samples)
}

#[tokio::test]
async fn operator_is_ready_serves_metrics_and_exits_cleanly_on_sigterm() {
    // Fail early, with instructions, when there is no cluster.
    client().await;
    let addr = free_addr();
    // Scoped to a namespace no test uses, so it never acts on another test's objects.
    let operator = start_with(
        &kubeconfig_path(),
        addr,
        &[
            "--namespace",
            "e2e-runtime-untouched",
            "--detection",
            "false",
        ],
    );

    assert_eq!(
        await_status(addr, "/healthz", 200, Duration::from_secs(30)).await,
        "ok"
    );
    await_status(addr, "/readyz", 200, Duration::from_secs(30)).await;

    let (status, text) = get(addr, "/metrics").await.expect("GET /metrics");
    assert_eq!(status, 200);
    let samples = parse_metrics(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let ready = samples
        .iter()
        .find(|s| s.name == "incident_operator_apiserver_ready");
    assert_eq!(ready.map(|s| s.value), Some(1.0), "{samples:?}");
    let build = samples
        .iter()
        .find(|s| s.name == "incident_operator_build_info")
        .expect("build_info");
    assert!(
        build
            .labels
            .contains(&format!("version=\"{}\"", env!("CARGO_PKG_VERSION")))
    );

    let status = terminate(operator).await;
    assert_eq!(status.code(), Some(0), "clean exit on SIGTERM");
}

/// A kubeconfig for an API server that is not there.
fn unreachable_kubeconfig() -> PathBuf {
    let port = free_addr().port();
    let path = std::env::temp_dir().join(format!(
        "incident-e2e-unreachable-{}-{port}.yaml",
        std::process::id()
    ));
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: gone\n  cluster:\n    server: https://127.0.0.1:{port}\n    \
         insecure-skip-tls-verify: true\nusers:\n- name: nobody\n  user:\n    token: none\ncontexts:\n- name: gone\n  \
         context:\n    cluster: gone\n    user: nobody\ncurrent-context: gone\n"
    );
    std::fs::write(&path, text).expect("write kubeconfig");
    path
}

#[tokio::test]
async fn operator_is_live_but_not_ready_until_the_apiserver_answers() {
    let kubeconfig = unreachable_kubeconfig();
    let addr = free_addr();
    let operator = start(&kubeconfig, addr);
    await_status(addr, "/healthz", 200, Duration::from_secs(30)).await;
    let (status, body) = get(addr, "/readyz").await.expect("GET /readyz");
    assert_eq!(status, 503, "not ready without an API server: {body}");
    let (_, text) = get(addr, "/metrics").await.expect("GET /metrics");
    assert!(
        text.contains("incident_operator_apiserver_ready 0"),
        "{text}"
    );

    let status = terminate(operator).await;
    assert_eq!(status.code(), Some(0));
    let _ = std::fs::remove_file(kubeconfig);
}

async fn refused(args: &[&str]) -> String {
    let output = Command::new(BINARY)
        .args(args)
        .output()
        .await
        .expect("run incident-operator");
    assert_eq!(output.status.code(), Some(2), "exit code 2 for {args:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn bad_flags_and_config_exit_with_code_2_and_a_message() {
    let stderr = refused(&["run", "--http-addr", "not-an-address"]).await;
    assert!(stderr.contains("--http-addr"), "{stderr}");
    let stderr = refused(&["run", "--shutdown-grace", "soon"]).await;
    assert!(stderr.contains("--shutdown-grace"), "{stderr}");
    let stderr = refused(&["run", "--kubeconfig", "/nonexistent/kubeconfig"]).await;
    assert!(
        stderr.contains("cannot read kubeconfig /nonexistent/kubeconfig"),
        "{stderr}"
    );
    let stderr = refused(&["launch"]).await;
    assert!(stderr.contains("launch"), "{stderr}");

    // A configuration file with mistakes stops the operator before it talks to any cluster.
    let config =
        std::env::temp_dir().join(format!("incident-bad-config-{}.yaml", std::process::id()));
    std::fs::write(
        &config,
        "detection:\n  stormLimit: 0\n  signals:\n    CrashLoop: { for: 1m }\n",
    )
    .expect("write config");
    let path = config.to_string_lossy().into_owned();
    let stderr = refused(&["run", "--config", &path]).await;
    assert!(
        stderr.contains(&format!("invalid configuration {path}")),
        "{stderr}"
    );
    assert!(
        stderr.contains("detection.stormLimit: must be at least 1"),
        "{stderr}"
    );
    assert!(
        stderr.contains("detection.signals.CrashLoop: unknown signal"),
        "{stderr}"
    );
    std::fs::write(&config, "detection:\n  stormLimt: 5\n").expect("write config");
    let stderr = refused(&["run", "--config", &path]).await;
    assert!(stderr.contains("stormLimt"), "{stderr}");
    let stderr = refused(&["run", "--config", "/nonexistent/operator.yaml"]).await;
    assert!(
        stderr.contains("/nonexistent/operator.yaml: cannot read it"),
        "{stderr}"
    );
    let _ = std::fs::remove_file(config);
}

#[tokio::test]
async fn a_missing_cluster_fails_with_instructions() {
    let message = match try_connect(&unreachable_kubeconfig()).await {
        Ok(_) => panic!("connected to a cluster that does not exist"),
        Err(message) => message,
    };
    assert!(message.contains("make cluster"), "{message}");
    let message = match try_connect(std::path::Path::new("/nonexistent/kubeconfig")).await {
        Ok(_) => panic!("read a kubeconfig that does not exist"),
        Err(message) => message,
    };
    assert!(message.contains("make cluster"), "{message}");
}
