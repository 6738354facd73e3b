//! Who is calling: API key roles and the authenticated principal.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

/// What an API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// An automated caller: proposes actions and reads its own decisions.
    Agent,
    /// A person who answers cases for the role tags on their key.
    Reviewer,
    /// Manages policies and keys; may do anything a reviewer may.
    Admin,
}

impl Role {
    /// The lowercase name used in the API and CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Reviewer => "reviewer",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "agent" => Ok(Role::Agent),
            "reviewer" => Ok(Role::Reviewer),
            "admin" => Ok(Role::Admin),
            other => Err(format!("unknown role `{other}` (expected agent, reviewer or admin)")),
        }
    }
}

/// The authenticated caller of one request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Principal {
    /// The key's id (public part of the key).
    pub key_id: String,
    /// The key's name; for agents, the agent's name.
    pub name: String,
    /// What the key may do.
    pub role: Role,
    /// Reviewer role tags such as `soc_analyst`.
    pub tags: BTreeSet<String>,
    /// The key's own proposal rate limit (its role's applies when `None`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<crate::rate::RateLimit>,
}
