//! Unit tests of runbook runs (core layer, tests).

use jiff::Timestamp;
use serde_json::json;

use super::*;
use crate::api::{
    ActionKind, ActionPhase, ActionStatus, Incident, Runbook, RunbookRun, WorkloadKind,
};

fn runbook(steps: serde_json::Value, on_failure: &str) -> Runbook {
    serde_json::from_value(json!({
        "apiVersion": "incident.dev/v1alpha1", "kind": "Runbook",
        "metadata": { "name": "crash", "generation": 3 },
        "spec": { "steps": steps, "onFailure": on_failure },
    }))
    .expect("runbook")
}

fn incident(severity: &str) -> Incident {
    serde_json::from_value(json!({
        "apiVersion": "incident.dev/v1alpha1", "kind": "Incident",
        "metadata": { "name": "i", "creationTimestamp": "2026-11-22T10:00:00Z" },
        "spec": { "title": "t", "severity": severity,
                  "affected": [{ "kind": "Deployment", "name": "web" }],
                  "signals": [{ "type": "CrashLoopBackOff", "firstSeen": "2026-11-22T10:00:00Z",
                                "lastSeen": "2026-11-22T10:00:00Z", "count": 1 }] },
    }))
    .expect("incident")
}

fn facts(rolled_out: &str, healthy: bool) -> RunFacts {
    RunFacts {
        workloads: vec![WorkloadFacts {
            kind: WorkloadKind::Deployment,
            name: "web".into(),
            healthy,
            newest_revision_at: Some(rolled_out.parse().expect("time")),
        }],
        detected_at: Some("2026-11-22T10:00:00Z".parse().expect("time")),
        signals_cleared_at: None,
        collected: None,
        response_time: Duration::from_secs(3600),
    }
}

fn at(text: &str) -> Timestamp {
    text.parse().expect("time")
}

fn types(advance: &Advance) -> Vec<EntryType> {
    advance.entries.iter().map(|e| e.type_).collect()
}

fn rollback_steps() -> serde_json::Value {
    json!([
        { "name": "gather", "collect": { "events": true } },
        { "name": "roll-back", "rollback": {}, "automaticFor": ["P2", "P3"],
          "when": { "rolledOutWithin": "30m" } },
        { "name": "confirm", "verify": { "timeout": "5m" } },
    ])
}

fn finish_action(incident: &mut Incident, name: &str, phase: ActionPhase) {
    let status = incident.status.get_or_insert_with(Default::default);
    status.actions.push(ActionStatus {
        phase,
        ..ActionStatus::pending(
            name,
            ActionKind::Rollback,
            (WorkloadKind::Deployment, "web"),
        )
    });
}

#[test]
fn an_automatic_rollback_is_requested_once_then_followed_to_verification() {
    let Started {
        run,
        entry: selected,
        ..
    } = start(
        &runbook(rollback_steps(), "Escalate"),
        "matched",
        Severity::P2,
    );
    assert_eq!(selected.type_, EntryType::RunbookSelected);
    assert_eq!(run.generation, 3);
    let mut incident = incident("P2");
    let facts = facts("2026-11-22T09:50:00Z", false);
    let now = at("2026-11-22T10:01:00Z");
    let first = advance(&run, &incident, &facts, now);
    assert_eq!(
        types(&first),
        [EntryType::StepSucceeded, EntryType::StepStarted]
    );
    let action = first.request.clone().expect("a rollback action");
    assert_eq!(action.name, "runbook-roll-back");
    assert_eq!(
        action.rollback.as_ref().map(|r| r.deployment.as_str()),
        Some("web")
    );
    assert_eq!(first.run.progress[1].phase, StepPhase::Running);
    assert_eq!(
        first.run.progress[1].actor.as_deref(),
        Some("runbook crash")
    );

    // Same inputs again: nothing new is recorded or requested (the action is in the spec).
    incident.spec.actions.push(action);
    let again = advance(&first.run, &incident, &facts, now);
    assert!(
        again.entries.is_empty() && again.request.is_none(),
        "{again:#?}"
    );

    finish_action(&mut incident, "runbook-roll-back", ActionPhase::Succeeded);
    let verifying = advance(&first.run, &incident, &facts, now);
    assert_eq!(verifying.run.progress[1].phase, StepPhase::Succeeded);
    assert_eq!(verifying.run.progress[2].phase, StepPhase::Running);
    assert_eq!(
        verifying.wake_at,
        Some(at("2026-11-22T10:06:00Z")),
        "the verify timeout"
    );
    let healthy = RunFacts {
        workloads: vec![WorkloadFacts {
            healthy: true,
            ..facts.workloads[0].clone()
        }],
        ..facts.clone()
    };
    let done = advance(&verifying.run, &incident, &healthy, now);
    assert_eq!(
        types(&done),
        [EntryType::StepSucceeded, EntryType::RunbookCompleted]
    );
    let late = advance(
        &verifying.run,
        &incident,
        &facts,
        at("2026-11-22T10:06:00Z"),
    );
    assert_eq!(late.run.progress[2].phase, StepPhase::Failed);
    assert!(types(&late).contains(&EntryType::RunbookEscalated));
}

