//! Decision rows: insert (with the idempotency protocol and the open-case cap), read, outcomes, tool results, receipts and decision chains.

use super::*;

pub(super) fn load_decision(conn: &Connection, id: &str) -> Result<Option<Decision>> {
    let body: Option<String> =
        conn.query_row("SELECT body FROM decisions WHERE id = ?1", [id], |r| r.get(0)).optional().map_err(backend)?;
    body.map(|b| serde_json::from_str(&b).map_err(corrupt)).transpose()
}

/// Count a decision under how it ended (`+1` or `-1`) in the hourly roll-up the dashboard reads.
fn count_ending(conn: &Connection, d: &Decision, verdict: Option<&str>, source: Option<&str>, by: i64) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO decision_endings_hourly (hour, action_name, final_verdict, final_source, decisions)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (hour, action_name, final_verdict, final_source) DO UPDATE SET decisions = decisions + ?5",
    )
    .map_err(backend)?
    .execute(params![
        d.event_time.0.div_euclid(3_600_000),
        d.action.name,
        verdict.unwrap_or(""),
        source.unwrap_or(""),
        by
    ])
    .map_err(backend)?;
    Ok(())
}

/// Rewrite a decision row (after it became final or got an outcome) and commit it to the chain.
pub(super) fn save_decision(conn: &Connection, chain: &mut ChainBatch, d: &Decision, at: Timestamp) -> Result<()> {
    let body = serde_json::to_string(d).map_err(corrupt)?;
    let col = DecisionColumns::of(d);
    let (was_verdict, was_source): (Option<String>, Option<String>) = conn
        .prepare_cached("SELECT final_verdict, final_source FROM decisions WHERE id = ?1")
        .map_err(backend)?
        .query_row([&d.id], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(backend)?;
    if (was_verdict.as_deref(), was_source.as_deref()) != (col.final_verdict, col.final_source) {
        count_ending(conn, d, was_verdict.as_deref(), was_source.as_deref(), -1)?;
        count_ending(conn, d, col.final_verdict, col.final_source, 1)?;
    }
    conn.prepare_cached(
        "UPDATE decisions SET status = ?2, final_verdict = ?3, outcome_correct = ?4, outcome_cost = ?5, body = ?6,
         final_source = ?7, overridden = ?8 WHERE id = ?1",
    )
    .map_err(backend)?
    .execute(params![
        d.id,
        col.status,
        col.final_verdict,
        col.outcome_correct,
        col.outcome_cost,
        body,
        col.final_source,
        col.overridden
    ])
    .map_err(backend)?;
    chain.cover(&d.id, &body, at);
    Ok(())
}

#[async_trait]
impl crate::DecisionStore for SqliteStore {
    async fn insert_decision(&self, new: NewDecision) -> Result<Inserted> {
        self.write_chained(move |c, chain| {
            let mut new = new;
            if let Some(cap) = new.approval_cap() {
                let open: i64 = c
                    .prepare_cached(
                        "SELECT COUNT(*) FROM cases WHERE agent = ?1 AND kind = 'approval' AND state IN ('open', 'claimed')",
                    )
                    .map_err(backend)?
                    .query_row([&new.decision.agent], |r| r.get(0))
                    .map_err(backend)?;
                if open as u64 >= cap {
                    crate::rules::apply_case_cap(&mut new.decision, open as u64, cap);
                    new.case = None;
                }
            }
            let d = &new.decision;
            if let Some(key) = &d.idempotency_key {
                let prior: Option<(String, String)> = c
                    .prepare_cached("SELECT request_digest, body FROM decisions WHERE agent = ?1 AND idempotency_key = ?2")
                    .map_err(backend)?
                    .query_row(params![d.agent, key], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
                    .map_err(backend)?;
                if let Some((digest, body)) = prior {
                    let stored: Decision = serde_json::from_str(&body).map_err(corrupt)?;
                    return crate::rules::idempotent_replay(key, &digest, &new.request_digest, stored);
                }
            }
            let body = serde_json::to_string(d).map_err(corrupt)?;
            let col = DecisionColumns::of(d);
            c.prepare_cached(
                "INSERT INTO decisions (id, agent, idempotency_key, request_digest, action_name, confidence, verdict, status,
                 final_verdict, policy_hash, case_id, trace_id, received_at, event_time, body, session_id,
                 subject, final_source, overridden)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)",
            )
            .map_err(backend)?
            .execute(params![
                d.id,
                col.agent,
                col.idempotency_key,
                new.request_digest,
                col.action_name,
                col.confidence,
                col.verdict,
                col.status,
                col.final_verdict,
                col.policy_hash,
                col.case_id,
                col.trace_id,
                col.received_at,
                col.event_time,
                body,
                col.session_id,
                col.subject,
                col.final_source,
                col.overridden,
            ])
            .map_err(backend)?;
            chain.cover(&d.id, &body, d.received_at);
            c.prepare_cached(
                "INSERT INTO decision_hourly (hour, action_name, verdict, decisions) VALUES (?1, ?2, ?3, 1)
                 ON CONFLICT (hour, action_name, verdict) DO UPDATE SET decisions = decisions + 1",
            )
            .map_err(backend)?
            .execute(params![d.event_time.0.div_euclid(3_600_000), d.action.name, d.verdict.as_str()])
            .map_err(backend)?;
            count_ending(c, d, col.final_verdict, col.final_source, 1)?;
            if let Some(case) = &new.case {
                save_case(c, case, true)?;
                append_case_event(c, case, &CaseEvent::Opened { case: Box::new(case.clone()) }, &d.agent, case.created_at)?;
            }
            Ok(Inserted::Created(new.decision))
        })
        .await
    }

    async fn decision(&self, id: &str) -> Result<Option<Decision>> {
        let id = id.to_string();
        self.read(move |c| load_decision(c, &id)).await
    }

    async fn replayed_decision(&self, agent: &str, key: &str, digest: &str) -> Result<Option<Decision>> {
        let (agent, key, digest) = (agent.to_string(), key.to_string(), digest.to_string());
        self.read(move |c| {
            let prior: Option<(String, String)> = c
                .prepare_cached("SELECT request_digest, body FROM decisions WHERE agent = ?1 AND idempotency_key = ?2")
                .map_err(backend)?
                .query_row(params![agent, key], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
                .map_err(backend)?;
            prior.map(|(stored, body)| crate::rules::replayed(&key, &stored, &digest, &body)).transpose()
        })
        .await
    }

    async fn labelled_decisions(&self, limit: usize) -> Result<Vec<Decision>> {
        self.read(move |c| {
            let mut out: Vec<Decision> = load_bodies(
                c,
                "SELECT body FROM decisions WHERE outcome_correct IS NOT NULL ORDER BY event_time DESC, seq DESC LIMIT ?1",
                [limit as i64],
            )?;
            out.reverse();
            Ok(out)
        })
        .await
    }

    async fn unlabelled_audit_decisions(&self, limit: usize) -> Result<Vec<Decision>> {
        self.read(move |c| {
            // the text match narrows the scan cheaply; the JSON path decides
            let mut out: Vec<Decision> = load_bodies(
                c,
                r#"SELECT body FROM decisions WHERE outcome_correct IS NULL AND verdict = 'allow'
                   AND body LIKE '%"audit":{%' AND json_extract(body, '$.audit.probability') IS NOT NULL
                   ORDER BY event_time DESC, seq DESC LIMIT ?1"#,
                [limit as i64],
            )?;
            out.reverse();
            Ok(out)
        })
        .await
    }

    async fn recent_decisions(&self, limit: usize) -> Result<Vec<Decision>> {
        self.read(move |c| {
            let mut out: Vec<Decision> = load_bodies(
                c,
                "SELECT body FROM decisions ORDER BY event_time DESC, seq DESC LIMIT ?1",
                [limit as i64],
            )?;
            out.reverse();
            Ok(out)
        })
        .await
    }

    async fn record_outcome(&self, id: &str, outcome: Outcome) -> Result<Decision> {
        let id = id.to_string();
        self.write_chained(move |c, chain| {
            let mut d = load_decision(c, &id)?.ok_or_else(|| StoreError::NotFound(format!("decision {id}")))?;
            let at = outcome.recorded_at;
            d.outcome = Some(outcome);
            save_decision(c, chain, &d, at)?;
            Ok(d)
        })
        .await
    }

    async fn record_tool_result(&self, id: &str, result: arbiter_core::ToolResult) -> Result<Decision> {
        let id = id.to_string();
        self.write_chained(move |c, chain| {
            let mut d = load_decision(c, &id)?.ok_or_else(|| StoreError::NotFound(format!("decision {id}")))?;
            let at = result.recorded_at;
            d.tool_result = Some(result);
            save_decision(c, chain, &d, at)?;
            Ok(d)
        })
        .await
    }

    async fn consume_receipt(
        &self,
        decision_id: &str,
        consumer: &str,
        args_digest: &str,
        at: Timestamp,
    ) -> Result<crate::Consumption> {
        let (id, who, digest) = (decision_id.to_string(), consumer.to_string(), args_digest.to_string());
        self.write(move |c| {
            let prior: Option<(String, String, i64)> = c
                .prepare_cached("SELECT consumer, args_digest, at FROM receipt_consumptions WHERE decision_id = ?1")
                .map_err(backend)?
                .query_row([&id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()
                .map_err(backend)?;
            if let Some((consumer, args_digest, at)) = prior {
                return Ok(crate::Consumption {
                    decision_id: id,
                    consumer,
                    args_digest,
                    at: Timestamp(at),
                    first: false,
                });
            }
            c.prepare_cached(
                "INSERT INTO receipt_consumptions (decision_id, consumer, args_digest, at) VALUES (?1, ?2, ?3, ?4)",
            )
            .map_err(backend)?
            .execute(params![id, who, digest, at.0])
            .map_err(backend)?;
            let e = append_event(
                c,
                None,
                None,
                "receipt.consumed",
                &who,
                at,
                serde_json::json!({"decision_id": id, "consumer": who, "args_digest": digest}),
            )?;
            queue_deliveries(c, &e)?;
            Ok(crate::Consumption { decision_id: id, consumer: who, args_digest: digest, at, first: true })
        })
        .await
    }

    async fn decision_chain(
        &self,
        trace_ids: &[String],
        decision_ids: &[String],
        limit: usize,
    ) -> Result<Vec<Decision>> {
        let (traces, ids) = (trace_ids.to_vec(), decision_ids.to_vec());
        self.read(move |c| {
            if traces.is_empty() && ids.is_empty() {
                return Ok(vec![]);
            }
            // The id lists travel as JSON arrays, bound like any other parameter.
            let traces = serde_json::to_string(&traces).map_err(corrupt)?;
            let ids = serde_json::to_string(&ids).map_err(corrupt)?;
            // The sessions of the named decisions and traces widen the chain.
            let mut st = c
                .prepare_cached(
                    "SELECT body FROM decisions
                     WHERE trace_id IN (SELECT value FROM json_each(?1)) OR id IN (SELECT value FROM json_each(?2))
                        OR session_id IN (SELECT DISTINCT session_id FROM decisions
                            WHERE (trace_id IN (SELECT value FROM json_each(?1)) OR id IN (SELECT value FROM json_each(?2)))
                              AND session_id IS NOT NULL)
                     ORDER BY event_time, seq LIMIT ?3",
                )
                .map_err(backend)?;
            let rows = st.query_map(params![traces, ids, limit.max(1) as i64], |r| r.get::<_, String>(0)).map_err(backend)?;
            rows.map(|b| serde_json::from_str(&b.map_err(backend)?).map_err(corrupt)).collect()
        })
        .await
    }
}
