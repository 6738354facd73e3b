//! Decision rows: insert (with the idempotency protocol and the open-case
//! cap), read, outcomes, tool results, chains and drift points.

use crate::cases::{append_case_event, save_case};
use crate::{Sql, Tx, col, corrupt, load_bodies, load_body};
use arbiter_core::{CaseEvent, Decision, Timestamp};
use arbiter_store::rules::DecisionColumns;
use arbiter_store::{Inserted, NewDecision, Result, StoreError};

pub(crate) fn load_decision(c: &mut impl Sql, id: &str) -> Result<Option<Decision>> {
    load_body(c, "SELECT body FROM decisions WHERE id = $1", &[&id])
}

/// Count a decision under how it ended (`+1` or `-1`) in the hourly roll-up the dashboard reads.
fn count_ending(t: &mut Tx<'_>, d: &Decision, verdict: Option<&str>, source: Option<&str>, by: i64) -> Result<()> {
    t.execute(
        "INSERT INTO decision_endings_hourly (hour, action_name, final_verdict, final_source, decisions)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (hour, action_name, final_verdict, final_source)
         DO UPDATE SET decisions = decision_endings_hourly.decisions + EXCLUDED.decisions",
        &[&d.event_time.0.div_euclid(3_600_000), &d.action.name, &verdict.unwrap_or(""), &source.unwrap_or(""), &by],
    )?;
    Ok(())
}

/// Rewrite a decision row (after it became final or got an outcome) and commit it to the chain.
pub(crate) fn save_decision(t: &mut Tx<'_>, d: &Decision, at: Timestamp) -> Result<()> {
    let body = serde_json::to_string(d).map_err(corrupt)?;
    let col_ = DecisionColumns::of(d);
    let was = t.query_one("SELECT final_verdict, final_source FROM decisions WHERE id = $1", &[&d.id])?;
    let (was_verdict, was_source): (Option<String>, Option<String>) = (col(&was, 0)?, col(&was, 1)?);
    if (was_verdict.as_deref(), was_source.as_deref()) != (col_.final_verdict, col_.final_source) {
        count_ending(t, d, was_verdict.as_deref(), was_source.as_deref(), -1)?;
        count_ending(t, d, col_.final_verdict, col_.final_source, 1)?;
    }
    t.execute(
        "UPDATE decisions SET status = $2, final_verdict = $3, outcome_correct = $4, outcome_cost = $5, body = $6,
         final_source = $7, overridden = $8 WHERE id = $1",
        &[
            &d.id,
            &col_.status,
            &col_.final_verdict,
            &col_.outcome_correct,
            &col_.outcome_cost,
            &body,
            &col_.final_source,
            &col_.overridden,
        ],
    )?;
    t.chain.cover(&d.id, &body, at);
    Ok(())
}

pub(crate) fn insert(t: &mut Tx<'_>, new: NewDecision) -> Result<Inserted> {
    let mut new = new;
    if let (Some(cap), Some(_)) = (new.open_case_cap, &new.case) {
        let r = t.query_one(
            "SELECT COUNT(*) FROM cases WHERE agent = $1 AND kind = 'approval' AND state IN ('open', 'claimed')",
            &[&new.decision.agent],
        )?;
        let open = col::<i64>(&r, 0)? as u64;
        if open >= cap {
            arbiter_store::rules::apply_case_cap(&mut new.decision, open, cap);
            new.case = None;
        }
    }
    let d = &new.decision;
    if let Some(key) = &d.idempotency_key {
        let prior = t.query_opt(
            "SELECT request_digest, body FROM decisions WHERE agent = $1 AND idempotency_key = $2",
            &[&d.agent, key],
        )?;
        if let Some(r) = prior {
            let stored: Decision = serde_json::from_str(&col::<String>(&r, 1)?).map_err(corrupt)?;
            return arbiter_store::rules::idempotent_replay(key, &col::<String>(&r, 0)?, &new.request_digest, stored);
        }
    }
    let body = serde_json::to_string(d).map_err(corrupt)?;
    let c = DecisionColumns::of(d);
    let hour = d.event_time.0.div_euclid(3_600_000);
    // the row and both hourly roll-ups in one statement (one round trip)
    t.execute(
        "WITH row AS (
             INSERT INTO decisions (id, agent, idempotency_key, request_digest, action_name, confidence, verdict, status,
                 final_verdict, policy_hash, case_id, trace_id, received_at, event_time, body, session_id,
                 subject, final_source, overridden)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)
         ), hourly AS (
             INSERT INTO decision_hourly (hour, action_name, verdict, decisions) VALUES ($20, $5, $7, 1)
             ON CONFLICT (hour, action_name, verdict) DO UPDATE SET decisions = decision_hourly.decisions + 1
         )
         INSERT INTO decision_endings_hourly (hour, action_name, final_verdict, final_source, decisions)
         VALUES ($20, $5, COALESCE($9, ''), COALESCE($18, ''), 1)
         ON CONFLICT (hour, action_name, final_verdict, final_source)
         DO UPDATE SET decisions = decision_endings_hourly.decisions + 1",
        &[
            &d.id,
            &c.agent,
            &c.idempotency_key,
            &new.request_digest,
            &c.action_name,
            &c.confidence,
            &c.verdict,
            &c.status,
            &c.final_verdict,
            &c.policy_hash,
            &c.case_id,
            &c.trace_id,
            &c.received_at,
            &c.event_time,
            &body,
            &c.session_id,
            &c.subject,
            &c.final_source,
            &c.overridden,
            &hour,
        ],
    )
    .map_err(|e| match e {
        StoreError::Backend { context, .. } if context.contains("23505") => {
            StoreError::Conflict(format!("decision {} already exists", d.id))
        }
        other => other,
    })?;
    t.chain.cover(&d.id, &body, d.received_at);
    if let Some(case) = &new.case {
        save_case(t, case, true)?;
        append_case_event(t, case, &CaseEvent::Opened { case: Box::new(case.clone()) }, &d.agent, case.created_at)?;
    }
    Ok(Inserted::Created(new.decision))
}

