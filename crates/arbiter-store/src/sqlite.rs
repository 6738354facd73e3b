//! The SQLite backend: one writer thread that commits concurrent requests in
//! batches (group commit, one fsync per batch), and a small pool of reader
//! connections. WAL mode with `synchronous=FULL`: an acknowledged write survives
//! a killed process and a power cut.

use crate::events::{Event, GENESIS_HASH};
use crate::rules::{
    AuditProblem, AuditReport, ChainBatch, ChainHead, ChainWalk, DECISIONS_COMMITTED, DecisionColumns, DecisionLedger,
    command_actor, final_from_event,
};
use crate::{
    CaseFilter, CaseUpdate, Delivery, DeliveryAttempt, DeliveryStatus, DueDelivery, Inserted, KeyRecord, NewDecision,
    PolicyVersion, PolicyVersionSummary, Result, Store, StoreError, Webhook, WebhookFormat, finalize,
};
use arbiter_core::{Case, CaseCommand, CaseEvent, CaseKind, CaseState, Decision, Outcome, Role, Timestamp};
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use tokio::sync::oneshot;

const MIGRATIONS: &[(u32, &str)] = &[
    (1, include_str!("../migrations/sqlite/0001_init.sql")),
    (2, include_str!("../migrations/sqlite/0002_review_workflow.sql")),
    (3, include_str!("../migrations/sqlite/0003_decision_sessions.sql")),
    (4, include_str!("../migrations/sqlite/0004_settings.sql")),
    (5, include_str!("../migrations/sqlite/0005_dashboard.sql")),
    (6, include_str!("../migrations/sqlite/0006_trust.sql")),
];
const MAX_BATCH: usize = 1024;
const READERS: usize = 4;

type Reply = Box<dyn FnOnce(Result<()>) + Send>;
type Job = Box<dyn FnOnce(&Connection, &mut ChainBatch) -> Option<Reply> + Send>;

/// The embedded SQLite store.
pub struct SqliteStore {
    path: PathBuf,
    writer: Mutex<Option<mpsc::Sender<Job>>>,
    writer_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    readers: Arc<Vec<Mutex<Connection>>>,
    next_reader: AtomicUsize,
}

fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn corrupt(e: serde_json::Error) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

fn open_conn(path: &Path) -> Result<Connection> {
    let conn =
        Connection::open(path).map_err(|e| StoreError::Backend(format!("cannot open {}: {e}", path.display())))?;
    conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(backend)?;
    conn.pragma_update(None, "journal_mode", "WAL").map_err(backend)?;
    conn.pragma_update(None, "synchronous", "FULL").map_err(backend)?;
    conn.pragma_update(None, "foreign_keys", "ON").map_err(backend)?;
    // Savepoint sub-journals (one per job in a group commit) stay in memory.
    conn.pragma_update(None, "temp_store", "MEMORY").map_err(backend)?;
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> Result<()> {
    let current: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(backend)?;
    let latest = MIGRATIONS.last().map_or(0, |m| m.0);
    if current > latest {
        return Err(StoreError::Corrupt(format!(
            "the database has schema version {current}, newer than this Arbiter knows ({latest}); upgrade Arbiter"
        )));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        let tx = conn.transaction().map_err(backend)?;
        tx.execute_batch(sql).map_err(|e| StoreError::Backend(format!("migration {version} failed: {e}")))?;
        if *version == 6 {
            commit_existing_decisions(&tx)?;
        }
        tx.pragma_update(None, "user_version", version).map_err(backend)?;
        tx.commit().map_err(backend)?;
        tracing::info!(version, "applied SQLite migration");
    }
    Ok(())
}

/// Decisions written before they were chained are committed by the upgrade
/// (events marked `backfill`, 10,000 decisions each): from then on, editing
/// them is detected.
fn commit_existing_decisions(conn: &Connection) -> Result<()> {
    let flush = |chain: &mut ChainBatch| -> Result<()> {
        if let Some((mut data, at)) = chain.take() {
            data["backfill"] = serde_json::Value::Bool(true);
            append_event(conn, None, None, DECISIONS_COMMITTED, "system", at, data)?;
        }
        Ok(())
    };
    let mut chain = ChainBatch::default();
    let mut st = conn.prepare("SELECT id, body, received_at FROM decisions ORDER BY seq").map_err(backend)?;
    let mut rows = st.query([]).map_err(backend)?;
    while let Some(r) = rows.next().map_err(backend)? {
        let (id, body, at): (String, String, i64) =
            (r.get(0).map_err(backend)?, r.get(1).map_err(backend)?, r.get(2).map_err(backend)?);
        chain.cover(&id, &body, Timestamp(at));
        if chain.len() >= 10_000 {
            flush(&mut chain)?;
        }
    }
    flush(&mut chain)
}

fn writer_loop(mut conn: Connection, rx: mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let tx = match conn.transaction() {
            Ok(tx) => tx,
            Err(e) => {
                tracing::error!(error = %e, "cannot begin a write transaction");
                // Dropping the jobs drops their reply channels: callers see `Closed`.
                continue;
            }
        };
        let mut replies = Vec::with_capacity(batch.len());
        let mut chain = ChainBatch::default();
        run_batch(&tx, batch, &mut replies, &mut chain);
        // The decisions this batch wrote are committed to the audit chain in
        // the same transaction: one event for the whole batch.
        let wrote_decisions = !chain.is_empty();
        let committed = match chain.take() {
            Some((data, at)) => append_event(&tx, None, None, DECISIONS_COMMITTED, "system", at, data).map(|_| ()),
            None => Ok(()),
        };
        let outcome = match committed {
            Ok(()) if wrote_decisions => fail_point("decision_commit").and_then(|()| tx.commit().map_err(backend)),
            Ok(()) => tx.commit().map_err(backend),
            Err(e) => Err(e),
        };
        for reply in replies {
            reply(outcome.clone());
        }
    }
}

/// Test hook: `ARBITER_TEST_FAIL=decision_commit` makes every commit of a
/// batch that wrote decisions fail, so the durability tests can prove that
/// no decision is acknowledged unless it committed.
fn fail_point(name: &str) -> Result<()> {
    static FAIL: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    match FAIL.get_or_init(|| std::env::var("ARBITER_TEST_FAIL").ok()) {
        Some(n) if n == name => Err(StoreError::Backend(format!("injected failure at `{name}` (ARBITER_TEST_FAIL)"))),
        _ => Ok(()),
    }
}

