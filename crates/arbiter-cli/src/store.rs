//! Which store a command works on: `--db` (or `ARBITER_DB`) names an SQLite
//! file (the embedded default) or, as `postgres://user@host/db`, a PostgreSQL
//! database shared by several replicas.

use anyhow::{Context, Result};
use arbiter_store::{SqliteStore, Store};
use arbiter_store_postgres::PostgresStore;
use std::path::Path;
use std::sync::Arc;

/// An open store of either kind.
pub enum OpenStore {
    /// The embedded SQLite file.
    Sqlite(Arc<SqliteStore>),
    /// A PostgreSQL database.
    Postgres(Arc<PostgresStore>),
}

impl std::ops::Deref for OpenStore {
    type Target = dyn Store;
    fn deref(&self) -> &Self::Target {
        match self {
            OpenStore::Sqlite(s) => &**s,
            OpenStore::Postgres(p) => &**p,
        }
    }
}

impl OpenStore {
    /// The store, to share with a server.
    pub fn shared(&self) -> Arc<dyn Store> {
        match self {
            OpenStore::Sqlite(s) => s.clone(),
            OpenStore::Postgres(p) => p.clone(),
        }
    }

    /// Finish the queued writes and close the connections.
    pub fn close(&self) {
        match self {
            OpenStore::Sqlite(s) => s.close(),
            OpenStore::Postgres(p) => p.close(),
        }
    }

    /// A handle of project `id` (which must exist) on the same store.
    pub async fn in_project(&self, id: &arbiter_core::ProjectId) -> Result<Arc<dyn Store>> {
        if !self.projects().await?.iter().any(|p| &p.id == id) {
            anyhow::bail!(
                "there is no project `{id}` in {}; `arbiter projects list` shows them, `arbiter projects create {id}` makes it",
                self.describe()
            );
        }
        Ok(self.shared().for_project(id))
    }

    /// The handle of the project that key `id` belongs to (keys are found by id in every project).
    pub async fn of_key(&self, id: &str) -> Result<Arc<dyn Store>> {
        match self.key(id).await? {
            Some(k) => Ok(self.shared().for_project(&k.project)),
            None => anyhow::bail!("no key with id {id} in {}", self.describe()),
        }
    }

    /// Where it is, for messages (a URL without its password).
    pub fn describe(&self) -> String {
        match self {
            OpenStore::Sqlite(s) => s.path().display().to_string(),
            OpenStore::Postgres(p) => p.url(),
        }
    }
}

/// The PostgreSQL URL in `db`, when it is one.
pub fn postgres_url(db: &Path) -> Option<&str> {
    db.to_str().filter(|s| s.starts_with("postgres://") || s.starts_with("postgresql://"))
}

/// Open the store `db` names, creating an SQLite file (or a PostgreSQL schema) if it has none.
pub async fn open_or_create(db: &Path) -> Result<OpenStore> {
    match postgres_url(db) {
        Some(url) => Ok(OpenStore::Postgres(Arc::new(
            PostgresStore::connect(url)
                .await
                .with_context(|| format!("cannot open the store at {}", arbiter_store_postgres::redact(url)))?,
        ))),
        None => Ok(OpenStore::Sqlite(Arc::new(
            SqliteStore::open(db).with_context(|| format!("cannot open the store at {}", db.display()))?,
        ))),
    }
}

/// Open an existing store (commands other than `serve` never create an SQLite file).
pub async fn open_existing(db: &Path) -> Result<OpenStore> {
    if postgres_url(db).is_none() && !db.exists() {
        anyhow::bail!(
            "no store at {}; start `arbiter serve --db {}` once to create it, or pass --db",
            db.display(),
            db.display()
        );
    }
    open_or_create(db).await
}
