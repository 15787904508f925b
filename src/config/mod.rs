//! Operator configuration (config layer): command-line flags with environment fallbacks and the
//! configuration file, validated at start so bad input stops the process with a message and exit
//! code 2 before anything runs. It builds the settings the pure core defines.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use kube::config::{Config, KubeConfigOptions, Kubeconfig};

pub mod alerts;
pub mod file;
pub mod parse;
pub mod status_page;

pub use self::alerts::{AlertArgs, AlertConfig};
pub use self::status_page::{StatusPageArgs, StatusPageConfig};
use self::{
    file::ConfigFile,
    parse::{
        OptionalDuration, parse_duration, parse_namespace, parse_object_name,
        parse_optional_duration, parse_response_time,
    },
};
use crate::{
    api::Severity,
    core::{
        detection::{classify::SignalKind, settings::DetectionConfig},
        leader::LeaderConfig,
        lifecycle::LifecycleConfig,
        shard::Shard,
    },
};

/// Configuration the operator cannot start with (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read kubeconfig {path}")]
    Kubeconfig {
        path: PathBuf,
        #[source]
        source: kube::config::KubeconfigError,
    },

    #[error(
        "cannot find a cluster to talk to (set KUBECONFIG, pass --kubeconfig, or run in a pod)"
    )]
    InferConfig(#[source] kube::config::InferConfigError),

    #[error("invalid configuration {}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

impl ConfigError {
    /// Short, stable label for the `error` dimension of failure metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            ConfigError::Kubeconfig { .. } => "kubeconfig",
            ConfigError::InferConfig(_) => "infer_config",
            ConfigError::Invalid { .. } => "config",
        }
    }
}

type Result<T, E = ConfigError> = std::result::Result<T, E>;

/// Names this replica in Events: the pod name in a cluster, else the host name.
pub fn instance_name() -> String {
    ["POD_NAME", "HOSTNAME"]
        .iter()
        .find_map(|var| std::env::var(var).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "incident-operator".to_owned())
}

/// A process identity for leader election: the instance name, the process id and a time-based
/// suffix, so two processes on one host, or a restarted pod, never share it.
pub fn identity() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{}_{}_{nanos:08x}", instance_name(), std::process::id())
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log pipelines.
    Json,
}

/// How to find the cluster, shared by every subcommand that talks to it.
#[derive(Debug, Clone, clap::Args)]
pub struct ClusterArgs {
    /// Kubeconfig file; without it the cluster is found like kubectl does (KUBECONFIG,
    /// ~/.kube/config, then the in-cluster service account).
    #[arg(long, env = "INCIDENT_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,

    /// Kubeconfig context to use instead of the current one.
    #[arg(long)]
    pub context: Option<String>,
}

impl ClusterArgs {
    /// Resolves the cluster the way kubectl does, honouring --kubeconfig and --context.
    pub async fn kube_config(&self) -> Result<Config> {
        let options = KubeConfigOptions {
            context: self.context.clone(),
            ..KubeConfigOptions::default()
        };
        match (&self.kubeconfig, &self.context) {
            (Some(path), _) => {
                let kubeconfig =
                    Kubeconfig::read_from(path).map_err(|source| ConfigError::Kubeconfig {
                        path: path.clone(),
                        source,
                    })?;
                Config::from_custom_kubeconfig(kubeconfig, &options)
                    .await
                    .map_err(|source| ConfigError::Kubeconfig {
                        path: path.clone(),
                        source,
                    })
            }
            (None, Some(_)) => {
                Config::from_kubeconfig(&options)
                    .await
                    .map_err(|source| ConfigError::Kubeconfig {
                        path: PathBuf::from("$KUBECONFIG"),
                        source,
                    })
            }
            (None, None) => Config::infer().await.map_err(ConfigError::InferConfig),
        }
    }
}

