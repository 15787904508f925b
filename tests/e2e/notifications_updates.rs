//! The seeds' message sequence end to end: opening, acknowledgment, update-due reminders naming
//! the commander (again every interval while nobody updates), a person's update posted with
//! `kubectl incident update`, and the resolution — in order, at a receiver whose signatures the
//! `standardwebhooks` package verifies.

use incident_operator::api::EntryType;
use serde_json::{Value, json};

use crate::{
    lifecycle::{entries, setup},
    notifications::{DELIVERY, acknowledge, await_condition, channel, open, resolve, secret},
    plugin::ok,
    receiver::{Receiver, SECRET, events},
    support::{Operator, wait_for},
};

fn text(record: &Value) -> &str {
    record["body"]["text"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn reminders_repeat_until_a_person_posts_an_update_which_reaches_the_channel() {
    let (client, ns, api) = setup("notify-updates").await;
    let pages = Receiver::start(Some(SECRET)).await;
    secret(&client, &ns.name, "pager-hook", &pages.url(), Some(SECRET)).await;
    channel(
        &client,
        &ns.name,
        "pages",
        "pager-hook",
        true,
        json!({ "severities": ["P1"] }),
    )
    .await;
    let operator = Operator::start(&ns.name, &["--update-interval", "4s"]).await;
    await_condition(&client, &ns.name, "pages", "Ready", "True").await;

    open(&api, "checkout-down", "P1").await;
    acknowledge(&api, "checkout-down").await;
    let received = pages
        .wait_for("two reminders", DELIVERY, |r| {
            events(r).iter().filter(|e| *e == "UpdateDue").count() >= 2
        })
        .await;
    assert_eq!(events(&received)[..2], ["Opened", "Acknowledged"]);
    let reminder = received
        .iter()
        .find(|r| r["body"]["event"] == "UpdateDue")
        .expect("a reminder");
    let words = text(reminder);
    assert!(
        words.contains("ana, please post one") && words.contains("kubectl incident update"),
        "names the commander and how to update: {words}"
    );

    let said = ok(
        &ns.name,
        &[
            "update",
            "checkout-down",
            "A bad config push; rolling it back",
            "--status",
            "identified",
            "--next",
            "30m",
        ],
    )
    .await;
    assert!(said.contains("updated"), "{said}");
    let received = pages
        .wait_for("the update", DELIVERY, |r| {
            events(r).contains(&"Update".to_owned())
        })
        .await;
    let update = received
        .iter()
        .find(|r| r["body"]["event"] == "Update")
        .expect("the update");
    assert_eq!(update["verified"], true);
    let words = text(update);
    for part in [
        "Status: identified",
        "A bad config push; rolling it back",
        "Next update by",
    ] {
        assert!(words.contains(part), "{part:?} missing from {words}");
    }
    let incident = wait_for(
        &api,
        "checkout-down",
        "the update recorded",
        DELIVERY,
        |i| i.is_some_and(|i| entries(i, EntryType::Update) == 1),
    )
    .await
    .expect("incident");
    let entry = incident
        .status
        .as_ref()
        .and_then(|s| s.timeline.iter().find(|e| e.type_ == EntryType::Update))
        .expect("the Update entry");
    assert!(entry.actor.is_some(), "the plugin's user is the author");

    resolve(&api, "checkout-down").await;
    let received = pages
        .wait_for("the resolution", DELIVERY, |r| {
            events(r).last().is_some_and(|e| e == "Resolved")
        })
        .await;
    let sequence = events(&received);
    let after_update: Vec<_> = sequence
        .iter()
        .skip_while(|e| *e != "Update")
        .cloned()
        .collect();
    assert_eq!(
        after_update,
        ["Update", "Resolved"],
        "no reminder once an update promised the next in 30m: {sequence:?}"
    );
    assert!(received.iter().all(|r| r["verified"] == true));
    operator.stop().await;
}
