//! Keys, console sessions, policy versions, settings, leases, receipts and spans.

use crate::events::append_event;
use crate::webhooks::queue_deliveries;
use crate::{Sql, Tx, col, corrupt, load_bodies};
use arbiter_core::Timestamp;
use arbiter_core::trace::Span;
use arbiter_store::{ConsoleSession, Consumption, KeyRecord, PolicyVersion, PolicyVersionSummary, Result, StoreError};
use postgres::Row;

/// The columns of a key row, as a literal for `concat!` (SQL text stays static).
macro_rules! key_cols {
    () => {
        "id, name, role, tags, digest, created_at, revoked_at, expires_at, rate_limit"
    };
}

fn row_key(r: &Row) -> Result<KeyRecord> {
    let role: String = col(r, 2)?;
    Ok(KeyRecord {
        id: col(r, 0)?,
        name: col(r, 1)?,
        role: role.parse().map_err(StoreError::Corrupt)?,
        tags: serde_json::from_str(&col::<String>(r, 3)?).map_err(corrupt)?,
        digest: col(r, 4)?,
        created_at: Timestamp(col(r, 5)?),
        revoked_at: col::<Option<i64>>(r, 6)?.map(Timestamp),
        expires_at: col::<Option<i64>>(r, 7)?.map(Timestamp),
        rate_limit: col::<Option<String>>(r, 8)?.map(|s| s.parse().map_err(StoreError::Corrupt)).transpose()?,
    })
}

pub(crate) fn create_key(t: &mut Tx<'_>, k: &KeyRecord) -> Result<()> {
    let tags = serde_json::to_string(&k.tags).map_err(corrupt)?;
    let n = t.execute(
        "INSERT INTO api_keys (id, name, role, tags, digest, created_at, revoked_at, expires_at, rate_limit)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING",
        &[
            &k.id,
            &k.name,
            &k.role.as_str(),
            &tags,
            &k.digest,
            &k.created_at.0,
            &k.revoked_at.map(|t| t.0),
            &k.expires_at.map(|t| t.0),
            &k.rate_limit.map(|r| r.to_string()),
        ],
    )?;
    if n == 0 {
        return Err(StoreError::Conflict(format!("a key with id {} already exists", k.id)));
    }
    Ok(())
}

pub(crate) fn key(c: &mut impl Sql, id: &str) -> Result<Option<KeyRecord>> {
    c.query_opt(concat!("SELECT ", key_cols!(), " FROM api_keys WHERE id = $1"), &[&id])?
        .as_ref()
        .map(row_key)
        .transpose()
}

pub(crate) fn keys(c: &mut impl Sql) -> Result<Vec<KeyRecord>> {
    c.query(concat!("SELECT ", key_cols!(), " FROM api_keys ORDER BY created_at, id"), &[])?
        .iter()
        .map(row_key)
        .collect()
}

pub(crate) fn session(c: &mut impl Sql, id: &str) -> Result<Option<ConsoleSession>> {
    let r = c.query_opt(
        "SELECT id, key_id, created_at, expires_at, revoked_at FROM console_sessions WHERE id = $1",
        &[&id],
    )?;
    r.map(|r| {
        Ok(ConsoleSession {
            id: col(&r, 0)?,
            key_id: col(&r, 1)?,
            created_at: Timestamp(col(&r, 2)?),
            expires_at: Timestamp(col(&r, 3)?),
            revoked_at: col::<Option<i64>>(&r, 4)?.map(Timestamp),
        })
    })
    .transpose()
}

fn row_policy(r: &Row) -> Result<PolicyVersion> {
    Ok(PolicyVersion {
        hash: col(r, 0)?,
        name: col(r, 1)?,
        source: col(r, 2)?,
        created_at: Timestamp(col(r, 3)?),
        created_by: col(r, 4)?,
    })
}

/// Store a version if new; true when it was.
fn store_version(t: &mut Tx<'_>, v: &PolicyVersion) -> Result<bool> {
    Ok(t.execute(
        "INSERT INTO policy_versions (hash, name, source, created_at, created_by) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (hash) DO NOTHING",
        &[&v.hash, &v.name, &v.source, &v.created_at.0, &v.created_by],
    )? > 0)
}

