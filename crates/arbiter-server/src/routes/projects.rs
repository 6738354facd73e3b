//! `GET|POST /v1/projects`.

use crate::error::ApiError;
use crate::extract::{Auth, JsonBody, Scope};
use arbiter_api::projects::CreateProject;
use arbiter_core::Project;
use axum::Json;
use axum::http::StatusCode;

/// Create a project (server admins).
pub async fn create(
    Scope(state): Scope,
    auth: Auth,
    JsonBody(req): JsonBody<CreateProject>,
) -> Result<(StatusCode, Json<Project>), ApiError> {
    let p = crate::app::projects::create_project(state.root.as_ref(), &auth.0, &req.id, req.name, state.clock.now())
        .await?;
    Ok((StatusCode::CREATED, Json(p)))
}

/// The projects the caller may act in.
pub async fn list(Scope(state): Scope, auth: Auth) -> Result<Json<Vec<Project>>, ApiError> {
    Ok(Json(crate::app::projects::visible_projects(state.root.as_ref(), &auth.0).await?))
}
