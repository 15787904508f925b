//! StatefulSets and DaemonSets (core layer): the workload an action targets, whatever its kind,
//! and the `kubectl rollout undo` rules for the two kinds whose history is ControllerRevisions
//! (k8s.io/kubectl pkg/polymorphichelpers rollback.go): the revision's `data` is sent as a
//! strategic merge patch, and a template that already matches it is skipped.

use jiff::Timestamp;
use k8s_openapi::{
    api::{
        apps::v1::{ControllerRevision, DaemonSet, Deployment, ReplicaSet, StatefulSet},
        core::v1::PodTemplateSpec,
    },
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use serde_json::{Value, json};

use super::{
    argo::{self, RolloutView},
    plan::{
        Actor, Change, Plan, Planned, Subject, images, markers, not_found, plan, plan_in_place,
        refused,
    },
};
use crate::api::{RemediationAction, RollbackAction, WorkloadKind};

/// A workload as read from the API server, of any kind remediation acts on.
#[derive(Clone, Debug)]
pub enum Workload {
    Deployment(Deployment),
    StatefulSet(StatefulSet),
    DaemonSet(DaemonSet),
    /// An Argo Rollouts Rollout with the ReplicaSets it controls.
    Rollout(RolloutView),
}

/// A borrowed [`Workload`].
#[derive(Clone, Copy, Debug)]
pub enum WorkloadRef<'a> {
    Deployment(&'a Deployment),
    StatefulSet(&'a StatefulSet),
    DaemonSet(&'a DaemonSet),
    Rollout(&'a RolloutView),
}

impl Workload {
    pub fn as_ref(&self) -> WorkloadRef<'_> {
        match self {
            Workload::Deployment(d) => WorkloadRef::Deployment(d),
            Workload::StatefulSet(s) => WorkloadRef::StatefulSet(s),
            Workload::DaemonSet(d) => WorkloadRef::DaemonSet(d),
            Workload::Rollout(r) => WorkloadRef::Rollout(r),
        }
    }
}

impl<'a> WorkloadRef<'a> {
    pub fn kind(self) -> WorkloadKind {
        match self {
            WorkloadRef::Deployment(_) => WorkloadKind::Deployment,
            WorkloadRef::StatefulSet(_) => WorkloadKind::StatefulSet,
            WorkloadRef::DaemonSet(_) => WorkloadKind::DaemonSet,
            WorkloadRef::Rollout(_) => WorkloadKind::Rollout,
        }
    }

    pub fn metadata(self) -> &'a ObjectMeta {
        match self {
            WorkloadRef::Deployment(d) => &d.metadata,
            WorkloadRef::StatefulSet(s) => &s.metadata,
            WorkloadRef::DaemonSet(d) => &d.metadata,
            WorkloadRef::Rollout(r) => &r.rollout.metadata,
        }
    }

    /// Which pods are its own (a Rollout without a selector names none).
    pub fn selector(
        self,
    ) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector> {
        match self {
            WorkloadRef::Deployment(d) => Some(&d.spec.selector),
            WorkloadRef::StatefulSet(s) => Some(&s.spec.selector),
            WorkloadRef::DaemonSet(d) => Some(&d.spec.selector),
            WorkloadRef::Rollout(r) => r.rollout.spec.selector.as_ref(),
        }
    }

    /// The pod template (a Rollout's is not read: the operator never patches it).
    pub fn template(self) -> Option<&'a PodTemplateSpec> {
        match self {
            WorkloadRef::Deployment(d) => Some(&d.spec.template),
            WorkloadRef::StatefulSet(s) => Some(&s.spec.template),
            WorkloadRef::DaemonSet(d) => Some(&d.spec.template),
            WorkloadRef::Rollout(_) => None,
        }
    }
}

/// Plans `action` on a workload of any kind, from the history of its kind (ReplicaSets for a
/// Deployment, ControllerRevisions for the others).
pub fn plan_for(
    action: &RemediationAction,
    workload: WorkloadRef<'_>,
    replica_sets: &[ReplicaSet],
    revisions: &[ControllerRevision],
    actor: &Actor,
    now: Timestamp,
) -> Plan {
    let (meta, replicas, template) = match workload {
        WorkloadRef::Deployment(d) => return plan(action, d, replica_sets, actor, now),
        WorkloadRef::Rollout(r) => return argo::plan(action, r, actor),
        WorkloadRef::StatefulSet(s) => (
            &s.metadata,
            Some(s.spec.replicas.unwrap_or(1)),
            &s.spec.template,
        ),
        WorkloadRef::DaemonSet(d) => (&d.metadata, None, &d.spec.template),
    };
    let subject = Subject {
        kind: workload.kind(),
        meta,
        template,
        paused: false,
        replicas,
    };
    if let Some(refusal) = refused(&subject) {
        return refusal;
    }
    match &action.rollback {
        Some(rollback) => plan_set_rollback(rollback, &subject, revisions, actor),
        None => plan_in_place(action, &subject, actor, now),
    }
}

/// `kubectl rollout undo statefulset/NAME` (or daemonset), rule for rule.
fn plan_set_rollback(
    rollback: &RollbackAction,
    subject: &Subject<'_>,
    revisions: &[ControllerRevision],
    actor: &Actor,
) -> Plan {
    let to_revision = rollback.to_revision.unwrap_or(0);
    if to_revision < 0 {
        return not_found(to_revision);
    }
    let uid = subject.meta.uid.as_deref();
    // Only revisions this object controls are its history (kubectl: metav1.IsControlledBy).
    let mut history: Vec<&ControllerRevision> =
        revisions
            .iter()
            .filter(|r| {
                r.metadata.owner_references.iter().flatten().any(|o| {
                    o.controller == Some(true) && uid.is_some_and(|uid| o.uid.as_str() == uid)
                })
            })
            .collect();
    if to_revision == 0 && history.len() <= 1 {
        return Plan::Refuse {
            reason: "NoHistory",
            message: "no last revision to roll back to".into(),
        };
    }
    let target = if to_revision == 0 {
        history.sort_by_key(|r| revision_of(r));
        history[history.len() - 2]
    } else {
        match history.iter().find(|r| revision_of(r) == to_revision) {
            Some(found) => *found,
            None => return not_found(to_revision),
        }
    };
    let name = subject.meta.name.clone().unwrap_or_default();
    let what = format!("{}/{name}", subject.kind.resource());
    let target_revision = revision_of(target);
    let data = &target.data.0;
    let Some(restored) = restored_template(data) else {
        return Plan::Refuse {
            reason: "InvalidRevision",
            message: format!(
                "revision {target_revision} of {what} holds no pod template to restore"
            ),
        };
    };
    if same_template(&restored, subject.template) {
        return Plan::Skip {
            reason: "AlreadyAtRevision",
            message: format!("current template already matches revision {target_revision}"),
        };
    }
    // kubectl sends the revision's data as it is; the markers ride along in the same patch.
    let mut patch = data.clone();
    if let Some(object) = patch.as_object_mut() {
        object.insert("metadata".into(), json!({ "annotations": markers(actor) }));
    }
    let from_revision = history.iter().map(|r| revision_of(r)).max();
    let images_before = images(subject.template);
    let images_after = images(&restored);
    let summary = format!(
        "roll back {what} from revision {} ({}) to revision {} ({})",
        from_revision.map_or("?".to_owned(), |r| r.to_string()),
        images_before.join(", "),
        target_revision,
        images_after.join(", ")
    );
    Plan::Change(Planned {
        change: Change::StrategicMergePatch(patch),
        from_revision,
        to_revision: Some(target_revision),
        images_before,
        images_after,
        summary,
    })
}

/// A ControllerRevision's number (the API server requires it; absent reads as 0).
fn revision_of(revision: &ControllerRevision) -> i64 {
    revision.revision.unwrap_or(0)
}

/// The pod template a revision's data restores (`spec.template` without the `$patch` directive).
fn restored_template(data: &Value) -> Option<PodTemplateSpec> {
    let mut template = data.get("spec")?.get("template")?.clone();
    template.as_object_mut()?.remove("$patch");
    serde_json::from_value(template).ok()
}

/// kubectl compares the current template, serialized, with the revision's bytes; both sides
/// serialized the same way compare as values.
fn same_template(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    serde_json::to_value(a).ok() == serde_json::to_value(b).ok()
}
