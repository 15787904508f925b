//! The OnCallSchedule resource (api layer): who answers, kept in Git — the people with their
//! contact handles, the layers they rotate through (primary, secondary, the manager, an expert)
//! with a rotation length and a handoff time in an IANA time zone, and overrides (someone covers a
//! layer from one instant to another). The escalation policy pages through it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What a member or layer name admits: a lowercase word, or words joined by `-` or `.`.
pub const NAME_PATTERN: &str = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$";

#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "incident.dev",
    version = "v1alpha1",
    kind = "OnCallSchedule",
    namespaced,
    shortname = "oncall",
    category = "incidents",
    status = "OnCallScheduleStatus",
    printcolumn = r#"{"name":"Time zone","type":"string","jsonPath":".spec.timeZone"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.layers.all(l, l.members.all(m, self.members.exists(x, x.name == m)))").message("every member a layer rotates through must be listed in members"))]
#[x_kube(validation = Rule::new("!has(self.overrides) || self.overrides.all(o, self.members.exists(x, x.name == o.member) && self.layers.exists(l, l.name == o.layer))").message("an override names a listed member and a listed layer"))]
pub struct OnCallScheduleSpec {
    /// What the schedule is for, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2000))]
    pub description: Option<String>,

    /// The IANA time zone handoffs happen in (e.g. `Europe/Berlin`); a rotation keeps its local
    /// handoff time across daylight-saving changes.
    #[schemars(length(min = 1, max = 64))]
    pub time_zone: String,

    /// The people on the schedule and how to reach them.
    #[schemars(length(min = 1, max = 50), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub members: Vec<Member>,

    /// The rotations, one per role (e.g. `primary`, `secondary`, `manager`, `payments-expert`).
    #[schemars(length(min = 1, max = 10), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub layers: Vec<Layer>,

    /// Someone covering a layer for a while; where overrides overlap, the one listed last wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    pub overrides: Vec<Override>,
}

/// A person on the schedule.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// How the incident, its timeline and `kubectl incident` name the person.
    #[schemars(length(min = 1, max = 63), regex(pattern = NAME_PATTERN))]
    pub name: String,
    /// Handles per channel type, put into the page that reaches the person.
    #[serde(default)]
    pub contacts: Contacts,
}

/// How to reach a person through each channel type.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
pub struct Contacts {
    /// The Slack member id (e.g. `U024BE7LH`), mentioned in a page posted to Slack.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 32), regex(pattern = r"^[UW][A-Z0-9]+$"))]
    pub slack: Option<String>,
    /// The handle a webhook receiver routes on (e.g. a phone number for an SMS or voice bridge),
    /// sent as the page's `recipient.handle`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub webhook: Option<String>,
}

/// One rotation: members take turns of `rotationDays`, handing off at `handoff` local time,
/// counted from `start`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Layer {
    #[schemars(length(min = 1, max = 63), regex(pattern = NAME_PATTERN))]
    pub name: String,
    /// The members in turn order; the first takes the first turn.
    #[schemars(length(min = 1, max = 50), inner(length(max = 63)))]
    pub members: Vec<String>,
    /// How many calendar days one turn lasts (7: weekly).
    #[serde(default = "default_rotation_days")]
    #[schemars(range(min = 1, max = 366))]
    pub rotation_days: u32,
    /// Local time of the handoff, `HH:MM`.
    #[serde(default = "default_handoff")]
    #[schemars(length(max = 5), regex(pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"))]
    pub handoff: String,
    /// The local date the first turn starts (`YYYY-MM-DD`), at the handoff time.
    #[schemars(length(max = 10), regex(pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"))]
    pub start: String,
}

fn default_rotation_days() -> u32 {
    7
}

fn default_handoff() -> String {
    "09:00".to_owned()
}

/// A member covering a layer from `start` to `end`.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Eq)]
#[x_kube(validation = Rule::new("timestamp(self.end) > timestamp(self.start)").message("an override ends after it starts"))]
pub struct Override {
    #[schemars(length(min = 1, max = 63))]
    pub layer: String,
    /// Who covers.
    #[schemars(length(min = 1, max = 63))]
    pub member: String,
    pub start: Time,
    pub end: Time,
}

/// kstatus-compatible: `Ready` True when the schedule can answer who is on call.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct OnCallScheduleStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
