//! Event floods end to end: many notes on one incident make a handful of Events, not one each — the
//! first ten of a reason in ten minutes as they are, the rest counted into one combined Event.

use std::time::Duration;

use incident_operator::api::Incident;
use kube::api::PostParams;
use serde_json::json;

use crate::{
    lifecycle::{edit, events, incident, setup, with_reason},
    support::{Operator, wait_for},
};

#[tokio::test]
async fn thirty_notes_make_eleven_events_the_last_one_counting_twenty() {
    let (client, ns, api) = setup("event-flood").await;
    let operator = Operator::start(&ns.name, &[]).await;
    api.create(
        &PostParams::default(),
        &incident("chatty", json!({ "title": "chatty", "severity": "P3" })),
    )
    .await
    .expect("create Incident");
    let mut notes = Vec::new();
    for i in 0..30 {
        notes.push(json!({ "author": "ana", "text": format!("note {i}") }));
        edit(&api, "chatty", json!({ "notes": notes })).await;
        // One note per reconcile: the flood the issue describes, one change at a time.
        let seen = i + 1;
        wait_for(
            &api,
            "chatty",
            &format!("note {i} recorded"),
            Duration::from_secs(30),
            |c: Option<&Incident>| {
                c.and_then(|c| c.status.as_ref())
                    .and_then(|s| s.recorded.as_ref())
                    .is_some_and(|r| r.notes.len() >= seen)
            },
        )
        .await;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let emitted = events(&client, &ns.name, "chatty").await;
        let notes: Vec<_> = emitted
            .iter()
            .filter(|e| e.reason.as_deref() == Some("Note"))
            .collect();
        let counted: i32 = notes
            .iter()
            .map(|e| e.series.as_ref().and_then(|s| s.count).unwrap_or(1))
            .sum();
        if counted >= 30 {
            assert_eq!(
                with_reason(&emitted, "Note"),
                11,
                "ten as they are, one combined"
            );
            let combined = notes
                .iter()
                .find(|e| e.series.is_some())
                .expect("the combined Event");
            assert_eq!(combined.series.as_ref().and_then(|s| s.count), Some(20));
            assert!(
                combined
                    .message
                    .as_deref()
                    .unwrap_or_default()
                    .contains("(combined from similar events)"),
                "{:?}",
                combined.message
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "30 notes counted in Events: {counted}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    operator.stop().await;
}
