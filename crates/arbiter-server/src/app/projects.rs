//! Projects as operations: create one (server admins), list the ones a
//! caller may act in. The API and the CLI call these.

use crate::error::ApiError;
use arbiter_core::{Principal, Project, ProjectId, Timestamp};
use arbiter_store::Store;

/// Create project `id` (named `name`, or its id): server admins only. A
/// project starts empty: no policy (the server serves none in it until one
/// is activated there), no keys, its own audit chain.
pub async fn create_project(
    store: &dyn Store,
    who: &Principal,
    id: &str,
    name: Option<String>,
    now: Timestamp,
) -> Result<Project, ApiError> {
    if !who.is_server_admin() {
        return Err(ApiError::Forbidden(
            "creating projects needs a server admin: an admin key of the default project".into(),
        ));
    }
    create(store, id, name, &who.name, now).await
}

/// Create project `id` as `by` (the CLI, working on the store directly, is trusted as a server admin).
pub async fn create(
    store: &dyn Store,
    id: &str,
    name: Option<String>,
    by: &str,
    now: Timestamp,
) -> Result<Project, ApiError> {
    let id = ProjectId::parse(id).map_err(|why| ApiError::invalid("id", why))?;
    let name = name.map(|n| n.trim().to_string()).filter(|n| !n.is_empty()).unwrap_or_else(|| id.to_string());
    if name.chars().count() > 100 {
        return Err(ApiError::invalid("name", "use at most 100 characters"));
    }
    let project = Project { id: id.clone(), name, created_at: now, created_by: by.to_string() };
    if !store.create_project(project.clone()).await? {
        return Err(ApiError::Conflict(format!("a project `{id}` already exists")));
    }
    tracing::info!(project = %id, by, "created a project");
    Ok(project)
}

/// The projects `who` may act in: all of them for a server admin, else the key's own.
pub async fn visible_projects(store: &dyn Store, who: &Principal) -> Result<Vec<Project>, ApiError> {
    let all = store.projects().await?;
    Ok(if who.is_server_admin() { all } else { all.into_iter().filter(|p| p.id == who.project).collect() })
}
