//! The public status page (http layer), on a listener of its own: HTML, Atlassian Statuspage v2
//! JSON and an Atom feed, computed on every replica from the watch cache (leader or not), with
//! ETag/Last-Modified revalidation, a strict CSP, no-sniff, frame-ancestors and no cookies; a
//! `tracing` span per request. The responders' board shares the listener under /board
//! ([`super::board`]).

use std::{
    collections::HashMap,
    hash::{DefaultHasher, Hash, Hasher},
    sync::{Arc, Mutex},
    time::Instant,
};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::{Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
    routing::get,
};
use jiff::{Timestamp, civil::DateTime, tz::TimeZone};
use kube::Client;
use tracing::{Instrument, field, info_span, warn};

use crate::{
    api::{Incident, StatusPage},
    cluster::status_page::PageCache,
    core::{
        status_page::{atom, html, snapshot::Snapshot, state::MaintenanceStatus, statuspage},
        text::fingerprint,
    },
};

/// What the status page's handlers share.
pub struct StatusPageServer {
    pub cache: PageCache,
    /// For the board's TokenReviews and SubjectAccessReviews.
    pub client: Client,
    pub refresh_seconds: u32,
    /// Each public body as last rendered; see [`Rendered`].
    rendered: Mutex<HashMap<Kind, Rendered>>,
}

impl StatusPageServer {
    pub fn new(cache: PageCache, client: Client, refresh_seconds: u32) -> Self {
        Self {
            cache,
            client,
            refresh_seconds,
            rendered: Mutex::new(HashMap::new()),
        }
    }
}

/// A public body, reused for the rest of the second it was made in while the StatusPage and the
/// Incidents stay as they were: a thousand incidents in history are then computed once a second,
/// not once a request, and a change shows at once.
#[derive(Clone)]
struct Rendered {
    key: (u64, i64),
    content_type: &'static str,
    body: Bytes,
    etag: String,
    modified: Timestamp,
}

/// What the page is computed from, as a number that changes with it: the StatusPage's and every
/// Incident's resourceVersion (summed, so the cache's order does not matter).
fn data_key(page: &StatusPage, incidents: &[Arc<Incident>]) -> u64 {
    let one = |uid: &Option<String>, version: &Option<String>| {
        let mut hasher = DefaultHasher::new();
        (uid, version).hash(&mut hasher);
        hasher.finish()
    };
    incidents.iter().fold(
        one(&page.metadata.uid, &page.metadata.resource_version)
            .wrapping_add(incidents.len() as u64),
        |sum, i| sum.wrapping_add(one(&i.metadata.uid, &i.metadata.resource_version)),
    )
}

/// Every response: no script, no plugin, no framing, styles only from this origin.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; \
                   form-action 'none'; frame-ancestors 'none'";

const JSON: &str = "application/json; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";

/// The public routes; [`super::status_page_router`] adds the board and the guard.
pub fn routes() -> Router<Arc<StatusPageServer>> {
    Router::new()
        .route(
            "/",
            get(|s: State<_>, h: HeaderMap| public(s, h, Kind::Html)),
        )
        .route(
            "/index.html",
            get(|s: State<_>, h: HeaderMap| public(s, h, Kind::Html)),
        )
        .route(html::STYLESHEET_PATH, get(stylesheet))
        .route(
            "/history.atom",
            get(|s: State<_>, h: HeaderMap| public(s, h, Kind::Atom)),
        )
        .route(
            "/api/v2/summary.json",
            get(|s: State<_>, h: HeaderMap| public(s, h, Kind::Summary)),
        )
        .route(
            "/api/v2/status.json",
            get(|s: State<_>, h: HeaderMap| public(s, h, Kind::Status)),
        )
        .route(
            "/api/v2/components.json",
            get(|s: State<_>, h: HeaderMap| public(s, h, Kind::Components)),
        )
        .route(
            "/api/v2/incidents.json",
            get(|s: State<_>, h: HeaderMap| public(s, h, Kind::Incidents)),
        )
        .route(
            "/api/v2/incidents/unresolved.json",
            get(|s: State<_>, h: HeaderMap| public(s, h, Kind::Unresolved)),
        )
        .route(
            "/api/v2/scheduled-maintenances.json",
            get(|s: State<_>, h: HeaderMap| public(s, h, Kind::Maintenances(None))),
        )
        .route(
            "/api/v2/scheduled-maintenances/upcoming.json",
            get(|s: State<_>, h: HeaderMap| {
                public(s, h, Kind::Maintenances(Some(MaintenanceStatus::Scheduled)))
            }),
        )
        .route(
            "/api/v2/scheduled-maintenances/active.json",
            get(|s: State<_>, h: HeaderMap| {
                public(
                    s,
                    h,
                    Kind::Maintenances(Some(MaintenanceStatus::InProgress)),
                )
            }),
        )
}

/// One span per request, and the security headers on every response.
pub async fn guard(request: Request, next: Next) -> Response {
    let span = info_span!(
        "status_page_request",
        method = %request.method(),
        path = %request.uri().path(),
        status = field::Empty,
        elapsed_ms = field::Empty,
    );
    let started = Instant::now();
    async move {
        let mut response = next.run(request).await;
        let span = tracing::Span::current();
        span.record("status", response.status().as_u16());
        span.record("elapsed_ms", started.elapsed().as_millis() as u64);
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        // Nothing here sets a cookie; a handler that did would be a bug.
        headers.remove(header::SET_COOKIE);
        response
    }
    .instrument(span)
    .await
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Html,
    Atom,
    Summary,
    Status,
    Components,
    Incidents,
    Unresolved,
    Maintenances(Option<MaintenanceStatus>),
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        html::STYLESHEET,
    )
        .into_response()
}

