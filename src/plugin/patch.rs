//! JSON merge patches the plugin's commands send (plugin layer). Each touches only the fields its
//! command owns, plus the `incident.dev/actor` annotation; list edits (notes, approvals, actions)
//! and the commander carry the resourceVersion they were read at, so a concurrent writer's change
//! is never overwritten.

use serde_json::{Value, json};

use crate::api::{
    Acknowledgment, Incident, MAX_NOTES, MAX_UPDATES, Note, RemediationAction, Resolution,
    ResponseStatus, Severity, StatusUpdate, StepApproval, metadata::ACTOR_ANNOTATION,
};

fn metadata(actor: &str, resource_version: Option<&str>) -> Value {
    let mut metadata = json!({ "annotations": { ACTOR_ANNOTATION: actor } });
    if let Some(rv) = resource_version {
        metadata["resourceVersion"] = json!(rv);
    }
    metadata
}

/// `spec.acknowledgment`.
pub fn acknowledge(actor: &str, note: Option<&str>) -> Value {
    let ack = Acknowledgment {
        by: actor.to_owned(),
        note: note.map(str::to_owned),
    };
    json!({ "metadata": metadata(actor, None), "spec": { "acknowledgment": ack } })
}

/// `spec.resolution`.
pub fn resolve(actor: &str, root_cause: Option<&str>, summary: &str) -> Value {
    let resolution = Resolution {
        root_cause: root_cause.map(str::to_owned),
        summary: summary.to_owned(),
        by: actor.to_owned(),
    };
    json!({ "metadata": metadata(actor, None), "spec": { "resolution": resolution } })
}

/// `spec.severity`, with the actor the controller records for the change.
pub fn severity(actor: &str, severity: Severity) -> Value {
    json!({ "metadata": metadata(actor, None), "spec": { "severity": severity } })
}

/// `spec.commander` set to `person`, against the version read (so "already leads" is judged on
/// what is written); None when `person` already leads: named in spec, or, with nobody named, the
/// commander the operator derived (the acknowledger).
pub fn commander(incident: &Incident, actor: &str, person: &str) -> Option<Value> {
    let leads = incident.spec.commander.as_deref().or_else(|| {
        incident
            .status
            .as_ref()
            .and_then(|s| s.commander.as_deref())
    });
    if leads == Some(person) {
        return None;
    }
    Some(json!({
        "metadata": metadata(actor, incident.metadata.resource_version.as_deref()),
        "spec": { "commander": person },
    }))
}

/// `spec.gitops.resume` set, against the version read; None when already asked.
pub fn resume_gitops(incident: &Incident, actor: &str) -> Option<Value> {
    if incident.spec.gitops.as_ref().is_some_and(|g| g.resume) {
        return None;
    }
    Some(json!({
        "metadata": metadata(actor, incident.metadata.resource_version.as_deref()),
        "spec": { "gitops": { "resume": true } },
    }))
}

/// What `kubectl incident update` posts.
#[derive(Clone, Copy, Debug)]
pub struct UpdateRequest<'a> {
    pub text: &'a str,
    pub status: Option<ResponseStatus>,
    /// When the next update comes, as written (`30m`).
    pub next: Option<&'a str>,
}

/// `spec.updates` with one appended, against the version read; the oldest are dropped to stay
/// within [`MAX_UPDATES`] (the timeline keeps them).
pub fn append_update(incident: &Incident, actor: &str, update: &UpdateRequest<'_>) -> Value {
    let mut updates = incident.spec.updates.clone();
    updates.push(StatusUpdate {
        author: actor.to_owned(),
        text: update.text.to_owned(),
        status: update.status,
        next_update_in: update.next.map(str::to_owned),
    });
    let excess = updates.len().saturating_sub(MAX_UPDATES);
    updates.drain(..excess);
    json!({
        "metadata": metadata(actor, incident.metadata.resource_version.as_deref()),
        "spec": { "updates": updates },
    })
}

/// `spec.notes` with `text` appended, against the version read; the oldest notes are dropped to
/// stay within [`MAX_NOTES`] (the timeline keeps them).
pub fn append_note(incident: &Incident, actor: &str, text: &str) -> Value {
    let mut notes = incident.spec.notes.clone();
    notes.push(Note {
        author: actor.to_owned(),
        text: text.to_owned(),
    });
    let excess = notes.len().saturating_sub(MAX_NOTES);
    notes.drain(..excess);
    json!({
        "metadata": metadata(actor, incident.metadata.resource_version.as_deref()),
        "spec": { "notes": notes },
    })
}

/// `spec.approvals` with `step` approved by `actor`, against the version read; None when the step
/// is already approved.
pub fn approve(incident: &Incident, actor: &str, step: &str) -> Option<Value> {
    if incident.spec.approvals.iter().any(|a| a.step == step) {
        return None;
    }
    let mut approvals = incident.spec.approvals.clone();
    approvals.push(StepApproval {
        step: step.to_owned(),
        by: actor.to_owned(),
    });
    Some(json!({
        "metadata": metadata(actor, incident.metadata.resource_version.as_deref()),
        "spec": { "approvals": approvals },
    }))
}

