//! `GET /v1/audit/verify`, `GET /v1/audit/events` (admin only).

use crate::error::ApiError;
use crate::extract::Auth;
use crate::extract::Query;
use crate::extract::Scope;
use arbiter_api::audit::{EventsQuery, Verification, VerifyQuery};
use arbiter_core::Role;
use arbiter_store::Event;
use axum::Json;

/// Walk the hash chain, check every decision row against it, and replay every case.
pub async fn verify(
    Scope(state): Scope,
    auth: Auth,
    Query(q): Query<VerifyQuery>,
) -> Result<Json<Verification>, ApiError> {
    auth.require(&[Role::Admin], "verifying the audit log")?;
    let anchor = q.anchor.map(|a| a.parse().map_err(|e: String| ApiError::invalid("anchor", e))).transpose()?;
    let report = state.store.verify_audit(anchor).await?;
    Ok(Json(Verification { ok: report.problem.is_none(), report }))
}

/// A page of the audit log, for export.
pub async fn events(
    Scope(state): Scope,
    auth: Auth,
    Query(q): Query<EventsQuery>,
) -> Result<Json<Vec<Event>>, ApiError> {
    auth.require(&[Role::Admin], "reading the audit log")?;
    Ok(Json(state.store.events(q.after, q.limit.unwrap_or(1000).clamp(1, 10_000)).await?))
}
