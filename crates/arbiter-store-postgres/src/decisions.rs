//! Decision rows: insert (with the idempotency protocol and the open-case
//! cap), read, outcomes, tool results, receipts and decision chains.

use crate::{Sql, Tx, col, load_bodies, load_body};
use arbiter_core::Outcome;
use arbiter_core::ToolResult;
use arbiter_core::{Decision, Timestamp};
use arbiter_store::Consumption;
use arbiter_store::rules::DecisionColumns;
use arbiter_store::writes::{self, DecisionRow, hour_of};
use arbiter_store::{Inserted, NewDecision, Result};
use std::collections::{HashMap, HashSet};

pub(crate) fn load_decision(c: &mut impl Sql, p: &str, id: &str) -> Result<Option<Decision>> {
    load_body(c, "SELECT body FROM decisions WHERE id = $1 AND project = $2", &[&id, &p])
}

/// The decision `agent` got for idempotency key `key` (see `Store::replayed_decision`).
pub(crate) fn replayed_decision(
    c: &mut impl Sql,
    p: &str,
    agent: &str,
    key: &str,
    digest: &str,
) -> Result<Option<Decision>> {
    let row = c.query_opt(
        "SELECT request_digest, body FROM decisions WHERE project = $3 AND agent = $1 AND idempotency_key = $2",
        &[&agent, &key, &p],
    )?;
    row.map(|r| arbiter_store::rules::replayed(key, &col::<String>(&r, 0)?, digest, &col::<String>(&r, 1)?)).transpose()
}

/// Add `by` to the hourly count of decisions of `d`'s class with this ending.
pub(crate) fn count_ending(
    t: &mut Tx<'_>,
    d: &Decision,
    verdict: Option<&str>,
    source: Option<&str>,
    by: i64,
) -> Result<()> {
    let p = t.project.clone();
    t.execute(
        "INSERT INTO decision_endings_hourly (project, hour, action_name, final_verdict, final_source, decisions)
         VALUES ($6, $1, $2, $3, $4, $5)
         ON CONFLICT (project, hour, action_name, final_verdict, final_source)
         DO UPDATE SET decisions = decision_endings_hourly.decisions + EXCLUDED.decisions",
        &[&hour_of(d), &d.action.name, &verdict.unwrap_or(""), &source.unwrap_or(""), &by, &&*p],
    )?;
    Ok(())
}

/// The final verdict and source columns of a decision row.
pub(crate) fn decision_ending(t: &mut Tx<'_>, id: &str) -> Result<(Option<String>, Option<String>)> {
    let p = t.project.clone();
    let was =
        t.query_one("SELECT final_verdict, final_source FROM decisions WHERE id = $1 AND project = $2", &[&id, &&*p])?;
    Ok((col(&was, 0)?, col(&was, 1)?))
}

/// Rewrite a decision row's changing columns and body.
pub(crate) fn update_decision_row(t: &mut Tx<'_>, d: &Decision, c: &DecisionColumns, body: &str) -> Result<()> {
    let p = t.project.clone();
    t.execute(
        "UPDATE decisions SET status = $2, final_verdict = $3, outcome_correct = $4, outcome_cost = $5, body = $6,
         final_source = $7, overridden = $8 WHERE id = $1 AND project = $9",
        &[
            &d.id,
            &c.status,
            &c.final_verdict,
            &c.outcome_correct,
            &c.outcome_cost,
            &body,
            &c.final_source,
            &c.overridden,
            &&*p,
        ],
    )?;
    Ok(())
}

/// How many approval cases each agent has waiting for people, in one query.
pub(crate) fn open_approval_cases(t: &mut Tx<'_>, agents: &[&str]) -> Result<HashMap<String, u64>> {
    let mut open = HashMap::new();
    let p = t.project.clone();
    for r in t.query(
        "SELECT agent, COUNT(*) FROM cases
         WHERE project = $2 AND agent = ANY($1) AND kind = 'approval' AND state IN ('open', 'claimed')
         GROUP BY agent",
        &[&agents, &&*p],
    )? {
        open.insert(col(&r, 0)?, col::<i64>(&r, 1)? as u64);
    }
    Ok(open)
}

