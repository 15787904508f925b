//! Part 3: error rate flipped → Prometheus's alert firing → Alertmanager has it → the operator's
//! Incident exists, through the real programs, over ROUNDS rounds (a new alert name each).

use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde_json::Value;

use crate::{
    Settings, Stats,
    common::{Result, ms},
    monitoring::{App, Process, alertname},
    observer::Observer,
    operator::{Operator, Scratch},
};

/// How often the bench asks Prometheus and Alertmanager (the watch stamps its own events).
const POLL: Duration = Duration::from_millis(20);
/// Quiet time before each flip (plus a random phase): longer than the rule's 5 s rate window plus a
/// scrape.
const QUIET: Duration = Duration::from_secs(7);
/// Longest wait for any one stage.
const STAGE: Duration = Duration::from_secs(60);

/// One round's times (ms). Prometheus's and Alertmanager's own timestamps are on the same
/// machine's wall clock as the bench's.
pub struct Round {
    /// Bench flips the errors on → the rule's `activeAt` (the evaluation that fired).
    prometheus: f64,
    /// `activeAt` → Alertmanager's `updatedAt` of the alert (when it received it).
    alertmanager: f64,
    /// Alertmanager received it → the watch sees the Incident (group_wait is in here).
    operator: f64,
    /// Flip → the watch sees the Incident (monotonic clock).
    total: f64,
    /// Flip → Prometheus's /api/v1/alerts shows it firing, → Alertmanager's /api/v2/alerts has it
    /// (both polled every POLL).
    polled: (f64, f64),
    /// The receiver's own time for the requests it answered in the round (count, mean ms).
    handling: (f64, f64),
    /// Errors back to 0 → the watch sees the Incident resolved.
    resolved: f64,
}

pub async fn rounds(
    scratch: &Scratch,
    operator: &Operator,
    observer: &Observer,
    settings: &Settings,
) -> Result<Vec<Round>> {
    let app = App::start().await?;
    let am = Process::alertmanager(scratch, &operator.webhook_url()).await?;
    let prometheus = Process::prometheus(scratch, app.addr, am.addr, settings.rounds).await?;
    eprintln!(
        "pipeline: Prometheus on {}, Alertmanager on {}, metrics on {}",
        prometheus.addr, am.addr, app.addr
    );
    let mut rounds = Vec::with_capacity(settings.rounds);
    for round in 1..=settings.rounds {
        let name = alertname(round);
        app.set_errors(0);
        app.set_round(round);
        until("Prometheus to scrape bench_round", || {
            scraped(&prometheus, round)
        })
        .await?;
        // Then a random phase of Prometheus's 1 s scrape and evaluation cycle, as a real spike has.
        tokio::time::sleep(QUIET + phase()).await;
        if firing(&prometheus, &name).await?.is_some() {
            return Err(format!("{name} fires before the errors did").into());
        }

        let before = operator.handling().await?;
        let (wall, flipped) = (Timestamp::now(), Instant::now());
        app.set_errors(50);
        let waiting = format!("the Incident of {name}");
        let (prom, in_am, incident) = tokio::join!(
            async {
                let active_at = until("Prometheus to fire", || firing(&prometheus, &name)).await?;
                Result::Ok((Instant::now(), active_at))
            },
            async {
                let updated_at =
                    until("Alertmanager to have the alert", || has(&am, &name)).await?;
                Result::Ok((Instant::now(), updated_at))
            },
            observer.wait(&waiting, STAGE, |t| {
                t.iter()
                    .find(|(_, s)| s.first_alert == name)
                    .map(|(n, s)| (n.clone(), s.added))
            }),
        );
        let ((prom, active_at), (in_am, updated_at), (incident, seen)) = (prom?, in_am?, incident?);
        let handling = operator.handling().await?.since(&before);
        let after_flip = |at: &str| -> Result<f64> {
            let at: Timestamp = at.parse()?;
            Ok(at.duration_since(wall).as_secs_f64() * 1000.0)
        };
        let (active_at, received) = (after_flip(&active_at)?, after_flip(&updated_at)?);
        let total = ms(seen.duration_since(flipped));

        app.set_errors(0);
        let cleared = Instant::now();
        let resolved = observer
            .wait(&format!("{incident} resolved"), STAGE * 2, |t| {
                t.get(&incident)?.resolved
            })
            .await?;
        let measured = Round {
            prometheus: active_at,
            alertmanager: received - active_at,
            operator: total - received,
            total,
            polled: (
                ms(prom.duration_since(flipped)),
                ms(in_am.duration_since(flipped)),
            ),
            handling,
            resolved: ms(resolved.duration_since(cleared)),
        };
        eprintln!(
            "pipeline round {round}: {name} → {incident}: Prometheus {:.0} ms, Alertmanager +{:.0} ms, Incident +{:.0} ms; resolved {:.0} ms after the errors stopped",
            measured.prometheus, measured.alertmanager, measured.operator, measured.resolved
        );
        rounds.push(measured);
    }
    Ok(rounds)
}

