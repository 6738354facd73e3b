//! `GET|POST /v1/keys`, `DELETE /v1/keys/{id}` (admin only).

use crate::app::keys::{KeySpec, create_key, rotate_key};
use crate::error::ApiError;
use crate::extract::Path;
use crate::extract::Scope;
use crate::extract::{Auth, JsonBody};
use arbiter_api::keys::{CreateKey, CreatedKey, RotateKey};
use arbiter_core::Role;
use arbiter_store::KeyRecord;
use axum::Json;
use axum::http::StatusCode;

/// Create a key.
pub async fn create(
    Scope(state): Scope,
    auth: Auth,
    JsonBody(req): JsonBody<CreateKey>,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    auth.require(&[Role::Admin], "creating keys")?;
    let spec = KeySpec {
        name: req.name,
        role: req.role,
        tags: req.tags,
        expires_in: req.expires_in,
        rate_limit: req.rate_limit,
        same_principal: req.same_principal,
    };
    let key = create_key(state.store.as_ref(), spec, state.clock.now()).await?;
    let roles = state.policy().map(|p| p.reviewer_roles());
    let warnings = crate::app::keys::key_warnings(&key.record, roles.as_ref());
    Ok((StatusCode::CREATED, Json(CreatedKey { key: key.secret, record: key.record, warnings })))
}

/// Rotate a key: a new key for the same principal; the old one works until it expires.
pub async fn rotate(
    Scope(state): Scope,
    auth: Auth,
    Path(id): Path<String>,
    body: Option<JsonBody<RotateKey>>,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    auth.require(&[Role::Admin], "rotating keys")?;
    let req = body.map(|b| b.0).unwrap_or_default();
    let grace = req.old_expires_in.unwrap_or(arbiter_core::HumanDuration(7 * 24 * 3600));
    let key = rotate_key(state.store.as_ref(), &id, grace, state.clock.now()).await?;
    state.keys.invalidate(&id);
    Ok((StatusCode::CREATED, Json(CreatedKey { key: key.secret, record: key.record, warnings: vec![] })))
}

/// List keys (without secrets).
pub async fn list(Scope(state): Scope, auth: Auth) -> Result<Json<Vec<KeyRecord>>, ApiError> {
    auth.require(&[Role::Admin], "listing keys")?;
    Ok(Json(state.store.keys().await?))
}

/// Revoke a key; it stops working at once on this server.
pub async fn revoke(Scope(state): Scope, auth: Auth, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    auth.require(&[Role::Admin], "revoking keys")?;
    if !state.store.revoke_key(&id, state.clock.now()).await? {
        return Err(ApiError::NotFound(format!("no active key with id {id}")));
    }
    state.keys.invalidate(&id);
    Ok(StatusCode::NO_CONTENT)
}
