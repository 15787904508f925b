//! Cluster plumbing of this benchmark: the operator process, the pager Channel and its Secret, the
//! OnCallSchedule and the EscalationPolicy, and waiting for each to be Ready.

use std::{
    fmt::Debug,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use incident_operator::api::{Channel, EscalationPolicy, OnCallSchedule};
use k8s_openapi::{
    ByteString, api::core::v1::Secret, apimachinery::pkg::apis::meta::v1::Condition,
};
use kube::{
    Api, Client, Resource,
    api::{ObjectMeta, PostParams},
    core::NamespaceResourceScope,
    runtime::wait::await_condition,
};
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::process::{Child, Command};

use crate::{
    LEVELS, SIGNING_KEY,
    common::{Result, TIMEOUT},
    receiver::get,
};

/// The release operator for one namespace; killed when dropped.
pub struct Operator {
    _child: Child,
    addr: SocketAddr,
}

impl Operator {
    pub async fn start(kubeconfig: &Path, ns: &str) -> Result<Self> {
        let addr = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
            probe.local_addr()?
        };
        let logs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-escalation");
        std::fs::create_dir_all(&logs)?;
        let log_path = logs.join("operator.log");
        let log = std::fs::File::create(&log_path)?;
        let mut child = Command::new(env!("CARGO_BIN_EXE_incident-operator"))
            .args(["run", "--http-addr", &addr.to_string(), "--namespace", ns])
            .args(["--detection", "false", "--log-format", "json"])
            .env("KUBECONFIG", kubeconfig)
            .env_remove("INCIDENT_KUBECONFIG")
            // The bench namespace's own default policy must be the one followed.
            .env_remove("POD_NAMESPACE")
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

/// The pager: a Secret with the receiver's `url` and the signing key, and a signed webhook Channel
/// reading it that hears pages only (so every delivery is one page).
pub async fn pager(client: &Client, ns: &str, url: &str) -> Result<()> {
    let data = [("url", url), ("key", SIGNING_KEY)]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), ByteString(v.as_bytes().to_vec())))
        .collect();
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some("pager".to_owned()),
            ..ObjectMeta::default()
        },
        data: Some(data),
        ..Secret::default()
    };
    Api::<Secret>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &secret)
        .await?;
    let channel: Channel = serde_json::from_value(json!({
        "apiVersion": "incident.dev/v1alpha1", "kind": "Channel", "metadata": { "name": "pager" },
        "spec": { "webhook": { "url": { "name": "pager", "key": "url" },
                               "signingKey": { "name": "pager", "key": "key" } },
                  "route": { "events": ["Paged"] } },
    }))?;
    create(client, ns, &channel).await
}

/// One OnCallSchedule `team` with a layer per level, one member each (so the bench knows who is
/// on call), each with a webhook handle.
pub async fn schedule(client: &Client, ns: &str) -> Result<()> {
    let members: Vec<_> = LEVELS
        .iter()
        .zip(1..)
        .map(|((_, person), i)| {
            json!({ "name": person, "contacts": { "webhook": format!("+1555000000{i}") } })
        })
        .collect();
    // A start long past, so each layer's only member is on call now.
    let layers: Vec<_> = LEVELS
        .iter()
        .map(|(layer, person)| json!({ "name": layer, "members": [person], "start": "2020-01-06" }))
        .collect();
    let schedule: OnCallSchedule = serde_json::from_value(json!({
        "apiVersion": "incident.dev/v1alpha1", "kind": "OnCallSchedule",
        "metadata": { "name": "team" },
        "spec": { "timeZone": "UTC", "members": members, "layers": layers },
    }))?;
    create(client, ns, &schedule).await
}

/// The namespace's default EscalationPolicy: one level per layer, each waiting `wait`, no repeat.
pub async fn policy(client: &Client, ns: &str, wait: &str) -> Result<()> {
    let levels: Vec<_> = LEVELS
        .iter()
        .map(|(layer, _)| {
            json!({ "name": layer, "after": wait,
                    "notify": [ { "layer": { "schedule": "team", "layer": layer } } ] })
        })
        .collect();
    let policy: EscalationPolicy = serde_json::from_value(json!({
        "apiVersion": "incident.dev/v1alpha1", "kind": "EscalationPolicy",
        "metadata": { "name": "team" },
        "spec": { "default": true, "repeat": 0, "levels": levels },
    }))?;
    create(client, ns, &policy).await
}

async fn create<K>(client: &Client, ns: &str, object: &K) -> Result<()>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + serde::Serialize
        + Debug,
{
    Api::<K>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), object)
        .await?;
    Ok(())
}

/// Waits until `name`'s `Ready` condition is True.
pub async fn ready<K>(
    client: &Client,
    ns: &str,
    name: &str,
    conditions: fn(&K) -> Option<&Vec<Condition>>,
) -> Result<()>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + 'static,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let ready = await_condition(api, name, move |k: Option<&K>| {
        k.and_then(conditions)
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    });
    tokio::time::timeout(TIMEOUT, ready)
        .await
        .map_err(|_| format!("{} {ns}/{name} not Ready within {TIMEOUT:?}", K::kind(&())))??;
    Ok(())
}
