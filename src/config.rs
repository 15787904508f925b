//! Operator configuration: command-line flags with environment fallbacks, validated by clap at start
//! so bad input stops the process with a message and exit code 2 before anything runs.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use kube::config::{Config, KubeConfigOptions, Kubeconfig};

use crate::{Error, Result};

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log pipelines.
    Json,
}

/// Flags of `incident-operator run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Address serving /healthz, /readyz and /metrics.
    #[arg(long, env = "INCIDENT_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,

    /// Kubeconfig file; without it the cluster is found like kubectl does (KUBECONFIG,
    /// ~/.kube/config, then the in-cluster service account).
    #[arg(long, env = "INCIDENT_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,

    /// Kubeconfig context to use instead of the current one.
    #[arg(long)]
    pub context: Option<String>,

    /// Longest time to wait for in-flight work after SIGTERM/SIGINT before exiting.
    #[arg(long, default_value = "4s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
}

impl RunArgs {
    /// Resolves the cluster the way kubectl does, honouring --kubeconfig and --context.
    pub async fn kube_config(&self) -> Result<Config> {
        let options = KubeConfigOptions {
            context: self.context.clone(),
            ..KubeConfigOptions::default()
        };
        match (&self.kubeconfig, &self.context) {
            (Some(path), _) => {
                let kubeconfig =
                    Kubeconfig::read_from(path).map_err(|source| Error::Kubeconfig {
                        path: path.clone(),
                        source,
                    })?;
                Config::from_custom_kubeconfig(kubeconfig, &options)
                    .await
                    .map_err(|source| Error::Kubeconfig {
                        path: path.clone(),
                        source,
                    })
            }
            (None, Some(_)) => {
                Config::from_kubeconfig(&options)
                    .await
                    .map_err(|source| Error::Kubeconfig {
                        path: PathBuf::from("$KUBECONFIG"),
                        source,
                    })
            }
            (None, None) => Config::infer().await.map_err(Error::InferConfig),
        }
    }
}

/// Parses a non-negative duration written like `90s`, `15m`, `1h 30m` or ISO 8601 `PT15M`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let signed: jiff::SignedDuration = text
        .trim()
        .parse()
        .map_err(|e| format!("`{text}` is not a duration (write e.g. 30s, 15m, 2h): {e}"))?;
    Duration::try_from(signed).map_err(|_| format!("`{text}` is negative"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("PT15M"), Ok(Duration::from_secs(900)));
    }

    #[test]
    fn durations_without_units_or_numbers_are_refused() {
        assert!(parse_duration("30").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-5m").is_err());
    }
}
