//! The configuration file (config layer; `--config`, YAML): every setting the flags have, plus what
//! flags cannot say well (per-signal switches and `for`, namespace selectors, Warning Event
//! reasons, severities). Unknown keys and bad values are refused with the path of each mistake, all
//! at once.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::core::labels::Selector;
use serde::Deserialize;

use super::parse::{parse_duration, parse_optional_duration};
use crate::{
    api::Severity,
    core::{
        detection::{
            classify::SignalKind,
            settings::{BUILT_IN, DetectionConfig},
        },
        leader::LeaderConfig,
        lifecycle::LifecycleConfig,
        text::is_dns_label,
    },
};

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub lifecycle: LifecycleFile,
    #[serde(default)]
    pub detection: DetectionFile,
    #[serde(default)]
    pub leader_election: LeaderElectionFile,
}

/// Same meaning as the `--leader-elect*` flags, which win over these.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LeaderElectionFile {
    pub enabled: Option<bool>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub lease_duration: Option<String>,
    pub renew_deadline: Option<String>,
    pub retry_period: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LifecycleFile {
    #[serde(default)]
    pub response_times: BTreeMap<Severity, String>,
    pub update_interval: Option<String>,
    pub postmortem_due: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DetectionFile {
    pub enabled: Option<bool>,
    pub resolve_after: Option<String>,
    pub reopen_cooldown: Option<String>,
    pub storm_limit: Option<u16>,
    pub log_tail_lines: Option<u16>,
    pub node_selector: Option<String>,
    pub node_incident_namespace: Option<String>,
    pub namespace_selector: Option<LabelSelector>,
    #[serde(default)]
    pub exclude_namespaces: Vec<String>,
    #[serde(default)]
    pub signals: BTreeMap<String, SignalFile>,
    pub warning_events: Option<WarningEventsFile>,
    #[serde(default)]
    pub severity: SeverityFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalFile {
    pub enabled: Option<bool>,
    #[serde(rename = "for")]
    pub for_: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WarningEventsFile {
    /// Reasons kept as evidence (replaces the default list when given).
    pub evidence: Option<Vec<String>>,
    /// Reasons that are signals of their own.
    #[serde(default)]
    pub signals: Vec<String>,
    pub window: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeverityFile {
    pub all_replicas_unavailable: Option<Severity>,
    pub some_replicas_unavailable: Option<Severity>,
    pub node_not_ready: Option<Severity>,
    pub pods_restarting: Option<Severity>,
}

impl ConfigFile {
    /// Parses the YAML text; the error names the line and the key.
    pub fn parse(text: &str) -> Result<ConfigFile, String> {
        if text.trim().is_empty() {
            return Ok(ConfigFile::default());
        }
        serde_yaml_ng::from_str(text).map_err(|e| e.to_string())
    }

    /// Applies the file's lifecycle settings over `config`.
    pub fn apply_lifecycle(&self, config: &mut LifecycleConfig, errors: &mut Vec<String>) {
        let file = &self.lifecycle;
        for (severity, text) in &file.response_times {
            match parse_duration(text) {
                Ok(d) if d.is_zero() => errors.push(format!(
                    "lifecycle.responseTimes.{severity}: must be more than zero"
                )),
                Ok(d) => config.response_times[*severity as usize] = d,
                Err(e) => errors.push(format!("lifecycle.responseTimes.{severity}: {e}")),
            }
        }
        set(
            &mut config.update_interval,
            &file.update_interval,
            "lifecycle.updateInterval",
            errors,
        );
        set(
            &mut config.postmortem_due,
            &file.postmortem_due,
            "lifecycle.postmortemDue",
            errors,
        );
    }

    /// The file's lease timings over `config` (name and namespace are resolved by the caller,
    /// whose fallbacks depend on the environment).
    pub fn apply_leader_timings(&self, config: &mut LeaderConfig, errors: &mut Vec<String>) {
        let file = &self.leader_election;
        for (key, value) in [("namespace", &file.namespace), ("name", &file.name)] {
            if let Some(value) = value.as_deref().filter(|v| !is_dns_label(v)) {
                errors.push(format!(
                    "leaderElection.{key}: `{value}` is not a valid name (lower-case letters, digits, -)"
                ));
            }
        }
        set(
            &mut config.lease_duration,
            &file.lease_duration,
            "leaderElection.leaseDuration",
            errors,
        );
        set(
            &mut config.renew_deadline,
            &file.renew_deadline,
            "leaderElection.renewDeadline",
            errors,
        );
        set(
            &mut config.retry_period,
            &file.retry_period,
            "leaderElection.retryPeriod",
            errors,
        );
    }

    /// Applies the file's detection settings over `config`.
    pub fn apply_detection(&self, config: &mut DetectionConfig, errors: &mut Vec<String>) {
        let file = &self.detection;
        if let Some(text) = &file.resolve_after {
            match parse_optional_duration(text) {
                Ok(d) => config.resolve_after = d.0,
                Err(e) => errors.push(format!("detection.resolveAfter: {e}")),
            }
        }
        set(
            &mut config.reopen_cooldown,
            &file.reopen_cooldown,
            "detection.reopenCooldown",
            errors,
        );
        match file.storm_limit {
            Some(0) => errors.push("detection.stormLimit: must be at least 1".into()),
            Some(limit) => config.storm_limit = usize::from(limit),
            None => {}
        }
        match file.log_tail_lines {
            Some(lines) if lines > 1000 => errors.push(format!(
                "detection.logTailLines: {lines} is more than 1000 (the evidence keeps 8 KiB)"
            )),
            Some(lines) => config.log_tail_lines = lines,
            None => {}
        }
        if let Some(selector) = &file.node_selector {
            config.node_selector = selector.clone();
        }
        if let Some(namespace) = &file.node_incident_namespace {
            if is_dns_label(namespace) {
                config.node_incident_namespace = namespace.clone();
            } else {
                errors.push(format!(
                    "detection.nodeIncidentNamespace: `{namespace}` is not a namespace name"
                ));
            }
        }
        if let Some(selector) = &file.namespace_selector {
            match Selector::try_from(selector.clone()) {
                Ok(selector) => config.scope.namespace_selector = Some(selector),
                Err(e) => errors.push(format!("detection.namespaceSelector: {e}")),
            }
        }
        for namespace in &file.exclude_namespaces {
            if is_dns_label(namespace) {
                config.scope.excluded.insert(namespace.clone());
            } else {
                errors.push(format!(
                    "detection.excludeNamespaces: `{namespace}` is not a namespace name"
                ));
            }
        }
        for (name, signal) in &file.signals {
            let Some(kind) = BUILT_IN.into_iter().find(|k| k.as_str() == name) else {
                errors.push(format!(
                    "detection.signals.{name}: unknown signal (known: {})",
                    BUILT_IN.map(SignalKind::as_str).join(", ")
                ));
                continue;
            };
            match signal.enabled {
                Some(false) => {
                    config.signals.disabled.insert(kind);
                }
                Some(true) => {
                    config.signals.disabled.remove(&kind);
                }
                None => {}
            }
            if let Some(text) = &signal.for_ {
                match parse_duration(text) {
                    Ok(d) => {
                        config.signals.for_.insert(kind, d);
                    }
                    Err(e) => errors.push(format!("detection.signals.{name}.for: {e}")),
                }
            }
        }
        if let Some(events) = &file.warning_events {
            if let Some(reasons) = &events.evidence {
                config.warning_events.evidence_reasons = BTreeSet::new();
                for reason in reasons {
                    match check_reason(reason) {
                        Ok(()) => {
                            config
                                .warning_events
                                .evidence_reasons
                                .insert(reason.clone());
                        }
                        Err(e) => errors.push(format!("detection.warningEvents.evidence: {e}")),
                    }
                }
            }
            for reason in &events.signals {
                match check_reason(reason) {
                    // Read once at start; a signal kind names its reason for the process's life.
                    Ok(()) => {
                        config
                            .warning_events
                            .signal_reasons
                            .insert(Box::leak(reason.clone().into_boxed_str()));
                    }
                    Err(e) => errors.push(format!("detection.warningEvents.signals: {e}")),
                }
            }
            set(
                &mut config.warning_events.window,
                &events.window,
                "detection.warningEvents.window",
                errors,
            );
        }
        let severity = &file.severity;
        let policy = &mut config.severity;
        for (value, target) in [
            (
                severity.all_replicas_unavailable,
                &mut policy.all_unavailable,
            ),
            (
                severity.some_replicas_unavailable,
                &mut policy.some_unavailable,
            ),
            (severity.node_not_ready, &mut policy.node_not_ready),
            (severity.pods_restarting, &mut policy.pods_restarting),
        ] {
            if let Some(value) = value {
                *target = value;
            }
        }
    }
}

fn set(target: &mut Duration, text: &Option<String>, path: &str, errors: &mut Vec<String>) {
    if let Some(text) = text {
        match parse_duration(text) {
            Ok(d) => *target = d,
            Err(e) => errors.push(format!("{path}: {e}")),
        }
    }
}

/// An event reason: a CamelCase word, and not the name of a built-in signal.
fn check_reason(reason: &str) -> Result<(), String> {
    if reason.is_empty() || reason.len() > 128 || !reason.chars().all(|c| c.is_ascii_alphanumeric())
    {
        return Err(format!(
            "`{reason}` is not an event reason (e.g. FailedMount)"
        ));
    }
    if BUILT_IN.iter().any(|k| k.as_str() == reason) || reason == "IncidentStorm" {
        return Err(format!("`{reason}` is the name of a built-in signal"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detection(yaml: &str) -> Result<DetectionConfig, Vec<String>> {
        let file = ConfigFile::parse(yaml).map_err(|e| vec![e])?;
        let mut config = DetectionConfig::default();
        let mut errors = Vec::new();
        file.apply_detection(&mut config, &mut errors);
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(errors)
        }
    }

    #[test]
    fn the_documented_example_parses() {
        let text = include_str!("../../examples/config/operator.yaml");
        let file = ConfigFile::parse(text).expect("example config");
        let mut errors = Vec::new();
        file.apply_lifecycle(&mut LifecycleConfig::default(), &mut errors);
        file.apply_detection(&mut DetectionConfig::default(), &mut errors);
        let mut leader = LeaderConfig {
            name: "x".into(),
            namespace: "x".into(),
            identity: "x".into(),
            lease_duration: Duration::ZERO,
            renew_deadline: Duration::ZERO,
            retry_period: Duration::ZERO,
        };
        file.apply_leader_timings(&mut leader, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            leader.validate(),
            Ok(()),
            "the example's timings are the defaults"
        );
        assert_eq!(file.leader_election.enabled, Some(false));
    }

    #[test]
    fn signals_severities_events_and_scope_are_read() {
        let config = detection(
            r#"
detection:
  resolveAfter: "off"
  stormLimit: 7
  logTailLines: 0
  excludeNamespaces: [sandbox]
  namespaceSelector:
    matchExpressions: [{ key: team, operator: In, values: [shop, ads] }]
  signals:
    OOMKilled: { enabled: false }
    CrashLoopBackOff: { for: 2m }
  warningEvents:
    evidence: [BackOff]
    signals: [FailedMount]
    window: 10m
  severity:
    allReplicasUnavailable: P0
"#,
        )
        .expect("valid");
        assert_eq!(config.resolve_after, None);
        assert_eq!(config.storm_limit, 7);
        assert_eq!(config.log_tail_lines, 0);
        assert!(config.scope.excluded.contains("sandbox"));
        let shop = BTreeMap::from([("team".to_owned(), "shop".to_owned())]);
        assert!(config.scope.includes("web", Some(&shop)));
        assert!(!config.signals.enabled(SignalKind::OomKilled));
        assert_eq!(
            config.signals.for_(SignalKind::CrashLoopBackOff),
            Duration::from_secs(120)
        );
        assert_eq!(
            config.signals.for_(SignalKind::DeploymentUnavailable),
            Duration::from_secs(30),
            "defaults stay"
        );
        assert_eq!(
            config.warning_events.signal("FailedMount"),
            Some(SignalKind::Event("FailedMount"))
        );
        assert!(config.warning_events.wanted("BackOff"));
        assert!(!config.warning_events.wanted("Unhealthy"));
        assert_eq!(config.warning_events.window, Duration::from_secs(600));
        assert_eq!(config.severity.all_unavailable, Severity::P0);
        assert_eq!(config.severity.some_unavailable, Severity::P2);
    }

    #[test]
    fn every_mistake_is_reported_with_its_path() {
        let errors = detection(
            r#"
detection:
  resolveAfter: soon
  stormLimit: 0
  excludeNamespaces: [Not_A_Namespace]
  namespaceSelector:
    matchExpressions: [{ key: team, operator: Near, values: [x] }]
  signals:
    CrashLoop: { for: 1m }
    ImagePullBackOff: { for: 5 }
  warningEvents:
    signals: [CrashLoopBackOff, "bad reason"]
"#,
        )
        .expect_err("invalid");
        let all = errors.join("\n");
        for expected in [
            "detection.resolveAfter:",
            "detection.stormLimit: must be at least 1",
            "detection.excludeNamespaces: `Not_A_Namespace`",
            "detection.namespaceSelector:",
            "detection.signals.CrashLoop: unknown signal",
            "detection.signals.ImagePullBackOff.for:",
            "`CrashLoopBackOff` is the name of a built-in signal",
            "`bad reason` is not an event reason",
        ] {
            assert!(all.contains(expected), "missing {expected:?} in:\n{all}");
        }
    }

    #[test]
    fn unknown_keys_and_bad_severities_are_refused() {
        let unknown = detection("detection:\n  stormLimt: 5\n").expect_err("typo");
        assert!(unknown[0].contains("stormLimt"), "{unknown:?}");
        let severity =
            detection("detection:\n  severity:\n    nodeNotReady: P7\n").expect_err("P7");
        assert!(severity[0].contains("P7"), "{severity:?}");
    }
}
