//! Remediation tests (core layer, tests): which revision a rollback picks from the history, and
//! when it refuses (missing revision, no history, paused) or skips (already at the revision).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::{
    DEPLOY, DEPLOY_UID, HASH, OTHER_UID, REVISION, annotate, controller_ref, deployment,
    expect_change, expect_refusal, expect_skip, history, map, patched_template, paused, plain_ref,
    plan_at, replica_set, restored, rev, rollback, rollback_to, template,
};
use crate::core::remediation::plan::equal_ignoring_hash;

#[test]
fn rollback_to_the_previous_revision_picks_the_second_highest() {
    let (deployment, replica_sets) = history();
    let planned = expect_change(plan_at(&rollback(), &deployment, &replica_sets));
    assert_eq!(planned.from_revision, Some(3));
    assert_eq!(planned.to_revision, Some(2));
    assert_eq!(planned.images_before, vec!["web:v3"]);
    assert_eq!(planned.images_after, vec!["web:v2"]);
    assert_eq!(patched_template(&planned), &restored(&replica_sets[1]));
    assert_eq!(
        planned.summary,
        "roll back deployment/web from revision 3 (web:v3) to revision 2 (web:v2)"
    );
}

#[test]
fn rollback_with_to_revision_zero_is_the_previous_revision() {
    let (deployment, replica_sets) = history();
    assert_eq!(
        plan_at(&rollback_to(Some(0)), &deployment, &replica_sets),
        plan_at(&rollback_to(None), &deployment, &replica_sets)
    );
}

#[test]
fn rollback_previous_revision_does_not_depend_on_list_order() {
    let deployment = deployment(&["web:v4"]);
    let orders = [
        vec![rev(4), rev(3), rev(2), rev(1)],
        vec![rev(1), rev(2), rev(3), rev(4)],
        vec![rev(2), rev(4), rev(1), rev(3)],
        vec![rev(3), rev(1), rev(4), rev(2)],
    ];
    for replica_sets in orders {
        let planned = expect_change(plan_at(&rollback(), &deployment, &replica_sets));
        assert_eq!(planned.to_revision, Some(3), "order {replica_sets:?}");
        assert_eq!(planned.images_after, vec!["web:v3"]);
    }
}

#[test]
fn rollback_previous_revision_skips_gaps() {
    let deployment = deployment(&["web:v4"]);
    for replica_sets in [
        vec![rev(1), rev(3), rev(4)],
        vec![rev(4), rev(1), rev(3)],
        vec![rev(3), rev(4), rev(1)],
    ] {
        let planned = expect_change(plan_at(&rollback(), &deployment, &replica_sets));
        assert_eq!(planned.to_revision, Some(3));
        assert_eq!(patched_template(&planned), &restored(&rev(3)));
    }
    // Large gaps too: 2, 10, 7 -> 7.
    let deployment = annotate(self::deployment(&["web:v10"]), REVISION, "10");
    let planned = expect_change(plan_at(
        &rollback(),
        &deployment,
        &[rev(2), rev(10), rev(7)],
    ));
    assert_eq!(planned.to_revision, Some(7));
    assert_eq!(planned.from_revision, Some(10));
}

#[test]
fn rollback_to_an_explicit_revision() {
    let (deployment, replica_sets) = history();
    let planned = expect_change(plan_at(&rollback_to(Some(1)), &deployment, &replica_sets));
    assert_eq!(planned.from_revision, Some(3));
    assert_eq!(planned.to_revision, Some(1));
    assert_eq!(planned.images_after, vec!["web:v1"]);
    assert_eq!(patched_template(&planned), &restored(&replica_sets[0]));
}

#[test]
fn rollback_to_an_explicit_revision_that_is_not_the_previous_one_in_any_order() {
    let deployment = deployment(&["web:v5"]);
    let replica_sets = vec![rev(5), rev(2), rev(4), rev(1)];
    let planned = expect_change(plan_at(&rollback_to(Some(2)), &deployment, &replica_sets));
    assert_eq!(planned.to_revision, Some(2));
    assert_eq!(patched_template(&planned), &restored(&rev(2)));
}

