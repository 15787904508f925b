//! Library errors (support). `anyhow` stays at the binary edge; everything here is typed so callers
//! can map failures to exit codes and metric labels.

use std::{io, net::SocketAddr};

use crate::config::ConfigError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),

    #[error("cannot build a Kubernetes client")]
    Client(#[source] kube::Error),

    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },

    #[error("HTTP server failed")]
    Serve(#[source] io::Error),

    #[error("Kubernetes API request failed")]
    Kube(#[source] kube::Error),

    #[error("cannot build the change: {0}")]
    Plan(String),

    /// Something the operator needs from the cluster is not there (e.g. a CRD not installed).
    #[error("{0}")]
    Unavailable(String),

    /// The object changed since it was read; the next reconcile sees the new state.
    #[error("the object changed since it was read")]
    Conflict,

    /// The API server refused a write for good (the object too large, or invalid): retrying at once
    /// cannot help.
    #[error("the API server refused the write: {0}")]
    Refused(String),

    /// This replica stopped being the leader; it exits so that it restarts as a follower.
    #[error("lost leadership: {0}")]
    LeadershipLost(String),
}

impl Error {
    /// Short, stable label for the `error` dimension of failure metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Config(error) => error.metric_label(),
            Error::Client(_) => "client",
            Error::Bind { .. } => "bind",
            Error::Serve(_) => "serve",
            Error::Kube(_) => "kube_api",
            Error::Plan(_) => "plan",
            Error::Unavailable(_) => "unavailable",
            Error::Conflict => "conflict",
            Error::Refused(_) => "refused",
            Error::LeadershipLost(_) => "leadership_lost",
        }
    }

    /// True when the operator was started with configuration it cannot use (exit code 2).
    pub fn is_configuration(&self) -> bool {
        matches!(self, Error::Config(_) | Error::Client(_))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
