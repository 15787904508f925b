//! The watch loops (controllers layer): each reads the cluster, calls the pure core and applies the
//! result through `cluster`. They never import each other; `operator` starts them.

pub mod admission;
pub mod channel;
pub mod detector;
pub mod incident;
pub mod leader;
pub mod notifications;
pub mod oncall;
pub mod runbook;

use std::time::Duration;

/// Test hooks at named points of the loops: `INCIDENT_OPERATOR_FAILPOINT=NAME` aborts the process
/// there (how e2e tests kill it exactly between two steps); `INCIDENT_OPERATOR_SLOW=NAME:MS,...`
/// waits there (how the chaos campaign widens a window so that random kills land in it).
#[derive(Clone, Debug, Default)]
pub struct Failpoints {
    abort: Option<String>,
    slow: Vec<(String, Duration)>,
}

impl Failpoints {
    pub fn from_env() -> Failpoints {
        let abort = std::env::var("INCIDENT_OPERATOR_FAILPOINT")
            .ok()
            .filter(|v| !v.is_empty());
        let slow = std::env::var("INCIDENT_OPERATOR_SLOW")
            .unwrap_or_default()
            .split(',')
            .filter_map(|point| {
                let (name, ms) = point.trim().split_once(':')?;
                Some((name.to_owned(), Duration::from_millis(ms.parse().ok()?)))
            })
            .collect();
        Failpoints { abort, slow }
    }

    /// Passes the point `name`: waits if asked to, then aborts if asked to.
    pub async fn at(&self, name: &str) {
        if let Some((_, wait)) = self.slow.iter().find(|(n, _)| n == name) {
            tokio::time::sleep(*wait).await;
        }
        if self.abort.as_deref() == Some(name) {
            eprintln!("failpoint {name}: aborting");
            std::process::abort();
        }
    }
}
