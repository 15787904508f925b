//! Lifecycle tests (core layer, tests): the respond-by, update and post-mortem clocks, the SLA
//! and the wake-up times.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{
    DAY, HOUR, MIN, Sim, ack, assert_condition, assert_quiet_at, completed_postmortem, note,
    reasons, resolution, status_update as update, t,
};
use crate::{
    api::{EntryType, Phase, Severity, TimelineEntry},
    core::lifecycle::{LifecycleConfig, Observation},
};

#[test]
fn an_unacknowledged_incident_past_respond_by_escalates_exactly_once() {
    let mut sim = Sim::new(Severity::P2);
    sim.at(0);
    let decision = sim.at(4 * HOUR - 1);
    assert_eq!(decision.notices, Vec::new());
    assert_eq!(decision.wake_at, Some(t(4 * HOUR)));
    assert_condition(&sim, "AcknowledgeOverdue", "False", "WithinResponseTime");

    let decision = sim.at(4 * HOUR);
    let escalated = sim.entries(EntryType::Escalated);
    assert_eq!(escalated.len(), 1);
    assert_eq!(
        escalated[0].message,
        "Not acknowledged within the P2 response time of 4h"
    );
    assert_eq!(decision.notices.len(), 1);
    assert_eq!(decision.notices[0].reason, "AcknowledgeOverdue");
    assert!(decision.notices[0].warning);
    assert_eq!(
        decision.observations,
        [Observation::Overdue {
            severity: Severity::P2,
            clock: "acknowledge"
        }]
    );
    assert_condition(&sim, "AcknowledgeOverdue", "True", "ResponseTimeExceeded");
    assert_eq!(
        sim.condition("AcknowledgeOverdue").last_transition_time,
        Time(t(4 * HOUR))
    );
    assert!(sim.status().sla.as_ref().expect("sla").breached);
    assert_eq!(decision.wake_at, None);
    assert_eq!(sim.phase(), Some(Phase::Detected));

    for later in [4 * HOUR, 4 * HOUR + 1, 5 * HOUR, 30 * DAY, 3650 * DAY] {
        assert_quiet_at(&mut sim, later);
    }
    assert_eq!(sim.entries(EntryType::Escalated).len(), 1);
}

#[test]
fn acknowledging_late_clears_the_overdue_condition_but_keeps_the_breach() {
    let mut sim = Sim::new(Severity::P2);
    sim.at(0);
    sim.at(4 * HOUR);
    sim.edit(|s| s.acknowledgment = ack("bo"));
    let decision = sim.at(5 * HOUR);
    assert_eq!(reasons(&decision), ["Acknowledged"]);
    assert_eq!(sim.phase(), Some(Phase::Acknowledged));
    assert_condition(&sim, "AcknowledgeOverdue", "False", "WithinResponseTime");
    assert!(sim.status().sla.as_ref().expect("sla").breached);
    assert_eq!(sim.entries(EntryType::Escalated).len(), 1);
}

#[test]
fn acknowledging_in_time_never_escalates() {
    let mut sim = Sim::new(Severity::P0);
    sim.at(0);
    sim.edit(|s| s.acknowledgment = ack("bo"));
    sim.at(14 * MIN);
    for later in [15 * MIN, HOUR, DAY] {
        sim.at(later);
    }
    assert_eq!(
        sim.entries(EntryType::Escalated),
        Vec::<&TimelineEntry>::new()
    );
    assert!(!sim.status().sla.as_ref().expect("sla").breached);
    assert_condition(&sim, "AcknowledgeOverdue", "False", "WithinResponseTime");
}

#[test]
fn resolving_before_the_deadline_never_escalates() {
    let mut sim = Sim::new(Severity::P2);
    sim.at(0);
    sim.edit(|s| s.resolution = resolution(None));
    sim.at(HOUR);
    sim.at(10 * HOUR);
    assert_eq!(sim.entries(EntryType::Escalated).len(), 0);
    assert!(!sim.status().sla.as_ref().expect("sla").breached);
}

#[test]
fn raising_the_severity_brings_the_deadline_forward() {
    let mut sim = Sim::new(Severity::P3);
    sim.at(0);
    sim.edit(|s| s.severity = Severity::P1);
    let decision = sim.at(2 * HOUR);
    assert_eq!(
        sim.status().sla.as_ref().expect("sla").respond_by,
        Time(t(HOUR))
    );
    // A severity change is not an update: the new P1 has been silent since detection.
    assert_eq!(
        reasons(&decision),
        ["SeverityChanged", "AcknowledgeOverdue", "UpdateOverdue"]
    );
    assert_eq!(sim.entries(EntryType::Escalated).len(), 1);
}

