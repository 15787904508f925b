//! End-to-end tests against the local control plane started by `make cluster` (or `make test`).
//! Every test gets its own namespace; nothing here talks to a mock.

mod alertmanager;
mod alerts;
mod alerts_after_deploy;
mod alerts_events;
mod chart;
mod chart_alerts;
mod chart_operator;
mod detection;
mod detection_config;
mod detection_restart;
mod detection_scale;
mod detection_updates;
mod escalation;
mod harness;
mod leader;
mod lifecycle;
mod lifecycle_clocks;
mod lifecycle_limits;
mod lifecycle_postmortem;
mod nodes;
mod notifications;
mod notifications_faults;
mod notifications_pagerduty;
mod notifications_slack;
mod notifications_table;
mod notifications_updates;
mod parity;
mod plugin;
mod plugin_create;
mod receiver;
mod remediation;
mod runbook_flow;
mod runbooks;
mod runtime;
mod support;
