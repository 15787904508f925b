//! The incident's status write and what goes with it (controllers layer): the lifecycle update is
//! computed, its Events published, then the status written conditionally; the metrics follow.

use jiff::Timestamp;
use kube::{ResourceExt, runtime::reflector::Store};
use tracing::{info, warn};

use super::context::Context;
use crate::cluster::assignment::Assignment;
use crate::{
    Error, Result,
    api::{
        ActionPhase, ActionStatus, EntryType, Incident, IncidentStatus, NotificationEvent, Phase,
    },
    cluster::{self, events, incidents},
    core::{
        escalation::{
            self, Inputs, climb,
            policy::{self, Choice, Clock},
        },
        lifecycle::{self, Observation, Related, RunbookProblem, Update, phase_label},
        notify::{outbox, routing},
        remediation::step::kind_label,
        status_page,
        text::fingerprint,
        timeline::{self, Entry, Notice},
    },
    metrics::{ActionLabels, KindLabels, Metrics, OpenLabels, OverdueLabels, SeverityLabels},
};

/// Runs the lifecycle update over `incident` and writes the result if it changed; `incident`
/// then holds the stored status.
pub(super) async fn persist(
    ctx: &Context,
    incident: &mut Incident,
    stored: &mut Option<IncidentStatus>,
    (missing, runbook_problem): (&[String], Option<&RunbookProblem>),
    action_entries: Vec<Entry>,
    now: Timestamp,
) -> Result<Update> {
    let escalation = Escalation::of(ctx, incident);
    let related = Related {
        missing_affected: missing.to_vec(),
        runbook_problem: runbook_problem.cloned(),
        action_entries,
        business_hours: escalation.clock.calendar.clone(),
    };
    let mut decision = lifecycle::update(incident, &related, now, &ctx.config);
    let climbed = escalate(ctx, incident, &mut decision.status, &escalation, now);
    // Public updates are recorded with the transition that carries them, in the same write.
    status_page::record::record(incident, &mut decision.status, now);
    // The news goes into the outbox in the same write that records it: never lost, never twice.
    let channels = ctx.channels.all();
    let mut news = decision.notices.clone();
    news.extend(climbed.news);
    let mut added = outbox::enqueue(
        incident,
        &news,
        &channels,
        ctx.operator_namespace.as_deref(),
    );
    added.extend(climbed.pages);
    let status = &mut decision.status;
    let dropped = outbox::append(&mut status.notifications, &status.deliveries, added);
    // Every step is an Event (the news among them was only routed above, not published yet).
    decision.notices.extend(climbed.notices);
    if let (Some(said), Some(first)) = (outbox::dropped_summary(&dropped), dropped.first()) {
        let time = timeline::record(
            &mut status.timeline,
            now,
            EntryType::MessagesDropped,
            said.clone(),
            None,
        );
        decision.notices.push(Notice {
            key: fingerprint(&[&incident.uid().unwrap_or_default(), "dropped", &first.key]),
            warning: true,
            reason: "MessagesDropped",
            message: said,
            actor: None,
            time,
        });
    }
    decision.wake_at = [decision.wake_at, climbed.wake_at]
        .into_iter()
        .flatten()
        .min();
    if stored.as_ref() != Some(&decision.status) {
        apply(ctx, incident, &decision, now).await?;
        *stored = Some(decision.status.clone());
    }
    incident.status = Some(decision.status.clone());
    Ok(decision)
}

/// The policy an incident follows and how its clocks count.
struct Escalation {
    choice: Choice,
    clock: Clock,
}

impl Escalation {
    fn of(ctx: &Context, incident: &Incident) -> Escalation {
        let choice = policy::choose(
            incident,
            &ctx.policies.all(),
            ctx.operator_namespace.as_deref(),
        );
        let chosen = match &choice {
            Choice::Policy(p) => Some(p.as_ref()),
            _ => None,
        };
        let severity = incident.spec.severity;
        let clock = Clock::new(chosen, severity, ctx.config.response_time(severity));
        Escalation { choice, clock }
    }
}

/// Takes the escalation steps that are due, into `status`.
fn escalate(
    ctx: &Context,
    incident: &Incident,
    status: &mut IncidentStatus,
    escalation: &Escalation,
    now: Timestamp,
) -> climb::Outcome {
    let operator_namespace = ctx.operator_namespace.as_deref();
    let channels = ctx.channels.all();
    let page_channels: Vec<_> = channels
        .iter()
        .filter(|c| routing::hears(c, incident, NotificationEvent::Paged, operator_namespace))
        .cloned()
        .collect();
    let inputs = Inputs {
        choice: &escalation.choice,
        clock: &escalation.clock,
        schedules: &ctx.schedules.all(),
        page_channels: &page_channels,
        channels: &channels,
        operator_namespace,
    };
    escalation::advance(incident, status, &inputs, now)
}