#[test]
fn p0_and_p1_without_updates_are_reminded_every_interval_until_someone_posts_one() {
    for severity in [Severity::P0, Severity::P1] {
        let mut sim = Sim::new(severity);
        sim.at(0);
        sim.edit(|s| s.acknowledgment = ack("bo"));
        sim.at(5 * MIN);

        let decision = sim.at(35 * MIN - 1);
        assert_eq!(decision.notices, Vec::new(), "{severity}");
        assert_eq!(decision.wake_at, Some(t(35 * MIN)), "{severity}");
        assert_condition(&sim, "UpdateOverdue", "False", "UpToDate");

        let decision = sim.at(35 * MIN);
        let due = sim.entries(EntryType::UpdateDue);
        assert_eq!(due.len(), 1, "{severity}");
        assert_eq!(
            due[0].message,
            format!(
                "No update for 30m: {severity} incidents need one at least every 30m; ana, please post one"
            )
        );
        assert_eq!(reasons(&decision), ["UpdateOverdue"], "{severity}");
        assert!(decision.notices[0].warning);
        assert_eq!(
            decision.observations,
            [Observation::Overdue {
                severity,
                clock: "update"
            }]
        );
        assert_condition(&sim, "UpdateOverdue", "True", "NoRecentUpdate");
        assert_eq!(decision.wake_at, Some(t(65 * MIN)), "the next reminder");
        assert_quiet_at(&mut sim, 64 * MIN);

        // Automated work and notes are not updates for people: the reminders go on.
        sim.edit(|s| s.notes.push(note("bo", "replica lag 40s")));
        let decision = sim.at(65 * MIN);
        assert_eq!(reasons(&decision), ["Note", "UpdateOverdue"], "{severity}");
        let due = sim.entries(EntryType::UpdateDue);
        assert_eq!(due.len(), 2, "{severity}");
        assert!(
            due[1].message.starts_with("No update for 1h"),
            "{}",
            due[1].message
        );

        // An update stops them, and the next deadline is an interval later.
        sim.edit(|s| {
            s.updates
                .push(update("bo", "failover done, replaying writes", None))
        });
        let decision = sim.at(70 * MIN);
        assert_eq!(reasons(&decision), ["Update"], "{severity}");
        assert_eq!(decision.notices[0].actor.as_deref(), Some("bo"));
        assert_condition(&sim, "UpdateOverdue", "False", "UpToDate");
        assert_eq!(sim.status().last_update_time, Some(Time(t(70 * MIN))));
        assert_eq!(decision.wake_at, Some(t(100 * MIN)), "{severity}");
        assert_quiet_at(&mut sim, 99 * MIN);
        let decision = sim.at(100 * MIN);
        assert_eq!(reasons(&decision), ["UpdateOverdue"], "{severity}");
        assert_eq!(sim.entries(EntryType::UpdateDue).len(), 3, "{severity}");
    }
}

#[test]
fn an_update_that_names_the_next_one_sets_the_deadline() {
    let mut sim = Sim::new(Severity::P1);
    sim.at(0);
    sim.edit(|s| {
        s.updates
            .push(update("ana", "cause found: a bad config push", Some("45m")))
    });
    let decision = sim.at(10 * MIN);
    assert_eq!(reasons(&decision), ["Update"]);
    assert_eq!(sim.status().next_update_time, Some(Time(t(55 * MIN))));
    assert_eq!(
        decision.wake_at.map(|w| w.min(t(55 * MIN))),
        Some(t(55 * MIN))
    );
    assert!(sim.entries(EntryType::UpdateDue).is_empty());
    let decision = sim.at(55 * MIN);
    assert!(reasons(&decision).contains(&"UpdateOverdue"));

    // The next update without a promise goes back to the interval.
    sim.edit(|s| s.updates.push(update("ana", "fix deployed", None)));
    sim.at(60 * MIN);
    assert_eq!(sim.status().next_update_time, None);
    let decision = sim.at(89 * MIN);
    assert!(!reasons(&decision).contains(&"UpdateOverdue"));
    let decision = sim.at(90 * MIN);
    assert!(reasons(&decision).contains(&"UpdateOverdue"));
}

#[test]
fn the_same_update_twice_is_recorded_twice_and_each_only_once() {
    let mut sim = Sim::new(Severity::P2);
    sim.at(0);
    sim.edit(|s| {
        s.updates.push(update("ana", "still looking", None));
        s.updates.push(update("ana", "still looking", None));
    });
    let decision = sim.at(MIN);
    assert_eq!(reasons(&decision), ["Update", "Update"]);
    assert_quiet_at(&mut sim, 2 * MIN);
    // Dropping the older one (the list is bounded) records nothing new.
    sim.edit(|s| {
        s.updates.remove(0);
    });
    sim.at(3 * MIN);
    let recorded: i32 = sim
        .entries(EntryType::Update)
        .iter()
        .map(|e| e.count.unwrap_or(1))
        .sum();
    assert_eq!(recorded, 2, "two alike in a row are one entry counting 2");
}

