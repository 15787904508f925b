//! Library errors. `anyhow` stays at the binary edge; everything here is typed so callers can map
//! failures to exit codes and metric labels.

use std::{io, net::SocketAddr, path::PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read kubeconfig {path}")]
    Kubeconfig {
        path: PathBuf,
        #[source]
        source: kube::config::KubeconfigError,
    },

    #[error(
        "cannot find a cluster to talk to (set KUBECONFIG, pass --kubeconfig, or run in a pod)"
    )]
    InferConfig(#[source] kube::config::InferConfigError),

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

    #[error("invalid configuration {}: {message}", path.display())]
    Config { path: PathBuf, message: String },

    /// The object changed since it was read; the next reconcile sees the new state.
    #[error("the object changed since it was read")]
    Conflict,

    /// This replica stopped being the leader; it exits so that it restarts as a follower.
    #[error("lost leadership: {0}")]
    LeadershipLost(String),
}

impl Error {
    /// Short, stable label for the `error` dimension of failure metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kubeconfig { .. } => "kubeconfig",
            Error::InferConfig(_) => "infer_config",
            Error::Client(_) => "client",
            Error::Bind { .. } => "bind",
            Error::Serve(_) => "serve",
            Error::Kube(_) => "kube_api",
            Error::Plan(_) => "plan",
            Error::Conflict => "conflict",
            Error::LeadershipLost(_) => "leadership_lost",
            Error::Config { .. } => "config",
        }
    }

    /// True when the operator was started with configuration it cannot use (exit code 2).
    pub fn is_configuration(&self) -> bool {
        matches!(
            self,
            Error::Kubeconfig { .. }
                | Error::InferConfig(_)
                | Error::Client(_)
                | Error::Config { .. }
        )
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
