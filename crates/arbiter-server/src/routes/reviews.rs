//! Review cases: `POST /v1/reviews` (open, or promote a case or decision),
//! `GET /v1/reviews/{id}`, stage entries, interventions, close and reopen.

use super::cases::WORKERS;
use crate::app;
use crate::error::ApiError;
use crate::extract::Path;
use crate::extract::Scope;
use crate::extract::{Auth, JsonBody};
use arbiter_api::reviews::{CloseRequest, InterventionUpdate, OpenReview, StageRequest};
use arbiter_core::Case;
use axum::Json;
use axum::http::StatusCode;

/// Open a review case (directly, or promoted from a case or decisions).
pub async fn open(
    Scope(state): Scope,
    auth: Auth,
    JsonBody(req): JsonBody<OpenReview>,
) -> Result<(StatusCode, Json<Case>), ApiError> {
    let who = auth.require(WORKERS, "opening reviews")?;
    let input = app::reviews::OpenReview {
        title: req.title,
        description: req.description,
        source: req.source,
        from_case: req.from_case,
        decision_ids: req.decision_ids,
        trace_ids: req.trace_ids,
        reviewers: req.reviewers,
        severity: req.severity,
        evidence: req.evidence,
    };
    Ok((StatusCode::CREATED, Json(app::reviews::open(&state, who, input).await?)))
}

pub use crate::app::reviews::ReviewView;

/// `GET /v1/reviews/{id}`.
pub async fn get(Scope(state): Scope, auth: Auth, Path(id): Path<String>) -> Result<Json<ReviewView>, ApiError> {
    auth.require(WORKERS, "reading reviews")?;
    Ok(Json(app::reviews::view(&state, &id).await?))
}

/// Record a stage entry.
pub async fn stage(
    Scope(state): Scope,
    auth: Auth,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<StageRequest>,
) -> Result<(StatusCode, Json<Case>), ApiError> {
    let who = auth.require(WORKERS, "recording review stages")?;
    let case = app::reviews::record_stage(&state, who, &id, req.role, &req.rationale, req.record).await?;
    Ok((StatusCode::CREATED, Json(case)))
}

/// Move an intervention along.
pub async fn intervention(
    Scope(state): Scope,
    auth: Auth,
    Path((id, index)): Path<(String, usize)>,
    JsonBody(req): JsonBody<InterventionUpdate>,
) -> Result<Json<Case>, ApiError> {
    let who = auth.require(WORKERS, "updating interventions")?;
    Ok(Json(
        app::reviews::update_intervention(&state, who, &id, index, req.status, req.note, req.policy_version).await?,
    ))
}

/// Close a review: every stage has an entry and there is an intervention or a recorded decision that none is needed.
pub async fn close(
    Scope(state): Scope,
    auth: Auth,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<CloseRequest>,
) -> Result<Json<Case>, ApiError> {
    let who = auth.require(WORKERS, "closing reviews")?;
    Ok(Json(app::reviews::close(&state, who, &id, &req.reason).await?))
}

/// Reopen a closed review.
pub async fn reopen(
    Scope(state): Scope,
    auth: Auth,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<CloseRequest>,
) -> Result<Json<Case>, ApiError> {
    let who = auth.require(WORKERS, "reopening reviews")?;
    Ok(Json(app::reviews::reopen(&state, who, &id, &req.reason).await?))
}
