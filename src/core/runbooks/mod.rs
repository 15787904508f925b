//! Runbooks (core layer): `validate` tells whether a Runbook is usable, `select` picks the runbook
//! an incident follows, `engine` advances its steps, `status` computes a Runbook's own status. The
//! incident controller follows runbooks; the runbook controller keeps their status.

pub mod engine;
pub mod select;
pub mod status;
pub mod validate;
