//! Dashboard aggregates and server-wide settings.

use super::*;

pub(super) use crate::rules::final_source;

impl SqliteStore {
    pub(super) async fn setting_or_insert(&self, name: &str, value: &str) -> Result<String> {
        let (name, value) = (name.to_string(), value.to_string());
        self.write(move |c| {
            c.execute("INSERT OR IGNORE INTO settings (name, value) VALUES (?1, ?2)", params![name, value])
                .map_err(backend)?;
            c.query_row("SELECT value FROM settings WHERE name = ?1", [name], |r| r.get(0)).map_err(backend)
        })
        .await
    }

    pub(super) async fn dashboard(&self, since: Timestamp) -> Result<crate::Dashboard> {
        self.read(move |c| {
            let mut d = crate::Dashboard::default();
            // The hourly roll-up gives both the hourly series and the per-class counts.
            let mut st = c
                .prepare_cached("SELECT hour, action_name, verdict, decisions FROM decision_hourly WHERE hour >= ?1")
                .map_err(backend)?;
            let rows: Vec<(i64, String, String, u64)> = st
                .query_map([since.0.div_euclid(3_600_000)], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, i64>(3)? as u64)))
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
                    "SELECT e.at - c.created_at FROM events e JOIN cases c ON c.id = e.case_id WHERE e.kind = 'case.decided' AND e.at >= ?1",
                )
                .map_err(backend)?;
            d.time_to_decision_ms = st
                .query_map([since.0], |r| r.get::<_, i64>(0))
                .map_err(backend)?
                .collect::<rusqlite::Result<_>>()
                .map_err(backend)?;
            let count = |kind: &str| -> Result<u64> {
                c.query_row("SELECT COUNT(*) FROM events WHERE kind = ?1 AND at >= ?2", params![kind, since.0], |r| r.get::<_, i64>(0))
                    .map(|n| n as u64)
                    .map_err(backend)
            };
            d.sla_fallbacks = count("case.fallback_applied")?;
            d.tier_escalations = count("case.tier_escalated")?;
            d.drift_alarms = count("drift.episode.started")?;
            let mut st = c
                .prepare_cached("SELECT kind, state, COUNT(*) FROM cases WHERE state IN ('open', 'claimed') GROUP BY 1, 2")
                .map_err(backend)?;
            d.open_cases = st
                .query_map([], |r| {
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
                     FROM decision_endings_hourly WHERE hour >= ?1 GROUP BY 1, 2, 3 HAVING SUM(decisions) > 0",
                )
                .map_err(backend)?;
            let rows: Vec<(String, Option<String>, Option<String>, i64)> = st
                .query_map([since.0.div_euclid(3_600_000)], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
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
                     WHERE kind = 'approval' AND (state IN ('open', 'claimed') OR updated_at >= ?1)",
                )
                .map_err(backend)?;
            let spans: Vec<(i64, Option<i64>)> = st
                .query_map([since.0], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(backend)?
                .collect::<rusqlite::Result<_>>()
                .map_err(backend)?;
            crate::rules::queue_depth(&mut d, since, &spans);
            Ok(d)
        })
        .await
    }
}
