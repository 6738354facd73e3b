//! History read for people: the dashboard's aggregates, and the queries
//! behind similar cases, the blast radius and recurrence.

use crate::load_bodies;
use crate::{Sql, col};
use arbiter_core::Decision;
use arbiter_core::Verdict;
use arbiter_core::insight::Activity;
use arbiter_core::insight::AgentTotals;
use arbiter_core::recurrence::Labelled;
use arbiter_core::{CaseKind, CaseState, Timestamp};
use arbiter_store::{Dashboard, Result, StoreError};

pub(crate) use arbiter_store::rules::final_source;

fn verdict(v: &str) -> Result<arbiter_core::Verdict> {
    arbiter_core::Verdict::parse(v).ok_or_else(|| StoreError::Corrupt(format!("unknown verdict `{v}`")))
}

pub(crate) fn dashboard(c: &mut impl Sql, p: &str, since: Timestamp) -> Result<Dashboard> {
    let mut d = Dashboard::default();
    let since_hour = since.0.div_euclid(3_600_000);
    let mut hourly: std::collections::BTreeMap<i64, (u64, u64)> = Default::default();
    let mut by_class: std::collections::BTreeMap<(String, String), u64> = Default::default();
    for r in c.query(
        "SELECT hour, action_name, verdict, decisions FROM decision_hourly WHERE project = $2 AND hour >= $1",
        &[&since_hour, &p],
    )? {
        let (h, action, v, n): (i64, String, String, i64) = (col(&r, 0)?, col(&r, 1)?, col(&r, 2)?, col(&r, 3)?);
        let slot = hourly.entry(h).or_default();
        slot.0 += n as u64;
        if v == "escalate" {
            slot.1 += n as u64;
        }
        *by_class.entry((action, v)).or_default() += n as u64;
    }
    d.hourly = hourly
        .into_iter()
        .map(|(h, (decisions, escalated))| arbiter_store::HourCount {
            hour: Timestamp(h * 3_600_000),
            decisions,
            escalated,
        })
        .collect();
    d.by_class = by_class
        .into_iter()
        .map(|((action, v), decisions)| Ok(arbiter_store::ClassCount { action, verdict: verdict(&v)?, decisions }))
        .collect::<Result<_>>()?;
    d.time_to_decision_ms = c
        .query(
            "SELECT e.at - c.created_at FROM events e JOIN cases c ON c.id = e.case_id
             WHERE e.project = $2 AND e.kind = 'case.decided' AND e.at >= $1",
            &[&since.0, &p],
        )?
        .iter()
        .map(|r| col(r, 0))
        .collect::<Result<_>>()?;
    let mut count = |kind: &str| -> Result<u64> {
        let r = c.query_one(
            "SELECT COUNT(*) FROM events WHERE project = $3 AND kind = $1 AND at >= $2",
            &[&kind, &since.0, &p],
        )?;
        Ok(col::<i64>(&r, 0)? as u64)
    };
    d.sla_fallbacks = count("case.fallback_applied")?;
    d.tier_escalations = count("case.tier_escalated")?;
    d.drift_alarms = count("drift.episode.started")?;
    for r in c.query(
        "SELECT kind, state, COUNT(*) FROM cases WHERE project = $1 AND state IN ('open', 'claimed') GROUP BY 1, 2 ORDER BY 1, 2",
        &[&p],
    )? {
        let (kind, state): (String, String) = (col(&r, 0)?, col(&r, 1)?);
        d.open_cases.push(arbiter_store::CaseCount {
            kind: CaseKind::parse(&kind).ok_or_else(|| StoreError::Corrupt(format!("unknown case kind `{kind}`")))?,
            state: CaseState::parse(&state)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown case state `{state}`")))?,
            cases: col::<i64>(&r, 2)? as u64,
        });
    }
    for r in c.query(
        "SELECT action_name, NULLIF(final_verdict, ''), NULLIF(final_source, ''), SUM(decisions)::bigint
         FROM decision_endings_hourly WHERE project = $2 AND hour >= $1 GROUP BY 1, 2, 3 HAVING SUM(decisions) > 0
         ORDER BY 1, 2 NULLS FIRST, 3 NULLS FIRST",
        &[&since_hour, &p],
    )? {
        d.endings.push(arbiter_store::EndingCount {
            action: col(&r, 0)?,
            verdict: col::<Option<String>>(&r, 1)?.as_deref().map(verdict).transpose()?,
            source: col::<Option<String>>(&r, 2)?.as_deref().map(final_source).transpose()?,
            decisions: col::<i64>(&r, 3)? as u64,
        });
    }
    let spans: Vec<(i64, Option<i64>)> = c
        .query(
            "SELECT created_at, CASE WHEN state IN ('open', 'claimed') THEN NULL ELSE updated_at END FROM cases
             WHERE project = $2 AND kind = 'approval' AND (state IN ('open', 'claimed') OR updated_at >= $1)",
            &[&since.0, &p],
        )?
        .iter()
        .map(|r| Ok((col(r, 0)?, col(r, 1)?)))
        .collect::<Result<_>>()?;
    arbiter_store::rules::queue_depth(&mut d, since, &spans);
    Ok(d)
}

pub(crate) fn similar_candidates(
    c: &mut impl Sql,
    p: &str,
    action: &str,
    before: Timestamp,
    limit: usize,
) -> Result<Vec<Decision>> {
    load_bodies(
        c,
        "SELECT body FROM decisions WHERE project = $4 AND action_name = $1 AND event_time < $2
           AND (final_source = 'review' OR outcome_correct IS NOT NULL)
         ORDER BY event_time DESC LIMIT $3",
        &[&action, &before.0, &(limit as i64), &p],
    )
}

