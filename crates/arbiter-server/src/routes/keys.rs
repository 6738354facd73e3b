//! `GET|POST /v1/keys`, `DELETE /v1/keys/{id}` (admin only).

use crate::AppState;
use crate::auth::{KeySpec, create_key, rotate_key};
use crate::error::ApiError;
use crate::extract::Path;
use crate::extract::{Auth, JsonBody};
use arbiter_core::Role;
use arbiter_store::KeyRecord;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::Arc;

/// The body of `POST /v1/keys`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// Who the key is for; for agents, the agent's name.
    pub name: String,
    /// agent, reviewer or admin.
    pub role: Role,
    /// Reviewer role tags such as `soc_analyst`.
    #[serde(default)]
    pub tags: BTreeSet<String>,
    /// The key stops working after this long (`90d`, `12h`).
    #[serde(default)]
    pub expires_in: Option<arbiter_core::HumanDuration>,
    /// The key's own proposal rate limit (`10/s`, `600/m:50`, `unlimited`) instead of its role's.
    #[serde(default)]
    pub rate_limit: Option<arbiter_core::rate::RateLimit>,
    /// The name belongs to an existing principal: this is a second key for the same person.
    #[serde(default)]
    pub same_principal: bool,
}

/// A created key: the only time the secret is shown.
#[derive(Debug, Serialize)]
pub struct CreatedKey {
    /// The full key. Store it now; Arbiter keeps only its digest.
    pub key: String,
    /// The stored record.
    #[serde(flatten)]
    pub record: KeyRecord,
}

/// Create a key.
pub async fn create(
    State(state): State<Arc<AppState>>,
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
    Ok((StatusCode::CREATED, Json(CreatedKey { key: key.secret, record: key.record })))
}

/// The body of `POST /v1/keys/{id}/rotate`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateKey {
    /// How long the old key keeps working (default `7d`), so callers can switch without downtime.
    #[serde(default)]
    pub old_expires_in: Option<arbiter_core::HumanDuration>,
}

/// Rotate a key: a new key for the same principal; the old one works until it expires.
pub async fn rotate(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(id): Path<String>,
    body: Option<JsonBody<RotateKey>>,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    auth.require(&[Role::Admin], "rotating keys")?;
    let req = body.map(|b| b.0).unwrap_or_default();
    let grace = req.old_expires_in.unwrap_or(arbiter_core::HumanDuration(7 * 24 * 3600));
    let key = rotate_key(state.store.as_ref(), &id, grace, state.clock.now()).await?;
    state.keys.invalidate(&id);
    Ok((StatusCode::CREATED, Json(CreatedKey { key: key.secret, record: key.record })))
}

/// List keys (without secrets).
pub async fn list(State(state): State<Arc<AppState>>, auth: Auth) -> Result<Json<Vec<KeyRecord>>, ApiError> {
    auth.require(&[Role::Admin], "listing keys")?;
    Ok(Json(state.store.keys().await?))
}

/// Revoke a key; it stops working at once on this server.
pub async fn revoke(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    auth.require(&[Role::Admin], "revoking keys")?;
    if !state.store.revoke_key(&id, state.clock.now()).await? {
        return Err(ApiError::NotFound(format!("no active key with id {id}")));
    }
    state.keys.invalidate(&id);
    Ok(StatusCode::NO_CONTENT)
}
