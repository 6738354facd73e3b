//! Server-wide state: the first start, settings and leases.

use super::policies::activate;
use super::*;

#[async_trait]
impl crate::ServerStore for SqliteStore {
    async fn first_start(&self, start: crate::FirstStart, at: Timestamp) -> Result<crate::FirstStartDone> {
        self.write(move |c| {
            let mut done = crate::FirstStartDone::default();
            if let Some(v) = &start.policy {
                let active: Option<String> = c
                    .query_row("SELECT hash FROM policy_activations ORDER BY seq DESC LIMIT 1", [], |r| r.get(0))
                    .optional()
                    .map_err(backend)?;
                if crate::rules::first_start_activates(&start, active.as_deref()) {
                    activate(c, v, at, &start.by)?;
                    done.policy_activated = true;
                }
            }
            if let Some(k) = &start.admin {
                let keys: i64 = c.query_row("SELECT COUNT(*) FROM api_keys", [], |r| r.get(0)).map_err(backend)?;
                if keys == 0 {
                    super::keys::insert_key(c, k)?;
                    done.admin_created = true;
                }
            }
            Ok(done)
        })
        .await
    }

    async fn setting_or_insert(&self, name: &str, value: &str) -> Result<String> {
        let (name, value) = (name.to_string(), value.to_string());
        self.write(move |c| {
            c.execute("INSERT OR IGNORE INTO settings (name, value) VALUES (?1, ?2)", params![name, value])
                .map_err(backend)?;
            c.query_row("SELECT value FROM settings WHERE name = ?1", [name], |r| r.get(0)).map_err(backend)
        })
        .await
    }

    async fn settings_with_prefix(&self, prefix: &str) -> Result<Vec<(String, String)>> {
        let prefix = prefix.to_string();
        self.read(move |c| {
            let mut st = c
                .prepare_cached("SELECT name, value FROM settings WHERE substr(name, 1, length(?1)) = ?1 ORDER BY name")
                .map_err(backend)?;
            let rows = st.query_map([prefix], |r| Ok((r.get(0)?, r.get(1)?))).map_err(backend)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
        })
        .await
    }

    async fn acquire_lease(&self, name: &str, holder: &str, now: Timestamp, ttl_ms: i64) -> Result<bool> {
        let (name, holder) = (name.to_string(), holder.to_string());
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO leases (name, holder, expires_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
                     WHERE leases.holder = excluded.holder OR leases.expires_at <= ?4
                 RETURNING holder",
            )
            .map_err(backend)?
            .query_row(params![name, holder, now.plus_millis(ttl_ms).0, now.0], |_| Ok(()))
            .optional()
            .map(|held| held.is_some())
            .map_err(backend)
        })
        .await
    }
}
