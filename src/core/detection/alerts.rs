//! Alerts from Alertmanager (core layer): its webhook message (payload version 4), checked, and
//! what it means for the incident its group keeps — create it, record the alerts' states,
//! resolve it once every alert resolved, reopen it when one fires again soon after. One incident
//! per problem: a group whose alerts name a workload joins the detector's incident for it (or opens
//! it, under the detector's name and fingerprint); other groups get one incident each.
//! Alertmanager resends a group every `group_interval` and `repeat_interval`, so the same message
//! must change nothing the second time.

use std::collections::{BTreeMap, BTreeSet};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use serde_json::{Value, json};

use crate::{
    api::{
        AlertSignal, AlertState, Incident, MAX_ALERT_LABELS, MAX_ALERT_TEXT, MAX_ALERT_URL,
        MAX_ALERTS, Resolution, Severity,
        metadata::{
            ACTOR_ANNOTATION, ALERT_GROUP_LABEL, CLEARED_ANNOTATION, FINGERPRINT_LABEL,
            OPERATOR_ACTOR, PROBLEM_LABEL, SOURCE_ALERTMANAGER, SOURCE_LABEL,
        },
    },
    core::text::{cut, fingerprint, is_dns_label},
};

pub use self::payload::{Alert, Message};
use super::group::Workload;

/// Most alerts kept on one incident (the schema's bound); resolved ones go first.
const MAX_TITLE: usize = 200;
const MAX_DESCRIPTION: usize = 2000;

/// How alerts become incidents (the operator's configuration).
#[derive(Clone, Debug, PartialEq)]
pub struct AlertSettings {
    /// Where an alert's incident goes unless its `namespace` label names one of `namespaces`.
    pub default_namespace: String,
    /// Namespaces that opted in to receiving their own alerts' incidents.
    pub namespaces: BTreeSet<String>,
    /// The label whose value picks the severity, and the mapping.
    pub severity_label: String,
    pub severities: BTreeMap<String, Severity>,
    /// The severity when the label is missing or unmapped.
    pub default_severity: Severity,
    /// A group firing again within this long after its incident resolved reopens it.
    pub reopen_cooldown: SignedDuration,
    /// Most alerts one message may carry.
    pub max_alerts: usize,
    /// Where the detector keeps node incidents: alerts naming a node join them there (None: they
    /// group like any other).
    pub node_namespace: Option<String>,
}

impl Default for AlertSettings {
    fn default() -> Self {
        AlertSettings {
            default_namespace: "default".to_owned(),
            namespaces: BTreeSet::new(),
            severity_label: "severity".to_owned(),
            severities: BTreeMap::from([
                ("critical".to_owned(), Severity::P1),
                ("error".to_owned(), Severity::P2),
                ("warning".to_owned(), Severity::P2),
                ("info".to_owned(), Severity::P3),
            ]),
            default_severity: Severity::P2,
            reopen_cooldown: SignedDuration::from_mins(10),
            max_alerts: 1000,
            node_namespace: None,
        }
    }
}

/// An alert as checked: its state and times parsed.
#[derive(Clone, Debug, PartialEq)]
pub struct Heard {
    pub signal: AlertSignal,
    /// An explicit `incident_severity` (label or annotation) on it.
    pub explicit: Option<Severity>,
    pub severity_word: Option<String>,
}

/// Checks a message; the reason it cannot be used (a 400 for the sender) otherwise.
pub fn check(message: &Message, settings: &AlertSettings) -> Result<Vec<Heard>, String> {
    if message.version != "4" {
        return Err(format!(
            "payload version {:?} is not supported (Alertmanager sends \"4\")",
            message.version
        ));
    }
    if message.group_key.is_empty() || message.group_key.len() > 4096 {
        return Err("groupKey must be 1 to 4096 characters".to_owned());
    }
    if message.alerts.is_empty() {
        return Err("the message has no alerts".to_owned());
    }
    if message.alerts.len() > settings.max_alerts {
        return Err(format!(
            "{} alerts in one message; at most {} (set max_alerts on the webhook_config)",
            message.alerts.len(),
            settings.max_alerts
        ));
    }
    message
        .alerts
        .iter()
        .enumerate()
        .map(|(i, alert)| {
            heard(alert, &settings.severity_label).map_err(|e| format!("alerts[{i}]: {e}"))
        })
        .collect()
}

