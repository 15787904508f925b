//! One lifecycle update, start to end (core layer): record, then clocks, then phase and conditions.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{
    LifecycleConfig, Related, Update, clocks,
    conditions::{self, Seen},
    draft::Draft,
    record,
};
use crate::api::{Incident, Sla};

/// Computes the incident's next status and what to do about it.
pub fn update(
    incident: &Incident,
    related: &Related,
    now: Timestamp,
    config: &LifecycleConfig,
) -> Update {
    let mut d = Draft::new(incident, now);
    let detected_at = record::detect(&mut d, incident);
    record::changes(&mut d, incident);
    record::acknowledge(&mut d, incident, detected_at);
    record::notes(&mut d, incident);
    record::updates(&mut d, incident);
    record::alerts(&mut d, incident);
    record::actions(&mut d, related);
    record::resolution(&mut d, incident, detected_at, config);
    record::close(&mut d, incident);
    let missing = record::missing(&mut d, related);
    record::runbook_problem(&mut d, related);
    let clocks = clocks::run(&mut d, incident, detected_at, config);

    let generation = incident.metadata.generation.unwrap_or(0);
    let mut status = d.status;
    status.phase = Some(conditions::phase(&status, &clocks));
    let seen = Seen {
        related,
        missing: &missing,
        last_update: d.last_update.unwrap_or(detected_at),
        now: d.now,
        generation,
    };
    status.conditions = conditions::conditions(incident, &status, &clocks, seen);
    status.sla = Some(Sla {
        respond_by: Time(clocks.respond_by),
        breached: clocks.breached,
        // Business-hours clocks come with the escalation (issue 16); 24x7 until then.
        business_hours: None,
        postmortem_due_by: clocks
            .postmortem_due_by
            .filter(|_| !clocks.closed)
            .map(Time),
    });
    status.metrics = Some(d.metrics);
    status.last_update_time = d.last_update.map(Time);
    status.next_update_time = d.next_update.map(Time);
    status.observed_generation = Some(generation);
    status.recorded = Some(d.recorded);
    Update {
        status,
        notices: d.notices,
        observations: d.observations,
        wake_at: clocks.wake_at,
    }
}
