//! The StatusPage resource (api layer): the public status page's definition, kept in Git — its
//! title, components (grouped, described), which published incidents affect which component, a
//! person's override of a component's status, and scheduled maintenance. It has no status: every
//! replica computes the page from this spec and the published Incidents on each request, so there
//! is nothing for the operator to record here.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::AffectedKind;

/// Most components on one page (Statuspage's own pages rarely list more).
pub const MAX_COMPONENTS: usize = 50;
/// Most maintenance windows in one spec; drop finished ones to add new ones.
pub const MAX_MAINTENANCES: usize = 20;

#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "incident.dev",
    version = "v1alpha1",
    kind = "StatusPage",
    namespaced,
    shortname = "statuspage",
    category = "incidents",
    printcolumn = r#"{"name":"Title","type":"string","jsonPath":".spec.title"}"#,
    printcolumn = r#"{"name":"URL","type":"string","jsonPath":".spec.url"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.maintenances) || self.maintenances.all(m, !has(m.components) || m.components.all(c, has(self.components) && self.components.exists(x, x.name == c)))").message("a maintenance names only components of this page"))]
pub struct StatusPageSpec {
    /// The page's name, as users see it (e.g. `Shop status`).
    #[schemars(length(min = 1, max = 200))]
    #[x_kube(validation = Rule::new("self.matches('\\\\S')").message("title must not be blank"))]
    pub title: String,

    /// Where users reach the page (an http(s) URL): the feed's and the JSON's links.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), regex(pattern = r"^https?://\S+$"))]
    pub url: Option<String>,

    /// The services users know, in the order shown.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub components: Vec<PageComponent>,

    /// Planned work shown ahead of time and while it runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub maintenances: Vec<Maintenance>,
}

/// One component of the page.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PageComponent {
    /// Its name in incidents (`kubectl incident publish --component NAME`).
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Its name on the page (default: `name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 100))]
    pub display_name: Option<String>,
    /// What it is, for users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 500))]
    pub description: Option<String>,
    /// The group it is shown under (e.g. `Payments`); components of a group are shown together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 100))]
    pub group: Option<String>,
    /// Published incidents that affect it without naming it: by their labels or what they affect.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "match")]
    pub match_: Option<ComponentMatch>,
    /// A person's word on the component's status, instead of what incidents say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(rename = "override")]
    pub override_: Option<ComponentOverride>,
}

/// Which published incidents affect a component besides those naming it; either criterion is
/// enough.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ComponentMatch {
    /// Labels a published incident carries (all of them).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 16, "additionalProperties" = {"type": "string", "maxLength": 63}))]
    pub incident_labels: BTreeMap<String, String>,
    /// Workloads a published incident lists in `spec.affected` (any of them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub affected: Vec<WorkloadRef>,
}

/// A workload in the page's namespace.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
pub struct WorkloadRef {
    pub kind: AffectedKind,
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub name: String,
}

/// A component's status as a person sets it.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
pub struct ComponentOverride {
    pub status: ComponentStatus,
    /// Why, for the people keeping the page (not shown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 500))]
    pub reason: Option<String>,
}

/// A component's status, in Statuspage's words (and its JSON values), best first.
#[derive(
    Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
#[serde(rename_all = "snake_case")]
pub enum ComponentStatus {
    Operational,
    UnderMaintenance,
    DegradedPerformance,
    PartialOutage,
    MajorOutage,
}

impl ComponentStatus {
    pub const ALL: [ComponentStatus; 5] = [
        ComponentStatus::Operational,
        ComponentStatus::UnderMaintenance,
        ComponentStatus::DegradedPerformance,
        ComponentStatus::PartialOutage,
        ComponentStatus::MajorOutage,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ComponentStatus::Operational => "operational",
            ComponentStatus::UnderMaintenance => "under_maintenance",
            ComponentStatus::DegradedPerformance => "degraded_performance",
            ComponentStatus::PartialOutage => "partial_outage",
            ComponentStatus::MajorOutage => "major_outage",
        }
    }

    /// How the page says it.
    pub fn label(self) -> &'static str {
        match self {
            ComponentStatus::Operational => "Operational",
            ComponentStatus::UnderMaintenance => "Under maintenance",
            ComponentStatus::DegradedPerformance => "Degraded performance",
            ComponentStatus::PartialOutage => "Partial outage",
            ComponentStatus::MajorOutage => "Major outage",
        }
    }
}

/// A scheduled maintenance window.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.scheduledUntil > self.scheduledFor").message("scheduledUntil must be after scheduledFor"))]
pub struct Maintenance {
    /// Its id (stable: the JSON's and the feed's).
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// What users read.
    #[schemars(length(min = 1, max = 200))]
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1000))]
    pub description: Option<String>,
    /// The components under maintenance (by name).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 50),
        inner(
            length(min = 1, max = 63),
            regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
        )
    )]
    pub components: Vec<String>,
    pub scheduled_for: Time,
    pub scheduled_until: Time,
}

impl PageComponent {
    /// The name users see.
    pub fn shown_name(&self) -> &str {
        self.display_name.as_deref().unwrap_or(&self.name)
    }
}
