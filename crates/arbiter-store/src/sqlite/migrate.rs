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
];

pub(super) fn migrate(conn: &mut Connection) -> Result<()> {
    let current: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(backend)?;
    let latest = MIGRATIONS.last().map_or(0, |m| m.0);
    if current > latest {
        return Err(StoreError::Corrupt(format!(
            "the database has schema version {current}, newer than this Arbiter knows ({latest}); upgrade Arbiter"
        )));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        let tx = conn.transaction().map_err(backend)?;
        tx.execute_batch(sql).map_err(|e| StoreError::backend(format!("migration {version} failed"), e))?;
        if *version == 6 {
            commit_existing_decisions(&tx)?;
        }
        if *version == 7 {
            backfill_learning(&tx)?;
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
pub(super) fn commit_existing_decisions(conn: &Connection) -> Result<()> {
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
