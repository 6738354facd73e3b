//! The SQLite backend: one writer thread that commits concurrent requests in
//! batches (group commit, one fsync per batch), and a small pool of reader
//! connections. WAL mode with `synchronous=FULL`: an acknowledged write survives
//! a killed process and a power cut.

use crate::rules::{ChainBatch, DECISIONS_COMMITTED, DecisionColumns};
use crate::{
    CaseFilter, CaseUpdate, Delivery, DeliveryAttempt, DeliveryStatus, DueDelivery, Inserted, KeyRecord, NewDecision,
    PolicyVersion, PolicyVersionSummary, Result, Store, StoreError, Webhook, WebhookFormat,
};
use arbiter_core::audit::{AuditReport, ChainHead, Event, GENESIS_HASH};
use arbiter_core::{Case, CaseCommand, CaseEvent, CaseKind, CaseState, Decision, Outcome, Role, Timestamp};
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use tokio::sync::oneshot;

mod cases;
mod dashboard;
mod decisions;
mod drift;
#[macro_use]
mod events;
mod keys;
mod learning;
pub mod migrate;
mod policies;
mod spans;
mod webhooks;
mod writer;

// Each part's helpers are visible to the others (they share rows and appends).
use cases::*;
use decisions::*;
use events::*;
use learning::*;
use migrate::*;
use webhooks::*;
use writer::*;

const READERS: usize = 4;

/// The embedded SQLite store.
pub struct SqliteStore {
    path: PathBuf,
    writer: Mutex<Option<mpsc::Sender<Job>>>,
    writer_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    readers: Arc<Vec<Mutex<Connection>>>,
    next_reader: AtomicUsize,
}

fn backend(e: rusqlite::Error) -> StoreError {
    match e {
        // a stored value this version cannot read is corruption (or a newer schema), not a database failure
        rusqlite::Error::FromSqlConversionFailure(col, _, why) => StoreError::Corrupt(format!("column {col}: {why}")),
        // another process held the file's lock past the busy timeout (a CLI
        // command on the same file, a backup tool): retry later, not a bug
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) =>
        {
            StoreError::Unavailable("the SQLite file stayed locked by another process for 10 s".into())
        }
        other => StoreError::backend("SQLite failed", other),
    }
}

/// The error for stored enum text this version does not know (never a silent default).
fn unknown_text(col: usize, what: &str, text: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        col,
        rusqlite::types::Type::Text,
        format!("unknown {what} `{text}`").into(),
    )
}

fn corrupt(e: serde_json::Error) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

fn open_conn(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path).map_err(|e| StoreError::backend(format!("cannot open {}", path.display()), e))?;
    conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(backend)?;
    // Switching a fresh file to WAL needs it alone, and SQLite answers BUSY
    // at once (no busy handler) when another process is opening it too:
    // retry for as long as the busy timeout would have waited.
    let mut tries = 0;
    loop {
        match conn.pragma_update(None, "journal_mode", "WAL") {
            Ok(()) => break,
            Err(rusqlite::Error::SqliteFailure(f, _))
                if f.code == rusqlite::ErrorCode::DatabaseBusy && tries < 1000 =>
            {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => return Err(StoreError::backend(format!("cannot switch {} to WAL", path.display()), e)),
        }
    }
    conn.pragma_update(None, "synchronous", "FULL").map_err(backend)?;
    conn.pragma_update(None, "foreign_keys", "ON").map_err(backend)?;
    // Savepoint sub-journals (one per job in a group commit) stay in memory.
    conn.pragma_update(None, "temp_store", "MEMORY").map_err(backend)?;
    Ok(conn)
}

