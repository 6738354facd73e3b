//! Webhook subscriptions and their delivery log.

use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// How a webhook's body is shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookFormat {
    /// Arbiter's JSON event envelope.
    Json,
    /// A Slack-compatible message (`{"text": ...}`), for incoming-webhook URLs.
    Slack,
    /// PagerDuty Events API v2: `trigger` when a case opens (of at least the
    /// webhook's severity) or is due soon unclaimed, `acknowledge` when it
    /// is claimed, `resolve` when it ends; the case is the `dedup_key`, the
    /// webhook's secret is the routing key.
    #[serde(rename = "pagerduty")]
    PagerDuty,
}

impl WebhookFormat {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookFormat::Json => "json",
            WebhookFormat::Slack => "slack",
            WebhookFormat::PagerDuty => "pagerduty",
        }
    }

    /// Parse a stored name (`None` for anything else).
    pub fn parse(s: &str) -> Option<Self> {
        [WebhookFormat::Json, WebhookFormat::Slack, WebhookFormat::PagerDuty].into_iter().find(|f| f.as_str() == s)
    }
}

/// A subscription: event kinds POSTed to a URL, signed with a shared secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Webhook {
    /// Time-ordered unique id (used in `DELETE /v1/webhooks/{id}`).
    pub id: String,
    /// Where to POST.
    pub url: String,
    /// Event kinds (`case.opened`, ...); `*` for all.
    pub events: BTreeSet<String>,
    /// Body shape.
    pub format: WebhookFormat,
    /// HMAC-SHA256 key; shown once at creation, never serialized again
    /// (a client reading a webhook gets an empty one).
    #[serde(skip_serializing, default)]
    pub secret: String,
    /// When it was created.
    pub created_at: Timestamp,
    /// Who created it.
    pub created_by: String,
    /// False once deleted (deliveries are kept).
    pub active: bool,
    /// The project whose events it receives.
    #[serde(default)]
    pub project: crate::ProjectId,
    /// Only cases of at least this severity (PagerDuty: what pages when a case opens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_severity: Option<crate::verdict::Severity>,
}

impl Webhook {
    /// Whether this webhook wants events of `kind`.
    pub fn wants(&self, kind: &str) -> bool {
        self.active && subscribes(&self.events, kind)
    }
}

/// Where a delivery is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Not delivered yet; will be (re)tried.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Gave up after the last attempt.
    Failed,
}

impl DeliveryStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }

    /// Parse a stored name (`None` for anything else).
    pub fn parse(s: &str) -> Option<Self> {
        [DeliveryStatus::Pending, DeliveryStatus::Delivered, DeliveryStatus::Failed]
            .into_iter()
            .find(|d| d.as_str() == s)
    }
}

/// One event to send to one webhook, with its attempts so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// Sequential id of the delivery.
    pub id: u64,
    /// The webhook.
    pub webhook_id: String,
    /// The event's position in the audit log.
    pub event_seq: u64,
    /// The event's kind.
    pub kind: String,
    /// Where it is.
    pub status: DeliveryStatus,
    /// Attempts made.
    pub attempts: u32,
    /// When the next attempt is due (pending only).
    pub next_attempt_at: Option<Timestamp>,
    /// HTTP status of the last attempt.
    pub last_status: Option<u16>,
    /// Error of the last attempt.
    pub last_error: Option<String>,
    /// When it was queued.
    pub created_at: Timestamp,
    /// When it was delivered.
    pub delivered_at: Option<Timestamp>,
}

/// Whether a subscription to `kinds` covers an event of `kind` (`*` is every kind).
pub fn subscribes(kinds: &BTreeSet<String>, kind: &str) -> bool {
    kinds.contains("*") || kinds.contains(kind)
}
