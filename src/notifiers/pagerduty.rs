//! PagerDuty Events API v2 (notifiers layer): a JSON POST to the events endpoint; the routing key is
//! in the body, so the body is never logged. PagerDuty answers 202 when it accepted the event, 400
//! with `message` and `errors` when it is invalid, 429 when rate-limited.

use reqwest::{Client, Url, header::CONTENT_TYPE};
use serde_json::Value;

use super::answer;
use crate::core::notify::delivery::Answer;

/// The events endpoint, if `text` is one: http or https with a host.
pub fn url(text: &str) -> Result<Url, String> {
    match Url::parse(text.trim()) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Ok(url),
        _ => Err("the PagerDuty events URL is not an http or https URL".to_owned()),
    }
}

/// Sends one event.
pub async fn send(client: &Client, url: Url, body: Vec<u8>) -> Answer {
    let request = client
        .post(url)
        .header(CONTENT_TYPE, "application/json")
        .body(body);
    answer(request.send().await, reason).await
}

/// PagerDuty's reason for refusing an event: its `message` and `errors`, else the first line.
fn reason(body: &str) -> Option<String> {
    let Ok(value) = serde_json::from_str::<Value>(body) else {
        return super::first_line(body);
    };
    let message = value
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("refused");
    let errors: Vec<&str> = value
        .get("errors")
        .and_then(Value::as_array)
        .map(|e| e.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    Some(if errors.is_empty() {
        message.to_owned()
    } else {
        format!("{message}: {}", errors.join("; "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pagerdutys_refusal_reads_as_its_message_and_errors() {
        assert_eq!(
            reason(r#"{"status":"invalid event","message":"Event object is invalid","errors":["Length of 'routing_key' is incorrect (should be 32 characters)"]}"#),
            Some("Event object is invalid: Length of 'routing_key' is incorrect (should be 32 characters)".to_owned())
        );
        assert_eq!(
            reason(r#"{"message":"Too many requests"}"#),
            Some("Too many requests".to_owned())
        );
        assert_eq!(
            reason("Bad gateway\n<html>"),
            Some("Bad gateway".to_owned())
        );
        assert!(url("ftp://x").is_err());
        assert!(url("https://events.eu.pagerduty.com/v2/enqueue").is_ok());
    }
}
