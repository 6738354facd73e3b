//! History read for people: the dashboard's aggregates, and the queries
//! behind similar cases, the blast radius and recurrence.

use super::*;
use crate::rules::final_source;
use arbiter_core::Verdict;
use arbiter_core::insight::{Activity, AgentTotals};
use arbiter_core::recurrence::Labelled;

fn labelled_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, Option<String>, Option<String>, bool)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

#[async_trait]
impl crate::InsightStore for SqliteStore {
    async fn dashboard(&self, since: Timestamp) -> Result<crate::Dashboard> {
        self.read(move |c, p| {
            let mut d = crate::Dashboard::default();
            // The hourly roll-up gives both the hourly series and the per-class counts.
            let mut st = c
                .prepare_cached("SELECT hour, action_name, verdict, decisions FROM decision_hourly WHERE project = ?2 AND hour >= ?1")
                .map_err(backend)?;
            let rows: Vec<(i64, String, String, u64)> = st
                .query_map(params![since.0.div_euclid(3_600_000), p], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, i64>(3)? as u64)))
                .map_err(backend)?
                .collect::<rusqlite::Result<_>>()
                .map_err(backend)?;
            let mut hourly: std::collections::BTreeMap<i64, (u64, u64)> = Default::default();
            let mut by_class: std::collections::BTreeMap<(String, String), u64> = Default::default();
            for (h, action, verdict, n) in rows {
                let slot = hourly.entry(h).or_default();
                slot.0 += n;
                if verdict == "escalate" {
                    slot.1 += n;
                }
                *by_class.entry((action, verdict)).or_default() += n;
            }
            d.hourly = hourly
                .into_iter()
                .map(|(h, (decisions, escalated))| crate::HourCount { hour: Timestamp(h * 3_600_000), decisions, escalated })
                .collect();
            d.by_class = by_class
                .into_iter()
                .map(|((action, verdict), decisions)| {
                    let verdict = verdict.parse().map_err(StoreError::Corrupt)?;
                    Ok(crate::ClassCount { action, verdict, decisions })
                })
                .collect::<Result<_>>()?;
            let mut st = c
                .prepare_cached(
                    "SELECT e.at - c.created_at FROM events e JOIN cases c ON c.id = e.case_id
                     WHERE e.project = ?2 AND e.kind = 'case.decided' AND e.at >= ?1",
                )
                .map_err(backend)?;
            d.time_to_decision_ms = st
                .query_map(params![since.0, p], |r| r.get::<_, i64>(0))
                .map_err(backend)?
                .collect::<rusqlite::Result<_>>()
                .map_err(backend)?;
            let count = |kind: &str| -> Result<u64> {
                c.query_row("SELECT COUNT(*) FROM events WHERE project = ?3 AND kind = ?1 AND at >= ?2", params![kind, since.0, p], |r| r.get::<_, i64>(0))
                    .map(|n| n as u64)
                    .map_err(backend)
            };
            d.sla_fallbacks = count("case.fallback_applied")?;
            d.tier_escalations = count("case.tier_escalated")?;
            d.drift_alarms = count("drift.episode.started")?;
            let mut st = c
                .prepare_cached(
                    "SELECT kind, state, COUNT(*) FROM cases WHERE project = ?1 AND state IN ('open', 'claimed') GROUP BY 1, 2",
                )
                .map_err(backend)?;
            d.open_cases = st
                .query_map([p], |r| {
                    let (kind, state): (String, String) = (r.get(0)?, r.get(1)?);
                    Ok(crate::CaseCount {
                        kind: CaseKind::parse(&kind).ok_or_else(|| unknown_text(0, "case kind", &kind))?,
                        state: CaseState::parse(&state).ok_or_else(|| unknown_text(1, "case state", &state))?,
                        cases: r.get::<_, i64>(2)? as u64,
                    })
                })
                .map_err(backend)?
                .collect::<rusqlite::Result<_>>()
                .map_err(backend)?;
            // how decisions ended, by who settled them (the hourly roll-up; '' is not settled yet)
            let mut st = c
                .prepare_cached(
                    "SELECT action_name, NULLIF(final_verdict, ''), NULLIF(final_source, ''), SUM(decisions)
                     FROM decision_endings_hourly WHERE project = ?2 AND hour >= ?1 GROUP BY 1, 2, 3
                     HAVING SUM(decisions) > 0",
                )
                .map_err(backend)?;
            let rows: Vec<(String, Option<String>, Option<String>, i64)> = st
                .query_map(params![since.0.div_euclid(3_600_000), p], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .map_err(backend)?
                .collect::<rusqlite::Result<_>>()
                .map_err(backend)?;
            for (action, verdict, source, n) in rows {
                let verdict = match verdict {
                    None => None,
                    Some(v) => Some(arbiter_core::Verdict::parse(&v).ok_or_else(|| StoreError::Corrupt(format!("unknown verdict `{v}`")))?),
                };
                let source = match source.as_deref() {
                    None => None,
                    Some(x) => Some(final_source(x)?),
                };
                d.endings.push(crate::EndingCount { action, verdict, source, decisions: n as u64 });
            }
            // the queue's depth at the end of each hour: cases opened by then and not yet answered
            let mut st = c
                .prepare_cached(
                    "SELECT created_at, CASE WHEN state IN ('open', 'claimed') THEN NULL ELSE updated_at END FROM cases
                     WHERE project = ?2 AND kind = 'approval' AND (state IN ('open', 'claimed') OR updated_at >= ?1)",
                )
                .map_err(backend)?;
            let spans: Vec<(i64, Option<i64>)> = st
                .query_map(params![since.0, p], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(backend)?
                .collect::<rusqlite::Result<_>>()
                .map_err(backend)?;
            crate::rules::queue_depth(&mut d, since, &spans);
            Ok(d)
        })
        .await
    }

