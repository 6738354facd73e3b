//! Review cases: `POST /v1/reviews` (open, or promote a case or decision),
//! `GET /v1/reviews/{id}`, stage entries, interventions, close and reopen.

use super::cases::WORKERS;
use crate::error::ApiError;
use crate::extract::Path;
use crate::extract::{Auth, JsonBody};
use crate::{AppState, app};
use arbiter_core::review::{InterventionStatus, ReviewSource, StageRecord};
use arbiter_core::{Case, Severity};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;

/// The body of `POST /v1/reviews`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenReview {
    /// One line saying what went wrong.
    pub title: String,
    /// More detail.
    #[serde(default)]
    pub description: String,
    /// `manual` (default), `user_report` or `drift_alarm`; promotions set it themselves.
    #[serde(default)]
    pub source: Option<ReviewSource>,
    /// Promote this approval case (its decision and trace come along).
    #[serde(default)]
    pub from_case: Option<String>,
    /// Decisions the review is about.
    #[serde(default)]
    pub decision_ids: Vec<String>,
    /// Traces the review is about.
    #[serde(default)]
    pub trace_ids: Vec<String>,
    /// Role tags that work the review (default: engineering, product, data_science, ux).
    #[serde(default)]
    pub reviewers: Option<Vec<String>>,
    /// How bad it looks at first sight.
    #[serde(default)]
    pub severity: Option<Severity>,
    /// Evidence to attach (statistics, sample decisions).
    #[serde(default)]
    pub evidence: Option<Value>,
}

/// Open a review case (directly, or promoted from a case or decisions).
pub async fn open(
    State(state): State<Arc<AppState>>,
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
pub async fn get(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<ReviewView>, ApiError> {
    auth.require(WORKERS, "reading reviews")?;
    Ok(Json(app::reviews::view(&state, &id).await?))
}

/// The body of `POST /v1/reviews/{id}/stages`: the stage record's fields plus these.
#[derive(Debug, Deserialize)]
pub struct StageRequest {
    /// The perspective of the author (one of their role tags).
    pub role: String,
    /// Why the author concludes what the record says.
    pub rationale: String,
    /// `stage` and the stage's fields.
    #[serde(flatten)]
    pub record: StageRecord,
}

/// Record a stage entry.
pub async fn stage(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<StageRequest>,
) -> Result<(StatusCode, Json<Case>), ApiError> {
    let who = auth.require(WORKERS, "recording review stages")?;
    let case = app::reviews::record_stage(&state, who, &id, req.role, &req.rationale, req.record).await?;
    Ok((StatusCode::CREATED, Json(case)))
}

/// The body of `POST /v1/reviews/{id}/interventions/{index}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InterventionUpdate {
    /// proposed, in_progress, done or verified.
    pub status: InterventionStatus,
    /// How it was done or verified.
    #[serde(default)]
    pub note: Option<String>,
}

/// Move an intervention along.
pub async fn intervention(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path((id, index)): Path<(String, usize)>,
    JsonBody(req): JsonBody<InterventionUpdate>,
) -> Result<Json<Case>, ApiError> {
    let who = auth.require(WORKERS, "updating interventions")?;
    Ok(Json(app::reviews::update_intervention(&state, who, &id, index, req.status, req.note).await?))
}

/// The body of `POST /v1/reviews/{id}/close` and `/reopen`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloseRequest {
    /// Closing remark, or why it is reopened.
    pub reason: String,
}

/// Close a review: every stage has an entry and there is an intervention or a recorded decision that none is needed.
pub async fn close(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<CloseRequest>,
) -> Result<Json<Case>, ApiError> {
    let who = auth.require(WORKERS, "closing reviews")?;
    Ok(Json(app::reviews::close(&state, who, &id, &req.reason).await?))
}

/// Reopen a closed review.
pub async fn reopen(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<CloseRequest>,
) -> Result<Json<Case>, ApiError> {
    let who = auth.require(WORKERS, "reopening reviews")?;
    Ok(Json(app::reviews::reopen(&state, who, &id, &req.reason).await?))
}
