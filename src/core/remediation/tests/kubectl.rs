//! Remediation tests (core layer, tests): the rollback target equals kubectl's, checked by property
//! tests against a literal transcription of `kubectl rollout undo`'s history search.

use k8s_openapi::{
    api::{
        apps::v1::{Deployment, ReplicaSet, ReplicaSetSpec},
        core::v1::PodTemplateSpec,
    },
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time},
};
use proptest::prelude::*;
use serde_json::Value;

use super::{
    CHANGE_CAUSE, DEPLOY, DEPLOY_UID, HASH, NAMESPACE, OTHER_UID, REVISION, at, controller_ref,
    deployment, map, patched_template, plain_ref, plan_at, restored, rollback_to, selector,
    template,
};
use crate::core::remediation::plan::{Plan, images};

/// Go's `strconv.ParseInt(s, 10, 64)`, which kubectl's `deploymentutil.Revision` uses.
fn go_parse_int(s: &str) -> Option<i64> {
    let (negative, digits) = match s.as_bytes().first() {
        Some(b'+') => (false, &s[1..]),
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.bytes().try_fold(0i64, |value, b| {
        let digit = i64::from(b - b'0');
        let value = value.checked_mul(10)?;
        if negative {
            value.checked_sub(digit)
        } else {
            value.checked_add(digit)
        }
    })
}

/// `deploymentutil.Revision`: no annotation is revision 0.
fn kubectl_revision(rs: &ReplicaSet) -> Option<i64> {
    match rs
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
    {
        None => Some(0),
        Some(text) => go_parse_int(text),
    }
}

/// `EqualIgnoreHash`, on the JSON form.
fn kubectl_equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    let strip = |t: &PodTemplateSpec| {
        let mut value = serde_json::to_value(t).expect("serialize template");
        if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
            if let Some(labels) = meta.get_mut("labels").and_then(Value::as_object_mut) {
                labels.remove(HASH);
                if labels.is_empty() {
                    meta.remove("labels");
                }
            }
            if meta.is_empty() {
                value.as_object_mut().expect("object").remove("metadata");
            }
        }
        value
    };
    strip(a) == strip(b)
}

/// `DeploymentRollbacker.Rollback` up to the patch: the index of the ReplicaSet to restore, or the
/// error kubectl reports (reason, message). A literal transcription of kubectl's code.
fn kubectl_rollback_target(
    deployment: &Deployment,
    replica_sets: &[ReplicaSet],
    to_revision: i64,
) -> Result<usize, (&'static str, String)> {
    let not_found = || {
        (
            "RevisionNotFound",
            format!("unable to find specified revision {to_revision} in history"),
        )
    };
    if to_revision < 0 {
        return Err(not_found());
    }
    // listReplicaSets: those whose controller (the first controller reference) is the Deployment.
    let mut owned: Vec<usize> = (0..replica_sets.len())
        .filter(|&i| {
            replica_sets[i]
                .metadata
                .owner_references
                .iter()
                .flatten()
                .find(|o| o.controller == Some(true))
                .is_some_and(|o| Some(o.uid.as_str()) == deployment.metadata.uid.as_deref())
        })
        .collect();
    // findNewReplicaSet sorts the list in place by creation time, then name...
    owned.sort_by(|&a, &b| {
        let key = |i: usize| {
            (
                replica_sets[i]
                    .metadata
                    .creation_timestamp
                    .as_ref()
                    .map(|t| t.0),
                replica_sets[i].metadata.name.clone(),
            )
        };
        key(a).cmp(&key(b))
    });
    // ... and takes the oldest with the Deployment's template; findOldReplicaSets the others, in
    // that sorted order. allRSs = old ones, then the new one.
    let new = owned.iter().copied().find(|&i| {
        kubectl_equal_ignore_hash(
            replica_sets[i].spec.template.as_ref().expect("template"),
            &deployment.spec.template,
        )
    });
    let mut all: Vec<usize> = owned.iter().copied().filter(|&i| Some(i) != new).collect();
    all.extend(new);

    // deploymentRevision.
    let (mut latest, mut latest_revision) = (None, -1i64);
    let (mut previous, mut previous_revision) = (None, -1i64);
    for i in all {
        let Some(v) = kubectl_revision(&replica_sets[i]) else {
            continue;
        };
        if to_revision == 0 {
            if latest_revision < v {
                previous_revision = latest_revision;
                previous = latest;
                latest_revision = v;
                latest = Some(i);
            } else if previous_revision < v {
                previous_revision = v;
                previous = Some(i);
            }
        } else if to_revision == v {
            return Ok(i);
        }
    }
    if to_revision > 0 {
        return Err(not_found());
    }
    previous.ok_or_else(|| {
        (
            "NoHistory",
            format!(
                "no rollout history found for deployment {:?}",
                deployment.metadata.name.as_deref().unwrap_or_default()
            ),
        )
    })
}

