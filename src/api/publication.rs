//! An Incident's public part (api layer): what a person chose to tell the public about it. Nothing
//! becomes public by itself: `spec.publication` (public title, impact, components) and
//! `spec.publicUpdates` are written by people (the plugin: `kubectl incident publish`, `update
//! --public`); the operator records each public update once, with its time, in
//! `status.publication`, which is all the status page reads. The internal title, description,
//! evidence, notes and timeline never reach it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Most public updates kept in `spec.publicUpdates`; the status keeps the recorded ones.
pub const MAX_PUBLIC_UPDATES: usize = 20;
/// Most public updates kept in `status.publication.updates`; the oldest go first, the first stays.
pub const MAX_RECORDED_PUBLIC_UPDATES: usize = 30;
/// Most components one incident names.
pub const MAX_PUBLISHED_COMPONENTS: usize = 20;
/// The longest public update body (Statuspage's own limit is larger; a status line is short).
pub const MAX_PUBLIC_BODY: usize = 1000;
/// What the operator writes as the public update when an incident is resolved without one.
pub const RESOLVED_BODY: &str = "This incident has been resolved.";

/// The incident as the public sees it: set it to publish the incident on the status page.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
pub struct Publication {
    /// The public title: what users notice, never the internal diagnosis.
    #[schemars(length(min = 1, max = 200))]
    pub title: String,
    /// How much users are affected; sets the status of the components it names.
    pub impact: Impact,
    /// The StatusPage components (by name) the incident affects.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 20),
        inner(
            length(min = 1, max = 63),
            regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
        )
    )]
    pub components: Vec<String>,
}

/// An incident's impact, in Atlassian Statuspage's words (and its JSON values).
#[derive(
    Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
#[serde(rename_all = "lowercase")]
pub enum Impact {
    None,
    Minor,
    Major,
    Critical,
}

impl Impact {
    pub const ALL: [Impact; 4] = [Impact::None, Impact::Minor, Impact::Major, Impact::Critical];

    pub fn as_str(self) -> &'static str {
        match self {
            Impact::None => "none",
            Impact::Minor => "minor",
            Impact::Major => "major",
            Impact::Critical => "critical",
        }
    }
}

/// How a published incident stands, in Statuspage's words (and its JSON values).
#[derive(
    Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
#[serde(rename_all = "lowercase")]
pub enum PublicStatus {
    Investigating,
    Identified,
    Monitoring,
    Resolved,
}

impl PublicStatus {
    pub const ALL: [PublicStatus; 4] = [
        PublicStatus::Investigating,
        PublicStatus::Identified,
        PublicStatus::Monitoring,
        PublicStatus::Resolved,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PublicStatus::Investigating => "investigating",
            PublicStatus::Identified => "identified",
            PublicStatus::Monitoring => "monitoring",
            PublicStatus::Resolved => "resolved",
        }
    }
}

/// One public update, as a person writes it.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Hash)]
pub struct PublicUpdate {
    pub status: PublicStatus,
    /// What users read: what is affected, what is being done.
    #[schemars(length(min = 1, max = 1000))]
    pub body: String,
    /// Who posted it (the user the API server authenticated; admission checks it).
    #[schemars(length(min = 1, max = 128))]
    pub author: String,
}

/// What the operator recorded of the publication (written only by the operator).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PublicationStatus {
    /// When the operator first saw the incident published.
    pub published_at: Time,
    /// When the last resolved update was recorded (cleared by a later update of another status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<Time>,
    /// The public updates, oldest first, each recorded once with its time; bounded (see
    /// MAX_RECORDED_PUBLIC_UPDATES).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub updates: Vec<RecordedPublicUpdate>,
}

/// One public update as recorded: the person's words with the time the operator saw them.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
pub struct RecordedPublicUpdate {
    /// Stable for (incident, update): the update's id in the JSON and the feed.
    pub id: String,
    pub status: PublicStatus,
    pub body: String,
    pub author: String,
    pub at: Time,
}
