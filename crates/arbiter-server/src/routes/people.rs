//! `GET /v1/people` and `PUT /v1/people/{name}/slack`: the server-wide people
//! directory (server admins).

use crate::error::ApiError;
use crate::extract::{Auth, JsonBody, Path, Scope};
use arbiter_api::people::LinkSlack;
use arbiter_core::Person;
use axum::Json;

fn server_admin(auth: &Auth, what: &str) -> Result<(), ApiError> {
    if auth.0.is_server_admin() {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "{what} needs a server admin (an admin key of the default project): the people directory is server-wide"
        )))
    }
}

/// A person as served: never their ID token.
fn served(mut p: Person) -> Person {
    if let Some(i) = &mut p.identity {
        i.id_token = None;
    }
    p
}

/// Everyone in the directory, by name.
pub async fn list(Scope(state): Scope, auth: Auth) -> Result<Json<Vec<Person>>, ApiError> {
    server_admin(&auth, "listing people")?;
    Ok(Json(state.root.people().await?.into_iter().map(served).collect()))
}

/// Link (or unlink) a person's Slack account.
pub async fn link_slack(
    Scope(state): Scope,
    auth: Auth,
    Path(name): Path<String>,
    JsonBody(req): JsonBody<LinkSlack>,
) -> Result<Json<Person>, ApiError> {
    server_admin(&auth, "linking Slack accounts")?;
    crate::app::keys::validate_key_fields(&name, &Default::default())
        .map_err(|_| ApiError::invalid("name", "a person's name: 1-64 letters, digits, `_`, `-`, `.` or `@`"))?;
    let user = req.slack_user.as_deref().map(str::trim).filter(|u| !u.is_empty());
    if let Some(u) = user
        && !(u.len() <= 32 && u.starts_with(['U', 'W']) && u.bytes().all(|b| b.is_ascii_alphanumeric()))
    {
        return Err(ApiError::invalid(
            "slack_user",
            "a Slack member id such as U0123ABCD (Slack profile → ⋮ → Copy member ID), not a name or an email",
        ));
    }
    state.root.link_slack(&name, user).await?;
    tracing::info!(person = %name, slack_user = ?user, by = %auth.0.name, "linked a Slack account");
    let person =
        state.root.person(&name).await?.ok_or_else(|| ApiError::internal_msg("the person just linked is gone"))?;
    Ok(Json(served(person)))
}
