//! Part 2: a burst of alerts, one alert per POST, several in flight; the answers, the incidents
//! that result, and how long until a watch saw them all with all their alerts.

use std::{
    collections::{BTreeMap, HashMap},
    time::{Duration, Instant},
};

use futures::{StreamExt, stream};
use incident_operator::api::Incident;
use kube::{Api, Client, api::ListParams};

use crate::{
    Settings, Stats,
    common::{Result, ms},
    cpu::Cpu,
    observer::Observer,
    webhook::{AlertSpec, Answer, Poster, message},
};

/// Attempts per POST: a 503 is retried after RETRY_AFTER, as Alertmanager retries a 5xx.
const ATTEMPTS: usize = 5;
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// Longest wait for the watch to show the burst's incidents complete.
const SETTLE: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// POST i goes to group i mod groups: the requests in flight hit different groups.
    Spread,
    /// Each group's alerts back to back: its POSTs are in flight together and race.
    Clustered,
}

impl Order {
    fn name(self) -> &'static str {
        match self {
            Order::Spread => "spread",
            Order::Clustered => "clustered",
        }
    }
}

/// One POST of the burst: the first answer, the attempts, the last answer.
struct Sent {
    first: Answer,
    attempts: usize,
    last_status: u16,
}

pub struct Burst {
    order: Order,
    sent: Vec<Sent>,
    /// Burst start → every POST answered (retries included).
    answered: Duration,
    /// Burst start → the watch saw the last incident, and the last one complete (all alerts).
    all_seen: Option<f64>,
    all_complete: Option<f64>,
    /// From the API afterwards: incidents whose alerts are this burst's, how many carry every
    /// alert of their group, and groups with more than one incident.
    incidents: usize,
    complete: usize,
    doubled: usize,
    /// CPU time used from the start until the watch saw the burst complete.
    cpu_used: String,
}

pub async fn burst(
    client: &Client,
    ns: &str,
    poster: &Poster,
    observer: &Observer,
    cpu: &Cpu,
    settings: &Settings,
    order: Order,
) -> Result<Burst> {
    let (groups, total) = (settings.burst_groups, settings.burst_alerts);
    let per_group = total / groups;
    let prefix = match order {
        Order::Spread => "BurstSpread",
        Order::Clustered => "BurstClustered",
    };
    let starts_at = jiff::Timestamp::now().to_string();
    let bodies: Vec<String> = (0..total)
        .map(|i| {
            let (group, k) = match order {
                Order::Spread => (i % groups, i / groups),
                Order::Clustered => (i / per_group, i % per_group),
            };
            let alert = AlertSpec {
                fingerprint: format!("{:04x}{group:06x}{k:06x}", order as u16),
                instance: format!("host-{k}"),
            };
            message(&format!("{prefix}{group:04}"), &[alert], &starts_at)
        })
        .collect();
    eprintln!(
        "burst {}: {total} POSTs, {} in flight",
        order.name(),
        settings.concurrency
    );
    let (start, cpu_before) = (Instant::now(), cpu.sample());
    let sent: Vec<Sent> = stream::iter(bodies.iter())
        .map(|body| send(poster, body))
        .buffer_unordered(settings.concurrency)
        .collect::<Vec<Result<Sent>>>()
        .await
        .into_iter()
        .collect::<Result<_>>()?;
    let answered = start.elapsed();

    let complete_within = |t: &HashMap<String, crate::observer::Seen>| {
        let mine: Vec<_> = t
            .values()
            .filter(|s| s.first_alert.starts_with(prefix))
            .collect();
        (mine.len() >= groups && mine.iter().all(|s| s.grew.len() >= per_group)).then_some(())
    };
    if let Err(error) = observer
        .wait("the burst's incidents", SETTLE, complete_within)
        .await
    {
        eprintln!("burst {}: {error}; reporting what there is", order.name());
    }
    let cpu_used = cpu.sample().since(&cpu_before);
    let seen = observer.with_alert_prefix(prefix);
    let latest = |times: Vec<Option<Instant>>| -> Option<f64> {
        let times: Option<Vec<Instant>> = times.into_iter().collect();
        let last = times?.into_iter().max()?;
        Some(ms(last.duration_since(start)))
    };
    let (all_seen, all_complete) = if seen.len() >= groups {
        (
            latest(seen.iter().map(|(_, s)| Some(s.added)).collect()),
            latest(
                seen.iter()
                    .map(|(_, s)| s.grew.get(per_group - 1).copied())
                    .collect(),
            ),
        )
    } else {
        (None, None)
    };

    let api: Api<Incident> = Api::namespaced(client.clone(), ns);
    let listed = api.list(&ListParams::default()).await?.items;
    let mut by_group: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for incident in &listed {
        if let Some(first) = incident.spec.alerts.first()
            && first.name.starts_with(prefix)
        {
            let group = by_group.entry(first.name.clone()).or_default();
            group.push(incident.spec.alerts.len());
        }
    }
    Ok(Burst {
        order,
        sent,
        answered,
        all_seen,
        all_complete,
        incidents: by_group.values().map(Vec::len).sum(),
        complete: by_group
            .values()
            .flatten()
            .filter(|n| **n == per_group)
            .count(),
        doubled: by_group.values().filter(|g| g.len() > 1).count(),
        cpu_used,
    })
}

