//! On call and escalation end to end, the policies' side: business-hours clocks, a broken policy,
//! a policy created late, and moving command with the plugin (helpers in `escalation`).

use incident_operator::api::{EntryType, EscalationPolicy, EscalationState};
use jiff::Timestamp;
use kube::Api;
use serde_json::json;

use crate::{
    escalation::{escalation_state, open, paged, pager, people, policy, schedule},
    lifecycle::setup,
    notifications::{DELIVERY, channel, secret},
    receiver::{Receiver, SECRET},
    support::{Operator, wait_for},
};

#[tokio::test]
async fn a_p3_opened_outside_business_hours_waits_for_the_next_business_day() {
    let (client, ns, api) = setup("esc-hours").await;
    schedule(&client, &ns.name).await;
    // Business hours only tomorrow (UTC): closed now, whatever the time of day.
    let tomorrow = Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .tomorrow()
        .expect("a date");
    let weekday = format!("{:?}", tomorrow.weekday());
    let hours = json!({ "businessHours": { "timeZone": "UTC", "days": [weekday], "start": "00:00", "end": "23:59" } });
    policy(&client, &ns.name, "3s", 0, hours).await;
    let pager = pager(&client, &ns.name).await;
    let operator = Operator::start(&ns.name, &[]).await;

    open(&api, "typo", "P3", json!({})).await;
    let incident = escalation_state(&api, "typo", EscalationState::Waiting).await;
    let status = incident.status.expect("status");
    let opening: Timestamp = format!("{tomorrow}T00:00:00Z").parse().expect("an instant");
    let escalation = status.escalation.expect("escalation");
    assert_eq!(
        escalation.next_at.map(|t| t.0),
        Some(opening),
        "the first page waits for the morning"
    );
    assert_eq!(escalation.next_level.as_deref(), Some("primary"));
    let sla = status.sla.expect("sla");
    assert_eq!(sla.business_hours.as_deref(), Some("UTC"));
    let close: Timestamp = format!("{tomorrow}T23:59:00Z").parse().expect("an instant");
    assert_eq!(
        sla.respond_by.0, close,
        "P3: by the end of the next business day"
    );
    assert!(
        paged(&pager.received().await).is_empty(),
        "nobody paged at night"
    );
    operator.stop().await;
}

#[tokio::test]
async fn a_broken_policy_says_what_is_missing_and_the_channels_still_hear_the_incident() {
    let (client, ns, api) = setup("esc-broken").await;
    schedule(&client, &ns.name).await;
    let missing = json!({ "levels": [
        { "name": "primary", "after": "60s", "notify": [ { "layer": { "schedule": "nobody", "layer": "primary" } } ] } ] });
    policy(&client, &ns.name, "3s", 0, missing).await;
    let receiver = Receiver::start(Some(SECRET)).await;
    secret(&client, &ns.name, "all", &receiver.url(), Some(SECRET)).await;
    channel(&client, &ns.name, "all", "all", true, json!({})).await;
    let operator = Operator::start(&ns.name, &[]).await;

    let policies: Api<EscalationPolicy> = Api::namespaced(client.clone(), &ns.name);
    let policy = wait_for(&policies, "team", "Ready=False", DELIVERY, |p| {
        p.and_then(|p| p.status.as_ref()).is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "False")
        })
    })
    .await
    .expect("the policy");
    let ready = policy
        .status
        .expect("status")
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .expect("Ready");
    assert_eq!(ready.reason, "InvalidReference");
    assert!(
        ready
            .message
            .contains("OnCallSchedule nobody does not exist"),
        "{}",
        ready.message
    );

    open(&api, "cart", "P2", json!({})).await;
    receiver
        .wait_for("the opening message", DELIVERY, |r| {
            r.iter().any(|m| m["body"]["event"] == "Opened")
        })
        .await;
    let incident = wait_for(&api, "cart", "a PageFailed entry", DELIVERY, |i| {
        i.and_then(|i| i.status.as_ref())
            .is_some_and(|s| s.timeline.iter().any(|e| e.type_ == EntryType::PageFailed))
    })
    .await
    .expect("incident");
    let entry = incident
        .status
        .expect("status")
        .timeline
        .into_iter()
        .find(|e| e.type_ == EntryType::PageFailed)
        .expect("entry");
    assert!(
        entry
            .message
            .contains("OnCallSchedule nobody does not exist"),
        "{}",
        entry.message
    );
    operator.stop().await;
}

