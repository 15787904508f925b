//! On call and escalation end to end: OnCallSchedules and EscalationPolicies on the real API
//! server, the operator, and a real webhook receiver on 127.0.0.1 (signatures checked by the
//! `standardwebhooks` package) standing in for an SMS bridge: every page names its person and
//! handle. Levels wait seconds here instead of minutes.

use incident_operator::api::{EscalationPolicy, EscalationState, Incident, OnCallSchedule};
use jiff::Timestamp;
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};
use serde_json::{Value, json};

use crate::{
    lifecycle::{edit, incident, setup},
    notifications::{DELIVERY, channel, secret},
    receiver::{Receiver, SECRET},
    support::{Operator, wait_for},
};

/// A schedule of the seeds' roles: alex primary, sam secondary, casey the manager, robin the
/// payments expert (each layer one person, so the test knows who is on call).
pub async fn schedule(client: &Client, ns: &str) {
    let schedule: OnCallSchedule = serde_json::from_value(json!({
        "apiVersion": "incident.dev/v1alpha1", "kind": "OnCallSchedule",
        "metadata": { "name": "team" },
        "spec": { "timeZone": "Europe/Berlin",
            "members": [
                { "name": "alex", "contacts": { "webhook": "+15551234567" } },
                { "name": "sam", "contacts": { "webhook": "+15551234568" } },
                { "name": "casey", "contacts": { "webhook": "+15551234571" } },
                { "name": "robin", "contacts": { "webhook": "+15551234570" } } ],
            "layers": [
                { "name": "primary", "members": ["alex"], "start": "2026-01-05" },
                { "name": "secondary", "members": ["sam"], "start": "2026-01-05" },
                { "name": "manager", "members": ["casey"], "start": "2026-01-05" },
                { "name": "payments", "members": ["robin"], "start": "2026-01-05" } ] },
    }))
    .expect("an OnCallSchedule");
    apply(client, ns, "team", &schedule).await;
}

/// The default policy: primary, secondary, then the manager for P0/P1, each waiting `wait`; the
/// chain runs `1 + repeat` times; the payments expert joins the first level. `extra` adds to spec.
pub async fn policy(client: &Client, ns: &str, wait: &str, repeat: u32, extra: Value) {
    let layer = |name: &str| json!({ "layer": { "schedule": "team", "layer": name } });
    let mut spec = json!({
        "default": true,
        "repeat": repeat,
        "levels": [
            { "name": "primary", "after": wait, "notify": [layer("primary")] },
            { "name": "secondary", "after": wait, "notify": [layer("secondary")] },
            { "name": "manager", "after": wait, "severities": ["P0", "P1"], "notify": [layer("manager")] } ],
        "experts": [ { "name": "payments", "selector": { "matchLabels": { "component": "payments" } },
                       "notify": [layer("payments")] } ],
    });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    let policy: EscalationPolicy = serde_json::from_value(json!({
        "apiVersion": "incident.dev/v1alpha1", "kind": "EscalationPolicy",
        "metadata": { "name": "team" }, "spec": spec,
    }))
    .expect("an EscalationPolicy");
    apply(client, ns, "team", &policy).await;
}

async fn apply<K>(client: &Client, ns: &str, name: &str, object: &K)
where
    K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    Api::<K>::namespaced(client.clone(), ns)
        .patch(
            name,
            &PatchParams::apply("incident-e2e").force(),
            &Patch::Apply(object),
        )
        .await
        .expect("apply");
}

/// The pager: a signed webhook Channel hearing pages and changes of command only.
pub async fn pager(client: &Client, ns: &str) -> Receiver {
    let receiver = Receiver::start(Some(SECRET)).await;
    secret(client, ns, "pager", &receiver.url(), Some(SECRET)).await;
    channel(
        client,
        ns,
        "pager",
        "pager",
        true,
        json!({ "events": ["Paged", "CommanderChanged"] }),
    )
    .await;
    receiver
}

/// The pages the receiver took, as (person, role), in order of arrival.
pub fn paged(received: &[Value]) -> Vec<(String, String)> {
    received
        .iter()
        .filter(|r| r["verified"] == true && r["body"]["event"] == "Paged")
        .filter(|r| r["answered"] == 200)
        .map(|r| {
            let who = &r["body"]["recipient"];
            (
                who["name"].as_str().unwrap_or("-").to_owned(),
                who["role"].as_str().unwrap_or("-").to_owned(),
            )
        })
        .collect()
}

