//! incident-operator: incident response as Kubernetes resources and control loops.
//!
//! The crate is a pure core (decisions as functions of snapshot, time and configuration) inside a thin
//! shell (watches, API writes, HTTP). See `docs/architecture.md`.

pub mod api;
pub mod config;
pub mod detection;
pub mod error;
pub mod events;
pub mod leader;
pub mod lifecycle;
pub mod metrics;
pub mod operator;
pub mod plugin;
pub mod postmortem;
pub mod remediation;
pub mod runbook;
pub mod server;
pub mod telemetry;

pub use error::{Error, Result};
