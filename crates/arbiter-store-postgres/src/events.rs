//! The hash-chained event log: appends (under the chain-head lock the batch
//! holds), reads, and `audit verify` over events, decisions, cases and lessons.

use crate::{Params, Sql, Tx, col, corrupt};
use arbiter_core::Timestamp;
use arbiter_store::rules::{ChainWalk, DECISIONS_COMMITTED, DecisionColumns, DecisionLedger};
use arbiter_store::{AuditProblem, AuditReport, ChainHead, Event, Result};
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
) -> Event {
    let mut ev = Event {
        seq: t.head.seq + 1,
        case_id: case_id.map(str::to_string),
        decision_id: decision_id.map(str::to_string),
        kind: kind.to_string(),
        actor: actor.to_string(),
        at,
        data,
        prev_hash: t.head.hash.clone(),
        hash: String::new(),
    };
    ev.hash = ev.compute_hash();
    t.head = ChainHead { seq: ev.seq, hash: ev.hash.clone() };
    ev
}

/// Insert events made by [`chain_event`], in one statement.
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
    t.execute(
        "INSERT INTO events (seq, case_id, decision_id, kind, actor, at, data, prev_hash, hash)
         SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::text[], $8::text[], $9::text[])",
        &[&seq, &case_id, &decision_id, &kind, &actor, &at, &data, &prev, &hash],
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
    let ev = chain_event(t, case_id, decision_id, kind, actor, at, data);
    insert_events(t, std::slice::from_ref(&ev))?;
    Ok(ev)
}

/// The stored text of an enum column as the static name it should be, so that
/// a forged value compares unequal instead of failing to parse.
pub(crate) fn static_str(s: &str) -> &'static str {
    ["allow", "escalate", "deny", "final", "pending", "policy", "review", "sla_expired", "agent_case_cap", "withdrawn"]
        .into_iter()
        .find(|k| *k == s)
        .unwrap_or("(unknown)")
}

/// `audit verify` in one snapshot (the caller's repeatable-read transaction).
pub(crate) fn verify(c: &mut impl Sql, anchor: Option<ChainHead>) -> Result<AuditReport> {
    let mut report = AuditReport::default();
    let mut walk = ChainWalk::default();
    let mut ledger = DecisionLedger::default();
    // a page at a time, so a long log is never all in memory
    let mut after = 0i64;
    loop {
        let rows = c.query(events_sql!("WHERE seq > $1 ORDER BY seq LIMIT 5000"), &[&after])?;
        if rows.is_empty() {
            break;
        }
        for r in &rows {
            let seq = col::<i64>(r, 0)?;
            after = seq;
            let ev = match row_event(r, 0) {
                Ok(ev) => ev,
                Err(e) => {
                    report.note(AuditProblem::Event { seq: seq as u64, why: format!("unreadable: {e}") });
                    let hash: String = col(r, 8).unwrap_or_default();
                    walk.skip(seq as u64, &hash);
                    report.head = Some(ChainHead { seq: seq as u64, hash });
                    continue;
                }
            };
            let step = walk
                .step(&ev)
                .and_then(|()| if ev.kind == DECISIONS_COMMITTED { ledger.commit(ev.seq, &ev.data) } else { Ok(()) });
            match step {
                Ok(()) => report.events += 1,
                Err(p) => report.note(p),
            }
            report.head = Some(ChainHead { seq: ev.seq, hash: ev.hash });
        }
    }
    if let Some(anchor) = &anchor {
        let at = load_events(c, events_sql!("WHERE seq = $1"), &[&(anchor.seq as i64)])?;
        if let Err(p) = arbiter_store::rules::check_anchor(anchor, at.first(), report.head.as_ref()) {
            report.note(p);
        }
    }
    let mut after = 0i64;
    loop {
        let rows = c.query(
            "SELECT seq, id, body, agent, idempotency_key, action_name, confidence, verdict, status, final_verdict,
                 policy_hash, case_id, trace_id, received_at, event_time, session_id, outcome_correct, outcome_cost,
                 subject, final_source, overridden
                 FROM decisions WHERE seq > $1 ORDER BY seq LIMIT 5000",
            &[&after],
        )?;
        if rows.is_empty() {
            break;
        }
        for r in &rows {
            after = col(r, 0)?;
            let id: String = col(r, 1)?;
            let body: String = col(r, 2)?;
            let stored = DecisionColumns {
                agent: col(r, 3)?,
                idempotency_key: col(r, 4)?,
                action_name: col(r, 5)?,
                confidence: col(r, 6)?,
                verdict: static_str(&col::<String>(r, 7)?),
                status: static_str(&col::<String>(r, 8)?),
                final_verdict: col::<Option<String>>(r, 9)?.as_deref().map(static_str),
                policy_hash: col(r, 10)?,
                case_id: col(r, 11)?,
                trace_id: col(r, 12)?,
                received_at: col(r, 13)?,
                event_time: col(r, 14)?,
                session_id: col(r, 15)?,
                outcome_correct: col(r, 16)?,
                outcome_cost: col(r, 17)?,
                subject: col(r, 18)?,
                final_source: col::<Option<String>>(r, 19)?.as_deref().map(static_str),
                overridden: col(r, 20)?,
            };
            match ledger.check(&id, &body, &stored) {
                Ok(()) => report.decisions += 1,
                Err(p) => report.note(p),
            }
        }
    }
    ledger.finish().into_iter().for_each(|p| report.note(p));
    let cases = c.query("SELECT id, body FROM cases ORDER BY seq", &[])?;
    for r in &cases {
        let (id, body): (String, String) = (col(r, 0)?, col(r, 1)?);
        let events = load_events(c, events_sql!("WHERE case_id = $1 ORDER BY seq"), &[&id])?;
        match arbiter_store::rules::check_projection(&id, &body, &events) {
            Ok(()) => report.cases += 1,
            Err(p) => report.note(p),
        }
    }
    let mut last: std::collections::HashMap<String, Event> = std::collections::HashMap::new();
    for e in load_events(c, events_sql!("WHERE kind IN ('lesson.created', 'lesson.updated') ORDER BY seq"), &[])? {
        if let Some(id) = e.data["lesson"]["id"].as_str() {
            last.insert(id.to_string(), e);
        }
    }
    for r in &c.query("SELECT id, body FROM lessons ORDER BY seq", &[])? {
        let (id, body): (String, String) = (col(r, 0)?, col(r, 1)?);
        if let Err(p) = arbiter_store::rules::check_lesson(&id, &body, last.get(&id)) {
            report.note(p);
        }
    }
    Ok(report)
}

/// The last event of the chain.
pub(crate) fn chain_head(c: &mut impl Sql) -> Result<Option<ChainHead>> {
    let r = c.query_opt("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1", &[])?;
    r.map(|r| Ok(ChainHead { seq: col::<i64>(&r, 0)? as u64, hash: col(&r, 1)? })).transpose()
}
