//! Versioned migrations, applied in order at connect under an advisory lock
//! (replicas starting together migrate once), recorded in `arbiter_schema`.

use crate::{backend, col, pg};
use arbiter_store::{Result, StoreError};
use postgres::Client;

/// Each migration: its version and SQL.
const MIGRATIONS: &[(u32, &str)] = &[
    (1, include_str!("../migrations/0001_init.sql")),
    (2, include_str!("../migrations/0002_drift_episodes.sql")),
    (3, include_str!("../migrations/0003_span_senders.sql")),
    (4, include_str!("../migrations/0004_projects.sql")),
    (5, include_str!("../migrations/0005_people.sql")),
];

/// The newest schema version this build knows.
pub const SCHEMA_VERSION: u32 = 5;

/// The advisory lock key that serialises migrations across replicas ("arbiter" in ASCII).
const MIGRATION_LOCK: i64 = 0x0061_7262_6974_6572;

/// The schema version of the database (0: empty) and the newest this build knows.
pub fn versions(c: &mut Client) -> Result<(u32, u32)> {
    let exists = c.query_one("SELECT to_regclass('arbiter_schema') IS NOT NULL", &[]).map_err(backend)?;
    if !col::<bool>(&exists, 0)? {
        return Ok((0, SCHEMA_VERSION));
    }
    let row = c.query_one("SELECT COALESCE(MAX(version), 0) FROM arbiter_schema", &[]).map_err(backend)?;
    let current = col::<i64>(&row, 0)? as u32;
    if current > SCHEMA_VERSION {
        return Err(StoreError::Corrupt(format!(
            "the database has schema version {current}, newer than this Arbiter knows ({SCHEMA_VERSION}); upgrade Arbiter"
        )));
    }
    Ok((current, SCHEMA_VERSION))
}

pub(crate) fn migrate(c: &mut Client) -> Result<()> {
    c.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK]).map_err(pg("cannot take the migration lock"))?;
    let result = (|| {
        c.batch_execute(
            "CREATE TABLE IF NOT EXISTS arbiter_schema (version BIGINT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .map_err(pg("cannot create the schema version table"))?;
        let (current, _) = versions(c)?;
        for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
            let mut tx = c.transaction().map_err(backend)?;
            tx.batch_execute(sql).map_err(pg(&format!("PostgreSQL migration {version} failed")))?;
            tx.execute("INSERT INTO arbiter_schema (version) VALUES ($1)", &[&(*version as i64)]).map_err(backend)?;
            tx.commit().map_err(backend)?;
            tracing::info!(version, "applied PostgreSQL migration");
        }
        Ok(())
    })();
    let unlocked = c.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]).map_err(backend);
    result.and(unlocked.map(|_| ()))
}
