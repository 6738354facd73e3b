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
