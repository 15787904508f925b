//! Argo Rollouts (core layer): a rollback of a Rollout is an abort through its own API, the body
//! `kubectl argo rollouts abort` sends (`{"status":{"abort":true}}`, a merge patch to the status
//! subresource), never a patch of its template. Its controller then scales the canary down and
//! keeps the stable ReplicaSet; the Rollout reports `phase: Degraded` with a `RolloutAborted`
//! Progressing condition and `status.abortedAt` (argo-rollouts v1.10.2, rollout/pause.go and
//! rollout/sync.go). Verified means its controller reported exactly that.

use jiff::SignedDuration;
use k8s_openapi::api::apps::v1::ReplicaSet;

use super::plan::{Actor, Change, Plan, Planned, images, markers};
use crate::api::{
    ArgoRollout, ROLLOUT_POD_TEMPLATE_HASH_LABEL, ROLLOUT_REVISION_ANNOTATION, RemediationAction,
    metadata::{ACTION_ANNOTATION, CONSENT_ANNOTATION},
};

/// How often a Rollout under verification is read again: the operator does not watch Rollouts
/// (their CRD is optional), so it looks at this pace until the action's timeout.
pub const POLL: SignedDuration = SignedDuration::from_secs(5);

/// How a Rollout stands, as its controller reports it (`rollout::Progress` reads it; kept apart so
/// that this file needs nothing of the other kinds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Complete { available: i32, desired: i32 },
    Failed { reason: String, message: String },
    InProgress { message: String },
}

/// A Rollout with the ReplicaSets it controls (by uid), as read together.
#[derive(Clone, Debug, Default)]
pub struct RolloutView {
    pub rollout: ArgoRollout,
    pub replica_sets: Vec<ReplicaSet>,
}

impl RolloutView {
    /// One of the Rollout's annotations.
    fn annotation(&self, key: &str) -> Option<&str> {
        self.rollout
            .metadata
            .annotations
            .as_ref()?
            .get(key)
            .map(String::as_str)
    }

    /// Whether this action's marker is on the Rollout.
    fn marked_by(&self, actor: &Actor) -> bool {
        self.annotation(ACTION_ANNOTATION) == Some(actor.marker().as_str())
    }

    fn name(&self) -> String {
        self.rollout.metadata.name.clone().unwrap_or_default()
    }

    /// The ReplicaSet whose pod-template-hash is `hash`, among those the Rollout controls.
    fn by_hash(&self, hash: Option<&str>) -> Option<&ReplicaSet> {
        let hash = hash.filter(|h| !h.is_empty())?;
        let uid = self.rollout.metadata.uid.as_deref()?;
        self.replica_sets.iter().find(|rs| {
            let controlled = rs
                .metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.controller == Some(true) && o.uid == uid);
            let labels = rs.metadata.labels.as_ref();
            controlled
                && labels
                    .and_then(|l| l.get(ROLLOUT_POD_TEMPLATE_HASH_LABEL))
                    .map(String::as_str)
                    == Some(hash)
        })
    }

    /// The stable ReplicaSet (`status.stableRS`).
    pub fn stable(&self) -> Option<&ReplicaSet> {
        self.by_hash(self.rollout.status().stable_rs.as_deref())
    }

    /// The ReplicaSet of the current template (`status.currentPodHash`): the canary while an
    /// update runs, the stable one once it is promoted.
    pub fn current(&self) -> Option<&ReplicaSet> {
        self.by_hash(self.rollout.status().current_pod_hash.as_deref())
    }

    /// Promoted: the stable ReplicaSet runs the current template, so there is no update to abort
    /// (the controller clears an abort on such a Rollout: "Removing abort condition from fully
    /// promoted rollout", rollout/controller.go).
    pub fn fully_promoted(&self) -> bool {
        let status = self.rollout.status();
        status.stable_rs.is_some() && status.stable_rs == status.current_pod_hash
    }

    fn desired(&self) -> i32 {
        self.rollout.spec.replicas.unwrap_or(1)
    }
}

/// True once this action's abort reached the Rollout: its marker annotation (sent first) and
/// `status.abort` (sent right after) are both there.
pub fn landed(view: &RolloutView, actor: &Actor) -> bool {
    view.marked_by(actor) && view.rollout.aborted()
}

