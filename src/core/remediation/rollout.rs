//! Following a rollout (core layer): is the workload's change complete, failed, or still under
//! way? Each kind is judged as `kubectl rollout status` judges it.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};

use super::{argo::Verdict, sets::WorkloadRef};

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

impl From<Verdict> for Progress {
    fn from(verdict: Verdict) -> Self {
        match verdict {
            Verdict::Complete { available, desired } => Progress::Complete { available, desired },
            Verdict::Failed { reason, message } => Progress::Failed { reason, message },
            Verdict::InProgress { message } => Progress::InProgress { message },
        }
    }
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

/// The rollout of any workload kind, as `kubectl rollout status` judges each.
pub fn progress_of(workload: WorkloadRef<'_>, applied_generation: i64) -> Progress {
    match workload {
        WorkloadRef::Deployment(d) => progress(d, applied_generation),
        WorkloadRef::StatefulSet(s) => stateful_set_progress(s, applied_generation),
        WorkloadRef::DaemonSet(d) => daemon_set_progress(d, applied_generation),
        WorkloadRef::Rollout(r) => super::argo::health(r).into(),
    }
}

/// kubectl follows only RollingUpdate; with OnDelete no pod is replaced until someone deletes it.
fn on_delete(kind: &str) -> Progress {
    Progress::Failed {
        reason: "OnDelete".into(),
        message: format!(
            "the {kind}'s updateStrategy is OnDelete: the template changed but pods are replaced only when deleted (kubectl rollout status follows RollingUpdate only)"
        ),
    }
}

fn stateful_set_progress(set: &StatefulSet, applied_generation: i64) -> Progress {
    let strategy = set.spec.update_strategy.as_ref();
    if strategy.and_then(|s| s.type_.as_deref()).unwrap_or(ROLLING) != ROLLING {
        return on_delete("statefulset");
    }
    let Some(status) = &set.status else {
        return waiting_for_controller("statefulset");
    };
    let observed = status.observed_generation.unwrap_or(0);
    if observed == 0 || observed < applied_generation.max(set.metadata.generation.unwrap_or(0)) {
        return waiting_for_controller("statefulset");
    }
    let desired = set.spec.replicas.unwrap_or(1);
    let ready = status.ready_replicas.unwrap_or(0);
    let updated = status.updated_replicas.unwrap_or(0);
    if ready < desired {
        return Progress::InProgress {
            message: format!("{ready} of {desired} pods ready"),
        };
    }
    if let Some(rolling) = strategy.and_then(|s| s.rolling_update.as_ref()) {
        // A partition leaves the ordinals below it on the old revision on purpose.
        let partition = rolling.partition.unwrap_or(0);
        if updated < desired - partition {
            return Progress::InProgress {
                message: format!(
                    "{updated} of {} pods updated (partition {partition})",
                    desired - partition
                ),
            };
        }
        return Progress::Complete {
            available: ready,
            desired,
        };
    }
    if status.update_revision != status.current_revision {
        return Progress::InProgress {
            message: format!("{updated} of {desired} pods updated"),
        };
    }
    Progress::Complete {
        available: ready,
        desired,
    }
}

fn daemon_set_progress(set: &DaemonSet, applied_generation: i64) -> Progress {
    let strategy = set.spec.update_strategy.as_ref();
    if strategy.and_then(|s| s.type_.as_deref()).unwrap_or(ROLLING) != ROLLING {
        return on_delete("daemonset");
    }
    let Some(status) = &set.status else {
        return waiting_for_controller("daemonset");
    };
    if status.observed_generation.unwrap_or(0)
        < applied_generation.max(set.metadata.generation.unwrap_or(0))
    {
        return waiting_for_controller("daemonset");
    }
    let desired = status.desired_number_scheduled;
    let updated = status.updated_number_scheduled.unwrap_or(0);
    let available = status.number_available.unwrap_or(0);
    if updated < desired {
        return Progress::InProgress {
            message: format!("{updated} of {desired} pods updated"),
        };
    }
    if available < desired {
        return Progress::InProgress {
            message: format!("{available} of {desired} updated pods available"),
        };
    }
    Progress::Complete { available, desired }
}

const ROLLING: &str = "RollingUpdate";

fn waiting_for_controller(kind: &str) -> Progress {
    Progress::InProgress {
        message: format!("waiting for the {kind} controller to see the change"),
    }
}
