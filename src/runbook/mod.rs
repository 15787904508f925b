//! Runbooks: `validate` tells whether a Runbook is usable (pure), `select` picks the runbook an
//! incident follows (pure), `engine` advances its steps (pure), `controller` keeps each Runbook's
//! kstatus-compatible status (shell). The lifecycle controller runs the steps.

pub mod controller;
pub mod engine;
pub mod follow;
pub mod select;
pub mod validate;
