//! From what the receiver got and what the incidents' status says to the figures: each page matched
//! to its incident and level, its latency from the level's deadline, the duplicates and the order.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use crate::LEVELS;

/// One measured incident, as the bench opened it and the operator recorded its climb.
pub struct Opened {
    pub name: String,
    /// Wall clock just before the create call (Unix seconds, the clock of `time.time()`).
    pub wall: f64,
    /// `status.escalation.startedAt` (whole seconds: detection, the creationTimestamp).
    pub started: f64,
    pub steps: i32,
    pub exhausted: bool,
}

/// What the pages say.
pub struct Analysis {
    /// Per level k: receivedAt − (startedAt + k·wait), ms.
    pub from_deadline: Vec<Vec<f64>>,
    /// Level 0: receivedAt − the wall clock before the create call, ms.
    pub from_create: Vec<f64>,
    pub pages: usize,
    /// Deliveries whose `webhook-id` had arrived before (a resend of the same page).
    pub duplicate_ids: usize,
    /// (incident, person) paged again under a new id (a step taken twice).
    pub repeated_people: usize,
    /// Incidents whose pages were exactly one per level, arriving in level order.
    pub in_order: usize,
    pub exhausted: usize,
    pub problems: Vec<String>,
}

impl Analysis {
    pub fn of(received: &[Value], opened: &[Opened], wait: f64) -> Self {
        let mut out = Analysis {
            from_deadline: vec![Vec::new(); LEVELS.len()],
            from_create: Vec::new(),
            pages: 0,
            duplicate_ids: 0,
            repeated_people: 0,
            in_order: 0,
            exhausted: opened
                .iter()
                .filter(|o| o.exhausted && o.steps == LEVELS.len() as i32)
                .count(),
            problems: Vec::new(),
        };
        let by_name: HashMap<&str, &Opened> = opened.iter().map(|o| (o.name.as_str(), o)).collect();
        let mut ids = HashSet::new();
        // Per incident, the levels of its first deliveries, in order of arrival.
        let mut arrivals: HashMap<&str, Vec<usize>> = HashMap::new();
        for record in received {
            let body = &record["body"];
            let Some(incident) = body["incident"]["name"]
                .as_str()
                .and_then(|n| by_name.get(n))
            else {
                continue; // the warm-up
            };
            out.pages += 1;
            if record["verified"] != true || record["answered"] != 200 {
                out.problems.push(format!(
                    "{}: a page not verified or not answered 200: {record}",
                    incident.name
                ));
                continue;
            }
            if !ids.insert(record["id"].as_str().unwrap_or_default().to_owned()) {
                out.duplicate_ids += 1;
                continue;
            }
            let person = body["recipient"]["name"].as_str().unwrap_or_default();
            let Some(level) = LEVELS.iter().position(|(_, p)| *p == person) else {
                out.problems.push(format!(
                    "{}: a page for nobody on the chain: {body}",
                    incident.name
                ));
                continue;
            };
            let seen = arrivals.entry(incident.name.as_str()).or_default();
            if seen.contains(&level) {
                out.repeated_people += 1;
                continue;
            }
            seen.push(level);
            let Some(at) = record["receivedAt"].as_f64() else {
                out.problems.push(format!("no receivedAt in {record}"));
                continue;
            };
            // The climb's deadline for level k, truncated to the second as the operator does.
            let deadline = (incident.started + level as f64 * wait).floor();
            out.from_deadline[level].push((at - deadline) * 1000.0);
            if level == 0 {
                out.from_create.push((at - incident.wall) * 1000.0);
            }
        }
        let chain: Vec<usize> = (0..LEVELS.len()).collect();
        for incident in opened {
            let got = arrivals.get(incident.name.as_str());
            if got == Some(&chain) {
                out.in_order += 1;
            } else {
                out.problems
                    .push(format!("{}: levels arrived as {got:?}", incident.name));
            }
        }
        out
    }
}

/// Nearest-rank percentiles (as the other benchmarks report them), in milliseconds.
pub struct Stats {
    pub count: usize,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub min: f64,
}

impl Stats {
    pub fn of(samples: &[f64]) -> Self {
        let mut samples = samples.to_vec();
        samples.sort_by(f64::total_cmp);
        let n = samples.len();
        let rank = |p: f64| -> f64 {
            if n == 0 {
                return f64::NAN;
            }
            let index = ((p * n as f64).ceil() as usize).clamp(1, n) - 1;
            samples[index]
        };
        Self {
            count: n,
            p50: rank(0.50),
            p90: rank(0.90),
            p99: rank(0.99),
            max: samples.last().copied().unwrap_or(f64::NAN),
            min: samples.first().copied().unwrap_or(f64::NAN),
        }
    }
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0}",
            self.count, self.p50, self.p90, self.p99, self.max, self.min
        )
    }
}
