use super::*;
use crate::api::{GitOpsTool, IncidentGitOps, RollbackAction};

fn rollback(mode: Option<GitOpsMode>, shared: Option<bool>) -> RemediationAction {
    RemediationAction {
        name: "undo".into(),
        dry_run: false,
        timeout_seconds: None,
        rollback: Some(RollbackAction {
            deployment: "web".into(),
            kind: None,
            to_revision: None,
            gitops: mode,
            pause_shared_owner: shared,
            gitops_resume: None,
        }),
        restart: None,
        scale: None,
    }
}

fn flux() -> GitOpsOwner {
    GitOpsOwner {
        tool: GitOpsTool::Flux,
        kind: Some("Kustomization".into()),
        namespace: Some("flux-system".into()),
        name: Some("apps".into()),
    }
}

fn facts(manages: &[&str]) -> OwnerFacts {
    OwnerFacts {
        paused: false,
        previous: Some("false".into()),
        manages: Some(manages.iter().map(|m| (*m).to_owned()).collect()),
        revision: Some("main@sha1:abc".into()),
        source: Some("Flux GitRepository flux-system/apps".into()),
        source_revision: Some("main@sha1:abc".into()),
    }
}

fn now() -> Timestamp {
    "2026-11-30T12:00:00Z".parse().expect("time")
}

fn ask(
    action: &RemediationAction,
    recorded: &[GitOpsPause],
    facts: Option<Option<&OwnerFacts>>,
) -> Gate {
    gate(
        action,
        "shop",
        "Deployment/web",
        Some(&flux()),
        recorded,
        facts,
        now(),
    )
}

#[test]
fn a_flux_owned_rollback_reads_records_pauses_then_proceeds() {
    let action = rollback(None, None);
    assert_eq!(ask(&action, &[], None), Gate::Read(flux()));
    let read = facts(&[
        "Deployment/shop/web",
        "Service/shop/web",
        "Deployment/shop/worker",
    ]);
    let Gate::Pause(pause) = ask(&action, &[], Some(Some(&read))) else {
        panic!("a pause");
    };
    assert_eq!(pause.state, PauseState::Pausing);
    assert_eq!(pause.previous.as_deref(), Some("false"));
    assert_eq!(
        pause.also_manages,
        ["Deployment/shop/worker"],
        "workloads only, not itself"
    );
    assert_eq!(pause.revision.as_deref(), Some("main@sha1:abc"));

    // Recorded but not yet seen on the owner (a crash in between): finish it, never a second record.
    let mut recorded = vec![*pause];
    assert_eq!(ask(&action, &recorded, None), Gate::Finish(0));
    let entry = paused(&mut recorded[0], now());
    assert!(
        entry
            .message
            .contains("Paused Flux Kustomization flux-system/apps"),
        "{}",
        entry.message
    );
    assert!(
        entry
            .message
            .contains("also applies Deployment/shop/worker"),
        "{}",
        entry.message
    );
    assert_eq!(ask(&action, &recorded, None), Gate::Proceed);
}

#[test]
fn what_is_not_paused_and_why() {
    let plain = GitOpsOwner {
        tool: GitOpsTool::KubectlApply,
        kind: None,
        namespace: None,
        name: None,
    };
    let action = rollback(None, None);
    assert_eq!(
        gate(&action, "shop", "Deployment/web", None, &[], None, now()),
        Gate::Proceed
    );
    assert_eq!(
        gate(
            &action,
            "shop",
            "Deployment/web",
            Some(&plain),
            &[],
            None,
            now()
        ),
        Gate::Proceed
    );
    assert_eq!(
        ask(&rollback(Some(GitOpsMode::RollbackOnly), None), &[], None),
        Gate::Proceed
    );
    let mut dry = rollback(None, None);
    dry.dry_run = true;
    assert_eq!(ask(&dry, &[], None), Gate::Proceed);

    let refused = |gate: Gate| match gate {
        Gate::Refuse { reason, message } => (reason, message),
        other => panic!("refused, not {other:?}"),
    };
    let (reason, message) = refused(ask(
        &rollback(Some(GitOpsMode::EscalateOnly), None),
        &[],
        None,
    ));
    assert_eq!(reason, "GitOpsOwned");
    assert!(message.contains("revert the change in Git"), "{message}");
    let (reason, _) = refused(ask(&action, &[], Some(None)));
    assert_eq!(reason, "GitOpsOwnerNotFound");
    // A mark the owner does not confirm pauses nothing (anyone who edits the workload can write one).
    let (reason, message) = refused(ask(
        &action,
        &[],
        Some(Some(&facts(&["Deployment/shop/other"]))),
    ));
    assert_eq!(reason, "GitOpsOwnerUnverified");
    assert!(message.contains("does not list it"), "{message}");
    let shared = facts(&["Deployment/shop/web", "StatefulSet/shop/db"]);
    let (reason, message) = refused(ask(&rollback(None, Some(false)), &[], Some(Some(&shared))));
    assert_eq!(reason, "GitOpsOwnerShared");
    assert!(message.contains("StatefulSet/shop/db"), "{message}");
}

#[test]
fn an_owner_paused_by_someone_else_is_left_paused_on_resume() {
    let action = rollback(None, None);
    let mut read = facts(&["Deployment/shop/web"]);
    read.paused = true;
    let Gate::Pause(pause) = ask(&action, &[], Some(Some(&read))) else {
        panic!("a record");
    };
    assert_eq!(pause.state, PauseState::Paused);
    assert!(pause.already_paused);
    let mut spec: IncidentSpec =
        serde_json::from_value(serde_json::json!({ "title": "t", "severity": "P1" }))
            .expect("spec");
    spec.gitops = Some(IncidentGitOps { resume: true });
    assert!(due_resumes(&spec, &[*pause]).is_empty());
}

