//! Remediation (core layer): roll back, restart or scale a Deployment, StatefulSet or DaemonSet on
//! an incident's request, or abort an Argo Rollouts Rollout, exactly once, and follow the rollout.
//! `plan` computes the change (`sets` for the ControllerRevision kinds, `argo` for Rollouts),
//! `rollout` reads a rollout's progress, `step` advances one action's state machine; the incident
//! controller does the I/O in the order that makes it crash-safe.

pub mod argo;
pub mod gitops;
pub mod plan;
pub mod rollout;
pub mod sets;
pub mod step;

#[cfg(test)]
mod tests;