#[tokio::test]
async fn handing_over_changes_the_commander_and_tells_the_channel() {
    let (client, ns, api) = setup("esc-handover").await;
    schedule(&client, &ns.name).await;
    policy(&client, &ns.name, "60s", 0, json!({})).await;
    let pager = pager(&client, &ns.name).await;
    let operator = Operator::start(&ns.name, &[]).await;

    open(&api, "login", "P1", json!({})).await;
    pager
        .wait_for("the primary paged", DELIVERY, |r| people(r) == ["alex"])
        .await;
    let plugin = env!("CARGO_BIN_EXE_kubectl-incident");
    let kubeconfig = crate::support::kubeconfig_path();
    let run = |args: &[&str]| {
        let output = std::process::Command::new(plugin)
            .args(args)
            .args(["-n", &ns.name])
            .env("KUBECONFIG", &kubeconfig)
            .output()
            .expect("run kubectl-incident");
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let took = run(&["take", "login"]);
    let incident = escalation_state(&api, "login", EscalationState::Acknowledged).await;
    let taker = incident
        .status
        .and_then(|s| s.commander)
        .expect("a commander");
    assert_eq!(taker, crate::plugin::authenticated_user(&client).await);
    assert!(took.contains(&taker), "{took} names {taker}");
    let handed = run(&["handover", "login", "--to", "sam"]);
    assert!(handed.contains("sam"), "{handed}");
    let received = pager
        .wait_for("two changes of command", DELIVERY, |r| {
            r.iter()
                .filter(|m| m["body"]["event"] == "CommanderChanged")
                .count()
                >= 2
        })
        .await;
    let last = received
        .iter()
        .rev()
        .find(|m| m["body"]["event"] == "CommanderChanged")
        .expect("a message");
    assert_eq!(last["body"]["incident"]["commander"], "sam");
    let incident = api.get("login").await.expect("incident");
    assert_eq!(
        incident.status.and_then(|s| s.commander).as_deref(),
        Some("sam")
    );
    let oncall = run(&["oncall"]);
    let primary = oncall
        .lines()
        .find(|l| l.trim_start().starts_with("primary"))
        .unwrap_or_default();
    assert!(
        primary.contains("alex"),
        "who is on call now, per layer:\n{oncall}"
    );
    let shown = run(&["show", "login"]);
    assert!(shown.contains("paged alex (primary on call)"), "{shown}");
    operator.stop().await;
}

#[tokio::test]
async fn a_policy_created_after_the_incident_starts_its_climb() {
    let (client, ns, api) = setup("esc-late").await;
    schedule(&client, &ns.name).await;
    let pager = pager(&client, &ns.name).await;
    let operator = Operator::start(&ns.name, &[]).await;

    open(&api, "inventory", "P1", json!({})).await;
    wait_for(
        &api,
        "inventory",
        "reconciled without a policy",
        DELIVERY,
        |i| {
            i.and_then(|i| i.status.as_ref())
                .is_some_and(|s| s.phase.is_some())
        },
    )
    .await;
    policy(&client, &ns.name, "60s", 0, json!({})).await;
    pager
        .wait_for("the primary paged", DELIVERY, |r| people(r) == ["alex"])
        .await;
    escalation_state(&api, "inventory", EscalationState::Climbing).await;
    operator.stop().await;
}
