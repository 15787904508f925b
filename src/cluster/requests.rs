//! The operator's own API traffic (cluster layer): a layer on the kube client counts every request
//! by verb and resource, so "no needless reads" is a number on /metrics, not a hope. The API server's
//! own counters cannot tell one client from another.

use axum::http::{Method, Request};
use kube::{Client, Config, client::ClientBuilder};
use prometheus_client::metrics::{counter::Counter, family::Family};
use tower::util::MapRequestLayer;

use crate::{Error, Result, metrics::ApiRequestLabels};

/// A client for `config` whose every request is counted in `requests`.
pub fn counted_client(
    config: Config,
    requests: Family<ApiRequestLabels, Counter>,
) -> Result<Client> {
    let builder = ClientBuilder::try_from(config).map_err(Error::Client)?;
    let layer = MapRequestLayer::new(move |request: Request<kube::client::Body>| {
        let uri = request.uri();
        let (verb, resource) = classify(request.method(), uri.path(), uri.query());
        requests
            .get_or_create(&ApiRequestLabels {
                verb: verb.to_owned(),
                resource,
            })
            .inc();
        request
    });
    Ok(builder.with_layer(&layer).build())
}

/// The Kubernetes verb and resource of a request, from its method and path.
fn classify(method: &Method, path: &str, query: Option<&str>) -> (&'static str, String) {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    // /api/v1/... or /apis/GROUP/VERSION/...; anything else is discovery, /version, /metrics.
    let rest = match segments.as_slice() {
        ["api", _version, rest @ ..] | ["apis", _, _version, rest @ ..] => rest,
        _ => &[][..],
    };
    let rest = match rest {
        ["namespaces", _namespace, inner @ ..] if !inner.is_empty() => inner,
        other => other,
    };
    let (resource, named) = match rest {
        [] => ("-".to_owned(), false),
        [resource] => ((*resource).to_owned(), false),
        [resource, _name] => ((*resource).to_owned(), true),
        [resource, _name, sub, ..] => (format!("{resource}/{sub}"), true),
    };
    let watching = query.is_some_and(|q| {
        q.split('&')
            .any(|pair| pair == "watch=true" || pair == "watch=1")
    });
    let verb = match *method {
        Method::GET if watching => "watch",
        Method::GET if named || resource == "-" => "get",
        Method::GET => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if named => "delete",
        Method::DELETE => "deletecollection",
        _ => "other",
    };
    (verb, resource)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(method: Method, path: &str, query: Option<&str>) -> (&'static str, String) {
        classify(&method, path, query)
    }

    #[test]
    fn requests_are_named_like_the_api_server_names_them() {
        let cases = [
            (
                Method::GET,
                "/apis/apps/v1/namespaces/shop/deployments/web",
                None,
                ("get", "deployments"),
            ),
            (
                Method::GET,
                "/apis/apps/v1/namespaces/shop/deployments",
                None,
                ("list", "deployments"),
            ),
            (
                Method::GET,
                "/apis/apps/v1/deployments",
                Some("watch=true&resourceVersion=1"),
                ("watch", "deployments"),
            ),
            (
                Method::GET,
                "/api/v1/namespaces/shop",
                None,
                ("get", "namespaces"),
            ),
            (
                Method::GET,
                "/api/v1/namespaces",
                Some("limit=1"),
                ("list", "namespaces"),
            ),
            (
                Method::PATCH,
                "/apis/incident.dev/v1alpha1/namespaces/shop/incidents/down/status",
                None,
                ("patch", "incidents/status"),
            ),
            (
                Method::PUT,
                "/apis/coordination.k8s.io/v1/namespaces/ops/leases/io",
                None,
                ("update", "leases"),
            ),
            (
                Method::POST,
                "/apis/events.k8s.io/v1/namespaces/shop/events",
                None,
                ("create", "events"),
            ),
            (
                Method::GET,
                "/api/v1/namespaces/shop/pods/web-1/log",
                Some("previous=true"),
                ("get", "pods/log"),
            ),
            (Method::GET, "/version", None, ("get", "-")),
            (Method::GET, "/apis", None, ("get", "-")),
        ];
        for (method, path, query, (verb, resource)) in cases {
            assert_eq!(
                of(method, path, query),
                (verb, resource.to_owned()),
                "{path}"
            );
        }
    }
}