pub(crate) fn activate_policy(t: &mut Tx<'_>, v: &PolicyVersion, at: Timestamp, by: &str) -> Result<()> {
    store_version(t, v)?;
    let previous: Option<String> = t
        .query_opt("SELECT hash FROM policy_activations ORDER BY seq DESC LIMIT 1", &[])?
        .map(|r| col(&r, 0))
        .transpose()?;
    t.execute(
        "INSERT INTO policy_activations (hash, activated_at, activated_by) VALUES ($1, $2, $3)",
        &[&v.hash, &at.0, &by],
    )?;
    append_event(
        t,
        None,
        None,
        "policy.activated",
        by,
        at,
        serde_json::json!({"hash": v.hash, "name": v.name, "previous": previous}),
    )?;
    Ok(())
}

/// A replica's first start (see `Store::first_start`), under the chain lock its batch holds.
pub(crate) fn first_start(
    t: &mut Tx<'_>,
    start: &arbiter_store::FirstStart,
    at: Timestamp,
) -> Result<arbiter_store::FirstStartDone> {
    let mut done = arbiter_store::FirstStartDone::default();
    if let Some(v) = &start.policy {
        let active: Option<String> = t
            .query_opt("SELECT hash FROM policy_activations ORDER BY seq DESC LIMIT 1", &[])?
            .map(|r| col(&r, 0))
            .transpose()?;
        if arbiter_store::rules::first_start_activates(start, active.as_deref()) {
            activate_policy(t, v, at, &start.by)?;
            done.policy_activated = true;
        }
    }
    if let Some(k) = &start.admin {
        let keys: i64 = col(&t.query_one("SELECT COUNT(*) FROM api_keys", &[])?, 0)?;
        if keys == 0 {
            create_key(t, k)?;
            done.admin_created = true;
        }
    }
    Ok(done)
}

pub(crate) fn store_draft(t: &mut Tx<'_>, v: &PolicyVersion, at: Timestamp, by: &str) -> Result<bool> {
    let created = store_version(t, v)?;
    if created {
        append_event(t, None, None, "policy.drafted", by, at, serde_json::json!({"hash": v.hash, "name": v.name}))?;
    }
    Ok(created)
}

pub(crate) fn active_policy(c: &mut impl Sql) -> Result<Option<PolicyVersion>> {
    c.query_opt(
        "SELECT v.hash, v.name, v.source, v.created_at, v.created_by FROM policy_activations a
         JOIN policy_versions v ON v.hash = a.hash ORDER BY a.seq DESC LIMIT 1",
        &[],
    )?
    .as_ref()
    .map(row_policy)
    .transpose()
}

pub(crate) fn policy_version(c: &mut impl Sql, hash: &str) -> Result<Option<PolicyVersion>> {
    c.query_opt("SELECT hash, name, source, created_at, created_by FROM policy_versions WHERE hash = $1", &[&hash])?
        .as_ref()
        .map(row_policy)
        .transpose()
}

pub(crate) fn policy_versions(c: &mut impl Sql) -> Result<Vec<PolicyVersionSummary>> {
    let active: Option<String> = c
        .query_opt("SELECT hash FROM policy_activations ORDER BY seq DESC LIMIT 1", &[])?
        .map(|r| col(&r, 0))
        .transpose()?;
    c.query(
        "SELECT v.hash, v.name, v.created_at, v.created_by, MAX(a.activated_at) FROM policy_versions v
         LEFT JOIN policy_activations a ON a.hash = v.hash GROUP BY v.hash ORDER BY v.created_at DESC, v.hash",
        &[],
    )?
    .iter()
    .map(|r| {
        let hash: String = col(r, 0)?;
        Ok(PolicyVersionSummary {
            active: active.as_deref() == Some(hash.as_str()),
            hash,
            name: col(r, 1)?,
            created_at: Timestamp(col(r, 2)?),
            created_by: col(r, 3)?,
            last_activated_at: col::<Option<i64>>(r, 4)?.map(Timestamp),
        })
    })
    .collect()
}

pub(crate) fn activations(c: &mut impl Sql, hash: &str) -> Result<Vec<Timestamp>> {
    c.query("SELECT activated_at FROM policy_activations WHERE hash = $1 ORDER BY seq", &[&hash])?
        .iter()
        .map(|r| Ok(Timestamp(col(r, 0)?)))
        .collect()
}

pub(crate) fn setting_or_insert(t: &mut Tx<'_>, name: &str, value: &str) -> Result<String> {
    t.execute("INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING", &[&name, &value])?;
    col(&t.query_one("SELECT value FROM settings WHERE name = $1", &[&name])?, 0)
}

