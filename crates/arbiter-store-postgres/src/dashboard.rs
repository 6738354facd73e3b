//! Dashboard aggregates.

use crate::{Sql, col};
use arbiter_core::{CaseKind, CaseState, Timestamp};
use arbiter_store::{Dashboard, Result, StoreError};

pub(crate) use arbiter_store::rules::final_source;

fn verdict(v: &str) -> Result<arbiter_core::Verdict> {
    arbiter_core::Verdict::parse(v).ok_or_else(|| StoreError::Corrupt(format!("unknown verdict `{v}`")))
}

pub(crate) fn dashboard(c: &mut impl Sql, since: Timestamp) -> Result<Dashboard> {
    let mut d = Dashboard::default();
    let since_hour = since.0.div_euclid(3_600_000);
    let mut hourly: std::collections::BTreeMap<i64, (u64, u64)> = Default::default();
    let mut by_class: std::collections::BTreeMap<(String, String), u64> = Default::default();
    for r in
        c.query("SELECT hour, action_name, verdict, decisions FROM decision_hourly WHERE hour >= $1", &[&since_hour])?
    {
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
            "SELECT e.at - c.created_at FROM events e JOIN cases c ON c.id = e.case_id WHERE e.kind = 'case.decided' AND e.at >= $1",
            &[&since.0],
        )?
        .iter()
        .map(|r| col(r, 0))
        .collect::<Result<_>>()?;
    let mut count = |kind: &str| -> Result<u64> {
        let r = c.query_one("SELECT COUNT(*) FROM events WHERE kind = $1 AND at >= $2", &[&kind, &since.0])?;
        Ok(col::<i64>(&r, 0)? as u64)
    };
    d.sla_fallbacks = count("case.fallback_applied")?;
    d.tier_escalations = count("case.tier_escalated")?;
    d.drift_alarms = count("drift.episode.started")?;
    for r in c.query(
        "SELECT kind, state, COUNT(*) FROM cases WHERE state IN ('open', 'claimed') GROUP BY 1, 2 ORDER BY 1, 2",
        &[],
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
         FROM decision_endings_hourly WHERE hour >= $1 GROUP BY 1, 2, 3 HAVING SUM(decisions) > 0 ORDER BY 1, 2 NULLS FIRST, 3 NULLS FIRST",
        &[&since_hour],
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
             WHERE kind = 'approval' AND (state IN ('open', 'claimed') OR updated_at >= $1)",
            &[&since.0],
        )?
        .iter()
        .map(|r| Ok((col(r, 0)?, col(r, 1)?)))
        .collect::<Result<_>>()?;
    arbiter_store::rules::queue_depth(&mut d, since, &spans);
    Ok(d)
}
