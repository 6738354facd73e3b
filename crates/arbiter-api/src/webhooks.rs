//! Webhook subscriptions.

use arbiter_core::webhook::{Webhook, WebhookFormat};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The body of `POST /v1/webhooks`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// Where to POST (http or https).
    pub url: String,
    /// Event kinds, or `["*"]`.
    pub events: BTreeSet<String>,
    /// `json` (default), `slack` or `pagerduty`.
    #[serde(default)]
    pub format: Option<WebhookFormat>,
    /// `pagerduty` only: the integration's routing key (Events API v2); it is kept as the webhook's secret.
    #[serde(default)]
    pub routing_key: Option<String>,
    /// Only cases of at least this severity (`pagerduty`: what pages when a case opens).
    #[serde(default)]
    pub min_severity: Option<arbiter_core::Severity>,
}

/// A created webhook: the only time the signing secret is shown.
#[derive(Debug, Serialize, Deserialize)]
pub struct CreatedWebhook {
    /// HMAC-SHA256 key for `Arbiter-Signature`.
    pub secret: String,
    /// The stored webhook.
    #[serde(flatten)]
    pub webhook: Webhook,
}