impl SqliteStore {
    /// Open (creating if needed) the database file at `path` and bring its schema up to date.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStore> {
        let path = path.as_ref().to_path_buf();
        let mut conn = open_conn(&path)?;
        migrate(&mut conn, &mut |_| {})?;
        let readers = (0..READERS).map(|_| open_conn(&path).map(Mutex::new)).collect::<Result<Vec<_>>>()?;
        let (tx, rx) = mpsc::channel::<Job>();
        let handle = std::thread::Builder::new()
            .name("arbiter-sqlite-writer".into())
            .spawn(move || writer_loop(conn, rx))
            .map_err(|e| StoreError::backend("cannot start the writer thread", e))?;
        Ok(SqliteStore {
            path,
            writer: Mutex::new(Some(tx)),
            writer_thread: Mutex::new(Some(handle)),
            readers: Arc::new(readers),
            next_reader: AtomicUsize::new(0),
        })
    }

    /// Write a consistent snapshot of the whole database to `dest` (which must
    /// not exist) while the store keeps serving: `VACUUM INTO` reads one
    /// transaction's view, so concurrent commits are either fully in it or not.
    pub async fn backup_to(&self, dest: impl AsRef<Path>) -> Result<()> {
        let dest = dest.as_ref().to_path_buf();
        if dest.exists() {
            return Err(StoreError::Conflict(format!(
                "{} already exists; choose a new file for the backup",
                dest.display()
            )));
        }
        let target =
            dest.to_str().ok_or_else(|| StoreError::backend_msg("the backup path must be valid UTF-8"))?.to_string();
        self.read(move |c| c.execute("VACUUM INTO ?1", [target]).map(|_| ()).map_err(backend)).await
    }

    /// The writer connection's `journal_mode` and `synchronous` (2 is FULL):
    /// what an acknowledged write's durability rests on.
    pub async fn durability(&self) -> Result<(String, i64)> {
        self.write(|c| {
            let mode: String = c.pragma_query_value(None, "journal_mode", |r| r.get(0)).map_err(backend)?;
            let sync: i64 = c.pragma_query_value(None, "synchronous", |r| r.get(0)).map_err(backend)?;
            Ok((mode, sync))
        })
        .await
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stop accepting writes, finish the ones queued, and wait for the writer.
    pub fn close(&self) {
        self.writer.lock().map(|mut w| w.take()).ok();
        if let Some(h) = self.writer_thread.lock().ok().and_then(|mut h| h.take()) {
            let _ = h.join();
        }
    }

    /// Run `f` inside the next group-commit batch; resolves after the batch commits.
    async fn write<T: Send + 'static>(&self, f: impl FnOnce(&Connection) -> Result<T> + Send + 'static) -> Result<T> {
        self.write_chained(move |c, _| f(c)).await
    }

    /// Like [`SqliteStore::write`], for jobs that write decision rows: they
    /// record them in the batch's chain commitment.
    async fn write_chained<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection, &mut ChainBatch) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = oneshot::channel::<Result<T>>();
        let job: Job = Box::new(move |conn, chain| match f(conn, chain) {
            Ok(v) => Ok(Box::new(move |committed: Result<()>| {
                let _ = tx.send(committed.map(|()| v));
            }) as Reply),
            // told after the batch commits, like everyone in it
            Err(e) => Err(Box::new(move |_: Result<()>| {
                let _ = tx.send(Err(e));
            }) as Reply),
        });
        {
            let guard = self.writer.lock().map_err(|_| StoreError::Closed)?;
            let sender = guard.as_ref().ok_or(StoreError::Closed)?;
            sender.send(job).map_err(|_| StoreError::Closed)?;
        }
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Run a read on one of the reader connections, off the async threads.
    async fn read<T: Send + 'static>(&self, f: impl FnOnce(&Connection) -> Result<T> + Send + 'static) -> Result<T> {
        let readers = self.readers.clone();
        let i = self.next_reader.fetch_add(1, Ordering::Relaxed) % readers.len();
        tokio::task::spawn_blocking(move || {
            let conn = readers[i]
                .lock()
                .map_err(|_| StoreError::backend_msg("a reader connection is poisoned (a read panicked)"))?;
            f(&conn)
        })
        .await
        .map_err(|e| StoreError::backend("the read task failed", e))?
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.close();
    }
}

/// Rows of one JSON `body` column, parsed.
fn load_bodies<T: serde::de::DeserializeOwned>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<T>> {
    let mut st = conn.prepare_cached(sql).map_err(backend)?;
    let rows = st.query_map(params, |r| r.get::<_, String>(0)).map_err(backend)?;
    rows.map(|b| serde_json::from_str(&b.map_err(backend)?).map_err(corrupt)).collect()
}

#[async_trait]
impl Store for SqliteStore {
    async fn activate_policy(&self, v: PolicyVersion, at: Timestamp, by: &str) -> Result<()> {
        SqliteStore::activate_policy(self, v, at, by).await
    }

    async fn active_policy(&self) -> Result<Option<PolicyVersion>> {
        SqliteStore::active_policy(self).await
    }

    async fn policy_version(&self, hash: &str) -> Result<Option<PolicyVersion>> {
        SqliteStore::policy_version(self, hash).await
    }

