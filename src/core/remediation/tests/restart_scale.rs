//! Remediation tests (core layer, tests): planning a restart or a scale, and the refusals every
//! kind shares (remediation disabled on the Deployment, an action of no kind).

use jiff::Timestamp;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::json;

use super::{
    CHANGE_CAUSE, GENERATION, INCIDENT, action, actor, annotate, apply, deployment, expect_change,
    expect_refusal, expect_skip, history, marker, merge_patch, paused, plan_at, restart, rollback,
    rollback_to, scale, template,
};
use crate::{
    api::metadata::{
        ACTION_ANNOTATION, CONSENT_ANNOTATION, INCIDENT_ANNOTATION, RESTARTED_AT_ANNOTATION,
    },
    core::remediation::plan::{images, plan},
};

#[test]
fn restart_sets_restarted_at_and_the_markers() {
    let (deployment, replica_sets) = history();
    let when: Timestamp = "2027-01-15T08:09:10.987654321Z".parse().expect("timestamp");
    let planned = expect_change(plan(&restart(), &deployment, &replica_sets, &actor(), when));
    assert_eq!(
        merge_patch(&planned.change),
        &json!({
            "metadata": { "annotations": {
                INCIDENT_ANNOTATION: INCIDENT,
                ACTION_ANNOTATION: marker(),
            } },
            "spec": { "template": { "metadata": { "annotations": {
                RESTARTED_AT_ANNOTATION: "2027-01-15T08:09:10Z",
            } } } },
        })
    );
    assert_eq!(planned.from_revision, Some(3));
    assert_eq!(planned.to_revision, None);
    assert_eq!(planned.images_before, vec!["web:v3"]);
    assert_eq!(planned.images_after, vec!["web:v3"]);
    assert_eq!(planned.summary, "restart deployment/web: replace every pod");
}

#[test]
fn restart_stamp_is_rfc3339_seconds_in_utc() {
    let deployment = deployment(&["web:v3"]);
    for (seconds, expected) in [
        (0, "1970-01-01T00:00:00Z"),
        (1_800_000_000, "2027-01-15T08:00:00Z"),
        (951_825_599, "2000-02-29T11:59:59Z"),
    ] {
        let when = Timestamp::from_second(seconds).expect("timestamp");
        let planned = expect_change(plan(&restart(), &deployment, &[], &actor(), when));
        let stamp = &merge_patch(&planned.change)["spec"]["template"]["metadata"]["annotations"]
            [RESTARTED_AT_ANNOTATION];
        assert_eq!(stamp, expected);
        // And it reads back as the same instant.
        let parsed: Timestamp = stamp.as_str().expect("string").parse().expect("RFC 3339");
        assert_eq!(parsed, when);
    }
}

#[test]
fn restart_patch_keeps_the_template_and_other_annotations() {
    let (deployment, _) = history();
    let planned = expect_change(plan_at(&restart(), &deployment, &[]));
    let after = apply(&deployment, &planned.change);
    assert_eq!(after.metadata.generation, Some(GENERATION + 1));
    assert_eq!(images(&after.spec.template), vec!["web:v3"]);
    let annotations = after.metadata.annotations.clone().expect("annotations");
    assert_eq!(
        annotations.get(CHANGE_CAUSE).map(String::as_str),
        Some("deploy v3")
    );
    assert_eq!(annotations.get(ACTION_ANNOTATION), Some(&marker()));
    let pod_annotations = after
        .spec
        .template
        .metadata
        .and_then(|m| m.annotations)
        .expect("pod annotations");
    assert_eq!(
        pod_annotations
            .get(RESTARTED_AT_ANNOTATION)
            .map(String::as_str),
        Some("2027-01-15T08:00:00Z")
    );
}

#[test]
fn restart_of_a_paused_deployment_is_refused() {
    let deployment = paused(deployment(&["web:v3"]));
    let (reason, message) = expect_refusal(plan_at(&restart(), &deployment, &[]));
    assert_eq!(reason, "Paused");
    assert!(message.contains("paused"), "{message}");
}

