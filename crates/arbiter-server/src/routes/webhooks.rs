//! `GET|POST /v1/webhooks`, `DELETE /v1/webhooks/{id}`, `GET /v1/webhooks/{id}/deliveries` (admin only).

use crate::error::ApiError;
use crate::extract::Path;
use crate::extract::Scope;
use crate::extract::{Auth, JsonBody};
use arbiter_api::webhooks::{CreateWebhook, CreatedWebhook};
use arbiter_core::Role;
use arbiter_store::{Delivery, Webhook};
use axum::Json;
use axum::http::StatusCode;

/// Subscribe a URL to event kinds.
pub async fn create(
    Scope(state): Scope,
    auth: Auth,
    JsonBody(req): JsonBody<CreateWebhook>,
) -> Result<(StatusCode, Json<CreatedWebhook>), ApiError> {
    let who = auth.require(&[Role::Admin], "managing webhooks")?;
    let created = crate::app::webhooks::create(&state, &who.name, req).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// All webhooks (without secrets).
pub async fn list(Scope(state): Scope, auth: Auth) -> Result<Json<Vec<Webhook>>, ApiError> {
    auth.require(&[Role::Admin], "managing webhooks")?;
    Ok(Json(state.store.webhooks().await?))
}

/// Stop a webhook; its delivery log stays.
pub async fn delete(Scope(state): Scope, auth: Auth, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    auth.require(&[Role::Admin], "managing webhooks")?;
    if !state.store.delete_webhook(&id).await? {
        return Err(ApiError::NotFound(format!("no active webhook {id}")));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The delivery log of a webhook, newest first.
pub async fn deliveries(
    Scope(state): Scope,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Vec<Delivery>>, ApiError> {
    auth.require(&[Role::Admin], "managing webhooks")?;
    if !state.store.webhooks().await?.iter().any(|w| w.id == id) {
        return Err(ApiError::NotFound(format!("no webhook {id}")));
    }
    Ok(Json(state.store.deliveries(&id, 200).await?))
}
