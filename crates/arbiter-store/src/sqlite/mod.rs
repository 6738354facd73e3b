//! The SQLite backend: one writer thread that commits concurrent requests in
//! batches (group commit, one fsync per batch), and a small pool of reader
//! connections. WAL mode with `synchronous=FULL`: an acknowledged write survives
//! a killed process and a power cut.

use crate::rules::{ChainBatch, DECISIONS_COMMITTED, DecisionColumns, ProjectChains};
use crate::{
    CaseFilter, CaseUpdate, Delivery, DeliveryAttempt, DeliveryStatus, DueDelivery, Inserted, KeyRecord, NewDecision,
    PolicyVersion, PolicyVersionSummary, Result, Store, StoreError, Webhook, WebhookFormat,
};
use arbiter_core::ProjectId;
use arbiter_core::audit::{AuditReport, ChainHead, Event};
use arbiter_core::{Case, CaseCommand, CaseKind, CaseState, Decision, Outcome, Role, Timestamp};
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use tokio::sync::oneshot;

#[macro_use]
mod audit;
mod cases;
mod decisions;
mod drift;
mod insight;
mod keys;
mod learning;
pub mod migrate;
mod policies;
mod server;
mod traces;
mod tx;
mod webhooks;
mod writer;

// Each part's helpers are visible to the others (they share rows and appends).
use audit::*;
use cases::*;
use decisions::*;
use learning::*;
use migrate::*;
use tx::*;
use webhooks::*;
use writer::*;

const READERS: usize = 4;

/// The embedded SQLite store: a handle on one database file, scoped to one
/// project (every read and write of project data binds it). Handles of other
/// projects on the same file come from [`Store::for_project`] and share the
/// writer and the readers.
pub struct SqliteStore {
    db: Arc<Db>,
    project: ProjectId,
}

/// One open database file: the writer thread and the reader connections.
struct Db {
    path: PathBuf,
    writer: Mutex<Option<mpsc::Sender<Job>>>,
    writer_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    readers: Arc<Vec<Mutex<Connection>>>,
    next_reader: AtomicUsize,
}

impl Db {
    fn close(&self) {
        self.writer.lock().map(|mut w| w.take()).ok();
        if let Some(h) = self.writer_thread.lock().ok().and_then(|mut h| h.take()) {
            let _ = h.join();
        }
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        self.close();
    }
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
    /// Open (creating if needed) the database file at `path` and bring its
    /// schema up to date; the handle is scoped to the default project.
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
        let db = Db {
            path,
            writer: Mutex::new(Some(tx)),
            writer_thread: Mutex::new(Some(handle)),
            readers: Arc::new(readers),
            next_reader: AtomicUsize::new(0),
        };
        Ok(SqliteStore { db: Arc::new(db), project: ProjectId::default_project() })
    }

    /// A handle on the same file scoped to `project`.
    pub fn scoped(&self, project: &ProjectId) -> SqliteStore {
        SqliteStore { db: self.db.clone(), project: project.clone() }
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
        self.read(move |c, _| c.execute("VACUUM INTO ?1", [target]).map(|_| ()).map_err(backend)).await
    }

    /// The writer connection's `journal_mode` and `synchronous` (2 is FULL):
    /// what an acknowledged write's durability rests on.
    pub async fn durability(&self) -> Result<(String, i64)> {
        self.write(|c, _| {
            let mode: String = c.pragma_query_value(None, "journal_mode", |r| r.get(0)).map_err(backend)?;
            let sync: i64 = c.pragma_query_value(None, "synchronous", |r| r.get(0)).map_err(backend)?;
            Ok((mode, sync))
        })
        .await
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.db.path
    }

    /// Stop accepting writes, finish the ones queued, and wait for the writer
    /// (for every handle on this file).
    pub fn close(&self) {
        self.db.close();
    }

    /// Run `f` inside the next group-commit batch, with this handle's
    /// project; resolves after the batch commits.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection, &str) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.write_chained(move |c, p, _| f(c, p)).await
    }

    /// Like [`SqliteStore::write`], for jobs that write decision rows: they
    /// record them in the batch's chain commitment of this handle's project.
    async fn write_chained<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection, &str, &mut ChainBatch) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = oneshot::channel::<Result<T>>();
        let project = self.project.shared();
        let job: Job = Box::new(move |conn, chains| match f(conn, &project, chains.of(&project)) {
            Ok(v) => Ok(Box::new(move |committed: Result<()>| {
                let _ = tx.send(committed.map(|()| v));
            }) as Reply),
            // told after the batch commits, like everyone in it
            Err(e) => Err(Box::new(move |_: Result<()>| {
                let _ = tx.send(Err(e));
            }) as Reply),
        });
        {
            let guard = self.db.writer.lock().map_err(|_| StoreError::Closed)?;
            let sender = guard.as_ref().ok_or(StoreError::Closed)?;
            sender.send(job).map_err(|_| StoreError::Closed)?;
        }
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Run a read on one of the reader connections, off the async threads,
    /// with this handle's project.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection, &str) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let readers = self.db.readers.clone();
        let project = self.project.shared();
        let i = self.db.next_reader.fetch_add(1, Ordering::Relaxed) % readers.len();
        tokio::task::spawn_blocking(move || {
            let conn = readers[i]
                .lock()
                .map_err(|_| StoreError::backend_msg("a reader connection is poisoned (a read panicked)"))?;
            f(&conn, &project)
        })
        .await
        .map_err(|e| StoreError::backend("the read task failed", e))?
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

impl Store for SqliteStore {
    fn project(&self) -> &ProjectId {
        &self.project
    }

    fn for_project(&self, project: &ProjectId) -> Arc<dyn Store> {
        Arc::new(self.scoped(project))
    }
}
