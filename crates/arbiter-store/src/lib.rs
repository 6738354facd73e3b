//! Arbiter's persistence: one trait per concern, together the [`Store`]
//! ([`traits`]), an SQLite backend (the embedded default), the rules and
//! writes every backend shares ([`rules`], [`writes`]), and a conformance
//! suite that every backend must pass.
//!
//! The interface speaks in domain types from `arbiter-core`; nothing SQLite
//! specific leaks through it. The PostgreSQL backend (several replicas on one
//! database) implements the same trait in its own crate,
//! `arbiter-store-postgres`, and runs the same [`conformance`] tests.

pub mod audit;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod rules;
mod sqlite;
pub mod traits;
pub mod writes;

pub use traits::*;

/// The store's traits, to call any concern's methods on a store: `use arbiter_store::prelude::*`.
pub mod prelude {
    pub use crate::traits::{
        AuditStore, CaseStore, DecisionStore, DriftStore, InsightStore, KeyStore, LearningStore, PolicyStore,
        ServerStore, Store, TraceStore, WebhookStore,
    };
}

pub use arbiter_core::audit::{AuditProblem, AuditReport, ChainHead, Event, GENESIS_HASH};
pub use arbiter_core::key::{ConsoleSession, KeyRecord};
pub use arbiter_core::policy_version::{PolicyVersion, PolicyVersionSummary};
pub use arbiter_core::webhook::{Delivery, DeliveryStatus, Webhook, WebhookFormat};
pub use sqlite::SqliteStore;
pub use sqlite::migrate::{MigrationProgress, MigrationReport};

use arbiter_core::{Case, CaseError, CaseKind, CaseState, Decision, FinalVerdict, Timestamp};
use serde::Serialize;

/// The underlying failure of a [`StoreError::Backend`]: shared, because one
/// failed group commit fails every write in it.
pub type BackendSource = std::sync::Arc<dyn std::error::Error + Send + Sync>;

/// What went wrong in the store.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The thing asked for does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The request conflicts with what is stored (e.g. an idempotency key reused for a different request).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A command was refused by the case rules.
    #[error(transparent)]
    Case(#[from] CaseError),
    /// The database failed: what the store was doing, and the database's own error.
    #[error("database error: {context}")]
    Backend {
        /// What the store was doing.
        context: String,
        /// The database driver's (or the OS's) error, when there is one.
        #[source]
        source: Option<BackendSource>,
    },
    /// Stored data could not be read back (corruption or a newer schema).
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    /// The store has shut down.
    #[error("the store is shut down")]
    Closed,
    /// The database is not answering (down, restarting, unreachable, or too
    /// busy to take the write in time); nothing was changed, and the same
    /// request may be sent again.
    #[error("the database is not answering: {0}")]
    Unavailable(String),
}

impl StoreError {
    /// A database failure while doing `context`, caused by `source`.
    pub fn backend(context: impl Into<String>, source: impl std::error::Error + Send + Sync + 'static) -> StoreError {
        StoreError::Backend { context: context.into(), source: Some(std::sync::Arc::new(source)) }
    }

    /// A database failure with no underlying error to keep.
    pub fn backend_msg(context: impl Into<String>) -> StoreError {
        StoreError::Backend { context: context.into(), source: None }
    }
}

/// Result alias for store calls.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// What a server's first start asks for (see [`ServerStore::first_start`]).
#[derive(Debug, Clone)]
pub struct FirstStart {
    /// The policy to activate.
    pub policy: Option<PolicyVersion>,
    /// Activate it only when no version is active (the built-in default).
    pub policy_only_if_none: bool,
    /// The admin key to store when no key exists.
    pub admin: Option<KeyRecord>,
    /// Who activates it (`bootstrap`).
    pub by: String,
}

/// What [`ServerStore::first_start`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FirstStartDone {
    /// The policy was activated (false: it, or another, was active already).
    pub policy_activated: bool,
    /// The admin key was stored (false: a key existed already).
    pub admin_created: bool,
}

/// A decision to store, with the case it opens (if escalated).
#[derive(Debug, Clone)]
pub struct NewDecision {
    /// The decision record.
    pub decision: Decision,
    /// Digest of the request, to detect an idempotency key reused for another request.
    pub request_digest: String,
    /// The case to open with it: an approval case for an escalation, or an
    /// audit case for an allowed decision the audit draw selected.
    pub case: Option<Case>,
    /// At most this many open approval cases per agent: past it, the case is
    /// not opened and the escalation's fallback applies at once
    /// ([`rules::apply_case_cap`]). Counted in the same transaction.
    pub open_case_cap: Option<u64>,
}

