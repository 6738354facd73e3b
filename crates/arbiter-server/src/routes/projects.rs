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

/// The projects the caller may act in (people's keys; an agent key acts in its own and needs no list).
pub async fn list(Scope(state): Scope, auth: Auth) -> Result<Json<Vec<Project>>, ApiError> {
    let who = auth.require(&[arbiter_core::Role::Reviewer, arbiter_core::Role::Admin], "listing projects")?;
    Ok(Json(crate::app::projects::visible_projects(state.root.as_ref(), who).await?))
}
