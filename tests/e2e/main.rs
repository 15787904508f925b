//! End-to-end tests against the local control plane started by `make cluster` (or `make test`).
//! Every test gets its own namespace; nothing here talks to a mock.

mod chart;
mod detection;
mod detection_restart;
mod harness;
mod leader;
mod lifecycle;
mod nodes;
mod parity;
mod plugin;
mod remediation;
mod runbook_flow;
mod runbooks;
mod runtime;
mod support;