#[derive(Clone, Copy, Debug)]
enum Owner {
    /// Controlled by web.
    Web,
    /// Owned by web, not as controller.
    WebNotController,
    /// Controlled by another Deployment.
    Other,
    /// Owned by web, controlled by another Deployment.
    WebAndOtherController,
    /// Owned by another, controlled by web.
    OtherAndWebController,
    /// No owner.
    Orphan,
}

fn owners(owner: Owner) -> Vec<OwnerReference> {
    match owner {
        Owner::Web => vec![controller_ref(DEPLOY_UID, DEPLOY)],
        Owner::WebNotController => vec![plain_ref(DEPLOY_UID, DEPLOY)],
        Owner::Other => vec![controller_ref(OTHER_UID, "api")],
        Owner::WebAndOtherController => vec![
            plain_ref(DEPLOY_UID, DEPLOY),
            controller_ref(OTHER_UID, "api"),
        ],
        Owner::OtherAndWebController => vec![
            plain_ref(OTHER_UID, "api"),
            controller_ref(DEPLOY_UID, DEPLOY),
        ],
        Owner::Orphan => vec![],
    }
}

fn any_owner() -> impl Strategy<Value = Owner> {
    prop_oneof![
        6 => Just(Owner::Web),
        1 => Just(Owner::WebNotController),
        1 => Just(Owner::Other),
        1 => Just(Owner::WebAndOtherController),
        1 => Just(Owner::OtherAndWebController),
        1 => Just(Owner::Orphan),
    ]
}

/// Revision annotations as found in the wild: none, numbers (a few negative), and text that is or
/// is not a Go integer.
fn any_revision_annotation() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        2 => Just(None),
        8 => (-3i64..12).prop_map(|r| Some(r.to_string())),
        2 => prop::sample::select(vec![
            "", "x", "1.5", " 2", "2 ", "+4", "007", "-0", "1e3", "0x10",
            "99999999999999999999", "9223372036854775807",
        ])
        .prop_map(|s| Some(s.to_owned())),
    ]
}

/// ReplicaSet `index` of the history: its own template (image `img:<index>`, hash `h<index>`).
fn history_replica_set(
    index: usize,
    revision: Option<String>,
    owner: Owner,
    created: Option<i64>,
) -> ReplicaSet {
    let hash = format!("h{index}");
    let mut annotations = map(&[(CHANGE_CAUSE, &format!("deploy {index}"))]);
    if let Some(revision) = revision {
        annotations.insert(REVISION.to_owned(), revision);
    }
    let owner_references = owners(owner);
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(format!("{DEPLOY}-{index:02}")),
            namespace: Some(NAMESPACE.to_owned()),
            labels: Some(map(&[("app", DEPLOY), (HASH, &hash)])),
            annotations: Some(annotations),
            owner_references: (!owner_references.is_empty()).then_some(owner_references),
            creation_timestamp: created.map(|s| Time(at(s))),
            ..ObjectMeta::default()
        },
        spec: ReplicaSetSpec {
            selector: selector(),
            template: Some(template(&[&format!("img:{index}")], Some(&hash))),
            ..ReplicaSetSpec::default()
        },
        status: None,
    }
}

fn any_to_revision() -> impl Strategy<Value = Option<i64>> {
    prop_oneof![
        3 => Just(None),
        1 => Just(Some(0)),
        3 => (-2i64..12).prop_map(Some),
    ]
}

