//! The drift monitor's points (each decision placed at its receipt or its
//! event time) and its alarm episodes.

use crate::audit::append_event;
use crate::webhooks::queue_deliveries;
use crate::{Sql, Tx, col, corrupt, load_bodies, load_body};
use arbiter_core::Timestamp;
use arbiter_core::drift::episode::Episode;
use arbiter_store::DriftPoint;
use arbiter_store::{EventRecord, Result};

pub(crate) fn drift_episodes(c: &mut impl Sql, p: &str, open_only: bool, limit: usize) -> Result<Vec<Episode>> {
    let sql = if open_only {
        "SELECT body FROM drift_episodes WHERE project = $2 AND open ORDER BY started_at DESC, id LIMIT $1"
    } else {
        "SELECT body FROM drift_episodes WHERE project = $2 ORDER BY started_at DESC, id LIMIT $1"
    };
    load_bodies(c, sql, &[&(limit as i64), &p])
}

pub(crate) fn drift_episode(c: &mut impl Sql, p: &str, id: &str) -> Result<Option<Episode>> {
    load_body(c, "SELECT body FROM drift_episodes WHERE id = $1 AND project = $2", &[&id, &p])
}

pub(crate) fn save_drift_episode(t: &mut Tx<'_>, episode: &Episode, event: Option<&EventRecord>) -> Result<Episode> {
    let p = t.project.clone();
    let stored = t.query_opt(
        "SELECT version FROM drift_episodes WHERE id = $1 AND project = $2 FOR UPDATE",
        &[&episode.id, &&*p],
    )?;
    let stored: Option<i64> = stored.map(|r| col(&r, 0)).transpose()?;
    if stored.unwrap_or(0) as u64 != episode.version {
        return Err(arbiter_store::episode_conflict(&episode.id, episode.version, stored));
    }
    let mut saved = episode.clone();
    saved.version += 1;
    let body = serde_json::to_string(&saved).map_err(corrupt)?;
    t.execute(
        "INSERT INTO drift_episodes (id, action, open, started_at, version, body, project) VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (id) DO UPDATE SET open = excluded.open, version = excluded.version, body = excluded.body
         WHERE drift_episodes.project = excluded.project",
        &[&saved.id, &saved.action, &saved.is_open(), &saved.started_at.0, &(saved.version as i64), &body, &&*p],
    )?;
    if let Some(e) = event {
        let e = append_event(t, None, None, &e.kind, &e.actor, e.at, e.data.clone())?;
        queue_deliveries(t, &e)?;
    }
    Ok(saved)
}

pub(crate) fn drift_points(
    c: &mut impl Sql,
    p: &str,
    from: Timestamp,
    to: Timestamp,
    live_within_ms: i64,
) -> Result<Vec<arbiter_store::DriftPoint>> {
    let rows = c
        .query(
            "SELECT event_time, received_at, id, action_name, verdict, confidence, outcome_correct FROM decisions
             WHERE project = $3 AND event_time >= $1 AND event_time < $2 ORDER BY event_time, seq",
            &[&(from.0 - live_within_ms), &(to.0 + live_within_ms), &p],
        )?
        .iter()
        .map(|r| {
            Ok((
                col(r, 0)?,
                col(r, 1)?,
                arbiter_store::DriftPoint {
                    at: Timestamp(col(r, 0)?),
                    decision_id: col(r, 2)?,
                    point: arbiter_core::drift::Point {
                        action: col(r, 3)?,
                        escalated: col::<String>(r, 4)? == "escalate",
                        confidence: col(r, 5)?,
                        correct: col(r, 6)?,
                    },
                },
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(arbiter_store::place_drift_points(rows, from, to, live_within_ms))
}

#[async_trait::async_trait]
impl arbiter_store::DriftStore for crate::PostgresStore {
    async fn drift_points(&self, from: Timestamp, to: Timestamp, live_within_ms: i64) -> Result<Vec<DriftPoint>> {
        self.read(move |c, p| drift_points(c, p, from, to, live_within_ms)).await
    }

    async fn drift_episodes(
        &self,
        open_only: bool,
        limit: usize,
    ) -> Result<Vec<arbiter_core::drift::episode::Episode>> {
        self.read(move |c, p| drift_episodes(c, p, open_only, limit)).await
    }

    async fn drift_episode(&self, id: &str) -> Result<Option<arbiter_core::drift::episode::Episode>> {
        let id = id.to_string();
        self.read(move |c, p| drift_episode(c, p, &id)).await
    }

    async fn save_drift_episode(
        &self,
        episode: arbiter_core::drift::episode::Episode,
        event: Option<arbiter_store::EventRecord>,
    ) -> Result<arbiter_core::drift::episode::Episode> {
        self.write(move |t| save_drift_episode(t, &episode, event.as_ref())).await
    }
}