impl NewDecision {
    /// The cap on open approval cases, when this decision opens one (audit cases are not capped: the agent is not held).
    pub fn approval_cap(&self) -> Option<u64> {
        self.open_case_cap.filter(|_| self.case.as_ref().is_some_and(|c| c.kind == CaseKind::Approval))
    }
}

/// The result of storing a decision.
#[derive(Debug, Clone, PartialEq)]
pub enum Inserted {
    /// A new decision was stored.
    Created(Decision),
    /// The idempotency key was seen before; this is the decision stored then.
    Existing(Decision),
}

/// The result of a case command.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseUpdate {
    /// The case after the command.
    pub case: Case,
    /// The events appended (empty when nothing was due).
    pub events: Vec<Event>,
    /// The case's decision, when the command made it final.
    pub decision: Option<Decision>,
    /// The case's decision, when the command labelled it (an audit): its outcome is the label.
    pub labelled: Option<Decision>,
}

/// Which cases to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaseFilter {
    /// Only this kind.
    pub kind: Option<CaseKind>,
    /// Only these states (any when empty).
    pub states: Vec<CaseState>,
    /// At most this many, newest first.
    pub limit: usize,
}

/// A search through cases: every filter given must hold. Newest first, a page at a time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CaseQuery {
    /// Only this kind.
    pub kind: Option<CaseKind>,
    /// Only these states (any when empty).
    pub states: Vec<CaseState>,
    /// Proposed by this agent.
    pub agent: Option<String>,
    /// Of this action class.
    pub action: Option<String>,
    /// Acting on this subject (`host:ws-1`).
    pub subject: Option<String>,
    /// Whose decision ended with this verdict.
    pub verdict: Option<arbiter_core::Verdict>,
    /// Whose decision was settled by this (`review`, `sla_expired`, ...).
    pub source: Option<arbiter_core::FinalSource>,
    /// Answered (approval) or written in (review) by this person.
    pub reviewer: Option<String>,
    /// With this failure mode in an answer or a finding.
    pub failure_mode: Option<String>,
    /// Last changed at or after this.
    pub since: Option<Timestamp>,
    /// Last changed before this.
    pub until: Option<Timestamp>,
    /// Words in the rationales, comments and stage entries (as in search).
    pub text: Option<String>,
    /// The page after this cursor (from [`CasePage::next`]).
    pub after: Option<u64>,
    /// At most this many.
    pub limit: usize,
}

/// The use of a receipt, as first recorded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Consumption {
    /// The decision whose receipt it is.
    pub decision_id: String,
    /// Who used it (a gateway's name).
    pub consumer: String,
    /// The digest of the arguments it was used for.
    pub args_digest: String,
    /// When.
    pub at: Timestamp,
    /// Whether this call recorded it (false: it had been used already).
    pub first: bool,
}

/// A page of cases.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CasePage {
    /// Newest first.
    pub cases: Vec<Case>,
    /// The cursor of the next page, when there is one.
    pub next: Option<u64>,
}

/// A delivery that is due, with what is needed to send it.
#[derive(Debug, Clone, PartialEq)]
pub struct DueDelivery {
    /// The delivery.
    pub delivery: Delivery,
    /// Its webhook (with the secret).
    pub webhook: Webhook,
    /// The event to send.
    pub event: Event,
}

/// The result of one delivery attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryAttempt {
    /// When it was made.
    pub at: Timestamp,
    /// HTTP status, if the receiver answered.
    pub status: Option<u16>,
    /// What went wrong, if anything.
    pub error: Option<String>,
    /// When to try again; `None` means delivered (on success) or give up.
    pub retry_at: Option<Timestamp>,
}

impl DeliveryAttempt {
    /// Whether the delivery is done: the receiver answered 2xx, or there was
    /// nothing to send (no status and no error: a format with no request for
    /// this event, such as PagerDuty for a comment).
    pub fn succeeded(&self) -> bool {
        self.error.is_none() && self.status.is_none_or(|s| (200..300).contains(&s))
    }
}

/// Decisions in one hour (by event time).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HourCount {
    /// Start of the hour.
    pub hour: Timestamp,
    /// Decisions made.
    pub decisions: u64,
    /// Of those, escalated by the policy.
    pub escalated: u64,
}

/// Decisions of one action class with one policy verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassCount {
    /// The action class.
    pub action: String,
    /// The policy's verdict.
    pub verdict: arbiter_core::Verdict,
    /// How many.
    pub decisions: u64,
}

/// Cases of one kind in one state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaseCount {
    /// Approval or review.
    pub kind: CaseKind,
    /// Open or claimed.
    pub state: CaseState,
    /// How many.
    pub cases: u64,
}

