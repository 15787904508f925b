//! Summary statistics of the benchmark's samples, in milliseconds.

use std::time::Instant;

use crate::common::ms;

pub struct Stats {
    median: f64,
    p90: f64,
    p99: f64,
    max: f64,
    min: f64,
}

impl Stats {
    pub fn of(samples: &mut [f64]) -> Self {
        samples.sort_by(f64::total_cmp);
        // Nearest rank: the smallest sample with at least p of them at or below it.
        let rank = |p: f64| -> f64 {
            let n = samples.len();
            if n == 0 {
                return f64::NAN;
            }
            let index = ((p * n as f64).ceil() as usize).clamp(1, n) - 1;
            samples[index]
        };
        let median = match samples.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => samples[n / 2],
            n => (samples[n / 2 - 1] + samples[n / 2]) / 2.0,
        };
        Self {
            median,
            p90: rank(0.90),
            p99: rank(0.99),
            max: samples.last().copied().unwrap_or(f64::NAN),
            min: samples.first().copied().unwrap_or(f64::NAN),
        }
    }
}

impl Stats {
    pub fn median(&self) -> f64 {
        self.median
    }

    pub fn max(&self) -> f64 {
        self.max
    }
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.0} | {:.0} | {:.0} | {:.0} | {:.0}",
            self.median, self.p90, self.p99, self.max, self.min
        )
    }
}

/// Milliseconds from `from` to `to`, negative when `to` came first.
pub fn signed_ms(from: Instant, to: Instant) -> f64 {
    match to.checked_duration_since(from) {
        Some(d) => ms(d),
        None => -ms(from.duration_since(to)),
    }
}
