//! `POST /v1/traces` (OTLP/HTTP) and `GET /v1/decisions/{id}/trace`.

use super::decisions::visible;
use crate::extract::Scope;
use crate::extract::{Auth, Path, read_body};
use crate::{ApiError, AppState, app};
use arbiter_core::Role;
use arbiter_core::trace::TraceTree;
use axum::Json;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// The header an admin (or ingest) key sends to store spans as one agent's.
pub const SENDER_HEADER: &str = "arbiter-agent";

/// Receive an OTLP/HTTP trace export (protobuf or JSON, gzip allowed). The
/// spans are the sender's: an agent's key sends its own; an admin key sends
/// its own, or an agent's when it names the agent in `Arbiter-Agent`.
pub async fn ingest(Scope(state): Scope, auth: Auth, req: Request) -> Result<Response, ApiError> {
    let (role, name) = {
        let who = auth.require(&[Role::Agent, Role::Admin], "sending traces")?;
        (who.role, who.name.clone())
    };
    let (content_type, encoding, named) = {
        let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        (header(header::CONTENT_TYPE.as_str()), header(header::CONTENT_ENCODING.as_str()), header(SENDER_HEADER))
    };
    let sender = match named.map(|s| s.trim().to_string()) {
        None => name,
        Some(agent) if agent.is_empty() => {
            return Err(ApiError::Invalid {
                field: "Arbiter-Agent".into(),
                message: "the header is empty: name the agent whose spans these are".into(),
            });
        }
        Some(agent) if role == Role::Admin || agent == name => agent,
        Some(agent) => {
            return Err(ApiError::Forbidden(format!(
                "an agent key sends its own spans only; `Arbiter-Agent: {agent}` needs an admin key"
            )));
        }
    };
    let body = read_body(req.into_body(), state.config.max_trace_bytes).await?;
    let (enc, answer, _) =
        app::traces::ingest(&state, &sender, &body, content_type.as_deref(), encoding.as_deref()).await?;
    let mut r = (StatusCode::OK, answer).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(enc.content_type()));
    Ok(r)
}

/// The agent's run around a decision: the span tree with the decision marked.
pub async fn decision_trace(
    Scope(state): Scope,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<TraceTree>, ApiError> {
    let d = visible(&state, &auth.0, &id).await?;
    match app::traces::decision_trace(&state, &d).await? {
        Some(t) => Ok(Json(t)),
        None => Err(ApiError::NotFound(match app::traces::tool_call_id(&d).or(d.trace_id.clone()) {
            Some(t) => format!("no span of decision {id}'s run has arrived yet (trace or tool call `{t}`)"),
            None => format!("decision {id} names no trace: send `trace_id` (or `context.tool_call_id`) with it"),
        })),
    }
}

/// A decision as a replay bundle (`arbiter replay export`): agents get their own decisions only.
pub async fn replay_bundle(
    Scope(state): Scope,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<arbiter_core::replay::Bundle>, ApiError> {
    let d = visible(&state, &auth.0, &id).await?;
    Ok(Json(app::traces::bundle(&state, d).await?))
}

/// Any stored trace as a tree (reviewers and admins): the runs a review names, Arbiter's own spans.
pub async fn trace(Scope(state): Scope, auth: Auth, Path(trace_id): Path<String>) -> Result<Json<TraceTree>, ApiError> {
    auth.require(&[Role::Reviewer, Role::Admin], "reading traces")?;
    if !arbiter_core::trace::valid_id(&trace_id, 32) {
        return Err(ApiError::NotFound(format!("`{trace_id}` is not a trace id (32 hex digits)")));
    }
    let spans = state.store.trace_spans(&trace_id, None, app::traces::MAX_TRACE_SPANS).await?;
    if spans.is_empty() {
        return Err(ApiError::NotFound(format!("no span of trace {trace_id} has arrived")));
    }
    Ok(Json(arbiter_core::trace::tree(&trace_id.to_ascii_lowercase(), &spans, None, None)))
}

/// Only the OTLP route, for a separate listener an OpenTelemetry exporter points at (port 4318 by convention).
pub fn otlp_router(state: Arc<AppState>) -> axum::Router {
    axum::Router::new()
        .route("/v1/traces", axum::routing::post(ingest))
        .fallback(super::ops::not_found)
        .with_state(state)
}
