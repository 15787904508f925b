//! Following a rollout (core layer): is the Deployment's change complete, failed, or still under
//! way?

use k8s_openapi::api::apps::v1::Deployment;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Every desired replica is updated and available; nothing old is left.
    Complete {
        available: i32,
        desired: i32,
    },
    /// The rollout stopped: the progress deadline passed.
    Failed {
        reason: String,
        message: String,
    },
    InProgress {
        message: String,
    },
}

/// The state of the rollout that `applied_generation` started, as `kubectl rollout status` sees it.
pub fn progress(deployment: &Deployment, applied_generation: i64) -> Progress {
    let desired = deployment.spec.replicas.unwrap_or(1);
    let Some(status) = &deployment.status else {
        return Progress::InProgress {
            message: "waiting for the deployment controller".into(),
        };
    };
    if status.observed_generation.unwrap_or(0) < applied_generation {
        return Progress::InProgress {
            message: "waiting for the deployment controller to see the change".into(),
        };
    }
    if let Some(stalled) = status.conditions.iter().flatten().find(|c| {
        c.type_.as_deref() == Some("Progressing")
            && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    }) {
        return Progress::Failed {
            reason: "ProgressDeadlineExceeded".into(),
            message: stalled.message.clone().unwrap_or_else(|| {
                "the rollout did not progress within progressDeadlineSeconds".into()
            }),
        };
    }
    let updated = status.updated_replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    let total = status.replicas.unwrap_or(0);
    let unavailable = status.unavailable_replicas.unwrap_or(0);
    if updated < desired {
        return Progress::InProgress {
            message: format!("{updated} of {desired} replicas updated"),
        };
    }
    if total > updated {
        return Progress::InProgress {
            message: format!("{} old replicas pending termination", total - updated),
        };
    }
    if available < updated || unavailable > 0 {
        return Progress::InProgress {
            message: format!("{available} of {updated} updated replicas available"),
        };
    }
    Progress::Complete { available, desired }
}
