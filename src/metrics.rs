//! Prometheus metrics of the operator, encoded in the OpenMetrics text format that Prometheus scrapes.

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{family::Family, gauge::Gauge},
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
}

/// Every metric the operator exports, registered under the `incident_operator` prefix.
pub struct Metrics {
    registry: Registry,
    /// 1 once the Kubernetes API server has answered, 0 before.
    pub apiserver_ready: Gauge,
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
        let apiserver_ready = Gauge::default();
        registry.register(
            "apiserver_ready",
            "1 once the Kubernetes API server has answered",
            apiserver_ready.clone(),
        );
        Self {
            registry,
            apiserver_ready,
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
        let text = metrics.render();
        assert!(
            text.contains("incident_operator_build_info{version=\""),
            "{text}"
        );
        assert!(
            text.contains("incident_operator_apiserver_ready 1"),
            "{text}"
        );
        assert!(text.trim_end().ends_with("# EOF"), "{text}");
    }
}