#[test]
fn rollback_to_a_missing_revision_uses_kubectls_message() {
    let (deployment, replica_sets) = history();
    for revision in [4, 9, i64::MAX] {
        let (reason, message) = expect_refusal(plan_at(
            &rollback_to(Some(revision)),
            &deployment,
            &replica_sets,
        ));
        assert_eq!(reason, "RevisionNotFound");
        assert_eq!(
            message,
            format!("unable to find specified revision {revision} in history")
        );
    }
}

#[test]
fn rollback_to_a_negative_revision_is_not_found() {
    let (deployment, replica_sets) = history();
    for revision in [-1, -3, i64::MIN] {
        let (reason, message) = expect_refusal(plan_at(
            &rollback_to(Some(revision)),
            &deployment,
            &replica_sets,
        ));
        assert_eq!(reason, "RevisionNotFound");
        assert_eq!(
            message,
            format!("unable to find specified revision {revision} in history")
        );
    }
    // Even with no history at all: kubectl checks the sign first.
    let (reason, _) = expect_refusal(plan_at(&rollback_to(Some(-1)), &deployment, &[]));
    assert_eq!(reason, "RevisionNotFound");
}

#[test]
fn rollback_without_previous_revision_has_no_history() {
    let deployment = deployment(&["web:v3"]);
    for replica_sets in [vec![], vec![rev(3)]] {
        let (reason, message) = expect_refusal(plan_at(&rollback(), &deployment, &replica_sets));
        assert_eq!(reason, "NoHistory");
        assert_eq!(message, "no rollout history found for deployment \"web\"");
    }
    // An explicit revision that exists needs no second one.
    let planned = expect_change(plan_at(&rollback_to(Some(1)), &deployment, &[rev(1)]));
    assert_eq!(planned.to_revision, Some(1));
}

#[test]
fn rollback_ignores_replica_sets_the_deployment_does_not_control() {
    let deployment = deployment(&["web:v3"]);
    let foreign = |revision: i64, owners: Vec<OwnerReference>| {
        replica_set(
            Some(&revision.to_string()),
            &[&format!("other:v{revision}")],
            owners,
        )
    };
    let strangers = vec![
        // Controlled by another Deployment.
        foreign(9, vec![controller_ref(OTHER_UID, "api")]),
        // Owned by web, but not as controller (controller unset, and explicitly false).
        foreign(8, vec![plain_ref(DEPLOY_UID, DEPLOY)]),
        foreign(
            7,
            vec![OwnerReference {
                controller: Some(false),
                ..controller_ref(DEPLOY_UID, DEPLOY)
            }],
        ),
        // Owned by web without control, controlled by another.
        foreign(
            6,
            vec![
                plain_ref(DEPLOY_UID, DEPLOY),
                controller_ref(OTHER_UID, "api"),
            ],
        ),
        // A controller reference with web's name but another uid (a deleted and re-created web).
        foreign(5, vec![controller_ref(OTHER_UID, DEPLOY)]),
        // No owner at all.
        foreign(4, vec![]),
    ];

    let mut replica_sets = strangers.clone();
    replica_sets.extend([rev(1), rev(3)]);
    let planned = expect_change(plan_at(&rollback(), &deployment, &replica_sets));
    assert_eq!(planned.to_revision, Some(1));
    assert_eq!(planned.images_after, vec!["web:v1"]);

    // Their revisions cannot be named either.
    for revision in 4..=9 {
        let (reason, _) = expect_refusal(plan_at(
            &rollback_to(Some(revision)),
            &deployment,
            &replica_sets,
        ));
        assert_eq!(reason, "RevisionNotFound", "revision {revision}");
    }

    // With only one revision of its own, web has no history, however many strangers there are.
    let mut replica_sets = strangers;
    replica_sets.push(rev(3));
    let (reason, _) = expect_refusal(plan_at(&rollback(), &deployment, &replica_sets));
    assert_eq!(reason, "NoHistory");
}

