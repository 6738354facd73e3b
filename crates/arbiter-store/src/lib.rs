//! Arbiter's persistence: one [`Store`] trait, an SQLite backend (the embedded
//! default) and a conformance suite that every backend must pass.
//!
//! The interface speaks in domain types from `arbiter-core`; nothing SQLite
//! specific leaks through it, so a PostgreSQL backend can implement the same
//! trait and run the same [`conformance`] tests.

pub mod conformance;
mod events;
mod sqlite;

pub use events::{Event, GENESIS_HASH};
pub use sqlite::SqliteStore;

use arbiter_core::{Answer, AnswerError, Case, Decision, FinalVerdict, Outcome, Role, Timestamp};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// What went wrong in the store.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StoreError {
    /// The thing asked for does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The request conflicts with what is stored (e.g. an idempotency key reused for a different request).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A reviewer's answer was refused by the case rules.
    #[error(transparent)]
    Answer(#[from] AnswerError),
    /// The database failed; the message says how.
    #[error("database error: {0}")]
    Backend(String),
    /// Stored data could not be read back (corruption or a newer schema).
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    /// The store has shut down.
    #[error("the store is shut down")]
    Closed,
}

/// Result alias for store calls.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

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
}

/// A decision to store, with the case it opens (if escalated).
#[derive(Debug, Clone)]
pub struct NewDecision {
    /// The decision record.
    pub decision: Decision,
    /// Digest of the request, to detect an idempotency key reused for another request.
    pub request_digest: String,
    /// The approval case to open with it, for escalations.
    pub case: Option<Case>,
}

/// The result of storing a decision.
#[derive(Debug, Clone, PartialEq)]
pub enum Inserted {
    /// A new decision was stored.
    Created(Decision),
    /// The idempotency key was seen before; this is the decision stored then.
    Existing(Decision),
}

/// A reviewer's answer to record on a case.
#[derive(Debug, Clone)]
pub struct CaseAnswer {
    /// The case.
    pub case_id: String,
    /// The answer.
    pub answer: Answer,
    /// Role tags on the reviewer's key.
    pub reviewer_tags: BTreeSet<String>,
    /// Whether the reviewer is an admin (may answer any tier).
    pub is_admin: bool,
}

/// The result of an accepted answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Answered {
    /// The case after the answer.
    pub case: Case,
    /// The decision, now final if the answer decided the case.
    pub decision: Option<Decision>,
}

/// Everything Arbiter persists. Implementations commit before they return.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Store a policy version (if new) and make it the active one.
    async fn activate_policy(&self, version: PolicyVersion, at: Timestamp, by: &str) -> Result<()>;
    /// The active policy version, if any.
    async fn active_policy(&self) -> Result<Option<PolicyVersion>>;
    /// One stored policy version.
    async fn policy_version(&self, hash: &str) -> Result<Option<PolicyVersion>>;
    /// All stored policy versions, newest first.
    async fn policy_versions(&self) -> Result<Vec<PolicyVersionSummary>>;

    /// Store a new API key record.
    async fn create_key(&self, key: KeyRecord) -> Result<()>;
    /// Look a key up by its public id.
    async fn key(&self, id: &str) -> Result<Option<KeyRecord>>;
    /// All keys, oldest first.
    async fn keys(&self) -> Result<Vec<KeyRecord>>;
    /// Revoke a key; false if it does not exist or was already revoked.
    async fn revoke_key(&self, id: &str, at: Timestamp) -> Result<bool>;

    /// Store a decision (and its case) atomically, or return the earlier
    /// decision with the same agent and idempotency key.
    async fn insert_decision(&self, new: NewDecision) -> Result<Inserted>;
    /// One decision.
    async fn decision(&self, id: &str) -> Result<Option<Decision>>;
    /// Record (or replace) the ground-truth outcome of a decision.
    async fn record_outcome(&self, id: &str, outcome: Outcome) -> Result<Decision>;

    /// One case.
    async fn case(&self, id: &str) -> Result<Option<Case>>;
    /// Record a reviewer's answer; decides the case and its decision when enough answers are in.
    async fn answer_case(&self, answer: CaseAnswer) -> Result<Answered>;
    /// Number of cases waiting for people.
    async fn open_case_count(&self) -> Result<u64>;

    /// Events of one case, in order.
    async fn case_events(&self, case_id: &str) -> Result<Vec<Event>>;
    /// Walk the whole event chain; the first event whose hash does not verify, if any.
    async fn verify_events(&self) -> Result<Option<(u64, String)>>;
}

/// Make a decision final with `fin`, keeping the record's own fields consistent.
pub fn finalize(decision: &mut Decision, fin: FinalVerdict) {
    decision.status = arbiter_core::DecisionStatus::Final;
    decision.final_verdict = Some(fin);
}