pub fn people(received: &[Value]) -> Vec<String> {
    paged(received).into_iter().map(|(who, _)| who).collect()
}

pub async fn open(api: &Api<Incident>, name: &str, severity: &str, labels: Value) {
    let mut incident = incident(
        name,
        json!({ "title": format!("{name} is failing"), "severity": severity }),
    );
    incident.metadata.labels = serde_json::from_value(labels).ok();
    api.create(&Default::default(), &incident)
        .await
        .expect("create Incident");
}

pub async fn escalation_state(api: &Api<Incident>, name: &str, want: EscalationState) -> Incident {
    wait_for(api, name, &format!("escalation {want:?}"), DELIVERY, |i| {
        i.and_then(|i| i.status.as_ref())
            .and_then(|s| s.escalation.as_ref())
            .is_some_and(|e| e.state == want)
    })
    .await
    .expect("the incident exists")
}

#[tokio::test]
async fn nobody_acknowledges_so_primary_secondary_and_manager_are_paged_in_turn_twice() {
    let (client, ns, api) = setup("esc-climb").await;
    schedule(&client, &ns.name).await;
    policy(&client, &ns.name, "3s", 1, json!({})).await;
    let pager = pager(&client, &ns.name).await;
    let operator = Operator::start(&ns.name, &[]).await;

    open(&api, "checkout", "P1", json!({})).await;
    let chain = ["alex", "sam", "casey", "alex", "sam", "casey"];
    let received = pager
        .wait_for("six pages", DELIVERY, |r| paged(r).len() >= 6)
        .await;
    assert_eq!(
        people(&received),
        chain,
        "each level once per round, in order"
    );
    assert_eq!(
        paged(&received)[..3],
        [
            ("alex".to_owned(), "primary on call".to_owned()),
            ("sam".to_owned(), "secondary on call".to_owned()),
            ("casey".to_owned(), "manager on call".to_owned()),
        ]
    );
    let first = &received
        .iter()
        .find(|r| r["body"]["event"] == "Paged")
        .expect("a page")["body"];
    assert_eq!(
        first["recipient"]["handle"], "+15551234567",
        "the person's handle for the bridge"
    );
    assert!(
        first["text"]
            .as_str()
            .unwrap_or_default()
            .contains("kubectl incident ack checkout")
    );

    let incident = escalation_state(&api, "checkout", EscalationState::Exhausted).await;
    let escalation = incident
        .status
        .as_ref()
        .and_then(|s| s.escalation.clone())
        .expect("escalation");
    assert_eq!(escalation.steps, 6);
    assert_eq!(escalation.next_at, None);
    let pages: Vec<(i32, String)> = escalation
        .pages
        .iter()
        .map(|p| (p.round, p.level.clone()))
        .collect();
    assert_eq!(
        pages,
        [
            (1, "primary"),
            (1, "secondary"),
            (1, "manager"),
            (2, "primary"),
            (2, "secondary"),
            (2, "manager")
        ]
        .map(|(r, l)| (r, l.to_owned()))
    );
    // Each step went out at its deadline: 3 s apart on the chain's own clock.
    let started = escalation.started_at.as_ref().expect("started").0;
    for (k, page) in escalation.pages.iter().enumerate() {
        let due = started + jiff::SignedDuration::from_secs(3 * k as i64);
        assert!(
            page.time.0 >= due,
            "step {k} at {} before its deadline {due}",
            page.time.0
        );
    }
    let timeline: Vec<String> = incident
        .status
        .expect("status")
        .timeline
        .iter()
        .filter(|e| e.type_ == incident_operator::api::EntryType::Paged)
        .map(|e| e.message.clone())
        .collect();
    assert_eq!(timeline.len(), 6, "{timeline:?}");
    assert!(
        timeline[1].starts_with("Level secondary (round 1): paged sam (secondary on call) via"),
        "{}",
        timeline[1]
    );
    report_latency(&received, &escalation);
    operator.stop().await;
}

/// Prints deadline → receiver latency per page (the closing note's measurement).
fn report_latency(received: &[Value], escalation: &incident_operator::api::Escalation) {
    let started = escalation
        .started_at
        .as_ref()
        .map(|t| t.0)
        .unwrap_or(Timestamp::UNIX_EPOCH);
    let arrivals: Vec<f64> = received
        .iter()
        .filter(|r| r["body"]["event"] == "Paged" && r["answered"] == 200)
        .filter_map(|r| r["receivedAt"].as_f64())
        .collect();
    let mut latencies: Vec<f64> = arrivals
        .iter()
        .enumerate()
        .map(|(k, at)| at - (started.as_second() as f64 + 3.0 * k as f64))
        .collect();
    latencies.sort_by(f64::total_cmp);
    eprintln!("escalation deadline -> receiver latency (s): {latencies:?}");
}