#[test]
fn rollback_counts_a_controlled_replica_set_among_several_owner_references() {
    let deployment = deployment(&["web:v3"]);
    let shared = replica_set(
        Some("2"),
        &["web:v2"],
        vec![
            plain_ref(OTHER_UID, "api"),
            controller_ref(DEPLOY_UID, DEPLOY),
        ],
    );
    let planned = expect_change(plan_at(&rollback(), &deployment, &[shared, rev(3)]));
    assert_eq!(planned.to_revision, Some(2));
}

#[test]
fn rollback_counts_a_replica_set_without_revision_as_revision_zero() {
    let deployment = deployment(&["web:v3"]);
    let unnumbered = replica_set(None, &["web:v0"], vec![controller_ref(DEPLOY_UID, DEPLOY)]);
    let planned = expect_change(plan_at(
        &rollback(),
        &deployment,
        &[unnumbered.clone(), rev(3)],
    ));
    assert_eq!(planned.to_revision, Some(0));
    assert_eq!(planned.images_after, vec!["web:v0"]);
    assert_eq!(patched_template(&planned), &restored(&unnumbered));

    // Below any numbered revision.
    let planned = expect_change(plan_at(
        &rollback(),
        &deployment,
        &[unnumbered, rev(1), rev(3)],
    ));
    assert_eq!(planned.to_revision, Some(1));
}

#[test]
fn rollback_skips_replica_sets_with_a_garbled_revision() {
    let deployment = deployment(&["web:v3"]);
    let garbled = |text: &str| {
        replica_set(
            Some(text),
            &[&format!("web:{text}")],
            vec![controller_ref(DEPLOY_UID, DEPLOY)],
        )
    };
    let replica_sets = vec![garbled("x"), garbled("2.5"), rev(1), garbled(""), rev(3)];
    let planned = expect_change(plan_at(&rollback(), &deployment, &replica_sets));
    assert_eq!(planned.to_revision, Some(1));

    let (reason, _) = expect_refusal(plan_at(&rollback(), &deployment, &[garbled("x"), rev(3)]));
    assert_eq!(reason, "NoHistory");
}

#[test]
fn rollback_ignores_negative_revisions_when_looking_for_the_previous_one() {
    // kubectl starts its search from revision -1: a negative revision is never "previous".
    let deployment = deployment(&["web:v3"]);
    for negative in ["-1", "-2"] {
        let odd = replica_set(
            Some(negative),
            &["web:odd"],
            vec![controller_ref(DEPLOY_UID, DEPLOY)],
        );
        let (reason, message) =
            expect_refusal(plan_at(&rollback(), &deployment, &[odd.clone(), rev(3)]));
        assert_eq!(reason, "NoHistory");
        assert_eq!(message, "no rollout history found for deployment \"web\"");
        let planned = expect_change(plan_at(&rollback(), &deployment, &[odd, rev(1), rev(3)]));
        assert_eq!(planned.to_revision, Some(1));
    }
}

#[test]
fn rollback_of_a_paused_deployment_is_refused() {
    let (deployment, replica_sets) = history();
    let deployment = paused(deployment);
    for action in [rollback(), rollback_to(Some(1)), rollback_to(Some(2))] {
        let (reason, message) = expect_refusal(plan_at(&action, &deployment, &replica_sets));
        assert_eq!(reason, "Paused");
        assert!(message.contains("paused"), "{message}");
        assert!(
            message.contains("kubectl rollout resume deployment/web"),
            "{message}"
        );
    }
}

#[test]
fn rollback_of_a_paused_deployment_reports_history_errors_first() {
    let deployment = paused(deployment(&["web:v3"]));
    let (reason, message) = expect_refusal(plan_at(
        &rollback_to(Some(9)),
        &deployment,
        &[rev(1), rev(3)],
    ));
    assert_eq!(reason, "RevisionNotFound");
    assert_eq!(message, "unable to find specified revision 9 in history");

    let (reason, _) = expect_refusal(plan_at(
        &rollback_to(Some(-1)),
        &deployment,
        &[rev(1), rev(3)],
    ));
    assert_eq!(reason, "RevisionNotFound");

    let (reason, _) = expect_refusal(plan_at(&rollback(), &deployment, &[rev(3)]));
    assert_eq!(reason, "NoHistory");
}