fn heard(alert: &Alert, severity_label: &str) -> Result<Heard, String> {
    if alert.fingerprint.is_empty() || alert.fingerprint.len() > 64 {
        return Err("fingerprint must be 1 to 64 characters".to_owned());
    }
    let state = match alert.status.as_str() {
        "firing" => AlertState::Firing,
        "resolved" => AlertState::Resolved,
        other => return Err(format!("status {other:?} is neither firing nor resolved")),
    };
    let starts_at: Timestamp = alert
        .starts_at
        .parse()
        .map_err(|e| format!("startsAt {:?} is not a time: {e}", alert.starts_at))?;
    let ends_at = match state {
        AlertState::Firing => None,
        AlertState::Resolved => Some(
            alert
                .ends_at
                .parse::<Timestamp>()
                .map_err(|e| format!("endsAt {:?} is not a time: {e}", alert.ends_at))?,
        ),
    };
    let name = alert
        .labels
        .get("alertname")
        .map_or("alert", String::as_str);
    let explicit = alert
        .labels
        .get("incident_severity")
        .or_else(|| alert.annotations.get("incident_severity"))
        .map(|s| parse_severity(s))
        .transpose()?;
    let labels = alert
        .labels
        .iter()
        .take(MAX_ALERT_LABELS)
        .map(|(k, v)| (cut(k, 128), cut(v, 256)))
        .collect();
    // A cut URL leads nowhere: one too long is left out.
    let url = |s: &str| (!s.is_empty() && s.len() <= MAX_ALERT_URL).then(|| s.to_owned());
    Ok(Heard {
        signal: AlertSignal {
            fingerprint: alert.fingerprint.clone(),
            name: cut(name, 128),
            state,
            starts_at: Time(to_second(starts_at)),
            ends_at: ends_at.map(|t| Time(to_second(t))),
            summary: alert
                .annotations
                .get("summary")
                .map(|s| cut(s, MAX_ALERT_TEXT)),
            runbook_url: alert.annotations.get("runbook_url").and_then(|s| url(s)),
            generator_url: url(&alert.generator_url),
            labels,
        },
        explicit,
        severity_word: alert.labels.get(severity_label).cloned(),
    })
}

fn parse_severity(text: &str) -> Result<Severity, String> {
    Severity::ALL
        .into_iter()
        .find(|s| s.as_str().eq_ignore_ascii_case(text.trim()))
        .ok_or_else(|| format!("incident_severity {text:?} is not P0, P1, P2 or P3"))
}

fn to_second(time: Timestamp) -> Timestamp {
    crate::core::text::to_second(time)
}

/// Where a group's incidents live and how they are found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub namespace: String,
    /// The value of the incidents' `incident.dev/alert-group` label.
    pub label: String,
    /// The first incident's name; later ones add `-2`, `-3`.
    pub base_name: String,
    /// The workload the group's alerts name, when they name one: its incident is the detector's.
    pub workload: Option<Workload>,
}

impl Group {
    /// The label selector that finds the group's incidents: the workload's problem, else the group.
    pub fn selector(&self) -> String {
        match &self.workload {
            Some(workload) => format!("{FINGERPRINT_LABEL}={}", workload.fingerprint()),
            None => format!("{ALERT_GROUP_LABEL}={}", self.label),
        }
    }
}

/// The workload a group's alerts name with kube-state-metrics' labels (`namespace` with
/// `deployment`, `statefulset` or `daemonset`), in a namespace whose alerts may open incidents there;
/// else the node a `node` label names, when node incidents have a namespace.
fn workload(message: &Message, settings: &AlertSettings) -> Option<Workload> {
    namespaced(message, settings).or_else(|| node(message, settings))
}

