//! Post-mortem draft, the action items section (core layer): the follow-ups recorded in the spec
//! as a checklist with owners, or a prompt for them when there are none yet.

use std::fmt::{self, Write};

use super::format::one_line;
use crate::api::Incident;

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
    writeln!(out)?;
    Ok(())
}