    async fn similar_candidates(&self, action: &str, before: Timestamp, limit: usize) -> Result<Vec<Decision>> {
        let action = action.to_string();
        self.read(move |c, p| {
            load_bodies(
                c,
                "SELECT body FROM decisions WHERE project = ?4 AND action_name = ?1 AND event_time < ?2
                   AND (final_source = 'review' OR outcome_correct IS NOT NULL)
                 ORDER BY event_time DESC LIMIT ?3",
                params![action, before.0, limit as i64, p],
            )
        })
        .await
    }

    async fn agent_activity(&self, agent: &str, action: &str, since: Timestamp, limit: usize) -> Result<Vec<Activity>> {
        let (agent, action) = (agent.to_string(), action.to_string());
        self.read(move |c, p| {
            let mut st = c
                .prepare_cached(
                    "SELECT event_time, subject FROM decisions
                     WHERE project = ?5 AND agent = ?1 AND action_name = ?2 AND event_time >= ?3
                     ORDER BY event_time DESC LIMIT ?4",
                )
                .map_err(backend)?;
            let rows = st
                .query_map(params![agent, action, since.0, limit as i64, p], |r| {
                    Ok(Activity { at: Timestamp(r.get(0)?), subject: r.get(1)? })
                })
                .map_err(backend)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
        })
        .await
    }

    async fn agent_totals(&self, agent: &str, since: Timestamp) -> Result<AgentTotals> {
        let agent = agent.to_string();
        self.read(move |c, p| {
            c.prepare_cached(
                "SELECT COUNT(*), COALESCE(SUM(verdict = 'escalate'), 0), COALESCE(SUM(final_source = 'review'), 0),
                        COALESCE(SUM(overridden = 1), 0)
                 FROM decisions WHERE project = ?3 AND agent = ?1 AND event_time >= ?2",
            )
            .map_err(backend)?
            .query_row(params![agent, since.0, p], |r| {
                Ok(AgentTotals {
                    decisions: r.get::<_, i64>(0)? as u64,
                    escalated: r.get::<_, i64>(1)? as u64,
                    reviewed: r.get::<_, i64>(2)? as u64,
                    overridden: r.get::<_, i64>(3)? as u64,
                })
            })
            .map_err(backend)
        })
        .await
    }

    async fn subject_history(&self, subject: &str, before: Timestamp, limit: usize) -> Result<(u64, Vec<Decision>)> {
        let subject = subject.to_string();
        self.read(move |c, p| {
            let total: i64 = c
                .prepare_cached(
                    "SELECT COUNT(*) FROM decisions WHERE project = ?3 AND subject = ?1 AND event_time < ?2",
                )
                .map_err(backend)?
                .query_row(params![subject, before.0, p], |r| r.get(0))
                .map_err(backend)?;
            let recent = load_bodies(
                c,
                "SELECT body FROM decisions WHERE project = ?4 AND subject = ?1 AND event_time < ?2
                 ORDER BY event_time DESC LIMIT ?3",
                params![subject, before.0, limit as i64, p],
            )?;
            Ok((total as u64, recent))
        })
        .await
    }

    async fn reviewed_decisions(&self, action: Option<&str>, since: Timestamp, limit: usize) -> Result<Vec<Decision>> {
        let action = action.map(str::to_string);
        self.read(move |c, p| match action {
            Some(a) => load_bodies(
                c,
                "SELECT body FROM decisions WHERE project = ?4 AND final_source = 'review' AND action_name = ?1
                   AND event_time >= ?2
                 ORDER BY event_time DESC LIMIT ?3",
                params![a, since.0, limit as i64, p],
            ),
            None => load_bodies(
                c,
                "SELECT body FROM decisions WHERE project = ?3 AND final_source = 'review' AND event_time >= ?1
                 ORDER BY event_time DESC LIMIT ?2",
                params![since.0, limit as i64, p],
            ),
        })
        .await
    }

    async fn labelled_points(&self, actions: &[String], from: Timestamp, to: Timestamp) -> Result<Vec<Labelled>> {
        let actions = serde_json::to_string(actions).map_err(corrupt)?;
        self.read(move |c, p| {
            let mut st = c
                .prepare_cached(
                    "SELECT event_time, final_source, final_verdict, outcome_correct FROM decisions
                     WHERE project = ?4 AND outcome_correct IS NOT NULL AND event_time >= ?2 AND event_time < ?3
                       AND action_name IN (SELECT value FROM json_each(?1))",
                )
                .map_err(backend)?;
            let rows = st.query_map(params![actions, from.0, to.0, p], labelled_row).map_err(backend)?;
            rows.map(|r| {
                let (at, source, verdict, correct) = r.map_err(backend)?;
                let source = source.as_deref().map(final_source).transpose()?;
                let verdict = match verdict.as_deref() {
                    None => None,
                    Some(v) => {
                        Some(Verdict::parse(v).ok_or_else(|| StoreError::Corrupt(format!("unknown verdict `{v}`")))?)
                    }
                };
                Ok(Labelled { at: Timestamp(at), source, verdict, correct })
            })
            .collect()
        })
        .await
    }
}