    async fn policy_versions(&self) -> Result<Vec<PolicyVersionSummary>> {
        SqliteStore::policy_versions(self).await
    }

    async fn store_policy_draft(&self, v: PolicyVersion, at: Timestamp, by: &str) -> Result<bool> {
        SqliteStore::store_policy_draft(self, v, at, by).await
    }

    async fn policy_activations(&self, hash: &str) -> Result<Vec<Timestamp>> {
        SqliteStore::policy_activations(self, hash).await
    }

    async fn lesson(&self, id: &str) -> Result<Option<arbiter_core::lesson::Lesson>> {
        SqliteStore::lesson(self, id).await
    }

    async fn lessons(&self, filter: crate::LessonFilter) -> Result<Vec<arbiter_core::lesson::Lesson>> {
        SqliteStore::lessons(self, filter).await
    }

    async fn create_missing_lesson(
        &self,
        review_id: &str,
        by: &str,
        at: Timestamp,
    ) -> Result<arbiter_core::lesson::Lesson> {
        SqliteStore::create_missing_lesson(self, review_id, by, at).await
    }

    async fn update_lesson(
        &self,
        id: &str,
        patch: arbiter_core::lesson::LessonPatch,
        by: &str,
        at: Timestamp,
    ) -> Result<arbiter_core::lesson::Lesson> {
        SqliteStore::update_lesson(self, id, patch, by, at).await
    }

    async fn lesson_events(&self, id: &str) -> Result<Vec<Event>> {
        SqliteStore::lesson_events(self, id).await
    }

    async fn search(&self, query: arbiter_core::search::SearchQuery) -> Result<Vec<arbiter_core::search::SearchHit>> {
        SqliteStore::search(self, query).await
    }

    async fn similar_candidates(&self, action: &str, before: Timestamp, limit: usize) -> Result<Vec<Decision>> {
        SqliteStore::similar_candidates(self, action, before, limit).await
    }

    async fn agent_activity(
        &self,
        agent: &str,
        action: &str,
        since: Timestamp,
        limit: usize,
    ) -> Result<Vec<arbiter_core::insight::Activity>> {
        SqliteStore::agent_activity(self, agent, action, since, limit).await
    }

    async fn agent_totals(&self, agent: &str, since: Timestamp) -> Result<arbiter_core::insight::AgentTotals> {
        SqliteStore::agent_totals(self, agent, since).await
    }

    async fn subject_history(&self, subject: &str, before: Timestamp, limit: usize) -> Result<(u64, Vec<Decision>)> {
        SqliteStore::subject_history(self, subject, before, limit).await
    }

    async fn reviewed_decisions(&self, action: Option<&str>, since: Timestamp, limit: usize) -> Result<Vec<Decision>> {
        SqliteStore::reviewed_decisions(self, action, since, limit).await
    }

