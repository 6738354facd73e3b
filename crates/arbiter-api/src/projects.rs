//! Projects: several teams on one server.

use serde::{Deserialize, Serialize};

/// The body of `POST /v1/projects`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CreateProject {
    /// Its id: 1 to 40 lowercase letters, digits and `-` (in URLs, headers and metric labels).
    pub id: String,
    /// A name for people (defaults to the id).
    #[serde(default)]
    pub name: Option<String>,
}

/// The body of `POST /v1/projects/{id}/members`: a person's role in the project.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GrantMembership {
    /// The person: their key's name in `home`.
    pub principal: String,
    /// The project of the person's key.
    pub home: String,
    /// `reviewer` or `admin`.
    pub role: arbiter_core::Role,
    /// Reviewer role tags in this project.
    #[serde(default)]
    pub tags: std::collections::BTreeSet<String>,
}
