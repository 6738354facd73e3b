//! The store's interface: one trait per concern, and [`Store`], all of them
//! together. A backend implements each concern in its file of the same name
//! (`decisions.rs` holds `impl DecisionStore`).
//!
//! A store handle is scoped to one project ([`Store::project`]): every read
//! and write of project data (policies, decisions, cases, events, lessons,
//! suggestions, webhooks, drift episodes, spans, an agent's keys) is of that
//! project only, so a caller cannot forget the scope. A handle for another
//! project comes from [`Store::for_project`]. What is server-wide says so:
//! projects, settings, leases, console sessions, a key's lookup by id
//! (authentication finds the key before it knows the project), and the
//! webhook delivery queue (one worker sends every project's deliveries).

use crate::*;
use arbiter_core::insight::{Activity, AgentTotals};
use arbiter_core::lesson::{Lesson, LessonPatch};
use arbiter_core::recurrence::Labelled;
use arbiter_core::search::{SearchHit, SearchQuery};
use arbiter_core::suggest::{Suggestion, SuggestionState};
use arbiter_core::{Case, CaseCommand, CaseKind, Decision, Outcome, Timestamp};
use async_trait::async_trait;

/// Policy versions: stored, drafted, activated.
#[async_trait]
pub trait PolicyStore: Send + Sync {
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
}

/// API keys and console sessions.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Store a new API key record in this project (`key.project` must be it).
    async fn create_key(&self, key: KeyRecord) -> Result<()>;
    /// Look a key up by its public id, in any project (server-wide:
    /// authentication reads the key's project from its record).
    async fn key(&self, id: &str) -> Result<Option<KeyRecord>>;
    /// This project's keys, oldest first.
    async fn keys(&self) -> Result<Vec<KeyRecord>>;
    /// Revoke one of this project's keys; false if it does not exist here or was already revoked.
    async fn revoke_key(&self, id: &str, at: Timestamp) -> Result<bool>;
    /// Set (or clear) when one of this project's keys expires; false if there is no such key here.
    async fn set_key_expiry(&self, id: &str, expires_at: Option<Timestamp>) -> Result<bool>;
    /// Grant (or change) a person's role in this project: `m.project` must be it.
    async fn grant_membership(&self, m: arbiter_core::Membership) -> Result<()>;
    /// Take a person's role in this project away; false if they had none.
    async fn revoke_membership(&self, home: &arbiter_core::ProjectId, principal: &str) -> Result<bool>;
    /// The people with a role in this project (from other projects), by home and name.
    async fn members(&self) -> Result<Vec<arbiter_core::Membership>>;
    /// Server-wide (authentication): the roles person `principal` of project `home` holds in other projects.
    async fn memberships_of(
        &self,
        home: &arbiter_core::ProjectId,
        principal: &str,
    ) -> Result<Vec<arbiter_core::Membership>>;
    /// Store a new console session.
    async fn create_session(&self, session: ConsoleSession) -> Result<()>;
    /// One console session.
    async fn session(&self, id: &str) -> Result<Option<ConsoleSession>>;
    /// End a console session; false if it does not exist or already ended.
    async fn end_session(&self, id: &str, at: Timestamp) -> Result<bool>;
    /// Server-wide: record a single sign-on at `at` (the person's roles as
    /// their groups give them now); their chat link is kept.
    async fn record_sign_in(&self, identity: arbiter_core::Identity, at: Timestamp) -> Result<()>;
    /// Server-wide: link Slack user `slack_user` to person `name` (made if
    /// new), taking it from whoever had it; `None` unlinks `name`.
    async fn link_slack(&self, name: &str, slack_user: Option<&str>) -> Result<()>;
    /// Server-wide: one person by name.
    async fn person(&self, name: &str) -> Result<Option<arbiter_core::Person>>;
    /// Server-wide: the person linked to a Slack user.
    async fn person_by_slack(&self, slack_user: &str) -> Result<Option<arbiter_core::Person>>;
    /// Server-wide: the people who signed in with this verified email.
    async fn people_by_email(&self, email: &str) -> Result<Vec<arbiter_core::Person>>;
    /// Server-wide: everyone in the directory, by name.
    async fn people(&self) -> Result<Vec<arbiter_core::Person>>;
}