/// A 503 while the StatusPage does not exist.
pub(super) fn missing(server: &StatusPageServer) -> Response {
    let message = format!(
        "the StatusPage {} does not exist (yet)",
        server.cache.reference()
    );
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "10")],
        message,
    )
        .into_response()
}

async fn public(
    State(server): State<Arc<StatusPageServer>>,
    headers: HeaderMap,
    kind: Kind,
) -> Response {
    let Some(page) = server.cache.page() else {
        return missing(&server);
    };
    let incidents = server.cache.incidents.state();
    let now = Timestamp::now();
    let key = (data_key(&page, &incidents), now.as_second());
    let cached = server
        .rendered
        .lock()
        .ok()
        .and_then(|r| r.get(&kind).filter(|r| r.key == key).cloned());
    let rendered = match cached {
        Some(rendered) => rendered,
        None => {
            let snapshot = Snapshot::new(&page, &incidents, now);
            let (content_type, body) = match render(&snapshot, kind, server.refresh_seconds) {
                Ok(rendered) => rendered,
                Err(message) => {
                    warn!(%message, "status page");
                    return (StatusCode::INTERNAL_SERVER_ERROR, "the page did not render")
                        .into_response();
                }
            };
            let rendered = Rendered {
                key,
                content_type,
                etag: format!("\"{}\"", fingerprint(&[&body])),
                body: Bytes::from(body),
                modified: snapshot.updated_at,
            };
            if let Ok(mut all) = server.rendered.lock() {
                all.insert(kind, rendered.clone());
            }
            rendered
        }
    };
    conditional(&headers, rendered)
}

/// One public body of the snapshot.
fn render(
    snapshot: &Snapshot,
    kind: Kind,
    refresh_seconds: u32,
) -> Result<(&'static str, String), String> {
    Ok(match kind {
        Kind::Html => (HTML, html::page(snapshot, refresh_seconds)?),
        Kind::Atom => (atom::CONTENT_TYPE, atom::feed(snapshot)),
        Kind::Summary => (JSON, statuspage::summary(snapshot).to_string()),
        Kind::Status => (JSON, statuspage::status_only(snapshot).to_string()),
        Kind::Components => (JSON, statuspage::components_only(snapshot).to_string()),
        Kind::Incidents => (JSON, statuspage::incidents(snapshot).to_string()),
        Kind::Unresolved => (JSON, statuspage::unresolved(snapshot).to_string()),
        Kind::Maintenances(which) => (
            JSON,
            statuspage::scheduled_maintenances(snapshot, which).to_string(),
        ),
    })
}

/// The body with its validators, or 304 when the client's copy is current (RFC 9110 13.2.2:
/// If-None-Match first, If-Modified-Since only without it).
fn conditional(request: &HeaderMap, rendered: Rendered) -> Response {
    let Rendered {
        content_type,
        body,
        etag,
        modified,
        ..
    } = rendered;
    let last_modified = http_date(modified);
    let fresh = match request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    {
        Some(tags) => tags
            .split(',')
            .map(str::trim)
            .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag),
        None => request
            .get(header::IF_MODIFIED_SINCE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_http_date)
            .is_some_and(|since| modified.as_second() <= since.as_second()),
    };
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response = Response::new(Body::from(body));
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        response
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    if let Ok(value) = HeaderValue::from_str(&last_modified) {
        headers.insert(header::LAST_MODIFIED, value);
    }
    // Stored, but revalidated on every use: a refresh always sees the latest update.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Widgets on other sites read the JSON, as they read Statuspage's.
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}

const HTTP_DATE: &str = "%a, %d %b %Y %H:%M:%S GMT";

fn http_date(time: Timestamp) -> String {
    time.to_zoned(TimeZone::UTC).strftime(HTTP_DATE).to_string()
}

fn parse_http_date(text: &str) -> Option<Timestamp> {
    DateTime::strptime(HTTP_DATE, text)
        .ok()?
        .to_zoned(TimeZone::UTC)
        .ok()
        .map(|z| z.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn rendered(body: &str, at: Timestamp) -> Rendered {
        Rendered {
            key: (0, 0),
            content_type: JSON,
            body: Bytes::from(body.to_owned()),
            etag: format!("\"{}\"", fingerprint(&[body])),
            modified: at,
        }
    }

    #[test]
    fn validators_answer_304_only_for_the_current_copy() {
        let at = Timestamp::from_second(1_800_000_000).unwrap();
        let first = conditional(&HeaderMap::new(), rendered("a", at));
        assert_eq!(first.status(), StatusCode::OK);
        let etag = first.headers()[header::ETAG].to_str().unwrap().to_owned();
        let date = first.headers()[header::LAST_MODIFIED]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(date, "Fri, 15 Jan 2027 08:00:00 GMT");
        let same = conditional(
            &headers(&[(header::IF_NONE_MATCH, &etag)]),
            rendered("a", at),
        );
        assert_eq!(same.status(), StatusCode::NOT_MODIFIED);
        let changed = conditional(
            &headers(&[(header::IF_NONE_MATCH, &etag)]),
            rendered("b", at),
        );
        assert_eq!(changed.status(), StatusCode::OK);
        let since = conditional(
            &headers(&[(header::IF_MODIFIED_SINCE, &date)]),
            rendered("b", at),
        );
        assert_eq!(since.status(), StatusCode::NOT_MODIFIED);
        let later = at + jiff::SignedDuration::from_secs(1);
        let newer = conditional(
            &headers(&[(header::IF_MODIFIED_SINCE, &date)]),
            rendered("b", later),
        );
        assert_eq!(newer.status(), StatusCode::OK);
        assert_eq!(parse_http_date(&date), Some(at));
    }
}
