//! Slack (notifiers layer): incoming webhooks (a POST answered `ok`) and the Web API for bots
//! (`chat.postMessage`, `chat.update`, with the bot token as a bearer). The Web API answers HTTP 200
//! with `{"ok": false, "error": "channel_not_found"}` when it refuses, and 429 with Retry-After when
//! rate-limited. Tokens and webhook URLs are never logged.

use reqwest::{Client, Url, header::CONTENT_TYPE};
use serde_json::Value;

use super::{answer, first_line};
use crate::core::notify::{delivery::Answer, slack::retryable};

/// The Web API's default base URL.
pub const API_URL: &str = "https://slack.com/api";

/// An incoming webhook's or the Web API's URL, if `text` is one: http or https with a host.
pub fn url(text: &str) -> Result<Url, String> {
    match Url::parse(text.trim()) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Ok(url),
        _ => Err("the Slack URL is not an http or https URL".to_owned()),
    }
}

/// Posts one message to an incoming webhook.
pub async fn webhook(client: &Client, url: Url, body: &Value) -> Answer {
    let request = client
        .post(url)
        .header(CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(body).unwrap_or_default());
    answer(request.send().await, first_line).await
}

/// Calls a Web API method; its answer when Slack said `ok`, else what stands for the refusal.
pub async fn call(
    client: &Client,
    base: &str,
    method: &str,
    token: &str,
    body: &Value,
) -> Result<Value, Answer> {
    let url = url(&format!("{}/{method}", base.trim_end_matches('/'))).map_err(Answer::Unusable)?;
    let response = client
        .post(url)
        .header(CONTENT_TYPE, "application/json; charset=utf-8")
        .bearer_auth(token)
        .body(serde_json::to_vec(body).unwrap_or_default())
        .send()
        .await;
    let response = match response {
        Ok(response) if response.status().is_success() => response,
        other => return Err(answer(other, first_line).await),
    };
    let reply: Value = match response
        .bytes()
        .await
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
    {
        Some(reply) => reply,
        None => {
            return Err(Answer::Rejected {
                reason: format!("{method} answered something that is not JSON"),
                retryable: true,
            });
        }
    };
    if reply.get("ok").and_then(Value::as_bool) == Some(true) {
        return Ok(reply);
    }
    let error = reply
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or("unknown_error")
        .to_owned();
    Err(Answer::Rejected {
        retryable: retryable(&error),
        reason: format!("{method}: {error}"),
    })
}
