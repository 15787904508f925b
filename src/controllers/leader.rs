//! Leader election (controllers layer) through a `coordination.k8s.io/v1` Lease, so that of several
//! replicas only one runs the loops that act (detector, incident controller, runbook controller).
//!
//! The decision is pure ([`claim`] in `core::leader`: the Lease as read, our identity, now and the
//! configuration → acquire, renew or stand by, with the spec to write); this shell ([`Elector`],
//! controllers layer): read the Lease, write the decided spec with the resourceVersion it was read
//! at (a conflict means someone else wrote first: re-read, never assume), repeat every
//! `retry_period`.
//!
//! Expiry is judged from the Lease's own clock values (`renewTime`, else `acquireTime`, plus
//! `leaseDurationSeconds`) against our wall clock, so replicas need roughly synchronised clocks
//! (NTP, as Kubernetes itself assumes). The only local time difference used is the leader's
//! monotonic "time since my last successful renewal", checked against `renew_deadline`: past it the
//! leader gives up (the process exits non-zero and is restarted as a follower) well before the
//! Lease can expire for anyone else, because `renew_deadline < lease_duration`.
//!
//! Kept small on purpose: `kube-lease-manager` 0.13 is compatible with kube 5 but runs its own
//! background manager with server-side-apply conflict semantics and pulls `rand`; this module keeps
//! the decision testable like the rest of the crate's cores.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use k8s_openapi::{api::coordination::v1::Lease, apimachinery::pkg::apis::meta::v1::ObjectMeta};
use kube::{Api, Client, api::PostParams};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::{
    Error, Result,
    core::leader::{Claim, LeaderConfig, claim, released},
    metrics::Metrics,
};

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
            let Claim::Acquire(spec) = claim(None, now, &self.config) else {
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
        let spec = match claim(lease.spec.as_ref(), now, &self.config) {
            Claim::Acquire(spec) => {
                info!(previous = ?lease.spec.as_ref().and_then(|s| s.holder_identity.as_deref()),
                      "leader election: the Lease is free or expired; acquiring");
                spec
            }
            Claim::Renew(spec) => spec,
            Claim::StandBy { holder, until } => {
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
