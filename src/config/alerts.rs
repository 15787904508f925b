//! The alert receiver's flags (config): where it listens, the token Alertmanager presents, where
//! incidents go, the limits. No token, no receiver: it never listens unauthenticated.

use std::{collections::BTreeSet, net::SocketAddr, path::PathBuf};

use jiff::SignedDuration;

use crate::{api::Severity, core::detection::alerts::AlertSettings};

/// Flags of the alert receiver (part of `incident-operator run`).
#[derive(Debug, Clone, clap::Args)]
pub struct AlertArgs {
    /// Address of the alert receiver (Alertmanager's webhook, POST /alerts/alertmanager); off
    /// unless given. Needs --alerts-token-file.
    #[arg(long, env = "INCIDENT_ALERTS_ADDR")]
    pub alerts_addr: Option<SocketAddr>,

    /// File holding the bearer token Alertmanager must present (its
    /// `http_config.authorization.credentials_file` holds the same).
    #[arg(long, env = "INCIDENT_ALERTS_TOKEN_FILE")]
    pub alerts_token_file: Option<PathBuf>,

    /// Namespace of alert incidents whose `namespace` label is not an opted-in namespace
    /// (default: --namespace, else the operator's own, else default).
    #[arg(long)]
    pub alerts_namespace: Option<String>,

    /// Namespaces whose alerts open incidents in the namespace itself (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub alerts_namespaces: Vec<String>,

    /// Largest request body accepted, in bytes (413 beyond) [default: 1048576].
    #[arg(long, default_value_t = 1024 * 1024)]
    pub alerts_max_body: usize,

    /// Most alerts one message may carry (400 beyond) [default: 1000].
    #[arg(long, default_value_t = 1000)]
    pub alerts_max_alerts: usize,

    /// The alert label whose value picks the incident's severity [default: severity].
    #[arg(long)]
    pub alerts_severity_label: Option<String>,

    /// A value of that label and the severity it means, e.g. `page=P1` (repeatable; replaces the
    /// defaults critical=P1 error=P2 warning=P2 info=P3 when given).
    #[arg(long = "alerts-severity", value_name = "VALUE=SEVERITY", value_parser = parse_mapping)]
    pub alerts_severities: Vec<(String, Severity)>,

    /// Serve TLS with this PEM certificate chain (with --alerts-tls-key-file); plain HTTP without.
    #[arg(long, env = "INCIDENT_ALERTS_TLS_CERT_FILE")]
    pub alerts_tls_cert_file: Option<PathBuf>,

    /// The PEM private key of --alerts-tls-cert-file.
    #[arg(long, env = "INCIDENT_ALERTS_TLS_KEY_FILE")]
    pub alerts_tls_key_file: Option<PathBuf>,

    /// The severity of an alert whose label is missing or not mapped [default: P2].
    #[arg(long, value_parser = parse_severity)]
    pub alerts_default_severity: Option<Severity>,
}

fn parse_severity(text: &str) -> Result<Severity, String> {
    Severity::ALL
        .into_iter()
        .find(|s| s.as_str() == text.trim())
        .ok_or_else(|| format!("`{text}` is not a severity: use P0, P1, P2 or P3"))
}

/// `VALUE=SEVERITY`, the value compared without case.
fn parse_mapping(text: &str) -> Result<(String, Severity), String> {
    let (value, severity) = text
        .split_once('=')
        .filter(|(value, _)| !value.trim().is_empty())
        .ok_or_else(|| format!("`{text}` is not VALUE=SEVERITY, e.g. critical=P1"))?;
    Ok((value.trim().to_lowercase(), parse_severity(severity)?))
}

/// The receiver as configured.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertConfig {
    pub addr: SocketAddr,
    pub token: Vec<u8>,
    /// The PEM certificate chain and key, when the receiver serves TLS.
    pub tls: Option<(Vec<u8>, Vec<u8>)>,
    pub max_body: usize,
    pub settings: AlertSettings,
}

impl AlertArgs {
    /// The receiver's configuration, None when it is off; a mistake is pushed to `errors`.
    pub fn config(
        &self,
        fallback_namespace: &str,
        node_namespace: Option<&str>,
        reopen_cooldown: std::time::Duration,
        errors: &mut Vec<String>,
    ) -> Option<AlertConfig> {
        let addr = match (self.alerts_addr, &self.alerts_token_file) {
            (None, None) => return None,
            (None, Some(_)) => {
                errors.push("--alerts-token-file is given without --alerts-addr".to_owned());
                return None;
            }
            (Some(_), None) => {
                errors.push(
                    "--alerts-addr needs --alerts-token-file: the receiver never listens without a token"
                        .to_owned(),
                );
                return None;
            }
            (Some(addr), Some(_)) => addr,
        };
        let path = self.alerts_token_file.as_ref()?;
        let token = match std::fs::read_to_string(path) {
            Ok(text) if !text.trim().is_empty() => text.trim().as_bytes().to_vec(),
            Ok(_) => {
                errors.push(format!("the alerts token file {} is empty", path.display()));
                return None;
            }
            Err(e) => {
                errors.push(format!(
                    "cannot read the alerts token file {}: {e}",
                    path.display()
                ));
                return None;
            }
        };
        let tls = match (&self.alerts_tls_cert_file, &self.alerts_tls_key_file) {
            (None, None) => None,
            (Some(cert), Some(key)) => match (std::fs::read(cert), std::fs::read(key)) {
                (Ok(cert), Ok(key)) => Some((cert, key)),
                (Err(e), _) => {
                    errors.push(format!("cannot read {}: {e}", cert.display()));
                    None
                }
                (_, Err(e)) => {
                    errors.push(format!("cannot read {}: {e}", key.display()));
                    None
                }
            },
            _ => {
                errors.push(
                    "--alerts-tls-cert-file and --alerts-tls-key-file go together".to_owned(),
                );
                None
            }
        };
        if self.alerts_max_body < 1024 || self.alerts_max_alerts == 0 {
            errors.push(
                "--alerts-max-body must be at least 1024 and --alerts-max-alerts at least 1"
                    .to_owned(),
            );
        }
        let defaults = AlertSettings::default();
        let severities = if self.alerts_severities.is_empty() {
            defaults.severities.clone()
        } else {
            self.alerts_severities.iter().cloned().collect()
        };
        let settings = AlertSettings {
            severity_label: self
                .alerts_severity_label
                .clone()
                .unwrap_or(defaults.severity_label.clone()),
            severities,
            default_severity: self
                .alerts_default_severity
                .unwrap_or(defaults.default_severity),
            default_namespace: self
                .alerts_namespace
                .clone()
                .unwrap_or_else(|| fallback_namespace.to_owned()),
            namespaces: self
                .alerts_namespaces
                .iter()
                .cloned()
                .collect::<BTreeSet<_>>(),
            reopen_cooldown: SignedDuration::try_from(reopen_cooldown)
                .unwrap_or(SignedDuration::MAX),
            max_alerts: self.alerts_max_alerts,
            node_namespace: node_namespace.map(str::to_owned),
        };
        Some(AlertConfig {
            addr,
            token,
            tls,
            max_body: self.alerts_max_body,
            settings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_mappings_parse_and_bad_ones_say_why() {
        assert_eq!(
            parse_mapping("Page=P1"),
            Ok(("page".to_owned(), Severity::P1))
        );
        assert!(
            parse_mapping("page")
                .unwrap_err()
                .contains("VALUE=SEVERITY")
        );
        assert!(parse_mapping("=P1").is_err());
        assert!(
            parse_mapping("page=P7")
                .unwrap_err()
                .contains("not a severity")
        );
    }
}
