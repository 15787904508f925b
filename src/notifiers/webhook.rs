//! The generic webhook (notifiers layer): a JSON POST signed per Standard Webhooks 1.0 — headers
//! `webhook-id` (the outbox key, the same on every resend), `webhook-timestamp` (unix seconds) and
//! `webhook-signature: v1,<base64 HMAC-SHA256(key, id.timestamp.body)>` when a signing key is given.

use base64::{Engine, engine::general_purpose::STANDARD};
use reqwest::{Client, Url, header::CONTENT_TYPE};

use super::{answer, first_line};
use crate::core::notify::delivery::Answer;

/// The prefix of a Standard Webhooks secret.
const SECRET_PREFIX: &str = "whsec_";

/// The signing key a `whsec_<base64>` secret (the prefix is optional) stands for.
pub fn signing_key(secret: &str) -> Result<Vec<u8>, String> {
    let encoded = secret.trim();
    let encoded = encoded.strip_prefix(SECRET_PREFIX).unwrap_or(encoded);
    match STANDARD.decode(encoded) {
        Ok(key) if !key.is_empty() => Ok(key),
        _ => Err("the signing key is not whsec_ followed by base64".to_owned()),
    }
}

/// The `webhook-signature` value for a message.
pub fn signature(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    let mut signed = Vec::with_capacity(id.len() + body.len() + 24);
    signed.extend_from_slice(id.as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(timestamp.to_string().as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(body);
    let tag = ring::hmac::sign(&key, &signed);
    format!("v1,{}", STANDARD.encode(tag.as_ref()))
}

/// A receiver's URL, if it is one: http or https with a host.
pub fn url(text: &str) -> Result<Url, String> {
    match Url::parse(text.trim()) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Ok(url),
        _ => Err("the webhook URL is not an http or https URL".to_owned()),
    }
}

/// POSTs `body` to the receiver as message `id` sent at `timestamp`.
pub async fn send(
    client: &Client,
    url: Url,
    key: Option<&[u8]>,
    id: &str,
    timestamp: i64,
    body: Vec<u8>,
) -> Answer {
    let mut request = client
        .post(url)
        .header(CONTENT_TYPE, "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp.to_string());
    if let Some(key) = key {
        request = request.header("webhook-signature", signature(key, id, timestamp, &body));
    }
    answer(request.body(body).send().await, first_line).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_follows_the_standard_webhooks_example() {
        // The specification's own example (standard-webhooks spec, "Signature scheme").
        let key = signing_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("a key");
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            signature(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn keys_and_urls_are_checked() {
        assert!(signing_key("whsec_!!!").is_err());
        assert!(signing_key("").is_err());
        assert_eq!(
            signing_key("AQID"),
            Ok(vec![1, 2, 3]),
            "the prefix is optional"
        );
        assert!(url("http://127.0.0.1:9000/hook").is_ok());
        assert!(url("https://hooks.example/abc").is_ok());
        assert!(url("ftp://example/x").is_err());
        assert!(url("not a url").is_err());
    }
}
