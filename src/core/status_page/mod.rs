//! The public status page and the responders' board (core layer): pure functions from a
//! StatusPage, the Incidents and `now` to what is served. Only [`public::project`] reads an
//! Incident for the public: it copies the publication and the recorded public updates into a
//! [`public::PublicIncident`], and every public rendering (Statuspage v2 JSON, HTML, Atom) takes
//! those, so internal titles, evidence, notes and timelines cannot reach them. The board
//! ([`board`]) is the internal view and reads whole Incidents.

pub mod atom;
pub mod board;
pub mod html;
pub mod public;
pub mod record;
pub mod snapshot;
pub mod state;
pub mod statuspage;

/// Days of history the page shows (uptime bars, past incidents).
pub const HISTORY_DAYS: i64 = 90;
/// Most published incidents the page considers (newest first); older ones drop out of history.
pub const MAX_HISTORY: usize = 1000;
/// Most incidents `incidents.json` lists (Statuspage lists the 50 most recent).
pub const MAX_LISTED: usize = 50;

#[cfg(test)]
pub(crate) mod fixtures;