/// For each (agent, idempotency key) stored, its request digest and body, in one query.
pub(crate) fn decisions_by_key(
    t: &mut Tx<'_>,
    keys: &[(&str, &str)],
) -> Result<HashMap<(String, String), (String, String)>> {
    let agents: Vec<&str> = keys.iter().map(|k| k.0).collect();
    let keys: Vec<&str> = keys.iter().map(|k| k.1).collect();
    let mut stored = HashMap::new();
    let p = t.project.clone();
    for r in t.query(
        "SELECT d.agent, d.idempotency_key, d.request_digest, d.body FROM decisions d
         JOIN unnest($1::text[], $2::text[]) AS k(agent, key) ON d.agent = k.agent AND d.idempotency_key = k.key
         WHERE d.project = $3",
        &[&agents, &keys, &&*p],
    )? {
        stored.insert((col(&r, 0)?, col(&r, 1)?), (col(&r, 2)?, col(&r, 3)?));
    }
    Ok(stored)
}

pub(crate) fn labelled(c: &mut impl Sql, p: &str, limit: usize) -> Result<Vec<Decision>> {
    let mut out: Vec<Decision> = load_bodies(
        c,
        "SELECT body FROM decisions WHERE project = $2 AND outcome_correct IS NOT NULL
         ORDER BY event_time DESC, seq DESC LIMIT $1",
        &[&(limit as i64), &p],
    )?;
    out.reverse();
    Ok(out)
}

pub(crate) fn unlabelled_audit(c: &mut impl Sql, p: &str, limit: usize) -> Result<Vec<Decision>> {
    // the text match narrows the scan cheaply; the JSON path decides
    let mut out: Vec<Decision> = load_bodies(
        c,
        "SELECT body FROM decisions WHERE project = $2 AND outcome_correct IS NULL AND verdict = 'allow'
           AND body LIKE '%\"audit\":{%' AND (body::jsonb -> 'audit') IS NOT NULL
         ORDER BY event_time DESC, seq DESC LIMIT $1",
        &[&(limit as i64), &p],
    )?;
    out.reverse();
    Ok(out)
}

pub(crate) fn recent(c: &mut impl Sql, p: &str, limit: usize) -> Result<Vec<Decision>> {
    let mut out: Vec<Decision> = load_bodies(
        c,
        "SELECT body FROM decisions WHERE project = $2 ORDER BY event_time DESC, seq DESC LIMIT $1",
        &[&(limit as i64), &p],
    )?;
    out.reverse();
    Ok(out)
}

pub(crate) fn chain(
    c: &mut impl Sql,
    p: &str,
    traces: &[String],
    ids: &[String],
    limit: usize,
) -> Result<Vec<Decision>> {
    if traces.is_empty() && ids.is_empty() {
        return Ok(vec![]);
    }
    load_bodies(
        c,
        "SELECT body FROM decisions
         WHERE project = $4 AND (trace_id = ANY($1) OR id = ANY($2)
            OR session_id IN (SELECT DISTINCT session_id FROM decisions
                WHERE project = $4 AND (trace_id = ANY($1) OR id = ANY($2)) AND session_id IS NOT NULL))
         ORDER BY event_time, seq LIMIT $3",
        &[&traces, &ids, &(limit.max(1) as i64), &p],
    )
}