pub(crate) fn settings_with_prefix(c: &mut impl Sql, prefix: &str) -> Result<Vec<(String, String)>> {
    c.query("SELECT name, value FROM settings WHERE starts_with(name, $1) ORDER BY name", &[&prefix])?
        .iter()
        .map(|r| Ok((col(r, 0)?, col(r, 1)?)))
        .collect()
}

pub(crate) fn acquire_lease(t: &mut Tx<'_>, name: &str, holder: &str, now: Timestamp, ttl_ms: i64) -> Result<bool> {
    let r = t.query_opt(
        "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3)
         ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
             WHERE leases.holder = EXCLUDED.holder OR leases.expires_at <= $4
         RETURNING holder",
        &[&name, &holder, &now.plus_millis(ttl_ms).0, &now.0],
    )?;
    // no row: the update's condition failed, another holder's lease is live
    Ok(r.is_some())
}

pub(crate) fn consume_receipt(t: &mut Tx<'_>, id: &str, who: &str, digest: &str, at: Timestamp) -> Result<Consumption> {
    let prior =
        t.query_opt("SELECT consumer, args_digest, at FROM receipt_consumptions WHERE decision_id = $1", &[&id])?;
    if let Some(r) = prior {
        return Ok(Consumption {
            decision_id: id.to_string(),
            consumer: col(&r, 0)?,
            args_digest: col(&r, 1)?,
            at: Timestamp(col(&r, 2)?),
            first: false,
        });
    }
    t.execute(
        "INSERT INTO receipt_consumptions (decision_id, consumer, args_digest, at) VALUES ($1, $2, $3, $4)",
        &[&id, &who, &digest, &at.0],
    )?;
    let e = append_event(
        t,
        None,
        None,
        "receipt.consumed",
        who,
        at,
        serde_json::json!({"decision_id": id, "consumer": who, "args_digest": digest}),
    )?;
    queue_deliveries(t, &e)?;
    Ok(Consumption { decision_id: id.into(), consumer: who.into(), args_digest: digest.into(), at, first: true })
}

pub(crate) fn insert_spans(t: &mut Tx<'_>, sender: &str, spans: &[Span], at: Timestamp) -> Result<u64> {
    let mut written = 0;
    for s in spans {
        let s = Span { sender: Some(sender.to_string()), ..s.clone() };
        let body = serde_json::to_string(&s).map_err(corrupt)?;
        // a span stored for another sender is never replaced (the WHERE leaves it alone)
        written += t.execute(
            "INSERT INTO spans (trace_id, span_id, start_ns, received_at, tool_call_id, body, sender)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (trace_id, span_id) DO UPDATE SET start_ns = EXCLUDED.start_ns, received_at = EXCLUDED.received_at,
                 tool_call_id = EXCLUDED.tool_call_id, body = EXCLUDED.body
             WHERE spans.sender = EXCLUDED.sender",
            &[&s.trace_id, &s.span_id, &s.start_ns, &at.0, &s.tool_call_id(), &body, &sender],
        )?;
    }
    Ok(written)
}

pub(crate) fn trace_spans(c: &mut impl Sql, trace_id: &str, sender: Option<&str>, limit: usize) -> Result<Vec<Span>> {
    load_bodies(
        c,
        "SELECT body FROM spans WHERE trace_id = $1 AND ($2::TEXT IS NULL OR sender = $2)
         ORDER BY start_ns, span_id LIMIT $3",
        &[&trace_id.to_ascii_lowercase(), &sender, &(limit as i64)],
    )
}

pub(crate) fn trace_of_tool_call(c: &mut impl Sql, sender: &str, id: &str) -> Result<Option<String>> {
    c.query_opt(
        "SELECT trace_id FROM spans WHERE tool_call_id = $1 AND sender = $2 ORDER BY received_at DESC LIMIT 1",
        &[&id, &sender],
    )?
    .map(|r| col(&r, 0))
    .transpose()
}

pub(crate) fn purge_spans(t: &mut Tx<'_>, before: Timestamp, keep: &[String]) -> Result<u64> {
    let keep: Vec<String> = keep.iter().map(|k| k.to_ascii_lowercase()).collect();
    t.execute("DELETE FROM spans WHERE received_at < $1 AND NOT (trace_id = ANY($2))", &[&before.0, &keep])
}
