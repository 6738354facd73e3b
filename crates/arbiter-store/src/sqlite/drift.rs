//! The drift monitor's points (each decision placed at its receipt or its event time) and its alarm episodes.

use super::*;
use crate::EventRecord;
use arbiter_core::drift::episode::Episode;

#[async_trait]
impl crate::DriftStore for SqliteStore {
    async fn drift_points(
        &self,
        from: Timestamp,
        to: Timestamp,
        live_within_ms: i64,
    ) -> Result<Vec<crate::DriftPoint>> {
        self.read(move |c, p| {
            let mut st = c
                .prepare_cached(
                    "SELECT event_time, received_at, id, action_name, verdict, confidence, outcome_correct FROM decisions
                     WHERE project = ?3 AND event_time >= ?1 AND event_time < ?2 ORDER BY event_time, seq",
                )
                .map_err(backend)?;
            let rows = st
                .query_map(params![from.0 - live_within_ms, to.0 + live_within_ms, p], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        crate::DriftPoint {
                            at: Timestamp(r.get(0)?),
                            decision_id: r.get(2)?,
                            point: arbiter_core::drift::Point {
                                action: r.get(3)?,
                                escalated: r.get::<_, String>(4)? == "escalate",
                                confidence: r.get(5)?,
                                correct: r.get(6)?,
                            },
                        },
                    ))
                })
                .map_err(backend)?;
            let rows = rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)?;
            Ok(crate::place_drift_points(rows, from, to, live_within_ms))
        })
        .await
    }

    async fn drift_episodes(&self, open_only: bool, limit: usize) -> Result<Vec<Episode>> {
        self.read(move |c, p| {
            let sql = if open_only {
                "SELECT body FROM drift_episodes WHERE project = ?2 AND open = 1 ORDER BY started_at DESC, id LIMIT ?1"
            } else {
                "SELECT body FROM drift_episodes WHERE project = ?2 ORDER BY started_at DESC, id LIMIT ?1"
            };
            load_bodies(c, sql, params![limit as i64, p])
        })
        .await
    }

    async fn drift_episode(&self, id: &str) -> Result<Option<Episode>> {
        let id = id.to_string();
        self.read(move |c, p| {
            let body: Option<String> = c
                .query_row("SELECT body FROM drift_episodes WHERE id = ?1 AND project = ?2", params![id, p], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(backend)?;
            body.map(|b| serde_json::from_str(&b).map_err(corrupt)).transpose()
        })
        .await
    }

    async fn save_drift_episode(&self, episode: Episode, event: Option<EventRecord>) -> Result<Episode> {
        self.write(move |c, p| {
            let stored: Option<i64> = c
                .prepare_cached("SELECT version FROM drift_episodes WHERE id = ?1 AND project = ?2")
                .map_err(backend)?
                .query_row([episode.id.as_str(), p], |r| r.get(0))
                .optional()
                .map_err(backend)?;
            if stored.unwrap_or(0) as u64 != episode.version {
                return Err(crate::episode_conflict(&episode.id, episode.version, stored));
            }
            let mut saved = episode.clone();
            saved.version += 1;
            let body = serde_json::to_string(&saved).map_err(corrupt)?;
            c.prepare_cached(
                "INSERT INTO drift_episodes (id, action, open, started_at, version, body, project)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (id) DO UPDATE SET open = excluded.open, version = excluded.version, body = excluded.body
                 WHERE drift_episodes.project = excluded.project",
            )
            .map_err(backend)?
            .execute(params![
                saved.id,
                saved.action,
                saved.is_open(),
                saved.started_at.0,
                saved.version as i64,
                body,
                p
            ])
            .map_err(backend)?;
            if let Some(e) = &event {
                let e = append_event(c, p, About::NOTHING, &e.kind, &e.actor, e.at, e.data.clone())?;
                queue_deliveries(c, p, &e)?;
            }
            Ok(saved)
        })
        .await
    }
}
