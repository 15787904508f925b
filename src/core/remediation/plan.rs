//! Planning a remediation (core layer): from a Deployment and the ReplicaSets it owns, compute the
//! exact change to make, or why not to. Rollback follows `kubectl rollout undo` rule for rule;
//! restart and scale serve every workload kind (`sets.rs` plans the StatefulSet/DaemonSet rest).

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::{
    api::{
        apps::v1::{Deployment, ReplicaSet},
        core::v1::PodTemplateSpec,
    },
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use serde_json::{Value, json};

use crate::api::{
    MAX_IMAGE, MAX_IMAGES, RemediationAction, RollbackAction, ScaleAction, WorkloadKind,
    metadata::{
        ACTION_ANNOTATION, CONSENT_ANNOTATION, INCIDENT_ANNOTATION, LAST_APPLIED_ANNOTATION,
        POD_TEMPLATE_HASH_LABEL as POD_TEMPLATE_HASH, RESTARTED_AT_ANNOTATION,
        REVISION_ANNOTATION as REVISION, revision, revision_text,
    },
};
use crate::core::text::cut;

/// Annotations a rollback leaves as the Deployment has them (kubectl's list).
const KEEP_ON_ROLLBACK: [&str; 6] = [
    LAST_APPLIED_ANNOTATION,
    REVISION,
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
];

/// Who is acting, for the marker annotations.
#[derive(Clone, Debug)]
pub struct Actor {
    pub incident_name: String,
    pub incident_uid: String,
    pub action_name: String,
}

impl Actor {
    pub fn marker(&self) -> String {
        format!("{}/{}", self.incident_uid, self.action_name)
    }
}

/// The change to send, without its precondition (the executor adds the resourceVersion).
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// RFC 6902 operations.
    JsonPatch(Vec<Value>),
    /// RFC 7386 merge patch.
    MergePatch(Value),
    /// Kubernetes strategic merge patch: how kubectl restores a StatefulSet's or DaemonSet's
    /// ControllerRevision (its `data` as the patch).
    StrategicMergePatch(Value),
    /// Abort an Argo Rollouts Rollout: these marker annotations on the Rollout first, then the
    /// body `kubectl argo rollouts abort` sends to its status subresource.
    AbortRollout(Value),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Planned {
    pub change: Change,
    pub from_revision: Option<i64>,
    pub to_revision: Option<i64>,
    pub images_before: Vec<String>,
    pub images_after: Vec<String>,
    /// One line for people: what will change.
    pub summary: String,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Plan {
    Change(Planned),
    /// Nothing to do; not an error.
    Skip {
        reason: &'static str,
        message: String,
    },
    /// Will not act; the action fails with this reason.
    Refuse {
        reason: &'static str,
        message: String,
    },
}

/// Plans `action` against the Deployment and the ReplicaSets it owns.
pub fn plan(
    action: &RemediationAction,
    deployment: &Deployment,
    replica_sets: &[ReplicaSet],
    actor: &Actor,
    now: Timestamp,
) -> Plan {
    let subject = Subject {
        kind: WorkloadKind::Deployment,
        meta: &deployment.metadata,
        template: &deployment.spec.template,
        paused: deployment.spec.paused == Some(true),
        replicas: Some(deployment.spec.replicas.unwrap_or(1)),
    };
    if let Some(refusal) = refused(&subject) {
        return refusal;
    }
    match &action.rollback {
        Some(rollback) => plan_rollback(rollback, deployment, replica_sets, actor),
        None => plan_in_place(action, &subject, actor, now),
    }
}

/// What a restart or scale needs to know of any workload kind.
pub struct Subject<'a> {
    pub kind: WorkloadKind,
    pub meta: &'a ObjectMeta,
    pub template: &'a PodTemplateSpec,
    /// A paused Deployment (other kinds cannot be paused).
    pub paused: bool,
    /// The replica count; None for a DaemonSet, which has none.
    pub replicas: Option<i32>,
}

impl Subject<'_> {
    fn name(&self) -> String {
        self.meta.name.clone().unwrap_or_default()
    }

    /// `statefulset/db`, as kubectl names it.
    fn target(&self) -> String {
        format!("{}/{}", self.kind.resource(), self.name())
    }
}