/// One decision as the drift monitor sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftPoint {
    /// Where the monitor places it: its receipt, or its event time for a replay ([`monitor_time`]).
    pub at: Timestamp,
    /// Its id.
    pub decision_id: String,
    /// What the statistics read.
    pub point: arbiter_core::drift::Point,
}

/// Where the drift monitor places a decision: at the server's receipt of it
/// (live traffic: an agent's clock cannot move it), unless its event time is
/// more than `live_within_ms` from its receipt — a decision a replay server
/// took with its own time — then at its event time.
pub fn monitor_time(event_time: i64, received_at: i64, live_within_ms: i64) -> i64 {
    if (event_time - received_at).abs() <= live_within_ms { received_at } else { event_time }
}

/// Rows read by event time in `[from − w, to + w)` as (event time, receipt,
/// point): placed with [`monitor_time`], those placed in `[from, to)`, in order.
pub fn place_drift_points(
    rows: Vec<(i64, i64, DriftPoint)>,
    from: Timestamp,
    to: Timestamp,
    w: i64,
) -> Vec<DriftPoint> {
    let mut out: Vec<DriftPoint> = rows
        .into_iter()
        .filter_map(|(event_time, received_at, mut p)| {
            p.at = Timestamp(monitor_time(event_time, received_at, w));
            (p.at >= from && p.at < to).then_some(p)
        })
        .collect();
    out.sort_by_key(|p| p.at);
    out
}

/// The conflict of a drift episode saved by someone else since it was read.
pub fn episode_conflict(id: &str, read: u64, stored: Option<i64>) -> StoreError {
    match stored {
        None => StoreError::NotFound(format!("drift episode {id}")),
        Some(v) => StoreError::Conflict(format!(
            "drift episode {id} changed since it was read (version {read}, now {v}); read it again"
        )),
    }
}

/// An audit event to append in the same transaction as a write.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    /// Its kind, e.g. `drift.episode.started`.
    pub kind: String,
    /// Who (a key id, a person, or a job such as `drift-monitor`).
    pub actor: String,
    /// When.
    pub at: Timestamp,
    /// What.
    pub data: serde_json::Value,
}

/// Aggregates for the dashboard.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Dashboard {
    /// Per hour (by event time).
    pub hourly: Vec<HourCount>,
    /// Per action class and policy verdict.
    pub by_class: Vec<ClassCount>,
    /// Milliseconds from case opened to decided, per decided case.
    pub time_to_decision_ms: Vec<i64>,
    /// Cases that hit the fallback after their SLA.
    pub sla_fallbacks: u64,
    /// Tier escalations.
    pub tier_escalations: u64,
    /// Drift alarm episodes started.
    pub drift_alarms: u64,
    /// Open work, by kind and state.
    pub open_cases: Vec<CaseCount>,
    /// Per action class, how its decisions ended and who settled them.
    pub endings: Vec<EndingCount>,
    /// Approval cases waiting for people at the end of each hour.
    pub queue_depth: Vec<(Timestamp, u64)>,
}

/// Decisions of one class that ended one way.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndingCount {
    /// The action class.
    pub action: String,
    /// The final verdict (none: still waiting for people).
    pub verdict: Option<arbiter_core::Verdict>,
    /// Who settled it.
    pub source: Option<arbiter_core::FinalSource>,
    /// How many.
    pub decisions: u64,
}

/// Which lessons to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LessonFilter {
    /// Only lessons about this action class.
    pub action: Option<String>,
    /// Only published ones.
    pub published: bool,
    /// At most this many (most recently changed first).
    pub limit: usize,
}

/// Counters of a store's group commits since it opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct WriteStats {
    /// Write transactions committed (or failed).
    pub batches: u64,
    /// Write jobs run in them.
    pub jobs: u64,
    /// Batches run a second time with a savepoint per job, because a job in them failed.
    pub retried_batches: u64,
    /// Time spent waiting for the audit chain's lock (held by other replicas' batches), in microseconds.
    pub chain_lock_wait_micros: u64,
    /// Time the lock was held, from taking it to the commit, in microseconds.
    pub chain_lock_held_micros: u64,
    /// Of that, time spent in `COMMIT` (the WAL flush), in microseconds.
    pub commit_micros: u64,
}

/// Make a decision final with `fin`, keeping the record's own fields consistent.
pub fn finalize(decision: &mut Decision, fin: FinalVerdict) {
    decision.status = arbiter_core::DecisionStatus::Final;
    decision.final_verdict = Some(fin);
}
