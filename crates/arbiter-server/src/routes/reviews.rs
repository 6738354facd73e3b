//! Review cases: `POST /v1/reviews` (open, or promote a case or decision),
//! `GET /v1/reviews/{id}`, stage entries, interventions, close and reopen.

use super::cases::{WORKERS, chain_of, load, rationale};
use crate::error::ApiError;
use crate::extract::Path;
use crate::extract::{Auth, JsonBody};
use crate::{AppState, actor};
use arbiter_core::review::{InterventionStatus, Review, ReviewSource, StageRecord};
use arbiter_core::{Case, CaseCommand, CaseKind, Decision, Severity};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
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

fn ids_ok(field: &str, ids: &[String]) -> Result<(), ApiError> {
    if ids.len() > 200 || ids.iter().any(|i| i.is_empty() || i.len() > 256) {
        return Err(ApiError::invalid(field, "up to 200 ids of 1 to 256 characters"));
    }
    Ok(())
}

pub(crate) async fn require_decisions(state: &AppState, field: &str, ids: &[&str]) -> Result<Vec<Decision>, ApiError> {
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let d = state.store.decision(id).await?.ok_or_else(|| ApiError::invalid(field, format!("no decision {id}")))?;
        out.push(d);
    }
    Ok(out)
}

/// Open a review case (directly, or promoted from a case or decisions).
pub async fn open(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    JsonBody(req): JsonBody<OpenReview>,
) -> Result<(StatusCode, Json<Case>), ApiError> {
    let who = auth.require(WORKERS, "opening reviews")?.clone();
    let title = req.title.trim().to_string();
    if title.is_empty() || title.len() > 300 {
        return Err(ApiError::invalid("title", "must be 1 to 300 characters"));
    }
    if req.description.len() > 64 * 1024 {
        return Err(ApiError::invalid("description", "must be at most 64 KiB"));
    }
    ids_ok("decision_ids", &req.decision_ids)?;
    ids_ok("trace_ids", &req.trace_ids)?;
    let mut decision_ids = req.decision_ids.clone();
    let mut trace_ids = req.trace_ids.clone();
    let mut source = req.source.unwrap_or(ReviewSource::Manual);
    let (mut action_name, mut agent) = (String::new(), String::new());
    if let Some(cid) = &req.from_case {
        let from = load(&state, cid).await.map_err(|_| ApiError::invalid("from_case", format!("no case {cid}")))?;
        source = ReviewSource::Case;
        decision_ids.extend(from.decision_id.clone());
        trace_ids.extend(from.trace_id.clone());
        (action_name, agent) = (from.action_name.clone(), from.agent.clone());
    } else if !decision_ids.is_empty() && req.source.is_none() {
        source = ReviewSource::Decision;
    }
    let ids: Vec<&str> = decision_ids.iter().map(String::as_str).collect();
    let decisions = require_decisions(&state, "decision_ids", &ids).await?;
    if let Some(first) = decisions.first() {
        if action_name.is_empty() {
            (action_name, agent) = (first.action.name.clone(), first.agent.clone());
        }
        trace_ids.extend(decisions.iter().filter_map(|d| d.trace_id.clone()));
    }
    decision_ids.dedup();
    trace_ids.sort();
    trace_ids.dedup();
    let reviewers =
        req.reviewers.unwrap_or_else(|| ["engineering", "product", "data_science", "ux"].map(String::from).to_vec());
    if reviewers.is_empty() || reviewers.len() > 32 {
        return Err(ApiError::invalid("reviewers", "name 1 to 32 role tags"));
    }
    let now = state.clock.now();
    let mut review = Review::new(title, source);
    review.description = req.description;
    review.decision_ids = decision_ids;
    review.trace_ids = trace_ids;
    review.from_case = req.from_case;
    review.evidence = req.evidence.unwrap_or(Value::Null);
    let case = Case::new_review(
        uuid::Uuid::now_v7().to_string(),
        review,
        action_name,
        agent,
        req.severity.unwrap_or(Severity::Medium),
        reviewers.into_iter().collect(),
        now,
    );
    Ok((StatusCode::CREATED, Json(state.store.open_case(case, &who.name).await?)))
}

/// A review case with what it still needs and its decision chain.
#[derive(Debug, Serialize)]
pub struct ReviewView {
    /// The case (with its review record).
    pub case: Case,
    /// What is missing before it can close (empty: it can close).
    pub missing: Vec<String>,
    /// The decisions of its traces, in event-time order.
    pub chain: Vec<Decision>,
}

async fn load_review(state: &AppState, id: &str) -> Result<Case, ApiError> {
    let case = load(state, id).await?;
    if case.kind != CaseKind::Review {
        return Err(ApiError::NotFound(format!("case {id} is not a review case")));
    }
    Ok(case)
}

/// `GET /v1/reviews/{id}`.
pub async fn get(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<ReviewView>, ApiError> {
    auth.require(WORKERS, "reading reviews")?;
    let case = load_review(&state, &id).await?;
    let missing = case.review.as_ref().map(Review::missing).unwrap_or_default();
    let chain = chain_of(&state, &case).await?;
    Ok(Json(ReviewView { case, missing, chain }))
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
    let rationale = rationale(&state, "rationale", &req.rationale)?;
    load_review(&state, &id).await?;
    require_decisions(&state, "record", &req.record.referenced_decisions()).await?;
    let cmd = CaseCommand::RecordStage { by: actor(who), role: req.role, rationale, record: req.record };
    Ok((StatusCode::CREATED, Json(state.update_case(&id, cmd).await?.case)))
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
    if req.note.as_ref().is_some_and(|n| n.len() > 16 * 1024) {
        return Err(ApiError::invalid("note", "must be at most 16 KiB"));
    }
    load_review(&state, &id).await?;
    let cmd = CaseCommand::UpdateIntervention { by: actor(who), index, status: req.status, note: req.note };
    Ok(Json(state.update_case(&id, cmd).await?.case))
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
    let reason = rationale(&state, "reason", &req.reason)?;
    load_review(&state, &id).await?;
    Ok(Json(state.update_case(&id, CaseCommand::Close { by: actor(who), reason }).await?.case))
}

/// Reopen a closed review.
pub async fn reopen(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<CloseRequest>,
) -> Result<Json<Case>, ApiError> {
    let who = auth.require(WORKERS, "reopening reviews")?;
    let reason = rationale(&state, "reason", &req.reason)?;
    load_review(&state, &id).await?;
    Ok(Json(state.update_case(&id, CaseCommand::Reopen { by: actor(who), reason }).await?.case))
}
