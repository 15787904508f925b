//! Pure rendering for the plugin (plugin layer): the pager queue, time left to respond, and the incident page
//! `show` prints. Every function takes `now`, so output is a function of its inputs.

use std::fmt::Write;

use jiff::{SignedDuration, Timestamp};

use crate::{
    api::{ActionStatus, Evidence, Incident, Phase, RunbookRun, StepPhase, TimelineEntry},
    core::text::age,
};

/// Shown where a value is not known (yet).
const NONE: &str = "-";

/// Where an incident stands in the response, most urgent group first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Urgency {
    /// Nobody has claimed it yet.
    Unacknowledged,
    /// Someone is on it.
    InProgress,
    Resolved,
    Closed,
}

fn phase(incident: &Incident) -> Option<Phase> {
    incident.status.as_ref().and_then(|s| s.phase)
}

fn urgency(incident: &Incident) -> Urgency {
    match phase(incident) {
        Some(Phase::Closed) => Urgency::Closed,
        Some(Phase::Resolved) => Urgency::Resolved,
        Some(Phase::Detected) => Urgency::Unacknowledged,
        Some(Phase::Acknowledged | Phase::Mitigating | Phase::Monitoring) => Urgency::InProgress,
        // Not reconciled yet: judge by the spec.
        None if incident.spec.resolution.is_some() => Urgency::Resolved,
        None if incident.spec.acknowledgment.is_some() => Urgency::InProgress,
        None => Urgency::Unacknowledged,
    }
}

fn respond_by(incident: &Incident) -> Option<Timestamp> {
    incident
        .status
        .as_ref()
        .and_then(|s| s.sla.as_ref())
        .map(|sla| sla.respond_by.0)
}

fn created(incident: &Incident) -> Option<Timestamp> {
    incident.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

/// Whether an incident belongs in the pager queue: everything until it is closed (a resolved one
/// still owes its post-mortem).
pub fn in_queue(incident: &Incident) -> bool {
    urgency(incident) != Urgency::Closed
}

/// Sorts incidents most urgent first: unacknowledged before in progress before resolved before
/// closed; then by severity (P0 first); then the nearest respond-by deadline; then the oldest.
pub fn sort_by_urgency(incidents: &mut [Incident]) {
    incidents.sort_by(|a, b| {
        let key = |i: &Incident| {
            (
                urgency(i),
                i.spec.severity,
                respond_by(i).unwrap_or(Timestamp::MAX),
                created(i).unwrap_or(Timestamp::MAX),
                i.metadata.name.clone().unwrap_or_default(),
            )
        };
        key(a).cmp(&key(b))
    });
}

/// Age of the incident at `now`.
pub fn incident_age(incident: &Incident, now: Timestamp) -> String {
    match created(incident) {
        Some(created) => age(now.duration_since(created).max(SignedDuration::ZERO)),
        None => NONE.to_owned(),
    }
}

/// Time left to acknowledge: `12m` while the clock runs, `overdue 3m` once missed, `acked` once
/// someone claimed it, `-` when resolved or the controller has not set the deadline yet.
pub fn time_left(incident: &Incident, now: Timestamp) -> String {
    match urgency(incident) {
        Urgency::InProgress => return "acked".to_owned(),
        Urgency::Resolved | Urgency::Closed => return NONE.to_owned(),
        Urgency::Unacknowledged => {}
    }
    match respond_by(incident) {
        Some(deadline) => {
            let left = deadline.duration_since(now);
            if left.is_negative() {
                format!("overdue {}", age(left))
            } else {
                age(left)
            }
        }
        None => NONE.to_owned(),
    }
}

/// Cuts `text` to one line of at most `max` characters, with `…` when cut.
fn truncate(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or_default().trim();
    let cut = line.chars().count() > max || text.trim().lines().nth(1).is_some();
    if line.chars().count() > max {
        let kept: String = line.chars().take(max.saturating_sub(1)).collect();
        format!("{kept}…")
    } else if cut {
        format!("{line} …")
    } else {
        line.to_owned()
    }
}

/// Lays out rows as kubectl does: upper-case headers, columns padded to the widest cell, three
/// spaces apart, no trailing spaces.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let header: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let pad = widths.get(i).copied().unwrap_or(0);
                let _ = write!(line, "{cell:<pad$}   ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The pager queue: most urgent first, with severity, phase, title, age and time left to respond;
/// with `namespaces` (kubectl's `-A`) a NAMESPACE column comes first, as kubectl prints it.
pub fn list_table(incidents: &[Incident], now: Timestamp, namespaces: bool) -> String {
    let mut sorted = incidents.to_vec();
    sort_by_urgency(&mut sorted);
    let rows: Vec<Vec<String>> = sorted
        .iter()
        .map(|i| {
            let namespace = namespaces.then(|| i.metadata.namespace.clone().unwrap_or_default());
            namespace
                .into_iter()
                .chain([
                    i.metadata.name.clone().unwrap_or_default(),
                    i.spec.severity.to_string(),
                    phase(i).map_or_else(|| "Pending".to_owned(), |p| p.to_string()),
                    truncate(&i.spec.title, 60),
                    incident_age(i, now),
                    time_left(i, now),
                ])
                .collect()
        })
        .collect();
    let headers = ["NAME", "SEVERITY", "PHASE", "TITLE", "AGE", "RESPOND IN"];
    if namespaces {
        let mut with_namespace = vec!["NAMESPACE"];
        with_namespace.extend(headers);
        table(&with_namespace, &rows)
    } else {
        table(&headers, &rows)
    }
}

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
        action.deployment.clone(),
        format!("{:?}", action.phase),
        revisions,
        detail,
    ]
}