/// Insert the rows whose (agent, idempotency key) is free and count them in
/// the hourly roll-ups, all in one statement (the bulk insert behind the
/// group commit of `POST /v1/decisions`: per batch, not per decision).
pub(crate) fn insert_decision_rows(t: &mut Tx<'_>, rows: &[DecisionRow<'_>]) -> Result<HashSet<String>> {
    let bodies: Vec<&str> = rows.iter().map(|r| r.body.as_str()).collect();
    let cols: Vec<&DecisionColumns> = rows.iter().map(|r| &r.columns).collect();
    let id: Vec<&str> = rows.iter().map(|r| r.new.decision.id.as_str()).collect();
    let agent: Vec<&str> = cols.iter().map(|c| c.agent.as_str()).collect();
    let key: Vec<Option<&str>> = cols.iter().map(|c| c.idempotency_key.as_deref()).collect();
    let digest: Vec<&str> = rows.iter().map(|r| r.new.request_digest.as_str()).collect();
    let action: Vec<&str> = cols.iter().map(|c| c.action_name.as_str()).collect();
    let confidence: Vec<Option<f64>> = cols.iter().map(|c| c.confidence).collect();
    let verdict: Vec<&str> = cols.iter().map(|c| c.verdict).collect();
    let status: Vec<&str> = cols.iter().map(|c| c.status).collect();
    let final_verdict: Vec<Option<&str>> = cols.iter().map(|c| c.final_verdict).collect();
    let policy: Vec<&str> = cols.iter().map(|c| c.policy_hash.as_str()).collect();
    let case_id: Vec<Option<&str>> = cols.iter().map(|c| c.case_id.as_deref()).collect();
    let trace: Vec<Option<&str>> = cols.iter().map(|c| c.trace_id.as_deref()).collect();
    let received: Vec<i64> = cols.iter().map(|c| c.received_at).collect();
    let event_time: Vec<i64> = cols.iter().map(|c| c.event_time).collect();
    let session: Vec<Option<&str>> = cols.iter().map(|c| c.session_id.as_deref()).collect();
    let subject: Vec<Option<&str>> = cols.iter().map(|c| c.subject.as_deref()).collect();
    let source: Vec<Option<&str>> = cols.iter().map(|c| c.final_source).collect();
    let overridden: Vec<Option<bool>> = cols.iter().map(|c| c.overridden).collect();
    let hour: Vec<i64> = cols.iter().map(|c| c.event_time.div_euclid(3_600_000)).collect();
    let p = t.project.clone();
    // Rows in order (WITH ORDINALITY), so that of two with the same key the first wins.
    let inserted = t.query(
        "WITH input AS (
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::float8[], $7::text[],
                 $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::bigint[], $14::bigint[], $15::text[],
                 $16::text[], $17::text[], $18::text[], $19::bool[], $20::bigint[])
                 WITH ORDINALITY AS i(id, agent, idempotency_key, request_digest, action_name, confidence, verdict, status,
                 final_verdict, policy_hash, case_id, trace_id, received_at, event_time, body, session_id, subject,
                 final_source, overridden, hour, n)
         ), row AS (
             INSERT INTO decisions (id, agent, idempotency_key, request_digest, action_name, confidence, verdict, status,
                 final_verdict, policy_hash, case_id, trace_id, received_at, event_time, body, session_id,
                 subject, final_source, overridden, project)
             SELECT id, agent, idempotency_key, request_digest, action_name, confidence, verdict, status, final_verdict,
                 policy_hash, case_id, trace_id, received_at, event_time, body, session_id, subject, final_source, overridden,
                 $21::text
             FROM input ORDER BY n
             ON CONFLICT (project, agent, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
             RETURNING id
         ), done AS (
             SELECT input.* FROM input JOIN row USING (id)
         ), hourly AS (
             INSERT INTO decision_hourly (project, hour, action_name, verdict, decisions)
             SELECT $21::text, hour, action_name, verdict, COUNT(*) FROM done GROUP BY 2, 3, 4
             ON CONFLICT (project, hour, action_name, verdict) DO UPDATE SET decisions = decision_hourly.decisions + EXCLUDED.decisions
         ), endings AS (
             INSERT INTO decision_endings_hourly (project, hour, action_name, final_verdict, final_source, decisions)
             SELECT $21::text, hour, action_name, COALESCE(final_verdict, ''), COALESCE(final_source, ''), COUNT(*) FROM done
             GROUP BY 2, 3, 4, 5
             ON CONFLICT (project, hour, action_name, final_verdict, final_source)
             DO UPDATE SET decisions = decision_endings_hourly.decisions + EXCLUDED.decisions
         )
         SELECT id FROM done",
        &[
            &id, &agent, &key, &digest, &action, &confidence, &verdict, &status, &final_verdict, &policy, &case_id, &trace,
            &received, &event_time, &bodies, &session, &subject, &source, &overridden, &hour, &&*p,
        ],
    )?;
    inserted.iter().map(|r| col(r, 0)).collect()
}

