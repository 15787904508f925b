//! The Channel resource (api layer): where an incident's news goes — a destination kept in Git, the
//! incidents and events it hears, and its messages. The operator delivers each message at least once
//! with a stable idempotency key (the outbox lives in the Incident's status); the destination's
//! address and keys come from Secrets the Channel names, never from its spec.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::severity::Severity;

#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "incident.dev",
    version = "v1alpha1",
    kind = "Channel",
    namespaced,
    shortname = "chan",
    category = "incidents",
    status = "ChannelStatus",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Delivering","type":"string","jsonPath":".status.conditions[?(@.type==\"Delivering\")].status"}"#,
    printcolumn = r#"{"name":"Sent","type":"integer","jsonPath":".status.sent"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(has(self.webhook) ? 1 : 0) + (has(self.pagerduty) ? 1 : 0) + (has(self.slack) ? 1 : 0) == 1").message("a channel needs exactly one destination: webhook, pagerduty or slack"))]
pub struct ChannelSpec {
    /// What the channel is for, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2000))]
    pub description: Option<String>,

    /// A JSON POST of each incident event to any receiver (ticket systems, chat bridges), signed
    /// per Standard Webhooks when a signing key is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookDestination>,

    /// PagerDuty Events API v2: the incident opens, acknowledges and resolves one alert (its
    /// dedup_key is the incident's uid), paging whoever is on call for the integration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pagerduty: Option<PagerDutyDestination>,

    /// Slack: an incoming webhook (one new message per event), or a bot token (one message per
    /// incident kept current, each event a reply in its thread).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack: Option<SlackDestination>,

    /// Which incidents and events the channel hears.
    #[serde(default)]
    pub route: Route,

    /// Message templates (minijinja) by event, instead of the built-in ones.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 13, "additionalProperties" = {"type": "string", "maxLength": 8192}))]
    #[x_kube(validation = Rule::new("self.all(k, k in ['Opened', 'Acknowledged', 'Update', 'UpdateDue', 'SeverityChanged', 'Escalated', 'Paged', 'CommanderChanged', 'ApprovalNeeded', 'ActionFailed', 'GitOpsPaused', 'GitOpsResumed', 'Resolved', 'Reopened', 'Closed'])").message("templates are keyed by event: Opened, Acknowledged, Update, UpdateDue, SeverityChanged, Escalated, Paged, CommanderChanged, ApprovalNeeded, ActionFailed, GitOpsPaused, GitOpsResumed, Resolved, Reopened, Closed"))]
    #[x_kube(validation = Rule::new("self.all(k, size(self[k]) <= 8192)").message("a template is at most 8192 characters"))]
    pub templates: BTreeMap<String, String>,
}

/// A generic webhook: the receiver's URL and, optionally, the Standard Webhooks signing key.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct WebhookDestination {
    /// The Secret key holding the receiver's URL (http or https).
    pub url: SecretKeyRef,
    /// The Secret key holding the signing secret (`whsec_` + base64); without it requests are not
    /// signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_key: Option<SecretKeyRef>,
}

/// A PagerDuty service integration (Events API v2).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PagerDutyDestination {
    /// The Secret key holding the integration's routing key.
    pub routing_key: SecretKeyRef,
    /// The Events API endpoint (default https://events.pagerduty.com/v2/enqueue; e.g. the EU one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), regex(pattern = r"^https?://\S+$"))]
    pub url: Option<String>,
}

/// A Slack channel, reached by an incoming webhook or a bot token (exactly one).
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(has(self.webhook) ? 1 : 0) + (has(self.bot) ? 1 : 0) == 1").message("slack needs exactly one of webhook or bot"))]
pub struct SlackDestination {
    /// The Secret key holding an incoming webhook's URL. Such a webhook cannot edit or thread its
    /// messages: each event is a new message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<SecretKeyRef>,
    /// A bot (chat:write): the first event posts the incident's message, later ones keep it current
    /// (`chat.update`, green once resolved) and reply in its thread.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot: Option<SlackBot>,
    /// Text put before a message by the incident's severity, e.g. `{P0: "<!here>", P1: "<!here>"}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 4, "additionalProperties" = {"type": "string", "maxLength": 256}))]
    #[x_kube(validation = Rule::new("self.all(k, k in ['P0', 'P1', 'P2', 'P3'])").message("mentions are keyed by severity: P0, P1, P2, P3"))]
    pub mentions: BTreeMap<String, String>,
}

/// A Slack bot's token and where it posts.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SlackBot {
    /// The Secret key holding the bot token (`xoxb-…`, scope chat:write).
    pub token: SecretKeyRef,
    /// The Slack channel's id (e.g. C0123456789) or name (#incidents).
    #[schemars(length(min = 1, max = 80))]
    pub channel: String,
    /// The Web API's base URL (default https://slack.com/api).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), regex(pattern = r"^https?://\S+$"))]
    pub api_url: Option<String>,
}

/// Where a channel's messages go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Destination<'a> {
    Webhook(&'a WebhookDestination),
    PagerDuty(&'a PagerDutyDestination),
    Slack(&'a SlackDestination),
}

impl Destination<'_> {
    /// The destination's type, as metrics and messages name it.
    pub fn kind(&self) -> &'static str {
        match self {
            Destination::Webhook(_) => "webhook",
            Destination::PagerDuty(_) => "pagerduty",
            Destination::Slack(_) => "slack",
        }
    }
}

