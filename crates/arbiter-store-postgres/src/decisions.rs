//! Decision rows: insert (with the idempotency protocol and the open-case
//! cap), read, outcomes, tool results, receipts and decision chains.

use crate::{Sql, Tx, col, corrupt, load_bodies, load_body};
use arbiter_core::Outcome;
use arbiter_core::ToolResult;
use arbiter_core::{CaseEvent, Decision, Timestamp};
use arbiter_store::Consumption;
use arbiter_store::rules::DecisionColumns;
use arbiter_store::{Inserted, NewDecision, Result, StoreError};

pub(crate) fn load_decision(c: &mut impl Sql, id: &str) -> Result<Option<Decision>> {
    load_body(c, "SELECT body FROM decisions WHERE id = $1", &[&id])
}

/// The decision `agent` got for idempotency key `key` (see `Store::replayed_decision`).
pub(crate) fn replayed_decision(c: &mut impl Sql, agent: &str, key: &str, digest: &str) -> Result<Option<Decision>> {
    let row = c.query_opt(
        "SELECT request_digest, body FROM decisions WHERE agent = $1 AND idempotency_key = $2",
        &[&agent, &key],
    )?;
    row.map(|r| arbiter_store::rules::replayed(key, &col::<String>(&r, 0)?, digest, &col::<String>(&r, 1)?)).transpose()
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

/// Insert one decision (a batch of one for [`insert_many`]: the path a job
/// takes when its batch runs again with a savepoint per job).
pub(crate) fn insert(t: &mut Tx<'_>, new: &NewDecision) -> Result<Inserted> {
    insert_many(t, &[new])?.pop().expect("one result per decision")
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

pub(crate) fn unlabelled_audit(c: &mut impl Sql, limit: usize) -> Result<Vec<Decision>> {
    // the text match narrows the scan cheaply; the JSON path decides
    let mut out: Vec<Decision> = load_bodies(
        c,
        "SELECT body FROM decisions WHERE outcome_correct IS NULL AND verdict = 'allow' AND body LIKE '%\"audit\":{%'
           AND (body::jsonb -> 'audit') IS NOT NULL ORDER BY event_time DESC, seq DESC LIMIT $1",
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

/// Insert the decisions of a whole batch in a few statements (the hot path
/// of `POST /v1/decisions`: per batch, not per decision): the open-case cap
/// counted per agent, the rows and hourly roll-ups, the cases and their
/// `case.opened` events, and their webhook deliveries. Each decision's result
/// is what [`insert`] would give it run alone, in order.
pub(crate) fn insert_many(t: &mut Tx<'_>, batch: &[&NewDecision]) -> Result<Vec<Result<Inserted>>> {
    let mut news: Vec<NewDecision> = batch.iter().map(|n| (*n).clone()).collect();
    // the cap, counting the cases this batch opens as it goes
    let capped: Vec<String> =
        news.iter().filter(|n| n.approval_cap().is_some()).map(|n| n.decision.agent.clone()).collect();
    if !capped.is_empty() {
        let mut open: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
        for r in t.query(
            "SELECT agent, COUNT(*) FROM cases WHERE agent = ANY($1) AND kind = 'approval' AND state IN ('open', 'claimed')
             GROUP BY agent",
            &[&capped],
        )? {
            open.insert(col(&r, 0)?, col::<i64>(&r, 1)? as u64);
        }
        for n in &mut news {
            if let Some(cap) = n.approval_cap() {
                let count = open.entry(n.decision.agent.clone()).or_default();
                if *count >= cap {
                    arbiter_store::rules::apply_case_cap(&mut n.decision, *count, cap);
                    n.case = None;
                } else {
                    *count += 1;
                }
            }
        }
    }
    let bodies =
        news.iter().map(|n| serde_json::to_string(&n.decision).map_err(corrupt)).collect::<Result<Vec<_>>>()?;
    let cols: Vec<DecisionColumns> = news.iter().map(|n| DecisionColumns::of(&n.decision)).collect();
    let id: Vec<&str> = news.iter().map(|n| n.decision.id.as_str()).collect();
    let agent: Vec<&str> = cols.iter().map(|c| c.agent.as_str()).collect();
    let key: Vec<Option<&str>> = cols.iter().map(|c| c.idempotency_key.as_deref()).collect();
    let digest: Vec<&str> = news.iter().map(|n| n.request_digest.as_str()).collect();
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
    // Rows in order (WITH ORDINALITY), so that of two with the same key the first wins.
    let rows = t.query(
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
                 subject, final_source, overridden)
             SELECT id, agent, idempotency_key, request_digest, action_name, confidence, verdict, status, final_verdict,
                 policy_hash, case_id, trace_id, received_at, event_time, body, session_id, subject, final_source, overridden
             FROM input ORDER BY n
             ON CONFLICT (agent, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
             RETURNING id
         ), done AS (
             SELECT input.* FROM input JOIN row USING (id)
         ), hourly AS (
             INSERT INTO decision_hourly (hour, action_name, verdict, decisions)
             SELECT hour, action_name, verdict, COUNT(*) FROM done GROUP BY 1, 2, 3
             ON CONFLICT (hour, action_name, verdict) DO UPDATE SET decisions = decision_hourly.decisions + EXCLUDED.decisions
         ), endings AS (
             INSERT INTO decision_endings_hourly (hour, action_name, final_verdict, final_source, decisions)
             SELECT hour, action_name, COALESCE(final_verdict, ''), COALESCE(final_source, ''), COUNT(*) FROM done GROUP BY 1, 2, 3, 4
             ON CONFLICT (hour, action_name, final_verdict, final_source)
             DO UPDATE SET decisions = decision_endings_hourly.decisions + EXCLUDED.decisions
         )
         SELECT id FROM done",
        &[
            &id, &agent, &key, &digest, &action, &confidence, &verdict, &status, &final_verdict, &policy, &case_id, &trace,
            &received, &event_time, &bodies, &session, &subject, &source, &overridden, &hour,
        ],
    )?;
    let inserted: std::collections::HashSet<String> = rows.iter().map(|r| col(r, 0)).collect::<Result<_>>()?;
    // the others reused a key: their stored decisions (from before, or from earlier in this batch)
    let replays: Vec<usize> = (0..news.len()).filter(|i| !inserted.contains(id[*i])).collect();
    let mut stored: std::collections::HashMap<(String, String), (String, String)> = Default::default();
    if !replays.is_empty() {
        let agents: Vec<&str> = replays.iter().map(|i| agent[*i]).collect();
        let keys: Vec<&str> = replays.iter().map(|i| key[*i].unwrap_or_default()).collect();
        for r in t.query(
            "SELECT d.agent, d.idempotency_key, d.request_digest, d.body FROM decisions d
             JOIN unnest($1::text[], $2::text[]) AS k(agent, key) ON d.agent = k.agent AND d.idempotency_key = k.key",
            &[&agents, &keys],
        )? {
            stored.insert((col(&r, 0)?, col(&r, 1)?), (col(&r, 2)?, col(&r, 3)?));
        }
    }
    let mut out = Vec::with_capacity(news.len());
    let mut cases: Vec<&arbiter_core::Case> = Vec::new();
    let mut openers: Vec<(usize, String)> = Vec::new();
    for (i, n) in news.iter().enumerate() {
        if !inserted.contains(id[i]) {
            let k = key[i].unwrap_or_default();
            let found = stored.get(&(agent[i].to_string(), k.to_string()));
            out.push(match found {
                Some((digest, body)) => serde_json::from_str::<Decision>(body)
                    .map_err(corrupt)
                    .and_then(|d| arbiter_store::rules::idempotent_replay(k, digest, &n.request_digest, d)),
                None => Err(StoreError::Conflict(format!("decision {} was not stored (its id is taken)", id[i]))),
            });
            continue;
        }
        t.chain.cover(id[i], &bodies[i], n.decision.received_at);
        if let Some(case) = &n.case {
            cases.push(case);
            openers.push((i, n.decision.agent.clone()));
        }
        out.push(Ok(Inserted::Created(n.decision.clone())));
    }
    crate::cases::insert_cases(t, &cases)?;
    let mut events = Vec::with_capacity(cases.len());
    for (case, (_, agent)) in cases.iter().zip(&openers) {
        let ev = CaseEvent::Opened { case: Box::new((*case).clone()) };
        events.push(crate::audit::chain_event(
            t,
            Some(&case.id),
            case.decision_id.as_deref(),
            ev.kind(),
            agent,
            case.created_at,
            ev.data(),
        ));
    }
    crate::audit::insert_events(t, &events)?;
    crate::webhooks::queue_deliveries_many(t, &events)?;
    Ok(out)
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
    let e = crate::audit::append_event(
        t,
        None,
        None,
        "receipt.consumed",
        who,
        at,
        serde_json::json!({"decision_id": id, "consumer": who, "args_digest": digest}),
    )?;
    crate::webhooks::queue_deliveries(t, &e)?;
    Ok(Consumption { decision_id: id.into(), consumer: who.into(), args_digest: digest.into(), at, first: true })
}

#[async_trait::async_trait]
impl arbiter_store::DecisionStore for crate::PostgresStore {
    async fn insert_decision(&self, new: NewDecision) -> Result<Inserted> {
        self.insert(new).await
    }

    async fn decision(&self, id: &str) -> Result<Option<Decision>> {
        let id = id.to_string();
        self.read(move |c| load_decision(c, &id)).await
    }

    async fn replayed_decision(&self, agent: &str, key: &str, request_digest: &str) -> Result<Option<Decision>> {
        let (agent, key, digest) = (agent.to_string(), key.to_string(), request_digest.to_string());
        self.read(move |c| replayed_decision(c, &agent, &key, &digest)).await
    }

    async fn labelled_decisions(&self, limit: usize) -> Result<Vec<Decision>> {
        self.read(move |c| labelled(c, limit)).await
    }

    async fn unlabelled_audit_decisions(&self, limit: usize) -> Result<Vec<Decision>> {
        self.read(move |c| unlabelled_audit(c, limit)).await
    }

    async fn recent_decisions(&self, limit: usize) -> Result<Vec<Decision>> {
        self.read(move |c| recent(c, limit)).await
    }

    async fn record_outcome(&self, id: &str, outcome: Outcome) -> Result<Decision> {
        let id = id.to_string();
        self.write(move |t| rewrite(t, &id, outcome.recorded_at, |d| d.outcome = Some(outcome.clone()))).await
    }

    async fn record_tool_result(&self, id: &str, result: ToolResult) -> Result<Decision> {
        let id = id.to_string();
        self.write(move |t| rewrite(t, &id, result.recorded_at, |d| d.tool_result = Some(result.clone()))).await
    }

    async fn consume_receipt(
        &self,
        decision_id: &str,
        consumer: &str,
        args_digest: &str,
        at: Timestamp,
    ) -> Result<Consumption> {
        let (id, who, digest) = (decision_id.to_string(), consumer.to_string(), args_digest.to_string());
        self.write(move |t| consume_receipt(t, &id, &who, &digest, at)).await
    }

    async fn decision_chain(
        &self,
        trace_ids: &[String],
        decision_ids: &[String],
        limit: usize,
    ) -> Result<Vec<Decision>> {
        let (traces, ids) = (trace_ids.to_vec(), decision_ids.to_vec());
        self.read(move |c| chain(c, &traces, &ids, limit)).await
    }
}
