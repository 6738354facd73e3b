//! Health, readiness, metrics, the OpenAPI document, and fallbacks.

use super::cases::WORKERS;
use crate::AppState;
use crate::error::ApiError;
use crate::extract::Scope;
use axum::extract::State;
use axum::http::{HeaderMap, Uri, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// The process is up.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// The server can answer decisions: the store responds and a policy is loaded.
pub async fn readyz(State(state): State<Arc<AppState>>) -> Result<&'static str, ApiError> {
    state
        .store
        .open_case_count(None)
        .await
        .map_err(|e| ApiError::Unavailable(format!("the store is not answering: {e}")))?;
    if state.policy().is_none() {
        return Err(ApiError::Unavailable("no policy is active".into()));
    }
    Ok("ready\n")
}

/// Prometheus metrics.
pub async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    if let Ok(projects) = state.all_projects().await {
        for p in projects {
            if let Ok(n) = p.store.open_case_count(None).await {
                let label = crate::metrics::ProjectLabel { project: p.project().to_string() };
                state.metrics.open_cases.get_or_create(&label).set(n as i64);
            }
        }
    }
    state.metrics.store_writes.set(state.store.write_stats());
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], state.metrics.render())
}

/// Move a manual clock (`arbiter serve --clock manual`; admins only).
pub async fn clock(
    State(state): State<Arc<AppState>>,
    auth: crate::extract::Auth,
    crate::extract::JsonBody(req): crate::extract::JsonBody<arbiter_api::drift::ClockRequest>,
) -> Result<axum::Json<arbiter_api::drift::ClockView>, ApiError> {
    let who = auth.require(&[arbiter_core::Role::Admin], "moving the server's clock")?;
    if !who.is_server_admin() {
        return Err(ApiError::Forbidden(
            "moving the server's clock moves it for every project: it needs an admin key of the default project".into(),
        ));
    }
    Ok(axum::Json(crate::app::clock::advance(&state, who, req).await?))
}

/// The OpenAPI document.
pub async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], crate::openapi::OPENAPI_JSON)
}

/// Unknown path: a page with navigation for a browser, problem+json for the
/// API (any path under `/v1`, or a client that does not ask for HTML).
pub async fn not_found(uri: Uri, headers: HeaderMap) -> Response {
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.split(',').any(|m| m.trim().starts_with("text/html")));
    if wants_html && !uri.path().starts_with("/v1/") {
        return crate::console::layout::not_found_page(uri.path());
    }
    ApiError::NotFound("no such endpoint; see /openapi.json".into()).into_response()
}

/// Known path, wrong method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed("this endpoint does not accept that method; see /openapi.json".into())
}

/// The latest drift evaluation (evaluated now if none ran yet).
pub async fn drift(
    Scope(state): Scope,
    auth: crate::extract::Auth,
) -> Result<axum::Json<arbiter_api::drift::DriftStatus>, ApiError> {
    auth.require(WORKERS, "reading drift statistics")?;
    match state.drift_status() {
        Some(s) => Ok(axum::Json(s)),
        None => Ok(axum::Json(crate::app::drift::status_now(&state).await?)),
    }
}

/// Drift alarm episodes, newest first (`open=true`: only the open ones).
pub async fn drift_episodes(
    Scope(state): Scope,
    auth: crate::extract::Auth,
    crate::extract::Query(q): crate::extract::Query<arbiter_api::drift::EpisodeQuery>,
) -> Result<axum::Json<arbiter_api::drift::EpisodeList>, ApiError> {
    auth.require(WORKERS, "reading drift episodes")?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let episodes = state.store.drift_episodes(q.open.unwrap_or(false), limit).await?;
    Ok(axum::Json(arbiter_api::drift::EpisodeList { episodes }))
}

/// One drift alarm episode.
pub async fn drift_episode(
    Scope(state): Scope,
    auth: crate::extract::Auth,
    crate::extract::Path(id): crate::extract::Path<String>,
) -> Result<axum::Json<arbiter_core::drift::episode::Episode>, ApiError> {
    auth.require(WORKERS, "reading drift episodes")?;
    let e = state.store.drift_episode(&id).await?.ok_or_else(|| ApiError::NotFound(format!("drift episode {id}")))?;
    Ok(axum::Json(e))
}

/// Acknowledge a drift episode with a reason; optionally snooze it or restart its class's reference.
pub async fn acknowledge_drift_episode(
    Scope(state): Scope,
    auth: crate::extract::Auth,
    crate::extract::Path(id): crate::extract::Path<String>,
    crate::extract::JsonBody(req): crate::extract::JsonBody<arbiter_api::drift::AcknowledgeRequest>,
) -> Result<axum::Json<arbiter_core::drift::episode::Episode>, ApiError> {
    let who = auth.require(WORKERS, "acknowledging drift episodes")?;
    Ok(axum::Json(crate::app::drift::acknowledge(&state, who, &id, req).await?))
}
