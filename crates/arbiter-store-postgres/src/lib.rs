//! The PostgreSQL backend of Arbiter's [`Store`]: several stateless replicas
//! on one database.
//!
//! The shape is the SQLite backend's, because the reasons are the same:
//!
//! - **Group commit.** A writer thread runs every write job of
//!   a batch in one transaction and commits once: one WAL flush for many
//!   requests. A replica has [`WRITERS`] writers, each on its own
//!   connection; all of a project's writes go to the same one (so they stay
//!   in order) and projects are spread over them, so one project's batches
//!   do not queue behind another's. The batch's decisions are inserted in bulk; if any job fails,
//!   the batch runs again with a savepoint per job, so the failing one rolls
//!   back alone.
//!   With `synchronous_commit = on` (PostgreSQL's default) a write is
//!   acknowledged only after its commit is durable.
//! - **One chain per project, several writers.** Every write transaction
//!   first locks the `chain_head` rows of the projects its jobs write
//!   (`SELECT ... ORDER BY project FOR UPDATE`: always in id order, so two
//!   batches never wait on each other in a cycle) and holds them until it
//!   commits, so replicas append to each project's audit chain one batch at
//!   a time: gap-free, never forked. Batches of different projects do not
//!   wait for each other. The same lock makes every write job of a project
//!   see that project's writes committed before it, which is what keeps
//!   claims exclusive and the SLA sweep from applying a step twice across
//!   replicas (the case rows are also read `FOR UPDATE`). Server-wide writes
//!   (keys, settings, leases, sessions, deliveries) rely on their own row
//!   constraints and locks, not on a chain head.
//! - **Readers** are a small pool of connections, used off the async threads.
//! - **Notifications.** A write that makes a decision final sends
//!   `NOTIFY arbiter_decisions` in its transaction (delivered on commit); a
//!   listener connection per replica relays them to [`arbiter_store::Store::finalized_feed`].
//!
//! The rules (what a command means, the chain's digests, search documents)
//! are [`arbiter_store::rules`], shared with SQLite; this crate is SQL.

use arbiter_core::ProjectId;
use arbiter_store::rules::{ChainBatch, DECISIONS_COMMITTED, ProjectChains};
use arbiter_store::{ChainHead, Result, StoreError};
use postgres::types::{FromSql, ToSql};
use postgres::{Client, GenericClient, NoTls, Row, Statement, Transaction};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use tokio::sync::{broadcast, oneshot};

mod audit;
mod cases;
mod decisions;
mod drift;
pub mod import;
mod insight;
mod keys;
mod learning;
mod listen;
mod policies;
mod schema;
mod server;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod traces;
mod tx;
mod webhooks;

pub use schema::SCHEMA_VERSION;

/// Writer threads (and connections) per replica by default: a project's
/// writes always go to the same one, and projects are spread over them, so
/// batches of different projects commit side by side. `ARBITER_PG_WRITERS`
/// (1 to 32) sets another number.
pub const WRITERS: usize = 4;

/// The number of writers per replica: [`WRITERS`], or `ARBITER_PG_WRITERS`.
fn writer_count() -> usize {
    std::env::var("ARBITER_PG_WRITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| (1..=32).contains(n))
        .unwrap_or(WRITERS)
}
/// Reader connections per replica (the writers and the listener add theirs).
pub const READERS: usize = 8;
/// Write jobs committed together at most.
const MAX_BATCH: usize = 512;
/// The channel that carries the ids of decisions made final.
pub(crate) const DECISIONS_CHANNEL: &str = "arbiter_decisions";

/// The PostgreSQL store: a handle on one database scoped to one project
/// (every read and write of project data binds it). Handles of other
/// projects come from [`arbiter_store::Store::for_project`] and share the
/// writer, the readers and the listener.
pub struct PostgresStore {
    db: Arc<Db>,
    project: ProjectId,
}

/// A writer's queue (`None` once the store is closing).
type WriterQueue = Mutex<Option<mpsc::Sender<Box<dyn Job>>>>;

/// One database: the writer threads, the reader connections and the listener.
struct Db {
    url: String,
    writers: Vec<WriterQueue>,
    writer_threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    /// Which writer each project's jobs go to (given in the order projects first write).
    writer_of: Mutex<std::collections::HashMap<Arc<str>, usize>>,
    readers: Arc<Vec<Mutex<Option<Conn>>>>,
    next_reader: AtomicUsize,
    finalized: broadcast::Sender<String>,
    stop: Arc<AtomicBool>,
    stats: Arc<Stats>,
}

/// The writer's counters ([`arbiter_store::WriteStats`]).
#[derive(Default)]
pub(crate) struct Stats {
    batches: AtomicU64,
    jobs: AtomicU64,
    retried_batches: AtomicU64,
    lock_wait_micros: AtomicU64,
    lock_held_micros: AtomicU64,
    commit_micros: AtomicU64,
}

impl Stats {
    pub(crate) fn read(&self) -> arbiter_store::WriteStats {
        arbiter_store::WriteStats {
            batches: self.batches.load(Ordering::Relaxed),
            jobs: self.jobs.load(Ordering::Relaxed),
            retried_batches: self.retried_batches.load(Ordering::Relaxed),
            chain_lock_wait_micros: self.lock_wait_micros.load(Ordering::Relaxed),
            chain_lock_held_micros: self.lock_held_micros.load(Ordering::Relaxed),
            commit_micros: self.commit_micros.load(Ordering::Relaxed),
        }
    }
}

/// A database error while doing `context`: `Unavailable` when the database
/// is not answering (the connection is gone, the server is shutting down or
/// starting, a failover), so that clients are told to retry (503), not that
/// Arbiter has a bug (500).
pub(crate) fn pg(context: &str) -> impl FnOnce(postgres::Error) -> StoreError + '_ {
    move |e| {
        if is_unavailable(&e) {
            return StoreError::Unavailable(format!("{context}: {e}"));
        }
        if let Some(db) = e.as_db_error() {
            let msg = format!("{context}: {} ({})", db.message(), db.code().code());
            return StoreError::backend(msg, e);
        }
        StoreError::backend(format!("{context}: {e}"), e)
    }
}

