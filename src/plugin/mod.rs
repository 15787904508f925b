//! The `kubectl incident` plugin (plugin layer): the pager's view of Incidents and the responder's
//! commands.
//!
//! Rendering ([`render`]), patch building ([`patch`]) and reports ([`report`]) are pure and
//! unit-tested; [`ops`] does the API calls; the binary (`src/bin/kubectl-incident.rs`) parses flags
//! and prints.

pub mod flags;
pub mod kubeconfig;
pub mod ops;
pub mod patch;
pub mod render;
pub mod report;

/// What the plugin can fail with; the binary prints it as `Error: ...` and exits 1.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("incident {0:?} not found")]
    NotFound(String),

    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),

    #[error("cannot build a Kubernetes client")]
    Client(#[source] kube::Error),

    #[error("{what}")]
    Api {
        what: String,
        #[source]
        source: kube::Error,
    },

    #[error("incident {name:?} {message}")]
    Refused { name: String, message: String },

    #[error("incident {0:?} already exists")]
    AlreadyExists(String),

    /// The API server (its schema, CEL rules or an admission policy) refused a new incident.
    #[error("the API server refused the incident: {0}")]
    Rejected(String),

    /// Who is acting could not be learned from the API server; any other name could be spoofed.
    #[error("cannot record who you are: {0}")]
    Identity(String),

    #[error("incident {0:?} kept changing while it was being updated; try again")]
    Contended(String),

    #[error("cannot encode the output: {0}")]
    Encode(String),

    #[error("watching incident {name:?} failed: {message}")]
    Watch { name: String, message: String },
}

pub type Result<T, E = PluginError> = std::result::Result<T, E>;
