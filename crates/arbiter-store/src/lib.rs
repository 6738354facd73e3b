//! Arbiter's persistence: one [`Store`] trait, an SQLite backend (the embedded
//! default), the rules and writes every backend shares ([`rules`], [`writes`]),
//! and a conformance suite that every backend must pass.
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
pub mod writes;

pub use arbiter_core::audit::{AuditProblem, AuditReport, ChainHead, Event, GENESIS_HASH};
pub use arbiter_core::key::{ConsoleSession, KeyRecord};
pub use arbiter_core::policy_version::{PolicyVersion, PolicyVersionSummary};
pub use arbiter_core::webhook::{Delivery, DeliveryStatus, Webhook, WebhookFormat};
pub use sqlite::SqliteStore;
pub use sqlite::migrate::{MigrationProgress, MigrationReport};

use arbiter_core::insight::{Activity, AgentTotals};
use arbiter_core::lesson::{Lesson, LessonPatch};
use arbiter_core::recurrence::Labelled;
use arbiter_core::search::{SearchHit, SearchQuery};
use arbiter_core::suggest::{Suggestion, SuggestionState};
use arbiter_core::{Case, CaseCommand, CaseError, CaseKind, CaseState, Decision, FinalVerdict, Outcome, Timestamp};
use async_trait::async_trait;
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

/// What a server's first start asks for (see [`Store::first_start`]).
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

