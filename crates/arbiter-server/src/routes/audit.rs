//! `GET /v1/audit/verify`, `GET /v1/audit/events` (admin only).

use crate::AppState;
use crate::error::ApiError;
use crate::extract::Auth;
use crate::extract::Query;
use arbiter_core::Role;
use arbiter_store::Event;
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The result of verifying the audit log.
#[derive(Debug, Serialize)]
pub struct Verification {
    /// True when the chain, every decision row and every case projection check out.
    pub ok: bool,
    /// What was checked, and the first problem found.
    #[serde(flatten)]
    pub report: arbiter_store::AuditReport,
}

/// Query of `GET /v1/audit/verify`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyQuery {
    /// `SEQ:HASH` of an event recorded earlier (`arbiter audit anchor`): the chain must still extend it.
    pub anchor: Option<String>,
}

/// Walk the hash chain, check every decision row against it, and replay every case.
pub async fn verify(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Query(q): Query<VerifyQuery>,
) -> Result<Json<Verification>, ApiError> {
    auth.require(&[Role::Admin], "verifying the audit log")?;
    let anchor = q.anchor.map(|a| a.parse().map_err(|e: String| ApiError::invalid("anchor", e))).transpose()?;
    let report = state.store.verify_audit(anchor).await?;
    Ok(Json(Verification { ok: report.problem.is_none(), report }))
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
