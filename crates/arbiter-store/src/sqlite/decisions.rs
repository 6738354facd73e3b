//! Decision rows: insert (with the idempotency protocol and the open-case cap), read, outcomes, tool results, receipts and decision chains.

use super::*;
use crate::writes::{self, DecisionRow, hour_of};
use std::collections::{HashMap, HashSet};

pub(super) fn load_decision(conn: &Connection, p: &str, id: &str) -> Result<Option<Decision>> {
    let body: Option<String> = conn
        .prepare_cached("SELECT body FROM decisions WHERE id = ?1 AND project = ?2")
        .map_err(backend)?
        .query_row([id, p], |r| r.get(0))
        .optional()
        .map_err(backend)?;
    body.map(|b| serde_json::from_str(&b).map_err(corrupt)).transpose()
}

/// How many approval cases each agent has waiting for people.
pub(super) fn open_approval_cases(conn: &Connection, p: &str, agents: &[&str]) -> Result<HashMap<String, u64>> {
    let mut st = conn
        .prepare_cached(
            "SELECT COUNT(*) FROM cases
             WHERE project = ?2 AND agent = ?1 AND kind = 'approval' AND state IN ('open', 'claimed')",
        )
        .map_err(backend)?;
    let mut out = HashMap::new();
    for agent in agents {
        if !out.contains_key(*agent) {
            let open: i64 = st.query_row([*agent, p], |r| r.get(0)).map_err(backend)?;
            out.insert(agent.to_string(), open as u64);
        }
    }
    Ok(out)
}

/// Insert the rows whose (agent, idempotency key) is free, counting each in the roll-ups.
pub(super) fn insert_decision_rows(conn: &Connection, p: &str, rows: &[DecisionRow<'_>]) -> Result<HashSet<String>> {
    let mut inserted = HashSet::with_capacity(rows.len());
    for r in rows {
        let (d, col) = (&r.new.decision, &r.columns);
        let n = conn
            .prepare_cached(
                "INSERT INTO decisions (id, agent, idempotency_key, request_digest, action_name, confidence, verdict, status,
                 final_verdict, policy_hash, case_id, trace_id, received_at, event_time, body, session_id,
                 subject, final_source, overridden, project)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)
                 ON CONFLICT (project, agent, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING",
            )
            .map_err(backend)?
            .execute(params![
                d.id,
                col.agent,
                col.idempotency_key,
                r.new.request_digest,
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
                r.body,
                col.session_id,
                col.subject,
                col.final_source,
                col.overridden,
                p,
            ])
            .map_err(backend)?;
        if n == 0 {
            // the key was taken: the shared write answers with the stored decision
            continue;
        }
        conn.prepare_cached(
            "INSERT INTO decision_hourly (project, hour, action_name, verdict, decisions) VALUES (?4, ?1, ?2, ?3, 1)
             ON CONFLICT (project, hour, action_name, verdict) DO UPDATE SET decisions = decisions + 1",
        )
        .map_err(backend)?
        .execute(params![hour_of(d), d.action.name, col.verdict, p])
        .map_err(backend)?;
        count_ending(conn, p, d, col.final_verdict, col.final_source, 1)?;
        inserted.insert(d.id.clone());
    }
    Ok(inserted)
}

/// For each (agent, idempotency key) stored, its request digest and body.
pub(super) fn decisions_by_key(
    conn: &Connection,
    p: &str,
    keys: &[(&str, &str)],
) -> Result<HashMap<(String, String), (String, String)>> {
    let mut st = conn
        .prepare_cached(
            "SELECT request_digest, body FROM decisions WHERE project = ?3 AND agent = ?1 AND idempotency_key = ?2",
        )
        .map_err(backend)?;
    let mut out = HashMap::new();
    for (agent, key) in keys {
        if let Some(found) =
            st.query_row([*agent, *key, p], |r| Ok((r.get(0)?, r.get(1)?))).optional().map_err(backend)?
        {
            out.insert((agent.to_string(), key.to_string()), found);
        }
    }
    Ok(out)
}