fn run_batch(tx: &Transaction<'_>, batch: Vec<Job>, replies: &mut Vec<Reply>, chain: &mut ChainBatch) {
    for job in batch {
        // A savepoint per job: a job that fails rolls back alone, and the rest
        // of the batch still commits.
        if tx.execute_batch("SAVEPOINT job").is_err() {
            continue;
        }
        let covered = chain.len();
        match job(tx, chain) {
            Some(reply) => {
                let _ = tx.execute_batch("RELEASE job");
                replies.push(reply);
            }
            None => {
                chain.truncate(covered);
                let _ = tx.execute_batch("ROLLBACK TO job; RELEASE job");
            }
        }
    }
}

impl SqliteStore {
    /// Open (creating if needed) the database file at `path` and bring its schema up to date.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStore> {
        let path = path.as_ref().to_path_buf();
        let mut conn = open_conn(&path)?;
        migrate(&mut conn)?;
        let readers = (0..READERS).map(|_| open_conn(&path).map(Mutex::new)).collect::<Result<Vec<_>>>()?;
        let (tx, rx) = mpsc::channel::<Job>();
        let handle = std::thread::Builder::new()
            .name("arbiter-sqlite-writer".into())
            .spawn(move || writer_loop(conn, rx))
            .map_err(|e| StoreError::Backend(format!("cannot start the writer thread: {e}")))?;
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
            dest.to_str().ok_or_else(|| StoreError::Backend("the backup path must be valid UTF-8".into()))?.to_string();
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
            Ok(v) => Some(Box::new(move |committed: Result<()>| {
                let _ = tx.send(committed.map(|()| v));
            }) as Reply),
            Err(e) => {
                let _ = tx.send(Err(e));
                None
            }
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
            let conn = readers[i].lock().map_err(|_| StoreError::Backend("reader connection poisoned".into()))?;
            f(&conn)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("reader task failed: {e}")))?
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.close();
    }
}

fn load_decision(conn: &Connection, id: &str) -> Result<Option<Decision>> {
    let body: Option<String> =
        conn.query_row("SELECT body FROM decisions WHERE id = ?1", [id], |r| r.get(0)).optional().map_err(backend)?;
    body.map(|b| serde_json::from_str(&b).map_err(corrupt)).transpose()
}

/// Rewrite a decision row (after it became final or got an outcome) and commit it to the chain.
fn save_decision(conn: &Connection, chain: &mut ChainBatch, d: &Decision, at: Timestamp) -> Result<()> {
    let body = serde_json::to_string(d).map_err(corrupt)?;
    let col = DecisionColumns::of(d);
    conn.prepare_cached(
        "UPDATE decisions SET status = ?2, final_verdict = ?3, outcome_correct = ?4, outcome_cost = ?5, body = ?6 WHERE id = ?1",
    )
    .map_err(backend)?
    .execute(params![d.id, col.status, col.final_verdict, col.outcome_correct, col.outcome_cost, body])
    .map_err(backend)?;
    chain.cover(&d.id, &body, at);
    Ok(())
}

fn load_case(conn: &Connection, id: &str) -> Result<Option<Case>> {
    let body: Option<String> =
        conn.query_row("SELECT body FROM cases WHERE id = ?1", [id], |r| r.get(0)).optional().map_err(backend)?;
    body.map(|b| serde_json::from_str(&b).map_err(corrupt)).transpose()
}

fn save_case(conn: &Connection, c: &Case, insert: bool) -> Result<()> {
    let body = serde_json::to_string(c).map_err(corrupt)?;
    let sql = if insert {
        "INSERT INTO cases (id, kind, state, decision_id, sla_deadline, created_at, updated_at, body, due_at, trace_id, agent)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
    } else {
        "UPDATE cases SET kind = ?2, state = ?3, decision_id = ?4, sla_deadline = ?5, created_at = ?6, updated_at = ?7,
         body = ?8, due_at = ?9, trace_id = ?10, agent = ?11 WHERE id = ?1"
    };
    conn.prepare_cached(sql)
        .map_err(backend)?
        .execute(params![
            c.id,
            c.kind.as_str(),
            c.state.as_str(),
            c.decision_id,
            c.sla_deadline.0,
            c.created_at.0,
            c.updated_at.0,
            body,
            c.due_at().map(|t| t.0),
            c.trace_id,
            c.agent
        ])
        .map_err(backend)?;
    Ok(())
}

/// Append a case event to the chain and queue it for every webhook that wants it.
fn append_case_event(conn: &Connection, case: &Case, ev: &CaseEvent, actor: &str, at: Timestamp) -> Result<Event> {
    let e = append_event(conn, Some(&case.id), case.decision_id.as_deref(), ev.kind(), actor, at, ev.data())?;
    queue_deliveries(conn, &e)?;
    Ok(e)
}

