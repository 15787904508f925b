//! Plugin rendering, the incident's escalation (plugin layer): the policy it follows, where the
//! climb stands, who was paged and when the next level is due — the "Escalation" section of
//! `show`.

use std::fmt::Write;

use jiff::Timestamp;

use super::queue::{NONE, truncate};
use crate::{
    api::{Escalation, EscalationState, Page},
    core::text::age,
};

fn clock(time: Timestamp) -> String {
    time.strftime("%Y-%m-%d %H:%M:%SZ").to_string()
}

/// Whom a page reached and how: `paged alex (primary on call) via shop/pager`, or
/// `posted to shop/leads (channel)` when a channel was paged without a person.
pub fn page_text(page: &Page) -> String {
    let via = page.channels.join(", ");
    match &page.person {
        Some(person) if via.is_empty() => format!("paged {person} ({})", page.role),
        Some(person) => format!("paged {person} ({}) via {via}", page.role),
        None if via.is_empty() => format!("paged nobody ({})", page.role),
        None => format!("posted to {via} ({})", page.role),
    }
}

/// What the state means for people.
fn state_text(state: EscalationState) -> &'static str {
    match state {
        EscalationState::None => "no escalation policy applies",
        EscalationState::Waiting => "waiting for business hours to page",
        EscalationState::Climbing => "paging level after level until someone acknowledges",
        EscalationState::Acknowledged => "stopped: someone acknowledged or took command",
        EscalationState::Resolved => "stopped: resolved",
        EscalationState::Exhausted => "every level of every round paged, nobody answered",
        EscalationState::PolicyNotFound => "the escalation policy does not exist",
    }
}

/// The "Escalation" section of `show`: policy, state, the pages so far (oldest first, the episode
/// named when they span reopenings), the next level and when it is due.
pub fn escalation(escalation: &Escalation, now: Timestamp) -> String {
    let mut out = String::from("Escalation:\n");
    let field = |out: &mut String, label: &str, value: &str| {
        let _ = writeln!(out, "  {:<12}{}", format!("{label}:"), value);
    };
    field(
        &mut out,
        "Policy",
        escalation.policy.as_deref().unwrap_or(NONE),
    );
    field(
        &mut out,
        "State",
        &format!("{:?} ({})", escalation.state, state_text(escalation.state)),
    );
    if escalation.episode > 0 {
        let mut climb = format!("episode {}", escalation.episode);
        if let Some(level) = &escalation.level {
            let _ = write!(climb, ", level {level} of round {}", escalation.round);
        }
        if let Some(started) = &escalation.started_at {
            let _ = write!(climb, ", started {}", clock(started.0));
        }
        field(&mut out, "Climb", &climb);
    }
    if let Some(next_at) = &escalation.next_at {
        let due = next_at.0.duration_since(now);
        let when = if due.is_negative() {
            format!("due {} (overdue {})", clock(next_at.0), age(due))
        } else {
            format!("due {} (in {})", clock(next_at.0), age(due))
        };
        let level = escalation.next_level.as_deref().unwrap_or("next level");
        field(&mut out, "Next", &format!("{level} {when}"));
    }
    if let Some(message) = escalation
        .message
        .as_deref()
        .filter(|m| !m.trim().is_empty())
    {
        field(&mut out, "Message", &truncate(message, 200));
    }
    if escalation.pages.is_empty() {
        field(&mut out, "Pages", "none yet");
        return out;
    }
    out.push_str("  Pages:\n");
    let episodes = escalation
        .pages
        .iter()
        .any(|p| p.episode != escalation.pages[0].episode);
    let width = escalation
        .pages
        .iter()
        .map(|p| p.level.chars().count())
        .max()
        .unwrap_or(0);
    for page in &escalation.pages {
        let mut line = format!("    {}  ", clock(page.time.0));
        // Only a reopened incident has pages from more than one climb.
        if episodes {
            let _ = write!(line, "episode {} ", page.episode);
        }
        let _ = writeln!(
            line,
            "round {}  {:<width$}  {}",
            page.round,
            page.level,
            page_text(page)
        );
        out.push_str(&line);
    }
    out
}
