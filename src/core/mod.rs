//! The pure core (core layer): every decision of the operator as a function of (object snapshot,
//! related objects, now, settings) returning plain data. No I/O, no clock, no async: the shell
//! (`cluster`, `controllers`, `http`, `plugin`) fetches, calls and applies. Domains do not import
//! each other; what they share lives in [`text`], [`timeline`] and [`calendar`] (business time).

pub mod admission;
pub mod calendar;
pub mod detection;
pub mod escalation;
pub mod leader;
pub mod lifecycle;
pub mod notify;
pub mod postmortem;
pub mod remediation;
pub mod runbooks;
pub mod shard;
pub mod status_page;
pub mod text;
pub mod timeline;