/// Checks the planner against kubectl for one history.
fn check_against_kubectl(
    deployment: &Deployment,
    replica_sets: &[ReplicaSet],
    to_revision: Option<i64>,
) -> Result<(), TestCaseError> {
    let action = rollback_to(to_revision);
    let actual = plan_at(&action, deployment, replica_sets);
    match kubectl_rollback_target(deployment, replica_sets, to_revision.unwrap_or(0)) {
        Err((reason, message)) => {
            prop_assert_eq!(actual, Plan::Refuse { reason, message });
        }
        Ok(_) if deployment.spec.paused == Some(true) => {
            let (reason, _) = match actual {
                Plan::Refuse { reason, message } => (reason, message),
                other => {
                    return Err(TestCaseError::fail(format!(
                        "expected Paused, got {other:?}"
                    )));
                }
            };
            prop_assert_eq!(reason, "Paused");
        }
        Ok(i) => {
            let target = &replica_sets[i];
            let revision = kubectl_revision(target).expect("a revision");
            let target_template = target.spec.template.as_ref().expect("template");
            if kubectl_equal_ignore_hash(target_template, &deployment.spec.template) {
                prop_assert_eq!(
                    actual,
                    Plan::Skip {
                        reason: "AlreadyAtRevision",
                        message: format!("current template already matches revision {revision}"),
                    }
                );
            } else {
                let planned = match actual {
                    Plan::Change(planned) => planned,
                    other => {
                        return Err(TestCaseError::fail(format!(
                            "expected a rollback to {} (revision {revision}), got {other:?}",
                            target.metadata.name.as_deref().unwrap_or_default()
                        )));
                    }
                };
                prop_assert_eq!(planned.to_revision, Some(revision));
                prop_assert_eq!(patched_template(&planned), &restored(target));
                prop_assert_eq!(planned.images_after, images(target_template));
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Any history, revisions repeated or not, listed in name order as the API server lists them,
    /// none of them the Deployment's current template.
    #[test]
    fn rollback_target_is_kubectls(
        history in prop::collection::vec((any_revision_annotation(), any_owner()), 0..10),
        to_revision in any_to_revision(),
        paused in any::<bool>(),
    ) {
        let mut deployment = deployment(&["img:current"]);
        deployment.spec.paused = Some(paused);
        let replica_sets: Vec<ReplicaSet> = history
            .into_iter()
            .enumerate()
            .map(|(i, (revision, owner))| history_replica_set(i, revision, owner, None))
            .collect();
        check_against_kubectl(&deployment, &replica_sets, to_revision)?;
    }

    /// Distinct revisions in any list order and with any creation times, one of them possibly the
    /// Deployment's current template.
    #[test]
    fn rollback_target_is_kubectls_with_the_current_replica_set(
        revisions in prop::sample::subsequence((-3i64..16).collect::<Vec<_>>(), 0..10)
            .prop_shuffle(),
        details in prop::collection::vec((any_owner(), prop::option::of(0i64..5), any::<bool>()), 10),
        current in prop::option::of(0usize..10),
        to_revision in any_to_revision(),
        paused in prop::bool::weighted(0.2),
    ) {
        let replica_sets: Vec<ReplicaSet> = revisions
            .iter()
            .zip(&details)
            .enumerate()
            .map(|(i, (&revision, &(owner, created, unannotated_zero)))| {
                let annotation = (revision != 0 || !unannotated_zero).then(|| revision.to_string());
                history_replica_set(i, annotation, owner, created)
            })
            .collect();
        let mut deployment = deployment(&["img:current"]);
        deployment.spec.paused = Some(paused);
        if let Some(rs) = current.and_then(|c| replica_sets.get(c)) {
            // As the Deployment has it: the ReplicaSet's template without the hash.
            deployment.spec.template =
                serde_json::from_value(restored(rs)).expect("template");
        }
        check_against_kubectl(&deployment, &replica_sets, to_revision)?;
    }
}

#[test]
fn go_parse_int_is_gos() {
    assert_eq!(go_parse_int("0"), Some(0));
    assert_eq!(go_parse_int("-0"), Some(0));
    assert_eq!(go_parse_int("+4"), Some(4));
    assert_eq!(go_parse_int("007"), Some(7));
    assert_eq!(go_parse_int("-12"), Some(-12));
    assert_eq!(go_parse_int("9223372036854775807"), Some(i64::MAX));
    assert_eq!(go_parse_int("-9223372036854775808"), Some(i64::MIN));
    for bad in [
        "",
        "+",
        "-",
        " 2",
        "2 ",
        "1.5",
        "1e3",
        "0x10",
        "9223372036854775808",
        "x",
    ] {
        assert_eq!(go_parse_int(bad), None, "{bad:?}");
    }
}
