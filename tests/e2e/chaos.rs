//! The chaos campaign (issue 20): trials, each SIGKILLing the operator at random instants (0–2 s
//! after each (re)start, a seeded schedule printed so one can be rerun with INCIDENT_E2E_CHAOS_SEED)
//! while it rolls back, restarts and scales, sends messages and climbs an escalation. The windows
//! that matter are widened (INCIDENT_OPERATOR_SLOW: 1.5 s between writing a plan and patching, and
//! between sending a message and recording it) so that random kills land in them; where each kill
//! landed is read from the state it left. After the last restart every trial checks: the requested
//! actions executed exactly once, every message delivered (repeats only under the same key), every
//! escalation level paged once and in order, one incident. With INCIDENT_E2E_CHAOS_FAULTS set
//! (`make chaos`) two more trials restart kube-apiserver and pause etcd for 20 s mid-incident. `make test` runs 5 trials (INCIDENT_E2E_CHAOS_TRIALS); the table is printed.

use std::{collections::BTreeMap, time::SystemTime};

use crate::chaos_trials::{Fault, Scenario, Trial};

/// A small deterministic generator (SplitMix64): the schedule is the seed's, on every machine.
pub struct Schedule(pub u64);

impl Schedule {
    pub fn next_ms(&mut self, below: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % below
    }
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|s| s.parse().ok())
}

#[tokio::test]
async fn killed_at_random_instants_the_operator_neither_repeats_nor_loses_anything() {
    let seed = env_number("INCIDENT_E2E_CHAOS_SEED").unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    let trials = env_number("INCIDENT_E2E_CHAOS_TRIALS").unwrap_or(5);
    eprintln!("chaos: INCIDENT_E2E_CHAOS_SEED={seed} INCIDENT_E2E_CHAOS_TRIALS={trials}");
    let mut schedule = Schedule(seed);
    let scenarios = [
        Scenario::Rollback,
        Scenario::RestartScale,
        Scenario::Escalation,
        Scenario::Messages,
    ];
    let mut rows = Vec::new();
    for number in 0..trials {
        let scenario = scenarios[number as usize % scenarios.len()];
        let row = Trial::kills(number, scenario, &mut schedule).await;
        eprintln!("chaos-row: {row}");
        rows.push(row);
    }
    if std::env::var_os("INCIDENT_E2E_CHAOS_FAULTS").is_some() {
        for fault in [Fault::ApiServerRestart, Fault::EtcdPause] {
            let row = Trial::fault(rows.len() as u64, fault).await;
            eprintln!("chaos-row: {row}");
            rows.push(row);
        }
    }
    let mut landed: BTreeMap<&str, usize> = BTreeMap::new();
    for row in &rows {
        for (_, window) in &row.kills {
            *landed.entry(window).or_default() += 1;
        }
    }
    eprintln!(
        "chaos: seed {seed}, {} trials, kills by window: {landed:?}",
        rows.len()
    );
}
