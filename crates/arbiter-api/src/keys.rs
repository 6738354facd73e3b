//! API keys.

use arbiter_core::key::KeyRecord;
use arbiter_core::{HumanDuration, Role};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The body of `POST /v1/keys`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// Who the key is for; for agents, the agent's name.
    pub name: String,
    /// agent, reviewer or admin.
    pub role: Role,
    /// Reviewer role tags such as `soc_analyst`.
    #[serde(default)]
    pub tags: BTreeSet<String>,
    /// The key stops working after this long (`90d`, `12h`).
    #[serde(default)]
    pub expires_in: Option<HumanDuration>,
    /// The key's own proposal rate limit (`10/s`, `600/m:50`, `unlimited`) instead of its role's.
    #[serde(default)]
    pub rate_limit: Option<arbiter_core::rate::RateLimit>,
    /// The name belongs to an existing principal: this is a second key for the same person.
    #[serde(default)]
    pub same_principal: bool,
}

/// A created key: the only time the secret is shown.
#[derive(Debug, Serialize, Deserialize)]
pub struct CreatedKey {
    /// The full key. Store it now; Arbiter keeps only its digest.
    pub key: String,
    /// The stored record.
    #[serde(flatten)]
    pub record: KeyRecord,
    /// What the admin should know (a reviewer key whose tags match no reviewer role sees no cases).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// The body of `POST /v1/keys/{id}/rotate`.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RotateKey {
    /// How long the old key keeps working (default `7d`), so callers can switch without downtime.
    #[serde(default)]
    pub old_expires_in: Option<HumanDuration>,
}
