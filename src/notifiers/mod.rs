//! Messages out (notifiers layer): one file per wire format. Each sends a prepared message with the
//! destination's secrets and reports what the receiver answered as a core `Answer`; what that means
//! (sent, retry, give up) is the core's decision. Errors never carry the destination's address.

pub mod pagerduty;
pub mod slack;
pub mod webhook;

use std::time::Duration;

use reqwest::{Response, header::RETRY_AFTER};

use crate::core::notify::delivery::Answer;

/// Longest a receiver may take to answer; a slow one delays only its own channel.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// Most bytes of a refusal's body kept as its reason.
const MAX_REASON: usize = 200;

/// The HTTP client every notifier shares: bounded time per request, no redirects (a receiver that
/// moved is a configuration to fix, not a place to send incident data to).
pub fn client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .connect_timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("incident-operator/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Makes the process's TLS use ring, the crypto provider the rest of the operator already uses.
pub fn install_crypto_provider() {
    // Already installed (by a test or a second call) is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The receiver's answer: its status, Retry-After and a short reason from the body (read by
/// `reason`); or why it could not be reached, without the URL.
pub async fn answer(
    outcome: reqwest::Result<Response>,
    reason: fn(&str) -> Option<String>,
) -> Answer {
    match outcome {
        Ok(response) => {
            let code = response.status();
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let reason = if code.is_success() {
                None
            } else {
                response
                    .text()
                    .await
                    .ok()
                    .and_then(|body| reason(&body))
                    .map(|r| r.chars().take(MAX_REASON).collect())
            };
            Answer::Status {
                code: code.as_u16(),
                retry_after,
                reason,
            }
        }
        Err(error) => Answer::Unreachable(network_error(&error)),
    }
}

/// The first line of a refusal's body (e.g. `invalid_payload`).
pub fn first_line(body: &str) -> Option<String> {
    let line = body.lines().next()?.trim();
    (!line.is_empty()).then(|| line.to_owned())
}

/// What went wrong on the network, without the URL reqwest would put in its message.
fn network_error(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        format!("no answer within {}s", TIMEOUT.as_secs())
    } else if error.is_connect() {
        "the connection failed".to_owned()
    } else if error.is_request() {
        "the request could not be sent".to_owned()
    } else {
        "the exchange failed".to_owned()
    }
}