/// Plans an action on a Rollout: a rollback aborts its update; nothing else is done to a Rollout.
pub fn plan(action: &RemediationAction, view: &RolloutView, actor: &Actor) -> Plan {
    let target = format!("rollout/{}", view.name());
    let disabled = view.annotation(CONSENT_ANNOTATION) == Some("disabled");
    if disabled {
        return Plan::Refuse {
            reason: "RemediationDisabled",
            message: format!(
                "{target} is annotated {CONSENT_ANNOTATION}=disabled: the operator never changes it"
            ),
        };
    }
    if action.rollback.is_none() {
        // Admission refuses these; a request written before that rule still gets a reason.
        return Plan::Refuse {
            reason: "NotSupported",
            message: format!(
                "the operator only aborts a Rollout's update (rollback with kind Rollout); restart or scale {target} with kubectl argo rollouts"
            ),
        };
    }
    let ours = view.marked_by(actor);
    if view.rollout.aborted() && !ours {
        return Plan::Skip {
            reason: "AlreadyAborted",
            message: format!(
                "{target} is already aborted (status.abort is true): its controller is returning to the stable ReplicaSet"
            ),
        };
    }
    if view.fully_promoted() {
        return Plan::Refuse {
            reason: "FullyPromoted",
            message: format!(
                "{target} has no update to abort: its stable ReplicaSet runs the current template (its controller clears an abort then); roll back in Git or with kubectl argo rollouts undo {}",
                view.name()
            ),
        };
    }
    let (canary, stable) = (view.current(), view.stable());
    let Some(stable) = stable else {
        return Plan::Refuse {
            reason: "NoStableReplicaSet",
            message: format!(
                "{target} has no stable ReplicaSet to return to (status.stableRS names none it controls): nothing has rolled out successfully yet"
            ),
        };
    };
    let template_images =
        |rs: &ReplicaSet| rs.spec.template.as_ref().map(images).unwrap_or_default();
    let images_before = canary.map(template_images).unwrap_or_default();
    let images_after = template_images(stable);
    let from_revision = canary.and_then(revision);
    let to_revision = revision(stable);
    let shown = |revision: Option<i64>, images: &[String]| {
        let number = revision.map_or("?".to_owned(), |r| r.to_string());
        format!("revision {number} ({})", images.join(", "))
    };
    let summary = format!(
        "abort the update of {target} to {}, back to its stable {} (kubectl argo rollouts abort)",
        shown(from_revision, &images_before),
        shown(to_revision, &images_after)
    );
    Plan::Change(Planned {
        change: Change::AbortRollout(markers(actor)),
        from_revision,
        to_revision,
        images_before,
        images_after,
        summary,
    })
}

/// A ReplicaSet's Argo Rollouts revision.
fn revision(rs: &ReplicaSet) -> Option<i64> {
    rs.metadata
        .annotations
        .as_ref()?
        .get(ROLLOUT_REVISION_ANNOTATION)?
        .parse()
        .ok()
}

/// Available pods of a ReplicaSet, and all its pods.
fn pods(rs: Option<&ReplicaSet>) -> (i32, i32) {
    let status = rs.and_then(|rs| rs.status.as_ref());
    (
        status.and_then(|s| s.available_replicas).unwrap_or(0),
        status.map_or(0, |s| s.replicas),
    )
}

/// The abort as the Rollout's controller reports it: done when it has seen the generation,
/// recorded the abort (`abortedAt`, phase Degraded, Progressing `RolloutAborted`), the stable
/// ReplicaSet has every desired pod available and the canary has none left (unless the strategy
/// says to keep it, `abortScaleDownDelaySeconds: 0`).
pub fn verify(view: &RolloutView, applied_generation: i64) -> Verdict {
    let name = view.name();
    if !view.rollout.aborted() {
        return Verdict::Failed {
            reason: "AbortWithdrawn".into(),
            message: format!(
                "status.abort of rollout/{name} is no longer set: someone retried or promoted it, or a new update started"
            ),
        };
    }
    let status = view.rollout.status();
    let generation = view.rollout.metadata.generation.unwrap_or(0);
    if view.rollout.observed_generation() < applied_generation.max(generation) {
        return Verdict::InProgress {
            message: format!(
                "waiting for the Argo Rollouts controller to observe rollout/{name} (status.observedGeneration {} of {generation}): is it running?",
                status.observed_generation.as_deref().unwrap_or("unset")
            ),
        };
    }
    let reported = status.phase.as_deref() == Some("Degraded")
        && status.aborted_at.is_some()
        && status
            .conditions
            .iter()
            .any(|c| c.type_ == "Progressing" && c.reason.as_deref() == Some("RolloutAborted"));
    if !reported {
        return Verdict::InProgress {
            message: format!(
                "waiting for the Argo Rollouts controller to reconcile the abort of rollout/{name} (status.abortedAt, phase Degraded)"
            ),
        };
    }
    let desired = view.desired();
    let (available, _) = pods(view.stable());
    if available < desired {
        return Verdict::InProgress {
            message: format!("stable ReplicaSet: {available} of {desired} pods available"),
        };
    }
    let canary = view.current().filter(|rs| Some(*rs) != view.stable());
    let (_, left) = pods(canary);
    // Told to keep them (its traffic already went back to the stable ReplicaSet).
    if left > 0 && !view.rollout.abort_keeps_new_pods() {
        return Verdict::InProgress {
            message: format!("the canary still runs {left} pods"),
        };
    }
    Verdict::Complete { available, desired }
}

/// Whether the Rollout is settled, for a runbook's verify step: an abort verified as above, or
/// the controller reporting it Healthy at the current generation.
pub fn health(view: &RolloutView) -> Verdict {
    let generation = view.rollout.metadata.generation.unwrap_or(0);
    if view.rollout.aborted() {
        return verify(view, generation);
    }
    let status = view.rollout.status();
    if view.rollout.observed_generation() >= generation
        && status.phase.as_deref() == Some("Healthy")
    {
        let available = status.available_replicas.unwrap_or(0);
        return Verdict::Complete {
            available,
            desired: view.desired(),
        };
    }
    Verdict::InProgress {
        message: format!(
            "rollout/{} is {} ({})",
            view.name(),
            status
                .phase
                .as_deref()
                .unwrap_or("not yet reported by its controller"),
            status.message.as_deref().unwrap_or_default()
        ),
    }
}