/// What [`Store::first_start`] did.
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

    /// Store a policy version without activating it (a draft); false when it was stored already.
    async fn store_policy_draft(&self, version: PolicyVersion, at: Timestamp, by: &str) -> Result<bool>;
    /// When a stored version was activated, oldest first.
    async fn policy_activations(&self, hash: &str) -> Result<Vec<Timestamp>>;

    /// First start, atomic however many replicas or processes start together:
    /// activate `policy` unless it is already the active version (with
    /// [`FirstStart::policy_only_if_none`], unless any version is active), and
    /// store `admin` unless a key exists. Says what it did.
    async fn first_start(&self, start: FirstStart, at: Timestamp) -> Result<FirstStartDone>;

    /// Store a new API key record.
    async fn create_key(&self, key: KeyRecord) -> Result<()>;
    /// Look a key up by its public id.
    async fn key(&self, id: &str) -> Result<Option<KeyRecord>>;
    /// All keys, oldest first.
    async fn keys(&self) -> Result<Vec<KeyRecord>>;
    /// Revoke a key; false if it does not exist or was already revoked.
    async fn revoke_key(&self, id: &str, at: Timestamp) -> Result<bool>;
    /// Set (or clear) when a key expires; false if there is no such key.
    async fn set_key_expiry(&self, id: &str, expires_at: Option<Timestamp>) -> Result<bool>;

    /// Store a new console session.
    async fn create_session(&self, session: ConsoleSession) -> Result<()>;
    /// One console session.
    async fn session(&self, id: &str) -> Result<Option<ConsoleSession>>;
    /// End a console session; false if it does not exist or already ended.
    async fn end_session(&self, id: &str, at: Timestamp) -> Result<bool>;

    /// Store a decision (and its case) atomically, or return the earlier
    /// decision with the same agent and idempotency key.
    async fn insert_decision(&self, new: NewDecision) -> Result<Inserted>;
    /// One decision.
    async fn decision(&self, id: &str) -> Result<Option<Decision>>;
    /// The decision `agent` got for idempotency key `key`, when the request
    /// (`request_digest`) is the same; `Conflict` when the key was used for
    /// another request; `None` when the key is new. A retry is answered from
    /// here without counting against the agent's rate limit.
    async fn replayed_decision(&self, agent: &str, key: &str, request_digest: &str) -> Result<Option<Decision>>;
    /// The most recent `limit` decisions with a recorded outcome, oldest first
    /// (the history that tuning and backtests learn from).
    async fn labelled_decisions(&self, limit: usize) -> Result<Vec<Decision>>;
    /// The most recent `limit` decisions of an audit design (allowed decisions
    /// of a class with an `audit_sample`, drawn or not) that have no outcome
    /// yet, oldest first: with [`Store::labelled_decisions`], the population
    /// tuning weights the audit labels over.
    async fn unlabelled_audit_decisions(&self, limit: usize) -> Result<Vec<Decision>>;
    /// The most recent `limit` decisions (by event time), oldest first,
    /// labelled or not (what a policy change is checked against).
    async fn recent_decisions(&self, limit: usize) -> Result<Vec<Decision>>;
    /// Record (or replace) the ground-truth outcome of a decision.
    async fn record_outcome(&self, id: &str, outcome: Outcome) -> Result<Decision>;

    /// One case.
    async fn case(&self, id: &str) -> Result<Option<Case>>;
    /// Open a case that has no decision of its own (a review case).
    async fn open_case(&self, case: Case, actor: &str) -> Result<Case>;
    /// Run a command on a case: the case rules (`arbiter_core::workflow::handle`)
    /// give the events, which are appended to the log and folded into the case
    /// in one transaction; a decided case finalizes its decision.
    async fn update_case(&self, id: &str, command: CaseCommand, now: Timestamp) -> Result<CaseUpdate>;
    /// Cases, newest first.
    async fn cases(&self, filter: CaseFilter) -> Result<Vec<Case>>;
    /// Cases matching `query`, newest first, a page at a time.
    async fn find_cases(&self, query: CaseQuery) -> Result<CasePage>;
    /// Every approval case still waiting for people (for the queue).
    async fn active_approval_cases(&self) -> Result<Vec<Case>>;
    /// Ids of cases with a lease or tier ending at or before `now`.
    async fn due_cases(&self, now: Timestamp, limit: usize) -> Result<Vec<String>>;
    /// The decision chain: decisions in any of `trace_ids`, with an id in
    /// `decision_ids`, or in the same session (`context.session_id`) as any of
    /// those, in event-time order.
    async fn decision_chain(
        &self,
        trace_ids: &[String],
        decision_ids: &[String],
        limit: usize,
    ) -> Result<Vec<Decision>>;
    /// Number of cases waiting for people (of one kind, or all).
    async fn open_case_count(&self, kind: Option<CaseKind>) -> Result<u64>;

    /// Events of one case, in order.
    async fn case_events(&self, case_id: &str) -> Result<Vec<Event>>;
    /// Check the whole audit log in one snapshot: every event's hash and
    /// link, that the chain still extends `anchor` (if given), every decision
    /// row against the digest the chain committed for it, and every case row
    /// against the replay of its events. Stops at the first problem.
    async fn verify_audit(&self, anchor: Option<ChainHead>) -> Result<AuditReport>;
    /// The last event of the chain (to store elsewhere as an anchor).
    async fn chain_head(&self) -> Result<Option<ChainHead>>;
    /// A server-wide setting, set to `value` first if it has none (atomic across replicas).
    async fn setting_or_insert(&self, name: &str, value: &str) -> Result<String>;
    /// Aggregates for the console's dashboard since `since`.
    async fn dashboard(&self, since: Timestamp) -> Result<Dashboard>;
    /// Append an event that belongs to no case (e.g. `clock.advanced`) to the audit log.
    async fn record_event(&self, kind: &str, actor: &str, at: Timestamp, data: serde_json::Value) -> Result<Event>;
    /// Decisions the drift monitor places in `[from, to)`, in order: each at its
    /// receipt, or at its event time when that is more than `live_within_ms`
    /// from its receipt (a replay; [`monitor_time`]).
    async fn drift_points(&self, from: Timestamp, to: Timestamp, live_within_ms: i64) -> Result<Vec<DriftPoint>>;
    /// Events after `after_seq`, in order, at most `limit`.
    async fn events(&self, after_seq: u64, limit: usize) -> Result<Vec<Event>>;
    /// Drift alarm episodes, newest first, at most `limit`; only the open ones with `open_only`.
    async fn drift_episodes(&self, open_only: bool, limit: usize)
    -> Result<Vec<arbiter_core::drift::episode::Episode>>;
    /// One drift alarm episode.
    async fn drift_episode(&self, id: &str) -> Result<Option<arbiter_core::drift::episode::Episode>>;
    /// Save a drift episode read at `episode.version` (0: a new one), storing
    /// it as the next version, and append `event` to the audit log in the same
    /// transaction. `Conflict` when it was saved by someone else since it was read.
    async fn save_drift_episode(
        &self,
        episode: arbiter_core::drift::episode::Episode,
        event: Option<EventRecord>,
    ) -> Result<arbiter_core::drift::episode::Episode>;

    /// One lesson.
    async fn lesson(&self, id: &str) -> Result<Option<Lesson>>;
    /// Lessons, most recently changed first.
    async fn lessons(&self, filter: LessonFilter) -> Result<Vec<Lesson>>;
    /// The lesson of a review that closed before lessons existed, created now
    /// from the review as it closed (`Conflict` if it has one, or is not closed).
    async fn create_missing_lesson(&self, review_id: &str, by: &str, at: Timestamp) -> Result<Lesson>;
    /// Edit a lesson's human-written fields. A change is recorded as a
    /// `lesson.updated` event naming the changed fields; an edit that changes
    /// nothing records nothing.
    async fn update_lesson(&self, id: &str, patch: LessonPatch, by: &str, at: Timestamp) -> Result<Lesson>;
    /// A lesson's history: its events, oldest first.
    async fn lesson_events(&self, id: &str) -> Result<Vec<Event>>;
    /// Full-text search over lessons, review cases and reviewed decisions
    /// (every word of the query must match; the last may be a prefix), best first.
    async fn search(&self, query: SearchQuery) -> Result<Vec<SearchHit>>;

    /// Decisions of `action` before `before` that ended with people deciding
    /// them or with a recorded outcome, most recent first: the candidates
    /// for similar cases.
    async fn similar_candidates(&self, action: &str, before: Timestamp, limit: usize) -> Result<Vec<Decision>>;
    /// An agent's decisions of one class since `since` (at most `limit`, most recent first).
    async fn agent_activity(&self, agent: &str, action: &str, since: Timestamp, limit: usize) -> Result<Vec<Activity>>;
    /// An agent's decisions since `since`, all classes, counted.
    async fn agent_totals(&self, agent: &str, since: Timestamp) -> Result<AgentTotals>;
    /// Decisions before `before` acting on `subject`, most recent first (at
    /// most `limit`), and how many there are in all.
    async fn subject_history(&self, subject: &str, before: Timestamp, limit: usize) -> Result<(u64, Vec<Decision>)>;
    /// Decisions people decided, with event time from `since`, most recent
    /// first (at most `limit`), optionally of one class: datasets and rule suggestions.
    async fn reviewed_decisions(&self, action: Option<&str>, since: Timestamp, limit: usize) -> Result<Vec<Decision>>;
    /// Labelled decisions of `actions` with event time in `[from, to)`: recurrence.
    async fn labelled_points(&self, actions: &[String], from: Timestamp, to: Timestamp) -> Result<Vec<Labelled>>;

    /// Offer rule suggestions: each one whose fingerprint is new (or whose
    /// earlier copy expired) is stored; the others keep their state. Returns
    /// the suggestions open at `now`.
    async fn offer_suggestions(&self, found: Vec<Suggestion>, now: Timestamp) -> Result<Vec<Suggestion>>;
    /// Stored suggestions, newest first.
    async fn suggestions(&self, limit: usize) -> Result<Vec<Suggestion>>;
    /// One suggestion.
    async fn suggestion(&self, id: &str) -> Result<Option<Suggestion>>;
    /// Accept (with the draft version that carries it) or dismiss an open
    /// suggestion; recorded as `suggestion.accepted` / `suggestion.dismissed`.
    async fn decide_suggestion(
        &self,
        id: &str,
        state: SuggestionState,
        draft_policy: Option<String>,
        by: &str,
        at: Timestamp,
    ) -> Result<Suggestion>;

    /// Store a webhook.
    async fn create_webhook(&self, webhook: Webhook) -> Result<()>;
    /// All webhooks (deleted ones included, marked inactive).
    async fn webhooks(&self) -> Result<Vec<Webhook>>;
    /// Deactivate a webhook; false if there is no active one with this id.
    async fn delete_webhook(&self, id: &str) -> Result<bool>;
    /// Take up to `limit` pending deliveries due at `now`, oldest first, and at
    /// most `per_webhook` per webhook counting the `in_flight` ones the caller
    /// is already sending. Each taken delivery counts its attempt now (before
    /// it is sent) and is leased for `lease_ms`, so no other worker sends it
    /// meanwhile and a crash mid-send retries it after the lease.
    async fn claim_due_deliveries(
        &self,
        now: Timestamp,
        lease_ms: i64,
        limit: usize,
        per_webhook: usize,
        in_flight: std::collections::HashMap<String, usize>,
    ) -> Result<Vec<DueDelivery>>;
    /// Record how the attempt counted by the last claim went.
    async fn record_delivery_attempt(&self, id: u64, attempt: DeliveryAttempt) -> Result<()>;
    /// Deliveries of one webhook, newest first.
    async fn deliveries(&self, webhook_id: &str, limit: usize) -> Result<Vec<Delivery>>;

    /// Record what the tool returned when decision `id`'s action ran (replacing
    /// an earlier record); the decision is rewritten and committed to the chain.
    async fn record_tool_result(&self, id: &str, result: arbiter_core::ToolResult) -> Result<Decision>;
    /// Settings whose name starts with `prefix`, by name.
    async fn settings_with_prefix(&self, prefix: &str) -> Result<Vec<(String, String)>>;
    /// Record the single use of decision `decision_id`'s receipt by `consumer`
    /// for arguments with `args_digest`: the first use is stored (with a
    /// `receipt.consumed` audit event) and returned with `first: true`; any
    /// later call returns that first use unchanged.
    async fn consume_receipt(
        &self,
        decision_id: &str,
        consumer: &str,
        args_digest: &str,
        at: Timestamp,
    ) -> Result<Consumption>;

    /// Store spans `sender` sent, received at `at`. A span already stored
    /// (same trace and span id) is replaced only when the same sender sent
    /// it; one stored for another sender is left alone and not counted.
    /// Returns how many were written.
    async fn insert_spans(&self, sender: &str, spans: Vec<arbiter_core::trace::Span>, at: Timestamp) -> Result<u64>;
    /// The spans of a trace, in start order (at most `limit`); only those
    /// `sender` sent when it is given.
    async fn trace_spans(
        &self,
        trace_id: &str,
        sender: Option<&str>,
        limit: usize,
    ) -> Result<Vec<arbiter_core::trace::Span>>;
    /// The trace id of the span `sender` sent recording tool call `tool_call_id`, if one arrived.
    async fn trace_of_tool_call(&self, sender: &str, tool_call_id: &str) -> Result<Option<String>>;
    /// Remove spans received before `before`, except those of the traces in
    /// `keep` (the runs of decisions under review). Returns how many went.
    async fn purge_spans(&self, before: Timestamp, keep: Vec<String>) -> Result<u64>;

    /// Take or renew the lease `name` for `holder` until `now + ttl_ms`: true
    /// when `holder` holds it now (it was free, expired, or already its own).
    /// Work that only one replica may do at a time (the drift monitor) runs
    /// while its lease is held; another replica takes over once it expires.
    async fn acquire_lease(&self, name: &str, holder: &str, now: Timestamp, ttl_ms: i64) -> Result<bool>;

    /// Ids of decisions made final by any process sharing this store, as
    /// their commits land; `*` means some may have been missed (the feed
    /// reconnected) and every waiter should look again. `None` when the
    /// backend has no such feed (one process: in-process wake-ups suffice).
    fn finalized_feed(&self) -> Option<tokio::sync::broadcast::Receiver<String>> {
        None
    }

    /// How the store's write batches have gone since it opened (metrics and
    /// benchmarks); zero for a backend that does not count them.
    fn write_stats(&self) -> WriteStats {
        WriteStats::default()
    }
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