fn node(message: &Message, settings: &AlertSettings) -> Option<Workload> {
    let name = message.common_labels.get("node")?;
    let namespace = settings.node_namespace.clone()?;
    is_dns_label(&name.replace('.', "-")).then(|| Workload {
        namespace,
        kind: "Node".to_owned(),
        name: name.clone(),
    })
}

/// The pod a group's alerts name (`namespace` and `pod`, no workload label), in a namespace whose
/// alerts may open incidents there: the shell finds the workload that owns it.
pub fn pod_of(message: &Message, settings: &AlertSettings) -> Option<(String, String)> {
    let labels = &message.common_labels;
    if namespaced(message, settings).is_some() {
        return None;
    }
    let namespace = labels.get("namespace").filter(|ns| allowed(ns, settings))?;
    let pod = labels
        .get("pod")
        .filter(|p| is_dns_label(&p.replace('.', "-")))?;
    Some((namespace.clone(), pod.clone()))
}

fn namespaced(message: &Message, settings: &AlertSettings) -> Option<Workload> {
    let labels = &message.common_labels;
    let namespace = labels.get("namespace").filter(|ns| allowed(ns, settings))?;
    let (kind, name) = [
        ("deployment", "Deployment"),
        ("statefulset", "StatefulSet"),
        ("daemonset", "DaemonSet"),
    ]
    .into_iter()
    .find_map(|(label, kind)| labels.get(label).map(|name| (kind, name)))?;
    is_dns_label(&name.replace('.', "-")).then(|| Workload {
        namespace: namespace.clone(),
        kind: kind.to_owned(),
        name: name.clone(),
    })
}

/// Whether alerts labelled with namespace `ns` open incidents there.
fn allowed(ns: &str, settings: &AlertSettings) -> bool {
    settings.namespaces.contains(ns) || settings.default_namespace == ns
}

/// The group a message belongs to; `owner` is the workload owning the pod the alerts name, when
/// the shell found one (see [`pod_of`]).
pub fn group(message: &Message, settings: &AlertSettings, owner: Option<Workload>) -> Group {
    let print = fingerprint(&[&message.group_key]);
    let workload = owner.or_else(|| workload(message, settings));
    if let Some(workload) = workload {
        return Group {
            namespace: workload.namespace.clone(),
            base_name: workload.incident_name(),
            label: print,
            workload: Some(workload),
        };
    }
    let namespace = message
        .common_labels
        .get("namespace")
        .filter(|ns| allowed(ns, settings))
        .cloned()
        .unwrap_or_else(|| settings.default_namespace.clone());
    let alertname = message
        .group_labels
        .get("alertname")
        .or_else(|| message.common_labels.get("alertname"))
        .map_or("group", String::as_str);
    let slug: String = alertname
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(40)
        .collect();
    let slug = slug.trim_matches('-');
    let slug = if slug.is_empty() || !is_dns_label(slug) {
        "group"
    } else {
        slug
    };
    Group {
        namespace,
        base_name: format!("alert-{slug}-{}", &print[..8]),
        label: print,
        workload: None,
    }
}

/// What to write for a message.
#[derive(Clone, Debug, PartialEq)]
pub enum Plan {
    /// Nothing changes (a repeat, or resolved alerts of a group with no open incident).
    Nothing,
    /// Create this incident (a full object).
    Create { name: String, body: Value },
    /// Merge-patch this incident, at the version read (the patch carries its resourceVersion).
    Update { name: String, patch: Value },
}

/// What a message means for its group's incidents (`incidents`: those carrying the group's label).
pub fn plan(
    message: &Message,
    heard: &[Heard],
    group: &Group,
    incidents: &[Incident],
    settings: &AlertSettings,
    now: Timestamp,
) -> Plan {
    let firing = heard.iter().any(|h| h.signal.state == AlertState::Firing);
    let mut history: Vec<&Incident> = incidents.iter().collect();
    history.sort_by_key(|i| {
        (
            i.metadata.creation_timestamp.as_ref().map(|t| t.0),
            i.name_any(),
        )
    });
    let target = history
        .last()
        .copied()
        .filter(|latest| match &latest.spec.resolution {
            None => true,
            Some(_) => within(latest, now, settings.reopen_cooldown),
        });
    match target {
        Some(incident) => update(incident, heard, firing),
        None if firing => {
            let name = match history.len() {
                0 => group.base_name.clone(),
                n => format!("{}-{}", group.base_name, n + 1),
            };
            let body = create_body(message, heard, group, &name, settings);
            Plan::Create { name, body }
        }
        None => Plan::Nothing,
    }
}

