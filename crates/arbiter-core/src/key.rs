//! Who is calling: API key roles and the authenticated principal.

use crate::time::Timestamp;
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
    /// The project the key belongs to.
    #[serde(default)]
    pub project: crate::ProjectId,
}

impl Principal {
    /// Whether this is a server-wide admin: an admin key of the default
    /// project, who manages projects and may act in any of them.
    pub fn is_server_admin(&self) -> bool {
        self.role == Role::Admin && self.project.is_default()
    }
}

/// A stored API key (the secret itself is never stored, only its digest).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// Public id, the middle part of the key.
    pub id: String,
    /// Name; for agents the agent's name.
    pub name: String,
    /// What the key may do.
    pub role: Role,
    /// Reviewer role tags.
    pub tags: BTreeSet<String>,
    /// SHA-256 digest of the whole key.
    #[serde(skip)]
    pub digest: Vec<u8>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
    /// When it stops working on its own (rotation, short-lived keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    /// Its own proposal rate limit, instead of its role's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<crate::rate::RateLimit>,
    /// The project it belongs to: an agent key acts only there.
    #[serde(default)]
    pub project: crate::ProjectId,
}

impl KeyRecord {
    /// Who calls with this key: its name, role, tags, rate limit and project.
    pub fn principal(&self) -> Principal {
        Principal {
            key_id: self.id.clone(),
            name: self.name.clone(),
            role: self.role,
            tags: self.tags.clone(),
            rate_limit: self.rate_limit,
            project: self.project.clone(),
        }
    }

    /// Why the key does not work at `now` (revoked or expired), if it does not.
    pub fn inactive_at(&self, now: Timestamp) -> Option<String> {
        if let Some(t) = self.revoked_at {
            return Some(format!("this API key was revoked at {t}"));
        }
        match self.expires_at {
            Some(t) if t <= now => Some(format!("this API key expired at {t}; ask an admin for a new one")),
            _ => None,
        }
    }
}

/// A signed-in console session, stored so that signing out (or revoking the
/// key) ends it on every replica at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsoleSession {
    /// Random id, carried (signed) in the cookie.
    pub id: String,
    /// The key that signed in (empty for a single sign-on session).
    pub key_id: String,
    /// The person signed in by single sign-on, with the roles their groups
    /// gave them at sign-in (`None` for a key's session).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<crate::identity::Identity>,
    /// When the key was created.
    pub created_at: Timestamp,
    /// When it ends on its own.
    pub expires_at: Timestamp,
    /// When it was ended (signed out).
    pub revoked_at: Option<Timestamp>,
}