/// Server-wide state: projects, the first start, settings and leases.
#[async_trait]
pub trait ServerStore: Send + Sync {
    /// Create a project; false when one with this id exists (it is left unchanged).
    async fn create_project(&self, project: arbiter_core::Project) -> Result<bool>;
    /// Every project, by id (the default project included).
    async fn projects(&self) -> Result<Vec<arbiter_core::Project>>;
    /// First start, atomic however many replicas or processes start together:
    /// activate `policy` in this handle's project unless it is already the
    /// active version (with [`FirstStart::policy_only_if_none`], unless any
    /// version is active), and store `admin` in this project unless a key
    /// exists in any project. Says what it did.
    async fn first_start(&self, start: FirstStart, at: Timestamp) -> Result<FirstStartDone>;
    /// A server-wide setting, set to `value` first if it has none (atomic across replicas).
    async fn setting_or_insert(&self, name: &str, value: &str) -> Result<String>;
    /// Set a server-wide setting (made if new).
    async fn set_setting(&self, name: &str, value: &str) -> Result<()>;
    /// Settings whose name starts with `prefix`, by name.
    async fn settings_with_prefix(&self, prefix: &str) -> Result<Vec<(String, String)>>;
    /// Take or renew the lease `name` for `holder` until `now + ttl_ms`: true
    /// when `holder` holds it now (it was free, expired, or already its own).
    /// Work that only one replica may do at a time (the drift monitor) runs
    /// while its lease is held; another replica takes over once it expires.
    async fn acquire_lease(&self, name: &str, holder: &str, now: Timestamp, ttl_ms: i64) -> Result<bool>;
}

/// Decisions: stored once per idempotency key, outcomes, tool results, receipts and chains.
#[async_trait]
pub trait DecisionStore: Send + Sync {
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
    /// yet, oldest first: with [`DecisionStore::labelled_decisions`], the population
    /// tuning weights the audit labels over.
    async fn unlabelled_audit_decisions(&self, limit: usize) -> Result<Vec<Decision>>;
    /// The most recent `limit` decisions (by event time), oldest first,
    /// labelled or not (what a policy change is checked against).
    async fn recent_decisions(&self, limit: usize) -> Result<Vec<Decision>>;
    /// Record (or replace) the ground-truth outcome of a decision.
    async fn record_outcome(&self, id: &str, outcome: Outcome) -> Result<Decision>;
    /// Record what the tool returned when decision `id`'s action ran (replacing
    /// an earlier record); the decision is rewritten and committed to the chain.
    async fn record_tool_result(&self, id: &str, result: arbiter_core::ToolResult) -> Result<Decision>;
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
    /// The decision chain: decisions in any of `trace_ids`, with an id in
    /// `decision_ids`, or in the same session (`context.session_id`) as any of
    /// those, in event-time order.
    async fn decision_chain(
        &self,
        trace_ids: &[String],
        decision_ids: &[String],
        limit: usize,
    ) -> Result<Vec<Decision>>;
}

/// Cases: opened, commanded by the case rules, listed and searched.
#[async_trait]
pub trait CaseStore: Send + Sync {
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
    /// Number of cases waiting for people (of one kind, or all).
    async fn open_case_count(&self, kind: Option<CaseKind>) -> Result<u64>;
}

