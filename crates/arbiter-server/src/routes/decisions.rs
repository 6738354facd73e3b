//! `POST /v1/decisions`, `GET /v1/decisions/{id}?wait=`, `POST /v1/decisions/{id}/outcome`.

use crate::AppState;
use crate::error::ApiError;
use crate::extract::Scope;
use crate::extract::{Auth, JsonBody};
use crate::extract::{Path, Query};
use arbiter_api::decisions::{OutcomeRequest, WaitQuery};
use arbiter_core::{Decision, DecisionStatus, HumanDuration, Principal, Role};
use arbiter_store::Inserted;
use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::time::Duration;

pub use crate::app::decisions::DecisionRequest;

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let s = v.to_str().map_err(|_| ApiError::invalid("Idempotency-Key", "must be printable ASCII"))?.trim();
    if s.is_empty() || s.len() > 255 || !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::invalid("Idempotency-Key", "must be 1 to 255 printable ASCII characters without spaces"));
    }
    Ok(Some(s.to_string()))
}

/// Propose an action; the decision is durably stored before the answer.
pub async fn propose(
    Scope(state): Scope,
    auth: Auth,
    headers: HeaderMap,
    JsonBody(req): JsonBody<DecisionRequest>,
) -> Result<Response, ApiError> {
    let agent = auth.require(&[Role::Agent, Role::Admin], "proposing actions")?.clone();
    let idem = idempotency_key(&headers)?;
    // W3C trace context: the decision joins the agent's trace
    let parent =
        headers.get("traceparent").and_then(|v| v.to_str().ok()).and_then(crate::telemetry::TraceParent::parse);
    let mut req = req;
    if let (Some(p), None) = (&parent, &req.trace_id) {
        req.trace_id = Some(p.trace_id.clone());
    }
    let (status, decision, replayed) = match crate::app::decisions::propose(&state, &agent, req, idem).await? {
        Inserted::Created(d) => {
            state.telemetry.decision(&d, parent.as_ref(), state.clock.now());
            if d.final_verdict.is_some() {
                state.telemetry.finalized(&d);
            }
            (StatusCode::CREATED, d, false)
        }
        Inserted::Existing(d) => (StatusCode::OK, d, true),
    };
    let mut resp = (status, Json(state.served(decision))).into_response();
    if replayed {
        resp.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(resp)
}

fn parse_wait(text: &str, max: Duration) -> Result<Duration, ApiError> {
    let d = match text.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => Duration::from_secs(
            text.parse::<HumanDuration>().map_err(|e| ApiError::invalid("wait", e.to_string()))?.as_secs(),
        ),
    };
    Ok(d.min(max))
}

/// Load a decision the caller may see; agents see only their own.
pub(super) async fn visible(state: &AppState, who: &Principal, id: &str) -> Result<Decision, ApiError> {
    let not_found = || ApiError::NotFound(format!("decision {id} not found"));
    if id.len() > 64 {
        return Err(not_found());
    }
    let d = state.store.decision(id).await?.ok_or_else(not_found)?;
    if who.role == Role::Agent && d.agent != who.name {
        return Err(not_found());
    }
    Ok(d)
}

/// Read a decision, optionally long-polling until it is final.
pub async fn get(
    Scope(state): Scope,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<WaitQuery>,
) -> Result<Json<Decision>, ApiError> {
    let wait = q.wait.as_deref().map(|w| parse_wait(w, state.config.max_wait)).transpose()?.unwrap_or_default();
    let d = visible(&state, &auth.0, &id).await?;
    if d.status == DecisionStatus::Final || wait.is_zero() {
        return Ok(Json(state.served(d)));
    }
    state.metrics.waiting_agents.inc();
    let result = long_poll(&state, &auth.0, &id, wait).await;
    state.metrics.waiting_agents.dec();
    result.map(|d| Json(state.served(d)))
}

async fn long_poll(state: &AppState, who: &Principal, id: &str, wait: Duration) -> Result<Decision, ApiError> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut stopping = state.stopping();
    let waiter = state.waiters.register(id);
    loop {
        // Arm the wake-up before reading, so a finalisation between the read
        // and the wait is not missed.
        let notified = waiter.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let d = visible(state, who, id).await?;
        if d.status == DecisionStatus::Final || tokio::time::Instant::now() >= deadline || *stopping.borrow() {
            return Ok(d);
        }
        let recheck = tokio::time::Instant::now() + state.config.recheck_interval;
        tokio::select! {
            _ = notified => {}
            _ = tokio::time::sleep_until(deadline.min(recheck)) => {}
            _ = stopping.changed() => {}
        }
    }
}

/// Record the ground truth about a decision.
pub async fn outcome(
    Scope(state): Scope,
    auth: Auth,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<OutcomeRequest>,
) -> Result<Json<Decision>, ApiError> {
    visible(&state, &auth.0, &id).await?;
    if req.cost.is_some_and(|c| !c.is_finite()) {
        return Err(ApiError::invalid("cost", "must be a finite number"));
    }
    Ok(Json(state.served(crate::app::decisions::record_outcome(&state, &auth.0, &id, req).await?)))
}

/// The proposing agent (or an admin) withdraws a pending decision: its case
/// ends and the decision is final, denied, settled by `withdrawn`. A decision
/// already final is returned as it is.
pub async fn withdraw(
    Scope(state): Scope,
    auth: Auth,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<arbiter_api::decisions::WithdrawRequest>,
) -> Result<Json<Decision>, ApiError> {
    auth.require(&[Role::Agent, Role::Admin], "withdrawing proposals")?;
    if req.reason.trim().is_empty() || req.reason.len() > 2000 {
        return Err(ApiError::invalid("reason", "say why, in 1 to 2000 characters"));
    }
    let d = visible(&state, &auth.0, &id).await?;
    let d = crate::app::cases::withdraw(&state, &auth.0, d, &req.reason).await?;
    Ok(Json(state.served(d)))
}

/// Record what the tool returned when the allowed action ran (the agent that
/// proposed it, or an admin): kept on the decision, size-bounded, as evidence.
pub async fn tool_result(
    Scope(state): Scope,
    auth: Auth,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<arbiter_api::decisions::ToolResultRequest>,
) -> Result<Json<Decision>, ApiError> {
    auth.require(&[Role::Agent, Role::Admin], "recording tool results")?;
    let d = visible(&state, &auth.0, &id).await?;
    if d.final_verdict.as_ref().is_none_or(|f| f.verdict != arbiter_core::Verdict::Allow) {
        return Err(ApiError::Conflict(format!(
            "decision {id} is not allowed (yet): a tool result belongs to an action that ran"
        )));
    }
    let result = arbiter_core::ToolResult::bounded(req.content, req.is_error, &auth.0.name, state.clock.now());
    Ok(Json(state.served(state.store.record_tool_result(&id, result).await?)))
}
