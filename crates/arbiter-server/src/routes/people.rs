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

/// Everyone in the directory, by name.
pub async fn list(Scope(state): Scope, auth: Auth) -> Result<Json<Vec<Person>>, ApiError> {
    server_admin(&auth, "listing people")?;
    Ok(Json(state.root.people().await?.into_iter().map(Person::without_id_token).collect()))
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
    if let Some(u) = user {
        arbiter_core::identity::check_slack_member_id(u).map_err(|why| ApiError::invalid("slack_user", why))?;
    }
    state.root.link_slack(&name, user).await?;
    tracing::info!(person = %name, slack_user = ?user, by = %auth.0.name, "linked a Slack account");
    let person =
        state.root.person(&name).await?.ok_or_else(|| ApiError::internal_msg("the person just linked is gone"))?;
    Ok(Json(person.without_id_token()))
}
