//! Schema migrations, applied in order at open and recorded in `PRAGMA user_version`.

use super::*;

pub(super) const MIGRATIONS: &[(u32, &str)] = &[
    (1, include_str!("../../migrations/sqlite/0001_init.sql")),
    (2, include_str!("../../migrations/sqlite/0002_review_workflow.sql")),
    (3, include_str!("../../migrations/sqlite/0003_decision_sessions.sql")),
    (4, include_str!("../../migrations/sqlite/0004_settings.sql")),
    (5, include_str!("../../migrations/sqlite/0005_dashboard.sql")),
    (6, include_str!("../../migrations/sqlite/0006_trust.sql")),
    (7, include_str!("../../migrations/sqlite/0007_learning.sql")),
    (8, include_str!("../../migrations/sqlite/0008_endings.sql")),
    (9, include_str!("../../migrations/sqlite/0009_spans.sql")),
    (10, include_str!("../../migrations/sqlite/0010_receipts.sql")),
    (11, include_str!("../../migrations/sqlite/0011_leases.sql")),
    (12, include_str!("../../migrations/sqlite/0012_drift_episodes.sql")),
    (13, include_str!("../../migrations/sqlite/0013_span_senders.sql")),
];

/// How far a schema upgrade has come: the migration being applied and, for
/// one that rewrites existing rows, how many of them are done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MigrationProgress {
    /// The migration (schema version) being applied.
    pub version: u32,
    /// Rows done so far in this migration.
    pub done: u64,
    /// Rows this migration goes through (0 when it only changes the schema).
    pub total: u64,
}

/// What an upgrade did: the schema version before and after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MigrationReport {
    /// The version found.
    pub from: u32,
    /// The version now (the newest this build knows).
    pub to: u32,
}

/// Rows between two progress reports.
const PROGRESS_EVERY: u64 = 10_000;

fn schema_versions(conn: &Connection) -> Result<(u32, u32)> {
    let current: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(backend)?;
    let latest = MIGRATIONS.last().map_or(0, |m| m.0);
    if current > latest {
        return Err(StoreError::Corrupt(format!(
            "the database has schema version {current}, newer than this Arbiter knows ({latest}); upgrade Arbiter"
        )));
    }
    Ok((current, latest))
}

pub(super) fn migrate(conn: &mut Connection, progress: &mut dyn FnMut(MigrationProgress)) -> Result<MigrationReport> {
    let (from, latest) = schema_versions(conn)?;
    let mut current = from;
    while current < latest {
        // Each step takes the write lock first and reads the version under
        // it: two processes opening one fresh file never both apply a step
        // (the one that waited finds it done and moves on).
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(backend)?;
        let (now, _) = schema_versions(&tx)?;
        let Some(&(version, sql)) = MIGRATIONS.iter().find(|(v, _)| *v > now) else { break };
        current = version;
        tx.execute_batch(sql).map_err(|e| StoreError::backend(format!("migration {version} failed"), e))?;
        let total = if matches!(version, 6 | 7) {
            tx.query_row("SELECT COUNT(*) FROM decisions", [], |r| r.get::<_, i64>(0)).map_err(backend)? as u64
        } else {
            0
        };
        let mut step = |done: u64| progress(MigrationProgress { version, done, total });
        step(0);
        if version == 6 {
            commit_existing_decisions(&tx, &mut step)?;
        }
        if version == 7 {
            backfill_learning(&tx, &mut step)?;
        }
        step(total);
        tx.pragma_update(None, "user_version", version).map_err(backend)?;
        tx.commit().map_err(backend)?;
        tracing::info!(version, "applied SQLite migration");
    }
    Ok(MigrationReport { from, to: latest })
}

impl SqliteStore {
    /// The schema version of the database at `path` and the newest this build
    /// knows, without changing anything (`arbiter migrate --check`).
    pub fn schema_version(path: impl AsRef<Path>) -> Result<(u32, u32)> {
        let path = path.as_ref();
        let conn = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| StoreError::backend(format!("cannot open {}", path.display()), e))?;
        schema_versions(&conn)
    }

    /// Bring the schema of the existing database at `path` up to date,
    /// reporting progress through migrations that rewrite existing rows.
    pub fn migrate(path: impl AsRef<Path>, progress: &mut dyn FnMut(MigrationProgress)) -> Result<MigrationReport> {
        let mut conn = open_conn(path.as_ref())?;
        migrate(&mut conn, progress)
    }
}

/// Decisions written before they were chained are committed by the upgrade
/// (events marked `backfill`, 10,000 decisions each): from then on, editing
/// them is detected.
pub(super) fn commit_existing_decisions(conn: &Connection, progress: &mut dyn FnMut(u64)) -> Result<()> {
    let flush = |chain: &mut ChainBatch| -> Result<()> {
        if let Some((mut data, at)) = chain.take() {
            data["backfill"] = serde_json::Value::Bool(true);
            append_event(conn, None, None, DECISIONS_COMMITTED, "system", at, data)?;
        }
        Ok(())
    };
    let mut chain = ChainBatch::default();
    let mut done = 0u64;
    let mut st = conn.prepare("SELECT id, body, received_at FROM decisions ORDER BY seq").map_err(backend)?;
    let mut rows = st.query([]).map_err(backend)?;
    while let Some(r) = rows.next().map_err(backend)? {
        let (id, body, at): (String, String, i64) =
            (r.get(0).map_err(backend)?, r.get(1).map_err(backend)?, r.get(2).map_err(backend)?);
        chain.cover(&id, &body, Timestamp(at));
        done += 1;
        if done.is_multiple_of(PROGRESS_EVERY) {
            progress(done);
        }
        if chain.len() >= 10_000 {
            flush(&mut chain)?;
        }
    }
    flush(&mut chain)
}
