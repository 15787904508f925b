//! Post-mortem draft, the action items section (core layer): the follow-ups recorded in the spec
//! as a checklist with owners, or a prompt for them when there are none yet.

use std::fmt::{self, Write};

use super::format::one_line;
use crate::{
    api::{Incident, PauseState},
    core::text::age,
};

pub(super) fn write_action_items(out: &mut String, incident: &Incident) -> fmt::Result {
    writeln!(out, "## Action items")?;
    writeln!(out)?;
    let items = incident
        .spec
        .postmortem
        .as_ref()
        .map(|p| p.action_items.as_slice())
        .unwrap_or_default();
    if items.is_empty() {
        writeln!(
            out,
            "_None recorded yet. Consider follow-ups for the fix itself, the process, the \
             documentation and runbooks, and monitoring and alerting; give each an owner._"
        )?;
    } else {
        let done = items.iter().filter(|i| i.done).count();
        writeln!(out, "{done} of {} done.", items.len())?;
        writeln!(out)?;
        for item in items {
            let owner = item
                .owner
                .as_deref()
                .map(str::trim)
                .filter(|o| !o.is_empty())
                .map_or_else(
                    || "_owner to be assigned_".to_string(),
                    |o| format!("owner: {}", one_line(o)),
                );
            writeln!(
                out,
                "- [{}] {} — {owner}",
                if item.done { "x" } else { " " },
                one_line(&item.title)
            )?;
        }
    }
    write_gitops(out, incident)?;
    writeln!(out)?;
    Ok(())
}

/// What was paused for the rollbacks, for how long, and the follow-up each pause asks for.
fn write_gitops(out: &mut String, incident: &Incident) -> fmt::Result {
    let pauses = incident
        .status
        .as_ref()
        .map(|s| s.gitops.as_slice())
        .unwrap_or_default();
    for pause in pauses.iter().filter(|p| !p.already_paused) {
        let held = match (&pause.paused_at, &pause.resumed_at) {
            (Some(from), Some(to)) => format!("paused for {}", age(to.0.duration_since(from.0))),
            (Some(_), None) => "still paused".to_owned(),
            _ => format!("{:?}", pause.state).to_lowercase(),
        };
        let done = pause.state == PauseState::Resumed;
        writeln!(
            out,
            "- [{}] Revert the change in Git, then resume {} ({held}; it was paused so the \
             rollback of {} would stick)",
            if done { "x" } else { " " },
            pause.owner,
            pause.workload
        )?;
    }
    Ok(())
}