#[test]
fn a_required_approval_waits_escalates_once_and_runs_when_approved() {
    let run = start(
        &runbook(rollback_steps(), "Escalate"),
        "matched",
        Severity::P2,
    )
    .run;
    let mut incident = incident("P1");
    let facts = facts("2026-11-22T09:50:00Z", false);
    let waiting = advance(&run, &incident, &facts, at("2026-11-22T10:01:00Z"));
    assert_eq!(waiting.run.progress[1].phase, StepPhase::WaitingApproval);
    assert!(waiting.request.is_none(), "no action without approval");
    assert_eq!(waiting.wake_at, Some(at("2026-11-22T11:01:00Z")));
    let late = advance(&waiting.run, &incident, &facts, at("2026-11-22T11:01:00Z"));
    assert_eq!(types(&late), [EntryType::RunbookEscalated]);
    let later = advance(&late.run, &incident, &facts, at("2026-11-22T12:00:00Z"));
    assert!(later.entries.is_empty(), "escalated once: {later:#?}");
    incident.spec.approvals = vec![crate::api::StepApproval {
        step: "roll-back".into(),
        by: "alice".into(),
    }];
    let approved = advance(&later.run, &incident, &facts, at("2026-11-22T12:00:00Z"));
    assert!(approved.request.is_some());
    assert_eq!(approved.run.progress[1].actor.as_deref(), Some("alice"));
    assert!(approved.entries[0].message.contains("approved by alice"));
}

#[test]
fn an_old_rollout_skips_the_rollback_with_the_reason() {
    let run = start(
        &runbook(rollback_steps(), "Escalate"),
        "matched",
        Severity::P2,
    )
    .run;
    let old = advance(
        &run,
        &incident("P2"),
        &facts("2026-11-22T07:00:00Z", true),
        at("2026-11-22T10:01:00Z"),
    );
    assert_eq!(old.run.progress[1].phase, StepPhase::Skipped);
    let reason = old.run.progress[1].reason.clone().unwrap_or_default();
    assert!(
        reason.contains("3h before detection: not suspected"),
        "{reason}"
    );
    assert!(old.request.is_none());
}

#[test]
fn a_failed_step_stops_the_run_unless_it_continues() {
    let steps = json!([
        { "name": "roll-back", "rollback": {}, "approval": "Automatic" },
        { "name": "page", "escalate": { "message": "call the owner", "to": "team-web" } },
    ]);
    for (on_failure, page) in [
        ("Escalate", StepPhase::Skipped),
        ("Continue", StepPhase::Succeeded),
    ] {
        let run = start(&runbook(steps.clone(), on_failure), "matched", Severity::P2).run;
        let mut incident = incident("P1");
        let facts = facts("2026-11-22T09:50:00Z", false);
        let now = at("2026-11-22T10:01:00Z");
        let started = advance(&run, &incident, &facts, now);
        finish_action(&mut incident, "runbook-roll-back", ActionPhase::Failed);
        let failed = advance(&started.run, &incident, &facts, now);
        assert_eq!(failed.run.progress[0].phase, StepPhase::Failed);
        assert_eq!(failed.run.progress[1].phase, page, "{on_failure}");
        assert!(types(&failed).contains(&EntryType::RunbookEscalated));
        assert!(types(&failed).contains(&EntryType::RunbookCompleted));
    }
}

