//! `GET|POST /v1/projects`, and people's roles in a project:
//! `GET|POST /v1/projects/{id}/members`, `DELETE /v1/projects/{id}/members/{member}`.

use crate::error::ApiError;
use crate::extract::{Auth, JsonBody, Path, Scope};
use arbiter_api::projects::{CreateProject, GrantMembership};
use arbiter_core::{Membership, Project, ProjectId};
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
    auth.require(&[arbiter_core::Role::Reviewer, arbiter_core::Role::Admin], "listing projects")?;
    // the key as it is in its own project, whichever project this request acts in
    let (home, _) = state.keys.active_by_id(state.root.as_ref(), &auth.0.key_id, state.clock.now()).await?;
    Ok(Json(crate::app::projects::visible_projects(&state, &home).await?))
}

/// The project `id` of a members route, as the caller may manage it.
async fn target(state: &crate::AppState, auth: &Auth, id: &str) -> Result<std::sync::Arc<crate::AppState>, ApiError> {
    let id = ProjectId::parse(id).map_err(|why| ApiError::invalid("id", why))?;
    crate::app::projects::may_manage_members(&auth.0, &id)?;
    state.in_project(&id).await
}

/// The people with a role in project `id` (its admins and server admins).
pub async fn members(
    Scope(state): Scope,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Vec<Membership>>, ApiError> {
    let project = target(&state, &auth, &id).await?;
    Ok(Json(project.store.members().await?))
}

/// Grant (or change) a person's role in project `id`.
pub async fn grant(
    Scope(state): Scope,
    auth: Auth,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<GrantMembership>,
) -> Result<Json<Membership>, ApiError> {
    let project = target(&state, &auth, &id).await?;
    let home = ProjectId::parse(&req.home).map_err(|why| ApiError::invalid("home", why))?;
    let m = crate::app::projects::grant(&project, &auth.0, &req.principal, &home, req.role, req.tags).await?;
    Ok(Json(m))
}

/// Take a person's role in project `id` away (`member` is `principal@home`).
pub async fn revoke(
    Scope(state): Scope,
    auth: Auth,
    Path((id, member)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let project = target(&state, &auth, &id).await?;
    crate::app::projects::revoke(&project, &auth.0, &member).await?;
    Ok(StatusCode::NO_CONTENT)
}
