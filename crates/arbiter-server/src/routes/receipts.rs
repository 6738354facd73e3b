//! `GET /v1/receipts/keys`, `POST /v1/receipts/keys/rotate` and `POST /v1/decisions/{id}/consume`.

use super::decisions::visible;
use crate::ApiError;
use crate::extract::Scope;
use crate::extract::{Auth, JsonBody, Path};
use arbiter_api::receipts::{ConsumeRequest, ReceiptKeys};
use arbiter_core::Role;
use arbiter_core::receipt::ReceiptKey;
use arbiter_store::Consumption;
use axum::Json;
use axum::extract::State;
use std::sync::Arc;

/// The public keys receipts are checked with (no key needed: anyone may verify).
pub async fn keys(State(state): State<Arc<crate::AppState>>) -> Json<ReceiptKeys> {
    Json(ReceiptKeys { keys: state.receipts.public_keys() })
}

/// Add a new signing key (admin); older keys stay published.
pub async fn rotate(Scope(state): Scope, auth: Auth) -> Result<Json<ReceiptKey>, ApiError> {
    let who = auth.require(&[Role::Admin], "rotating receipt keys")?;
    if !who.is_server_admin() {
        return Err(ApiError::Forbidden(
            "receipt keys sign every project's receipts: rotating them needs an admin key of the default project"
                .into(),
        ));
    }
    let key = state.receipts.rotate(&state).await?;
    let data = serde_json::json!({"key_id": key.key_id});
    state.store.record_event("receipt.key_rotated", &auth.0.name, state.clock.now(), data).await?;
    Ok(Json(key))
}

/// Use a receipt once ([`crate::app::receipts::consume`]).
pub async fn consume(
    Scope(state): Scope,
    auth: Auth,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<ConsumeRequest>,
) -> Result<Json<Consumption>, ApiError> {
    auth.require(&[Role::Agent, Role::Admin], "using receipts")?;
    let d = visible(&state, &auth.0, &id).await?;
    Ok(Json(crate::app::receipts::consume(&state, &auth.0, d, req).await?))
}
