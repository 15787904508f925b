//! A burst of breakage (the memory part's bad deploy) as the benchmark's watches saw it.

use std::{
    collections::{BTreeSet, HashMap},
    time::Instant,
};

use crate::{
    observer::Seen,
    stats::{Stats, signed_ms},
};

/// A burst of breakage as the benchmark's watches saw it.
pub struct Burst {
    /// Seconds after the break: first and last pod signal, first and last incident carrying it.
    pub signals: (f64, f64),
    pub incidents: (f64, f64),
    /// Per Deployment, its first pod signal → its incident carrying CrashLoopBackOff.
    pub latency: Stats,
}

impl Burst {
    pub fn of(seen: &Seen, broken: &BTreeSet<String>, start: Instant) -> Self {
        let span = |times: &HashMap<String, Instant>| {
            let offsets: Vec<f64> = broken
                .iter()
                .filter_map(|b| times.get(b))
                .map(|t| signed_ms(start, *t) / 1000.0)
                .collect();
            (
                offsets.iter().copied().fold(f64::INFINITY, f64::min),
                offsets.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            )
        };
        let mut latency: Vec<f64> = broken
            .iter()
            .filter_map(|b| Some(signed_ms(*seen.signal.get(b)?, *seen.alarmed.get(b)?)))
            .collect();
        Self {
            signals: span(&seen.signal),
            incidents: span(&seen.alarmed),
            latency: Stats::of(&mut latency),
        }
    }
}