#[tokio::test]
async fn an_acknowledgment_stops_the_climb_and_makes_the_acknowledger_commander() {
    let (client, ns, api) = setup("esc-ack").await;
    schedule(&client, &ns.name).await;
    policy(&client, &ns.name, "4s", 0, json!({})).await;
    let pager = pager(&client, &ns.name).await;
    let operator = Operator::start(&ns.name, &[]).await;

    open(&api, "search", "P1", json!({})).await;
    pager
        .wait_for("the secondary paged", DELIVERY, |r| {
            people(r) == ["alex", "sam"]
        })
        .await;
    edit(&api, "search", json!({ "acknowledgment": { "by": "sam" } })).await;
    let incident = escalation_state(&api, "search", EscalationState::Acknowledged).await;
    let status = incident.status.expect("status");
    assert_eq!(status.commander.as_deref(), Some("sam"));
    let escalation = status.escalation.expect("escalation");
    assert_eq!(escalation.next_at, None, "no next level");
    // Past the manager's deadline (8 s after opening), still two pages.
    let deadline =
        escalation.started_at.as_ref().expect("started").0 + jiff::SignedDuration::from_secs(10);
    let received = pager
        .wait_for("the manager's deadline to pass", DELIVERY, |_| {
            Timestamp::now() > deadline
        })
        .await;
    assert_eq!(
        people(&received),
        ["alex", "sam"],
        "nobody paged after the acknowledgment"
    );
    operator.stop().await;
}

#[tokio::test]
async fn the_domain_expert_is_paged_with_the_primary_for_a_labelled_incident() {
    let (client, ns, api) = setup("esc-expert").await;
    schedule(&client, &ns.name).await;
    policy(&client, &ns.name, "60s", 0, json!({})).await;
    let pager = pager(&client, &ns.name).await;
    let operator = Operator::start(&ns.name, &[]).await;

    open(&api, "payments", "P2", json!({ "component": "payments" })).await;
    let received = pager
        .wait_for("two pages", DELIVERY, |r| paged(r).len() >= 2)
        .await;
    let mut first = paged(&received);
    first.sort();
    assert_eq!(
        first,
        [
            ("alex".to_owned(), "primary on call".to_owned()),
            (
                "robin".to_owned(),
                "payments expert, payments on call".to_owned()
            ),
        ]
    );
    operator.stop().await;
}

#[tokio::test]
async fn the_operator_killed_between_two_levels_neither_skips_nor_repeats_one() {
    let (client, ns, api) = setup("esc-kill").await;
    schedule(&client, &ns.name).await;
    policy(&client, &ns.name, "3s", 0, json!({})).await;
    let pager = pager(&client, &ns.name).await;
    let operator = Operator::start(&ns.name, &[]).await;

    open(&api, "orders", "P1", json!({})).await;
    pager
        .wait_for("the primary paged", DELIVERY, |r| people(r) == ["alex"])
        .await;
    operator.kill().await;
    // Down past both later deadlines (3 s and 6 s after opening).
    let incident = api.get("orders").await.expect("incident");
    let started = incident
        .status
        .and_then(|s| s.escalation)
        .and_then(|e| e.started_at)
        .expect("started")
        .0;
    let both_due = started + jiff::SignedDuration::from_secs(7);
    pager
        .wait_for("both later deadlines to pass", DELIVERY, |_| {
            Timestamp::now() > both_due
        })
        .await;
    assert_eq!(
        people(&pager.received().await),
        ["alex"],
        "nothing while the operator is down"
    );

    let operator = Operator::start(&ns.name, &[]).await;
    let received = pager
        .wait_for("the missed levels", DELIVERY, |r| paged(r).len() >= 3)
        .await;
    escalation_state(&api, "orders", EscalationState::Exhausted).await;
    let received = pager
        .wait_for("every delivery", DELIVERY, |r| r.len() >= received.len())
        .await;
    assert_eq!(
        people(&received),
        ["alex", "sam", "casey"],
        "each level exactly once, in order"
    );
    operator.stop().await;
}
