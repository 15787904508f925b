//! Requests in (http layer): the operator's HTTP endpoints, liveness, readiness and Prometheus
//! metrics; every replica serves them, leader or not. `alerts` is the alert receiver, on its own
//! listener; `status_page` the public status page and `board` the responders' board, on another.

pub mod alerts;
pub mod board;
pub mod status_page;
pub mod tls;

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use axum::{
    Router,
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
    routing::get,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{Error, Result, metrics::Metrics};

/// What the endpoints report on; shared with the rest of the operator.
#[derive(Default)]
pub struct Health {
    ready: AtomicBool,
    /// Why the trust policies are not in force (empty: they are, or none are expected).
    policy_problems: std::sync::Mutex<Vec<String>>,
    pub metrics: Arc<Metrics>,
}

impl Health {
    /// Marks the operator ready to serve (the API server has answered).
    pub fn set_ready(&self) {
        // Gauge first: whoever sees /readyz answer 200 also sees the metric at 1.
        self.metrics.apiserver_ready.set(1);
        self.ready.store(true, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// Records why the admission policies are not in force; readiness fails while any is.
    pub fn set_policy_problems(&self, problems: Vec<String>) {
        self.metrics
            .admission_policy_problems
            .set(i64::try_from(problems.len()).unwrap_or(i64::MAX));
        if let Ok(mut held) = self.policy_problems.lock() {
            *held = problems;
        }
    }

    fn policy_problems(&self) -> Vec<String> {
        self.policy_problems
            .lock()
            .map(|held| held.clone())
            .unwrap_or_default()
    }
}

pub fn router(health: Arc<Health>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(health)
}

async fn readyz(State(health): State<Arc<Health>>) -> impl IntoResponse {
    let problems = health.policy_problems();
    if !health.is_ready() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "waiting for the Kubernetes API server".to_owned(),
        )
    } else if !problems.is_empty() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("admission policies not in force: {}", problems.join("; ")),
        )
    } else {
        (StatusCode::OK, "ok".to_owned())
    }
}

async fn metrics(State(health): State<Arc<Health>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, Metrics::CONTENT_TYPE)],
        health.metrics.render(),
    )
}

/// Serves until `shutdown` is cancelled, then finishes in-flight requests.
pub async fn serve(
    listener: TcpListener,
    health: Arc<Health>,
    shutdown: CancellationToken,
) -> Result<()> {
    axum::serve(listener, router(health))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
        .map_err(Error::Serve)
}

/// The status page's listener: the public page, the board, and the guard around both.
pub fn status_page_router(server: Arc<status_page::StatusPageServer>) -> Router {
    status_page::routes()
        .merge(board::router())
        .layer(axum::middleware::from_fn(status_page::guard))
        .with_state(server)
}

/// Serves the status page until `shutdown` is cancelled, then finishes in-flight requests.
pub async fn serve_status_page(
    listener: TcpListener,
    server: Arc<status_page::StatusPageServer>,
    shutdown: CancellationToken,
) -> Result<()> {
    axum::serve(listener, status_page_router(server))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
        .map_err(Error::Serve)
}