/// The audit log: events, the chain head and its verification.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Events of one case, in order.
    async fn case_events(&self, case_id: &str) -> Result<Vec<Event>>;
    /// Events after `after_seq`, in order, at most `limit`.
    async fn events(&self, after_seq: u64, limit: usize) -> Result<Vec<Event>>;
    /// Append an event that belongs to no case (e.g. `clock.advanced`) to the audit log.
    async fn record_event(&self, kind: &str, actor: &str, at: Timestamp, data: serde_json::Value) -> Result<Event>;
    /// Check the whole audit log in one snapshot: every event's hash and
    /// link, that the chain still extends `anchor` (if given), every decision
    /// row against the digest the chain committed for it, and every case row
    /// against the replay of its events. Stops at the first problem.
    async fn verify_audit(&self, anchor: Option<ChainHead>) -> Result<AuditReport>;
    /// The last event of the chain (to store elsewhere as an anchor).
    async fn chain_head(&self) -> Result<Option<ChainHead>>;
}

/// The learning loop: lessons, the search over lessons and reviews and rule suggestions.
#[async_trait]
pub trait LearningStore: Send + Sync {
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
}

/// History read for people: the dashboard, similar cases, an agent's and a subject's record.
#[async_trait]
pub trait InsightStore: Send + Sync {
    /// Aggregates for the console's dashboard since `since`.
    async fn dashboard(&self, since: Timestamp) -> Result<Dashboard>;
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
}

/// Webhooks and their deliveries.
#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Store a webhook.
    async fn create_webhook(&self, webhook: Webhook) -> Result<()>;
    /// All webhooks (deleted ones included, marked inactive).
    async fn webhooks(&self) -> Result<Vec<Webhook>>;
    /// Deactivate a webhook; false if there is no active one with this id.
    async fn delete_webhook(&self, id: &str) -> Result<bool>;
    /// Server-wide (one worker sends every project's deliveries; each
    /// delivery's webhook names its project): take up to `limit` pending
    /// deliveries due at `now`, oldest first, and at
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
    /// Record how the attempt counted by the last claim went (server-wide, by delivery id).
    async fn record_delivery_attempt(&self, id: u64, attempt: DeliveryAttempt) -> Result<()>;
    /// Deliveries of one webhook, newest first.
    async fn deliveries(&self, webhook_id: &str, limit: usize) -> Result<Vec<Delivery>>;
    /// The Slack messages of case `case_id`, as (channel, message ts).
    async fn slack_messages(&self, case_id: &str) -> Result<Vec<(String, String)>>;
    /// Remember the Slack message of case `case_id` in `channel` (kept if one is known).
    async fn record_slack_message(&self, case_id: &str, channel: &str, ts: &str) -> Result<()>;
}

/// The drift monitor's points and episodes.
#[async_trait]
pub trait DriftStore: Send + Sync {
    /// Decisions the drift monitor places in `[from, to)`, in order: each at its
    /// receipt, or at its event time when that is more than `live_within_ms`
    /// from its receipt (a replay; [`monitor_time`]).
    async fn drift_points(&self, from: Timestamp, to: Timestamp, live_within_ms: i64) -> Result<Vec<DriftPoint>>;
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
}

/// Spans of agents' runs (OTLP).
#[async_trait]
pub trait TraceStore: Send + Sync {
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
}

/// Everything Arbiter persists, one trait per concern; a backend implements
/// each in its file of the same name. Implementations commit before they return.
/// Callers bring the concerns into scope with `use arbiter_store::prelude::*`.
/// A handle is scoped to one project (see the module's documentation).
pub trait Store:
    PolicyStore
    + KeyStore
    + ServerStore
    + DecisionStore
    + CaseStore
    + AuditStore
    + LearningStore
    + InsightStore
    + WebhookStore
    + DriftStore
    + TraceStore
    + Send
    + Sync
    + 'static
{
    /// The project this handle reads and writes.
    fn project(&self) -> &arbiter_core::ProjectId;
    /// A handle on the same database scoped to `project` (which need not
    /// exist yet: [`ServerStore::create_project`] records it; a handle of an
    /// unknown project reads nothing).
    fn for_project(&self, project: &arbiter_core::ProjectId) -> std::sync::Arc<dyn Store>;
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
