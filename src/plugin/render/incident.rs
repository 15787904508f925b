//! Plugin rendering, the incident page (plugin layer): what `show` prints — the facts, the
//! escalation, then the timeline, remediation actions, runbook steps, the detector's evidence and
//! the notes.

use std::fmt::Write;

use jiff::Timestamp;

use super::queue::{NONE, incident_age, phase, table, time_left, truncate};
use crate::api::{
    ActionStatus, Evidence, GitOpsOwner, Incident, RunbookRun, StepPhase, TimelineEntry,
};

fn clock(time: Timestamp) -> String {
    time.strftime("%Y-%m-%d %H:%M:%SZ").to_string()
}

/// One timeline entry for people: when, what, the message, who, and how often.
pub fn timeline_line(entry: &TimelineEntry) -> String {
    let mut line = format!(
        "{}  {:<20} {}",
        clock(entry.time.0),
        format!("{:?}", entry.type_),
        entry.message.trim()
    );
    // Most messages name their actor already ("Acknowledged by ana ..."); say it once.
    if let Some(actor) = entry
        .actor
        .as_deref()
        .filter(|a| !a.is_empty() && !entry.message.contains(*a))
    {
        let _ = write!(line, " (by {actor})");
    }
    if let Some(count) = entry.count.filter(|c| *c > 1) {
        let _ = write!(line, " ×{count}");
        if let Some(last) = &entry.last_time {
            let _ = write!(line, ", last at {}", clock(last.0));
        }
    }
    line
}

/// The timeline, oldest first, one entry per line.
pub fn timeline(entries: &[TimelineEntry]) -> String {
    entries
        .iter()
        .map(|e| format!("  {}\n", timeline_line(e)))
        .collect()
}

fn action_line(action: &ActionStatus) -> Vec<String> {
    let revisions = match (action.from_revision, action.to_revision) {
        (Some(from), Some(to)) => format!("{from} → {to}"),
        (None, Some(to)) => format!("→ {to}"),
        _ => NONE.to_owned(),
    };
    let detail = action
        .message
        .as_deref()
        .or(action.reason.as_deref())
        .map_or_else(|| NONE.to_owned(), |m| truncate(m, 80));
    vec![
        action.name.clone(),
        action.kind.to_string(),
        action.target(),
        format!("{:?}", action.phase),
        revisions,
        detail,
    ]
}

/// Remediation actions as a table.
pub fn actions_table(actions: &[ActionStatus]) -> String {
    let rows: Vec<Vec<String>> = actions.iter().map(action_line).collect();
    table(
        &["NAME", "KIND", "TARGET", "PHASE", "REVISIONS", "MESSAGE"],
        &rows,
    )
}

/// The runbook run: which runbook and why, then each step with its phase, who approved it, and
/// what a waiting step needs.
pub fn runbook(run: &RunbookRun, incident_name: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Runbook: {} (generation {}): {}",
        run.name, run.generation, run.reason
    );
    for (index, step) in run.steps.iter().enumerate() {
        let progress = run.progress.iter().find(|p| p.name == step.name);
        let kind = progress
            .map(|p| p.kind.clone())
            .or_else(|| step.kind().map(|k| format!("{k:?}").to_lowercase()))
            .unwrap_or_default();
        let phase = progress.map_or(StepPhase::Pending, |p| p.phase);
        let _ = write!(
            out,
            "  {}. {:<20} {:<11} {:?}",
            index + 1,
            step.name,
            kind,
            phase
        );
        if let Some(actor) = progress.and_then(|p| p.actor.as_deref()) {
            let _ = write!(out, " (by {actor})");
        }
        if let Some(reason) = progress.and_then(|p| p.reason.as_deref()) {
            let _ = write!(out, ": {}", truncate(reason, 100));
        }
        out.push('\n');
        if phase == StepPhase::WaitingApproval {
            if let Some(checkpoint) = &step.checkpoint {
                let _ = writeln!(out, "       {}", truncate(&checkpoint.prompt, 100));
            }
            let _ = writeln!(
                out,
                "       waiting for a person: kubectl incident approve {incident_name} {}",
                step.name
            );
        }
    }
    out
}