#[test]
fn scale_sets_replicas_and_the_markers() {
    let (deployment, replica_sets) = history();
    let planned = expect_change(plan_at(&scale(5), &deployment, &replica_sets));
    assert_eq!(
        merge_patch(&planned.change),
        &json!({
            "metadata": { "annotations": {
                INCIDENT_ANNOTATION: INCIDENT,
                ACTION_ANNOTATION: marker(),
            } },
            "spec": { "replicas": 5 },
        })
    );
    assert_eq!(planned.from_revision, Some(3));
    assert_eq!(planned.to_revision, None);
    assert_eq!(planned.images_before, vec!["web:v3"]);
    assert_eq!(planned.images_after, vec!["web:v3"]);
    assert_eq!(planned.summary, "scale deployment/web from 3 to 5 replicas");

    let after = apply(&deployment, &planned.change);
    assert_eq!(after.spec.replicas, Some(5));
    assert_eq!(after.metadata.generation, Some(GENERATION + 1));

    // To zero, too.
    let planned = expect_change(plan_at(&scale(0), &deployment, &replica_sets));
    assert_eq!(merge_patch(&planned.change)["spec"]["replicas"], 0);
}

#[test]
fn scale_to_the_current_count_is_skipped() {
    let deployment = deployment(&["web:v3"]);
    let (reason, message) = expect_skip(plan_at(&scale(3), &deployment, &[]));
    assert_eq!(reason, "AlreadyScaled");
    assert_eq!(message, "deployment web already has 3 replicas");

    // Unset replicas mean 1, as the API server defaults them.
    let mut unset = deployment;
    unset.spec.replicas = None;
    let (reason, _) = expect_skip(plan_at(&scale(1), &unset, &[]));
    assert_eq!(reason, "AlreadyScaled");
    let planned = expect_change(plan_at(&scale(2), &unset, &[]));
    assert_eq!(planned.summary, "scale deployment/web from 1 to 2 replicas");
}

#[test]
fn scale_works_on_a_paused_deployment_like_kubectl_scale() {
    let deployment = paused(deployment(&["web:v3"]));
    expect_change(plan_at(&scale(6), &deployment, &[]));
}

#[test]
fn images_of_a_template_without_spec_are_empty() {
    assert!(images(&PodTemplateSpec::default()).is_empty());
    let mut no_image = template(&["x"], None);
    no_image.spec.as_mut().expect("spec").containers[0].image = None;
    assert_eq!(images(&no_image), vec![String::new()]);
}

#[test]
fn consent_annotation_refuses_every_kind() {
    let (deployment, replica_sets) = history();
    let deployment = annotate(deployment, CONSENT_ANNOTATION, "disabled");
    for action in [
        rollback(),
        rollback_to(Some(1)),
        restart(),
        scale(5),
        scale(3),
    ] {
        let (reason, message) = expect_refusal(plan_at(&action, &deployment, &replica_sets));
        assert_eq!(reason, "RemediationDisabled", "{action:?}");
        assert!(
            message.contains("incident.dev/remediation=disabled"),
            "{message}"
        );
        assert!(message.contains("web"), "{message}");
    }
    // Before anything else, even a missing revision or a pause.
    let deployment = paused(deployment);
    for action in [rollback_to(Some(9)), rollback_to(Some(-1)), restart()] {
        let (reason, _) = expect_refusal(plan_at(&action, &deployment, &[]));
        assert_eq!(reason, "RemediationDisabled");
    }
}

#[test]
fn other_consent_values_allow_remediation() {
    let (deployment, replica_sets) = history();
    for value in ["enabled", "Disabled", ""] {
        let deployment = annotate(deployment.clone(), CONSENT_ANNOTATION, value);
        expect_change(plan_at(&rollback(), &deployment, &replica_sets));
        expect_change(plan_at(&restart(), &deployment, &replica_sets));
        expect_change(plan_at(&scale(5), &deployment, &replica_sets));
    }
}

#[test]
fn an_action_of_no_kind_is_refused() {
    let (deployment, replica_sets) = history();
    let (reason, _) = expect_refusal(plan_at(&action("empty"), &deployment, &replica_sets));
    assert_eq!(reason, "InvalidAction");
}