/// Flags of `incident-operator run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Address serving /healthz, /readyz and /metrics.
    #[arg(long, env = "INCIDENT_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,

    #[command(flatten)]
    pub cluster: ClusterArgs,

    #[command(flatten)]
    pub alerts: AlertArgs,

    #[command(flatten)]
    pub status_page: StatusPageArgs,

    /// Longest time to wait for in-flight work after SIGTERM/SIGINT before exiting.
    #[arg(long, default_value = "4s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,

    /// ValidatingAdmissionPolicies that must be in force (exist and be bound to deny), comma
    /// separated: readiness fails, naming them, while one is not (the chart sets its own two).
    #[arg(long, value_delimiter = ',', value_parser = parse_object_name)]
    pub admission_policies: Vec<String>,

    /// Watch Incidents in this namespace only (default: all namespaces).
    #[arg(long, env = "INCIDENT_NAMESPACE", value_parser = parse_namespace)]
    pub namespace: Option<String>,

    /// Handle only the namespaces that hash to shard N of M (0 <= N < M); run M deployments, each with
    /// its own Lease (NAME-shard-N-of-M) and standby. Needs all namespaces (no --namespace).
    #[arg(long, env = "INCIDENT_SHARD", value_name = "N/M")]
    pub shard: Option<Shard>,

    /// Act only in namespaces whose labels match this selector, e.g. `incident.dev/managed=true`
    /// (the operator's own namespace always counts). Needs all namespaces (no --namespace).
    #[arg(long, value_name = "SELECTOR")]
    pub namespace_selector: Option<String>,

    /// Response time of a severity, e.g. `P0=15m` (repeatable; defaults P0=15m P1=1h P2=4h P3=24h).
    #[arg(long = "response-time", value_name = "SEVERITY=DURATION", value_parser = parse_response_time)]
    pub response_times: Vec<(Severity, Duration)>,

    /// Configuration file (YAML; see examples/config/operator.yaml). Flags given on the command
    /// line win over the file; the file wins over the defaults.
    #[arg(long, env = "INCIDENT_CONFIG")]
    pub config: Option<PathBuf>,

    /// Longest silence allowed on an unresolved P0/P1 incident before an update is overdue
    /// [default: 30m].
    #[arg(long, value_parser = parse_duration)]
    pub update_interval: Option<Duration>,

    /// Time from resolution to a completed post-mortem [default: 48h].
    #[arg(long, value_parser = parse_duration)]
    pub postmortem_due: Option<Duration>,

    /// Open incidents from cluster health signals (`--detection false` turns it off) [default: true].
    #[arg(long, action = clap::ArgAction::Set)]
    pub detection: Option<bool>,

    /// Resolve a detected incident once its signals stayed clear this long; `off` never does
    /// [default: 5m].
    #[arg(long, value_parser = parse_optional_duration)]
    pub resolve_after: Option<OptionalDuration>,

    /// A pod that cannot be scheduled counts as a signal after this long (the `for` of
    /// Unschedulable) [default: 5m].
    #[arg(long, value_parser = parse_duration)]
    pub pending_grace: Option<Duration>,

    /// A Deployment's unavailability counts as a signal only after it lasted this long (the `for`
    /// of DeploymentUnavailable) [default: 30s].
    #[arg(long, value_parser = parse_duration)]
    pub unavailable_for: Option<Duration>,

    /// A problem returning within this long after auto-resolving reopens its incident; later, a new
    /// one [default: 10m].
    #[arg(long, value_parser = parse_duration)]
    pub reopen_cooldown: Option<Duration>,

    /// At most this many new detected incidents per minute; the rest wait in one storm incident
    /// [default: 20].
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub storm_limit: Option<u16>,

    /// Namespace for node incidents (default: --namespace, else the operator's own, else default).
    #[arg(long)]
    pub node_incident_namespace: Option<String>,

    /// Watch only nodes matching this label selector for readiness (default: all nodes).
    #[arg(long)]
    pub node_selector: Option<String>,

    /// Run the acting loops (detector, incident and runbook controllers) only while this process
    /// holds a coordination.k8s.io Lease. Off for local runs and tests; the Helm chart turns it on.
    /// [default: false]
    #[arg(long, env = "INCIDENT_LEADER_ELECT", action = clap::ArgAction::Set)]
    pub leader_elect: Option<bool>,

    /// Namespace of the Lease (default: POD_NAMESPACE, else --namespace, else default).
    #[arg(long)]
    pub leader_election_namespace: Option<String>,

    /// Name of the Lease [default: incident-operator].
    #[arg(long)]
    pub leader_election_name: Option<String>,

    /// How long the Lease stays valid after its last renewal; a killed leader is replaced within
    /// this plus the retry period [default: 10s].
    #[arg(long, value_parser = parse_duration)]
    pub leader_election_lease_duration: Option<Duration>,

    /// A leader that could not renew for this long stops (exits 1); shorter than the lease duration
    /// [default: 5s].
    #[arg(long, value_parser = parse_duration)]
    pub leader_election_renew_deadline: Option<Duration>,

    /// How often the leader renews and the others try to acquire [default: 2s].
    #[arg(long, value_parser = parse_duration)]
    pub leader_election_retry_period: Option<Duration>,
}

