//! Post-mortem draft, the timeline section (core layer): the events the operator recorded as a
//! Markdown table in recorded order, repeats folded into one row, and a prompt for the rest.

use std::fmt::{self, Write};

use super::format::{UNKNOWN, entry_label, escape_cell, timestamp};
use crate::api::{IncidentStatus, TimelineEntry};

pub(super) fn write_timeline(out: &mut String, status: Option<&IncidentStatus>) -> fmt::Result {
    writeln!(out, "## Timeline")?;
    writeln!(out)?;
    let timeline = status.map(|s| s.timeline.as_slice()).unwrap_or_default();
    if timeline.is_empty() {
        writeln!(
            out,
            "_The operator has recorded no events for this incident yet._"
        )?;
    } else {
        writeln!(out, "| Time (UTC) | Event | Actor | Message |")?;
        writeln!(out, "|---|---|---|---|")?;
        for entry in timeline {
            write_timeline_row(out, entry)?;
        }
    }
    writeln!(out)?;
    writeln!(
        out,
        "_To fill in: events the operator could not see, such as when users first noticed, when \
         remediation started, when the fix was deployed and when service recovered._"
    )?;
    writeln!(out)?;
    Ok(())
}

fn write_timeline_row(out: &mut String, entry: &TimelineEntry) -> fmt::Result {
    let count = entry.count.unwrap_or(1);
    let mut time = timestamp(&entry.time);
    let mut event = entry_label(entry.type_);
    if count > 1 {
        event.push_str(&format!(" ×{count}"));
        if let Some(last) = &entry.last_time {
            time.push_str(&format!(" (last {})", timestamp(last)));
        }
    }
    let actor = entry
        .actor
        .as_deref()
        .filter(|a| !a.trim().is_empty())
        .unwrap_or(UNKNOWN);
    writeln!(
        out,
        "| {} | {} | {} | {} |",
        escape_cell(&time),
        escape_cell(&event),
        escape_cell(actor),
        escape_cell(&entry.message)
    )
}