#[test]
fn paused_false_does_not_refuse() {
    let (mut deployment, replica_sets) = history();
    deployment.spec.paused = Some(false);
    expect_change(plan_at(&rollback(), &deployment, &replica_sets));
}

#[test]
fn rollback_to_the_current_template_is_skipped() {
    // web runs revision 2's template although revision 3 is the newest (say, edited back by hand):
    // the target only differs from it by pod-template-hash.
    let deployment = deployment(&["web:v2"]);
    let replica_sets = vec![rev(1), rev(2), rev(3)];
    let (reason, message) = expect_skip(plan_at(&rollback(), &deployment, &replica_sets));
    assert_eq!(reason, "AlreadyAtRevision");
    assert_eq!(message, "current template already matches revision 2");

    // Same with an explicit revision.
    let deployment = self::deployment(&["web:v3"]);
    let (reason, message) = expect_skip(plan_at(&rollback_to(Some(3)), &deployment, &replica_sets));
    assert_eq!(reason, "AlreadyAtRevision");
    assert_eq!(message, "current template already matches revision 3");
}

#[test]
fn skipping_needs_the_templates_to_match_beyond_the_hash() {
    let replica_sets = vec![rev(1), rev(2), rev(3)];
    // Another label on the current template.
    let mut deployment = deployment(&["web:v2"]);
    deployment
        .spec
        .template
        .metadata
        .as_mut()
        .and_then(|m| m.labels.as_mut())
        .expect("labels")
        .insert("track".to_owned(), "canary".to_owned());
    expect_change(plan_at(&rollback(), &deployment, &replica_sets));

    // A different pod-template-hash on the current template still matches.
    let mut deployment = self::deployment(&["web:v2"]);
    deployment
        .spec
        .template
        .metadata
        .as_mut()
        .and_then(|m| m.labels.as_mut())
        .expect("labels")
        .insert(HASH.to_owned(), "stale".to_owned());
    expect_skip(plan_at(&rollback(), &deployment, &replica_sets));
}

#[test]
fn a_template_labelled_only_by_its_hash_matches_an_unlabelled_one() {
    let mut target = rev(2);
    target
        .spec
        .template
        .as_mut()
        .and_then(|t| t.metadata.as_mut())
        .expect("metadata")
        .labels = Some(map(&[(HASH, "abc")]));
    let mut deployment = deployment(&["web:v2"]);
    deployment.spec.template.metadata = Some(ObjectMeta::default());
    let (reason, _) = expect_skip(plan_at(&rollback(), &deployment, &[rev(1), target, rev(3)]));
    assert_eq!(reason, "AlreadyAtRevision");
}

#[test]
fn equal_ignoring_hash_is_kubectls_comparison() {
    let a = template(&["web:v1"], Some("aaa"));
    assert!(equal_ignoring_hash(&a, &template(&["web:v1"], Some("bbb"))));
    assert!(equal_ignoring_hash(&a, &template(&["web:v1"], None)));
    assert!(equal_ignoring_hash(&template(&["web:v1"], None), &a));
    assert!(!equal_ignoring_hash(
        &a,
        &template(&["web:v2"], Some("aaa"))
    ));
    assert!(!equal_ignoring_hash(
        &a,
        &template(&["web:v1", "side:v1"], Some("aaa"))
    ));
    let mut labelled = template(&["web:v1"], None);
    labelled
        .metadata
        .as_mut()
        .and_then(|m| m.labels.as_mut())
        .expect("labels")
        .insert("tier".to_owned(), "front".to_owned());
    assert!(!equal_ignoring_hash(&a, &labelled));
}