/// Whether an error means the database is not answering, rather than that a
/// statement failed: a closed connection, an I/O error, SQLSTATE class 08
/// (connection exception) or 57P01-57P03 (shutdown, crash, starting up).
pub(crate) fn is_unavailable(e: &postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        Some(code) => {
            let c = code.code();
            c.starts_with("08") || matches!(c, "57P01" | "57P02" | "57P03")
        }
        None => e.as_db_error().is_none() && std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>()),
    }
}

/// The short form: a failed statement.
pub(crate) fn backend(e: postgres::Error) -> StoreError {
    pg("PostgreSQL failed")(e)
}

pub(crate) fn corrupt(e: serde_json::Error) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

/// Column `i` of `row`, or `Corrupt` when it does not have the expected type.
pub(crate) fn col<'a, T: FromSql<'a>>(row: &'a Row, i: usize) -> Result<T> {
    row.try_get(i).map_err(|e| StoreError::Corrupt(format!("column {i}: {e}")))
}

/// The parameters of a statement.
pub(crate) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// What the store's SQL runs on: a connection or a write transaction,
/// with its prepared statements kept (one round trip per statement, not two).
pub(crate) trait Sql {
    /// The prepared form of `sql`.
    fn prepared(&mut self, sql: &str) -> Result<Statement>;
    /// Where to run it.
    fn client(&mut self) -> &mut dyn GenericClientDyn;

    fn query(&mut self, sql: &str, params: Params<'_>) -> Result<Vec<Row>> {
        let st = self.prepared(sql)?;
        self.client().query_st(&st, params).map_err(backend)
    }

    fn query_opt(&mut self, sql: &str, params: Params<'_>) -> Result<Option<Row>> {
        let st = self.prepared(sql)?;
        self.client().query_opt_st(&st, params).map_err(backend)
    }

    fn query_one(&mut self, sql: &str, params: Params<'_>) -> Result<Row> {
        self.query_opt(sql, params)?.ok_or_else(|| StoreError::Corrupt(format!("no row from `{sql}`")))
    }

    fn execute(&mut self, sql: &str, params: Params<'_>) -> Result<u64> {
        let st = self.prepared(sql)?;
        self.client().execute_st(&st, params).map_err(backend)
    }
}

