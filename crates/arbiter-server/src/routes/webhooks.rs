//! `GET|POST /v1/webhooks`, `DELETE /v1/webhooks/{id}`, `GET /v1/webhooks/{id}/deliveries` (admin only).

use crate::AppState;
use crate::error::ApiError;
use crate::extract::Path;
use crate::extract::{Auth, JsonBody};
use arbiter_api::webhooks::{CreateWebhook, CreatedWebhook};
use arbiter_core::Role;
use arbiter_store::{Delivery, Webhook, WebhookFormat};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use std::sync::Arc;

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

/// Subscribe a URL to event kinds.
pub async fn create(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    JsonBody(req): JsonBody<CreateWebhook>,
) -> Result<(StatusCode, Json<CreatedWebhook>), ApiError> {
    let who = auth.require(&[Role::Admin], "managing webhooks")?;
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
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| ApiError::internal("no randomness available", e))?;
    let webhook = Webhook {
        id: uuid::Uuid::now_v7().to_string(),
        url: url.to_string(),
        events: req.events,
        format: req.format.unwrap_or(WebhookFormat::Json),
        secret: format!("whsec_{}", hex::encode(secret)),
        created_at: state.clock.now(),
        created_by: who.name.clone(),
        active: true,
    };
    state.store.create_webhook(webhook.clone()).await?;
    Ok((StatusCode::CREATED, Json(CreatedWebhook { secret: webhook.secret.clone(), webhook })))
}

/// All webhooks (without secrets).
pub async fn list(State(state): State<Arc<AppState>>, auth: Auth) -> Result<Json<Vec<Webhook>>, ApiError> {
    auth.require(&[Role::Admin], "managing webhooks")?;
    Ok(Json(state.store.webhooks().await?))
}

/// Stop a webhook; its delivery log stays.
pub async fn delete(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    auth.require(&[Role::Admin], "managing webhooks")?;
    if !state.store.delete_webhook(&id).await? {
        return Err(ApiError::NotFound(format!("no active webhook {id}")));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The delivery log of a webhook, newest first.
pub async fn deliveries(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Vec<Delivery>>, ApiError> {
    auth.require(&[Role::Admin], "managing webhooks")?;
    if !state.store.webhooks().await?.iter().any(|w| w.id == id) {
        return Err(ApiError::NotFound(format!("no webhook {id}")));
    }
    Ok(Json(state.store.deliveries(&id, 200).await?))
}
