//! Receipts as an operation: using one once. The receipt is checked
//! (signature, expiry, allow, the decision it names, the arguments about to
//! run) before its single use is recorded; every refusal is an audit event.

use crate::AppState;
use crate::error::ApiError;
use arbiter_api::receipts::ConsumeRequest;
use arbiter_core::{Decision, Principal};
use arbiter_store::Consumption;

/// Use the receipt of decision `d` (one `who` may see) for `req.consumer`.
/// The same consumer asking again gets the same answer (`first: false`);
/// any other consumer is refused (`receipt_consumed`).
pub async fn consume(
    state: &AppState,
    who: &Principal,
    d: Decision,
    req: ConsumeRequest,
) -> Result<Consumption, ApiError> {
    if req.consumer.trim().is_empty() || req.consumer.len() > 200 {
        return Err(ApiError::invalid("consumer", "the consumer's name, 1 to 200 characters"));
    }
    let id = d.id.clone();
    let now = state.clock.now();
    let refuse = |why: String| {
        let (who, consumer, id) = (who.name.clone(), req.consumer.clone(), id.clone());
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
        state.store.record_event("receipt.refused", &who.name, now, data).await?;
        return Err(ApiError::ReceiptConsumed(why));
    }
    Ok(used)
}
