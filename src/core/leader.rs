//! Leader election's decision (core layer): from the `coordination.k8s.io/v1` Lease as read, our
//! identity, now and the configuration, whether to acquire, renew or stand by, with the spec to
//! write. The elector (controllers layer) reads and writes the Lease around it.
//!
//! Expiry is judged from the Lease's own clock values (`renewTime`, else `acquireTime`, plus
//! `leaseDurationSeconds`) against our wall clock, so replicas need roughly synchronised clocks
//! (NTP, as Kubernetes itself assumes).

use std::time::Duration;

use k8s_openapi::{api::coordination::v1::LeaseSpec, apimachinery::pkg::apis::meta::v1::MicroTime};

/// Timings and names of the election.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderConfig {
    /// Name of the Lease.
    pub name: String,
    /// Namespace of the Lease.
    pub namespace: String,
    /// Who we are in `holderIdentity`; unique per process.
    pub identity: String,
    /// How long a Lease stays valid after its last renewal (written as `leaseDurationSeconds`).
    pub lease_duration: Duration,
    /// A leader that could not renew for this long stops leading. Less than `lease_duration`.
    pub renew_deadline: Duration,
    /// How often the leader renews and followers try to acquire.
    pub retry_period: Duration,
}

impl LeaderConfig {
    /// Defaults: a dead leader is replaced at most `lease_duration + retry_period` = 12 s after
    /// its last renewal, inside the 15 s budget; a partitioned leader stops after 5 s, 5 s before
    /// anyone else may take over.
    pub const LEASE_DURATION: Duration = Duration::from_secs(10);
    pub const RENEW_DEADLINE: Duration = Duration::from_secs(5);
    pub const RETRY_PERIOD: Duration = Duration::from_secs(2);

    /// Refuses timings under which two leaders could overlap or a leader could never renew.
    pub fn validate(&self) -> Result<(), String> {
        if self.lease_duration < Duration::from_secs(1) {
            return Err("the lease duration must be at least 1s".into());
        }
        if self.renew_deadline >= self.lease_duration {
            return Err(format!(
                "the renew deadline ({:?}) must be shorter than the lease duration ({:?})",
                self.renew_deadline, self.lease_duration
            ));
        }
        if self.retry_period.is_zero() || self.retry_period >= self.renew_deadline {
            return Err(format!(
                "the retry period ({:?}) must be more than zero and shorter than the renew deadline ({:?})",
                self.retry_period, self.renew_deadline
            ));
        }
        Ok(())
    }

    pub fn duration_seconds(&self) -> i32 {
        i32::try_from(self.lease_duration.as_secs().max(1)).unwrap_or(i32::MAX)
    }
}

/// What to do with the Lease as read.
#[derive(Clone, Debug, PartialEq)]
pub enum Claim {
    /// Nobody holds a valid Lease: take it by writing this spec.
    Acquire(LeaseSpec),
    /// We hold it: extend it by writing this spec.
    Renew(LeaseSpec),
    /// Someone else holds a valid Lease until `until`; try again later.
    StandBy {
        holder: String,
        until: jiff::Timestamp,
    },
}

/// When a Lease spec stops being valid, from its own clock values: `renewTime` (else
/// `acquireTime`) plus `leaseDurationSeconds` (else `fallback`). None when it has no time at all.
pub fn expiry(spec: &LeaseSpec, fallback: Duration) -> Option<jiff::Timestamp> {
    let since = spec.renew_time.as_ref().or(spec.acquire_time.as_ref())?.0;
    let seconds = match spec.lease_duration_seconds {
        Some(s) if s > 0 => i64::from(s),
        _ => i64::try_from(fallback.as_secs()).unwrap_or(i64::MAX),
    };
    since
        .checked_add(jiff::SignedDuration::from_secs(seconds))
        .ok()
}