/// An acknowledgment from a monitor (`by`, with `note`) for the group's open incident, unless
/// someone already acknowledged it.
pub fn acknowledge(incidents: &[Incident], by: &str, note: &str) -> Plan {
    let open = incidents
        .iter()
        .filter(|i| i.spec.resolution.is_none())
        .max_by_key(|i| {
            (
                i.metadata.creation_timestamp.as_ref().map(|t| t.0),
                i.name_any(),
            )
        });
    match open {
        Some(incident) if incident.spec.acknowledgment.is_none() => Plan::Update {
            name: incident.name_any(),
            patch: json!({
                "metadata": {
                    "resourceVersion": incident.metadata.resource_version,
                    "annotations": { ACTOR_ANNOTATION: by },
                },
                "spec": { "acknowledgment": { "by": by, "note": note } },
            }),
        },
        _ => Plan::Nothing,
    }
}

/// Whether the incident resolved less than `cooldown` ago.
fn within(incident: &Incident, now: Timestamp, cooldown: SignedDuration) -> bool {
    incident
        .status
        .as_ref()
        .and_then(|s| s.metrics.as_ref())
        .and_then(|m| m.resolved_at.as_ref())
        .is_none_or(|at| now.duration_since(at.0) < cooldown)
}

/// The incident's alerts with the message's merged in, bounded: the oldest resolved go first.
pub fn merge(current: &[AlertSignal], heard: &[Heard]) -> Vec<AlertSignal> {
    let mut alerts: Vec<AlertSignal> = current.to_vec();
    for h in heard {
        match alerts
            .iter_mut()
            .find(|a| a.fingerprint == h.signal.fingerprint)
        {
            Some(known) if h.signal.labels.contains_key("alertname") => {
                // Still firing: the same firing, whatever start a resend claims (an Events API
                // trigger without a timestamp says "now" each time).
                let start = (known.state == AlertState::Firing
                    && h.signal.state == AlertState::Firing)
                    .then(|| known.starts_at.clone());
                *known = h.signal.clone();
                if let Some(start) = start {
                    known.starts_at = start;
                }
            }
            // A resolution that says only which alert (an Events API resolve): keep what is known.
            Some(known) => {
                known.state = h.signal.state;
                known.ends_at = h.signal.ends_at.clone();
            }
            None => alerts.push(h.signal.clone()),
        }
    }
    while alerts.len() > MAX_ALERTS {
        let oldest = alerts
            .iter()
            .enumerate()
            .min_by_key(|(_, a)| (a.state == AlertState::Firing, a.starts_at.0))
            .map_or(0, |(i, _)| i);
        alerts.remove(oldest);
    }
    alerts
}

