//! Learning over HTTP: `/v1/lessons`,
//! `/v1/search`, `/v1/cases/{id}/insights`, `/v1/guidance`,
//! `/v1/datasets/reviewed`, `/v1/suggestions`, and the intervention backtest.

use super::cases::WORKERS;
use crate::app;
use crate::error::ApiError;
use crate::extract::Scope;
use crate::extract::{Auth, JsonBody, Path, Query};
use arbiter_api::learning::{
    AcceptedSuggestion, CaseInsights, CreateLesson, DatasetQuery, Guidance, GuidanceQuery, LessonListQuery, LessonView,
    RefreshSuggestions, SearchParams, SearchResults, SuggestionList, SuggestionQuery,
};
use arbiter_core::lesson::{Lesson, LessonPatch};
use arbiter_core::suggest::Suggestion;
use arbiter_core::{Case, Role};
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Who may read guidance: the agents it is for, and people.
const EVERYONE: &[Role] = &[Role::Agent, Role::Reviewer, Role::Admin];
const ADMINS: &[Role] = &[Role::Admin];

/// Lessons, most recently changed first.
pub async fn list(
    Scope(state): Scope,
    auth: Auth,
    Query(q): Query<LessonListQuery>,
) -> Result<Json<Vec<Lesson>>, ApiError> {
    auth.require(WORKERS, "reading lessons")?;
    Ok(Json(app::learning::list(&state, q).await?))
}

/// The lesson of a review that closed before lessons existed.
pub async fn create(
    Scope(state): Scope,
    auth: Auth,
    JsonBody(req): JsonBody<CreateLesson>,
) -> Result<(StatusCode, Json<Lesson>), ApiError> {
    let who = auth.require(WORKERS, "creating lessons")?;
    Ok((StatusCode::CREATED, Json(app::learning::create(&state, who, &req.review_id).await?)))
}

/// One lesson, its history and its recurrence.
pub async fn get(Scope(state): Scope, auth: Auth, Path(id): Path<String>) -> Result<Json<LessonView>, ApiError> {
    auth.require(WORKERS, "reading lessons")?;
    Ok(Json(app::learning::view(&state, &id).await?))
}

/// Edit a lesson (each change is an audit event).
pub async fn update(
    Scope(state): Scope,
    auth: Auth,
    Path(id): Path<String>,
    JsonBody(patch): JsonBody<LessonPatch>,
) -> Result<Json<Lesson>, ApiError> {
    let who = auth.require(WORKERS, "editing lessons")?;
    Ok(Json(app::learning::update(&state, who, &id, patch).await?))
}

/// Full-text search over lessons, review cases and reviewed decisions.
pub async fn search(
    Scope(state): Scope,
    auth: Auth,
    Query(p): Query<SearchParams>,
) -> Result<Json<SearchResults>, ApiError> {
    auth.require(WORKERS, "searching")?;
    Ok(Json(SearchResults { hits: app::learning::search(&state, p).await? }))
}

/// Similar past cases and lessons, and the blast radius, of an approval case.
pub async fn insights(Scope(state): Scope, auth: Auth, Path(id): Path<String>) -> Result<Json<CaseInsights>, ApiError> {
    auth.require(WORKERS, "reading case insights")?;
    Ok(Json(app::learning::insights(&state, &id).await?))
}

/// Guidance for an agent's prompt, from the published lessons.
pub async fn guidance(Scope(state): Scope, auth: Auth, Query(q): Query<GuidanceQuery>) -> Result<Response, ApiError> {
    auth.require(EVERYONE, "reading guidance")?;
    let text = match q.format.as_deref() {
        None | Some("json") => false,
        Some("text") => true,
        Some(_) => return Err(ApiError::invalid("format", "`json` or `text`")),
    };
    let g: Guidance = app::learning::guidance(&state, q.action).await?;
    Ok(if text {
        ([(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"))], g.prompt).into_response()
    } else {
        Json(g).into_response()
    })
}

/// Decisions people decided, as JSON Lines (`examples` or `chat`).
pub async fn dataset(Scope(state): Scope, auth: Auth, Query(q): Query<DatasetQuery>) -> Result<Response, ApiError> {
    auth.require(WORKERS, "exporting datasets")?;
    let lines = app::learning::dataset(&state, q).await?;
    let mut body = String::new();
    for l in lines {
        body.push_str(&l.to_string());
        body.push('\n');
    }
    Ok(([(header::CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"))], body).into_response())
}

/// Rule suggestions (open ones unless `all=true`).
pub async fn suggestions(
    Scope(state): Scope,
    auth: Auth,
    Query(q): Query<SuggestionQuery>,
) -> Result<Json<SuggestionList>, ApiError> {
    auth.require(WORKERS, "reading suggestions")?;
    let now = state.clock.now();
    let mut all = state.store.suggestions(1000).await?;
    if !q.all.unwrap_or(false) {
        all.retain(|s| s.is_open(now));
    }
    Ok(Json(SuggestionList { suggestions: all }))
}

/// Mine the review history again.
pub async fn refresh_suggestions(
    Scope(state): Scope,
    auth: Auth,
    body: Option<JsonBody<RefreshSuggestions>>,
) -> Result<Json<SuggestionList>, ApiError> {
    auth.require(ADMINS, "refreshing suggestions")?;
    let req = body.map(|b| b.0).unwrap_or_default();
    Ok(Json(SuggestionList {
        suggestions: app::learning::refresh_suggestions(&state, req.days, req.min_support).await?,
    }))
}

/// Accept a suggestion: a draft policy version carries its trigger.
pub async fn accept_suggestion(
    Scope(state): Scope,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<AcceptedSuggestion>, ApiError> {
    let who = auth.require(ADMINS, "accepting suggestions")?;
    Ok(Json(app::learning::accept_suggestion(&state, who, &id).await?))
}

/// Dismiss a suggestion.
pub async fn dismiss_suggestion(
    Scope(state): Scope,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Suggestion>, ApiError> {
    let who = auth.require(ADMINS, "dismissing suggestions")?;
    Ok(Json(app::learning::dismiss_suggestion(&state, who, &id).await?))
}

/// Backtest an intervention's policy version on the review's decisions.
pub async fn check_intervention(
    Scope(state): Scope,
    auth: Auth,
    Path((id, index)): Path<(String, usize)>,
) -> Result<Json<Case>, ApiError> {
    let who = auth.require(WORKERS, "checking interventions")?;
    Ok(Json(app::learning::check_intervention(&state, who, &id, index).await?))
}
