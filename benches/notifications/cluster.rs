//! Cluster plumbing of this benchmark: the operator process, namespaces, Secrets, Channels, cleanup.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use incident_operator::api::Channel;
use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
    runtime::wait::await_condition,
};
use serde_json::json;
use tokio::process::{Child, Command};

use crate::{
    SIGNING_KEY,
    common::{Result, TIMEOUT},
    receivers::get,
};

/// The release operator for one namespace; killed when dropped.
pub struct Operator {
    _child: Child,
    addr: SocketAddr,
}

impl Operator {
    pub async fn start(kubeconfig: &Path, ns: &str, label: &str) -> Result<Self> {
        let addr = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
            probe.local_addr()?
        };
        let logs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-notifications");
        std::fs::create_dir_all(&logs)?;
        let log_path = logs.join(format!("{label}-operator.log"));
        let log = std::fs::File::create(&log_path)?;
        let mut child = Command::new(env!("CARGO_BIN_EXE_incident-operator"))
            .args(["run", "--http-addr", &addr.to_string(), "--namespace", ns])
            .args(["--detection", "false", "--log-format", "json"])
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
            if let Ok((200, _)) = get(addr, "/readyz").await {
                return Ok(Self {
                    _child: child,
                    addr,
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

    /// `incident_operator_notification_deliveries_total`, summed by result.
    pub async fn deliveries(&self) -> Result<Vec<(String, f64)>> {
        let (_, text) = get(self.addr, "/metrics").await?;
        let mut by_result: Vec<(String, f64)> = Vec::new();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("incident_operator_notification_deliveries_total{")
            else {
                continue;
            };
            let Some((labels, value)) = rest.rsplit_once("} ") else {
                continue;
            };
            let result = labels
                .split(',')
                .find_map(|l| l.strip_prefix("result=\""))
                .map(|r| r.trim_end_matches('"').to_owned())
                .unwrap_or_default();
            let value: f64 = value.trim().parse().unwrap_or(f64::NAN);
            match by_result.iter_mut().find(|(r, _)| *r == result) {
                Some((_, total)) => *total += value,
                None => by_result.push((result, value)),
            }
        }
        Ok(by_result)
    }
}

/// A Secret with the receiver's `url` and the signing `key`.
pub async fn hook_secret(client: &Client, ns: &str, name: &str, url: &str) -> Result<()> {
    let data = [("url", url), ("key", SIGNING_KEY)]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), ByteString(v.as_bytes().to_vec())))
        .collect();
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        data: Some(data),
        ..Secret::default()
    };
    Api::<Secret>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &secret)
        .await?;
    Ok(())
}

/// A signed webhook Channel reading `secret`, hearing every severity and event.
pub async fn webhook_channel(client: &Client, ns: &str, name: &str, secret: &str) -> Result<()> {
    let channel: Channel = serde_json::from_value(json!({
        "apiVersion": "incident.dev/v1alpha1", "kind": "Channel", "metadata": { "name": name },
        "spec": { "webhook": { "url": { "name": secret, "key": "url" },
                               "signingKey": { "name": secret, "key": "key" } } },
    }))?;
    Api::<Channel>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &channel)
        .await?;
    Ok(())
}

pub async fn channel_ready(client: &Client, ns: &str, name: &str) -> Result<()> {
    let api: Api<Channel> = Api::namespaced(client.clone(), ns);
    let ready = await_condition(api, name, |c: Option<&Channel>| {
        c.and_then(|c| c.status.as_ref()).is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        })
    });
    tokio::time::timeout(TIMEOUT, ready)
        .await
        .map_err(|_| format!("Channel {ns}/{name} not Ready within {TIMEOUT:?}"))??;
    Ok(())
}
