//! Drift alarm episodes.

use crate::events::append_event;
use crate::webhooks::queue_deliveries;
use crate::{Sql, Tx, col, corrupt, load_bodies, load_body};
use arbiter_core::drift::episode::Episode;
use arbiter_store::{EventRecord, Result};

pub(crate) fn drift_episodes(c: &mut impl Sql, open_only: bool, limit: usize) -> Result<Vec<Episode>> {
    let sql = if open_only {
        "SELECT body FROM drift_episodes WHERE open ORDER BY started_at DESC, id LIMIT $1"
    } else {
        "SELECT body FROM drift_episodes ORDER BY started_at DESC, id LIMIT $1"
    };
    load_bodies(c, sql, &[&(limit as i64)])
}

pub(crate) fn drift_episode(c: &mut impl Sql, id: &str) -> Result<Option<Episode>> {
    load_body(c, "SELECT body FROM drift_episodes WHERE id = $1", &[&id])
}

pub(crate) fn save_drift_episode(t: &mut Tx<'_>, episode: &Episode, event: Option<&EventRecord>) -> Result<Episode> {
    let stored = t.query_opt("SELECT version FROM drift_episodes WHERE id = $1 FOR UPDATE", &[&episode.id])?;
    let stored: Option<i64> = stored.map(|r| col(&r, 0)).transpose()?;
    if stored.unwrap_or(0) as u64 != episode.version {
        return Err(arbiter_store::episode_conflict(&episode.id, episode.version, stored));
    }
    let mut saved = episode.clone();
    saved.version += 1;
    let body = serde_json::to_string(&saved).map_err(corrupt)?;
    t.execute(
        "INSERT INTO drift_episodes (id, action, open, started_at, version, body) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (id) DO UPDATE SET open = excluded.open, version = excluded.version, body = excluded.body",
        &[&saved.id, &saved.action, &saved.is_open(), &saved.started_at.0, &(saved.version as i64), &body],
    )?;
    if let Some(e) = event {
        let e = append_event(t, None, None, &e.kind, &e.actor, e.at, e.data.clone())?;
        queue_deliveries(t, &e)?;
    }
    Ok(saved)
}
