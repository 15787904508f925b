//! incident-operator (wiring: the library root): incident response as Kubernetes resources and
//! control loops.
//!
//! The folder tree is the architecture (see `docs/architecture.md`): [`api`] is the contract,
//! [`core`] the pure decisions, [`cluster`] the Kubernetes I/O, [`controllers`] the watch loops,
//! [`http`] the requests in, [`plugin`] the kubectl plugin; [`operator`] wires them together. A
//! test (`tests/architecture`) keeps every import pointing the allowed way.

pub mod api;
pub mod cluster;
pub mod config;
pub mod controllers;
pub mod core;
pub mod error;
pub mod http;
pub mod metrics;
pub mod notifiers;
pub mod operator;
pub mod plugin;
pub mod telemetry;

pub use error::{Error, Result};
