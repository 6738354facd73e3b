//! Errors as clients receive them: `application/problem+json` (RFC 9457)
//! with a stable `code` per kind of error.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    /// `urn:arbiter:error:<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Stable: clients branch on it (see `docs/api.md`).
    pub code: String,
    /// A short summary of the kind.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong and what to do about it (for people; never parse it).
    pub detail: String,
    /// For `invalid_request` and `modification_denied`: the offending field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// For `invalid_policy`: every error in the document (line, column, field, message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<Value>,
    /// For `modification_denied`: the deny triggers that fired on the modified action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triggers: Option<Vec<String>>,
    /// For `wrong_role`: the roles the case's current tier accepts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub needed: Option<Vec<String>>,
    /// For `wrong_role`: the roles on the caller's key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub have: Option<Vec<String>>,
    /// For `policy_change_unconfirmed`: what the activation would change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impact: Option<Value>,
    /// For `policy_undoes_lessons`: the published lessons the version would undo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lessons: Option<Vec<crate::policy::UndoneLesson>>,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.detail)?;
        if let Some(field) = &self.field {
            write!(f, " (field `{field}`)")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problem {}
