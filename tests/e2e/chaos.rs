//! Chaos: the operator is SIGKILLed at random instants (a seeded schedule, printed; rerun one with
//! INCIDENT_E2E_CHAOS_SEED) while it rolls a crash-looping Deployment back and tells a signed
//! webhook about the incident's opening, acknowledgment and resolution, and restarted after each
//! kill. Whatever the instants: the rollback happened exactly once (one new revision), the action is
//! recorded once, and every message arrived in order, each under one key (a message whose record a
//! kill cut off may arrive again, under the same key, never as a new message).

use std::{
    collections::BTreeMap,
    time::{Duration, SystemTime},
};

use incident_operator::api::{ActionPhase, EntryType};
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;

use crate::{
    lifecycle::entries,
    notifications::{DELIVERY, acknowledge, pages_setup, resolve},
    receiver::delivered,
    remediation::{action, action_settles, bad_deploy_history, request_rollback, revisions},
    support::{Operator, wait_for},
};

const KILLS: usize = 10;
/// Kills land within this long of the previous (re)start being ready.
const LONGEST_LIFE_MS: u64 = 600;

/// A small deterministic generator (SplitMix64): the schedule is the seed's, on every machine.
struct Schedule(u64);

impl Schedule {
    fn next_ms(&mut self, below: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % below
    }
}

#[tokio::test]
async fn killed_at_random_instants_the_operator_neither_repeats_nor_loses_a_step() {
    let seed = std::env::var("INCIDENT_E2E_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    eprintln!("chaos: INCIDENT_E2E_CHAOS_SEED={seed}");
    let mut schedule = Schedule(seed);
    let (client, ns, api, receiver, mut operator) = pages_setup("chaos", &[]).await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    bad_deploy_history(&deployments, "web", 1).await;
    assert_eq!(revisions(&client, &ns.name, "web").await, [1, 2, 3]);

    // A P1 incident asking for a rollback: the pages Channel hears it.
    request_rollback(&api, "web-down", "web").await;
    let mut instants = Vec::new();
    for kill in 0..KILLS {
        let life = schedule.next_ms(LONGEST_LIFE_MS);
        instants.push(life);
        tokio::time::sleep(Duration::from_millis(life)).await;
        operator.kill().await;
        // People keep working while the operator is down.
        match kill {
            2 => acknowledge(&api, "web-down").await,
            5 => resolve(&api, "web-down").await,
            _ => {}
        }
        operator = Operator::start(&ns.name, &[]).await;
    }
    let context = format!("seed {seed}, kills after {instants:?} ms");

    let done = action_settles(&api, "web-down", "undo").await;
    let undo = action(&done, "undo").expect("action status");
    assert_eq!(undo.phase, ActionPhase::Succeeded, "{context}: {undo:#?}");
    // Exactly one rollback: revision 2's template came back as revision 4, nothing more.
    assert_eq!(
        revisions(&client, &ns.name, "web").await,
        [1, 3, 4],
        "{context}"
    );
    let settled = wait_for(
        &api,
        "web-down",
        "the incident's story complete",
        DELIVERY,
        |i| {
            i.is_some_and(|i| {
                entries(i, EntryType::Resolved) == 1 && entries(i, EntryType::ActionSucceeded) == 1
            })
        },
    )
    .await
    .expect("the incident");
    for type_ in [
        EntryType::ActionStarted,
        EntryType::ActionSucceeded,
        EntryType::Acknowledged,
        EntryType::Resolved,
    ] {
        assert_eq!(entries(&settled, type_), 1, "{context}: {type_:?}");
    }

    // Every message, in order, each under its own key; repeats only under the same key.
    let received = receiver
        .wait_for(
            "opened, acknowledged and resolved delivered",
            DELIVERY,
            |r| {
                let mut seen: Vec<String> = Vec::new();
                for (event, _) in delivered(r) {
                    if seen.last() != Some(&event) {
                        seen.push(event);
                    }
                }
                seen.ends_with(&["Resolved".to_owned()])
            },
        )
        .await;
    let mut keys: BTreeMap<String, String> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for (event, key) in delivered(&received) {
        let first = keys.entry(event.clone()).or_insert_with(|| key.clone());
        assert_eq!(*first, key, "{context}: {event} sent under two keys");
        if order.last() != Some(&event) {
            order.push(event);
        }
    }
    assert_eq!(
        order,
        ["Opened", "Acknowledged", "Resolved"],
        "{context}: messages out of order or lost"
    );
    operator.stop().await;
}
