//! Detection: the cluster's own health signals open, update and resolve Incidents. `classify` reads
//! what is wrong with a Pod, Deployment or Node; `group` turns signals into one problem per
//! workload (pure); `detector` watches and runs the passes, `write` upserts the Incidents (shell).

pub mod classify;
pub mod detector;
pub mod evidence;
pub mod group;
pub mod policy;
mod write;
