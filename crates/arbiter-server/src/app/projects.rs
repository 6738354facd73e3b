//! Projects as operations: create one (server admins), list the ones a
//! caller may act in. The API and the CLI call these.

use crate::error::ApiError;
use arbiter_core::{Membership, Principal, Project, ProjectId, Timestamp};
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
    // its log starts empty: Slack, when it routes this project, brings every event from the first
    store.set_setting(&crate::slack::cursor_name(&id), "0").await?;
    tracing::info!(project = %id, by, "created a project");
    Ok(project)
}

/// Grant (or change) `principal` of project `home` a role in project
/// `state`'s project: `by` must be a server admin or an admin of that
/// project.
pub async fn grant(
    state: &crate::AppState,
    by: &Principal,
    principal: &str,
    home: &ProjectId,
    role: arbiter_core::Role,
    tags: std::collections::BTreeSet<String>,
) -> Result<Membership, ApiError> {
    may_manage_members(by, state.project())?;
    grant_in(state.store.as_ref(), &by.name, principal, home, role, tags, state.clock.now()).await
}

/// Grant in `project`'s store handle as `by` (the CLI, on the host, is
/// trusted as a server admin): the person must have a reviewer or admin key
/// in `home`, another project. Recorded in the project's chain.
pub async fn grant_in(
    project: &dyn Store,
    by: &str,
    principal: &str,
    home: &ProjectId,
    role: arbiter_core::Role,
    tags: std::collections::BTreeSet<String>,
    now: Timestamp,
) -> Result<Membership, ApiError> {
    if role == arbiter_core::Role::Agent {
        return Err(ApiError::invalid("role", "a membership is a person's role: reviewer or admin"));
    }
    if home == project.project() {
        return Err(ApiError::invalid(
            "home",
            "a person has their key's role in their own project; grant roles in others",
        ));
    }
    crate::app::keys::validate_key_fields(principal, &tags)?;
    if !project.projects().await?.iter().any(|p| &p.id == home) {
        return Err(ApiError::invalid("home", format!("there is no project `{home}`")));
    }
    let keys = project.for_project(home).keys().await?;
    if !keys.iter().any(|k| k.name == principal && k.role != arbiter_core::Role::Agent) {
        return Err(ApiError::invalid(
            "principal",
            format!("project `{home}` has no reviewer or admin key named `{principal}`"),
        ));
    }
    let m = Membership {
        project: project.project().clone(),
        home: home.clone(),
        principal: principal.to_string(),
        role,
        tags,
        created_at: now,
        created_by: by.to_string(),
    };
    project.grant_membership(m.clone()).await?;
    let data = serde_json::json!({"member": m.member_id(), "role": m.role, "tags": m.tags});
    project.record_event("membership.granted", by, now, data).await?;
    Ok(m)
}

/// Take a person's role in project `state`'s project away.
pub async fn revoke(state: &crate::AppState, by: &Principal, member: &str) -> Result<(), ApiError> {
    may_manage_members(by, state.project())?;
    revoke_in(state.store.as_ref(), &by.name, member, state.clock.now()).await
}

/// Revoke in `project`'s store handle as `by` (`member` is `principal@home`).
pub async fn revoke_in(project: &dyn Store, by: &str, member: &str, now: Timestamp) -> Result<(), ApiError> {
    let (principal, home) = Membership::parse_member_id(member).map_err(|why| ApiError::invalid("member", why))?;
    if !project.revoke_membership(&home, &principal).await? {
        return Err(ApiError::NotFound(format!("{member} has no role in project `{}`", project.project())));
    }
    project.record_event("membership.revoked", by, now, serde_json::json!({"member": member})).await?;
    Ok(())
}

/// People's roles are managed by server admins and by the project's admins.
pub fn may_manage_members(by: &Principal, project: &ProjectId) -> Result<(), ApiError> {
    if by.is_server_admin() || (by.role == arbiter_core::Role::Admin && &by.project == project) {
        return Ok(());
    }
    Err(ApiError::Forbidden(format!(
        "managing who has a role in project `{project}` needs a server admin or an admin of `{project}`"
    )))
}

/// The projects `who` (a key's principal, in its own project) may act in:
/// all of them for a server admin, else the key's own and those it has a role in.
pub async fn visible_projects(state: &crate::AppState, who: &Principal) -> Result<Vec<Project>, ApiError> {
    let ids = crate::extract::projects_of(state, who).await?;
    Ok(state.root.projects().await?.into_iter().filter(|p| ids.contains(&p.id)).collect())
}