/// Set an outcome or a tool result: rewrite the row and commit it to the chain.
pub(crate) fn rewrite(t: &mut Tx<'_>, id: &str, at: Timestamp, change: impl FnOnce(&mut Decision)) -> Result<Decision> {
    let mut d = load_body::<Decision>(t, "SELECT body FROM decisions WHERE id = $1 FOR UPDATE", &[&id])?
        .ok_or_else(|| StoreError::NotFound(format!("decision {id}")))?;
    change(&mut d);
    save_decision(t, &d, at)?;
    Ok(d)
}

pub(crate) fn labelled(c: &mut impl Sql, limit: usize) -> Result<Vec<Decision>> {
    let mut out: Vec<Decision> = load_bodies(
        c,
        "SELECT body FROM decisions WHERE outcome_correct IS NOT NULL ORDER BY event_time DESC, seq DESC LIMIT $1",
        &[&(limit as i64)],
    )?;
    out.reverse();
    Ok(out)
}

pub(crate) fn recent(c: &mut impl Sql, limit: usize) -> Result<Vec<Decision>> {
    let mut out: Vec<Decision> =
        load_bodies(c, "SELECT body FROM decisions ORDER BY event_time DESC, seq DESC LIMIT $1", &[&(limit as i64)])?;
    out.reverse();
    Ok(out)
}

pub(crate) fn chain(c: &mut impl Sql, traces: &[String], ids: &[String], limit: usize) -> Result<Vec<Decision>> {
    if traces.is_empty() && ids.is_empty() {
        return Ok(vec![]);
    }
    load_bodies(
        c,
        "SELECT body FROM decisions
         WHERE trace_id = ANY($1) OR id = ANY($2)
            OR session_id IN (SELECT DISTINCT session_id FROM decisions
                WHERE (trace_id = ANY($1) OR id = ANY($2)) AND session_id IS NOT NULL)
         ORDER BY event_time, seq LIMIT $3",
        &[&traces, &ids, &(limit.max(1) as i64)],
    )
}

pub(crate) fn drift_points(c: &mut impl Sql, from: Timestamp, to: Timestamp) -> Result<Vec<arbiter_store::DriftPoint>> {
    c.query(
        "SELECT event_time, id, action_name, verdict, confidence, outcome_correct FROM decisions
         WHERE event_time >= $1 AND event_time < $2 ORDER BY event_time, seq",
        &[&from.0, &to.0],
    )?
    .iter()
    .map(|r| {
        Ok(arbiter_store::DriftPoint {
            at: Timestamp(col(r, 0)?),
            decision_id: col(r, 1)?,
            point: arbiter_core::drift::Point {
                action: col(r, 2)?,
                escalated: col::<String>(r, 3)? == "escalate",
                confidence: col(r, 4)?,
                correct: col(r, 5)?,
            },
        })
    })
    .collect()
}
