//! The alert receiver (http layer): Alertmanager's webhook, and events in the PagerDuty Events
//! API v2 shape from other monitors, on a listener of its own, never the metrics port. A request
//! is authenticated (bearer token or routing key, compared in constant time), bounded (body size,
//! alerts per message), checked (400 with the reason: Alertmanager does not retry a 4xx), and
//! answered 2xx only once the incident change is stored; an API server that cannot take the write
//! gets a 503, which Alertmanager retries.

use std::{sync::Arc, time::Instant};

use axum::{
    Router,
    body::{Bytes, to_bytes},
    extract::{Request, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use jiff::Timestamp;
use kube::Client;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};

use crate::{
    Error, Result,
    api::Incident,
    cluster::alerts as store,
    core::detection::{
        alerts::{self, AlertSettings, Plan},
        events_api,
        group::Workload,
    },
    metrics::{AlertRequestLabels, Metrics},
};

use super::tls::TlsListener;

/// Where Alertmanager posts (its `webhook_configs[].url` path).
pub const ALERTMANAGER_PATH: &str = "/alerts/alertmanager";
/// Where other monitors post events in the PagerDuty Events API v2 shape.
pub const EVENTS_PATH: &str = "/alerts/events";
/// The same, at the Events API's own path, for tools that only let you change the host.
pub const EVENTS_V2_PATH: &str = "/v2/enqueue";
/// Writes of one message tried before answering 503 (each after a fresh read).
const WRITE_ATTEMPTS: usize = 5;

/// What the receiver needs.
pub struct Receiver {
    pub client: Client,
    pub settings: AlertSettings,
    /// The bearer token Alertmanager must present (from `--alerts-token-file`).
    pub token: Vec<u8>,
    pub max_body: usize,
    pub metrics: Arc<Metrics>,
}

pub fn router(receiver: Arc<Receiver>) -> Router {
    Router::new()
        .route(ALERTMANAGER_PATH, post(alertmanager))
        .route(EVENTS_PATH, post(events_api))
        .route(EVENTS_V2_PATH, post(events_api))
        .with_state(receiver)
}

/// Serves until `shutdown` is cancelled, then finishes in-flight requests; over TLS when given
/// an acceptor.
pub async fn serve(
    listener: TcpListener,
    receiver: Arc<Receiver>,
    tls: Option<TlsAcceptor>,
    shutdown: CancellationToken,
) -> Result<()> {
    let app = router(receiver);
    match tls {
        None => axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.clone().cancelled_owned())
            .await
            .map_err(Error::Serve),
        Some(acceptor) => {
            let listener =
                TlsListener::new(listener, acceptor, shutdown.clone()).map_err(Error::Serve)?;
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await
                .map_err(Error::Serve)
        }
    }
}