/// Add `by` to the hourly count of decisions of `d`'s class with this ending.
pub(super) fn count_ending(
    conn: &Connection,
    p: &str,
    d: &Decision,
    verdict: Option<&str>,
    source: Option<&str>,
    by: i64,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO decision_endings_hourly (project, hour, action_name, final_verdict, final_source, decisions)
         VALUES (?6, ?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (project, hour, action_name, final_verdict, final_source) DO UPDATE SET decisions = decisions + ?5",
    )
    .map_err(backend)?
    .execute(params![hour_of(d), d.action.name, verdict.unwrap_or(""), source.unwrap_or(""), by, p])
    .map_err(backend)?;
    Ok(())
}

/// The final verdict and source columns of a decision row.
pub(super) fn decision_ending(conn: &Connection, p: &str, id: &str) -> Result<(Option<String>, Option<String>)> {
    conn.prepare_cached("SELECT final_verdict, final_source FROM decisions WHERE id = ?1 AND project = ?2")
        .map_err(backend)?
        .query_row([id, p], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(backend)
}

/// The recorded use of a decision's receipt (of a decision of project `p`).
pub(super) fn receipt_use(conn: &Connection, p: &str, id: &str) -> Result<Option<crate::Consumption>> {
    conn.prepare_cached(
        "SELECT u.consumer, u.args_digest, u.at FROM receipt_consumptions u JOIN decisions d ON d.id = u.decision_id
         WHERE u.decision_id = ?1 AND d.project = ?2",
    )
    .map_err(backend)?
    .query_row([id, p], |r| {
        Ok(crate::Consumption {
            decision_id: id.to_string(),
            consumer: r.get(0)?,
            args_digest: r.get(1)?,
            at: Timestamp(r.get(2)?),
            first: false,
        })
    })
    .optional()
    .map_err(backend)
}

/// Record a receipt's first use (the shared write checked that the decision is the project's).
pub(super) fn insert_receipt_use(conn: &Connection, u: &crate::Consumption) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO receipt_consumptions (decision_id, consumer, args_digest, at) VALUES (?1, ?2, ?3, ?4)",
    )
    .map_err(backend)?
    .execute(params![u.decision_id, u.consumer, u.args_digest, u.at.0])
    .map_err(backend)?;
    Ok(())
}

/// Rewrite a decision row's changing columns and body.
pub(super) fn update_decision_row(
    conn: &Connection,
    p: &str,
    d: &Decision,
    col: &DecisionColumns,
    body: &str,
) -> Result<()> {
    conn.prepare_cached(
        "UPDATE decisions SET status = ?2, final_verdict = ?3, outcome_correct = ?4, outcome_cost = ?5, body = ?6,
         final_source = ?7, overridden = ?8 WHERE id = ?1 AND project = ?9",
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
        col.overridden,
        p
    ])
    .map_err(backend)?;
    Ok(())
}

#[async_trait]
impl crate::DecisionStore for SqliteStore {
    async fn insert_decision(&self, new: NewDecision) -> Result<Inserted> {
        self.write_chained(move |conn, project, chain| {
            writes::insert_decision(&mut SqliteTx { conn, project, chain }, new)
        })
        .await
    }

    async fn decision(&self, id: &str) -> Result<Option<Decision>> {
        let id = id.to_string();
        self.read(move |c, p| load_decision(c, p, &id)).await
    }

