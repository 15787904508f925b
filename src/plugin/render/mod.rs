//! Pure rendering for the plugin (plugin layer): the pager queue, time left to respond, and the
//! incident page `show` prints. Every function takes `now`, so output is a function of its inputs.
//!
//! The `queue` file orders and tabulates incidents (and owns the shared table layout and
//! truncation); the `incident` file renders one incident's page, the `escalation` file its
//! escalation section; the `oncall` file who is on call.

mod escalation;
mod incident;
mod oncall;
mod queue;

#[cfg(test)]
mod tests;

pub use escalation::{escalation, page_text};
pub use incident::{actions_table, evidence, runbook, show, timeline, timeline_line};
pub use oncall::{oncall, parse_at, schedule};
pub use queue::{
    Calendars, in_queue, incident_age, list_table, sort_by_urgency, table, time_left, time_left_in,
};