/// `spec.actions` with `action` appended, against the version read.
pub fn add_action(incident: &Incident, actor: &str, action: &RemediationAction) -> Value {
    let mut actions = incident.spec.actions.clone();
    actions.push(action.clone());
    json!({
        "metadata": metadata(actor, incident.metadata.resource_version.as_deref()),
        "spec": { "actions": actions },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incident(spec: Value) -> Incident {
        serde_json::from_value(json!({
            "apiVersion": "incident.dev/v1alpha1", "kind": "Incident",
            "metadata": { "name": "x", "resourceVersion": "42" },
            "spec": spec,
        }))
        .unwrap()
    }

    #[test]
    fn field_patches_touch_only_their_field() {
        assert_eq!(
            acknowledge("ana", Some("looking")),
            json!({ "metadata": { "annotations": { "incident.dev/actor": "ana" } },
                    "spec": { "acknowledgment": { "by": "ana", "note": "looking" } } })
        );
        assert_eq!(
            resolve("ana", None, "rolled back")["spec"],
            json!({ "resolution": { "summary": "rolled back", "by": "ana" } })
        );
        assert_eq!(
            severity("bob", Severity::P1),
            json!({ "metadata": { "annotations": { "incident.dev/actor": "bob" } },
                    "spec": { "severity": "P1" } })
        );
    }

    #[test]
    fn notes_append_against_the_version_read() {
        let i = incident(json!({ "title": "t", "severity": "P2",
                                 "notes": [{ "author": "bob", "text": "first" }] }));
        let patch = append_note(&i, "ana", "second");
        assert_eq!(patch["metadata"]["resourceVersion"], "42");
        assert_eq!(
            patch["spec"],
            json!({ "notes": [{ "author": "bob", "text": "first" },
                              { "author": "ana", "text": "second" }] })
        );
    }

    #[test]
    fn notes_stay_within_the_limit() {
        let notes: Vec<Value> = (0..MAX_NOTES)
            .map(|n| json!({ "author": "bob", "text": format!("note {n}") }))
            .collect();
        let i = incident(json!({ "title": "t", "severity": "P2", "notes": notes }));
        let patch = append_note(&i, "ana", "newest");
        let written = patch["spec"]["notes"].as_array().unwrap();
        assert_eq!(written.len(), MAX_NOTES);
        assert_eq!(written[0]["text"], "note 1");
        assert_eq!(written[MAX_NOTES - 1]["text"], "newest");
    }

    #[test]
    fn approvals_keep_others_and_are_idempotent() {
        let i = incident(json!({ "title": "t", "severity": "P2",
                                 "approvals": [{ "step": "a", "by": "bob" }] }));
        let patch = approve(&i, "ana", "b").unwrap();
        assert_eq!(patch["metadata"]["resourceVersion"], "42");
        assert_eq!(
            patch["spec"]["approvals"],
            json!([{ "step": "a", "by": "bob" }, { "step": "b", "by": "ana" }])
        );
        assert_eq!(approve(&i, "ana", "a"), None);
    }

    #[test]
    fn commander_is_set_unless_the_person_already_leads() {
        let i = incident(json!({ "title": "t", "severity": "P1", "commander": "bob" }));
        assert_eq!(
            commander(&i, "ana", "ana"),
            Some(
                json!({ "metadata": { "annotations": { "incident.dev/actor": "ana" },
                                       "resourceVersion": "42" },
                         "spec": { "commander": "ana" } })
            )
        );
        assert_eq!(
            commander(&i, "ana", "sam").unwrap()["spec"],
            json!({ "commander": "sam" }),
            "a handover names someone else and records the actor"
        );
        assert_eq!(commander(&i, "bob", "bob"), None, "bob leads already");
    }

    #[test]
    fn the_acknowledger_leads_until_someone_is_named() {
        let mut i = incident(json!({ "title": "t", "severity": "P1",
                                     "acknowledgment": { "by": "ana" } }));
        i.status = serde_json::from_value(json!({ "commander": "ana" })).unwrap();
        assert_eq!(commander(&i, "ana", "ana"), None);
        assert!(commander(&i, "ana", "sam").is_some());
        i.spec.commander = Some("sam".to_owned());
        assert!(
            commander(&i, "ana", "ana").is_some(),
            "the spec's commander wins over a stale status"
        );
    }

    #[test]
    fn updates_append_with_status_and_promise_within_the_limit() {
        let updates: Vec<Value> = (0..MAX_UPDATES)
            .map(|n| json!({ "author": "bob", "text": format!("update {n}") }))
            .collect();
        let i = incident(json!({ "title": "t", "severity": "P1", "updates": updates }));
        let request = UpdateRequest {
            text: "cause found",
            status: Some(ResponseStatus::Identified),
            next: Some("45m"),
        };
        let patch = append_update(&i, "ana", &request);
        assert_eq!(patch["metadata"]["resourceVersion"], "42");
        let written = patch["spec"]["updates"].as_array().expect("updates");
        assert_eq!(written.len(), MAX_UPDATES);
        assert_eq!(written[0]["text"], "update 1", "the oldest dropped");
        assert_eq!(
            written[MAX_UPDATES - 1],
            json!({ "author": "ana", "text": "cause found", "status": "identified",
                    "nextUpdateIn": "45m" })
        );
    }
}