/// Everything `run` is configured with, after defaults, the file and the flags.
#[derive(Clone, Debug)]
pub struct Settings {
    pub lifecycle: LifecycleConfig,
    /// None when detection is off.
    pub detection: Option<DetectionConfig>,
    /// None when leader election is off (this process always acts).
    pub leader: Option<LeaderConfig>,
    /// The namespace the operator runs in (POD_NAMESPACE): its Channels may serve every namespace.
    pub operator_namespace: Option<String>,
    /// None when the alert receiver is off.
    pub alerts: Option<AlertConfig>,
    /// None when the status page is off.
    pub status_page: Option<StatusPageConfig>,
    /// This process's shard, when the namespaces are split (`--shard`).
    pub shard: Option<Shard>,
    /// Only namespaces matching it are acted on (`--namespace-selector`).
    pub namespace_selector: Option<String>,
}

impl RunArgs {
    /// Defaults, then the configuration file, then the flags; every mistake is reported at once.
    pub fn settings(&self) -> Result<Settings> {
        let file = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Invalid {
                    path: path.clone(),
                    message: format!("cannot read it: {e}"),
                })?;
                ConfigFile::parse(&text).map_err(|message| ConfigError::Invalid {
                    path: path.clone(),
                    message,
                })?
            }
            None => ConfigFile::default(),
        };
        let mut errors = Vec::new();
        let mut lifecycle = LifecycleConfig::default();
        file.apply_lifecycle(&mut lifecycle, &mut errors);
        for (severity, duration) in &self.response_times {
            lifecycle.response_times[*severity as usize] = *duration;
        }
        if let Some(d) = self.update_interval {
            lifecycle.update_interval = d;
        }
        if let Some(d) = self.postmortem_due {
            lifecycle.postmortem_due = d;
        }

        let own = std::env::var("POD_NAMESPACE")
            .ok()
            .filter(|ns| !ns.is_empty());
        let mut detection = DetectionConfig {
            node_incident_namespace: self
                .namespace
                .clone()
                .or_else(|| own.clone())
                .unwrap_or_else(|| "default".to_owned()),
            ..DetectionConfig::default()
        };
        // The operator's own namespace holds its machinery, not workloads to watch.
        detection.scope.excluded.extend(own.clone());
        file.apply_detection(&mut detection, &mut errors);
        if let Some(d) = self.resolve_after {
            detection.resolve_after = d.0;
        }
        if let Some(d) = self.pending_grace {
            detection.signals.for_.insert(SignalKind::Unschedulable, d);
        }
        if let Some(d) = self.unavailable_for {
            detection
                .signals
                .for_
                .insert(SignalKind::DeploymentUnavailable, d);
        }
        if let Some(d) = self.reopen_cooldown {
            detection.reopen_cooldown = d;
        }
        if let Some(limit) = self.storm_limit {
            detection.storm_limit = usize::from(limit);
        }
        if let Some(ns) = &self.node_incident_namespace {
            detection.node_incident_namespace = ns.clone();
        }
        if let Some(selector) = &self.node_selector {
            detection.node_selector = selector.clone();
        }
        let leader = self.leader(&file, own.as_deref(), &mut errors);
        let alerts_fallback = self
            .namespace
            .clone()
            .or_else(|| own.clone())
            .unwrap_or_else(|| "default".to_owned());
        let enabled = self.detection.or(file.detection.enabled).unwrap_or(true);
        // Node alerts join the detector's node incidents only when the detector keeps them.
        let node_namespace = enabled.then_some(detection.node_incident_namespace.as_str());
        let alerts = self.alerts.config(
            &alerts_fallback,
            node_namespace,
            detection.reopen_cooldown,
            &mut errors,
        );
        let status_page = self.status_page.config(&mut errors);
        let namespace_selector = self
            .namespace_selector
            .clone()
            .filter(|s| !s.trim().is_empty());
        if let Some(ns) = &self.namespace {
            if let Some(shard) = self.shard {
                errors.push(format!("--shard {shard} splits all namespaces; it cannot be combined with --namespace {ns}"));
            }
            if namespace_selector.is_some() {
                errors.push(format!("--namespace-selector chooses among all namespaces; it cannot be combined with --namespace {ns}"));
            }
        }
        if !errors.is_empty() {
            return Err(ConfigError::Invalid {
                path: self.config.clone().unwrap_or_default(),
                message: errors.join("; "),
            });
        }
        Ok(Settings {
            lifecycle,
            detection: enabled.then_some(detection),
            leader,
            operator_namespace: own,
            alerts,
            status_page,
            shard: self.shard,
            namespace_selector,
        })
    }
}

