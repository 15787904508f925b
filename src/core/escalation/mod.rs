//! Escalation (core layer): who is paged, when, through which schedule layer.
pub mod oncall;
