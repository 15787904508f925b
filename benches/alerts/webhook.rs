//! Talking to the receiver as Alertmanager does, and part 1: webhook request → Incident stored, for
//! a new group (`created`) and for a repeat of an existing one (`unchanged`).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub use crate::burst::{Order, burst};
use crate::{
    Stats,
    common::{Result, ms},
    observer::Observer,
    operator::{Operator, TOKEN},
};

/// Longest wait for the watch to show an incident the receiver said it stored.
const SEEN_WITHIN: Duration = Duration::from_secs(30);

/// Posts webhook messages to the operator's receiver over kept-alive connections (a pool: one
/// connection per concurrent request, as Alertmanager's HTTP client keeps them).
pub struct Poster {
    client: reqwest::Client,
    url: String,
}

/// The receiver's answer to one POST.
pub struct Answer {
    pub status: u16,
    /// `change` of a 200 (`created`, `updated`, `unchanged`), else the refusal's `reason`.
    pub word: String,
    /// The incident a 200 names; the refusal's message otherwise.
    pub detail: String,
    /// From just before the request to the end of the answer.
    pub elapsed: Duration,
}

impl Poster {
    pub fn new(operator: &Operator) -> Self {
        Self {
            client: reqwest::Client::new(),
            url: operator.webhook_url(),
        }
    }

    /// POSTs `body` with the bearer token; an error only when no answer came.
    pub async fn post(&self, body: &str) -> Result<Answer> {
        let start = Instant::now();
        let response = self
            .client
            .post(&self.url)
            .bearer_auth(TOKEN)
            .header("Content-Type", "application/json")
            .body(body.to_owned())
            .timeout(Duration::from_secs(60))
            .send()
            .await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        let elapsed = start.elapsed();
        let answer: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        let field = |key: &str| answer[key].as_str().unwrap_or_default().to_owned();
        let (word, detail) = if status == 200 {
            (field("change"), field("incident"))
        } else {
            (field("reason"), field("message"))
        };
        Ok(Answer {
            status,
            word,
            detail,
            elapsed,
        })
    }
}

/// One alert of a message: its fingerprint and the `instance` label that tells it apart.
pub struct AlertSpec {
    pub fingerprint: String,
    pub instance: String,
}

/// An Alertmanager webhook message (version 4) for group `alertname` (grouped by alertname),
/// firing, carrying `alerts`; `starts_at` is every alert's startsAt (keep it for a resend).
pub fn message(alertname: &str, alerts: &[AlertSpec], starts_at: &str) -> String {
    let labels = |a: &AlertSpec| {
        json!({ "alertname": alertname, "severity": "warning", "service": "checkout",
                "instance": a.instance })
    };
    let mut common =
        json!({ "alertname": alertname, "severity": "warning", "service": "checkout" });
    if let [only] = alerts {
        common = labels(only);
    }
    let annotations = json!({ "summary": format!("{alertname}: checkout answers 5xx") });
    json!({
        "version": "4", "groupKey": format!("{{}}:{{alertname=\"{alertname}\"}}"),
        "status": "firing", "receiver": "operator", "truncatedAlerts": 0,
        "externalURL": "http://alertmanager.bench.invalid",
        "groupLabels": { "alertname": alertname },
        "commonLabels": common, "commonAnnotations": annotations,
        "alerts": alerts.iter().map(|a| json!({
            "status": "firing", "labels": labels(a), "annotations": annotations,
            "startsAt": starts_at, "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus.bench.invalid/graph", "fingerprint": a.fingerprint,
        })).collect::<Vec<_>>(),
    })
    .to_string()
}

/// A message of group `alertname` with its one alert.
fn single(alertname: &str, starts_at: &str) -> String {
    let alert = AlertSpec {
        fingerprint: format!("{:016x}", fnv(alertname)),
        instance: "host-0".to_owned(),
    };
    message(alertname, &[alert], starts_at)
}

/// FNV-1a: a stable 64-bit fingerprint of a name.
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// POSTs `body` and insists on 200 with `change`.
async fn expect(poster: &Poster, body: &str, change: &str) -> Result<Answer> {
    let answer = poster.post(body).await?;
    if answer.status != 200 || answer.word != change {
        return Err(format!(
            "expected 200 {change}, got {} {}: {}",
            answer.status, answer.word, answer.detail
        )
        .into());
    }
    Ok(answer)
}

/// What part 1 measured (ms).
pub struct Singles {
    created: Vec<f64>,
    created_seen: Vec<f64>,
    unchanged: Vec<f64>,
    /// The receiver's own mean handling time (its histogram) and the requests it covers.
    handling_created: (f64, f64),
    handling_unchanged: (f64, f64),
}

pub async fn singles(
    poster: &Poster,
    operator: &Operator,
    observer: &Observer,
    n: usize,
) -> Result<Singles> {
    let starts_at = jiff::Timestamp::now().to_string();
    expect(poster, &single("BenchWarmUp", &starts_at), "created").await?;
    let mut created = Vec::with_capacity(n);
    let mut created_seen = Vec::with_capacity(n);
    let before = operator.handling().await?;
    for i in 0..n {
        let body = single(&format!("BenchNew{i}"), &starts_at);
        let start = Instant::now();
        let answer = expect(poster, &body, "created").await?;
        created.push(ms(answer.elapsed));
        // Wait for the watch before the next POST, so that each request has the receiver alone.
        let name = answer.detail.clone();
        let seen = observer
            .wait(&format!("incident {name}"), SEEN_WITHIN, |t| {
                t.get(&name).map(|s| s.added)
            })
            .await?;
        created_seen.push(ms(seen.duration_since(start)));
        if (i + 1) % 50 == 0 || i + 1 == n {
            eprintln!("webhook: {}/{n} new groups", i + 1);
        }
    }
    let handling_created = operator.handling().await?.since(&before);

    // The existing group: created, resent once, then left a second for the incident controller's
    // first status writes (Alertmanager resends a group only every group_interval anyway).
    let repeat = single("BenchRepeat", &starts_at);
    let name = expect(poster, &repeat, "created").await?.detail;
    observer
        .wait(&format!("incident {name}"), SEEN_WITHIN, |t| {
            t.get(&name).map(|_| ())
        })
        .await?;
    expect(poster, &repeat, "unchanged").await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut unchanged = Vec::with_capacity(n);
    let before = operator.handling().await?;
    for _ in 0..n {
        unchanged.push(ms(expect(poster, &repeat, "unchanged").await?.elapsed));
    }
    let handling_unchanged = operator.handling().await?.since(&before);
    eprintln!("webhook: {n} repeats of {name}");
    Ok(Singles {
        created,
        created_seen,
        unchanged,
        handling_created,
        handling_unchanged,
    })
}

impl Singles {
    pub fn report(&self, n: usize) {
        println!(
            "\n1. webhook request → Incident stored, {n} requests each, one after another (ms)\n"
        );
        println!("| | p50 | p90 | p99 | max | min |\n|---|---|---|---|---|---|");
        let row = |what: &str, samples: &[f64]| println!("| {what} | {} |", Stats::of(samples));
        row("new group → 200 `created`", &self.created);
        row("existing group → 200 `unchanged`", &self.unchanged);
        row(
            "for context: new group, request → the watch sees the Incident",
            &self.created_seen,
        );
        for (what, (count, mean)) in [
            ("created", self.handling_created),
            ("unchanged", self.handling_unchanged),
        ] {
            println!(
                "receiver's own time per request, `{what}` (its duration histogram, mean over {count}): {mean:.1} ms"
            );
        }
    }
}
