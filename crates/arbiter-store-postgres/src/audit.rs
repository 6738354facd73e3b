//! The hash-chained event log: appends (under the chain-head lock the batch
//! holds), reads, and `audit verify` over events, decisions, cases and lessons.

use crate::Snapshot;
use crate::{Params, Sql, Tx, col, corrupt};
use arbiter_core::Timestamp;
use arbiter_store::AuditReport;
use arbiter_store::audit::{DecisionRow, StoredEvent};
use arbiter_store::rules::{DecisionColumns, column_name};
use arbiter_store::{ChainHead, Event, Result};
use postgres::Row;

/// `SELECT` of whole event rows with the given rest of the statement, as one
/// static string (SQL text is never built at run time).
macro_rules! events_sql {
    ($rest:literal) => {
        concat!("SELECT seq, case_id, decision_id, kind, actor, at, data, prev_hash, hash FROM events ", $rest)
    };
}
pub(crate) use events_sql;

pub(crate) fn row_event(r: &Row, at: usize) -> Result<Event> {
    Ok(Event {
        seq: col::<i64>(r, at)? as u64,
        case_id: col(r, at + 1)?,
        decision_id: col(r, at + 2)?,
        kind: col(r, at + 3)?,
        actor: col(r, at + 4)?,
        at: Timestamp(col(r, at + 5)?),
        data: serde_json::from_str(&col::<String>(r, at + 6)?).map_err(corrupt)?,
        prev_hash: col(r, at + 7)?,
        hash: col(r, at + 8)?,
    })
}

/// Events selected by `sql` ([`events_sql`]), in the order it gives.
pub(crate) fn load_events(c: &mut impl Sql, sql: &'static str, params: Params<'_>) -> Result<Vec<Event>> {
    c.query(sql, params)?.iter().map(|r| row_event(r, 0)).collect()
}

/// The next event of the chain (linked to the head this batch holds, which
/// moves past it), to be inserted by the caller.
pub(crate) fn chain_event(
    t: &mut Tx<'_>,
    case_id: Option<&str>,
    decision_id: Option<&str>,
    kind: &str,
    actor: &str,
    at: Timestamp,
    data: serde_json::Value,
) -> Result<Event> {
    let head = t.head()?.clone();
    let mut ev = Event {
        seq: head.seq + 1,
        case_id: case_id.map(str::to_string),
        decision_id: decision_id.map(str::to_string),
        kind: kind.to_string(),
        actor: actor.to_string(),
        at,
        data,
        prev_hash: head.hash,
        hash: String::new(),
    };
    ev.hash = ev.compute_hash();
    *t.head()? = ChainHead { seq: ev.seq, hash: ev.hash.clone() };
    Ok(ev)
}

/// Insert events made by [`chain_event`] (of the running job's project), in one statement.
pub(crate) fn insert_events(t: &mut Tx<'_>, events: &[Event]) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let seq: Vec<i64> = events.iter().map(|e| e.seq as i64).collect();
    let case_id: Vec<Option<&str>> = events.iter().map(|e| e.case_id.as_deref()).collect();
    let decision_id: Vec<Option<&str>> = events.iter().map(|e| e.decision_id.as_deref()).collect();
    let kind: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    let actor: Vec<&str> = events.iter().map(|e| e.actor.as_str()).collect();
    let at: Vec<i64> = events.iter().map(|e| e.at.0).collect();
    let data: Vec<String> = events.iter().map(|e| e.data.to_string()).collect();
    let prev: Vec<&str> = events.iter().map(|e| e.prev_hash.as_str()).collect();
    let hash: Vec<&str> = events.iter().map(|e| e.hash.as_str()).collect();
    let p = t.project.clone();
    t.execute(
        "INSERT INTO events (seq, case_id, decision_id, kind, actor, at, data, prev_hash, hash, project)
         SELECT *, $10::text FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::text[], $8::text[], $9::text[])",
        &[&seq, &case_id, &decision_id, &kind, &actor, &at, &data, &prev, &hash, &&*p],
    )?;
    Ok(())
}

/// Append one event to the chain, linking it to the head this batch holds.
pub(crate) fn append_event(
    t: &mut Tx<'_>,
    case_id: Option<&str>,
    decision_id: Option<&str>,
    kind: &str,
    actor: &str,
    at: Timestamp,
    data: serde_json::Value,
) -> Result<Event> {
    let ev = chain_event(t, case_id, decision_id, kind, actor, at, data)?;
    insert_events(t, std::slice::from_ref(&ev))?;
    Ok(ev)
}

/// What `audit verify` reads of one project, from the caller's repeatable-read
/// snapshot; the verification itself is the shared [`arbiter_store::audit::verify`].
pub(crate) struct AuditReader<'a, S: Sql>(pub &'a mut S, pub &'a str);

