//! Leader election through a `coordination.k8s.io/v1` Lease, so that of several replicas only one
//! runs the loops that act (detector, incident controller, runbook controller).
//!
//! A pure core ([`decide`]: the Lease as read, our identity, now and the configuration → acquire,
//! renew or stand by, with the spec to write) inside a thin shell ([`Elector`]): read the Lease,
//! write the decided spec with the resourceVersion it was read at (a conflict means someone else
//! wrote first: re-read, never assume), repeat every `retry_period`.
//!
//! Expiry is judged from the Lease's own clock values (`renewTime`, else `acquireTime`, plus
//! `leaseDurationSeconds`) against our wall clock, so replicas need roughly synchronised clocks (NTP,
//! as Kubernetes itself assumes). The only local time difference used is the leader's monotonic
//! "time since my last successful renewal", checked against `renew_deadline`: past it the leader
//! gives up (the process exits non-zero and is restarted as a follower) well before the Lease can
//! expire for anyone else, because `renew_deadline < lease_duration`.
//!
//! Kept small on purpose: `kube-lease-manager` 0.13 is compatible with kube 5 but runs its own
//! background manager with server-side-apply conflict semantics and pulls `rand`; this module keeps
//! the decision testable like the rest of the crate's cores.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
};
use kube::{Api, Client, api::PostParams};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::{Error, Result, metrics::Metrics};

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

    fn duration_seconds(&self) -> i32 {
        i32::try_from(self.lease_duration.as_secs().max(1)).unwrap_or(i32::MAX)
    }
}

/// What to do with the Lease as read.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
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

