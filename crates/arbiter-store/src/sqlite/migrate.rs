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
    (14, include_str!("../../migrations/sqlite/0014_projects.sql")),
    (15, include_str!("../../migrations/sqlite/0015_people.sql")),
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
    if from == latest {
        return Ok(MigrationReport { from, to: latest });
    }
    // The whole upgrade is one transaction that takes the write lock first
    // and reads the version under it: two processes opening one file never
    // both apply a step (the one that waited finds it done), and a crash
    // leaves the old schema, never half of the new one.
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(backend)?;
    let (now, _) = schema_versions(&tx)?;
    for &(version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > now) {
        tx.execute_batch(sql).map_err(|e| StoreError::backend(format!("migration {version} failed"), e))?;
        if !matches!(version, 6 | 7) {
            progress(MigrationProgress { version, done: 0, total: 0 });
        }
        tracing::info!(version, "applied SQLite migration");
    }
    // The steps that rewrite existing rows run after the last schema step,
    // with the code of this build, which writes the newest schema.
    let total = || -> Result<u64> {
        Ok(tx.query_row("SELECT COUNT(*) FROM decisions", [], |r| r.get::<_, i64>(0)).map_err(backend)? as u64)
    };
    for version in [6, 7].into_iter().filter(|v| *v > now) {
        let total = total()?;
        let mut step = |done: u64| progress(MigrationProgress { version, done, total });
        step(0);
        if version == 6 {
            commit_existing_decisions(&tx, &mut step)?;
        } else {
            backfill_learning(&tx, &mut step)?;
        }
        step(total);
    }
    if (1..8).contains(&now) {
        // schema 8 summed the endings from the columns the learning backfill
        // (above, after it) fills: sum them again from the filled columns
        tx.execute_batch(
            "DELETE FROM decision_endings_hourly;
             INSERT INTO decision_endings_hourly (project, hour, action_name, final_verdict, final_source, decisions)
                 SELECT project, event_time / 3600000, action_name, COALESCE(final_verdict, ''),
                        COALESCE(final_source, ''), COUNT(*)
                 FROM decisions GROUP BY 1, 2, 3, 4, 5;",
        )
        .map_err(backend)?;
    }
    tx.pragma_update(None, "user_version", latest).map_err(backend)?;
    tx.commit().map_err(backend)?;
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
            append_event(conn, ProjectId::DEFAULT, About::NOTHING, DECISIONS_COMMITTED, "system", at, data)?;
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
