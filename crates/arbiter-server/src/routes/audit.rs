//! `GET /v1/audit/verify`, `GET /v1/audit/events` (admin only).

use crate::AppState;
use crate::error::ApiError;
use crate::extract::Auth;
use arbiter_core::Role;
use arbiter_store::Event;
use axum::Json;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The result of verifying the audit log.
#[derive(Debug, Serialize)]
pub struct Verification {
    /// True when the chain and every case projection check out.
    pub ok: bool,
    /// The first event whose hash does not verify.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_bad_event: Option<u64>,
    /// The first case whose row differs from the replay of its events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_bad_case: Option<String>,
    /// What is wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// Walk the hash chain and replay every case.
pub async fn verify(State(state): State<Arc<AppState>>, auth: Auth) -> Result<Json<Verification>, ApiError> {
    auth.require(&[Role::Admin], "verifying the audit log")?;
    if let Some((seq, why)) = state.store.verify_events().await? {
        return Ok(Json(Verification {
            ok: false,
            first_bad_event: Some(seq),
            first_bad_case: None,
            problem: Some(why),
        }));
    }
    if let Some((id, why)) = state.store.verify_projections().await? {
        return Ok(Json(Verification {
            ok: false,
            first_bad_event: None,
            first_bad_case: Some(id),
            problem: Some(why),
        }));
    }
    Ok(Json(Verification { ok: true, first_bad_event: None, first_bad_case: None, problem: None }))
}

/// Query of `GET /v1/audit/events`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Events after this sequence number (0 for the start).
    #[serde(default)]
    pub after: u64,
    /// At most this many (default 1000, at most 10000).
    pub limit: Option<usize>,
}

/// A page of the audit log, for export.
pub async fn events(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Query(q): Query<EventsQuery>,
) -> Result<Json<Vec<Event>>, ApiError> {
    auth.require(&[Role::Admin], "reading the audit log")?;
    Ok(Json(state.store.events(q.after, q.limit.unwrap_or(1000).clamp(1, 10_000)).await?))
}