/// The recorded use of a decision's receipt (of a decision of the running job's project).
pub(crate) fn receipt_use(t: &mut Tx<'_>, id: &str) -> Result<Option<Consumption>> {
    let p = t.project.clone();
    t.query_opt(
        "SELECT u.consumer, u.args_digest, u.at FROM receipt_consumptions u JOIN decisions d ON d.id = u.decision_id
         WHERE u.decision_id = $1 AND d.project = $2",
        &[&id, &&*p],
    )?
    .map(|r| {
        Ok(Consumption {
            decision_id: id.to_string(),
            consumer: col(&r, 0)?,
            args_digest: col(&r, 1)?,
            at: Timestamp(col(&r, 2)?),
            first: false,
        })
    })
    .transpose()
}

/// Record a receipt's first use.
pub(crate) fn insert_receipt_use(t: &mut Tx<'_>, u: &Consumption) -> Result<()> {
    t.execute(
        "INSERT INTO receipt_consumptions (decision_id, consumer, args_digest, at) VALUES ($1, $2, $3, $4)",
        &[&u.decision_id, &u.consumer, &u.args_digest, &u.at.0],
    )?;
    Ok(())
}

#[async_trait::async_trait]
impl arbiter_store::DecisionStore for crate::PostgresStore {
    async fn insert_decision(&self, new: NewDecision) -> Result<Inserted> {
        self.insert(new).await
    }

    async fn decision(&self, id: &str) -> Result<Option<Decision>> {
        let id = id.to_string();
        self.read(move |c, p| load_decision(c, p, &id)).await
    }

    async fn replayed_decision(&self, agent: &str, key: &str, request_digest: &str) -> Result<Option<Decision>> {
        let (agent, key, digest) = (agent.to_string(), key.to_string(), request_digest.to_string());
        self.read(move |c, p| replayed_decision(c, p, &agent, &key, &digest)).await
    }

    async fn labelled_decisions(&self, limit: usize) -> Result<Vec<Decision>> {
        self.read(move |c, p| labelled(c, p, limit)).await
    }

    async fn unlabelled_audit_decisions(&self, limit: usize) -> Result<Vec<Decision>> {
        self.read(move |c, p| unlabelled_audit(c, p, limit)).await
    }

    async fn recent_decisions(&self, limit: usize) -> Result<Vec<Decision>> {
        self.read(move |c, p| recent(c, p, limit)).await
    }

    async fn record_outcome(&self, id: &str, outcome: Outcome) -> Result<Decision> {
        let id = id.to_string();
        self.write(move |t| {
            writes::rewrite_decision(t, &id, outcome.recorded_at, |d| d.outcome = Some(outcome.clone()))
        })
        .await
    }

    async fn record_tool_result(&self, id: &str, result: ToolResult) -> Result<Decision> {
        let id = id.to_string();
        self.write(move |t| {
            writes::rewrite_decision(t, &id, result.recorded_at, |d| d.tool_result = Some(result.clone()))
        })
        .await
    }

    async fn consume_receipt(
        &self,
        decision_id: &str,
        consumer: &str,
        args_digest: &str,
        at: Timestamp,
    ) -> Result<Consumption> {
        let (id, who, digest) = (decision_id.to_string(), consumer.to_string(), args_digest.to_string());
        self.write(move |t| writes::consume_receipt(t, &id, &who, &digest, at)).await
    }

    async fn decision_chain(
        &self,
        trace_ids: &[String],
        decision_ids: &[String],
        limit: usize,
    ) -> Result<Vec<Decision>> {
        let (traces, ids) = (trace_ids.to_vec(), decision_ids.to_vec());
        self.read(move |c, p| chain(c, p, &traces, &ids, limit)).await
    }
}