/// Queue `e` for every active webhook that wants its kind (the outbox is
/// written in the same transaction as the event).
fn queue_deliveries(conn: &Connection, e: &Event) -> Result<()> {
    let hooks: Vec<(String, String)> = conn
        .prepare_cached("SELECT id, events FROM webhooks WHERE active = 1")
        .map_err(backend)?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(backend)?
        .collect::<rusqlite::Result<_>>()
        .map_err(backend)?;
    for (id, events) in hooks {
        let kinds: std::collections::BTreeSet<String> = serde_json::from_str(&events).map_err(corrupt)?;
        if crate::rules::webhook_wants(&kinds, &e.kind) {
            conn.prepare_cached(
                "INSERT INTO webhook_deliveries (webhook_id, event_seq, kind, status, next_attempt_at, created_at)
                 VALUES (?1, ?2, ?3, 'pending', ?4, ?4)",
            )
            .map_err(backend)?
            .execute(params![id, e.seq as i64, e.kind, e.at.0])
            .map_err(backend)?;
        }
    }
    Ok(())
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

fn load_events(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<Vec<Event>> {
    let mut st = conn.prepare_cached(sql).map_err(backend)?;
    let rows = st.query_map(params, row_event).map_err(backend)?;
    rows.map(|r| {
        let (mut ev, data) = r.map_err(backend)?;
        ev.data = serde_json::from_str(&data).map_err(corrupt)?;
        Ok(ev)
    })
    .collect()
}

const DELIVERY_COLS: &str = "d.id, d.webhook_id, d.event_seq, d.kind, d.status, d.attempts, d.next_attempt_at, d.last_status, d.last_error, d.created_at, d.delivered_at";

fn row_delivery(r: &rusqlite::Row<'_>) -> rusqlite::Result<Delivery> {
    let status: String = r.get(4)?;
    Ok(Delivery {
        id: r.get::<_, i64>(0)? as u64,
        webhook_id: r.get(1)?,
        event_seq: r.get::<_, i64>(2)? as u64,
        kind: r.get(3)?,
        status: match status.as_str() {
            "delivered" => DeliveryStatus::Delivered,
            "failed" => DeliveryStatus::Failed,
            _ => DeliveryStatus::Pending,
        },
        attempts: r.get::<_, i64>(5)? as u32,
        next_attempt_at: r.get::<_, Option<i64>>(6)?.map(Timestamp),
        last_status: r.get::<_, Option<i64>>(7)?.map(|s| s as u16),
        last_error: r.get(8)?,
        created_at: Timestamp(r.get(9)?),
        delivered_at: r.get::<_, Option<i64>>(10)?.map(Timestamp),
    })
}

const WEBHOOK_COLS: &str = "w.id, w.url, w.events, w.format, w.secret, w.created_at, w.created_by, w.active";

fn row_webhook(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<(Webhook, String)> {
    let format: String = r.get(at + 3)?;
    Ok((
        Webhook {
            id: r.get(at)?,
            url: r.get(at + 1)?,
            events: Default::default(),
            format: if format == "slack" { WebhookFormat::Slack } else { WebhookFormat::Json },
            secret: r.get(at + 4)?,
            created_at: Timestamp(r.get(at + 5)?),
            created_by: r.get(at + 6)?,
            active: r.get::<_, i64>(at + 7)? != 0,
        },
        r.get(at + 2)?,
    ))
}

fn finish_webhook((mut w, events): (Webhook, String)) -> Result<Webhook> {
    w.events = serde_json::from_str(&events).map_err(corrupt)?;
    Ok(w)
}

/// Append one event to the chain, linking it to the last one.
fn append_event(
    conn: &Connection,
    case_id: Option<&str>,
    decision_id: Option<&str>,
    kind: &str,
    actor: &str,
    at: Timestamp,
    data: serde_json::Value,
) -> Result<Event> {
    let last: Option<(i64, String)> = conn
        .prepare_cached("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1")
        .map_err(backend)?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .map_err(backend)?;
    let (seq, prev_hash) = last.map_or((1, GENESIS_HASH.to_string()), |(s, h)| (s as u64 + 1, h));
    let mut ev = Event {
        seq,
        case_id: case_id.map(str::to_string),
        decision_id: decision_id.map(str::to_string),
        kind: kind.to_string(),
        actor: actor.to_string(),
        at,
        data,
        prev_hash,
        hash: String::new(),
    };
    ev.hash = ev.compute_hash();
    conn.prepare_cached(
        "INSERT INTO events (seq, case_id, decision_id, kind, actor, at, data, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )
    .map_err(backend)?
    .execute(
        params![ev.seq as i64, ev.case_id, ev.decision_id, ev.kind, ev.actor, ev.at.0, ev.data.to_string(), ev.prev_hash, ev.hash],
    )
    .map_err(backend)?;
    Ok(ev)
}

fn row_policy_version(r: &rusqlite::Row<'_>) -> rusqlite::Result<PolicyVersion> {
    Ok(PolicyVersion {
        hash: r.get(0)?,
        name: r.get(1)?,
        source: r.get(2)?,
        created_at: Timestamp(r.get(3)?),
        created_by: r.get(4)?,
    })
}

fn row_event(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Event, String)> {
    Ok((
        Event {
            seq: r.get::<_, i64>(0)? as u64,
            case_id: r.get(1)?,
            decision_id: r.get(2)?,
            kind: r.get(3)?,
            actor: r.get(4)?,
            at: Timestamp(r.get(5)?),
            data: serde_json::Value::Null,
            prev_hash: r.get(7)?,
            hash: r.get(8)?,
        },
        r.get::<_, String>(6)?,
    ))
}

/// The stored text of an enum column as the static name it should be, so that
/// a forged value compares unequal instead of failing to parse.
fn static_str(s: &str) -> &'static str {
    ["allow", "escalate", "deny", "final", "pending"].into_iter().find(|k| *k == s).unwrap_or("(unknown)")
}

const EVENT_COLS: &str = "seq, case_id, decision_id, kind, actor, at, data, prev_hash, hash";

const KEY_COLS: &str = "id, name, role, tags, digest, created_at, revoked_at, expires_at, rate_limit";

type KeyRow = (KeyRecord, String, String, Option<String>);

fn key_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<KeyRow> {
    Ok((
        KeyRecord {
            id: r.get(0)?,
            name: r.get(1)?,
            role: Role::Agent,
            tags: Default::default(),
            digest: r.get(4)?,
            created_at: Timestamp(r.get(5)?),
            revoked_at: r.get::<_, Option<i64>>(6)?.map(Timestamp),
            expires_at: r.get::<_, Option<i64>>(7)?.map(Timestamp),
            rate_limit: None,
        },
        r.get(2)?,
        r.get(3)?,
        r.get(8)?,
    ))
}

fn finish_key((mut k, role, tags, rate): KeyRow) -> Result<KeyRecord> {
    k.role = role.parse().map_err(StoreError::Corrupt)?;
    k.tags = serde_json::from_str(&tags).map_err(corrupt)?;
    k.rate_limit = rate.map(|r| r.parse().map_err(StoreError::Corrupt)).transpose()?;
    Ok(k)
}

#[async_trait]
impl Store for SqliteStore {
    async fn activate_policy(&self, v: PolicyVersion, at: Timestamp, by: &str) -> Result<()> {
        let by = by.to_string();
        self.write(move |c| {
            c.execute(
                "INSERT OR IGNORE INTO policy_versions (hash, name, source, created_at, created_by) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![v.hash, v.name, v.source, v.created_at.0, v.created_by],
            )
            .map_err(backend)?;
            let previous: Option<String> = c
                .query_row("SELECT hash FROM policy_activations ORDER BY seq DESC LIMIT 1", [], |r| r.get(0))
                .optional()
                .map_err(backend)?;
            c.execute(
                "INSERT INTO policy_activations (hash, activated_at, activated_by) VALUES (?1, ?2, ?3)",
                params![v.hash, at.0, by],
            )
            .map_err(backend)?;
            append_event(
                c,
                None,
                None,
                "policy.activated",
                &by,
                at,
                serde_json::json!({"hash": v.hash, "name": v.name, "previous": previous}),
            )?;
            Ok(())
        })
        .await
    }

    async fn active_policy(&self) -> Result<Option<PolicyVersion>> {
        self.read(|c| {
            c.query_row(
                "SELECT v.hash, v.name, v.source, v.created_at, v.created_by FROM policy_activations a
                 JOIN policy_versions v ON v.hash = a.hash ORDER BY a.seq DESC LIMIT 1",
                [],
                row_policy_version,
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn policy_version(&self, hash: &str) -> Result<Option<PolicyVersion>> {
        let hash = hash.to_string();
        self.read(move |c| {
            c.query_row(
                "SELECT hash, name, source, created_at, created_by FROM policy_versions WHERE hash = ?1",
                [hash],
                row_policy_version,
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn policy_versions(&self) -> Result<Vec<PolicyVersionSummary>> {
        self.read(|c| {
            let active: Option<String> = c
                .query_row("SELECT hash FROM policy_activations ORDER BY seq DESC LIMIT 1", [], |r| r.get(0))
                .optional()
                .map_err(backend)?;
            let mut st = c
                .prepare(
                    "SELECT v.hash, v.name, v.created_at, v.created_by, MAX(a.activated_at) FROM policy_versions v
                     LEFT JOIN policy_activations a ON a.hash = v.hash GROUP BY v.hash ORDER BY v.created_at DESC, v.hash",
                )
                .map_err(backend)?;
            let rows = st
                .query_map([], |r| {
                    let hash: String = r.get(0)?;
                    Ok(PolicyVersionSummary {
                        active: active.as_deref() == Some(hash.as_str()),
                        hash,
                        name: r.get(1)?,
                        created_at: Timestamp(r.get(2)?),
                        created_by: r.get(3)?,
                        last_activated_at: r.get::<_, Option<i64>>(4)?.map(Timestamp),
                    })
                })
                .map_err(backend)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
        })
        .await
    }

    async fn create_key(&self, k: KeyRecord) -> Result<()> {
        self.write(move |c| {
            let tags = serde_json::to_string(&k.tags).map_err(corrupt)?;
            c.execute(
                "INSERT INTO api_keys (id, name, role, tags, digest, created_at, revoked_at, expires_at, rate_limit)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    k.id,
                    k.name,
                    k.role.as_str(),
                    tags,
                    k.digest,
                    k.created_at.0,
                    k.revoked_at.map(|t| t.0),
                    k.expires_at.map(|t| t.0),
                    k.rate_limit.map(|r| r.to_string())
                ],
            )
            .map_err(|e| match e {
                rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation => {
                    StoreError::Conflict(format!("a key with id {} already exists", k.id))
                }
                other => backend(other),
            })?;
            Ok(())
        })
        .await
    }

    async fn key(&self, id: &str) -> Result<Option<KeyRecord>> {
        let id = id.to_string();
        self.read(move |c| {
            c.query_row(&format!("SELECT {KEY_COLS} FROM api_keys WHERE id = ?1"), [id], key_from_row)
                .optional()
                .map_err(backend)?
                .map(finish_key)
                .transpose()
        })
        .await
    }

    async fn keys(&self) -> Result<Vec<KeyRecord>> {
        self.read(|c| {
            let mut st =
                c.prepare(&format!("SELECT {KEY_COLS} FROM api_keys ORDER BY created_at, id")).map_err(backend)?;
            let rows = st.query_map([], key_from_row).map_err(backend)?;
            rows.map(|r| r.map_err(backend).and_then(finish_key)).collect()
        })
        .await
    }

    async fn revoke_key(&self, id: &str, at: Timestamp) -> Result<bool> {
        let id = id.to_string();
        self.write(move |c| {
            let n = c
                .execute("UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL", params![id, at.0])
                .map_err(backend)?;
            Ok(n == 1)
        })
        .await
    }

    async fn set_key_expiry(&self, id: &str, expires_at: Option<Timestamp>) -> Result<bool> {
        let id = id.to_string();
        self.write(move |c| {
            let n = c
                .execute("UPDATE api_keys SET expires_at = ?2 WHERE id = ?1", params![id, expires_at.map(|t| t.0)])
                .map_err(backend)?;
            Ok(n == 1)
        })
        .await
    }

    async fn create_session(&self, session: crate::ConsoleSession) -> Result<()> {
        self.write(move |c| {
            c.execute(
                "INSERT INTO console_sessions (id, key_id, created_at, expires_at, revoked_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    session.id,
                    session.key_id,
                    session.created_at.0,
                    session.expires_at.0,
                    session.revoked_at.map(|t| t.0)
                ],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn session(&self, id: &str) -> Result<Option<crate::ConsoleSession>> {
        let id = id.to_string();
        self.read(move |c| {
            c.prepare_cached(
                "SELECT id, key_id, created_at, expires_at, revoked_at FROM console_sessions WHERE id = ?1",
            )
            .map_err(backend)?
            .query_row([id], |r| {
                Ok(crate::ConsoleSession {
                    id: r.get(0)?,
                    key_id: r.get(1)?,
                    created_at: Timestamp(r.get(2)?),
                    expires_at: Timestamp(r.get(3)?),
                    revoked_at: r.get::<_, Option<i64>>(4)?.map(Timestamp),
                })
            })
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn end_session(&self, id: &str, at: Timestamp) -> Result<bool> {
        let id = id.to_string();
        self.write(move |c| {
            let n = c
                .execute(
                    "UPDATE console_sessions SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                    params![id, at.0],
                )
                .map_err(backend)?;
            Ok(n == 1)
        })
        .await
    }

    async fn insert_decision(&self, new: NewDecision) -> Result<Inserted> {
        self.write_chained(move |c, chain| {
            let mut new = new;
            if let (Some(cap), Some(_)) = (new.open_case_cap, &new.case) {
                let open: i64 = c
                    .prepare_cached(
                        "SELECT COUNT(*) FROM cases WHERE agent = ?1 AND kind = 'approval' AND state IN ('open', 'claimed')",
                    )
                    .map_err(backend)?
                    .query_row([&new.decision.agent], |r| r.get(0))
                    .map_err(backend)?;
                if open as u64 >= cap {
                    crate::rules::apply_case_cap(&mut new.decision, open as u64, cap);
                    new.case = None;
                }
            }
            let d = &new.decision;
            if let Some(key) = &d.idempotency_key {
                let prior: Option<(String, String)> = c
                    .prepare_cached("SELECT request_digest, body FROM decisions WHERE agent = ?1 AND idempotency_key = ?2")
                    .map_err(backend)?
                    .query_row(params![d.agent, key], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
                    .map_err(backend)?;
                if let Some((digest, body)) = prior {
                    if digest != new.request_digest {
                        return Err(StoreError::Conflict(format!(
                            "the idempotency key `{key}` was already used for a different request; use a new key for a new action"
                        )));
                    }
                    return Ok(Inserted::Existing(serde_json::from_str(&body).map_err(corrupt)?));
                }
            }
            let body = serde_json::to_string(d).map_err(corrupt)?;
            let col = DecisionColumns::of(d);
            c.prepare_cached(
                "INSERT INTO decisions (id, agent, idempotency_key, request_digest, action_name, confidence, verdict, status,
                 final_verdict, policy_hash, case_id, trace_id, received_at, event_time, body, session_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
            )
            .map_err(backend)?
            .execute(params![
                d.id,
                col.agent,
                col.idempotency_key,
                new.request_digest,
                col.action_name,
                col.confidence,
                col.verdict,
                col.status,
                col.final_verdict,
                col.policy_hash,
                col.case_id,
                col.trace_id,
                col.received_at,
                col.event_time,
                body,
                col.session_id,
            ])
            .map_err(backend)?;
            chain.cover(&d.id, &body, d.received_at);
            c.prepare_cached(
                "INSERT INTO decision_hourly (hour, action_name, verdict, decisions) VALUES (?1, ?2, ?3, 1)
                 ON CONFLICT (hour, action_name, verdict) DO UPDATE SET decisions = decisions + 1",
            )
            .map_err(backend)?
            .execute(params![d.event_time.0.div_euclid(3_600_000), d.action.name, d.verdict.as_str()])
            .map_err(backend)?;
            if let Some(case) = &new.case {
                save_case(c, case, true)?;
                append_case_event(c, case, &CaseEvent::Opened { case: Box::new(case.clone()) }, &d.agent, case.created_at)?;
            }
            Ok(Inserted::Created(new.decision))
        })
        .await
    }

    async fn decision(&self, id: &str) -> Result<Option<Decision>> {
        let id = id.to_string();
        self.read(move |c| load_decision(c, &id)).await
    }

    async fn labelled_decisions(&self, limit: usize) -> Result<Vec<Decision>> {
        self.read(move |c| {
            let mut out: Vec<Decision> = load_bodies(
                c,
                "SELECT body FROM decisions WHERE outcome_correct IS NOT NULL ORDER BY event_time DESC, seq DESC LIMIT ?1",
                [limit as i64],
            )?;
            out.reverse();
            Ok(out)
        })
        .await
    }

    async fn recent_decisions(&self, limit: usize) -> Result<Vec<Decision>> {
        self.read(move |c| {
            let mut out: Vec<Decision> = load_bodies(
                c,
                "SELECT body FROM decisions ORDER BY event_time DESC, seq DESC LIMIT ?1",
                [limit as i64],
            )?;
            out.reverse();
            Ok(out)
        })
        .await
    }

    async fn record_outcome(&self, id: &str, outcome: Outcome) -> Result<Decision> {
        let id = id.to_string();
        self.write_chained(move |c, chain| {
            let mut d = load_decision(c, &id)?.ok_or_else(|| StoreError::NotFound(format!("decision {id}")))?;
            let at = outcome.recorded_at;
            d.outcome = Some(outcome);
            save_decision(c, chain, &d, at)?;
            Ok(d)
        })
        .await
    }

    async fn case(&self, id: &str) -> Result<Option<Case>> {
        let id = id.to_string();
        self.read(move |c| load_case(c, &id)).await
    }

    async fn open_case(&self, case: Case, actor: &str) -> Result<Case> {
        let actor = actor.to_string();
        self.write(move |c| {
            save_case(c, &case, true)?;
            append_case_event(c, &case, &CaseEvent::Opened { case: Box::new(case.clone()) }, &actor, case.created_at)?;
            Ok(case)
        })
        .await
    }

    async fn update_case(&self, id: &str, command: CaseCommand, now: Timestamp) -> Result<CaseUpdate> {
        let id = id.to_string();
        self.write_chained(move |c, chain| {
            let mut case = load_case(c, &id)?.ok_or_else(|| StoreError::NotFound(format!("case {id}")))?;
            let changes = arbiter_core::workflow::handle(&case, &command, now)?;
            let actor = command_actor(&command);
            let mut events = Vec::with_capacity(changes.len());
            let mut decided = None;
            for ev in &changes {
                case.apply(ev, now);
                events.push(append_case_event(c, &case, ev, actor, now)?);
                if ev.final_verdict().is_some() {
                    decided = Some(ev);
                }
            }
            if changes.is_empty() {
                return Ok(CaseUpdate { case, events, decision: None });
            }
            save_case(c, &case, false)?;
            let mut decision = None;
            if let (Some(ev), Some(did)) = (decided, &case.decision_id) {
                let mut d = load_decision(c, did)?
                    .ok_or_else(|| StoreError::Corrupt(format!("case {} names a missing decision {did}", case.id)))?;
                if let Some(fin) = final_from_event(&case, ev, &d, now) {
                    finalize(&mut d, fin);
                    save_decision(c, chain, &d, now)?;
                    decision = Some(d);
                }
            }
            Ok(CaseUpdate { case, events, decision })
        })
        .await
    }

    async fn cases(&self, f: CaseFilter) -> Result<Vec<Case>> {
        self.read(move |c| {
            let mut sql = String::from("SELECT body FROM cases WHERE 1 = 1");
            if let Some(k) = f.kind {
                sql.push_str(&format!(" AND kind = '{}'", k.as_str()));
            }
            if !f.states.is_empty() {
                let states: Vec<String> = f.states.iter().map(|s| format!("'{}'", s.as_str())).collect();
                sql.push_str(&format!(" AND state IN ({})", states.join(", ")));
            }
            sql.push_str(" ORDER BY seq DESC LIMIT ?1");
            load_bodies(c, &sql, [f.limit.max(1) as i64])
        })
        .await
    }

    async fn active_approval_cases(&self) -> Result<Vec<Case>> {
        self.read(|c| {
            load_bodies(
                c,
                &format!(
                    "SELECT body FROM cases WHERE kind = '{}' AND state IN ('{}', '{}')",
                    CaseKind::Approval.as_str(),
                    CaseState::Open.as_str(),
                    CaseState::Claimed.as_str()
                ),
                [],
            )
        })
        .await
    }

    async fn due_cases(&self, now: Timestamp, limit: usize) -> Result<Vec<String>> {
        self.read(move |c| {
            let mut st = c
                .prepare_cached(
                    "SELECT id FROM cases WHERE due_at IS NOT NULL AND due_at <= ?1 ORDER BY due_at LIMIT ?2",
                )
                .map_err(backend)?;
            let rows = st.query_map(params![now.0, limit as i64], |r| r.get::<_, String>(0)).map_err(backend)?;
            rows.collect::<rusqlite::Result<_>>().map_err(backend)
        })
        .await
    }

    async fn decision_chain(
        &self,
        trace_ids: &[String],
        decision_ids: &[String],
        limit: usize,
    ) -> Result<Vec<Decision>> {
        let (traces, ids) = (trace_ids.to_vec(), decision_ids.to_vec());
        self.read(move |c| {
            if traces.is_empty() && ids.is_empty() {
                return Ok(vec![]);
            }
            let marks = |n: usize| vec!["?"; n].join(", ");
            let named = format!("trace_id IN ({}) OR id IN ({})", marks(traces.len()), marks(ids.len()));
            let params: Vec<&String> = traces.iter().chain(ids.iter()).collect();
            // The sessions of the named decisions and traces widen the chain.
            let mut st = c
                .prepare(&format!(
                    "SELECT DISTINCT session_id FROM decisions WHERE ({named}) AND session_id IS NOT NULL"
                ))
                .map_err(backend)?;
            let sessions: Vec<String> = st
                .query_map(rusqlite::params_from_iter(&params), |r| r.get(0))
                .map_err(backend)?
                .collect::<rusqlite::Result<_>>()
                .map_err(backend)?;
            let sql = format!(
                "SELECT body FROM decisions WHERE {named} OR session_id IN ({}) ORDER BY event_time, seq LIMIT {}",
                marks(sessions.len()),
                limit.max(1)
            );
            let mut st = c.prepare(&sql).map_err(backend)?;
            let rows = st
                .query_map(rusqlite::params_from_iter(params.into_iter().chain(sessions.iter())), |r| {
                    r.get::<_, String>(0)
                })
                .map_err(backend)?;
            rows.map(|b| serde_json::from_str(&b.map_err(backend)?).map_err(corrupt)).collect()
        })
        .await
    }

    async fn open_case_count(&self) -> Result<u64> {
        self.read(|c| {
            c.query_row("SELECT COUNT(*) FROM cases WHERE state IN ('open', 'claimed')", [], |r| r.get::<_, i64>(0))
                .map(|n| n as u64)
                .map_err(backend)
        })
        .await
    }

    async fn case_events(&self, case_id: &str) -> Result<Vec<Event>> {
        let id = case_id.to_string();
        self.read(move |c| {
            load_events(c, &format!("SELECT {EVENT_COLS} FROM events WHERE case_id = ?1 ORDER BY seq"), [id])
        })
        .await
    }

    async fn events(&self, after_seq: u64, limit: usize) -> Result<Vec<Event>> {
        self.read(move |c| {
            load_events(
                c,
                &format!("SELECT {EVENT_COLS} FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2"),
                params![after_seq as i64, limit as i64],
            )
        })
        .await
    }

    async fn setting_or_insert(&self, name: &str, value: &str) -> Result<String> {
        let (name, value) = (name.to_string(), value.to_string());
        self.write(move |c| {
            c.execute("INSERT OR IGNORE INTO settings (name, value) VALUES (?1, ?2)", params![name, value])
                .map_err(backend)?;
            c.query_row("SELECT value FROM settings WHERE name = ?1", [name], |r| r.get(0)).map_err(backend)
        })
        .await
    }

    async fn dashboard(&self, since: Timestamp) -> Result<crate::Dashboard> {
        self.read(move |c| {
            let mut d = crate::Dashboard::default();
            // The hourly roll-up gives both the hourly series and the per-class counts.
            let mut st = c
                .prepare_cached("SELECT hour, action_name, verdict, decisions FROM decision_hourly WHERE hour >= ?1")
                .map_err(backend)?;
            let rows: Vec<(i64, String, String, u64)> = st
                .query_map([since.0.div_euclid(3_600_000)], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, i64>(3)? as u64)))
                .map_err(backend)?
                .collect::<rusqlite::Result<_>>()
                .map_err(backend)?;
            let mut hourly: std::collections::BTreeMap<i64, (u64, u64)> = Default::default();
            let mut by_class: std::collections::BTreeMap<(String, String), u64> = Default::default();
            for (h, action, verdict, n) in rows {
                let slot = hourly.entry(h).or_default();
                slot.0 += n;
                if verdict == "escalate" {
                    slot.1 += n;
                }
                *by_class.entry((action, verdict)).or_default() += n;
            }
            d.hourly = hourly.into_iter().map(|(h, (n, e))| (Timestamp(h * 3_600_000), n, e)).collect();
            d.by_class = by_class.into_iter().map(|((a, v), n)| (a, v, n)).collect();
            let mut st = c
                .prepare_cached(
                    "SELECT e.at - c.created_at FROM events e JOIN cases c ON c.id = e.case_id WHERE e.kind = 'case.decided' AND e.at >= ?1",
                )
                .map_err(backend)?;
            d.time_to_decision_ms = st
                .query_map([since.0], |r| r.get::<_, i64>(0))
                .map_err(backend)?
                .collect::<rusqlite::Result<_>>()
                .map_err(backend)?;
            let count = |kind: &str| -> Result<u64> {
                c.query_row("SELECT COUNT(*) FROM events WHERE kind = ?1 AND at >= ?2", params![kind, since.0], |r| r.get::<_, i64>(0))
                    .map(|n| n as u64)
                    .map_err(backend)
            };
            d.sla_fallbacks = count("case.fallback_applied")?;
            d.tier_escalations = count("case.tier_escalated")?;
            d.drift_alarms = count("drift.alarm")?;
            let mut st = c
                .prepare_cached("SELECT kind, state, COUNT(*) FROM cases WHERE state IN ('open', 'claimed') GROUP BY 1, 2")
                .map_err(backend)?;
            d.open_cases = st
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64)))
                .map_err(backend)?
                .collect::<rusqlite::Result<_>>()
                .map_err(backend)?;
            Ok(d)
        })
        .await
    }

    async fn record_event(&self, kind: &str, actor: &str, at: Timestamp, data: serde_json::Value) -> Result<Event> {
        let (kind, actor) = (kind.to_string(), actor.to_string());
        self.write(move |c| {
            let e = append_event(c, None, None, &kind, &actor, at, data)?;
            queue_deliveries(c, &e)?;
            Ok(e)
        })
        .await
    }

    async fn drift_points(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<(Timestamp, String, arbiter_core::drift::Point)>> {
        self.read(move |c| {
            let mut st = c
                .prepare_cached(
                    "SELECT event_time, id, action_name, verdict, confidence, outcome_correct FROM decisions
                     WHERE event_time >= ?1 AND event_time < ?2 ORDER BY event_time, seq",
                )
                .map_err(backend)?;
            let rows = st
                .query_map(params![from.0, to.0], |r| {
                    Ok((
                        Timestamp(r.get(0)?),
                        r.get::<_, String>(1)?,
                        arbiter_core::drift::Point {
                            action: r.get(2)?,
                            escalated: r.get::<_, String>(3)? == "escalate",
                            confidence: r.get(4)?,
                            correct: r.get(5)?,
                        },
                    ))
                })
                .map_err(backend)?;
            rows.collect::<rusqlite::Result<_>>().map_err(backend)
        })
        .await
    }

    async fn create_webhook(&self, w: Webhook) -> Result<()> {
        self.write(move |c| {
            let events = serde_json::to_string(&w.events).map_err(corrupt)?;
            let format = match w.format {
                WebhookFormat::Json => "json",
                WebhookFormat::Slack => "slack",
            };
            c.execute(
                "INSERT INTO webhooks (id, url, events, format, secret, created_at, created_by, active) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![w.id, w.url, events, format, w.secret, w.created_at.0, w.created_by, w.active],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn webhooks(&self) -> Result<Vec<Webhook>> {
        self.read(|c| {
            let mut st = c
                .prepare(&format!("SELECT {WEBHOOK_COLS} FROM webhooks w ORDER BY w.created_at, w.id"))
                .map_err(backend)?;
            let rows = st.query_map([], |r| row_webhook(r, 0)).map_err(backend)?;
            rows.map(|r| finish_webhook(r.map_err(backend)?)).collect()
        })
        .await
    }

    async fn delete_webhook(&self, id: &str) -> Result<bool> {
        let id = id.to_string();
        self.write(move |c| {
            let n = c.execute("UPDATE webhooks SET active = 0 WHERE id = ?1 AND active = 1", [id]).map_err(backend)?;
            Ok(n > 0)
        })
        .await
    }

    async fn claim_due_deliveries(
        &self,
        now: Timestamp,
        lease_ms: i64,
        limit: usize,
        per_webhook: usize,
        in_flight: std::collections::HashMap<String, usize>,
    ) -> Result<Vec<DueDelivery>> {
        self.write(move |c| {
            // Oldest first within each webhook, at most `per_webhook` each; the
            // ones in flight use up their webhook's share.
            let sql = format!(
                "SELECT {DELIVERY_COLS}, {WEBHOOK_COLS}, e.seq, e.case_id, e.decision_id, e.kind, e.actor, e.at, e.data, e.prev_hash, e.hash, q.rn
                 FROM (SELECT id, ROW_NUMBER() OVER (PARTITION BY webhook_id ORDER BY next_attempt_at, id) AS rn
                       FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= ?1) q
                 JOIN webhook_deliveries d ON d.id = q.id JOIN webhooks w ON w.id = d.webhook_id JOIN events e ON e.seq = d.event_seq
                 WHERE q.rn <= ?2 ORDER BY d.next_attempt_at, d.id"
            );
            let mut st = c.prepare_cached(&sql).map_err(backend)?;
            let rows = st
                .query_map(params![now.0, per_webhook as i64], |r| {
                    let d = row_delivery(r)?;
                    let w = row_webhook(r, 11)?;
                    let ev = Event {
                        seq: r.get::<_, i64>(19)? as u64,
                        case_id: r.get(20)?,
                        decision_id: r.get(21)?,
                        kind: r.get(22)?,
                        actor: r.get(23)?,
                        at: Timestamp(r.get(24)?),
                        data: serde_json::Value::Null,
                        prev_hash: r.get(26)?,
                        hash: r.get(27)?,
                    };
                    Ok((d, w, ev, r.get::<_, String>(25)?, r.get::<_, i64>(28)? as usize))
                })
                .map_err(backend)?;
            let mut out = Vec::new();
            for row in rows {
                let (delivery, w, mut event, data, rank) = row.map_err(backend)?;
                if out.len() >= limit {
                    break;
                }
                if rank + in_flight.get(&delivery.webhook_id).copied().unwrap_or(0) > per_webhook {
                    continue;
                }
                event.data = serde_json::from_str(&data).map_err(corrupt)?;
                out.push(DueDelivery { delivery, webhook: finish_webhook(w)?, event });
            }
            drop(st);
            let until = now.plus_millis(lease_ms);
            for d in &mut out {
                c.prepare_cached("UPDATE webhook_deliveries SET attempts = attempts + 1, next_attempt_at = ?2 WHERE id = ?1")
                    .map_err(backend)?
                    .execute(params![d.delivery.id as i64, until.0])
                    .map_err(backend)?;
                d.delivery.attempts += 1;
                d.delivery.next_attempt_at = Some(until);
            }
            Ok(out)
        })
        .await
    }

    async fn record_delivery_attempt(&self, id: u64, a: DeliveryAttempt) -> Result<()> {
        self.write(move |c| {
            let ok = a.error.is_none() && a.status.is_some_and(|s| (200..300).contains(&s));
            let (status, next, delivered) = match (ok, a.retry_at) {
                (true, _) => (DeliveryStatus::Delivered, None, Some(a.at.0)),
                (false, Some(t)) => (DeliveryStatus::Pending, Some(t.0), None),
                (false, None) => (DeliveryStatus::Failed, None, None),
            };
            let n = c
                .execute(
                    "UPDATE webhook_deliveries SET status = ?2, next_attempt_at = ?3, last_status = ?4,
                     last_error = ?5, delivered_at = ?6 WHERE id = ?1",
                    params![id as i64, status.as_str(), next, a.status.map(i64::from), a.error, delivered],
                )
                .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("delivery {id}")));
            }
            Ok(())
        })
        .await
    }

    async fn deliveries(&self, webhook_id: &str, limit: usize) -> Result<Vec<Delivery>> {
        let id = webhook_id.to_string();
        self.read(move |c| {
            let mut st = c
                .prepare_cached(&format!("SELECT {DELIVERY_COLS} FROM webhook_deliveries d WHERE d.webhook_id = ?1 ORDER BY d.id DESC LIMIT ?2"))
                .map_err(backend)?;
            let rows = st.query_map(params![id, limit as i64], row_delivery).map_err(backend)?;
            rows.collect::<rusqlite::Result<_>>().map_err(backend)
        })
        .await
    }

    async fn verify_audit(&self, anchor: Option<ChainHead>) -> Result<AuditReport> {
        self.read(move |c| {
            // One read transaction: every check sees the same snapshot.
            let tx = c.unchecked_transaction().map_err(backend)?;
            let mut report = AuditReport::default();
            let mut walk = ChainWalk::default();
            let mut ledger = DecisionLedger::default();
            {
                let mut st = tx.prepare(&format!("SELECT {EVENT_COLS} FROM events ORDER BY seq")).map_err(backend)?;
                let mut rows = st.query([]).map_err(backend)?;
                while let Some(r) = rows.next().map_err(backend)? {
                    let (mut ev, data) = row_event(r).map_err(backend)?;
                    ev.data = match serde_json::from_str(&data) {
                        Ok(v) => v,
                        Err(e) => {
                            report.problem =
                                Some(AuditProblem::Event { seq: ev.seq, why: format!("data is not valid JSON: {e}") });
                            return Ok(report);
                        }
                    };
                    let step = walk.step(&ev).and_then(|()| {
                        if ev.kind == DECISIONS_COMMITTED { ledger.commit(ev.seq, &ev.data) } else { Ok(()) }
                    });
                    if let Err(p) = step {
                        report.problem = Some(p);
                        return Ok(report);
                    }
                    report.events += 1;
                    report.head = Some(ChainHead { seq: ev.seq, hash: ev.hash });
                }
            }
            if let Some(anchor) = &anchor {
                let at = load_events(&tx, &format!("SELECT {EVENT_COLS} FROM events WHERE seq = ?1"), [anchor.seq as i64])?;
                if let Err(p) = crate::rules::check_anchor(anchor, at.first(), report.head.as_ref()) {
                    report.problem = Some(p);
                    return Ok(report);
                }
            }
            {
                let mut st = tx
                    .prepare(
                        "SELECT id, body, agent, idempotency_key, action_name, confidence, verdict, status, final_verdict,
                         policy_hash, case_id, trace_id, received_at, event_time, session_id, outcome_correct, outcome_cost
                         FROM decisions ORDER BY seq",
                    )
                    .map_err(backend)?;
                let mut rows = st.query([]).map_err(backend)?;
                while let Some(r) = rows.next().map_err(backend)? {
                    let id: String = r.get(0).map_err(backend)?;
                    let body: String = r.get(1).map_err(backend)?;
                    let text = |i: usize| -> Result<String> { r.get::<_, String>(i).map_err(backend) };
                    let stored = DecisionColumns {
                        agent: text(2)?,
                        idempotency_key: r.get(3).map_err(backend)?,
                        action_name: text(4)?,
                        confidence: r.get(5).map_err(backend)?,
                        verdict: static_str(&text(6)?),
                        status: static_str(&text(7)?),
                        final_verdict: r.get::<_, Option<String>>(8).map_err(backend)?.as_deref().map(static_str),
                        policy_hash: text(9)?,
                        case_id: r.get(10).map_err(backend)?,
                        trace_id: r.get(11).map_err(backend)?,
                        received_at: r.get(12).map_err(backend)?,
                        event_time: r.get(13).map_err(backend)?,
                        session_id: r.get(14).map_err(backend)?,
                        outcome_correct: r.get(15).map_err(backend)?,
                        outcome_cost: r.get(16).map_err(backend)?,
                    };
                    if let Err(p) = ledger.check(&id, &body, &stored) {
                        report.problem = Some(p);
                        return Ok(report);
                    }
                    report.decisions += 1;
                }
            }
            if let Err(p) = ledger.finish() {
                report.problem = Some(p);
                return Ok(report);
            }
            let mut st = tx.prepare("SELECT id, body FROM cases ORDER BY seq").map_err(backend)?;
            let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))).map_err(backend)?;
            for row in rows {
                let (id, body) = row.map_err(backend)?;
                let events =
                    load_events(&tx, &format!("SELECT {EVENT_COLS} FROM events WHERE case_id = ?1 ORDER BY seq"), [&id])?;
                if let Err(p) = crate::rules::check_projection(&id, &body, &events) {
                    report.problem = Some(p);
                    return Ok(report);
                }
                report.cases += 1;
            }
            Ok(report)
        })
        .await
    }

    async fn chain_head(&self) -> Result<Option<ChainHead>> {
        self.read(|c| {
            c.query_row("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1", [], |r| {
                Ok(ChainHead { seq: r.get::<_, i64>(0)? as u64, hash: r.get(1)? })
            })
            .optional()
            .map_err(backend)
        })
        .await
    }
}