#[test]
fn a_resolved_incident_gets_no_new_action_and_checkpoints_wait_for_people() {
    let steps = json!([
        { "name": "root-cause", "checkpoint": { "prompt": "Root cause identified?" } },
        { "name": "roll-back", "rollback": {}, "approval": "Automatic" },
    ]);
    let run = start(&runbook(steps, "Escalate"), "matched", Severity::P2).run;
    let mut incident = incident("P3");
    let facts = facts("2026-11-22T09:50:00Z", false);
    let now = at("2026-11-22T10:01:00Z");
    let waiting = advance(&run, &incident, &facts, now);
    assert_eq!(waiting.run.progress[0].phase, StepPhase::WaitingApproval);
    assert_eq!(types(&waiting), [EntryType::StepWaiting]);
    incident.spec.approvals = vec![crate::api::StepApproval {
        step: "root-cause".into(),
        by: "bob".into(),
    }];
    incident.spec.resolution =
        serde_json::from_value(json!({ "summary": "fixed", "by": "bob" })).expect("resolution");
    let after = advance(&waiting.run, &incident, &facts, now);
    assert_eq!(
        after.run.progress[0].phase,
        StepPhase::Skipped,
        "resolved first"
    );
    assert_eq!(after.run.progress[1].phase, StepPhase::Skipped);
    assert!(after.request.is_none());
}

#[test]
fn a_runbooks_severity_is_set_only_when_it_differs_and_said_in_the_entry() {
    let mut book = runbook(rollback_steps(), "Escalate");
    let same = start(&book, "matched", Severity::P2);
    assert_eq!(same.severity, None, "no severity in the runbook");
    book.spec.severity = Some(Severity::P1);
    let raised = start(&book, "matched", Severity::P2);
    assert_eq!(raised.severity, Some(Severity::P1));
    assert!(
        raised
            .entry
            .message
            .ends_with("; severity set from P2 to P1 by the runbook"),
        "{}",
        raised.entry.message
    );
    assert_eq!(start(&book, "matched", Severity::P1).severity, None);
}

#[test]
fn the_requested_actions_are_the_runs_whole_set_in_step_order() {
    let mut run = start(
        &runbook(rollback_steps(), "Escalate"),
        "matched",
        Severity::P2,
    )
    .run;
    let web = facts("2026-11-22T09:50:00Z", false).workloads;
    let incident = incident("P2");
    assert!(requested_actions(&run, &incident, &web, None).is_empty());
    run.progress[1].action = Some(action_name(&run.steps[1]));
    let actions = requested_actions(&run, &incident, &web, None);
    assert_eq!(actions.len(), 1);
    assert_eq!(actions[0].name, "runbook-roll-back");
    assert_eq!(actions[0].deployment(), "web");
    assert_eq!(actions[0].kind(), ActionKind::Rollback);
}

/// The run of `rollback_steps()` on web (a Deployment) then db (a StatefulSet), started.
fn two_workloads() -> (RunbookRun, Incident, RunFacts, Timestamp) {
    let run = start(
        &runbook(rollback_steps(), "Escalate"),
        "matched",
        Severity::P2,
    )
    .run;
    let mut facts = facts("2026-11-22T09:50:00Z", false);
    facts.workloads.push(WorkloadFacts {
        kind: WorkloadKind::StatefulSet,
        name: "db".into(),
        healthy: false,
        newest_revision_at: None,
    });
    (run, incident("P2"), facts, at("2026-11-22T10:01:00Z"))
}

