//! Server-wide state: the first start, settings and leases.

use super::policies::activate;
use super::*;

#[async_trait]
impl crate::ServerStore for SqliteStore {
    async fn first_start(&self, start: crate::FirstStart, at: Timestamp) -> Result<crate::FirstStartDone> {
        self.write(move |c, p| {
            let mut done = crate::FirstStartDone::default();
            if let Some(v) = &start.policy {
                let active = super::policies::active_hash(c, p)?;
                if crate::rules::first_start_activates(&start, active.as_deref()) {
                    activate(c, p, v, at, &start.by)?;
                    done.policy_activated = true;
                }
            }
            if let Some(k) = &start.admin {
                let keys: i64 = c.query_row("SELECT COUNT(*) FROM api_keys", [], |r| r.get(0)).map_err(backend)?;
                if keys == 0 {
                    super::keys::insert_key(c, p, k)?;
                    done.admin_created = true;
                }
            }
            Ok(done)
        })
        .await
    }

    async fn setting_or_insert(&self, name: &str, value: &str) -> Result<String> {
        let (name, value) = (name.to_string(), value.to_string());
        self.write(move |c, _| {
            c.execute("INSERT OR IGNORE INTO settings (name, value) VALUES (?1, ?2)", params![name, value])
                .map_err(backend)?;
            c.query_row("SELECT value FROM settings WHERE name = ?1", [name], |r| r.get(0)).map_err(backend)
        })
        .await
    }

    async fn set_setting(&self, name: &str, value: &str) -> Result<()> {
        let (name, value) = (name.to_string(), value.to_string());
        self.write(move |c, _| {
            c.execute(
                "INSERT INTO settings (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                params![name, value],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn settings_with_prefix(&self, prefix: &str) -> Result<Vec<(String, String)>> {
        let prefix = prefix.to_string();
        self.read(move |c, _| {
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
        self.write(move |c, _| {
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

    async fn create_project(&self, project: arbiter_core::Project) -> Result<bool> {
        self.write(move |c, _| {
            let n = c
                .execute(
                    "INSERT OR IGNORE INTO projects (id, name, created_at, created_by) VALUES (?1, ?2, ?3, ?4)",
                    params![project.id.as_str(), project.name, project.created_at.0, project.created_by],
                )
                .map_err(backend)?;
            Ok(n == 1)
        })
        .await
    }

    async fn projects(&self) -> Result<Vec<arbiter_core::Project>> {
        self.read(|c, _| {
            let mut st = c
                .prepare_cached("SELECT id, name, created_at, created_by FROM projects ORDER BY id")
                .map_err(backend)?;
            let rows =
                st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?, r.get(3)?))).map_err(backend)?;
            rows.map(|r| {
                let (id, name, at, by) = r.map_err(backend)?;
                Ok(arbiter_core::Project {
                    id: ProjectId::parse(&id).map_err(StoreError::Corrupt)?,
                    name,
                    created_at: Timestamp(at),
                    created_by: by,
                })
            })
            .collect()
        })
        .await
    }
}