/// Emits the Events, then writes status. Event names are derived from the transition, so a retry
/// after a crash between the two finds them already there instead of creating duplicates. An
/// object too large to store announces nothing: it says so once, as a Warning Event, instead; so
/// does a write the API server refuses for good.
async fn apply(
    ctx: &Context,
    incident: &mut Incident,
    decision: &Update,
    now: Timestamp,
) -> Result<()> {
    let mut candidate = incident.clone();
    candidate.status = Some(decision.status.clone());
    let bytes = serde_json::to_vec(&candidate).map_or(0, |v| v.len());
    if bytes > ctx.max_object_bytes {
        let why = format!(
            "the incident with its status would be {bytes} bytes, over the {} the operator \
             writes (the API server's storage refuses about 1.5 MiB)",
            ctx.max_object_bytes
        );
        refused(ctx, incident, &why, now).await?;
        return Err(Error::Refused(why));
    }
    for notice in &decision.notices {
        events::publish(&ctx.client, &ctx.instance, incident, notice, now).await?;
    }
    // Conditional on the resourceVersion: a decision made from a stale cache (the watch not yet
    // showing our previous write) is refused with 409 and retried on fresh data.
    let written = match incidents::write_status(&ctx.client, incident, &decision.status).await {
        Ok(written) => written,
        Err(Error::Kube(error)) => {
            let Some(why) = cluster::refused_for_good(&error) else {
                return Err(Error::Kube(error));
            };
            refused(ctx, incident, &why, now).await?;
            return Err(Error::Refused(why));
        }
        Err(error) => return Err(error),
    };
    incident.metadata.resource_version = written.resource_version();
    for notice in &decision.notices {
        info!(reason = notice.reason, message = %notice.message, "recorded");
    }
    observe(&ctx.metrics, &decision.observations);
    Ok(())
}

/// Largest incident (spec and status, as JSON) the operator writes: well under etcd's 1.5 MiB
/// request limit, which also counts the object's managedFields.
pub(super) const MAX_OBJECT_BYTES: usize = 1_400_000;

/// Says once per version of the incident why its status could not be written.
async fn refused(ctx: &Context, incident: &Incident, why: &str, now: Timestamp) -> Result<()> {
    let version = incident.resource_version().unwrap_or_default();
    let uid = incident.uid().unwrap_or_default();
    let notice = Notice {
        key: fingerprint(&[&uid, "status-not-written", &version]),
        warning: true,
        reason: "StatusNotWritten",
        message: format!(
            "The operator could not record this incident's status, so nothing it decided took \
             effect; it tries again in {} minutes. Why: {why}",
            cluster::REFUSED_BACKOFF.as_secs() / 60
        ),
        actor: None,
        time: now,
    };
    warn!(reason = notice.reason, %why, "status refused");
    events::publish(&ctx.client, &ctx.instance, incident, &notice, now).await
}

pub(super) fn observe_action(metrics: &Metrics, action: &ActionStatus) {
    let kind = kind_label(action.kind).to_owned();
    let result = match action.phase {
        ActionPhase::Succeeded => "succeeded",
        ActionPhase::Failed => "failed",
        _ => "skipped",
    };
    metrics
        .actions
        .get_or_create(&ActionLabels {
            kind: kind.clone(),
            result: result.to_owned(),
        })
        .inc();
    if let (Some(started), Some(finished)) = (&action.started_at, &action.finished_at) {
        let seconds = finished.0.duration_since(started.0).as_secs_f64().max(0.0);
        metrics
            .action_duration
            .get_or_create(&KindLabels { kind })
            .observe(seconds);
    }
}

fn observe(metrics: &Metrics, observations: &[Observation]) {
    for observation in observations {
        match observation {
            Observation::Acknowledged { severity, seconds } => metrics
                .time_to_acknowledge
                .get_or_create(&SeverityLabels {
                    severity: severity.to_string(),
                })
                .observe(*seconds),
            Observation::Resolved { severity, seconds } => metrics
                .time_to_resolve
                .get_or_create(&SeverityLabels {
                    severity: severity.to_string(),
                })
                .observe(*seconds),
            Observation::Overdue { severity, clock } => {
                metrics
                    .overdue
                    .get_or_create(&OverdueLabels {
                        severity: severity.to_string(),
                        clock: (*clock).to_owned(),
                    })
                    .inc();
            }
        }
    }
}

/// Recounts open incidents from the controller's cache, so restarts never double count.
pub(super) fn refresh_open_gauge(metrics: &Metrics, store: &Store<Incident>, mine: &Assignment) {
    let gauge = &metrics.incidents_open;
    gauge.clear();
    for incident in store.state() {
        if !mine.covers(&incident.namespace().unwrap_or_default()) {
            continue;
        }
        if incident.status.as_ref().and_then(|s| s.phase) == Some(Phase::Closed) {
            continue;
        }
        gauge
            .get_or_create(&OpenLabels {
                severity: incident.spec.severity.to_string(),
                phase: phase_label(incident.status.as_ref()).to_owned(),
            })
            .inc();
    }
}
