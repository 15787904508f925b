//! Escalation (core layer): who is on call ([`oncall`]), which policy an incident follows and what
//! of it applies ([`policy`]), and the climb itself ([`climb`]): page level after level until a
//! person owns the incident, each step recorded in the status before its messages go out.

pub mod climb;
pub mod oncall;
mod page;
pub mod policy;
pub mod readiness;

pub use climb::{Inputs, Outcome, advance};