impl<S: Sql> arbiter_store::audit::AuditSnapshot for AuditReader<'_, S> {
    fn events_after(&mut self, after: u64, limit: usize) -> Result<Vec<StoredEvent>> {
        let rows = self.0.query(
            events_sql!("WHERE project = $3 AND seq > $1 ORDER BY seq LIMIT $2"),
            &[&(after as i64), &(limit as i64), &self.1],
        )?;
        rows.iter()
            .map(|r| {
                let seq = col::<i64>(r, 0)? as u64;
                Ok(match row_event(r, 0) {
                    Ok(ev) => StoredEvent::Read(ev),
                    Err(e) => StoredEvent::Unreadable {
                        seq,
                        hash: col(r, 8).unwrap_or_default(),
                        why: format!("unreadable: {e}"),
                    },
                })
            })
            .collect()
    }

    fn event_at(&mut self, seq: u64) -> Result<Option<Event>> {
        let events = load_events(self.0, events_sql!("WHERE project = $2 AND seq = $1"), &[&(seq as i64), &self.1])?;
        Ok(events.into_iter().next())
    }

    fn decisions_after(&mut self, after: i64, limit: usize) -> Result<Vec<DecisionRow>> {
        let rows = self.0.query(
            "SELECT seq, id, body, agent, idempotency_key, action_name, confidence, verdict, status, final_verdict,
                 policy_hash, case_id, trace_id, received_at, event_time, session_id, outcome_correct, outcome_cost,
                 subject, final_source, overridden
                 FROM decisions WHERE project = $3 AND seq > $1 ORDER BY seq LIMIT $2",
            &[&after, &(limit as i64), &self.1],
        )?;
        rows.iter()
            .map(|r| {
                Ok(DecisionRow {
                    seq: col(r, 0)?,
                    id: col(r, 1)?,
                    body: col(r, 2)?,
                    columns: DecisionColumns {
                        agent: col(r, 3)?,
                        idempotency_key: col(r, 4)?,
                        action_name: col(r, 5)?,
                        confidence: col(r, 6)?,
                        verdict: column_name(&col::<String>(r, 7)?),
                        status: column_name(&col::<String>(r, 8)?),
                        final_verdict: col::<Option<String>>(r, 9)?.as_deref().map(column_name),
                        policy_hash: col(r, 10)?,
                        case_id: col(r, 11)?,
                        trace_id: col(r, 12)?,
                        received_at: col(r, 13)?,
                        event_time: col(r, 14)?,
                        session_id: col(r, 15)?,
                        outcome_correct: col(r, 16)?,
                        outcome_cost: col(r, 17)?,
                        subject: col(r, 18)?,
                        final_source: col::<Option<String>>(r, 19)?.as_deref().map(column_name),
                        overridden: col(r, 20)?,
                    },
                })
            })
            .collect()
    }

    fn cases_after(&mut self, after: i64, limit: usize) -> Result<Vec<(i64, String, String)>> {
        let rows = self.0.query(
            "SELECT seq, id, body FROM cases WHERE project = $3 AND seq > $1 ORDER BY seq LIMIT $2",
            &[&after, &(limit as i64), &self.1],
        )?;
        rows.iter().map(|r| Ok((col(r, 0)?, col(r, 1)?, col(r, 2)?))).collect()
    }

    fn case_events(&mut self, case_id: &str) -> Result<Vec<Event>> {
        load_events(self.0, events_sql!("WHERE case_id = $1 AND project = $2 ORDER BY seq"), &[&case_id, &self.1])
    }

    fn lesson_events(&mut self) -> Result<Vec<Event>> {
        load_events(
            self.0,
            events_sql!("WHERE project = $1 AND kind IN ('lesson.created', 'lesson.updated') ORDER BY seq"),
            &[&self.1],
        )
    }

    fn lessons(&mut self) -> Result<Vec<(String, String)>> {
        let rows = self.0.query("SELECT id, body FROM lessons WHERE project = $1 ORDER BY seq", &[&self.1])?;
        rows.iter().map(|r| Ok((col(r, 0)?, col(r, 1)?))).collect()
    }
}

/// The last event of project `p`'s chain.
pub(crate) fn chain_head(c: &mut impl Sql, p: &str) -> Result<Option<ChainHead>> {
    let r = c.query_opt("SELECT seq, hash FROM events WHERE project = $1 ORDER BY seq DESC LIMIT 1", &[&p])?;
    r.map(|r| Ok(ChainHead { seq: col::<i64>(&r, 0)? as u64, hash: col(&r, 1)? })).transpose()
}

#[async_trait::async_trait]
impl arbiter_store::AuditStore for crate::PostgresStore {
    async fn case_events(&self, case_id: &str) -> Result<Vec<Event>> {
        let id = case_id.to_string();
        self.read(move |c, p| {
            load_events(c, crate::audit::events_sql!("WHERE case_id = $1 AND project = $2 ORDER BY seq"), &[&id, &p])
        })
        .await
    }

    async fn events(&self, after_seq: u64, limit: usize) -> Result<Vec<Event>> {
        self.read(move |c, p| {
            load_events(
                c,
                crate::audit::events_sql!("WHERE project = $3 AND seq > $1 ORDER BY seq LIMIT $2"),
                &[&(after_seq as i64), &(limit as i64), &p],
            )
        })
        .await
    }

    async fn record_event(&self, kind: &str, actor: &str, at: Timestamp, data: serde_json::Value) -> Result<Event> {
        let (kind, actor) = (kind.to_string(), actor.to_string());
        self.write(move |t| {
            let e = append_event(t, None, None, &kind, &actor, at, data.clone())?;
            crate::webhooks::queue_deliveries(t, &e)?;
            Ok(e)
        })
        .await
    }

    async fn verify_audit(&self, anchor: Option<ChainHead>) -> Result<AuditReport> {
        let project = self.project.clone();
        self.read(move |c, p| {
            // one snapshot: every check sees the same committed state
            let tx = c
                .client
                .build_transaction()
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .map_err(crate::backend)?;
            let mut snap = Snapshot(tx);
            let report = arbiter_store::audit::verify(&mut AuditReader(&mut snap, p), &project, anchor.as_ref())?;
            snap.0.commit().map_err(crate::backend)?;
            Ok(report)
        })
        .await
    }

    async fn chain_head(&self) -> Result<Option<ChainHead>> {
        self.read(chain_head).await
    }
}
