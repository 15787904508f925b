//! The responders' board (http layer), under /board on the status page's listener: open incidents
//! by urgency, each linking to its timeline. It shows internal data, so a request needs a bearer
//! token the API server accepts (TokenReview: else 401) whose user may list the namespace's
//! Incidents, or get the one shown (SubjectAccessReview: else 403), as kube-rbac-proxy and the
//! metrics-server do. The token is never logged.

use std::sync::Arc;

use axum::{
    Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use jiff::Timestamp;
use kube::runtime::reflector::ObjectRef;
use tracing::{info, warn};

use super::status_page::StatusPageServer;
use crate::{
    api::Incident,
    cluster::status_page::{Verdict, review},
    core::status_page::board,
};

pub const BOARD_PATH: &str = "/board";
const INCIDENT_PREFIX: &str = "/board/incidents/";

pub fn router() -> Router<Arc<StatusPageServer>> {
    Router::new()
        .route(BOARD_PATH, get(queue))
        .route("/board/incidents/{name}", get(timeline))
}

fn html(body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // Internal: never stored by a browser or a proxy.
            (header::CACHE_CONTROL, "no-store"),
            (header::VARY, "Authorization"),
        ],
        body,
    )
        .into_response()
}

/// Admits the request or answers 401/403/503.
async fn admit(
    server: &StatusPageServer,
    headers: &HeaderMap,
    verb: &str,
    name: Option<&str>,
) -> Result<String, Response> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let unauthorized = |why: &str| {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer realm=\"incident-board\"")],
            format!("{why}: send a Kubernetes bearer token (Authorization: Bearer TOKEN)\n"),
        )
            .into_response()
    };
    let Some(token) = token else {
        return Err(unauthorized("no bearer token"));
    };
    let namespace = server.cache.namespace();
    match review(&server.client, token, namespace, verb, name).await {
        Ok(Verdict::Allowed(user)) => Ok(user),
        Ok(Verdict::Unauthenticated) => {
            Err(unauthorized("the API server did not accept the token"))
        }
        Ok(Verdict::Forbidden(user)) => {
            info!(%user, verb, namespace, "board refused by RBAC");
            Err((
                StatusCode::FORBIDDEN,
                format!(
                    "{user} may not {verb} incidents (incident.dev) in namespace {namespace}\n"
                ),
            )
                .into_response())
        }
        Err(error) => {
            warn!(error = %error, "cannot review the board's token");
            Err((
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "5")],
                "cannot ask the API server about the token; try again\n",
            )
                .into_response())
        }
    }
}

async fn queue(State(server): State<Arc<StatusPageServer>>, headers: HeaderMap) -> Response {
    if let Err(refused) = admit(&server, &headers, "list", None).await {
        return refused;
    }
    let now = Timestamp::now();
    let incidents = server.cache.incidents.state();
    let rows = board::rows(&incidents, now);
    match board::page(
        server.cache.namespace(),
        &rows,
        INCIDENT_PREFIX,
        now,
        server.refresh_seconds,
    ) {
        Ok(body) => html(body),
        Err(message) => {
            warn!(%message, "board");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the board did not render",
            )
                .into_response()
        }
    }
}

async fn timeline(
    State(server): State<Arc<StatusPageServer>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = admit(&server, &headers, "get", Some(&name)).await {
        return refused;
    }
    let reference = ObjectRef::<Incident>::new(&name).within(server.cache.namespace());
    let Some(incident) = server.cache.incidents.get(&reference) else {
        return (StatusCode::NOT_FOUND, format!("no incident {name}\n")).into_response();
    };
    match board::timeline(&incident, BOARD_PATH) {
        Ok(body) => html(body),
        Err(message) => {
            warn!(%message, "board timeline");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the timeline did not render",
            )
                .into_response()
        }
    }
}
