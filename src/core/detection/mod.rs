//! Detection (core layer): `classify` reads what is wrong with a Pod, Deployment or Node; `group`
//! turns signals into one problem per workload; `settings` holds what the detector is configured
//! with; `evidence` bounds what an incident shows; `coalesce` paces the passes. The detector
//! controller runs them; `alerts` turns Alertmanager's messages into incidents for the alert
//! receiver.

pub mod alerts;
pub mod classify;
pub mod coalesce;
pub mod debounce;
pub mod events_api;
pub mod evidence;
pub mod group;
pub mod incidents;
pub mod records;
pub mod settings;
pub mod workloads;
