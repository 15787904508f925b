//! The post-mortem command against the real API server: `incident-operator postmortem NS/NAME`
//! renders the draft of a real incident — its title, facts, timeline rows, root cause, resolution,
//! action items and the prompts left for the team — and fails on a missing one.

use incident_operator::{
    api::{EntryType, Phase},
    core::text::spelled_seconds,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::PostParams;
use serde_json::json;
use tokio::process::Command;

use crate::{
    lifecycle::{incident, phase, settle, setup},
    support::{BINARY, Operator, kubeconfig_path},
};

/// How the draft writes a time (in UTC, to the second).
const STAMP: &str = "%Y-%m-%d %H:%M:%S";

/// Finds each of `parts` in `text`, in this order, from byte `from`; returns where the last ends.
fn find_in_order(text: &str, from: usize, parts: &[String]) -> usize {
    parts
        .iter()
        .fold(from, |at, part| match text[at..].find(part.as_str()) {
            Some(found) => at + found + part.len(),
            None => panic!("missing, or out of order:\n{part}\nin the draft:\n{text}"),
        })
}

#[tokio::test]
async fn the_postmortem_command_renders_a_real_incident() {
    let (_client, ns, api) = setup("postmortem").await;
    let operator = Operator::start(&ns.name, &[]).await;
    api.create(&PostParams::default(), &incident("login-down", json!({
        "title": "Login is down", "severity": "P0", "commander": "dee",
        "acknowledgment": { "by": "dee" },
        "resolution": { "rootCause": "expired TLS certificate", "summary": "renewed the certificate", "by": "dee" },
        "postmortem": { "actionItems": [
            { "title": "Alert 14 days before certificates expire", "owner": "eli" },
            { "title": "Document the renewal", "done": true },
        ] },
    })))
    .await
    .expect("create Incident");
    let incident = settle(&api, "login-down", "Resolved", |i| {
        phase(i) == Some(Phase::Resolved)
    })
    .await;

    let output = Command::new(BINARY)
        .args(["postmortem", &format!("{}/login-down", ns.name)])
        .env("KUBECONFIG", kubeconfig_path())
        .output()
        .await
        .expect("run postmortem");
    let markdown = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // What the operator recorded, as the draft spells it.
    let status = incident.status.as_ref().expect("status");
    let metrics = status.metrics.as_ref().expect("metrics");
    let time = |t: &Option<Time>| {
        t.as_ref()
            .expect("recorded time")
            .0
            .strftime(STAMP)
            .to_string()
    };
    let detected = time(&metrics.detected_at);
    let acknowledged = time(&metrics.acknowledged_at);
    let resolved = time(&metrics.resolved_at);
    let to_acknowledge = spelled_seconds(metrics.time_to_acknowledge_seconds.expect("tta"));
    let to_resolve = spelled_seconds(metrics.time_to_resolve_seconds.expect("ttr"));
    let sla = status.sla.as_ref().expect("sla");
    let respond_by = sla.respond_by.0.strftime(STAMP).to_string();
    let due = time(&sla.postmortem_due_by);

    assert!(
        markdown.starts_with("# Post-mortem: Login is down (P0)\n"),
        "the title line:\n{markdown}"
    );
    // The sections, in the order a reader goes through them, each with what it must say.
    let sections = [
        "## Facts\n\n| Fact | Value |\n|---|---|\n".to_owned(),
        "| **Severity** | P0 |\n| **Phase** | Resolved |\n| **Commander** | dee |\n\
         | **Acknowledged by** | dee |\n| **Resolved by** | dee |\n"
            .to_owned(),
        format!(
            "| **Detected** | {detected} UTC |\n| **Acknowledged** | {acknowledged} UTC |\n\
             | **Resolved** | {resolved} UTC |\n| **Closed** | — |\n\
             | **Time to acknowledge** | {to_acknowledge} |\n| **Time to resolve** | {to_resolve} |\n\
             | **Response SLA** | Met (acknowledged before {respond_by} UTC) |\n\
             | **Post-mortem due** | {due} UTC |\n| **Affected** | None recorded |\n"
        ),
        "## Summary\n\nrenewed the certificate\n".to_owned(),
        "## Impact\n".to_owned(),
        "_To fill in: who or what was affected".to_owned(),
        "## Timeline\n\n| Time (UTC) | Event | Actor | Message |\n|---|---|---|---|\n".to_owned(),
    ];
    let mut rest = find_in_order(&markdown, 0, &sections);
    // One row per entry of this incident's timeline, in recorded order.
    let mut seen = Vec::new();
    let rows: Vec<String> = status
        .timeline
        .iter()
        .map(|entry| {
            seen.push(entry.type_);
            let event = match entry.type_ {
                EntryType::Detected => "Detected",
                EntryType::Acknowledged => "Acknowledged",
                EntryType::RootCauseIdentified => "Root cause identified",
                EntryType::Resolved => "Resolved",
                EntryType::PostmortemDue => "Postmortem due",
                other => panic!("an entry this incident should not have: {other:?}"),
            };
            let actor = entry.actor.as_deref().unwrap_or("—");
            let at = entry.time.0.strftime(STAMP);
            format!("| {at} | {event} | {actor} | {} |\n", entry.message)
        })
        .collect();
    assert_eq!(
        seen,
        [
            EntryType::Detected,
            EntryType::Acknowledged,
            EntryType::RootCauseIdentified,
            EntryType::Resolved,
            EntryType::PostmortemDue,
        ],
        "{:#?}",
        status.timeline
    );
    assert!(
        rows[0].contains("| Detected | — | P0 incident opened: Login is down (commander dee) |"),
        "{}",
        rows[0]
    );
    rest = find_in_order(&markdown, rest, &rows);
    let sections = [
        "_To fill in: events the operator could not see".to_owned(),
        "## Root cause\n\nexpired TLS certificate\n".to_owned(),
        format!(
            "## Resolution\n\nResolved by dee at {resolved} UTC, {to_resolve} after detection.\n"
        ),
        "## What went well\n\n_To fill in:".to_owned(),
        "## What could be improved\n\n_To fill in:".to_owned(),
        "## Lessons learned\n\n_To fill in:".to_owned(),
        "## Action items\n\n1 of 2 done.\n\n\
         - [ ] Alert 14 days before certificates expire — owner: eli\n\
         - [x] Document the renewal — _owner to be assigned_\n"
            .to_owned(),
        format!(
            "_Generated by incident-operator from Incident {}/login-down.",
            ns.name
        ),
    ];
    find_in_order(&markdown, rest, &sections);

    let missing = Command::new(BINARY)
        .args(["postmortem", &format!("{}/no-such-incident", ns.name)])
        .env("KUBECONFIG", kubeconfig_path())
        .output()
        .await
        .expect("run postmortem");
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not found"));
    operator.stop().await;
}