#[test]
fn resume_is_asked_once_and_finishes_after_a_crash() {
    let action = rollback(None, None);
    let Gate::Pause(pause) = ask(&action, &[], Some(Some(&facts(&["Deployment/shop/web"])))) else {
        panic!("a pause");
    };
    let mut recorded = vec![*pause];
    paused(&mut recorded[0], now());
    let mut spec: IncidentSpec =
        serde_json::from_value(serde_json::json!({ "title": "t", "severity": "P1" }))
            .expect("spec");
    assert!(due_resumes(&spec, &recorded).is_empty(), "not asked");
    spec.gitops = Some(IncidentGitOps { resume: true });
    assert_eq!(due_resumes(&spec, &recorded), [0]);
    resuming(&mut recorded[0], Some("alice".into()));
    // Asked again after a crash: still the one record, still to finish.
    assert_eq!(due_resumes(&spec, &recorded), [0]);
    let later = now() + jiff::SignedDuration::from_mins(90);
    let entry = resumed(&mut recorded[0], later);
    assert_eq!(recorded[0].state, PauseState::Resumed);
    assert!(
        entry.message.contains("after 1h30m") || entry.message.contains("after 90"),
        "{}",
        entry.message
    );
    assert_eq!(entry.actor.as_deref(), Some("alice"));
    assert!(due_resumes(&spec, &recorded).is_empty(), "resumed once");
}

fn on_new_revision() -> RemediationAction {
    let mut action = rollback(None, None);
    if let Some(r) = action.rollback.as_mut() {
        r.gitops_resume = Some(GitOpsResume::OnNewRevision);
    }
    action
}

#[test]
fn a_pause_asked_to_resume_on_a_new_revision_resumes_once_its_source_moves_on() {
    let read = facts(&["Deployment/shop/web"]);
    let Gate::Pause(pause) = ask(&on_new_revision(), &[], Some(Some(&read))) else {
        panic!("a pause");
    };
    assert!(pause.resume_on_new_revision);
    assert_eq!(pause.source_revision.as_deref(), Some("main@sha1:abc"));
    let mut recorded = vec![*pause];
    // Not yet paused on the owner: nothing to watch.
    assert!(watching_source(&recorded).is_empty());
    let entry = paused(&mut recorded[0], now());
    assert!(
        entry.message.contains(
            "resumes by itself once Flux GitRepository flux-system/apps has a new revision"
        ),
        "{}",
        entry.message
    );
    assert_eq!(watching_source(&recorded), [0]);
    // The same revision, or one that cannot be read, resumes nothing.
    assert!(!moved_on(&recorded[0], Some("main@sha1:abc")));
    assert!(!moved_on(&recorded[0], None));
    assert!(moved_on(&recorded[0], Some("main@sha1:def")));

    resuming_on_revision(&mut recorded[0], "main@sha1:def");
    assert_eq!(recorded[0].state, PauseState::Resuming);
    assert_eq!(recorded[0].resumed_by.as_deref(), Some(OPERATOR_ACTOR));
    // Recorded before the owner changes: a crash then finishes it, nobody needs to ask.
    let spec: IncidentSpec =
        serde_json::from_value(serde_json::json!({ "title": "t", "severity": "P1" }))
            .expect("spec");
    assert_eq!(due_resumes(&spec, &recorded), [0]);
    assert!(watching_source(&recorded).is_empty(), "no second resume");
    let entry = resumed(&mut recorded[0], now() + jiff::SignedDuration::from_mins(5));
    assert!(
        entry.message.contains("has a new revision, main@sha1:def"),
        "{}",
        entry.message
    );
    assert_eq!(entry.actor.as_deref(), Some(OPERATOR_ACTOR));
    assert!(
        !moved_on(&recorded[0], Some("main@sha1:xyz")),
        "resumed once"
    );
}

#[test]
fn only_an_opted_in_pause_with_a_readable_source_resumes_by_itself() {
    // The default: resumed when a person asks, whatever Git does.
    let read = facts(&["Deployment/shop/web"]);
    let Gate::Pause(pause) = ask(&rollback(None, None), &[], Some(Some(&read))) else {
        panic!("a pause");
    };
    let mut recorded = vec![*pause];
    paused(&mut recorded[0], now());
    assert!(watching_source(&recorded).is_empty());
    assert!(!moved_on(&recorded[0], Some("main@sha1:def")));

    // Opted in, but the source could not be read: paused, to resume by hand, and said so.
    let mut unreadable = read.clone();
    unreadable.source_revision = None;
    let Gate::Pause(pause) = ask(&on_new_revision(), &[], Some(Some(&unreadable))) else {
        panic!("a pause");
    };
    assert!(!pause.resume_on_new_revision);
    assert!(
        pause
            .message
            .as_deref()
            .is_some_and(|m| m.contains("resume it by hand")),
        "{pause:?}"
    );

    // Someone else's pause stays theirs.
    let mut theirs = read;
    theirs.paused = true;
    let Gate::Pause(pause) = ask(&on_new_revision(), &[], Some(Some(&theirs))) else {
        panic!("a record");
    };
    assert!(!pause.resume_on_new_revision);
    assert!(watching_source(&[*pause]).is_empty());
}