#[test]
fn p2_and_p3_never_get_update_due() {
    for severity in [Severity::P2, Severity::P3] {
        let mut sim = Sim::new(severity);
        sim.at(0);
        sim.edit(|s| s.acknowledgment = ack("bo"));
        let decision = sim.at(5 * MIN);
        assert_eq!(decision.wake_at, None, "{severity}");
        for later in [HOUR, DAY, 30 * DAY] {
            assert_quiet_at(&mut sim, later);
        }
        assert_eq!(sim.entries(EntryType::UpdateDue).len(), 0, "{severity}");
        assert_condition(&sim, "UpdateOverdue", "False", "UpToDate");
        assert_eq!(
            sim.condition("UpdateOverdue").message,
            "No regular updates required"
        );
    }
}

#[test]
fn lowering_the_severity_stops_the_update_clock() {
    let mut sim = Sim::new(Severity::P0);
    sim.at(0);
    sim.edit(|s| {
        s.acknowledgment = ack("bo");
        s.severity = Severity::P2;
    });
    sim.at(MIN);
    sim.at(DAY);
    assert_eq!(sim.entries(EntryType::UpdateDue).len(), 0);
}

#[test]
fn the_postmortem_is_overdue_48h_after_resolution_once() {
    let mut sim = Sim::new(Severity::P2);
    sim.at(0);
    sim.edit(|s| s.resolution = resolution(None));
    sim.at(HOUR);

    let decision = sim.at(49 * HOUR - 1);
    assert_eq!(decision.notices, Vec::new());
    assert_eq!(decision.wake_at, Some(t(49 * HOUR)));

    let decision = sim.at(49 * HOUR);
    let overdue = sim.entries(EntryType::PostmortemOverdue);
    assert_eq!(overdue.len(), 1);
    assert_eq!(
        overdue[0].message,
        "Post-mortem not completed within 48h of resolution"
    );
    assert_eq!(reasons(&decision), ["PostmortemOverdue"]);
    assert!(decision.notices[0].warning);
    assert_eq!(
        decision.observations,
        [Observation::Overdue {
            severity: Severity::P2,
            clock: "postmortem"
        }]
    );
    assert_condition(&sim, "PostmortemOverdue", "True", "PostmortemNotCompleted");
    assert_eq!(decision.wake_at, None);
    assert_eq!(sim.phase(), Some(Phase::Resolved));

    assert_quiet_at(&mut sim, 100 * HOUR);
    assert_quiet_at(&mut sim, 365 * DAY);

    // Completing it late closes the incident and clears the condition.
    sim.edit(|s| s.postmortem = completed_postmortem());
    sim.at(366 * DAY);
    assert_eq!(sim.phase(), Some(Phase::Closed));
    assert_condition(&sim, "PostmortemOverdue", "False", "OnTime");
}

#[test]
fn a_closed_incident_is_never_postmortem_overdue() {
    let mut sim = Sim::new(Severity::P2);
    sim.at(0);
    sim.edit(|s| s.resolution = resolution(None));
    sim.at(HOUR);
    sim.edit(|s| s.postmortem = completed_postmortem());
    sim.at(2 * HOUR);
    for later in [49 * HOUR, 100 * HOUR, 365 * DAY] {
        assert_quiet_at(&mut sim, later);
    }
    assert_eq!(sim.entries(EntryType::PostmortemOverdue).len(), 0);
    assert_condition(&sim, "PostmortemOverdue", "False", "OnTime");
}

#[test]
fn sub_second_clock_settings_fire_each_deadline_once() {
    // Durations such as `--update-interval 30m0.25s` parse; status times are whole seconds.
    let config = LifecycleConfig {
        response_times: [
            Duration::from_millis(15 * 60_000 + 500),
            Duration::from_millis(60 * 60_000 + 500),
            Duration::from_millis(4 * 3_600_000 + 500),
            Duration::from_millis(24 * 3_600_000 + 500),
        ],
        update_interval: Duration::from_millis(30 * 60_000 + 250),
        update_severities: vec![Severity::P0, Severity::P1],
        postmortem_due: Duration::from_millis(48 * 3_600_000 + 750),
    };
    let mut sim = Sim::new(Severity::P0).with_config(config);
    let decision = sim.at(0);
    assert_eq!(
        sim.status(),
        &decision.status,
        "nothing lost in the round trip"
    );
    let decision = sim.at(HOUR);
    assert_eq!(reasons(&decision), ["AcknowledgeOverdue", "UpdateOverdue"]);
    assert_quiet_at(&mut sim, HOUR + 1);
    let decision = sim.at(2 * HOUR);
    assert_eq!(reasons(&decision), ["UpdateOverdue"], "the next reminder");
    assert_quiet_at(&mut sim, 2 * HOUR + 1);

    sim.edit(|s| s.resolution = resolution(None));
    sim.at(3 * HOUR);
    let decision = sim.at(60 * HOUR);
    assert_eq!(reasons(&decision), ["PostmortemOverdue"]);
    assert_quiet_at(&mut sim, 61 * HOUR);
}
