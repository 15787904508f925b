//! The EscalationPolicy resource (api layer): how an unacknowledged incident climbs — ordered
//! levels, each paging a schedule layer, a person or a channel and waiting for an acknowledgement
//! before the next; the chain repeated; levels kept for some severities (the engineering manager
//! for P0/P1); domain experts paged in parallel by incident labels or affected workload; and the
//! business hours the P2/P3 clocks count in.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Severity, oncall::NAME_PATTERN};

#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "incident.dev",
    version = "v1alpha1",
    kind = "EscalationPolicy",
    namespaced,
    shortname = "escalation",
    category = "incidents",
    status = "EscalationPolicyStatus",
    printcolumn = r#"{"name":"Default","type":"boolean","jsonPath":".spec.default"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct EscalationPolicySpec {
    /// What the policy is for, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2000))]
    pub description: Option<String>,

    /// The policy of every incident of this namespace that names none. In the operator's own
    /// namespace: of every namespace without a default of its own. One default per namespace.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub default: bool,

    /// The levels, in order: the first is paged when the incident opens, each next one when the
    /// previous waited in vain.
    #[schemars(length(min = 1, max = 10), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub levels: Vec<EscalationLevel>,

    /// How many more times the whole chain runs after its last level went unanswered.
    #[serde(default)]
    #[schemars(range(min = 0, max = 10))]
    pub repeat: u32,

    /// Domain experts, paged with the first level when an incident concerns their system.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub experts: Vec<ExpertRule>,

    /// The working hours P2/P3 clocks count in; without it every clock runs on wall time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub business_hours: Option<BusinessHours>,

    /// The severities whose clocks count business time (default P2 and P3); P0 and P1 are always
    /// 24x7.
    #[serde(default = "business_severities")]
    #[schemars(length(max = 2))]
    #[x_kube(validation = Rule::new("self.all(s, s == 'P2' || s == 'P3')").message("only P2 and P3 may count business time: P0 and P1 are 24x7"))]
    pub business_hours_for: Vec<Severity>,

    /// Outside business hours, a business-time incident's first page waits for the morning
    /// (`Wait`, the default) or goes out at once (`Page`).
    #[serde(default)]
    pub outside_business_hours: OutsideHours,
}

fn business_severities() -> Vec<Severity> {
    vec![Severity::P2, Severity::P3]
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OutsideHours {
    #[default]
    Wait,
    Page,
}

/// One level: whom to page, and how long to wait for an acknowledgement before the next.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EscalationLevel {
    #[schemars(length(min = 1, max = 63), regex(pattern = NAME_PATTERN))]
    pub name: String,
    /// Who is paged, all at once.
    #[schemars(length(min = 1, max = 10))]
    pub notify: Vec<Target>,
    /// The wait before the next level (default: the severity's response time); at least 1s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32), regex(pattern = super::duration::PATTERN))]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1s') && duration(self) <= duration('168h')").message("a level waits between 1s and 168h"))]
    pub after: Option<String>,
    /// The level applies to these severities only (empty: every severity), e.g. the engineering
    /// manager for P0 and P1.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 4))]
    pub severities: Vec<Severity>,
}

/// Whom to page: whoever is on call for a schedule's layer, one person of a schedule, or a
/// Channel (a team's room) without a person. Exactly one.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Eq)]
#[x_kube(validation = Rule::new("(has(self.layer) ? 1 : 0) + (has(self.person) ? 1 : 0) + (has(self.channel) ? 1 : 0) == 1").message("a target is exactly one of layer, person or channel"))]
pub struct Target {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<LayerRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<PersonRef>,
    /// A Channel in the policy's namespace (or the operator's), by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = NAME_PATTERN))]
    pub channel: Option<String>,
}

/// Whoever is on call for a layer of an OnCallSchedule in the policy's namespace.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
pub struct LayerRef {
    #[schemars(length(min = 1, max = 253), regex(pattern = NAME_PATTERN))]
    pub schedule: String,
    #[schemars(length(min = 1, max = 63), regex(pattern = NAME_PATTERN))]
    pub layer: String,
}

/// One member of an OnCallSchedule in the policy's namespace.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
pub struct PersonRef {
    #[schemars(length(min = 1, max = 253), regex(pattern = NAME_PATTERN))]
    pub schedule: String,
    #[schemars(length(min = 1, max = 63), regex(pattern = NAME_PATTERN))]
    pub member: String,
}

/// A domain expert: paged with the first level when the incident carries the labels or concerns
/// one of the workloads.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("has(self.selector) || has(self.workloads)").message("an expert rule needs a selector or workloads"))]
pub struct ExpertRule {
    #[schemars(length(min = 1, max = 63), regex(pattern = NAME_PATTERN))]
    pub name: String,
    /// Labels the incident carries (e.g. `component: payments`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::selector::bounded")]
    pub selector: Option<LabelSelector>,
    /// Names of affected workloads (any kind) in the incident's namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10), inner(length(min = 1, max = 253)))]
    pub workloads: Vec<String>,
    #[schemars(length(min = 1, max = 10))]
    pub notify: Vec<Target>,
}

/// Working hours: the days and hours of a week in a time zone, less holidays.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.start < self.end").message("business hours end after they start"))]
pub struct BusinessHours {
    /// The IANA time zone (e.g. `America/New_York`).
    #[schemars(length(min = 1, max = 64))]
    pub time_zone: String,
    /// The working days (default Monday to Friday).
    #[serde(default = "weekdays")]
    #[schemars(length(min = 1, max = 7))]
    pub days: Vec<Weekday>,
    /// Local opening time, `HH:MM`.
    #[serde(default = "opening")]
    #[schemars(length(max = 5), regex(pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"))]
    pub start: String,
    /// Local closing time, `HH:MM` (after the start; `24:00` is not admitted: use `23:59`).
    #[serde(default = "closing")]
    #[schemars(length(max = 5), regex(pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"))]
    pub end: String,
    /// Local dates (`YYYY-MM-DD`) with no business hours.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 100),
        inner(length(max = 10), regex(pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"))
    )]
    pub holidays: Vec<String>,
}

fn weekdays() -> Vec<Weekday> {
    use Weekday::*;
    vec![Monday, Tuesday, Wednesday, Thursday, Friday]
}

fn opening() -> String {
    "09:00".to_owned()
}

fn closing() -> String {
    "17:00".to_owned()
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Weekday {
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
    Sunday,
}

/// kstatus-compatible: `Ready` True when every schedule, layer, member and channel it names exists
/// and its time zone is known; otherwise False naming what is wrong.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct EscalationPolicyStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