/// Calls `check` every POLL until it finds something, or fails naming `what` after STAGE.
async fn until<T, Fut>(what: &str, check: impl Fn() -> Fut) -> Result<T>
where
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + STAGE;
    loop {
        if let Some(found) = check().await? {
            return Ok(found);
        }
        if Instant::now() >= deadline {
            return Err(format!("timed out after {STAGE:?} waiting for {what}").into());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// 0 to 1 s, from the wall clock's nanoseconds (no need for a better random source here).
fn phase() -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    Duration::from_nanos(u64::from(nanos.wrapping_mul(2_654_435_761) % 1_000_000_000))
}

/// Whether Prometheus's latest `bench_round` is `round`.
async fn scraped(prometheus: &Process, round: usize) -> Result<Option<()>> {
    let answer = prometheus.json("/api/v1/query?query=bench_round").await?;
    let value = answer["data"]["result"][0]["value"][1].as_str();
    Ok((value == Some(round.to_string().as_str())).then_some(()))
}

/// Alertmanager's `updatedAt` of alert `name` (when it received it) once its API has it.
async fn has(am: &Process, name: &str) -> Result<Option<String>> {
    let alerts = am.json("/api/v2/alerts").await?;
    Ok(named(&alerts, name)
        .next()
        .map(|a| a["updatedAt"].as_str().unwrap_or_default().to_owned()))
}

/// The `activeAt` of alert `name` when Prometheus has it firing.
async fn firing(prometheus: &Process, name: &str) -> Result<Option<String>> {
    let answer = prometheus.json("/api/v1/alerts").await?;
    Ok(named(&answer["data"]["alerts"], name)
        .find(|a| a["state"] == "firing")
        .map(|a| a["activeAt"].as_str().unwrap_or_default().to_owned()))
}

/// The alerts in a JSON list whose `alertname` label is `name`.
fn named<'a>(alerts: &'a Value, name: &'a str) -> impl Iterator<Item = &'a Value> {
    alerts
        .as_array()
        .into_iter()
        .flatten()
        .filter(move |a| a["labels"]["alertname"] == name)
}

pub fn report(rounds: &[Round]) {
    println!(
        "\n3. error rate flipped → Incident, through Prometheus and Alertmanager, {} rounds (ms)\n",
        rounds.len()
    );
    println!(
        "| round | flip → Prometheus fires (`activeAt`) | → Alertmanager received it (`updatedAt`) | → Incident (watch) | total | for context: flip → seen firing / in Alertmanager (polled) | receiver's own time (requests) | errors stopped → Incident resolved |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let row = |label: String, r: &Round| {
        println!(
            "| {label} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} / {:.0} | {:.1} ({}) | {:.0} |",
            r.prometheus,
            r.alertmanager,
            r.operator,
            r.total,
            r.polled.0,
            r.polled.1,
            r.handling.1,
            r.handling.0,
            r.resolved
        );
    };
    for (i, r) in rounds.iter().enumerate() {
        row((i + 1).to_string(), r);
    }
    let median = |of: fn(&Round) -> f64| Stats::of(&rounds.iter().map(of).collect::<Vec<_>>()).p50;
    let medians = Round {
        prometheus: median(|r| r.prometheus),
        alertmanager: median(|r| r.alertmanager),
        operator: median(|r| r.operator),
        total: median(|r| r.total),
        polled: (median(|r| r.polled.0), median(|r| r.polled.1)),
        handling: (median(|r| r.handling.0), median(|r| r.handling.1)),
        resolved: median(|r| r.resolved),
    };
    row("**median**".to_owned(), &medians);
}