/// The object-safe part of `postgres::GenericClient` that [`Sql`] needs.
pub(crate) trait GenericClientDyn {
    fn prepare_st(&mut self, sql: &str) -> std::result::Result<Statement, postgres::Error>;
    fn query_st(&mut self, st: &Statement, params: Params<'_>) -> std::result::Result<Vec<Row>, postgres::Error>;
    fn query_opt_st(&mut self, st: &Statement, params: Params<'_>)
    -> std::result::Result<Option<Row>, postgres::Error>;
    fn execute_st(&mut self, st: &Statement, params: Params<'_>) -> std::result::Result<u64, postgres::Error>;
}

impl<C: GenericClient> GenericClientDyn for C {
    fn prepare_st(&mut self, sql: &str) -> std::result::Result<Statement, postgres::Error> {
        self.prepare(sql)
    }
    fn query_st(&mut self, st: &Statement, params: Params<'_>) -> std::result::Result<Vec<Row>, postgres::Error> {
        self.query(st, params)
    }
    fn query_opt_st(
        &mut self,
        st: &Statement,
        params: Params<'_>,
    ) -> std::result::Result<Option<Row>, postgres::Error> {
        self.query_opt(st, params)
    }
    fn execute_st(&mut self, st: &Statement, params: Params<'_>) -> std::result::Result<u64, postgres::Error> {
        self.execute(st, params)
    }
}

/// Prepared statements of one connection, by SQL text.
#[derive(Default)]
pub(crate) struct Statements(std::collections::HashMap<String, Statement>);

impl Statements {
    fn get(&mut self, c: &mut dyn GenericClientDyn, sql: &str) -> Result<Statement> {
        if let Some(st) = self.0.get(sql) {
            return Ok(st.clone());
        }
        let st = c.prepare_st(sql).map_err(backend)?;
        if self.0.len() >= 512 {
            self.0.clear();
        }
        self.0.insert(sql.to_string(), st.clone());
        Ok(st)
    }
}

/// A reader connection and its prepared statements.
pub(crate) struct Conn {
    pub client: Client,
    stmts: Statements,
}

impl Sql for Conn {
    fn prepared(&mut self, sql: &str) -> Result<Statement> {
        self.stmts.get(&mut self.client, sql)
    }
    fn client(&mut self) -> &mut dyn GenericClientDyn {
        &mut self.client
    }
}

/// A read-only snapshot (for `audit verify`): statements are not kept.
pub(crate) struct Snapshot<'a>(pub Transaction<'a>);

impl Sql for Snapshot<'_> {
    fn prepared(&mut self, sql: &str) -> Result<Statement> {
        self.0.prepare(sql).map_err(backend)
    }
    fn client(&mut self) -> &mut dyn GenericClientDyn {
        &mut self.0
    }
}

impl Sql for Tx<'_> {
    fn prepared(&mut self, sql: &str) -> Result<Statement> {
        self.stmts.get(&mut self.tx, sql)
    }
    fn client(&mut self) -> &mut dyn GenericClientDyn {
        &mut self.tx
    }
}

/// Rows of one JSON `body` column, parsed.
pub(crate) fn load_bodies<T: serde::de::DeserializeOwned>(
    c: &mut impl Sql,
    sql: &str,
    params: Params<'_>,
) -> Result<Vec<T>> {
    c.query(sql, params)?.iter().map(|r| serde_json::from_str(&col::<String>(r, 0)?).map_err(corrupt)).collect()
}

/// One JSON `body` column, parsed.
pub(crate) fn load_body<T: serde::de::DeserializeOwned>(
    c: &mut impl Sql,
    sql: &str,
    params: Params<'_>,
) -> Result<Option<T>> {
    match c.query_opt(sql, params)? {
        Some(r) => Ok(Some(serde_json::from_str(&col::<String>(&r, 0)?).map_err(corrupt)?)),
        None => Ok(None),
    }
}

/// A write transaction of a writer thread: the chain heads it holds
/// locked (of the projects its jobs write), the project of the job running
/// now, the decisions it must commit to each chain, and the decisions it made final.
pub(crate) struct Tx<'t> {
    pub tx: Transaction<'t>,
    stmts: &'t mut Statements,
    /// The project of the job running now (server-wide jobs: the default's name, unused).
    pub project: Arc<str>,
    pub heads: std::collections::BTreeMap<Arc<str>, ChainHead>,
    pub chains: ProjectChains,
    pub finalized: Vec<String>,
    /// The active webhooks of a project and the kinds they want, read once per batch.
    pub hooks: std::collections::HashMap<Arc<str>, Vec<(String, std::collections::BTreeSet<String>)>>,
}

impl Tx<'_> {
    /// The chain head of the running job's project (locked by this batch).
    pub(crate) fn head(&mut self) -> Result<&mut ChainHead> {
        let p = self.project.clone();
        self.heads.get_mut(&p).ok_or_else(|| {
            StoreError::backend_msg(format!(
                "the batch does not hold project {p}'s chain head (a job without its project)"
            ))
        })
    }

    /// This batch's chain commitment of the running job's project.
    pub(crate) fn chain(&mut self) -> &mut ChainBatch {
        let p = self.project.clone();
        self.chains.of(&p)
    }
}

