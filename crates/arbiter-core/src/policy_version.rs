//! Stored policy versions: immutable, named by the content hash of their source.

use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// A stored, immutable policy version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyVersion {
    /// Content hash (hex SHA-256 of `source`).
    pub hash: String,
    /// The policy's name.
    pub name: String,
    /// The YAML source.
    pub source: String,
    /// When it was first stored.
    pub created_at: Timestamp,
    /// Who stored it (key name).
    pub created_by: String,
}

/// A stored policy version without its source, for listings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyVersionSummary {
    /// Content hash.
    pub hash: String,
    /// The policy's name.
    pub name: String,
    /// When it was first stored.
    pub created_at: Timestamp,
    /// Who stored it.
    pub created_by: String,
    /// When it was most recently activated, if ever.
    pub last_activated_at: Option<Timestamp>,
    /// Whether it is the active version now.
    pub active: bool,
}