/// POSTs `body`, again after RETRY_AFTER on a 5xx (at most ATTEMPTS times).
async fn send(poster: &Poster, body: &str) -> Result<Sent> {
    let first = poster.post(body).await?;
    let (mut attempts, mut last_status) = (1, first.status);
    while last_status >= 500 && attempts < ATTEMPTS {
        tokio::time::sleep(RETRY_AFTER).await;
        last_status = poster.post(body).await?.status;
        attempts += 1;
    }
    Ok(Sent {
        first,
        attempts,
        last_status,
    })
}

impl Burst {
    pub fn report(&self, settings: &Settings) {
        let (groups, total) = (settings.burst_groups, settings.burst_alerts);
        println!(
            "\n2. burst `{}`: {total} alerts in {groups} groups, one alert per POST, {} in flight\n",
            self.order.name(),
            settings.concurrency
        );
        let mut answers: BTreeMap<String, usize> = BTreeMap::new();
        for sent in &self.sent {
            let key = match sent.first.status {
                200 => format!("200 {}", sent.first.word),
                status => format!("{status} {} ({})", sent.first.word, sent.first.detail),
            };
            *answers.entry(key).or_default() += 1;
        }
        let answers: Vec<String> = answers.iter().map(|(k, n)| format!("{k}: {n}")).collect();
        let retried: Vec<&Sent> = self.sent.iter().filter(|s| s.attempts > 1).collect();
        let failed = self.sent.iter().filter(|s| s.last_status != 200).count();
        let first: Vec<f64> = self.sent.iter().map(|s| ms(s.first.elapsed)).collect();
        let stats = Stats::of(&first);
        let at =
            |v: Option<f64>| v.map_or("never (see above)".to_owned(), |v| format!("{v:.0} ms"));
        println!("| | |\n|---|---|");
        println!("| first answers | {} |", answers.join(", "));
        println!(
            "| retried after a 5xx (1 s later) | {} POSTs, {} retries in all; {failed} still not 200 after {ATTEMPTS} attempts |",
            retried.len(),
            retried.iter().map(|s| s.attempts - 1).sum::<usize>(),
        );
        println!(
            "| per POST, first attempt (ms): p50 / p90 / p99 / max | {:.0} / {:.0} / {:.0} / {:.0} |",
            stats.p50, stats.p90, stats.p99, stats.max
        );
        println!(
            "| burst start → every POST answered | {:.0} ms ({:.0} POSTs/s) |",
            ms(self.answered),
            self.sent.len() as f64 / self.answered.as_secs_f64()
        );
        println!(
            "| incidents | {} ({} with all {} alerts; {} groups with more than one) |",
            self.incidents,
            self.complete,
            total / groups,
            self.doubled
        );
        println!(
            "| burst start → the watch saw all {groups} incidents | {} |",
            at(self.all_seen)
        );
        println!(
            "| burst start → the watch saw all {total} alerts on them | {} |",
            at(self.all_complete)
        );
        println!("| CPU used meanwhile | {} |", self.cpu_used);
    }
}