/// A write job: run in the next batch (perhaps twice: see [`run_batch`]),
/// then told how the batch's commit went.
pub(crate) trait Job: Send {
    /// The project it writes, whose chain head the batch must hold (`None`: a server-wide write).
    fn project(&self) -> Option<&Arc<str>>;
    /// Run against the batch's transaction, keeping the result; an error is returned too.
    fn run(&mut self, tx: &mut Tx<'_>) -> Result<()>;
    /// Answer the caller: the kept result if the batch committed, else the commit's error.
    fn reply(self: Box<Self>, committed: Result<()>);
    /// The decision this job inserts, when it is one (they are inserted in bulk).
    fn decision(&self) -> Option<&arbiter_store::NewDecision> {
        None
    }
    /// Keep the result of the bulk insert for this job's decision.
    fn inserted(&mut self, _result: Result<arbiter_store::Inserted>) {}
}

/// A decision to insert: with the others of its batch ([`arbiter_store::writes::insert_decisions`]), or alone.
pub(crate) struct InsertJob {
    project: Arc<str>,
    pub new: arbiter_store::NewDecision,
    out: Option<Result<arbiter_store::Inserted>>,
    reply: oneshot::Sender<Result<arbiter_store::Inserted>>,
}

/// Keep a job's result in `out`; return whether it succeeded.
fn keep<T>(out: &mut Option<Result<T>>, result: Result<T>) -> Result<()> {
    let status = result.as_ref().map(|_| ()).map_err(Clone::clone);
    *out = Some(result);
    status
}

impl Job for InsertJob {
    fn project(&self) -> Option<&Arc<str>> {
        Some(&self.project)
    }

    fn run(&mut self, tx: &mut Tx<'_>) -> Result<()> {
        keep(&mut self.out, arbiter_store::writes::insert_decision(tx, self.new.clone()))
    }

    fn reply(self: Box<Self>, committed: Result<()>) {
        let _ = self.reply.send(answer(self.out, committed));
    }

    fn decision(&self) -> Option<&arbiter_store::NewDecision> {
        Some(&self.new)
    }

    fn inserted(&mut self, result: Result<arbiter_store::Inserted>) {
        self.out = Some(result);
    }
}

/// What a job answers: its own error if it failed alone (rolled back to its
/// savepoint), its result if the batch committed, else the commit's error.
fn answer<T>(out: Option<Result<T>>, committed: Result<()>) -> Result<T> {
    match (out, committed) {
        (Some(Err(e)), _) => Err(e),
        (Some(Ok(v)), Ok(())) => Ok(v),
        (_, Err(e)) => Err(e),
        (None, Ok(())) => Err(StoreError::backend_msg("the write job did not run")),
    }
}

struct FnJob<T, F> {
    project: Option<Arc<str>>,
    f: F,
    out: Option<Result<T>>,
    reply: oneshot::Sender<Result<T>>,
}

impl<T: Send + 'static, F: Fn(&mut Tx<'_>) -> Result<T> + Send> Job for FnJob<T, F> {
    fn project(&self) -> Option<&Arc<str>> {
        self.project.as_ref()
    }

    fn run(&mut self, tx: &mut Tx<'_>) -> Result<()> {
        keep(&mut self.out, (self.f)(tx))
    }

    fn reply(self: Box<Self>, committed: Result<()>) {
        let _ = self.reply.send(answer(self.out, committed));
    }
}

pub(crate) fn connect(url: &str) -> Result<Client> {
    Client::connect(url, NoTls).map_err(|e| {
        let why = if let Some(db) = e.as_db_error() {
            format!("{} ({})", db.message(), db.code().code())
        } else if e.to_string().contains("no TLS implementation configured") {
            "the URL asks for TLS (sslmode=require), which this build cannot do: it connects in clear only; use a \
             private network or a TLS tunnel and drop sslmode=require (docs/operations.md, Scale-out)"
                .to_string()
        } else {
            e.to_string()
        };
        let msg = format!("cannot connect to PostgreSQL at {}: {why}", redact(url));
        if is_unavailable(&e) { StoreError::Unavailable(msg) } else { StoreError::backend(msg, e) }
    })
}

/// `url` without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(colon) => format!("{}{}:***{}", &url[..s + 3], &creds[..colon], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// The schema version of the database at `url` (0: empty) and the newest this build knows (blocking).
pub fn schema_versions(url: &str) -> Result<(u32, u32)> {
    let url = url.to_string();
    std::thread::spawn(move || schema::versions(&mut connect(&url)?))
        .join()
        .map_err(|_| StoreError::backend_msg("the schema check panicked"))?
}

/// Bring the schema of the database at `url` up to date (blocking).
pub fn upgrade(url: &str) -> Result<()> {
    let url = url.to_string();
    std::thread::spawn(move || schema::migrate(&mut connect(&url)?))
        .join()
        .map_err(|_| StoreError::backend_msg("the upgrade panicked"))?
}