pub(crate) fn agent_activity(
    c: &mut impl Sql,
    p: &str,
    agent: &str,
    action: &str,
    since: Timestamp,
    limit: usize,
) -> Result<Vec<Activity>> {
    c.query(
        "SELECT event_time, subject FROM decisions WHERE project = $5 AND agent = $1 AND action_name = $2
           AND event_time >= $3 ORDER BY event_time DESC LIMIT $4",
        &[&agent, &action, &since.0, &(limit as i64), &p],
    )?
    .iter()
    .map(|r| Ok(Activity { at: Timestamp(col(r, 0)?), subject: col(r, 1)? }))
    .collect()
}

pub(crate) fn agent_totals(c: &mut impl Sql, p: &str, agent: &str, since: Timestamp) -> Result<AgentTotals> {
    let r = c.query_one(
        "SELECT COUNT(*), COUNT(*) FILTER (WHERE verdict = 'escalate'), COUNT(*) FILTER (WHERE final_source = 'review'),
                COUNT(*) FILTER (WHERE overridden)
         FROM decisions WHERE project = $3 AND agent = $1 AND event_time >= $2",
        &[&agent, &since.0, &p],
    )?;
    Ok(AgentTotals {
        decisions: col::<i64>(&r, 0)? as u64,
        escalated: col::<i64>(&r, 1)? as u64,
        reviewed: col::<i64>(&r, 2)? as u64,
        overridden: col::<i64>(&r, 3)? as u64,
    })
}

pub(crate) fn subject_history(
    c: &mut impl Sql,
    p: &str,
    subject: &str,
    before: Timestamp,
    limit: usize,
) -> Result<(u64, Vec<Decision>)> {
    let total = c.query_one(
        "SELECT COUNT(*) FROM decisions WHERE project = $3 AND subject = $1 AND event_time < $2",
        &[&subject, &before.0, &p],
    )?;
    let recent = load_bodies(
        c,
        "SELECT body FROM decisions WHERE project = $4 AND subject = $1 AND event_time < $2
         ORDER BY event_time DESC LIMIT $3",
        &[&subject, &before.0, &(limit as i64), &p],
    )?;
    Ok((col::<i64>(&total, 0)? as u64, recent))
}

pub(crate) fn reviewed(
    c: &mut impl Sql,
    p: &str,
    action: Option<&str>,
    since: Timestamp,
    limit: usize,
) -> Result<Vec<Decision>> {
    load_bodies(
        c,
        "SELECT body FROM decisions WHERE project = $4 AND final_source = 'review'
           AND ($1::text IS NULL OR action_name = $1) AND event_time >= $2 ORDER BY event_time DESC LIMIT $3",
        &[&action, &since.0, &(limit as i64), &p],
    )
}

pub(crate) fn labelled_points(
    c: &mut impl Sql,
    p: &str,
    actions: &[String],
    from: Timestamp,
    to: Timestamp,
) -> Result<Vec<Labelled>> {
    c.query(
        "SELECT event_time, final_source, final_verdict, outcome_correct FROM decisions
         WHERE project = $4 AND outcome_correct IS NOT NULL AND event_time >= $2 AND event_time < $3
           AND action_name = ANY($1)",
        &[&actions, &from.0, &to.0, &p],
    )?
    .iter()
    .map(|r| {
        let source = col::<Option<String>>(r, 1)?.as_deref().map(crate::insight::final_source).transpose()?;
        let verdict = match col::<Option<String>>(r, 2)? {
            None => None,
            Some(v) => Some(Verdict::parse(&v).ok_or_else(|| StoreError::Corrupt(format!("unknown verdict `{v}`")))?),
        };
        Ok(Labelled { at: Timestamp(col(r, 0)?), source, verdict, correct: col(r, 3)? })
    })
    .collect()
}

#[async_trait::async_trait]
impl arbiter_store::InsightStore for crate::PostgresStore {
    async fn dashboard(&self, since: Timestamp) -> Result<Dashboard> {
        self.read(move |c, p| dashboard(c, p, since)).await
    }

    async fn similar_candidates(&self, action: &str, before: Timestamp, limit: usize) -> Result<Vec<Decision>> {
        let action = action.to_string();
        self.read(move |c, p| similar_candidates(c, p, &action, before, limit)).await
    }

    async fn agent_activity(&self, agent: &str, action: &str, since: Timestamp, limit: usize) -> Result<Vec<Activity>> {
        let (agent, action) = (agent.to_string(), action.to_string());
        self.read(move |c, p| agent_activity(c, p, &agent, &action, since, limit)).await
    }

    async fn agent_totals(&self, agent: &str, since: Timestamp) -> Result<AgentTotals> {
        let agent = agent.to_string();
        self.read(move |c, p| agent_totals(c, p, &agent, since)).await
    }

    async fn subject_history(&self, subject: &str, before: Timestamp, limit: usize) -> Result<(u64, Vec<Decision>)> {
        let subject = subject.to_string();
        self.read(move |c, p| subject_history(c, p, &subject, before, limit)).await
    }

    async fn reviewed_decisions(&self, action: Option<&str>, since: Timestamp, limit: usize) -> Result<Vec<Decision>> {
        let action = action.map(str::to_string);
        self.read(move |c, p| reviewed(c, p, action.as_deref(), since, limit)).await
    }

    async fn labelled_points(&self, actions: &[String], from: Timestamp, to: Timestamp) -> Result<Vec<Labelled>> {
        let actions = actions.to_vec();
        self.read(move |c, p| labelled_points(c, p, &actions, from, to)).await
    }
}