/// What to do about the Lease: given its spec as read (None when there is no Lease yet), our
/// identity, now and the configuration.
pub fn claim(current: Option<&LeaseSpec>, now: jiff::Timestamp, config: &LeaderConfig) -> Claim {
    let stamp = Some(MicroTime(now));
    let ours = |acquire_time, transitions| LeaseSpec {
        holder_identity: Some(config.identity.clone()),
        lease_duration_seconds: Some(config.duration_seconds()),
        acquire_time,
        renew_time: stamp.clone(),
        lease_transitions: Some(transitions),
        ..LeaseSpec::default()
    };
    let Some(current) = current else {
        return Claim::Acquire(ours(stamp.clone(), 0));
    };
    let transitions = current.lease_transitions.unwrap_or(0).max(0);
    let holder = current.holder_identity.as_deref().filter(|h| !h.is_empty());
    match holder {
        Some(h) if h == config.identity => Claim::Renew(ours(
            current.acquire_time.clone().or(stamp.clone()),
            transitions,
        )),
        Some(h) => match expiry(current, config.lease_duration) {
            Some(until) if now < until => Claim::StandBy {
                holder: h.to_owned(),
                until,
            },
            // Expired, or no time recorded at all (nothing proves the holder alive).
            _ => Claim::Acquire(ours(stamp.clone(), transitions.saturating_add(1))),
        },
        // Released (or never held): free now, whatever the times say.
        None => Claim::Acquire(ours(stamp.clone(), transitions.saturating_add(1))),
    }
}