    async fn replayed_decision(&self, agent: &str, key: &str, digest: &str) -> Result<Option<Decision>> {
        let (agent, key, digest) = (agent.to_string(), key.to_string(), digest.to_string());
        self.read(move |c, p| {
            let prior: Option<(String, String)> = c
                .prepare_cached(
                    "SELECT request_digest, body FROM decisions WHERE project = ?3 AND agent = ?1 AND idempotency_key = ?2",
                )
                .map_err(backend)?
                .query_row(params![agent, key, p], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
                .map_err(backend)?;
            prior.map(|(stored, body)| crate::rules::replayed(&key, &stored, &digest, &body)).transpose()
        })
        .await
    }

    async fn labelled_decisions(&self, limit: usize) -> Result<Vec<Decision>> {
        self.read(move |c, p| {
            let mut out: Vec<Decision> = load_bodies(
                c,
                "SELECT body FROM decisions WHERE project = ?2 AND outcome_correct IS NOT NULL
                 ORDER BY event_time DESC, seq DESC LIMIT ?1",
                params![limit as i64, p],
            )?;
            out.reverse();
            Ok(out)
        })
        .await
    }

    async fn unlabelled_audit_decisions(&self, limit: usize) -> Result<Vec<Decision>> {
        self.read(move |c, p| {
            // the text match narrows the scan cheaply; the JSON path decides
            let mut out: Vec<Decision> = load_bodies(
                c,
                r#"SELECT body FROM decisions WHERE project = ?2 AND outcome_correct IS NULL AND verdict = 'allow'
                   AND body LIKE '%"audit":{%' AND json_extract(body, '$.audit.probability') IS NOT NULL
                   ORDER BY event_time DESC, seq DESC LIMIT ?1"#,
                params![limit as i64, p],
            )?;
            out.reverse();
            Ok(out)
        })
        .await
    }

    async fn recent_decisions(&self, limit: usize) -> Result<Vec<Decision>> {
        self.read(move |c, p| {
            let mut out: Vec<Decision> = load_bodies(
                c,
                "SELECT body FROM decisions WHERE project = ?2 ORDER BY event_time DESC, seq DESC LIMIT ?1",
                params![limit as i64, p],
            )?;
            out.reverse();
            Ok(out)
        })
        .await
    }

    async fn record_outcome(&self, id: &str, outcome: Outcome) -> Result<Decision> {
        let id = id.to_string();
        self.write_chained(move |conn, project, chain| {
            let at = outcome.recorded_at;
            writes::rewrite_decision(&mut SqliteTx { conn, project, chain }, &id, at, |d| d.outcome = Some(outcome))
        })
        .await
    }

    async fn record_tool_result(&self, id: &str, result: arbiter_core::ToolResult) -> Result<Decision> {
        let id = id.to_string();
        self.write_chained(move |conn, project, chain| {
            let at = result.recorded_at;
            writes::rewrite_decision(&mut SqliteTx { conn, project, chain }, &id, at, |d| d.tool_result = Some(result))
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
        self.write_chained(move |conn, project, chain| {
            writes::consume_receipt(&mut SqliteTx { conn, project, chain }, &id, &who, &digest, at)
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
        self.read(move |c, p| {
            if traces.is_empty() && ids.is_empty() {
                return Ok(vec![]);
            }
            // The id lists travel as JSON arrays, bound like any other parameter.
            let traces = serde_json::to_string(&traces).map_err(corrupt)?;
            let ids = serde_json::to_string(&ids).map_err(corrupt)?;
            // The sessions of the named decisions and traces widen the chain.
            let mut st = c
                .prepare_cached(
                    "SELECT body FROM decisions WHERE project = ?4 AND (
                        trace_id IN (SELECT value FROM json_each(?1)) OR id IN (SELECT value FROM json_each(?2))
                        OR session_id IN (SELECT DISTINCT session_id FROM decisions
                            WHERE project = ?4
                              AND (trace_id IN (SELECT value FROM json_each(?1)) OR id IN (SELECT value FROM json_each(?2)))
                              AND session_id IS NOT NULL))
                     ORDER BY event_time, seq LIMIT ?3",
                )
                .map_err(backend)?;
            let rows = st.query_map(params![traces, ids, limit.max(1) as i64, p], |r| r.get::<_, String>(0)).map_err(backend)?;
            rows.map(|b| serde_json::from_str(&b.map_err(backend)?).map_err(corrupt)).collect()
        })
        .await
    }
}