/// The consent annotation refuses every action on the workload.
pub fn refused(subject: &Subject<'_>) -> Option<Plan> {
    let disabled = subject
        .meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(CONSENT_ANNOTATION))
        .is_some_and(|v| v == "disabled");
    disabled.then(|| Plan::Refuse {
        reason: "RemediationDisabled",
        message: format!(
            "{} {} is annotated {CONSENT_ANNOTATION}=disabled: the operator never changes it",
            subject.kind.resource(),
            subject.name()
        ),
    })
}

/// A restart or a scale, which work alike on every kind that has them.
pub fn plan_in_place(
    action: &RemediationAction,
    subject: &Subject<'_>,
    actor: &Actor,
    now: Timestamp,
) -> Plan {
    match (&action.restart, &action.scale) {
        (Some(_), _) => plan_restart(subject, actor, now),
        (_, Some(scale)) => plan_scale(scale, subject, actor),
        _ => invalid(),
    }
}

fn invalid() -> Plan {
    Plan::Refuse {
        reason: "InvalidAction",
        message: "the action names none of rollback, restart or scale".into(),
    }
}

fn plan_rollback(
    rollback: &RollbackAction,
    deployment: &Deployment,
    replica_sets: &[ReplicaSet],
    actor: &Actor,
) -> Plan {
    let name = deployment.metadata.name.clone().unwrap_or_default();
    let to_revision = rollback.to_revision.unwrap_or(0);
    if to_revision < 0 {
        return not_found(to_revision);
    }
    let uid = deployment.metadata.uid.as_deref();
    // Only ReplicaSets this Deployment controls are its history.
    let history: Vec<(i64, &ReplicaSet)> = replica_sets
        .iter()
        .filter(|rs| {
            rs.metadata.owner_references.as_ref().is_some_and(|refs| {
                refs.iter()
                    .any(|o| o.controller == Some(true) && Some(o.uid.as_str()) == uid)
            })
        })
        .filter_map(|rs| revision_of(rs).map(|r| (r, rs)))
        .collect();

    let target = if to_revision > 0 {
        match history.iter().find(|(r, _)| *r == to_revision) {
            Some(found) => *found,
            None => return not_found(to_revision),
        }
    } else {
        // The second-newest revision, as kubectl picks it; its search starts from -1, so a
        // negative revision never counts.
        let mut sorted: Vec<_> = history.iter().filter(|(r, _)| *r >= 0).copied().collect();
        sorted.sort_by_key(|(r, _)| std::cmp::Reverse(*r));
        match sorted.get(1) {
            Some(previous) => *previous,
            None => {
                return Plan::Refuse {
                    reason: "NoHistory",
                    message: format!("no rollout history found for deployment {name:?}"),
                };
            }
        }
    };
    if deployment.spec.paused == Some(true) {
        return Plan::Refuse {
            reason: "Paused",
            message: format!(
                "deployment {name} is paused: resume it first (kubectl rollout resume deployment/{name}) and request a new action"
            ),
        };
    }
    let (target_revision, target_rs) = target;
    let mut template = target_rs.spec.template.clone().unwrap_or_default();
    let current = &deployment.spec.template;
    if equal_ignoring_hash(&template, current) {
        return Plan::Skip {
            reason: "AlreadyAtRevision",
            message: format!("current template already matches revision {target_revision}"),
        };
    }
    if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(POD_TEMPLATE_HASH);
    }

    // The Deployment keeps its own revision bookkeeping and takes the ReplicaSet's other annotations.
    let own = deployment.metadata.annotations.clone().unwrap_or_default();
    let mut annotations: BTreeMap<String, String> = KEEP_ON_ROLLBACK
        .iter()
        .filter_map(|k| own.get(*k).map(|v| ((*k).to_owned(), v.clone())))
        .collect();
    for (k, v) in target_rs.metadata.annotations.clone().unwrap_or_default() {
        if !KEEP_ON_ROLLBACK.contains(&k.as_str()) {
            annotations.insert(k, v);
        }
    }
    annotations.insert(INCIDENT_ANNOTATION.into(), actor.incident_name.clone());
    annotations.insert(ACTION_ANNOTATION.into(), actor.marker());

    let from_revision = revision(&deployment.metadata);
    let images_before = images(current);
    let images_after = images(&template);
    let summary = format!(
        "roll back deployment/{name} from revision {} ({}) to revision {target_revision} ({})",
        from_revision.map_or("?".to_owned(), |r: i64| r.to_string()),
        images_before.join(", "),
        images_after.join(", ")
    );
    Plan::Change(Planned {
        change: Change::JsonPatch(vec![
            json!({ "op": "replace", "path": "/spec/template", "value": template }),
            json!({ "op": "replace", "path": "/metadata/annotations", "value": annotations }),
        ]),
        from_revision,
        to_revision: Some(target_revision),
        images_before,
        images_after,
        summary,
    })
}

