//! `arbiter migrate --from ./arbiter.db --to postgres://...`: copy an SQLite
//! store into an empty PostgreSQL database, row for row. Bodies, events and
//! their hashes are copied as stored, so the audit chain is the same chain:
//! same events, same head. The search index is rebuilt from the copied rows
//! (PostgreSQL keeps it as `tsvector`, SQLite in FTS5).

use crate::{Sql, Statements, Tx, backend, connect, pg, schema};
use arbiter_core::Case;
use arbiter_store::rules::lesson_document;
use arbiter_store::{ChainHead, Result, StoreError};
use postgres::types::ToSql;
use std::path::Path;

/// How a column's SQLite value becomes a PostgreSQL one.
#[derive(Clone, Copy)]
enum Kind {
    Text,
    Int,
    Real,
    Bool,
    Blob,
}

use Kind::*;

/// A table to copy: its name, its columns, and whether its first column is
/// an identity (inserted with `OVERRIDING SYSTEM VALUE`, sequence moved after).
type Table = (&'static str, &'static [(&'static str, Kind)], bool);

/// The tables copied, in an order that satisfies the foreign keys, with their columns.
const TABLES: &[Table] = &[
    ("projects", &[("id", Text), ("name", Text), ("created_at", Int), ("created_by", Text)], false),
    (
        "memberships",
        &[
            ("project", Text),
            ("home", Text),
            ("principal", Text),
            ("role", Text),
            ("tags", Text),
            ("created_at", Int),
            ("created_by", Text),
        ],
        false,
    ),
    (
        "policy_versions",
        &[
            ("hash", Text),
            ("name", Text),
            ("source", Text),
            ("created_at", Int),
            ("created_by", Text),
            ("project", Text),
        ],
        false,
    ),
    (
        "policy_activations",
        &[("seq", Int), ("hash", Text), ("activated_at", Int), ("activated_by", Text), ("project", Text)],
        true,
    ),
    (
        "api_keys",
        &[
            ("id", Text),
            ("name", Text),
            ("role", Text),
            ("tags", Text),
            ("digest", Blob),
            ("created_at", Int),
            ("revoked_at", Int),
            ("expires_at", Int),
            ("rate_limit", Text),
            ("project", Text),
        ],
        false,
    ),
    (
        "console_sessions",
        &[
            ("id", Text),
            ("key_id", Text),
            ("created_at", Int),
            ("expires_at", Int),
            ("revoked_at", Int),
            ("identity", Text),
        ],
        false,
    ),
    ("slack_messages", &[("project", Text), ("case_id", Text), ("channel", Text), ("ts", Text)], false),
    (
        "people",
        &[("name", Text), ("email", Text), ("identity", Text), ("signed_in_at", Int), ("slack_user", Text)],
        false,
    ),
    (
        "decisions",
        &[
            ("seq", Int),
            ("id", Text),
            ("agent", Text),
            ("idempotency_key", Text),
            ("request_digest", Text),
            ("action_name", Text),
            ("confidence", Real),
            ("verdict", Text),
            ("status", Text),
            ("final_verdict", Text),
            ("policy_hash", Text),
            ("case_id", Text),
            ("trace_id", Text),
            ("received_at", Int),
            ("event_time", Int),
            ("outcome_correct", Bool),
            ("outcome_cost", Real),
            ("body", Text),
            ("session_id", Text),
            ("subject", Text),
            ("final_source", Text),
            ("overridden", Bool),
            ("project", Text),
        ],
        true,
    ),
    (
        "decision_hourly",
        &[("hour", Int), ("action_name", Text), ("verdict", Text), ("decisions", Int), ("project", Text)],
        false,
    ),
    (
        "decision_endings_hourly",
        &[
            ("hour", Int),
            ("action_name", Text),
            ("final_verdict", Text),
            ("final_source", Text),
            ("decisions", Int),
            ("project", Text),
        ],
        false,
    ),
    (
        "cases",
        &[
            ("seq", Int),
            ("id", Text),
            ("kind", Text),
            ("state", Text),
            ("decision_id", Text),
            ("sla_deadline", Int),
            ("created_at", Int),
            ("updated_at", Int),
            ("body", Text),
            ("due_at", Int),
            ("trace_id", Text),
            ("agent", Text),
            ("project", Text),
            ("ended_at", Int),
        ],
        true,
    ),
    (
        "events",
        &[
            ("seq", Int),
            ("case_id", Text),
            ("decision_id", Text),
            ("kind", Text),
            ("actor", Text),
            ("at", Int),
            ("data", Text),
            ("prev_hash", Text),
            ("hash", Text),
            ("project", Text),
        ],
        false,
    ),
    ("settings", &[("name", Text), ("value", Text)], false),
    (
        "webhooks",
        &[
            ("id", Text),
            ("url", Text),
            ("events", Text),
            ("format", Text),
            ("secret", Text),
            ("created_at", Int),
            ("created_by", Text),
            ("active", Bool),
            ("project", Text),
            ("min_severity", Text),
        ],
        false,
    ),
    (
        "webhook_deliveries",
        &[
            ("id", Int),
            ("webhook_id", Text),
            ("event_seq", Int),
            ("kind", Text),
            ("status", Text),
            ("attempts", Int),
            ("next_attempt_at", Int),
            ("last_status", Int),
            ("last_error", Text),
            ("created_at", Int),
            ("delivered_at", Int),
        ],
        true,
    ),
    (
        "lessons",
        &[
            ("seq", Int),
            ("id", Text),
            ("review_id", Text),
            ("publish", Bool),
            ("created_at", Int),
            ("updated_at", Int),
            ("body", Text),
            ("project", Text),
        ],
        true,
    ),
    (
        "suggestions",
        &[
            ("id", Text),
            ("fingerprint", Text),
            ("state", Text),
            ("created_at", Int),
            ("expires_at", Int),
            ("body", Text),
            ("project", Text),
        ],
        false,
    ),
    (
        "spans",
        &[
            ("trace_id", Text),
            ("span_id", Text),
            ("start_ns", Int),
            ("received_at", Int),
            ("tool_call_id", Text),
            ("body", Text),
            ("sender", Text),
            ("project", Text),
        ],
        false,
    ),
    ("receipt_consumptions", &[("decision_id", Text), ("consumer", Text), ("args_digest", Text), ("at", Int)], false),
    ("leases", &[("name", Text), ("holder", Text), ("expires_at", Int)], false),
    (
        "drift_episodes",
        &[
            ("id", Text),
            ("action", Text),
            ("open", Bool),
            ("started_at", Int),
            ("version", Int),
            ("body", Text),
            ("project", Text),
        ],
        false,
    ),
];

/// Rows inserted per statement.
const CHUNK: usize = 500;

/// What a copy did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ImportReport {
    /// Rows copied, per table.
    pub tables: Vec<(String, u64)>,
    /// Documents put in the search index.
    pub indexed: u64,
    /// The default project's chain head copied (its head in the target after the copy).
    pub head: Option<ChainHead>,
}

fn sqlite(e: rusqlite::Error) -> StoreError {
    StoreError::backend("reading the SQLite store failed", e)
}

/// One SQLite value as the PostgreSQL parameter its column takes.
fn convert(v: rusqlite::types::Value, kind: Kind, column: &str) -> Result<Box<dyn ToSql + Sync + Send>> {
    use rusqlite::types::Value as V;
    let bad = || StoreError::Corrupt(format!("column `{column}` holds a value of the wrong type"));
    Ok(match (kind, v) {
        (Text, V::Null) => Box::new(None::<String>),
        (Int, V::Null) => Box::new(None::<i64>),
        (Real, V::Null) => Box::new(None::<f64>),
        (Bool, V::Null) => Box::new(None::<bool>),
        (Blob, V::Null) => Box::new(None::<Vec<u8>>),
        (Text, V::Text(s)) => Box::new(Some(s)),
        (Int, V::Integer(i)) => Box::new(Some(i)),
        (Real, V::Real(f)) => Box::new(Some(f)),
        (Real, V::Integer(i)) => Box::new(Some(i as f64)),
        (Bool, V::Integer(i)) => Box::new(Some(i != 0)),
        (Blob, V::Blob(b)) => Box::new(Some(b)),
        _ => return Err(bad()),
    })
}

/// Copy the SQLite store at `src` into the empty PostgreSQL database at
/// `dst_url` in one transaction (nothing is left half-copied), calling
/// `progress(table, rows)` as it goes. The source is read in one snapshot, so
/// a server may keep running on it (writes after the snapshot are not copied).
pub fn copy_sqlite(src: &Path, dst_url: &str, progress: &mut dyn FnMut(&str, u64)) -> Result<ImportReport> {
    let (current, latest) = arbiter_store::SqliteStore::schema_version(src)?;
    if current != latest {
        return Err(StoreError::Conflict(format!(
            "{} has schema version {current}, not {latest}: run `arbiter migrate --db {}` first",
            src.display(),
            src.display()
        )));
    }
    let mut lite = rusqlite::Connection::open_with_flags(src, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| StoreError::backend(format!("cannot open {}", src.display()), e))?;
    let snapshot = lite.transaction().map_err(sqlite)?;
    let mut client = connect(dst_url)?;
    schema::migrate(&mut client)?;
    let mut stmts = Statements::default();
    let tx = client.transaction().map_err(backend)?;
    let mut t = Tx {
        tx,
        stmts: &mut stmts,
        project: arbiter_core::ProjectId::DEFAULT.into(),
        heads: Default::default(),
        chains: Default::default(),
        finalized: vec![],
        hooks: Default::default(),
    };
    // the locks every writer takes: no replica writes while the copy runs
    t.query("SELECT project FROM chain_head ORDER BY project FOR UPDATE", &[])?;
    let held = t.query_one(
        "SELECT (SELECT COUNT(*) FROM events) + (SELECT COUNT(*) FROM decisions) + (SELECT COUNT(*) FROM api_keys)
              + (SELECT COUNT(*) FROM policy_versions)",
        &[],
    )?;
    if crate::col::<i64>(&held, 0)? > 0 {
        return Err(StoreError::Conflict(
            "the target database already holds an Arbiter store; copy into an empty database".into(),
        ));
    }
    let mut report = ImportReport::default();
    // the projects (the default one included) come from the source, with their heads
    t.execute("DELETE FROM chain_head", &[])?;
    t.execute("DELETE FROM projects", &[])?;
    for (table, columns, identity) in TABLES {
        let names: Vec<&str> = columns.iter().map(|(n, _)| *n).collect();
        let select = format!("SELECT {} FROM {table} ORDER BY rowid", names.join(", "));
        let select = if matches!(
            *table,
            "decision_hourly" | "decision_endings_hourly" | "spans" | "receipt_consumptions" | "leases" | "memberships"
        ) {
            // WITHOUT ROWID tables: their primary key orders them
            format!("SELECT {} FROM {table}", names.join(", "))
        } else {
            select
        };
        let mut st = snapshot.prepare(&select).map_err(sqlite)?;
        let mut rows = st.query([]).map_err(sqlite)?;
        let mut pending: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
        let mut n = 0u64;
        let flush = |t: &mut Tx<'_>, pending: &mut Vec<Box<dyn ToSql + Sync + Send>>| -> Result<()> {
            if pending.is_empty() {
                return Ok(());
            }
            let width = columns.len();
            let rows = pending.len() / width;
            let values: Vec<String> = (0..rows)
                .map(|r| {
                    format!(
                        "({})",
                        (0..width).map(|c| format!("${}", r * width + c + 1)).collect::<Vec<_>>().join(", ")
                    )
                })
                .collect();
            let sql = format!(
                "INSERT INTO {table} ({}){} VALUES {}",
                names.join(", "),
                if *identity { " OVERRIDING SYSTEM VALUE" } else { "" },
                values.join(", ")
            );
            let params: Vec<&(dyn ToSql + Sync)> = pending.iter().map(|b| &**b as &(dyn ToSql + Sync)).collect();
            t.tx.execute(sql.as_str(), &params).map_err(pg(&format!("copying {table} failed")))?;
            pending.clear();
            Ok(())
        };
        while let Some(r) = rows.next().map_err(sqlite)? {
            for (i, (name, kind)) in columns.iter().enumerate() {
                let v: rusqlite::types::Value = r.get(i).map_err(sqlite)?;
                pending.push(convert(v, *kind, &format!("{table}.{name}"))?);
            }
            n += 1;
            if n.is_multiple_of(CHUNK as u64) {
                flush(&mut t, &mut pending)?;
                progress(table, n);
            }
        }
        flush(&mut t, &mut pending)?;
        progress(table, n);
        if *identity {
            let col = columns[0].0;
            t.tx.query(
                format!("SELECT setval(pg_get_serial_sequence('{table}', '{col}'), GREATEST((SELECT MAX({col}) FROM {table}), 1), (SELECT MAX({col}) FROM {table}) IS NOT NULL)").as_str(),
                &[],
            )
            .map_err(pg(&format!("cannot move the sequence of {table}")))?;
        }
        report.tables.push((table.to_string(), n));
    }
    // the search index, rebuilt from the copied rows with the rules every write uses
    for r in t.query("SELECT project, body FROM cases ORDER BY seq", &[])? {
        let c: Case = serde_json::from_str(&crate::col::<String>(&r, 1)?).map_err(crate::corrupt)?;
        t.project = crate::col::<String>(&r, 0)?.into();
        arbiter_store::writes::index_case(&mut t, &c)?;
    }
    for r in t.query("SELECT project, body FROM lessons ORDER BY seq", &[])? {
        let l: arbiter_core::lesson::Lesson =
            serde_json::from_str(&crate::col::<String>(&r, 1)?).map_err(crate::corrupt)?;
        t.project = crate::col::<String>(&r, 0)?.into();
        crate::learning::index_document(&mut t, &lesson_document(&l))?;
    }
    let indexed = t.query_one("SELECT COUNT(*) FROM search_docs", &[])?;
    report.indexed = crate::col::<i64>(&indexed, 0)? as u64;
    // each project's chain head: its last copied event, or its genesis
    let projects: Vec<String> =
        t.query("SELECT id FROM projects", &[])?.iter().map(|r| crate::col(r, 0)).collect::<Result<_>>()?;
    for p in &projects {
        let (seq, hash) = match crate::audit::chain_head(&mut t, p)? {
            Some(h) => (h.seq as i64, h.hash),
            None => (0, arbiter_core::project::genesis_hash(p)),
        };
        t.execute("INSERT INTO chain_head (project, seq, hash) VALUES ($1, $2, $3)", &[p, &seq, &hash])?;
    }
    report.head = crate::audit::chain_head(&mut t, arbiter_core::ProjectId::DEFAULT)?;
    t.tx.commit().map_err(pg("the copy's commit failed"))?;
    drop(snapshot);
    Ok(report)
}