/// A refusal: the status, the metric's reason, and what the sender is told.
struct Refusal(StatusCode, &'static str, String);

async fn alertmanager(State(receiver): State<Arc<Receiver>>, request: Request) -> Response {
    let started = Instant::now();
    let span = info_span!("alertmanager_webhook");
    let outcome = handle(&receiver, request).instrument(span).await;
    receiver
        .metrics
        .alert_request_duration
        .observe(started.elapsed().as_secs_f64());
    let (result, reason, response) = match outcome {
        Ok((changed, body)) => {
            let result = if changed { "accepted" } else { "duplicate" };
            (result, "", json_response(StatusCode::OK, &body))
        }
        Err(Refusal(status, reason, message)) => {
            let body = json!({ "status": "rejected", "reason": reason, "message": message });
            ("rejected", reason, json_response(status, &body))
        }
    };
    receiver
        .metrics
        .alert_requests
        .get_or_create(&AlertRequestLabels {
            source: "alertmanager".to_owned(),
            result: result.to_owned(),
            reason: reason.to_owned(),
        })
        .inc();
    response
}

async fn handle(
    receiver: &Receiver,
    request: Request,
) -> std::result::Result<(bool, serde_json::Value), Refusal> {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !same(presented.trim().as_bytes(), &receiver.token) {
        return Err(Refusal(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid bearer token is required (http_config.authorization.credentials_file)".into(),
        ));
    }
    let bytes = body(receiver, request).await?;
    let message: alerts::Message = serde_json::from_slice(&bytes).map_err(|e| {
        Refusal(
            StatusCode::BAD_REQUEST,
            "invalid",
            format!("not an Alertmanager webhook message: {e}"),
        )
    })?;
    store_alerts(receiver, &message).await
}

/// The body, within the receiver's limit (413 beyond).
async fn body(receiver: &Receiver, request: Request) -> std::result::Result<Bytes, Refusal> {
    to_bytes(request.into_body(), receiver.max_body)
        .await
        .map_err(|_| {
            Refusal(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("the body is over {} bytes", receiver.max_body),
            )
        })
}

/// Checks a message and stores what it means for its group's incident.
async fn store_alerts(
    receiver: &Receiver,
    message: &alerts::Message,
) -> std::result::Result<(bool, serde_json::Value), Refusal> {
    let heard = alerts::check(message, &receiver.settings)
        .map_err(|why| Refusal(StatusCode::BAD_REQUEST, "invalid", why))?;
    let owner = match alerts::pod_of(message, &receiver.settings) {
        None => None,
        Some((namespace, pod)) => store::owner_of_pod(&receiver.client, &namespace, &pod)
            .await
            .map_err(unavailable)?
            .map(|(kind, name)| Workload {
                namespace,
                kind,
                name,
            }),
    };
    let group = alerts::group(message, &receiver.settings, owner);
    let now = Timestamp::now();
    store(receiver, &group, |incidents| {
        alerts::plan(message, &heard, &group, incidents, &receiver.settings, now)
    })
    .await
}

/// Reads the group's incidents, plans, writes; again on a conflict. 200's body once stored.
async fn store(
    receiver: &Receiver,
    group: &alerts::Group,
    plan_for: impl Fn(&[Incident]) -> Plan,
) -> std::result::Result<(bool, serde_json::Value), Refusal> {
    for _ in 0..WRITE_ATTEMPTS {
        let incidents = store::of_group(&receiver.client, &group.namespace, &group.selector())
            .await
            .map_err(unavailable)?;
        let plan = plan_for(&incidents);
        let (written, name) = match &plan {
            Plan::Nothing => {
                let name = incidents.last().and_then(|i| i.metadata.name.clone());
                return Ok((false, stored("unchanged", &group.namespace, name)));
            }
            Plan::Create { name, body } => (
                store::create(&receiver.client, &group.namespace, body).await,
                name,
            ),
            Plan::Update { name, patch } => (
                store::update(&receiver.client, &group.namespace, name, patch).await,
                name,
            ),
        };
        match written {
            Ok(()) => {
                let change = if matches!(plan, Plan::Create { .. }) {
                    "created"
                } else {
                    "updated"
                };
                info!(namespace = %group.namespace, incident = %name, change, "stored alerts");
                return Ok((true, stored(change, &group.namespace, Some(name.clone()))));
            }
            // Someone else wrote in between (another replica, a person): read again and redo.
            Err(Error::Conflict) => continue,
            Err(Error::Kube(kube::Error::Api(status))) if status.code == 422 => {
                return Err(Refusal(
                    StatusCode::BAD_REQUEST,
                    "invalid",
                    format!("the incident was refused: {}", status.message),
                ));
            }
            Err(error) => return Err(unavailable(error)),
        }
    }
    Err(unavailable(Error::Conflict))
}

/// An event in the PagerDuty Events API v2 shape: answered like that API (202 with the dedup key;
/// 400 "invalid event" with the errors), the `routing_key` being the credential.
async fn events_api(State(receiver): State<Arc<Receiver>>, request: Request) -> Response {
    let started = Instant::now();
    let outcome = handle_event(&receiver, request)
        .instrument(info_span!("events_api"))
        .await;
    receiver
        .metrics
        .alert_request_duration
        .observe(started.elapsed().as_secs_f64());
    let (result, reason, response) = match outcome {
        Ok((changed, key)) => {
            let body =
                json!({ "status": "success", "message": "Event processed", "dedup_key": key });
            let result = if changed { "accepted" } else { "duplicate" };
            (result, "", json_response(StatusCode::ACCEPTED, &body))
        }
        Err(Refusal(status, reason, message)) => {
            let body =
                json!({ "status": "invalid event", "message": message, "errors": [message] });
            ("rejected", reason, json_response(status, &body))
        }
    };
    receiver
        .metrics
        .alert_requests
        .get_or_create(&AlertRequestLabels {
            source: "events-api".to_owned(),
            result: result.to_owned(),
            reason: reason.to_owned(),
        })
        .inc();
    response
}

async fn handle_event(
    receiver: &Receiver,
    request: Request,
) -> std::result::Result<(bool, String), Refusal> {
    let bytes = body(receiver, request).await?;
    let event: events_api::Event = serde_json::from_slice(&bytes).map_err(|e| {
        Refusal(
            StatusCode::BAD_REQUEST,
            "invalid",
            format!("not an Events API v2 event: {e}"),
        )
    })?;
    if !same(event.routing_key.trim().as_bytes(), &receiver.token) {
        return Err(Refusal(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "routing_key is not the receiver's token".into(),
        ));
    }
    let key = events_api::dedup_key(&event).unwrap_or_default();
    let request = events_api::read(&event, Timestamp::now())
        .map_err(|why| Refusal(StatusCode::BAD_REQUEST, "invalid", why))?;
    let (changed, _) = match request {
        events_api::Request::Alert(message) => store_alerts(receiver, &message).await?,
        events_api::Request::Acknowledge { message, by } => {
            let group = alerts::group(&message, &receiver.settings, None);
            let note = format!("acknowledged in {by} (dedup_key {key})");
            store(receiver, &group, |incidents| {
                alerts::acknowledge(incidents, &by, &note)
            })
            .await?
        }
    };
    Ok((changed, key))
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    let headers = [(header::CONTENT_TYPE, "application/json")];
    (status, headers, body.to_string()).into_response()
}

fn stored(change: &str, namespace: &str, name: Option<String>) -> serde_json::Value {
    json!({ "status": "stored", "change": change, "namespace": namespace, "incident": name })
}

/// The API server could not take the change: Alertmanager retries a 5xx.
fn unavailable(error: Error) -> Refusal {
    warn!(%error, "could not store alerts; answering 503 so that Alertmanager retries");
    Refusal(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "the incident could not be stored; retry".into(),
    )
}

/// Constant-time equality: how long a comparison takes says nothing about the token.
fn same(presented: &[u8], token: &[u8]) -> bool {
    if token.is_empty() {
        return false;
    }
    let mut difference = presented.len() ^ token.len();
    for (i, byte) in token.iter().enumerate() {
        difference |= usize::from(byte ^ presented.get(i).copied().unwrap_or(!byte));
    }
    difference == 0
}

#[cfg(test)]
mod tests {
    use super::same;

    #[test]
    fn tokens_compare_whole_and_never_empty() {
        assert!(same(b"s3cret-token", b"s3cret-token"));
        assert!(!same(b"s3cret-toke", b"s3cret-token"));
        assert!(!same(b"s3cret-tokenX", b"s3cret-token"));
        assert!(!same(b"S3cret-token", b"s3cret-token"));
        assert!(!same(b"", b""), "no token configured never authenticates");
    }
}