fn plan_restart(subject: &Subject<'_>, actor: &Actor, now: Timestamp) -> Plan {
    let target = subject.target();
    if subject.paused {
        return Plan::Refuse {
            reason: "Paused",
            message: format!(
                "{} {} is paused: resume it first (kubectl rollout resume {target}) and request a new action",
                subject.kind.resource(),
                subject.name()
            ),
        };
    }
    let images = images(subject.template);
    let stamp =
        jiff::fmt::strtime::format("%Y-%m-%dT%H:%M:%SZ", now).unwrap_or_else(|_| now.to_string());
    Plan::Change(Planned {
        change: Change::MergePatch(json!({
            "metadata": { "annotations": markers(actor) },
            "spec": { "template": { "metadata": { "annotations": { RESTARTED_AT_ANNOTATION: stamp } } } },
        })),
        from_revision: revision(subject.meta),
        to_revision: None,
        images_before: images.clone(),
        images_after: images,
        summary: format!("restart {target}: replace every pod"),
    })
}

fn plan_scale(scale: &ScaleAction, subject: &Subject<'_>, actor: &Actor) -> Plan {
    let Some(current) = subject.replicas else {
        // Admission refuses it too; a request written before that rule still fails clearly.
        return Plan::Refuse {
            reason: "NotScalable",
            message: format!(
                "{} runs one pod per eligible node and has no replica count: it cannot be scaled",
                subject.target()
            ),
        };
    };
    if current == scale.replicas {
        return Plan::Skip {
            reason: "AlreadyScaled",
            message: format!(
                "{} {} already has {current} replicas",
                subject.kind.resource(),
                subject.name()
            ),
        };
    }
    let images = images(subject.template);
    Plan::Change(Planned {
        change: Change::MergePatch(json!({
            "metadata": { "annotations": markers(actor) },
            "spec": { "replicas": scale.replicas },
        })),
        from_revision: revision(subject.meta),
        to_revision: None,
        images_before: images.clone(),
        images_after: images,
        summary: format!(
            "scale {} from {current} to {} replicas",
            subject.target(),
            scale.replicas
        ),
    })
}

pub(super) fn markers(actor: &Actor) -> Value {
    json!({ INCIDENT_ANNOTATION: actor.incident_name, ACTION_ANNOTATION: actor.marker() })
}

pub(super) fn not_found(revision: i64) -> Plan {
    Plan::Refuse {
        reason: "RevisionNotFound",
        message: format!("unable to find specified revision {revision} in history"),
    }
}

fn revision_of(rs: &ReplicaSet) -> Option<i64> {
    // Like kubectl, a ReplicaSet without the annotation is revision 0; a garbled one is skipped.
    match revision_text(&rs.metadata) {
        None => Some(0),
        Some(text) => text.parse().ok(),
    }
}

/// Container images of a pod template, in order.
pub fn images(template: &PodTemplateSpec) -> Vec<String> {
    template
        .spec
        .as_ref()
        .map(|s| {
            s.containers
                .iter()
                .map(|c| cut(c.image.as_deref().unwrap_or_default(), MAX_IMAGE))
                .take(MAX_IMAGES)
                .collect()
        })
        .unwrap_or_default()
}

/// Templates equal once the controller's pod-template-hash label is ignored (kubectl's test).
pub fn equal_ignoring_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    let strip = |t: &PodTemplateSpec| {
        let mut t = t.clone();
        if let Some(meta) = t.metadata.as_mut() {
            if let Some(labels) = meta.labels.as_mut() {
                labels.remove(POD_TEMPLATE_HASH);
            }
            // An emptied label map and no map mean the same template.
            if meta.labels.as_ref().is_some_and(|l| l.is_empty()) {
                meta.labels = None;
            }
        }
        serde_json::to_value(t).unwrap_or(Value::Null)
    };
    strip(a) == strip(b)
}