fn update(incident: &Incident, heard: &[Heard], firing: bool) -> Plan {
    let alerts = merge(&incident.spec.alerts, heard);
    let ours = incident.labels().get(SOURCE_LABEL).map(String::as_str) == Some(SOURCE_ALERTMANAGER);
    let all_resolved = alerts.iter().all(|a| a.state == AlertState::Resolved);
    let resolved_by_us = incident
        .spec
        .resolution
        .as_ref()
        .is_some_and(|r| r.by == OPERATOR_ACTOR);
    let mut spec = serde_json::Map::new();
    if alerts != incident.spec.alerts {
        spec.insert("alerts".into(), json!(alerts));
    }
    // Signals the detector still sees keep the incident open; the detector resolves it then.
    let detector_quiet =
        incident.spec.signals.is_empty() || incident.annotations().contains_key(CLEARED_ANNOTATION);
    if ours && all_resolved && detector_quiet && incident.spec.resolution.is_none() {
        let names: BTreeSet<&str> = alerts.iter().map(|a| a.name.as_str()).collect();
        let names: Vec<&str> = names.into_iter().collect();
        let resolution = Resolution {
            root_cause: None,
            summary: format!("Every alert resolved: {}", names.join(", ")),
            by: OPERATOR_ACTOR.to_owned(),
        };
        spec.insert("resolution".into(), json!(resolution));
    } else if firing && resolved_by_us {
        // The alert fired again soon after: the same problem, so the same incident, reopened.
        spec.insert("resolution".into(), Value::Null);
    }
    if spec.is_empty() {
        return Plan::Nothing;
    }
    Plan::Update {
        name: incident.name_any(),
        patch: json!({
            "metadata": {
                "resourceVersion": incident.metadata.resource_version,
                "annotations": { ACTOR_ANNOTATION: OPERATOR_ACTOR },
            },
            "spec": spec,
        }),
    }
}

fn create_body(
    message: &Message,
    heard: &[Heard],
    group: &Group,
    name: &str,
    settings: &AlertSettings,
) -> Value {
    let firing: Vec<&Heard> = heard
        .iter()
        .filter(|h| h.signal.state == AlertState::Firing)
        .collect();
    let severity = firing
        .iter()
        .map(|h| {
            h.explicit.unwrap_or_else(|| {
                h.severity_word
                    .as_ref()
                    .and_then(|w| settings.severities.get(&w.to_lowercase()))
                    .copied()
                    .unwrap_or(settings.default_severity)
            })
        })
        .min()
        .unwrap_or(settings.default_severity);
    let first = firing.first().map(|h| &h.signal);
    let alertname = first.map_or("alert", |s| s.name.as_str());
    let summary = message
        .common_annotations
        .get("summary")
        .cloned()
        .or_else(|| first.and_then(|s| s.summary.clone()));
    let title = match (&summary, firing.len()) {
        (Some(summary), _) => format!("{alertname}: {summary}"),
        (None, 1) => format!("{alertname} is firing"),
        (None, n) => format!("{alertname} is firing ({n} alerts)"),
    };
    let mut description = message
        .common_annotations
        .get("description")
        .cloned()
        .unwrap_or_default();
    if !description.is_empty() {
        description.push_str("\n\n");
    }
    description.push_str(&format!(
        "Opened by Alertmanager alert group {}.",
        message.group_key
    ));
    if !message.external_url.is_empty() {
        description.push_str(&format!(" Alertmanager: {}", message.external_url));
    }
    if message.truncated_alerts > 0 {
        description.push_str(&format!(
            " {} more alerts were left out by max_alerts.",
            message.truncated_alerts
        ));
    }
    let mut body = json!({
        "apiVersion": crate::api::metadata::API_VERSION,
        "kind": "Incident",
        "metadata": {
            "name": name,
            "namespace": group.namespace,
            "labels": { SOURCE_LABEL: SOURCE_ALERTMANAGER, ALERT_GROUP_LABEL: group.label },
            "annotations": { ACTOR_ANNOTATION: OPERATOR_ACTOR },
        },
        "spec": {
            "title": cut(title.trim(), MAX_TITLE),
            "severity": severity,
            "description": cut(&description, MAX_DESCRIPTION),
            "alerts": merge(&[], heard),
        },
    });
    // The workload's problem, as the detector names it: whichever sees it first opens the one
    // incident, the other joins it; remediation and runbooks act on the affected workload.
    if let Some(workload) = &group.workload {
        body["metadata"]["labels"][FINGERPRINT_LABEL] = json!(workload.fingerprint());
        let problem = if workload.kind == "Node" {
            "node"
        } else {
            "workload"
        };
        body["metadata"]["labels"][PROBLEM_LABEL] = json!(problem);
        body["spec"]["affected"] = json!([{ "kind": workload.kind, "name": workload.name }]);
    }
    body
}

mod payload;
#[cfg(test)]
mod tests;