/// The pure decision: given the Lease spec as read (None when there is no Lease yet), our
/// identity, now and the configuration.
pub fn decide(
    current: Option<&LeaseSpec>,
    now: jiff::Timestamp,
    config: &LeaderConfig,
) -> Decision {
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
        return Decision::Acquire(ours(stamp.clone(), 0));
    };
    let transitions = current.lease_transitions.unwrap_or(0).max(0);
    let holder = current.holder_identity.as_deref().filter(|h| !h.is_empty());
    match holder {
        Some(h) if h == config.identity => Decision::Renew(ours(
            current.acquire_time.clone().or(stamp.clone()),
            transitions,
        )),
        Some(h) => match expiry(current, config.lease_duration) {
            Some(until) if now < until => Decision::StandBy {
                holder: h.to_owned(),
                until,
            },
            // Expired, or no time recorded at all (nothing proves the holder alive).
            _ => Decision::Acquire(ours(stamp.clone(), transitions.saturating_add(1))),
        },
        // Released (or never held): free now, whatever the times say.
        None => Decision::Acquire(ours(stamp.clone(), transitions.saturating_add(1))),
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

/// A process identity: the pod name (or host name), the process id and a time-based suffix, so two
/// processes on one host, or a restarted pod, never share it.
pub fn identity() -> String {
    let base = ["POD_NAME", "HOSTNAME"]
        .iter()
        .find_map(|var| std::env::var(var).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "incident-operator".to_owned());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{base}_{}_{nanos:08x}", std::process::id())
}

/// The shell: reads and writes the Lease.
pub struct Elector {
    api: Api<Lease>,
    config: LeaderConfig,
}

/// Outcome of one round.
#[derive(Debug, PartialEq, Eq)]
enum Round {
    Leading,
    /// Someone else holds the Lease (None: it is unknown who, e.g. after losing a race).
    Following(Option<String>),
}

impl Elector {
    pub fn new(client: Client, config: LeaderConfig) -> Self {
        let api = Api::namespaced(client, &config.namespace);
        Self { api, config }
    }

    /// Competes for the Lease until `stop` is cancelled. `leading` turns true once this process
    /// leads; it never turns false again: losing the Lease ends the task with
    /// [`Error::LeadershipLost`] and the process is expected to exit. On `stop`, a leader releases.
    pub async fn run(
        self,
        leading: watch::Sender<bool>,
        metrics: Arc<Metrics>,
        stop: CancellationToken,
    ) -> Result<()> {
        let config = &self.config;
        info!(lease = %config.name, namespace = %config.namespace, identity = %config.identity,
              "leader election: competing for the Lease");
        metrics.leader.set(0);
        let mut last_renewal: Option<Instant> = None;
        let mut last_holder = String::new();
        loop {
            let attempt = tokio::select! {
                outcome = tokio::time::timeout(config.renew_deadline, self.round()) => outcome,
                () = stop.cancelled() => break,
            };
            match attempt {
                Ok(Ok(Round::Leading)) => {
                    if last_renewal.is_none() {
                        info!(identity = %config.identity, "leader election: became the leader");
                        metrics.leader.set(1);
                        leading.send_replace(true);
                    }
                    last_renewal = Some(Instant::now());
                }
                Ok(Ok(Round::Following(holder))) if last_renewal.is_some() => {
                    metrics.leader.set(0);
                    return Err(Error::LeadershipLost(format!(
                        "another replica ({}) holds the Lease",
                        holder.as_deref().unwrap_or("unknown")
                    )));
                }
                Ok(Ok(Round::Following(Some(holder)))) => {
                    if holder != last_holder {
                        info!(%holder, "leader election: following");
                        last_holder = holder;
                    }
                }
                Ok(Ok(Round::Following(None))) => {}
                Ok(Err(error)) => {
                    warn!(%error, "leader election: cannot read or write the Lease")
                }
                Err(_) => {
                    warn!(timeout = ?config.renew_deadline, "leader election: Lease request timed out")
                }
            }
            if let Some(at) = last_renewal
                && at.elapsed() >= config.renew_deadline
            {
                metrics.leader.set(0);
                return Err(Error::LeadershipLost(format!(
                    "could not renew the Lease for {:?}",
                    at.elapsed()
                )));
            }
            tokio::select! {
                () = tokio::time::sleep(config.retry_period) => {}
                () = stop.cancelled() => break,
            }
        }
        metrics.leader.set(0);
        if last_renewal.is_some() {
            self.release().await;
        }
        Ok(())
    }

    /// One read-decide-write. A conflict (someone wrote since we read) is re-read once at once.
    async fn round(&self) -> Result<Round> {
        for _ in 0..2 {
            match self.try_once().await {
                Err(Error::Conflict) => {
                    debug!("leader election: Lease changed while writing; re-reading")
                }
                other => return other,
            }
        }
        Ok(Round::Following(None))
    }

    async fn try_once(&self) -> Result<Round> {
        let name = &self.config.name;
        let now = jiff::Timestamp::now();
        let Some(mut lease) = self.api.get_opt(name).await.map_err(Error::Kube)? else {
            let Decision::Acquire(spec) = decide(None, now, &self.config) else {
                return Ok(Round::Following(None));
            };
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(spec),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(Round::Leading),
                Err(kube::Error::Api(e)) if e.code == 409 => Err(Error::Conflict),
                Err(e) => Err(Error::Kube(e)),
            };
        };
        let spec = match decide(lease.spec.as_ref(), now, &self.config) {
            Decision::Acquire(spec) => {
                info!(previous = ?lease.spec.as_ref().and_then(|s| s.holder_identity.as_deref()),
                      "leader election: the Lease is free or expired; acquiring");
                spec
            }
            Decision::Renew(spec) => spec,
            Decision::StandBy { holder, until } => {
                debug!(%holder, %until, "leader election: Lease held");
                return Ok(Round::Following(Some(holder)));
            }
        };
        // `replace` sends the resourceVersion we read: the API server refuses it with 409 if
        // anyone wrote in between, so two candidates can never both succeed.
        lease.spec = Some(spec);
        match self.api.replace(name, &PostParams::default(), &lease).await {
            Ok(_) => Ok(Round::Leading),
            Err(kube::Error::Api(e)) if e.code == 409 => Err(Error::Conflict),
            Err(e) => Err(Error::Kube(e)),
        }
    }

    /// Clears the holder (only if it is still us) so that a follower takes over at its next try.
    async fn release(&self) {
        let outcome = async {
            let Some(mut lease) = self.api.get_opt(&self.config.name).await? else {
                return Ok(false);
            };
            let Some(spec) = lease.spec.as_ref() else {
                return Ok(false);
            };
            if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
                return Ok(false);
            }
            lease.spec = Some(released(spec, jiff::Timestamp::now()));
            self.api
                .replace(&self.config.name, &PostParams::default(), &lease)
                .await
                .map(|_| true)
        };
        match tokio::time::timeout(Duration::from_secs(1), outcome).await {
            Ok(Ok(true)) => info!("leader election: released the Lease"),
            Ok(Ok(false)) => {
                info!("leader election: the Lease was no longer ours; nothing to release")
            }
            Ok(Err(error)) => {
                warn!(%error, "leader election: could not release the Lease; it expires on its own")
            }
            Err(_) => {
                warn!("leader election: releasing the Lease timed out; it expires on its own")
            }
        }
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

    fn written(decision: Decision) -> LeaseSpec {
        match decision {
            Decision::Acquire(spec) | Decision::Renew(spec) => spec,
            Decision::StandBy { holder, .. } => panic!("stood by for {holder}"),
        }
    }

    #[test]
    fn no_lease_is_acquired_with_zero_transitions() {
        let Decision::Acquire(spec) = decide(None, at(5), &config("a")) else {
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
        let decision = decide(Some(&held("a", 4, 10, 3)), at(6), &config("a"));
        let Decision::Renew(spec) = decision else {
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
                decide(Some(&lease), at(now), &config("a")),
                Decision::StandBy {
                    holder: "b".into(),
                    until: at(110)
                },
                "at +{now}s"
            );
        }
        // Expired exactly at renewTime + leaseDurationSeconds.
        let spec = written(decide(Some(&lease), at(110), &config("a")));
        assert_eq!(spec.holder_identity.as_deref(), Some("a"));
        assert_eq!(spec.lease_transitions, Some(2), "a change of holder counts");
        assert_eq!(spec.acquire_time, Some(MicroTime(at(110))));
    }

    #[test]
    fn the_duration_written_in_the_lease_wins_over_ours() {
        // The holder wrote 60 s; our own 10 s must not shorten its lease.
        let lease = held("b", 100, 60, 0);
        assert!(matches!(
            decide(Some(&lease), at(150), &config("a")),
            Decision::StandBy { .. }
        ));
        assert!(matches!(
            decide(Some(&lease), at(160), &config("a")),
            Decision::Acquire(_)
        ));
    }

    #[test]
    fn a_missing_or_invalid_duration_falls_back_to_ours() {
        let mut lease = held("b", 100, 0, 0);
        assert!(matches!(
            decide(Some(&lease), at(109), &config("a")),
            Decision::StandBy { .. }
        ));
        lease.lease_duration_seconds = None;
        assert!(matches!(
            decide(Some(&lease), at(110), &config("a")),
            Decision::Acquire(_)
        ));
    }

    #[test]
    fn acquire_time_counts_when_there_is_no_renew_time_and_no_time_means_expired() {
        let mut lease = held("b", 0, 10, 0);
        lease.renew_time = None;
        lease.acquire_time = Some(MicroTime(at(50)));
        assert!(matches!(
            decide(Some(&lease), at(55), &config("a")),
            Decision::StandBy { .. }
        ));
        lease.acquire_time = None;
        assert!(matches!(
            decide(Some(&lease), at(55), &config("a")),
            Decision::Acquire(_)
        ));
    }

    #[test]
    fn a_renew_time_in_the_future_still_counts_from_the_lease() {
        // The holder's clock runs ahead: the Lease holds until its own renewTime + duration.
        let lease = held("b", 200, 10, 0);
        assert!(matches!(
            decide(Some(&lease), at(100), &config("a")),
            Decision::StandBy { until, .. } if until == at(210)
        ));
    }

    #[test]
    fn a_released_lease_is_free_at_once() {
        let released = released(&held("b", 100, 10, 4), at(101));
        assert_eq!(released.holder_identity, None);
        let spec = written(decide(Some(&released), at(101), &config("a")));
        assert_eq!(spec.holder_identity.as_deref(), Some("a"));
        assert_eq!(spec.lease_transitions, Some(5));
        // An empty holder string means the same as none.
        let mut empty = held("", 100, 10, 4);
        empty.holder_identity = Some(String::new());
        assert!(matches!(
            decide(Some(&empty), at(101), &config("a")),
            Decision::Acquire(_)
        ));
    }

    #[test]
    fn negative_transitions_are_not_propagated() {
        let lease = held("b", 0, 10, -3);
        assert_eq!(
            written(decide(Some(&lease), at(100), &config("a"))).lease_transitions,
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

    #[test]
    fn identities_carry_the_process_id() {
        let id = identity();
        assert!(id.contains(&format!("_{}_", std::process::id())), "{id}");
    }
}