/// What an owner means for a rollback, as `kubectl rollout undo` says it for `kubectl apply`.
fn managed_note(owner: &GitOpsOwner) -> &'static str {
    if owner.reverts() {
        " (puts the old version back: a rollback pauses it first, unless told otherwise)"
    } else {
        " (a later apply of the old file undoes a rollback)"
    }
}

/// What the detector saw, in a few lines.
pub fn evidence(evidence: &Evidence) -> String {
    let mut out = String::new();
    if let Some(recent) = &evidence.recent_deploy {
        let _ = writeln!(out, "  Recent deploy: {recent}");
    }
    if let Some(owner) = &evidence.managed_by {
        let _ = writeln!(out, "  Managed by: {owner}{}", managed_note(owner));
    }
    for container in &evidence.containers {
        let _ = write!(
            out,
            "  Container {}/{}: {}, {} restarts",
            container.pod, container.container, container.state, container.restarts
        );
        if let Some(reason) = &container.last_termination_reason {
            let _ = write!(out, ", last terminated: {reason}");
        }
        if let Some(code) = container.last_exit_code {
            let _ = write!(out, " (exit {code})");
        }
        out.push('\n');
    }
    if let Some(newest) = evidence.rollout_history.first() {
        let _ = write!(
            out,
            "  Rollout history: {} revisions, newest {} ({})",
            evidence.rollout_history.len(),
            newest.revision,
            if newest.images.is_empty() {
                NONE.to_owned()
            } else {
                newest.images.join(", ")
            }
        );
        if let Some(cause) = &newest.change_cause {
            let _ = write!(out, ": {}", truncate(cause, 80));
        }
        out.push('\n');
    }
    if !evidence.events.is_empty() {
        let _ = writeln!(out, "  Warning events: {}", evidence.events.len());
        for event in evidence.events.iter().take(3) {
            let _ = writeln!(
                out,
                "    {} on {} ×{}: {}",
                event.reason,
                event.object,
                event.count,
                truncate(event.note.as_deref().unwrap_or(NONE), 80)
            );
        }
    }
    if let Some(logs) = &evidence.logs {
        let lines = logs.text.lines().count();
        let _ = writeln!(
            out,
            "  Logs: {} lines from {}/{}{}",
            lines,
            logs.pod,
            logs.container,
            if logs.previous {
                " (previous instance)"
            } else {
                ""
            }
        );
        for line in logs
            .text
            .lines()
            .rev()
            .take(3)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            let _ = writeln!(out, "    | {}", truncate(line, 100));
        }
    }
    if out.is_empty() {
        out.push_str("  (none)\n");
    }
    out
}

