//! Incident severity (api layer): P0 to P3, most urgent first, as the runbooks define them.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Incident severity, most urgent first.
#[derive(
    Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
pub enum Severity {
    /// Critical: major outage or security breach.
    P0,
    /// High: a major feature broken.
    P1,
    /// Medium: significant degradation.
    P2,
    /// Low: minor issue.
    P3,
}

impl Severity {
    pub const ALL: [Severity; 4] = [Severity::P0, Severity::P1, Severity::P2, Severity::P3];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::P0 => "P0",
            Severity::P1 => "P1",
            Severity::P2 => "P2",
            Severity::P3 => "P3",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
