//! Step tests (core layer, tests): a new action is requested, then started, skipped (dry run) or
//! failed; kind labels.

use jiff::SignedDuration;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{
    super::{
        ACTION, DEPLOY, GENERATION, actor, annotate, at, expect_change, history, merge_patch, now,
        paused, restart, rollback, rollback_to, scale,
    },
    entry_types, facts, step_at, stored,
};
use crate::{
    api::{
        ActionKind, ActionPhase, ActionStatus, EntryType, RemediationAction,
        metadata::{CONSENT_ANNOTATION, RESTARTED_AT_ANNOTATION},
    },
    core::{
        remediation::{
            plan::plan,
            step::{kind_label, step},
        },
        timeline::Entry,
    },
};

#[test]
fn a_new_action_is_requested_then_started_with_its_plan() {
    let (deployment, replica_sets) = history();
    let when = at(0)
        .checked_add(SignedDuration::from_millis(750))
        .expect("timestamp");
    let step = step_at(
        Some(&rollback()),
        None,
        Some(&deployment),
        &replica_sets,
        when,
    );

    assert_eq!(
        step.entries,
        vec![
            Entry {
                type_: EntryType::ActionRequested,
                message: "Rollback of deployment/web to the previous revision requested as action undo"
                    .to_owned(),
                actor: Some("ana".to_owned()),
                warning: false,
            },
            Entry {
                type_: EntryType::ActionStarted,
                message:
                    "Started: roll back deployment/web from revision 3 (web:v3) to revision 2 (web:v2)"
                        .to_owned(),
                actor: None,
                warning: false,
            },
        ]
    );
    let expected_plan = expect_change(plan(
        &rollback(),
        &deployment,
        &replica_sets,
        &actor(),
        now(),
    ));
    assert_eq!(step.change, Some(expected_plan.change));
    assert_eq!(step.wake_at, None);
    assert_eq!(
        step.status,
        ActionStatus {
            name: ACTION.to_owned(),
            kind: ActionKind::Rollback,
            deployment: DEPLOY.to_owned(),
            workload_kind: None,
            phase: ActionPhase::Running,
            reason: Some("Applying".to_owned()),
            message: Some(
                "roll back deployment/web from revision 3 (web:v3) to revision 2 (web:v2)"
                    .to_owned()
            ),
            from_revision: Some(3),
            to_revision: Some(2),
            images_before: vec!["web:v3".to_owned()],
            images_after: vec!["web:v2".to_owned()],
            // Whole seconds, as the status stores them.
            started_at: Some(Time(now())),
            finished_at: None,
            planned_generation: Some(GENERATION),
            applied_generation: None,
            applied_at: None,
        }
    );
    assert_eq!(stored(&step.status), step.status);
}

#[test]
fn requested_entries_name_the_action() {
    let (deployment, replica_sets) = history();
    let cases = [
        (
            rollback_to(Some(1)),
            "Rollback of deployment/web to revision 1 requested as action undo",
        ),
        (
            rollback_to(Some(0)),
            "Rollback of deployment/web to the previous revision requested as action undo",
        ),
        (
            restart(),
            "Restart of deployment/web requested as action undo",
        ),
        (
            scale(5),
            "Scale of deployment/web to 5 replicas requested as action undo",
        ),
        (
            RemediationAction {
                dry_run: true,
                ..scale(5)
            },
            "Scale of deployment/web to 5 replicas requested (dry run) as action undo",
        ),
    ];
    for (action, expected) in cases {
        let step = step_at(Some(&action), None, Some(&deployment), &replica_sets, now());
        assert_eq!(step.entries[0].type_, EntryType::ActionRequested);
        assert_eq!(step.entries[0].message, expected);
        assert_eq!(step.status.kind, action.kind());
    }
    // The requester may be unknown.
    let step = step(
        Some(&restart()),
        None,
        facts(Some(&deployment), &replica_sets),
        &actor(),
        None,
        now(),
    )
    .expect("a step");
    assert_eq!(step.entries[0].actor, None);
}

#[test]
fn restart_and_scale_start_with_their_change() {
    let (deployment, replica_sets) = history();
    let step = step_at(
        Some(&restart()),
        None,
        Some(&deployment),
        &replica_sets,
        now(),
    );
    assert_eq!(step.status.phase, ActionPhase::Running);
    assert_eq!(step.status.kind, ActionKind::Restart);
    assert_eq!(step.status.from_revision, Some(3));
    assert_eq!(step.status.to_revision, None);
    let change = step.change.expect("a change");
    assert_eq!(
        merge_patch(&change)["spec"]["template"]["metadata"]["annotations"]
            [RESTARTED_AT_ANNOTATION],
        "2027-01-15T08:00:00Z"
    );

    let step = step_at(
        Some(&scale(5)),
        None,
        Some(&deployment),
        &replica_sets,
        now(),
    );
    assert_eq!(step.status.phase, ActionPhase::Running);
    assert_eq!(step.status.kind, ActionKind::Scale);
    assert_eq!(
        merge_patch(&step.change.expect("a change"))["spec"]["replicas"],
        5
    );
}

