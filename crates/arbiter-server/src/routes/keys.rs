//! `GET|POST /v1/keys`, `DELETE /v1/keys/{id}` (admin only).

use crate::AppState;
use crate::auth::{generate_key, validate_key_fields};
use crate::error::ApiError;
use crate::extract::{Auth, JsonBody};
use arbiter_core::Role;
use arbiter_store::KeyRecord;
use axum::Json;
use axum::extract::{Path, State};
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
    validate_key_fields(&req.name, &req.tags)?;
    let key = generate_key(&req.name, req.role, req.tags, state.clock.now())?;
    state.store.create_key(key.record.clone()).await?;
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
