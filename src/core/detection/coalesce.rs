//! When the detector runs a pass (core layer): on the leading edge. The first change after a quiet
//! window is evaluated at once; the changes that follow within the window are coalesced into one
//! pass at the window's end. Time is a monotonic offset the controller reads from its clock.

use std::time::Duration;

/// The pacing of detection passes over the changes the watches report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Coalescer {
    window: Duration,
    /// When the last pass ended: the quiet window counts from there, so passes that take longer than
    /// the window are still separated by it (a storm gets no more passes than with a fixed settle).
    ended: Option<Duration>,
    /// The first change no pass has read yet.
    waiting_since: Option<Duration>,
}

impl Coalescer {
    pub fn new(window: Duration) -> Self {
        Coalescer {
            window,
            ended: None,
            waiting_since: None,
        }
    }

    /// Something changed at `now`.
    pub fn changed(&mut self, now: Duration) {
        self.waiting_since.get_or_insert(now);
    }

    /// When the next pass is due, or None while nothing waits: at once after a quiet window,
    /// else at the end of the window that follows the last pass.
    pub fn due(&self) -> Option<Duration> {
        let since = self.waiting_since?;
        Some(match self.ended {
            Some(ended) => since.max(ended.saturating_add(self.window)),
            None => since,
        })
    }

    /// A pass starts reading the caches: every change so far is in it.
    pub fn started(&mut self) {
        self.waiting_since = None;
    }

    /// The pass that started last ended at `now`.
    pub fn ended(&mut self, now: Duration) {
        self.ended = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const WINDOW: Duration = Duration::from_millis(100);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Runs the detector's loop over changes arriving at `arrivals` (sorted), each pass taking
    /// `pass`; returns the (start, end) of every pass.
    fn simulate(arrivals: &[Duration], pass: Duration) -> Vec<(Duration, Duration)> {
        let mut c = Coalescer::new(WINDOW);
        let mut passes = Vec::new();
        let mut next = 0;
        // The loop wakes for whichever comes first: the next change or the due pass (a change at
        // the very instant a pass starts is in it).
        loop {
            let arrival = arrivals.get(next).copied();
            match (arrival, c.due()) {
                (None, None) => return passes,
                (Some(at), due) if due.is_none_or(|d| at <= d) => {
                    c.changed(at);
                    next += 1;
                }
                (_, Some(start)) => {
                    c.started();
                    let end = start + pass;
                    // Changes during the pass are noticed when it ends, as the controller does.
                    while arrivals.get(next).is_some_and(|a| *a < end) {
                        c.changed(arrivals[next]);
                        next += 1;
                    }
                    c.ended(end);
                    passes.push((start, end));
                }
                (Some(_), None) => unreachable!("covered by the arm before"),
            }
        }
    }

    #[test]
    fn the_first_change_after_quiet_is_evaluated_at_once() {
        let mut c = Coalescer::new(WINDOW);
        assert_eq!(c.due(), None, "nothing waits");
        c.changed(ms(1_000));
        assert_eq!(c.due(), Some(ms(1_000)), "the very first change");
        c.started();
        c.ended(ms(1_010));
        assert_eq!(c.due(), None);
        c.changed(ms(5_000));
        assert_eq!(c.due(), Some(ms(5_000)), "after a quiet window");
    }

    #[test]
    fn changes_within_the_window_wait_for_its_end_together() {
        let mut c = Coalescer::new(WINDOW);
        c.changed(ms(0));
        c.started();
        c.ended(ms(10));
        c.changed(ms(30));
        c.changed(ms(60));
        assert_eq!(
            c.due(),
            Some(ms(110)),
            "one pass, a window after the last ended"
        );
        c.started();
        c.ended(ms(115));
        assert_eq!(c.due(), None, "both were in it");
    }

    #[test]
    fn a_change_during_a_pass_waits_a_window_after_it_ends() {
        let passes = simulate(&[ms(0), ms(20), ms(30)], ms(50));
        assert_eq!(passes, vec![(ms(0), ms(50)), (ms(150), ms(200))]);
    }

    #[test]
    fn a_burst_is_two_passes_the_leading_edge_and_the_rest() {
        let burst: Vec<Duration> = (0..50).map(ms).collect();
        let passes = simulate(&burst, Duration::ZERO);
        assert_eq!(passes, vec![(ms(0), ms(0)), (ms(100), ms(100))]);
    }

    proptest! {
        #[test]
        fn passes_are_bounded_and_no_change_waits_more_than_a_window(
            mut arrivals in proptest::collection::vec(0u64..5_000, 1..200),
        ) {
            arrivals.sort_unstable();
            let arrivals: Vec<Duration> = arrivals.into_iter().map(ms).collect();
            let passes = simulate(&arrivals, Duration::ZERO);
            let first = arrivals[0];
            let last_start = passes.last().map(|p| p.0).unwrap_or(first);
            // Every pass reads at least one change, and passes are a window apart.
            prop_assert!(passes.len() <= arrivals.len());
            let span = (last_start - first).as_millis() as usize;
            prop_assert!(passes.len() <= 1 + span / WINDOW.as_millis() as usize);
            for pair in passes.windows(2) {
                prop_assert!(pair[1].0 >= pair[0].1 + WINDOW);
            }
            // Each change is read by the first pass starting at or after it, within a window.
            for at in &arrivals {
                let read = passes.iter().find(|p| p.0 >= *at);
                prop_assert!(read.is_some_and(|p| p.0 - *at <= WINDOW), "{at:?} in {passes:?}");
            }
        }

        #[test]
        fn with_slow_passes_a_change_waits_at_most_the_pass_it_missed_and_a_window(
            mut arrivals in proptest::collection::vec(0u64..5_000, 1..200),
            pass in 0u64..400,
        ) {
            arrivals.sort_unstable();
            let arrivals: Vec<Duration> = arrivals.into_iter().map(ms).collect();
            let pass = ms(pass);
            let passes = simulate(&arrivals, pass);
            prop_assert!(passes.len() <= arrivals.len());
            for pair in passes.windows(2) {
                prop_assert!(pair[1].0 >= pair[0].1 + WINDOW);
            }
            for at in &arrivals {
                let read = passes.iter().find(|p| p.0 >= *at);
                prop_assert!(read.is_some_and(|p| p.0 - *at <= pass + WINDOW), "{at:?} in {passes:?}");
            }
            // A change after a quiet window is read the moment it arrives.
            for (i, at) in arrivals.iter().enumerate() {
                let quiet = passes.iter().filter(|p| p.0 < *at).all(|p| p.1 + WINDOW <= *at)
                    && (i == 0 || passes.iter().any(|p| p.0 >= arrivals[i - 1] && p.0 < *at));
                if quiet {
                    prop_assert!(passes.iter().any(|p| p.0 == *at), "{at:?} in {passes:?}");
                }
            }
        }
    }
}