impl RunArgs {
    /// Leader election, when the flag or the file turns it on: defaults, then the file, then flags.
    fn leader(
        &self,
        file: &ConfigFile,
        own: Option<&str>,
        errors: &mut Vec<String>,
    ) -> Option<LeaderConfig> {
        let from_file = &file.leader_election;
        if !self.leader_elect.or(from_file.enabled).unwrap_or(false) {
            return None;
        }
        let mut leader = LeaderConfig {
            name: self
                .leader_election_name
                .clone()
                .or_else(|| from_file.name.clone())
                .unwrap_or_else(|| "incident-operator".to_owned()),
            namespace: self
                .leader_election_namespace
                .clone()
                .or_else(|| from_file.namespace.clone())
                .or_else(|| own.map(str::to_owned))
                .or_else(|| self.namespace.clone())
                .unwrap_or_else(|| "default".to_owned()),
            identity: identity(),
            lease_duration: LeaderConfig::LEASE_DURATION,
            renew_deadline: LeaderConfig::RENEW_DEADLINE,
            retry_period: LeaderConfig::RETRY_PERIOD,
        };
        // Each shard elects its own leader among its own replicas.
        if let Some(shard) = self.shard {
            leader.name = shard.lease_name(&leader.name);
        }
        file.apply_leader_timings(&mut leader, errors);
        let flags = [
            (
                &mut leader.lease_duration,
                self.leader_election_lease_duration,
            ),
            (
                &mut leader.renew_deadline,
                self.leader_election_renew_deadline,
            ),
            (&mut leader.retry_period, self.leader_election_retry_period),
        ];
        for (target, flag) in flags {
            if let Some(d) = flag {
                *target = d;
            }
        }
        if let Err(message) = leader.validate() {
            errors.push(format!("leader election: {message}"));
        }
        Some(leader)
    }
}

#[cfg(test)]
mod tests;
