//! Webhooks as operations: the event kinds one may subscribe to, and
//! subscribing a URL (checked against the outbound-address rules before it is
//! stored, with a fresh signing secret shown once).

use crate::AppState;
use crate::error::ApiError;
use arbiter_api::webhooks::{CreateWebhook, CreatedWebhook};
use arbiter_store::{Webhook, WebhookFormat};

/// Event kinds a webhook may subscribe to (`*` for all).
pub const EVENT_KINDS: &[&str] = &[
    "case.opened",
    "case.claimed",
    "case.released",
    "case.lease_expired",
    "case.reassigned",
    "case.answered",
    "case.requirements_raised",
    "case.decided",
    "case.tier_escalated",
    "case.due_soon",
    "case.fallback_applied",
    "case.commented",
    "review.stage_recorded",
    "review.intervention_updated",
    "review.closed",
    "review.reopened",
    "drift.episode.started",
    "drift.episode.updated",
    "drift.episode.acknowledged",
    "drift.episode.ended",
    "agent.rate_limited",
    "agent.case_cap",
];

/// Subscribe `req.url` to event kinds for `by`; the answer carries the secret, shown this once.
pub async fn create(state: &AppState, by: &str, req: CreateWebhook) -> Result<CreatedWebhook, ApiError> {
    let url = req.url.trim();
    if !(url.starts_with("http://") || url.starts_with("https://"))
        || url.len() > 2048
        || url.chars().any(char::is_whitespace)
    {
        return Err(ApiError::invalid("url", "must be an http:// or https:// URL"));
    }
    state.config.outbound.check_url(url).await.map_err(|why| ApiError::invalid("url", why))?;
    if req.events.is_empty() {
        return Err(ApiError::invalid("events", "subscribe to at least one event kind, or `*`"));
    }
    if let Some(bad) = req.events.iter().find(|e| *e != "*" && !EVENT_KINDS.contains(&e.as_str())) {
        return Err(ApiError::invalid(
            "events",
            format!("unknown event kind `{bad}` (known: {})", EVENT_KINDS.join(", ")),
        ));
    }
    let format = req.format.unwrap_or(WebhookFormat::Json);
    let secret = match (format, req.routing_key.as_deref().map(str::trim)) {
        (WebhookFormat::PagerDuty, Some(key)) if key.len() == 32 && key.bytes().all(|b| b.is_ascii_alphanumeric()) => {
            key.to_string()
        }
        (WebhookFormat::PagerDuty, _) => {
            return Err(ApiError::invalid(
                "routing_key",
                "a PagerDuty webhook needs the 32-character integration key of an Events API v2 integration \
                 (the service's Integrations tab)",
            ));
        }
        (_, Some(_)) => return Err(ApiError::invalid("routing_key", "only a `pagerduty` webhook takes a routing key")),
        (_, None) => {
            let mut secret = [0u8; 32];
            getrandom::fill(&mut secret).map_err(|e| ApiError::internal("no randomness available", e))?;
            format!("whsec_{}", hex::encode(secret))
        }
    };
    if format == WebhookFormat::PagerDuty
        && let Some(bad) =
            req.events.iter().find(|e| !crate::jobs::webhook_delivery::PAGED.contains(&e.as_str()) && *e != "*")
    {
        return Err(ApiError::invalid(
            "events",
            format!(
                "PagerDuty has nothing to do with `{bad}`; subscribe it to {} (or `*`)",
                crate::jobs::webhook_delivery::PAGED.join(", ")
            ),
        ));
    }
    let webhook = Webhook {
        id: uuid::Uuid::now_v7().to_string(),
        url: url.to_string(),
        events: req.events,
        format,
        secret,
        created_at: state.clock.now(),
        created_by: by.to_string(),
        active: true,
        project: state.project().clone(),
        min_severity: req.min_severity,
    };
    state.store.create_webhook(webhook.clone()).await?;
    Ok(CreatedWebhook { secret: webhook.secret.clone(), webhook })
}
