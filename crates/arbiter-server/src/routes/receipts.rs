//! `GET /v1/receipts/keys`, `POST /v1/receipts/keys/rotate` and `POST /v1/decisions/{id}/consume`.

use super::decisions::visible;
use crate::extract::{Auth, JsonBody, Path};
use crate::{ApiError, AppState};
use arbiter_api::receipts::{ConsumeRequest, ReceiptKeys};
use arbiter_core::Role;
use arbiter_core::receipt::ReceiptKey;
use arbiter_store::Consumption;
use axum::Json;
use axum::extract::State;
use std::sync::Arc;

/// The public keys receipts are checked with (no key needed: anyone may verify).
pub async fn keys(State(state): State<Arc<AppState>>) -> Json<ReceiptKeys> {
    Json(ReceiptKeys { keys: state.receipts.public_keys() })
}

/// Add a new signing key (admin); older keys stay published.
pub async fn rotate(State(state): State<Arc<AppState>>, auth: Auth) -> Result<Json<ReceiptKey>, ApiError> {
    auth.require(&[Role::Admin], "rotating receipt keys")?;
    let key = state.receipts.rotate(&state).await?;
    let data = serde_json::json!({"key_id": key.key_id});
    state.store.record_event("receipt.key_rotated", &auth.0.name, state.clock.now(), data).await?;
    Ok(Json(key))
}

/// Use a receipt once: check it (signature, expiry, allow, the decision it names,
/// the arguments about to run), then record the use. The same consumer asking
/// again gets the same answer; any other consumer is refused (409).
pub async fn consume(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<ConsumeRequest>,
) -> Result<Json<Consumption>, ApiError> {
    auth.require(&[Role::Agent, Role::Admin], "using receipts")?;
    if req.consumer.trim().is_empty() || req.consumer.len() > 200 {
        return Err(ApiError::invalid("consumer", "the consumer's name, 1 to 200 characters"));
    }
    let d = visible(&state, &auth.0, &id).await?;
    let now = state.clock.now();
    let refuse = |why: String| {
        let state = state.clone();
        let (who, consumer, id) = (auth.0.name.clone(), req.consumer.clone(), id.clone());
        async move {
            tracing::warn!(decision = %id, %consumer, %why, "a receipt was refused");
            let data = serde_json::json!({"decision_id": id, "consumer": consumer, "reason": why});
            if let Err(e) = state.store.record_event("receipt.refused", &who, state.clock.now(), data).await {
                tracing::warn!(error = %e, "could not record the refused receipt");
            }
            ApiError::ReceiptInvalid(why)
        }
    };
    if req.receipt.decision_id != d.id {
        return Err(refuse(format!("the receipt is for decision {}, not {id}", req.receipt.decision_id)).await);
    }
    if let Err(e) = arbiter_receipt::authorises(&req.receipt, &state.receipts.public_keys(), now, &req.args) {
        return Err(refuse(e.to_string()).await);
    }
    // signed by us, so its fields are ours; they must still name this decision's final call
    let matches = d.final_verdict.as_ref().is_some_and(|f| {
        let action = f.action.as_ref().unwrap_or(&d.action);
        f.verdict.as_str() == req.receipt.verdict
            && action.name == req.receipt.action
            && arbiter_core::canonical::args_digest(&action.args) == req.receipt.args_digest
    });
    if !matches {
        return Err(refuse("the receipt does not match the decision's final verdict".into()).await);
    }
    let digest = arbiter_core::canonical::args_digest(&req.args);
    let used = state.store.consume_receipt(&id, &req.consumer, &digest, now).await?;
    if !used.first && used.consumer != req.consumer {
        let why = format!("the receipt of {id} was already used by {} at {}", used.consumer, used.at);
        tracing::warn!(decision = %id, consumer = %req.consumer, "a replayed receipt was refused");
        let data = serde_json::json!({"decision_id": id, "consumer": req.consumer, "reason": why});
        state.store.record_event("receipt.refused", &auth.0.name, now, data).await?;
        return Err(ApiError::ReceiptConsumed(why));
    }
    Ok(Json(used))
}