/// The spec a leader writes on a clean stop so that others may take over at once.
pub fn released(current: &LeaseSpec, now: jiff::Timestamp) -> LeaseSpec {
    LeaseSpec {
        holder_identity: None,
        lease_duration_seconds: Some(1),
        acquire_time: current.acquire_time.clone(),
        renew_time: Some(MicroTime(now)),
        lease_transitions: current.lease_transitions,
        ..LeaseSpec::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(identity: &str) -> LeaderConfig {
        LeaderConfig {
            name: "incident-operator".into(),
            namespace: "ops".into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(10),
            renew_deadline: Duration::from_secs(5),
            retry_period: Duration::from_secs(2),
        }
    }

    fn at(seconds: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_800_000_000 + seconds).expect("valid timestamp")
    }

    fn held(holder: &str, renewed: i64, duration: i32, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(duration),
            acquire_time: Some(MicroTime(at(0))),
            renew_time: Some(MicroTime(at(renewed))),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    fn written(decision: Claim) -> LeaseSpec {
        match decision {
            Claim::Acquire(spec) | Claim::Renew(spec) => spec,
            Claim::StandBy { holder, .. } => panic!("stood by for {holder}"),
        }
    }

    #[test]
    fn no_lease_is_acquired_with_zero_transitions() {
        let Claim::Acquire(spec) = claim(None, at(5), &config("a")) else {
            panic!("expected Acquire");
        };
        assert_eq!(spec.holder_identity.as_deref(), Some("a"));
        assert_eq!(spec.lease_duration_seconds, Some(10));
        assert_eq!(spec.acquire_time, Some(MicroTime(at(5))));
        assert_eq!(spec.renew_time, Some(MicroTime(at(5))));
        assert_eq!(spec.lease_transitions, Some(0));
    }

    #[test]
    fn our_lease_is_renewed_keeping_acquire_time_and_transitions() {
        let decision = claim(Some(&held("a", 4, 10, 3)), at(6), &config("a"));
        let Claim::Renew(spec) = decision else {
            panic!("expected Renew, got {decision:?}");
        };
        assert_eq!(spec.acquire_time, Some(MicroTime(at(0))));
        assert_eq!(spec.renew_time, Some(MicroTime(at(6))));
        assert_eq!(spec.lease_transitions, Some(3));
    }

    #[test]
    fn a_valid_lease_of_another_is_respected_until_the_last_instant() {
        let lease = held("b", 100, 10, 1);
        for now in [100, 105, 109] {
            assert_eq!(
                claim(Some(&lease), at(now), &config("a")),
                Claim::StandBy {
                    holder: "b".into(),
                    until: at(110)
                },
                "at +{now}s"
            );
        }
        // Expired exactly at renewTime + leaseDurationSeconds.
        let spec = written(claim(Some(&lease), at(110), &config("a")));
        assert_eq!(spec.holder_identity.as_deref(), Some("a"));
        assert_eq!(spec.lease_transitions, Some(2), "a change of holder counts");
        assert_eq!(spec.acquire_time, Some(MicroTime(at(110))));
    }

    #[test]
    fn the_duration_written_in_the_lease_wins_over_ours() {
        // The holder wrote 60 s; our own 10 s must not shorten its lease.
        let lease = held("b", 100, 60, 0);
        assert!(matches!(
            claim(Some(&lease), at(150), &config("a")),
            Claim::StandBy { .. }
        ));
        assert!(matches!(
            claim(Some(&lease), at(160), &config("a")),
            Claim::Acquire(_)
        ));
    }

    #[test]
    fn a_missing_or_invalid_duration_falls_back_to_ours() {
        let mut lease = held("b", 100, 0, 0);
        assert!(matches!(
            claim(Some(&lease), at(109), &config("a")),
            Claim::StandBy { .. }
        ));
        lease.lease_duration_seconds = None;
        assert!(matches!(
            claim(Some(&lease), at(110), &config("a")),
            Claim::Acquire(_)
        ));
    }

    #[test]
    fn acquire_time_counts_when_there_is_no_renew_time_and_no_time_means_expired() {
        let mut lease = held("b", 0, 10, 0);
        lease.renew_time = None;
        lease.acquire_time = Some(MicroTime(at(50)));
        assert!(matches!(
            claim(Some(&lease), at(55), &config("a")),
            Claim::StandBy { .. }
        ));
        lease.acquire_time = None;
        assert!(matches!(
            claim(Some(&lease), at(55), &config("a")),
            Claim::Acquire(_)
        ));
    }

    #[test]
    fn a_renew_time_in_the_future_still_counts_from_the_lease() {
        // The holder's clock runs ahead: the Lease holds until its own renewTime + duration.
        let lease = held("b", 200, 10, 0);
        assert!(matches!(
            claim(Some(&lease), at(100), &config("a")),
            Claim::StandBy { until, .. } if until == at(210)
        ));
    }

    #[test]
    fn a_released_lease_is_free_at_once() {
        let released = released(&held("b", 100, 10, 4), at(101));
        assert_eq!(released.holder_identity, None);
        let spec = written(claim(Some(&released), at(101), &config("a")));
        assert_eq!(spec.holder_identity.as_deref(), Some("a"));
        assert_eq!(spec.lease_transitions, Some(5));
        // An empty holder string means the same as none.
        let mut empty = held("", 100, 10, 4);
        empty.holder_identity = Some(String::new());
        assert!(matches!(
            claim(Some(&empty), at(101), &config("a")),
            Claim::Acquire(_)
        ));
    }

    #[test]
    fn negative_transitions_are_not_propagated() {
        let lease = held("b", 0, 10, -3);
        assert_eq!(
            written(claim(Some(&lease), at(100), &config("a"))).lease_transitions,
            Some(1)
        );
    }

    #[test]
    fn timings_that_could_overlap_two_leaders_are_refused() {
        assert_eq!(config("a").validate(), Ok(()));
        let mut bad = config("a");
        bad.renew_deadline = Duration::from_secs(10);
        assert!(bad.validate().is_err());
        let mut bad = config("a");
        bad.retry_period = Duration::from_secs(5);
        assert!(bad.validate().is_err());
        let mut bad = config("a");
        bad.retry_period = Duration::ZERO;
        assert!(bad.validate().is_err());
    }
}
