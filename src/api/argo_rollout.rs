//! An Argo Rollouts `Rollout` (argoproj.io/v1alpha1) as the operator reads it (api layer): only the
//! fields remediation needs, from the CRD of argo-rollouts v1.10.2 (`manifests/crds/rollout-crd.yaml`).
//! Unknown fields are ignored, so a newer Rollout still reads.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use serde::{Deserialize, Serialize};

/// The Rollout's API group.
pub const ROLLOUT_GROUP: &str = "argoproj.io";
/// The Rollout's served (and only) version.
pub const ROLLOUT_VERSION: &str = "v1alpha1";
/// The Rollout's kind.
pub const ROLLOUT_KIND: &str = "Rollout";
/// The Rollout's resource name (RBAC, the admission policy's authorizer checks).
pub const ROLLOUT_PLURAL: &str = "rollouts";
/// The revision annotation Argo Rollouts puts on a Rollout's ReplicaSets.
pub const ROLLOUT_REVISION_ANNOTATION: &str = "rollout.argoproj.io/revision";
/// The label with which Argo Rollouts names a ReplicaSet's template (its `status.stableRS` and
/// `status.currentPodHash` hold such values): `DefaultRolloutUniqueLabelKey`, not a Deployment's.
pub const ROLLOUT_POD_TEMPLATE_HASH_LABEL: &str = "rollouts-pod-template-hash";
/// The body `kubectl argo rollouts abort` sends, as a merge patch to the status subresource.
pub const ABORT_PATCH: &str = r#"{"status":{"abort":true}}"#;

/// A Rollout, trimmed to what remediation reads.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct ArgoRollout {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: ArgoRolloutSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ArgoRolloutStatus>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ArgoRolloutSpec {
    /// Desired pods; the controller's default is 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    /// Selects its pods (and so its ReplicaSets, which carry the same labels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// `canary` or `blueGreen`, read only for what an abort leaves running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<serde_json::Value>,
}

/// The status fields the Rollout's controller reports (and `status.abort`, which its plugin sets).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ArgoRolloutStatus {
    /// "Cancel the current rollout progression": what `kubectl argo rollouts abort` sets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort: Option<bool>,
    /// Set by the controller once it reconciled the abort; cleared with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aborted_at: Option<Time>,
    /// Healthy, Progressing, Paused or Degraded; only meaningful once the generation is observed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The pod-template-hash of the ReplicaSet that last rolled out successfully.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "stableRS")]
    pub stable_rs: Option<String>,
    /// The pod-template-hash of the current template (the canary while an update runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_pod_hash: Option<String>,
    /// A string in this API (`"3"`), unlike a Deployment's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<ArgoRolloutCondition>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ArgoRolloutCondition {
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(default)]
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl ArgoRollout {
    pub fn status(&self) -> ArgoRolloutStatus {
        self.status.clone().unwrap_or_default()
    }

    /// `status.abort`, as the controller and the plugin read it.
    pub fn aborted(&self) -> bool {
        self.status.as_ref().and_then(|s| s.abort) == Some(true)
    }

    /// An abort leaves the new pods running: `abortScaleDownDelaySeconds: 0` ("0 means not to scale
    /// down") on a blue-green strategy, or on a canary with traffic routing (a basic canary ignores it).
    pub fn abort_keeps_new_pods(&self) -> bool {
        let strategy = self.spec.strategy.as_ref();
        let zero = |s: Option<&serde_json::Value>| {
            s.and_then(|s| s.get("abortScaleDownDelaySeconds"))
                .and_then(serde_json::Value::as_i64)
                == Some(0)
        };
        let blue_green = strategy.and_then(|s| s.get("blueGreen"));
        let canary = strategy.and_then(|s| s.get("canary"));
        zero(blue_green)
            || (canary.is_some_and(|c| c.get("trafficRouting").is_some()) && zero(canary))
    }

    /// `status.observedGeneration` as a number (0 when absent or not a number).
    pub fn observed_generation(&self) -> i64 {
        self.status
            .as_ref()
            .and_then(|s| s.observed_generation.as_deref())
            .and_then(|g| g.parse().ok())
            .unwrap_or(0)
    }
}