#[test]
fn each_named_workload_is_rolled_back_in_order_the_next_only_after_the_one_before() {
    let (run, mut incident, facts, now) = two_workloads();
    let first = advance(&run, &incident, &facts, now);
    let web = first.request.clone().expect("web's action");
    assert_eq!(
        (web.name.as_str(), web.target()),
        ("runbook-roll-back", "deployment/web".into())
    );
    incident.spec.actions.push(web);
    // web is under way: db is not asked for.
    let waiting = advance(&first.run, &incident, &facts, now);
    assert_eq!(waiting.request, None);
    finish_action(&mut incident, "runbook-roll-back", ActionPhase::Verifying);
    assert_eq!(advance(&first.run, &incident, &facts, now).request, None);
    // web verified: db's action, a StatefulSet's, named after the step with its place.
    incident.status.as_mut().expect("status").actions[0].phase = ActionPhase::Succeeded;
    let next = advance(&first.run, &incident, &facts, now);
    let db = next.request.clone().expect("db's action");
    assert_eq!(db.name, "runbook-roll-back--2");
    assert_eq!(db.target(), "statefulset/db");
    assert_eq!(
        db.rollback.as_ref().and_then(|r| r.kind),
        Some(WorkloadKind::StatefulSet)
    );
    assert_eq!(next.run.progress[1].phase, StepPhase::Running);
    // The set applied keeps web's action as it is and adds db's, in order.
    let set = requested_actions(&next.run, &incident, &facts.workloads, Some(&db));
    let names: Vec<&str> = set.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["runbook-roll-back", "runbook-roll-back--2"]);
    // Asked again (the spec write was lost): the same action; once in the spec, nothing.
    assert_eq!(
        advance(&first.run, &incident, &facts, now).request,
        Some(db.clone())
    );
    incident.spec.actions.push(db);
    assert_eq!(advance(&first.run, &incident, &facts, now).request, None);
    // db done: the step succeeds, saying each.
    finish_action(&mut incident, "runbook-roll-back--2", ActionPhase::Skipped);
    let done = advance(&first.run, &incident, &facts, now);
    assert_eq!(done.run.progress[1].phase, StepPhase::Succeeded);
    assert_eq!(done.request, None);
}

#[test]
fn a_failed_rollback_stops_the_step_before_the_next_workload() {
    let (run, mut incident, facts, now) = two_workloads();
    let first = advance(&run, &incident, &facts, now);
    incident.spec.actions.extend(first.request.clone());
    finish_action(&mut incident, "runbook-roll-back", ActionPhase::Failed);
    let failed = advance(&first.run, &incident, &facts, now);
    assert_eq!(failed.request, None, "db is left alone");
    assert_eq!(failed.run.progress[1].phase, StepPhase::Failed);
}

/// `rollback_steps()` with a revision to return to, started, on a Rollout named web.
fn on_a_rollout(steps: serde_json::Value) -> (RunbookRun, Incident, RunFacts, Timestamp) {
    let run = start(&runbook(steps, "Escalate"), "matched", Severity::P2).run;
    let mut facts = facts("2026-11-22T09:50:00Z", false);
    facts.workloads[0].kind = WorkloadKind::Rollout;
    (run, incident("P2"), facts, at("2026-11-22T10:01:00Z"))
}

#[test]
fn a_rollout_is_aborted_without_a_revision_and_never_restarted_or_scaled() {
    let mut steps = rollback_steps();
    steps[1]["rollback"] = json!({ "toRevision": 3 });
    let (run, mut incident, facts, now) = on_a_rollout(steps);
    let first = advance(&run, &incident, &facts, now);
    let abort = first.request.clone().expect("the abort");
    assert_eq!(abort.target(), "rollout/web");
    // Admission refuses a revision for a Rollout: the abort returns to its stable ReplicaSet.
    assert_eq!(abort.rollback.as_ref().and_then(|r| r.to_revision), None);
    // Verifying a Rollout that is not settled looks again within seconds (it is not watched).
    incident.spec.actions.push(abort);
    finish_action(&mut incident, "runbook-roll-back", ActionPhase::Succeeded);
    let verifying = advance(&first.run, &incident, &facts, now);
    assert_eq!(verifying.run.progress[2].phase, StepPhase::Running);
    assert_eq!(verifying.wake_at, Some(at("2026-11-22T10:01:05Z")));
    // Restart and scale steps fail before asking for what admission would refuse.
    for step in [
        json!({ "name": "bounce", "restart": {}, "automaticFor": ["P2"] }),
        json!({ "name": "more", "scale": { "replicas": 6 }, "automaticFor": ["P2"] }),
    ] {
        let (run, incident, facts, now) = on_a_rollout(json!([step]));
        let refused = advance(&run, &incident, &facts, now);
        assert_eq!(refused.request, None);
        assert_eq!(refused.run.progress[0].phase, StepPhase::Failed);
        let reason = refused.run.progress[0].reason.clone().unwrap_or_default();
        assert!(reason.contains("cannot act on rollout/web"), "{reason}");
    }
}
