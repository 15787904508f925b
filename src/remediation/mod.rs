//! Remediation: roll back, restart or scale a Deployment on an incident's request, exactly once,
//! and verify the rollout. Planning (`plan`), verification (`verify`) and each action's state machine
//! (`step`) are pure; `executor` does the I/O in the order that makes it crash-safe.

pub mod executor;
pub mod plan;
pub mod step;
pub mod verify;

#[cfg(test)]
mod tests;
