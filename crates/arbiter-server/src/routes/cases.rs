//! Approval cases and the queue: `GET /v1/queue`, `GET /v1/cases[/{id}]`,
//! claim / release / reassign, the reviewer's decision, comments, the timeline
//! and the decision chain.

use crate::app;
use crate::error::ApiError;
use crate::extract::Scope;
use crate::extract::{Auth, JsonBody};
use crate::extract::{Path, Query};
use arbiter_api::cases::{
    CaseDecisionRequest, CaseDecisionResponse, ClaimRequest, CommentRequest, ListQuery, QueueView, ReassignRequest,
};
use arbiter_core::queue::{self};
use arbiter_core::{Case, Decision, Role};
use arbiter_store::Event;
use axum::Json;

/// Roles that work cases.
pub const WORKERS: &[Role] = &[Role::Reviewer, Role::Admin];

pub use crate::app::cases::load;

/// The open approval cases this reviewer may answer, most urgent first, with the reasons.
pub async fn queue(Scope(state): Scope, auth: Auth) -> Result<Json<QueueView>, ApiError> {
    let who = auth.require(WORKERS, "reading the queue")?;
    let now = state.clock.now();
    let cases = state.active_approval_cases().await?;
    let mine =
        cases.iter().filter(|c| queue::visible_to(c, &who.name, &who.key_id, &who.tags, who.role == Role::Admin, now));
    Ok(Json(QueueView { now, items: queue::top(mine, now, usize::MAX).1 }))
}

/// Cases, newest first.
pub async fn list(
    Scope(state): Scope,
    auth: Auth,
    uri: axum::http::Uri,
    Query(q): Query<ListQuery>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    auth.require(WORKERS, "listing cases")?;
    let page = app::cases::find(&state, q).await?;
    let mut r = Json(page.cases).into_response();
    if let Some(next) = page.next {
        // the same query, from the cursor on
        let kept: Vec<&str> =
            uri.query().unwrap_or("").split('&').filter(|p| !p.is_empty() && !p.starts_with("cursor=")).collect();
        let mut link = format!("</v1/cases?{}", kept.join("&"));
        if !kept.is_empty() {
            link.push('&');
        }
        link.push_str(&format!("cursor={next}>; rel=\"next\""));
        if let Ok(v) = axum::http::HeaderValue::from_str(&link) {
            r.headers_mut().insert(axum::http::header::LINK, v);
        }
    }
    Ok(r)
}

/// One case.
pub async fn get(Scope(state): Scope, auth: Auth, Path(id): Path<String>) -> Result<Json<Case>, ApiError> {
    auth.require(WORKERS, "reading cases")?;
    Ok(Json(load(&state, &id).await?))
}

/// A case's timeline: its events in order.
pub async fn events(Scope(state): Scope, auth: Auth, Path(id): Path<String>) -> Result<Json<Vec<Event>>, ApiError> {
    auth.require(WORKERS, "reading case events")?;
    load(&state, &id).await?;
    Ok(Json(state.store.case_events(&id).await?))
}

pub use crate::app::cases::chain_of;

/// `GET /v1/cases/{id}/chain`.
pub async fn chain(Scope(state): Scope, auth: Auth, Path(id): Path<String>) -> Result<Json<Vec<Decision>>, ApiError> {
    auth.require(WORKERS, "reading decision chains")?;
    let case = load(&state, &id).await?;
    Ok(Json(chain_of(&state, &case).await?))
}

/// Claim (or renew the claim on) a case.
pub async fn claim(
    Scope(state): Scope,
    auth: Auth,
    Path(id): Path<String>,
    body: Option<JsonBody<ClaimRequest>>,
) -> Result<Json<Case>, ApiError> {
    let who = auth.require(WORKERS, "claiming cases")?;
    let lease = body.and_then(|b| b.0.lease);
    Ok(Json(app::cases::claim(&state, who, &id, lease).await?))
}

/// Give the claim back.
pub async fn release(Scope(state): Scope, auth: Auth, Path(id): Path<String>) -> Result<Json<Case>, ApiError> {
    let who = auth.require(WORKERS, "releasing cases")?;
    Ok(Json(app::cases::release(&state, who, &id).await?))
}

/// An admin gives the case to another reviewer.
pub async fn reassign(
    Scope(state): Scope,
    auth: Auth,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<ReassignRequest>,
) -> Result<Json<Case>, ApiError> {
    let who = auth.require(&[Role::Admin], "reassigning cases")?;
    Ok(Json(app::cases::reassign(&state, who, &id, &req.key_id, req.lease).await?))
}

/// A reviewer answers an approval case (only the holder, if someone holds it).
pub async fn decide(
    Scope(state): Scope,
    auth: Auth,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<CaseDecisionRequest>,
) -> Result<Json<CaseDecisionResponse>, ApiError> {
    let who = auth.require(WORKERS, "deciding cases")?;
    let input = crate::app::cases::AnswerInput {
        choice: req.decision,
        rationale: req.rationale,
        args: req.args,
        failure_modes: req.failure_modes,
        via: None,
    };
    let update = crate::app::cases::answer(&state, who, &id, input).await?;
    Ok(Json(CaseDecisionResponse { case: update.case, decision: update.decision }))
}

/// A reviewer labels an audit case: was the allowed action right?
pub async fn label(
    Scope(state): Scope,
    auth: Auth,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<arbiter_api::cases::LabelRequest>,
) -> Result<Json<arbiter_api::cases::LabelResponse>, ApiError> {
    let who = auth.require(WORKERS, "labelling audits")?;
    Ok(Json(app::cases::label(&state, who, &id, req.correct, req.note).await?))
}

/// Comment on any case.
pub async fn comment(
    Scope(state): Scope,
    auth: Auth,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<CommentRequest>,
) -> Result<Json<Case>, ApiError> {
    let who = auth.require(WORKERS, "commenting")?;
    Ok(Json(app::cases::comment(&state, who, &id, req.role, &req.text).await?))
}
