//! Prometheus metrics of the operator (support), encoded in the OpenMetrics text format that
//! Prometheus scrapes.

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpenLabels {
    pub severity: String,
    pub phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SeverityLabels {
    pub severity: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OverdueLabels {
    pub severity: String,
    /// Which clock ran out: acknowledge, update or postmortem.
    pub clock: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabels {
    pub kind: String,
    /// succeeded, failed or skipped.
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// Which controller failed: `incident` or `runbook`.
    pub controller: String,
    pub error: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabels {
    /// The channel's type: webhook.
    pub channel_type: String,
    pub event: String,
    /// sent, retry or failed.
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChannelTypeLabels {
    pub channel_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiRequestLabels {
    /// get, list, watch, create, update, patch, delete (or the HTTP method for other paths).
    pub verb: String,
    /// The resource (with its subresource: incidents/status), or "-" for non-resource paths.
    pub resource: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResourceLabels {
    /// The watched resource, plural: pods, replicasets, deployments, incidents, nodes, ...
    pub resource: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AlertRequestLabels {
    /// The monitor's format: alertmanager.
    pub source: String,
    /// accepted (something stored), duplicate (nothing to change), or rejected.
    pub result: String,
    /// Why it was rejected (unauthorized, too_large, invalid, unavailable); empty otherwise.
    pub reason: String,
}

/// Response-time buckets: 1m to a day, matching the severities' clocks.
const RESPONSE_BUCKETS: [f64; 10] = [
    60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14_400.0, 28_800.0, 86_400.0, 172_800.0,
];

fn action_histogram() -> Histogram {
    Histogram::new([1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0])
}

/// 50 ms (a quick receiver) to an hour (a receiver down for a while).
fn delivery_histogram() -> Histogram {
    Histogram::new([
        0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0, 300.0, 3600.0,
    ])
}

fn response_histogram() -> Histogram {
    Histogram::new(RESPONSE_BUCKETS)
}

/// Every metric the operator exports, registered under the `incident_operator` prefix.
pub struct Metrics {
    registry: Registry,
    /// 1 once the Kubernetes API server has answered, 0 before.
    pub apiserver_ready: Gauge,
    /// 1 while this process leads (and always with leader election off), else 0.
    pub leader: Gauge,
    /// Expected admission policies not in force (missing, unbound, or only warning).
    pub admission_policy_problems: Gauge,
    /// Incidents not yet closed, by severity and phase.
    pub incidents_open: Family<OpenLabels, Gauge>,
    pub time_to_acknowledge: Family<SeverityLabels, Histogram, fn() -> Histogram>,
    pub time_to_resolve: Family<SeverityLabels, Histogram, fn() -> Histogram>,
    /// Deadlines missed (acknowledge, update, post-mortem).
    pub overdue: Family<OverdueLabels, Counter>,
    pub reconciliations: Counter,
    pub reconcile_errors: Family<ErrorLabels, Counter>,
    /// Remediation actions finished, by kind and result.
    pub actions: Family<ActionLabels, Counter>,
    /// From an action's start to its rollout's end.
    pub action_duration: Family<KindLabels, Histogram, fn() -> Histogram>,
    /// Detection passes completed (each looks at every watched workload).
    pub detection_passes: Counter,
    /// How long a pass took, writes included: the part of detection latency that is ours.
    pub detection_pass_duration: Histogram,
    /// Objects the detector keeps a record of, by resource: what its memory grows with.
    pub detection_records: Family<ResourceLabels, Gauge>,
    /// Delivery attempts, by channel type, event and result.
    pub deliveries: Family<DeliveryLabels, Counter>,
    /// From the transition to its message delivered.
    pub delivery_latency: Family<ChannelTypeLabels, Histogram, fn() -> Histogram>,
    /// Messages waiting to be delivered, over the incidents this process knows.
    pub notifications_pending: Gauge,
    /// Requests to the alert receiver, by source, result and reason.
    pub alert_requests: Family<AlertRequestLabels, Counter>,
    /// How long the alert receiver took to answer, the incident write included.
    pub alert_request_duration: Histogram,
    /// Requests this process sent to the API server, by verb and resource.
    pub api_requests: Family<ApiRequestLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("incident_operator");
        let build_info = Family::<BuildLabels, Gauge>::default();
        build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_owned(),
            })
            .set(1);
        registry.register(
            "build_info",
            "Version of the running operator (always 1)",
            build_info,
        );
        let metrics = Self {
            apiserver_ready: Gauge::default(),
            leader: Gauge::default(),
            admission_policy_problems: Gauge::default(),
            incidents_open: Family::default(),
            time_to_acknowledge: Family::new_with_constructor(response_histogram),
            time_to_resolve: Family::new_with_constructor(response_histogram),
            overdue: Family::default(),
            reconciliations: Counter::default(),
            reconcile_errors: Family::default(),
            actions: Family::default(),
            action_duration: Family::new_with_constructor(action_histogram),
            detection_passes: Counter::default(),
            // 1 ms (a quiet pass over thousands of pods) to 30 s (a burst of new incidents).
            detection_pass_duration: Histogram::new([
                0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0,
            ]),
            detection_records: Family::default(),
            deliveries: Family::default(),
            delivery_latency: Family::new_with_constructor(delivery_histogram),
            notifications_pending: Gauge::default(),
            alert_requests: Family::default(),
            alert_request_duration: Histogram::new([
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
            ]),
            api_requests: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "apiserver_ready",
            "1 once the Kubernetes API server has answered",
            metrics.apiserver_ready.clone(),
        );
        registry.register(
            "admission_policy_problems",
            "Expected ValidatingAdmissionPolicies not in force: missing, unbound or only warning (0 when none are expected)",
            metrics.admission_policy_problems.clone(),
        );
        registry.register(
            "leader",
            "1 while this process is the leader and runs the controllers (always 1 without leader election)",
            metrics.leader.clone(),
        );
        registry.register(
            "incidents_open",
            "Incidents not yet closed, by severity and phase",
            metrics.incidents_open.clone(),
        );
        registry.register(
            "time_to_acknowledge_seconds",
            "Time from detection to acknowledgment",
            metrics.time_to_acknowledge.clone(),
        );
        registry.register(
            "time_to_resolve_seconds",
            "Time from detection to resolution",
            metrics.time_to_resolve.clone(),
        );
        registry.register(
            "overdue",
            "Deadlines missed: acknowledge (response time), update, post-mortem",
            metrics.overdue.clone(),
        );
        registry.register(
            "reconciliations",
            "Incident reconciliations completed",
            metrics.reconciliations.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Reconciliations that failed, by controller (incident, runbook) and error kind",
            metrics.reconcile_errors.clone(),
        );
        registry.register(
            "actions",
            "Remediation actions finished, by kind and result",
            metrics.actions.clone(),
        );
        registry.register(
            "action_duration_seconds",
            "Time from a remediation action's start to its verified rollout",
            metrics.action_duration.clone(),
        );
        registry.register(
            "detection_passes",
            "Detection passes completed",
            metrics.detection_passes.clone(),
        );
        registry.register(
            "detection_pass_duration_seconds",
            "Time a detection pass took, API writes included",
            metrics.detection_pass_duration.clone(),
        );
        registry.register(
            "detection_records",
            "Objects the detector keeps a record of, by resource",
            metrics.detection_records.clone(),
        );
        registry.register(
            "notification_deliveries",
            "Notification delivery attempts, by channel type, event and result (sent, retry, failed)",
            metrics.deliveries.clone(),
        );
        registry.register(
            "notification_delivery_seconds",
            "Time from an incident's transition to its message delivered",
            metrics.delivery_latency.clone(),
        );
        registry.register(
            "notifications_pending",
            "Messages waiting to be delivered",
            metrics.notifications_pending.clone(),
        );
        registry.register(
            "alert_requests",
            "Requests to the alert receiver, by source, result (accepted, duplicate, rejected) and reason",
            metrics.alert_requests.clone(),
        );
        registry.register(
            "alert_request_duration_seconds",
            "Time the alert receiver took to answer, the incident write included",
            metrics.alert_request_duration.clone(),
        );
        registry.register(
            "api_requests",
            "Requests this process sent to the Kubernetes API server, by verb and resource",
            metrics.api_requests.clone(),
        );
        Self {
            registry,
            ..metrics
        }
    }
}

impl Metrics {
    /// Content type of [`Metrics::render`]'s output.
    pub const CONTENT_TYPE: &'static str =
        "application/openmetrics-text; version=1.0.0; charset=utf-8";

    /// The current values in the OpenMetrics text format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_lists_build_info_and_readiness() {
        let metrics = Metrics::default();
        metrics.apiserver_ready.set(1);
        metrics
            .time_to_acknowledge
            .get_or_create(&SeverityLabels {
                severity: "P1".into(),
            })
            .observe(120.0);
        let text = metrics.render();
        assert!(
            text.contains("incident_operator_build_info{version=\""),
            "{text}"
        );
        assert!(
            text.contains("incident_operator_apiserver_ready 1"),
            "{text}"
        );
        assert!(
            text.contains("incident_operator_time_to_acknowledge_seconds_count{severity=\"P1\"} 1"),
            "{text}"
        );
        assert!(text.trim_end().ends_with("# EOF"), "{text}");
    }
}