    async fn labelled_points(
        &self,
        actions: &[String],
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<arbiter_core::recurrence::Labelled>> {
        SqliteStore::labelled_points(self, actions, from, to).await
    }

    async fn offer_suggestions(
        &self,
        found: Vec<arbiter_core::suggest::Suggestion>,
        now: Timestamp,
    ) -> Result<Vec<arbiter_core::suggest::Suggestion>> {
        SqliteStore::offer_suggestions(self, found, now).await
    }

    async fn suggestions(&self, limit: usize) -> Result<Vec<arbiter_core::suggest::Suggestion>> {
        SqliteStore::suggestions(self, limit).await
    }

    async fn suggestion(&self, id: &str) -> Result<Option<arbiter_core::suggest::Suggestion>> {
        SqliteStore::suggestion(self, id).await
    }

    async fn decide_suggestion(
        &self,
        id: &str,
        state: arbiter_core::suggest::SuggestionState,
        draft_policy: Option<String>,
        by: &str,
        at: Timestamp,
    ) -> Result<arbiter_core::suggest::Suggestion> {
        SqliteStore::decide_suggestion(self, id, state, draft_policy, by, at).await
    }

    async fn find_cases(&self, query: crate::CaseQuery) -> Result<crate::CasePage> {
        SqliteStore::find_cases(self, query).await
    }

    async fn first_start(&self, start: crate::FirstStart, at: Timestamp) -> Result<crate::FirstStartDone> {
        SqliteStore::first_start(self, start, at).await
    }

    async fn create_key(&self, k: KeyRecord) -> Result<()> {
        SqliteStore::create_key(self, k).await
    }

    async fn key(&self, id: &str) -> Result<Option<KeyRecord>> {
        SqliteStore::key(self, id).await
    }

    async fn keys(&self) -> Result<Vec<KeyRecord>> {
        SqliteStore::keys(self).await
    }

    async fn revoke_key(&self, id: &str, at: Timestamp) -> Result<bool> {
        SqliteStore::revoke_key(self, id, at).await
    }

    async fn set_key_expiry(&self, id: &str, expires_at: Option<Timestamp>) -> Result<bool> {
        SqliteStore::set_key_expiry(self, id, expires_at).await
    }

    async fn create_session(&self, session: crate::ConsoleSession) -> Result<()> {
        SqliteStore::create_session(self, session).await
    }

    async fn session(&self, id: &str) -> Result<Option<crate::ConsoleSession>> {
        SqliteStore::session(self, id).await
    }

    async fn end_session(&self, id: &str, at: Timestamp) -> Result<bool> {
        SqliteStore::end_session(self, id, at).await
    }

    async fn insert_decision(&self, new: NewDecision) -> Result<Inserted> {
        SqliteStore::insert_decision(self, new).await
    }

    async fn decision(&self, id: &str) -> Result<Option<Decision>> {
        SqliteStore::decision(self, id).await
    }

    async fn replayed_decision(&self, agent: &str, key: &str, request_digest: &str) -> Result<Option<Decision>> {
        SqliteStore::replayed_decision(self, agent, key, request_digest).await
    }

    async fn labelled_decisions(&self, limit: usize) -> Result<Vec<Decision>> {
        SqliteStore::labelled_decisions(self, limit).await
    }

    async fn recent_decisions(&self, limit: usize) -> Result<Vec<Decision>> {
        SqliteStore::recent_decisions(self, limit).await
    }

    async fn unlabelled_audit_decisions(&self, limit: usize) -> Result<Vec<Decision>> {
        SqliteStore::unlabelled_audit_decisions(self, limit).await
    }

    async fn record_outcome(&self, id: &str, outcome: Outcome) -> Result<Decision> {
        SqliteStore::record_outcome(self, id, outcome).await
    }

    async fn case(&self, id: &str) -> Result<Option<Case>> {
        SqliteStore::case(self, id).await
    }

    async fn open_case(&self, case: Case, actor: &str) -> Result<Case> {
        SqliteStore::open_case(self, case, actor).await
    }

    async fn update_case(&self, id: &str, command: CaseCommand, now: Timestamp) -> Result<CaseUpdate> {
        SqliteStore::update_case(self, id, command, now).await
    }

    async fn cases(&self, f: CaseFilter) -> Result<Vec<Case>> {
        SqliteStore::cases(self, f).await
    }

    async fn active_approval_cases(&self) -> Result<Vec<Case>> {
        SqliteStore::active_approval_cases(self).await
    }

    async fn due_cases(&self, now: Timestamp, limit: usize) -> Result<Vec<String>> {
        SqliteStore::due_cases(self, now, limit).await
    }

    async fn decision_chain(
        &self,
        trace_ids: &[String],
        decision_ids: &[String],
        limit: usize,
    ) -> Result<Vec<Decision>> {
        SqliteStore::decision_chain(self, trace_ids, decision_ids, limit).await
    }

    async fn open_case_count(&self, kind: Option<CaseKind>) -> Result<u64> {
        SqliteStore::open_case_count(self, kind).await
    }

    async fn case_events(&self, case_id: &str) -> Result<Vec<Event>> {
        SqliteStore::case_events(self, case_id).await
    }

    async fn events(&self, after_seq: u64, limit: usize) -> Result<Vec<Event>> {
        SqliteStore::events(self, after_seq, limit).await
    }

    async fn drift_episodes(
        &self,
        open_only: bool,
        limit: usize,
    ) -> Result<Vec<arbiter_core::drift::episode::Episode>> {
        SqliteStore::drift_episodes(self, open_only, limit).await
    }

    async fn drift_episode(&self, id: &str) -> Result<Option<arbiter_core::drift::episode::Episode>> {
        SqliteStore::drift_episode(self, id).await
    }

    async fn save_drift_episode(
        &self,
        episode: arbiter_core::drift::episode::Episode,
        event: Option<crate::EventRecord>,
    ) -> Result<arbiter_core::drift::episode::Episode> {
        SqliteStore::save_drift_episode(self, episode, event).await
    }

    async fn setting_or_insert(&self, name: &str, value: &str) -> Result<String> {
        SqliteStore::setting_or_insert(self, name, value).await
    }

    async fn dashboard(&self, since: Timestamp) -> Result<crate::Dashboard> {
        SqliteStore::dashboard(self, since).await
    }

    async fn record_event(&self, kind: &str, actor: &str, at: Timestamp, data: serde_json::Value) -> Result<Event> {
        SqliteStore::record_event(self, kind, actor, at, data).await
    }

    async fn drift_points(
        &self,
        from: Timestamp,
        to: Timestamp,
        live_within_ms: i64,
    ) -> Result<Vec<crate::DriftPoint>> {
        SqliteStore::drift_points(self, from, to, live_within_ms).await
    }

    async fn create_webhook(&self, w: Webhook) -> Result<()> {
        SqliteStore::create_webhook(self, w).await
    }

    async fn webhooks(&self) -> Result<Vec<Webhook>> {
        SqliteStore::webhooks(self).await
    }

    async fn delete_webhook(&self, id: &str) -> Result<bool> {
        SqliteStore::delete_webhook(self, id).await
    }

    async fn claim_due_deliveries(
        &self,
        now: Timestamp,
        lease_ms: i64,
        limit: usize,
        per_webhook: usize,
        in_flight: std::collections::HashMap<String, usize>,
    ) -> Result<Vec<DueDelivery>> {
        SqliteStore::claim_due_deliveries(self, now, lease_ms, limit, per_webhook, in_flight).await
    }

    async fn record_delivery_attempt(&self, id: u64, a: DeliveryAttempt) -> Result<()> {
        SqliteStore::record_delivery_attempt(self, id, a).await
    }

    async fn deliveries(&self, webhook_id: &str, limit: usize) -> Result<Vec<Delivery>> {
        SqliteStore::deliveries(self, webhook_id, limit).await
    }

    async fn record_tool_result(&self, id: &str, result: arbiter_core::ToolResult) -> Result<Decision> {
        SqliteStore::record_tool_result(self, id, result).await
    }

    async fn settings_with_prefix(&self, prefix: &str) -> Result<Vec<(String, String)>> {
        SqliteStore::settings_with_prefix(self, prefix).await
    }

    async fn consume_receipt(
        &self,
        decision_id: &str,
        consumer: &str,
        args_digest: &str,
        at: Timestamp,
    ) -> Result<crate::Consumption> {
        SqliteStore::consume_receipt(self, decision_id, consumer, args_digest, at).await
    }

    async fn insert_spans(&self, sender: &str, spans: Vec<arbiter_core::trace::Span>, at: Timestamp) -> Result<u64> {
        SqliteStore::insert_spans(self, sender, spans, at).await
    }

    async fn trace_spans(
        &self,
        trace_id: &str,
        sender: Option<&str>,
        limit: usize,
    ) -> Result<Vec<arbiter_core::trace::Span>> {
        SqliteStore::trace_spans(self, trace_id, sender, limit).await
    }

    async fn trace_of_tool_call(&self, sender: &str, tool_call_id: &str) -> Result<Option<String>> {
        SqliteStore::trace_of_tool_call(self, sender, tool_call_id).await
    }

    async fn purge_spans(&self, before: Timestamp, keep: Vec<String>) -> Result<u64> {
        SqliteStore::purge_spans(self, before, keep).await
    }

    async fn acquire_lease(&self, name: &str, holder: &str, now: Timestamp, ttl_ms: i64) -> Result<bool> {
        let (name, holder) = (name.to_string(), holder.to_string());
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO leases (name, holder, expires_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
                     WHERE leases.holder = excluded.holder OR leases.expires_at <= ?4
                 RETURNING holder",
            )
            .map_err(backend)?
            .query_row(params![name, holder, now.plus_millis(ttl_ms).0, now.0], |_| Ok(()))
            .optional()
            .map(|held| held.is_some())
            .map_err(backend)
        })
        .await
    }

    async fn verify_audit(&self, anchor: Option<ChainHead>) -> Result<AuditReport> {
        SqliteStore::verify_audit(self, anchor).await
    }

    async fn chain_head(&self) -> Result<Option<ChainHead>> {
        SqliteStore::chain_head(self).await
    }
}