impl PostgresStore {
    /// Connect to the database at `url` (`postgres://user@host/db`), bring its
    /// schema up to date, and start the writers and the listener.
    pub async fn connect(url: &str) -> Result<PostgresStore> {
        let url = url.to_string();
        tokio::task::spawn_blocking(move || PostgresStore::connect_blocking(url))
            .await
            .map_err(|e| StoreError::backend("the connect task failed", e))?
    }

    fn connect_blocking(url: String) -> Result<PostgresStore> {
        let mut client = connect(&url)?;
        schema::migrate(&mut client)?;
        let stats = Arc::new(Stats::default());
        let (mut writers, mut threads) = (Vec::new(), Vec::new());
        let mut first = Some(client);
        for i in 0..writer_count() {
            let (tx, rx) = mpsc::channel::<Box<dyn Job>>();
            let (writer_url, writer_stats, client) = (url.clone(), stats.clone(), first.take());
            let handle = std::thread::Builder::new()
                .name(format!("arbiter-pg-writer-{i}"))
                .spawn(move || writer_loop(writer_url, client, rx, &writer_stats))
                .map_err(|e| StoreError::backend("cannot start a writer thread", e))?;
            writers.push(Mutex::new(Some(tx)));
            threads.push(handle);
        }
        let (finalized, _) = broadcast::channel(4096);
        let stop = Arc::new(AtomicBool::new(false));
        listen::spawn(url.clone(), finalized.clone(), stop.clone())?;
        let db = Db {
            url,
            writers,
            writer_threads: Mutex::new(threads),
            writer_of: Mutex::new([(Arc::from(ProjectId::DEFAULT), 0)].into_iter().collect()),
            readers: Arc::new((0..READERS).map(|_| Mutex::new(None)).collect()),
            next_reader: AtomicUsize::new(0),
            finalized,
            stop,
            stats,
        };
        Ok(PostgresStore { db: Arc::new(db), project: ProjectId::default_project() })
    }

    /// A handle on the same database scoped to `project`.
    pub fn scoped(&self, project: &ProjectId) -> PostgresStore {
        PostgresStore { db: self.db.clone(), project: project.clone() }
    }

    /// The database URL, without its password.
    pub fn url(&self) -> String {
        redact(&self.db.url)
    }

    /// Stop accepting writes, finish the queued ones, and stop the listener
    /// (for every handle on this database).
    pub fn close(&self) {
        self.db.close();
    }

