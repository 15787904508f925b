//! The Incident's clocks against the real API server: an unacknowledged incident escalates once,
//! also across a restart; the update and post-mortem clocks fire once, and a note clears the first.

use incident_operator::api::EntryType;
use kube::api::PostParams;
use serde_json::json;

use crate::{
    lifecycle::{condition, edit, entries, events, incident, settle, setup, with_reason},
    support::Operator,
};

#[tokio::test]
async fn an_unacknowledged_incident_escalates_exactly_once_across_a_restart() {
    let (client, ns, api) = setup("escalate").await;
    let flags = ["--response-time", "P1=3s"];
    let operator = Operator::start(&ns.name, &flags).await;
    api.create(
        &PostParams::default(),
        &incident(
            "db-latency",
            json!({ "title": "DB latency", "severity": "P1" }),
        ),
    )
    .await
    .expect("create Incident");

    let overdue = settle(&api, "db-latency", "AcknowledgeOverdue=True", |i| {
        condition(i, "AcknowledgeOverdue").is_some_and(|(s, _)| s == "True")
    })
    .await;
    assert_eq!(entries(&overdue, EntryType::Escalated), 1);
    assert!(
        overdue
            .status
            .as_ref()
            .and_then(|s| s.sla.as_ref())
            .is_some_and(|s| s.breached)
    );
    let series = r#"incident_operator_overdue_total{severity="P1",clock="acknowledge"}"#;
    // Metrics trail the status write they describe.
    operator.await_metric(series, |v| v == Some(1.0)).await;
    let warnings = events(&client, &ns.name, "db-latency").await;
    assert_eq!(
        with_reason(&warnings, "AcknowledgeOverdue"),
        1,
        "{warnings:#?}"
    );

    operator.stop().await;
    let operator = Operator::start(&ns.name, &flags).await;
    // A note proves the new operator has reconciled this incident after its restart.
    edit(
        &api,
        "db-latency",
        json!({ "notes": [{ "author": "bo", "text": "paging the DBA" }] }),
    )
    .await;
    let after = settle(&api, "db-latency", "note recorded", |i| {
        entries(i, EntryType::Note) == 1
    })
    .await;
    assert_eq!(
        entries(&after, EntryType::Escalated),
        1,
        "still one escalation"
    );
    assert_eq!(entries(&after, EntryType::Detected), 1);
    let warnings = events(&client, &ns.name, "db-latency").await;
    assert_eq!(
        with_reason(&warnings, "AcknowledgeOverdue"),
        1,
        "still one Warning Event"
    );
    assert_eq!(
        operator.metric(series).await,
        None,
        "the restarted operator did not count it again"
    );
    operator.stop().await;
}

#[tokio::test]
async fn update_reminders_repeat_until_an_update_and_the_postmortem_clock_fires_once() {
    let (client, ns, api) = setup("clocks").await;
    let flags = ["--update-interval", "3s", "--postmortem-due", "3s"];
    let operator = Operator::start(&ns.name, &flags).await;
    api.create(
        &PostParams::default(),
        &incident(
            "queue-stuck",
            json!({ "title": "Queue stuck", "severity": "P0",
            "acknowledgment": { "by": "eve" } }),
        ),
    )
    .await
    .expect("create Incident");

    let silent = settle(&api, "queue-stuck", "UpdateOverdue=True", |i| {
        condition(i, "UpdateOverdue").is_some_and(|(s, _)| s == "True")
    })
    .await;
    assert!(entries(&silent, EntryType::UpdateDue) >= 1);
    // A note is for responders, not an update: the reminders go on.
    edit(
        &api,
        "queue-stuck",
        json!({ "notes": [{ "author": "eve", "text": "draining the queue" }] }),
    )
    .await;
    settle(&api, "queue-stuck", "a reminder after the note", |i| {
        entries(i, EntryType::Note) == 1 && entries(i, EntryType::UpdateDue) >= 2
    })
    .await;
    edit(
        &api,
        "queue-stuck",
        json!({ "updates": [{ "author": "eve", "text": "draining the queue, 40% done",
                              "status": "fixing", "nextUpdateIn": "1h" }] }),
    )
    .await;
    let updated = settle(&api, "queue-stuck", "an update clears UpdateOverdue", |i| {
        entries(i, EntryType::Update) == 1
            && condition(i, "UpdateOverdue").is_some_and(|(s, _)| s == "False")
    })
    .await;
    let next = updated
        .status
        .as_ref()
        .and_then(|s| s.next_update_time.clone())
        .expect("the promised time");
    let last = updated
        .status
        .as_ref()
        .and_then(|s| s.last_update_time.clone())
        .expect("the update's time");
    assert_eq!(next.0.duration_since(last.0).as_secs(), 3600);

    edit(
        &api,
        "queue-stuck",
        json!({ "resolution": { "summary": "queue drained", "by": "eve" } }),
    )
    .await;
    let late = settle(&api, "queue-stuck", "PostmortemOverdue=True", |i| {
        condition(i, "PostmortemOverdue").is_some_and(|(s, _)| s == "True")
    })
    .await;
    assert_eq!(entries(&late, EntryType::PostmortemOverdue), 1);
    assert_eq!(
        condition(&late, "UpdateOverdue").map(|c| c.0).as_deref(),
        Some("False"),
        "resolved: no updates due"
    );
    let warnings = events(&client, &ns.name, "queue-stuck").await;
    assert_eq!(with_reason(&warnings, "PostmortemOverdue"), 1);
    assert!(with_reason(&warnings, "UpdateOverdue") >= 1);
    operator
        .await_metric(
            r#"incident_operator_overdue_total{severity="P0",clock="postmortem"}"#,
            |v| v == Some(1.0),
        )
        .await;
    operator.stop().await;
}
