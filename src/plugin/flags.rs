//! Value enums of the plugin's flags (plugin layer): what `--status` and `--impact` accept and
//! what they mean for an internal and a public update.

use clap::ValueEnum;

use crate::api::{Impact, PublicStatus, ResponseStatus};

/// `--status` of an update (resolved only for a public one).
#[derive(Clone, Copy, ValueEnum)]
pub enum UpdateStatus {
    Investigating,
    Identified,
    Fixing,
    Monitoring,
    Resolved,
}

impl UpdateStatus {
    pub fn into_api(self) -> ResponseStatus {
        match self {
            UpdateStatus::Investigating => ResponseStatus::Investigating,
            UpdateStatus::Identified => ResponseStatus::Identified,
            UpdateStatus::Fixing => ResponseStatus::Fixing,
            // Refused before: an internal update is never "resolved" (use `resolve`).
            UpdateStatus::Monitoring | UpdateStatus::Resolved => ResponseStatus::Monitoring,
        }
    }

    /// None for `fixing`, which the public page does not know (refused before any request).
    pub fn into_public(self) -> Option<PublicStatus> {
        match self {
            UpdateStatus::Investigating => Some(PublicStatus::Investigating),
            UpdateStatus::Identified => Some(PublicStatus::Identified),
            UpdateStatus::Monitoring => Some(PublicStatus::Monitoring),
            UpdateStatus::Resolved => Some(PublicStatus::Resolved),
            UpdateStatus::Fixing => None,
        }
    }

    /// Why this status cannot go with an internal (`text`) or a public update, if it cannot.
    pub fn problem(self, text: bool, public: bool) -> Option<&'static str> {
        match self {
            UpdateStatus::Fixing if public => Some(
                "a public update's --status is investigating, identified, monitoring or resolved",
            ),
            UpdateStatus::Resolved if text => Some(
                "an update's --status is never resolved: resolve with `kubectl incident resolve` \
                 (a published incident then gets its resolved update), or post only --public",
            ),
            _ => None,
        }
    }
}

/// `--impact` of a publication.
#[derive(Clone, Copy, ValueEnum)]
pub enum PublicImpact {
    None,
    Minor,
    Major,
    Critical,
}

impl PublicImpact {
    pub fn into_api(self) -> Impact {
        match self {
            PublicImpact::None => Impact::None,
            PublicImpact::Minor => Impact::Minor,
            PublicImpact::Major => Impact::Major,
            PublicImpact::Critical => Impact::Critical,
        }
    }
}