    /// Run `f` inside the next batch, in this handle's project (whose chain
    /// head the batch locks); resolves after the batch commits.
    /// `f` may run twice (a batch in which some job failed runs again with a
    /// savepoint per job), so it takes what it needs by reference or clones it.
    pub(crate) async fn write<T: Send + 'static>(
        &self,
        f: impl Fn(&mut Tx<'_>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (reply, rx) = oneshot::channel::<Result<T>>();
        self.db.submit(Box::new(FnJob { project: Some(self.project.shared()), f, out: None, reply }))?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Run a server-wide write (no project's chain) inside the next batch.
    pub(crate) async fn write_global<T: Send + 'static>(
        &self,
        f: impl Fn(&mut Tx<'_>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (reply, rx) = oneshot::channel::<Result<T>>();
        self.db.submit(Box::new(FnJob { project: None, f, out: None, reply }))?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Insert a decision in the next batch (in bulk with the batch's others of its project).
    pub(crate) async fn insert(&self, new: arbiter_store::NewDecision) -> Result<arbiter_store::Inserted> {
        let (reply, rx) = oneshot::channel();
        self.db.submit(Box::new(InsertJob { project: self.project.shared(), new, out: None, reply }))?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Run a read on one of the reader connections, with this handle's project.
    pub(crate) async fn read<T: Send + 'static>(
        &self,
        f: impl Fn(&mut Conn, &str) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let project = self.project.shared();
        self.db.read(move |c| f(c, &project)).await
    }
}

impl Db {
    /// Stop accepting writes, finish the queued ones, and stop the listener.
    fn close(&self) {
        self.stop.store(true, Ordering::Release);
        for w in &self.writers {
            w.lock().map(|mut w| w.take()).ok();
        }
        let threads = self.writer_threads.lock().map(|mut t| std::mem::take(&mut *t)).unwrap_or_default();
        for h in threads {
            let _ = h.join();
        }
        // A blocking client closes its connection when dropped, which must
        // not happen on an async thread: drop the readers on their own thread.
        let conns: Vec<Conn> = self.readers.iter().filter_map(|r| r.lock().ok().and_then(|mut c| c.take())).collect();
        if !conns.is_empty() {
            let _ = std::thread::spawn(move || drop(conns)).join();
        }
    }

    /// Queue a job for its project's writer (server-wide jobs: the default
    /// project's); `Closed` once the store is closing.
    fn submit(&self, job: Box<dyn Job>) -> Result<()> {
        let i = match job.project() {
            None => 0,
            Some(p) => {
                let mut of = self.writer_of.lock().map_err(|_| StoreError::Closed)?;
                let next = of.len() % self.writers.len();
                *of.entry(p.clone()).or_insert(next)
            }
        };
        let guard = self.writers[i].lock().map_err(|_| StoreError::Closed)?;
        guard.as_ref().ok_or(StoreError::Closed)?.send(job).map_err(|_| StoreError::Closed)
    }

    /// Run a read on one of the reader connections (connecting it if needed),
    /// off the async threads. A read that fails because its pooled connection
    /// had died (a PgBouncer restart, a failover) runs once more on a fresh one.
    async fn read<T: Send + 'static>(&self, f: impl Fn(&mut Conn) -> Result<T> + Send + 'static) -> Result<T> {
        let readers = self.readers.clone();
        let url = self.url.clone();
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed);
        tokio::task::spawn_blocking(move || {
            // a free connection if there is one, else wait for ours in turn
            let n = readers.len();
            let mut slot = match (0..n).find_map(|k| readers[(start + k) % n].try_lock().ok()) {
                Some(free) => free,
                None => readers[start % n]
                    .lock()
                    .map_err(|_| StoreError::backend_msg("a reader connection is poisoned (a read panicked)"))?,
            };
            let mut fresh = false;
            loop {
                if slot.as_ref().is_none_or(|c| c.client.is_closed()) {
                    *slot = Some(Conn { client: connect(&url)?, stmts: Statements::default() });
                    fresh = true;
                }
                let conn = slot.as_mut().expect("connected above");
                let out = f(conn);
                // the server ended the connection (it may not look closed yet: the
                // FATAL message can arrive before the socket's end)
                let dead = conn.client.is_closed() || matches!(out, Err(StoreError::Unavailable(_)));
                if !dead {
                    return out;
                }
                *slot = None;
                // a connection that was already dead before this read: once more, on a new one
                if fresh || !matches!(out, Err(StoreError::Unavailable(_))) {
                    return out;
                }
                tracing::info!("a pooled PostgreSQL connection had closed; reading again on a new one");
            }
        })
        .await
        .map_err(|e| StoreError::backend("the read task failed", e))?
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        self.close();
    }
}

fn writer_loop(url: String, mut client: Option<Client>, rx: mpsc::Receiver<Box<dyn Job>>, stats: &Stats) {
    let mut stmts = Statements::default();
    let mut backoff = std::time::Duration::from_millis(100);
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        if client.as_ref().is_none_or(Client::is_closed) {
            match connect(&url) {
                Ok(c) => {
                    client = Some(c);
                    stmts = Statements::default();
                    backoff = std::time::Duration::from_millis(100);
                }
                Err(e) => {
                    tracing::error!(error = %e, "the writer cannot reach PostgreSQL");
                    for job in batch {
                        job.reply(Err(e.clone()));
                    }
                    // do not spin on a database that is down
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(std::time::Duration::from_secs(2));
                    continue;
                }
            }
        }
        let conn = client.as_mut().expect("connected above");
        if let Err(e) = run_batch(conn, &url, &mut stmts, batch, stats) {
            tracing::error!(error = %e, "a write batch failed");
        }
        if conn.is_closed() {
            client = None;
        }
    }
}

/// Commit a batch of jobs in one transaction. Most batches have no failing
/// job, so the first attempt runs them one after another with nothing in
/// between; if one fails, that attempt is rolled back and the batch runs again
/// with a savepoint per job, so the failing jobs roll back alone and the rest
/// commit (a savepoint costs a round trip per job: only paid when needed).
fn run_batch(
    conn: &mut Client,
    url: &str,
    stmts: &mut Statements,
    mut batch: Vec<Box<dyn Job>>,
    stats: &Stats,
) -> Result<()> {
    stats.batches.fetch_add(1, Ordering::Relaxed);
    stats.jobs.fetch_add(batch.len() as u64, Ordering::Relaxed);
    let mut outcome = attempt(conn, stmts, &mut batch, false, stats);
    if matches!(&outcome, Err(Attempt::NotStarted(e)) if conn.is_closed() || matches!(e, StoreError::Unavailable(_))) {
        // the connection had died before the batch began (a PgBouncer restart,
        // a failover): nothing of it ran, so it runs again on a fresh one
        tracing::info!("the writer's PostgreSQL connection had closed; running the batch on a new one");
        outcome = match connect(url) {
            Ok(c) => {
                *conn = c;
                *stmts = Statements::default();
                attempt(conn, stmts, &mut batch, false, stats)
            }
            Err(e) => Err(Attempt::Failed(e)),
        };
    }
    if matches!(outcome, Err(Attempt::JobFailed)) {
        stats.retried_batches.fetch_add(1, Ordering::Relaxed);
        outcome = attempt(conn, stmts, &mut batch, true, stats);
    }
    let committed = match outcome {
        Ok(()) => Ok(()),
        Err(Attempt::Failed(e) | Attempt::NotStarted(e)) => Err(e),
        Err(Attempt::JobFailed) => Err(StoreError::backend_msg("a write batch failed with savepoints")),
    };
    for job in batch {
        job.reply(committed.clone());
    }
    committed
}

/// Why an attempt at a batch did not commit.
enum Attempt {
    /// A job failed (without savepoints): run the batch again with them.
    JobFailed,
    /// The transaction itself failed: every job gets this error.
    Failed(StoreError),
    /// The transaction could not begin (nothing ran, so nothing committed).
    NotStarted(StoreError),
}

/// Begin, lock the chain heads of the batch's projects (in id order), run
/// the jobs, commit each project's decisions to its chain, move the heads,
/// notify, commit.
fn attempt(
    conn: &mut Client,
    stmts: &mut Statements,
    batch: &mut [Box<dyn Job>],
    savepoints: bool,
    stats: &Stats,
) -> std::result::Result<(), Attempt> {
    let asked = std::time::Instant::now();
    let tx = conn.transaction().map_err(|e| Attempt::NotStarted(pg("cannot begin a write transaction")(e)))?;
    let mut t = Tx {
        tx,
        stmts,
        project: ProjectId::DEFAULT.into(),
        heads: Default::default(),
        chains: ProjectChains::default(),
        finalized: vec![],
        hooks: Default::default(),
    };
    let mut projects: Vec<Arc<str>> = batch.iter().filter_map(|j| j.project().cloned()).collect();
    projects.sort();
    projects.dedup();
    lock_heads(&mut t, &projects)?;
    let start: Vec<(Arc<str>, u64)> = t.heads.iter().map(|(p, h)| (p.clone(), h.seq)).collect();
    let locked_at = std::time::Instant::now();
    stats.lock_wait_micros.fetch_add((locked_at - asked).as_micros() as u64, Ordering::Relaxed);
    let result = run_jobs(&mut t, batch, savepoints).and_then(|()| finish(t, &start, stats).map_err(Attempt::Failed));
    stats.lock_held_micros.fetch_add(locked_at.elapsed().as_micros() as u64, Ordering::Relaxed);
    result
}

/// Lock the chain heads of `projects` (sorted) for this transaction; a
/// project without a head yet (its first write) gets one at its genesis.
fn lock_heads(t: &mut Tx<'_>, projects: &[Arc<str>]) -> std::result::Result<(), Attempt> {
    if projects.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = projects.iter().map(|p| &**p).collect();
    let sql = "SELECT project, seq, hash FROM chain_head WHERE project = ANY($1) ORDER BY project FOR UPDATE";
    let mut rows = t.query(sql, &[&names]).map_err(Attempt::NotStarted)?;
    if rows.len() < names.len() {
        let genesis: Vec<String> = names.iter().map(|p| arbiter_core::project::genesis_hash(p)).collect();
        t.execute(
            "INSERT INTO chain_head (project, seq, hash) SELECT p, 0, g FROM unnest($1::text[], $2::text[]) AS n(p, g)
             ON CONFLICT (project) DO NOTHING",
            &[&names, &genesis],
        )
        .map_err(Attempt::NotStarted)?;
        rows = t.query(sql, &[&names]).map_err(Attempt::NotStarted)?;
    }
    for r in rows {
        let project: String = col(&r, 0).map_err(Attempt::Failed)?;
        let head = ChainHead {
            seq: col::<i64>(&r, 1).map_err(Attempt::Failed)? as u64,
            hash: col(&r, 2).map_err(Attempt::Failed)?,
        };
        let key = projects.iter().find(|p| ***p == *project).cloned().unwrap_or_else(|| project.into());
        t.heads.insert(key, head);
    }
    Ok(())
}

fn run_jobs(t: &mut Tx<'_>, batch: &mut [Box<dyn Job>], savepoints: bool) -> std::result::Result<(), Attempt> {
    let sql = |e: postgres::Error| Attempt::Failed(pg("a write batch could not go on")(e));
    if savepoints {
        t.tx.batch_execute("SAVEPOINT job").map_err(sql)?;
    } else {
        // the batch's decisions first, in bulk (one insert per project): what
        // `POST /v1/decisions` waits on
        let mut by_project: std::collections::BTreeMap<Arc<str>, Vec<usize>> = Default::default();
        for (i, job) in batch.iter().enumerate() {
            if let (Some(_), Some(p)) = (job.decision(), job.project()) {
                by_project.entry(p.clone()).or_default().push(i);
            }
        }
        for (project, inserts) in by_project {
            t.project = project;
            let news: Vec<&arbiter_store::NewDecision> = inserts.iter().filter_map(|i| batch[*i].decision()).collect();
            let results = arbiter_store::writes::insert_decisions(t, news.into_iter().cloned().collect())
                .map_err(|_| Attempt::JobFailed)?;
            for (i, r) in inserts.into_iter().zip(results) {
                batch[i].inserted(r);
            }
        }
    }
    for job in batch.iter_mut() {
        if !savepoints && job.decision().is_some() {
            continue;
        }
        t.project = job.project().cloned().unwrap_or_else(|| ProjectId::DEFAULT.into());
        // what to go back to if the job fails alone (only with savepoints: without, the batch runs again)
        let (heads, finalized) = (savepoints.then(|| t.heads.clone()), t.finalized.len());
        t.chains.begin_job();
        match job.run(t) {
            Ok(()) if savepoints => t.tx.batch_execute("RELEASE SAVEPOINT job; SAVEPOINT job").map_err(sql)?,
            Ok(()) => {}
            Err(_) if savepoints => {
                t.heads = heads.unwrap_or_default();
                t.chains.rollback_job();
                t.finalized.truncate(finalized);
                t.hooks.clear();
                t.tx.batch_execute("ROLLBACK TO SAVEPOINT job").map_err(sql)?;
            }
            // the transaction is rolled back when `t` is dropped
            Err(_) => return Err(Attempt::JobFailed),
        }
    }
    if savepoints {
        t.tx.batch_execute("RELEASE SAVEPOINT job").map_err(sql)?;
    }
    Ok(())
}

fn finish(mut t: Tx<'_>, start: &[(Arc<str>, u64)], stats: &Stats) -> Result<()> {
    let wrote_decisions = !t.chains.is_empty();
    for (project, data, at) in t.chains.take() {
        t.project = project.into();
        audit::append_event(&mut t, None, None, DECISIONS_COMMITTED, "system", at, data)?;
    }
    let moved: Vec<(String, i64, String)> = start
        .iter()
        .filter_map(|(p, seq)| {
            let h = t.heads.get(p)?;
            (h.seq != *seq).then(|| (p.to_string(), h.seq as i64, h.hash.clone()))
        })
        .collect();
    if !moved.is_empty() {
        let projects: Vec<&str> = moved.iter().map(|m| m.0.as_str()).collect();
        let seqs: Vec<i64> = moved.iter().map(|m| m.1).collect();
        let hashes: Vec<&str> = moved.iter().map(|m| m.2.as_str()).collect();
        t.execute(
            "UPDATE chain_head h SET seq = n.seq, hash = n.hash
             FROM unnest($1::text[], $2::bigint[], $3::text[]) AS n(project, seq, hash) WHERE h.project = n.project",
            &[&projects, &seqs, &hashes],
        )?;
    }
    if !t.finalized.is_empty() {
        let ids = std::mem::take(&mut t.finalized);
        t.execute("SELECT pg_notify($1, id) FROM unnest($2::text[]) AS id", &[&DECISIONS_CHANNEL, &ids])?;
    }
    if wrote_decisions {
        arbiter_store::rules::fail_point("decision_commit")?;
    }
    let commit = std::time::Instant::now();
    let done = t.tx.commit().map_err(pg("the commit failed"));
    stats.commit_micros.fetch_add(commit.elapsed().as_micros() as u64, Ordering::Relaxed);
    done
}

/// Every concern is implemented in its file (`decisions.rs` holds
/// `impl DecisionStore`); each call is a write job in the next group commit,
/// or a read on a pooled connection.
impl arbiter_store::Store for PostgresStore {
    fn project(&self) -> &ProjectId {
        &self.project
    }

    fn for_project(&self, project: &ProjectId) -> Arc<dyn arbiter_store::Store> {
        Arc::new(self.scoped(project))
    }

    fn finalized_feed(&self) -> Option<tokio::sync::broadcast::Receiver<String>> {
        Some(self.db.finalized.subscribe())
    }

    fn write_stats(&self) -> arbiter_store::WriteStats {
        self.db.stats.read()
    }
}