/// Remediation actions as a table.
pub fn actions_table(actions: &[ActionStatus]) -> String {
    let rows: Vec<Vec<String>> = actions.iter().map(action_line).collect();
    table(
        &[
            "NAME",
            "KIND",
            "DEPLOYMENT",
            "PHASE",
            "REVISIONS",
            "MESSAGE",
        ],
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

/// What the detector saw, in a few lines.
pub fn evidence(evidence: &Evidence) -> String {
    let mut out = String::new();
    if let Some(recent) = &evidence.recent_deploy {
        let _ = writeln!(out, "  Recent deploy: {recent}");
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

/// The incident page: facts, then the timeline, actions, runbook steps, evidence and notes.
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
    field(
        &mut out,
        "Commander",
        spec.commander.as_deref().unwrap_or(NONE),
    );
    field(&mut out, "Age", &incident_age(incident, now));
    if let Some(sla) = status.and_then(|s| s.sla.as_ref()) {
        let mut respond = format!("{} ({})", clock(sla.respond_by.0), time_left(incident, now));
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

    if !spec.notes.is_empty() {
        out.push_str("\nNotes:\n");
        for note in &spec.notes {
            let _ = writeln!(out, "  {}: {}", note.author, truncate(&note.text, 200));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::EntryType;
    use serde_json::json;

    const NOW: &str = "2026-11-22T12:00:00Z";

    fn now() -> Timestamp {
        NOW.parse().unwrap()
    }

    fn incident(name: &str, severity: &str, phase: Option<&str>, respond_by: &str) -> Incident {
        let mut value = json!({
            "apiVersion": "incident.dev/v1alpha1", "kind": "Incident",
            "metadata": { "name": name, "namespace": "shop",
                          "creationTimestamp": "2026-11-22T11:50:00Z" },
            "spec": { "title": format!("{name} is broken"), "severity": severity },
        });
        if let Some(phase) = phase {
            value["status"] = json!({
                "phase": phase,
                "sla": { "respondBy": respond_by, "breached": false },
            });
        }
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn durations_read_like_kubectl_ages() {
        let d = SignedDuration::from_secs;
        assert_eq!(age(d(45)), "45s");
        assert_eq!(age(d(119)), "119s");
        assert_eq!(age(d(190)), "3m10s");
        assert_eq!(age(d(300)), "5m");
        assert_eq!(age(d(42 * 60)), "42m");
        assert_eq!(age(d(3600 + 5 * 60)), "65m");
        assert_eq!(age(d(5 * 3600 + 12 * 60)), "5h12m");
        assert_eq!(age(d(20 * 3600)), "20h");
        assert_eq!(age(d(3 * 86_400 + 4 * 3600)), "3d4h");
        assert_eq!(age(d(12 * 86_400)), "12d");
        assert_eq!(age(d(-300)), "5m", "the sign is the caller's");
    }

    #[test]
    fn time_left_counts_down_then_reports_overdue() {
        let open = incident("a", "P1", Some("Detected"), "2026-11-22T12:12:00Z");
        assert_eq!(time_left(&open, now()), "12m");
        let late = incident("b", "P0", Some("Detected"), "2026-11-22T11:57:00Z");
        assert_eq!(time_left(&late, now()), "overdue 3m");
        let acked = incident("c", "P0", Some("Acknowledged"), "2026-11-22T11:57:00Z");
        assert_eq!(time_left(&acked, now()), "acked");
        let resolved = incident("d", "P0", Some("Resolved"), "2026-11-22T11:57:00Z");
        assert_eq!(time_left(&resolved, now()), "-");
        let fresh = incident("e", "P2", None, "");
        assert_eq!(
            time_left(&fresh, now()),
            "-",
            "no deadline before the controller"
        );
    }

    #[test]
    fn list_puts_the_most_urgent_first() {
        let incidents = vec![
            incident("closed-p0", "P0", Some("Closed"), "2026-11-22T11:00:00Z"),
            incident(
                "acked-p0",
                "P0",
                Some("Acknowledged"),
                "2026-11-22T12:10:00Z",
            ),
            incident("open-p2", "P2", Some("Detected"), "2026-11-22T15:50:00Z"),
            incident(
                "open-p0-later",
                "P0",
                Some("Detected"),
                "2026-11-22T12:05:00Z",
            ),
            incident(
                "open-p0-late",
                "P0",
                Some("Detected"),
                "2026-11-22T11:58:00Z",
            ),
            incident(
                "resolved-p1",
                "P1",
                Some("Resolved"),
                "2026-11-22T12:40:00Z",
            ),
        ];
        let table = list_table(&incidents, now(), false);
        let names: Vec<&str> = table
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        assert_eq!(
            names,
            [
                "open-p0-late",
                "open-p0-later",
                "open-p2",
                "acked-p0",
                "resolved-p1",
                "closed-p0"
            ]
        );
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[0],
            "NAME            SEVERITY   PHASE          TITLE                     AGE   RESPOND IN"
        );
        assert_eq!(
            lines[1],
            "open-p0-late    P0         Detected       open-p0-late is broken    10m   overdue 2m"
        );
        assert!(lines[3].ends_with("3h50m"), "{}", lines[3]);
        assert!(lines[4].ends_with("acked"), "{}", lines[4]);
        assert!(
            lines.iter().all(|l| l == &l.trim_end()),
            "no trailing spaces"
        );
    }

    #[test]
    fn show_says_why_a_named_runbook_is_not_followed() {
        let mut named = incident("slow", "P3", Some("Detected"), "2026-11-22T12:05:00Z");
        if let Some(status) = named.status.as_mut() {
            status.conditions = serde_json::from_value(json!([{
                "type": "RunbookUsable", "status": "False", "reason": "NotFound",
                "message": "runbook triage not found",
                "lastTransitionTime": "2026-11-22T12:00:00Z",
            }]))
            .unwrap();
        }
        assert!(
            show(&named, now()).contains("Runbook:      not followed: runbook triage not found"),
            "{}",
            show(&named, now())
        );
    }

    #[test]
    fn the_queue_keeps_everything_until_closed() {
        assert!(in_queue(&incident(
            "a",
            "P2",
            Some("Detected"),
            "2026-11-22T12:05:00Z"
        )));
        assert!(in_queue(&incident(
            "b",
            "P2",
            Some("Resolved"),
            "2026-11-22T12:05:00Z"
        )));
        assert!(in_queue(&incident("c", "P2", None, "2026-11-22T12:05:00Z")));
        assert!(!in_queue(&incident(
            "d",
            "P2",
            Some("Closed"),
            "2026-11-22T12:05:00Z"
        )));
    }

    #[test]
    fn all_namespaces_puts_the_namespace_first_and_keeps_the_urgency_order() {
        let mut payments = incident("api-down", "P0", Some("Detected"), "2026-11-22T12:05:00Z");
        payments.metadata.namespace = Some("payments".into());
        let incidents = vec![
            incident("slow", "P3", Some("Detected"), "2026-11-23T11:50:00Z"),
            payments,
        ];
        let table = list_table(&incidents, now(), true);
        let lines: Vec<&str> = table.lines().collect();
        assert!(
            lines[0].starts_with("NAMESPACE   NAME       SEVERITY"),
            "{table}"
        );
        assert!(lines[1].starts_with("payments    api-down   P0"), "{table}");
        assert!(lines[2].starts_with("shop        slow       P3"), "{table}");
        assert!(!list_table(&incidents, now(), false).contains("payments"));
    }

    #[test]
    fn long_titles_are_cut_to_one_line() {
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("a much longer title", 10), "a much lo…");
        assert_eq!(truncate("first\nsecond", 10), "first …");
    }

    #[test]
    fn timeline_entries_say_when_what_and_who() {
        let entries: Vec<TimelineEntry> = serde_json::from_value(json!([
            { "time": "2026-11-22T11:50:00Z", "type": "Detected", "message": "Incident opened" },
            { "time": "2026-11-22T11:52:30Z", "type": "Acknowledged",
              "message": "Acknowledged: looking", "actor": "ana" },
            { "time": "2026-11-22T11:52:40Z", "type": "Note",
              "message": "Resolved by ana: fixed", "actor": "ana" },
            { "time": "2026-11-22T11:53:00Z", "type": "UpdateDue", "message": "Update overdue",
              "count": 3, "lastTime": "2026-11-22T11:59:00Z" },
        ]))
        .unwrap();
        let text = timeline(&entries);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "  2026-11-22 11:50:00Z  Detected             Incident opened",
                "  2026-11-22 11:52:30Z  Acknowledged         Acknowledged: looking (by ana)",
                "  2026-11-22 11:52:40Z  Note                 Resolved by ana: fixed",
                "  2026-11-22 11:53:00Z  UpdateDue            Update overdue ×3, last at 2026-11-22 11:59:00Z",
            ]
        );
        assert_eq!(entries[1].type_, EntryType::Acknowledged);
    }

    #[test]
    fn show_renders_timeline_actions_runbook_and_evidence() {
        let value = json!({
            "apiVersion": "incident.dev/v1alpha1", "kind": "Incident",
            "metadata": { "name": "api-down", "namespace": "shop",
                          "creationTimestamp": "2026-11-22T11:50:00Z" },
            "spec": {
                "title": "API down", "severity": "P1", "commander": "ana",
                "acknowledgment": { "by": "ana", "note": "on it" },
                "notes": [{ "author": "bob", "text": "rolled back" }],
                "affected": [{ "kind": "Deployment", "name": "api" }],
            },
            "status": {
                "phase": "Mitigating",
                "sla": { "respondBy": "2026-11-22T12:50:00Z", "breached": false },
                "timeline": [
                    { "time": "2026-11-22T11:50:00Z", "type": "Detected", "message": "Incident opened" },
                ],
                "actions": [{ "name": "undo", "kind": "Rollback", "deployment": "api",
                              "phase": "Verifying", "fromRevision": 3, "toRevision": 2 }],
                "runbook": {
                    "name": "api", "generation": 2, "reason": "matched service=api",
                    "steps": [
                        { "name": "root-cause", "checkpoint": { "prompt": "Root cause identified?" } },
                        { "name": "tell", "escalate": { "message": "page" } },
                    ],
                    "progress": [
                        { "name": "root-cause", "kind": "checkpoint", "phase": "WaitingApproval" },
                        { "name": "tell", "kind": "escalate", "phase": "Pending" },
                    ],
                },
                "evidence": {
                    "recentDeploy": "rolled out 2 minutes before detection",
                    "containers": [{ "pod": "api-1", "container": "app", "state": "CrashLoopBackOff",
                                     "restarts": 4, "lastExitCode": 1 }],
                },
            },
        });
        let incident: Incident = serde_json::from_value(value).unwrap();
        let text = show(&incident, now());
        for expected in [
            "Name:         api-down",
            "Phase:        Mitigating",
            "Respond by:   2026-11-22 12:50:00Z (acked)",
            "Acknowledged: by ana: on it",
            "Affected:     Deployment api",
            "  2026-11-22 11:50:00Z  Detected             Incident opened",
            "undo   Rollback   api          Verifying   3 → 2",
            "Runbook: api (generation 2): matched service=api",
            "1. root-cause           checkpoint  WaitingApproval",
            "Root cause identified?",
            "kubectl incident approve api-down root-cause",
            "2. tell                 escalate    Pending",
            "Recent deploy: rolled out 2 minutes before detection",
            "Container api-1/app: CrashLoopBackOff, 4 restarts (exit 1)",
            "  bob: rolled back",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
        }
    }

    #[test]
    fn show_works_before_the_controller_ran() {
        let incident = incident("new", "P3", None, "");
        let text = show(&incident, now());
        assert!(text.contains("Phase:        Pending"), "{text}");
        assert!(text.contains("(nothing recorded yet)"), "{text}");
    }
}