impl ChannelSpec {
    /// The channel's destination (admission allows exactly one).
    pub fn destination(&self) -> Option<Destination<'_>> {
        match (&self.webhook, &self.pagerduty, &self.slack) {
            (Some(webhook), _, _) => Some(Destination::Webhook(webhook)),
            (None, Some(pagerduty), _) => Some(Destination::PagerDuty(pagerduty)),
            (None, None, Some(slack)) => Some(Destination::Slack(slack)),
            (None, None, None) => None,
        }
    }
}

/// A key of a Secret in the Channel's namespace.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Hash)]
pub struct SecretKeyRef {
    /// The Secret's name.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub name: String,
    /// The key within it.
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

/// Which incidents and events a channel hears; every criterion given must hold.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Route {
    /// The incident's severity must be one of these (empty: every severity).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 4))]
    pub severities: Vec<Severity>,
    /// The events to send (empty: Opened, Acknowledged, Update, UpdateDue, SeverityChanged,
    /// Escalated, Paged, CommanderChanged, ApprovalNeeded, ActionFailed, GitOpsPaused,
    /// GitOpsResumed, Resolved, Reopened).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 15))]
    pub events: Vec<NotificationEvent>,
    /// Labels the incident must carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::selector::bounded")]
    pub incident_selector: Option<LabelSelector>,
    /// Serve the incidents of every namespace, not only the channel's own. Honoured only for a
    /// Channel in the operator's own namespace (the platform team's channel).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all_namespaces: bool,
}

/// What happened to an incident that a channel can hear about.
#[derive(
    Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
pub enum NotificationEvent {
    /// The incident was opened (detected or reported).
    Opened,
    /// Someone acknowledged it.
    Acknowledged,
    /// A responder posted an update (`kubectl incident update`).
    Update,
    /// A P0/P1 incident went too long without an update.
    UpdateDue,
    SeverityChanged,
    /// Not acknowledged within the response time, or a runbook escalated.
    Escalated,
    /// A person is paged by the escalation policy (the message names them, with their handle).
    Paged,
    /// Someone took command, or handed it over.
    CommanderChanged,
    /// A runbook step waits for a person (an approval or a checkpoint).
    ApprovalNeeded,
    /// A remediation action failed.
    ActionFailed,
    /// A GitOps owner (Flux, Argo CD) was paused so that a rollback sticks: revert in Git, then resume.
    GitOpsPaused,
    /// A paused GitOps owner was resumed.
    GitOpsResumed,
    Resolved,
    Reopened,
    /// The post-mortem is complete (not sent unless listed).
    Closed,
}

impl NotificationEvent {
    pub const ALL: [NotificationEvent; 15] = [
        NotificationEvent::Opened,
        NotificationEvent::Acknowledged,
        NotificationEvent::Update,
        NotificationEvent::UpdateDue,
        NotificationEvent::SeverityChanged,
        NotificationEvent::Escalated,
        NotificationEvent::Paged,
        NotificationEvent::CommanderChanged,
        NotificationEvent::ApprovalNeeded,
        NotificationEvent::ActionFailed,
        NotificationEvent::GitOpsPaused,
        NotificationEvent::GitOpsResumed,
        NotificationEvent::Resolved,
        NotificationEvent::Reopened,
        NotificationEvent::Closed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NotificationEvent::Opened => "Opened",
            NotificationEvent::Acknowledged => "Acknowledged",
            NotificationEvent::Update => "Update",
            NotificationEvent::UpdateDue => "UpdateDue",
            NotificationEvent::SeverityChanged => "SeverityChanged",
            NotificationEvent::Escalated => "Escalated",
            NotificationEvent::Paged => "Paged",
            NotificationEvent::CommanderChanged => "CommanderChanged",
            NotificationEvent::ApprovalNeeded => "ApprovalNeeded",
            NotificationEvent::ActionFailed => "ActionFailed",
            NotificationEvent::GitOpsPaused => "GitOpsPaused",
            NotificationEvent::GitOpsResumed => "GitOpsResumed",
            NotificationEvent::Resolved => "Resolved",
            NotificationEvent::Reopened => "Reopened",
            NotificationEvent::Closed => "Closed",
        }
    }
}

impl std::fmt::Display for NotificationEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// kstatus-compatible: `Ready` True when the channel is usable (valid templates, its Secrets
/// present), `Stalled` True when it is not; `Delivering` False while the receiver refuses messages.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ChannelStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Messages delivered since the channel was created.
    #[serde(default)]
    pub sent: i64,
    /// Messages given up on (refused by the receiver, or undeliverable for a day).
    #[serde(default)]
    pub failed: i64,
    /// The last delivery attempt's outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_delivery: Option<LastDelivery>,
}

/// One delivery attempt, as the channel reports it.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LastDelivery {
    pub time: Time,
    /// The incident, as namespace/name.
    pub incident: String,
    pub event: NotificationEvent,
    /// Delivered, Retrying or Failed.
    pub result: String,
    /// What the receiver or the network said, without the destination's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}