/// The incident page: facts, the escalation, then the timeline, actions, runbook steps, evidence
/// and notes.
pub fn show(incident: &Incident, now: Timestamp) -> String {
    let spec = &incident.spec;
    let status = incident.status.as_ref();
    let name = incident.metadata.name.clone().unwrap_or_default();
    let mut out = String::new();
    let field = |out: &mut String, label: &str, value: &str| {
        let _ = writeln!(out, "{:<14}{}", format!("{label}:"), value);
    };
    field(&mut out, "Name", &name);
    field(
        &mut out,
        "Namespace",
        incident.metadata.namespace.as_deref().unwrap_or(NONE),
    );
    field(&mut out, "Title", spec.title.trim());
    field(&mut out, "Severity", spec.severity.as_str());
    field(
        &mut out,
        "Phase",
        &phase(incident).map_or_else(|| "Pending".to_owned(), |p| p.to_string()),
    );
    // The operator's answer (the acknowledger when nobody is named); the spec's before it ran.
    let commander = status
        .and_then(|s| s.commander.as_deref())
        .or(spec.commander.as_deref());
    field(&mut out, "Commander", commander.unwrap_or(NONE));
    // How it came to us, when someone reported it.
    for (label, value) in [
        ("Source", &spec.source),
        ("Reporter", &spec.reporter),
        ("Ticket", &spec.ticket),
    ] {
        if let Some(value) = value.as_deref().filter(|v| !v.trim().is_empty()) {
            // Whole (the ticket is a link to follow); one line.
            field(&mut out, label, &truncate(value, 2048));
        }
    }
    field(&mut out, "Age", &incident_age(incident, now));
    if let Some(sla) = status.and_then(|s| s.sla.as_ref()) {
        let mut respond = format!("{} ({}", clock(sla.respond_by.0), time_left(incident, now));
        if let Some(zone) = &sla.business_hours {
            let _ = write!(respond, ", business hours of {zone}");
        }
        respond.push(')');
        if sla.breached {
            respond.push_str(", response time missed");
        }
        field(&mut out, "Respond by", &respond);
        if let Some(due) = &sla.postmortem_due_by {
            field(&mut out, "Post-mortem", &format!("due {}", clock(due.0)));
        }
    }
    if let Some(description) = spec.description.as_deref().filter(|d| !d.trim().is_empty()) {
        field(&mut out, "Description", &truncate(description, 200));
    }
    if !spec.affected.is_empty() {
        let affected: Vec<String> = spec.affected.iter().map(ToString::to_string).collect();
        field(&mut out, "Affected", &affected.join(", "));
    }
    if let Some(ack) = &spec.acknowledgment {
        let mut text = format!("by {}", ack.by);
        if let Some(note) = ack.note.as_deref().filter(|n| !n.trim().is_empty()) {
            let _ = write!(text, ": {}", truncate(note, 200));
        }
        field(&mut out, "Acknowledged", &text);
    }
    if let Some(resolution) = &spec.resolution {
        field(
            &mut out,
            "Resolved",
            &format!(
                "by {}: {}",
                resolution.by,
                truncate(&resolution.summary, 200)
            ),
        );
        if let Some(cause) = &resolution.root_cause {
            field(&mut out, "Root cause", &truncate(cause, 200));
        }
    }

    if let Some(climb) = status.and_then(|s| s.escalation.as_ref()) {
        out.push('\n');
        out.push_str(&super::escalation::escalation(climb, now));
    }

    out.push_str("\nTimeline:\n");
    match status.map(|s| s.timeline.as_slice()) {
        Some(entries) if !entries.is_empty() => out.push_str(&timeline(entries)),
        _ => out.push_str("  (nothing recorded yet)\n"),
    }

    if let Some(actions) = status.map(|s| &s.actions).filter(|a| !a.is_empty()) {
        out.push_str("\nActions:\n");
        for line in actions_table(actions).lines() {
            let _ = writeln!(out, "  {line}");
        }
    }

    if let Some(run) = status.and_then(|s| s.runbook.as_ref()) {
        out.push('\n');
        out.push_str(&runbook(run, &name));
    } else if let Some(unusable) = status
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "RunbookUsable"))
        .filter(|c| c.status == "False")
    {
        // The named runbook cannot be followed: say so where the steps would be.
        let _ = writeln!(out, "\nRunbook:      not followed: {}", unusable.message);
    }

    if let Some(found) = status.and_then(|s| s.evidence.as_ref()) {
        out.push_str("\nEvidence:\n");
        out.push_str(&evidence(found));
    }

    let pauses = status.map(|s| s.gitops.as_slice()).unwrap_or_default();
    if !pauses.is_empty() {
        out.push_str("\nGitOps:\n");
        for pause in pauses {
            let _ = write!(
                out,
                "  {:?} {} (for {})",
                pause.state, pause.owner, pause.workload
            );
            if !pause.also_manages.is_empty() {
                let _ = write!(out, "; also applies {}", pause.also_manages.join(", "));
            }
            if let Some(message) = &pause.message {
                let _ = write!(out, ": {message}");
            }
            if pause.resume_on_new_revision && pause.state == crate::api::PauseState::Paused {
                let source = pause.source.as_deref().unwrap_or("its source");
                let _ = write!(
                    out,
                    "; resumes by itself once {source} moves on from {}",
                    pause.source_revision.as_deref().unwrap_or("?")
                );
            }
            out.push('\n');
        }
        if pauses
            .iter()
            .any(|p| p.state == crate::api::PauseState::Paused && !p.already_paused)
        {
            let _ = writeln!(
                out,
                "  Revert the change in Git, then: kubectl incident resume-gitops {name}"
            );
        }
    }

    if !spec.notes.is_empty() {
        out.push_str("\nNotes:\n");
        for note in &spec.notes {
            let _ = writeln!(out, "  {}: {}", note.author, truncate(&note.text, 200));
        }
    }
    out
}