#[test]
fn a_dry_run_is_skipped_with_what_it_would_do() {
    let (deployment, replica_sets) = history();
    let dry = RemediationAction {
        dry_run: true,
        ..rollback()
    };
    let step = step_at(Some(&dry), None, Some(&deployment), &replica_sets, now());
    assert_eq!(step.change, None);
    assert_eq!(step.wake_at, None);
    assert_eq!(step.status.phase, ActionPhase::Skipped);
    assert_eq!(step.status.reason.as_deref(), Some("DryRun"));
    assert_eq!(
        step.status.message.as_deref(),
        Some(
            "dry run: would roll back deployment/web from revision 3 (web:v3) to revision 2 (web:v2)"
        )
    );
    assert_eq!(step.status.from_revision, Some(3));
    assert_eq!(step.status.to_revision, Some(2));
    assert_eq!(step.status.images_after, vec!["web:v2"]);
    assert_eq!(step.status.finished_at, Some(Time(now())));
    assert_eq!(step.status.started_at, None);
    assert_eq!(step.status.planned_generation, None);
    assert_eq!(
        entry_types(&step),
        vec![EntryType::ActionRequested, EntryType::ActionSkipped]
    );
    assert_eq!(
        step.entries[1].message,
        "Skipped undo: dry run: would roll back deployment/web from revision 3 (web:v3) to revision 2 (web:v2)"
    );
    assert!(!step.entries[1].warning);

    // Restart and scale too.
    for (action, would) in [
        (
            restart(),
            "dry run: would restart deployment/web: replace every pod",
        ),
        (
            scale(5),
            "dry run: would scale deployment/web from 3 to 5 replicas",
        ),
    ] {
        let dry = RemediationAction {
            dry_run: true,
            ..action
        };
        let step = step_at(Some(&dry), None, Some(&deployment), &replica_sets, now());
        assert_eq!(step.change, None);
        assert_eq!(step.status.phase, ActionPhase::Skipped);
        assert_eq!(step.status.reason.as_deref(), Some("DryRun"));
        assert_eq!(step.status.message.as_deref(), Some(would));
    }
}

#[test]
fn a_dry_run_that_would_be_refused_fails() {
    let (deployment, replica_sets) = history();
    let dry = RemediationAction {
        dry_run: true,
        ..rollback_to(Some(9))
    };
    let step = step_at(Some(&dry), None, Some(&deployment), &replica_sets, now());
    assert_eq!(step.status.phase, ActionPhase::Failed);
    assert_eq!(step.status.reason.as_deref(), Some("RevisionNotFound"));
    assert_eq!(step.change, None);
}

#[test]
fn a_missing_deployment_fails_the_action() {
    let step = step_at(Some(&rollback()), None, None, &[], now());
    assert_eq!(step.change, None);
    assert_eq!(step.status.phase, ActionPhase::Failed);
    assert_eq!(step.status.reason.as_deref(), Some("DeploymentNotFound"));
    assert_eq!(
        step.status.message.as_deref(),
        Some("deployment web not found in the incident's namespace")
    );
    assert_eq!(step.status.finished_at, Some(Time(now())));
    assert_eq!(
        entry_types(&step),
        vec![EntryType::ActionRequested, EntryType::ActionFailed]
    );
    assert_eq!(
        step.entries[1].message,
        "Rollback undo failed (DeploymentNotFound): deployment web not found in the incident's namespace"
    );
    assert!(step.entries[1].warning);
}

#[test]
fn a_refused_plan_fails_and_a_skipped_plan_skips() {
    let (deployment, replica_sets) = history();
    let step = step_at(
        Some(&rollback()),
        None,
        Some(&paused(deployment.clone())),
        &replica_sets,
        now(),
    );
    assert_eq!(step.status.phase, ActionPhase::Failed);
    assert_eq!(step.status.reason.as_deref(), Some("Paused"));
    assert_eq!(step.change, None);
    assert_eq!(
        entry_types(&step),
        vec![EntryType::ActionRequested, EntryType::ActionFailed]
    );

    let step = step_at(
        Some(&scale(3)),
        None,
        Some(&deployment),
        &replica_sets,
        now(),
    );
    assert_eq!(step.status.phase, ActionPhase::Skipped);
    assert_eq!(step.status.reason.as_deref(), Some("AlreadyScaled"));
    assert_eq!(step.change, None);
    assert_eq!(
        entry_types(&step),
        vec![EntryType::ActionRequested, EntryType::ActionSkipped]
    );
    assert_eq!(
        step.entries[1].message,
        "Skipped undo: deployment web already has 3 replicas"
    );

    let disabled = annotate(deployment, CONSENT_ANNOTATION, "disabled");
    let step = step_at(
        Some(&restart()),
        None,
        Some(&disabled),
        &replica_sets,
        now(),
    );
    assert_eq!(step.status.phase, ActionPhase::Failed);
    assert_eq!(step.status.reason.as_deref(), Some("RemediationDisabled"));
}

#[test]
fn kind_labels() {
    assert_eq!(kind_label(ActionKind::Rollback), "rollback");
    assert_eq!(kind_label(ActionKind::Restart), "restart");
    assert_eq!(kind_label(ActionKind::Scale), "scale");
}
