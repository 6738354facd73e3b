//! Server-wide state: the first start, settings and leases.

use crate::keys::create_key;
use crate::policies::activate_policy;
use crate::{Sql, Tx, col};
use arbiter_core::Timestamp;
use arbiter_store::Result;

/// A replica's first start (see `Store::first_start`), under the chain lock
/// of the project its batch holds (replicas start in the same project).
pub(crate) fn first_start(
    t: &mut Tx<'_>,
    start: &arbiter_store::FirstStart,
    at: Timestamp,
) -> Result<arbiter_store::FirstStartDone> {
    let mut done = arbiter_store::FirstStartDone::default();
    if let Some(v) = &start.policy {
        let p = t.project.clone();
        let active = crate::policies::active_hash(t, &p)?;
        if arbiter_store::rules::first_start_activates(start, active.as_deref()) {
            activate_policy(t, v, at, &start.by)?;
            done.policy_activated = true;
        }
    }
    if let Some(k) = &start.admin {
        let keys: i64 = col(&t.query_one("SELECT COUNT(*) FROM api_keys", &[])?, 0)?;
        if keys == 0 {
            create_key(t, k)?;
            done.admin_created = true;
        }
    }
    Ok(done)
}

pub(crate) fn setting_or_insert(t: &mut Tx<'_>, name: &str, value: &str) -> Result<String> {
    t.execute("INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING", &[&name, &value])?;
    col(&t.query_one("SELECT value FROM settings WHERE name = $1", &[&name])?, 0)
}

pub(crate) fn settings_with_prefix(c: &mut impl Sql, prefix: &str) -> Result<Vec<(String, String)>> {
    c.query("SELECT name, value FROM settings WHERE starts_with(name, $1) ORDER BY name", &[&prefix])?
        .iter()
        .map(|r| Ok((col(r, 0)?, col(r, 1)?)))
        .collect()
}

pub(crate) fn acquire_lease(t: &mut Tx<'_>, name: &str, holder: &str, now: Timestamp, ttl_ms: i64) -> Result<bool> {
    let r = t.query_opt(
        "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3)
         ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
             WHERE leases.holder = EXCLUDED.holder OR leases.expires_at <= $4
         RETURNING holder",
        &[&name, &holder, &now.plus_millis(ttl_ms).0, &now.0],
    )?;
    // no row: the update's condition failed, another holder's lease is live
    Ok(r.is_some())
}

#[async_trait::async_trait]
impl arbiter_store::ServerStore for crate::PostgresStore {
    async fn first_start(
        &self,
        start: arbiter_store::FirstStart,
        at: Timestamp,
    ) -> Result<arbiter_store::FirstStartDone> {
        // every write batch holds its projects' chain head locks from its
        // start, so replicas starting together see each other's first start here
        self.write(move |t| first_start(t, &start, at)).await
    }

    async fn setting_or_insert(&self, name: &str, value: &str) -> Result<String> {
        let (name, value) = (name.to_string(), value.to_string());
        self.write_global(move |t| setting_or_insert(t, &name, &value)).await
    }

    async fn set_setting(&self, name: &str, value: &str) -> Result<()> {
        let (name, value) = (name.to_string(), value.to_string());
        self.write_global(move |t| {
            use crate::Sql;
            t.execute(
                "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                &[&name, &value],
            )?;
            Ok(())
        })
        .await
    }

    async fn settings_with_prefix(&self, prefix: &str) -> Result<Vec<(String, String)>> {
        let prefix = prefix.to_string();
        self.read(move |c, _| settings_with_prefix(c, &prefix)).await
    }

    async fn acquire_lease(&self, name: &str, holder: &str, now: Timestamp, ttl_ms: i64) -> Result<bool> {
        let (name, holder) = (name.to_string(), holder.to_string());
        self.write_global(move |t| acquire_lease(t, &name, &holder, now, ttl_ms)).await
    }

    async fn create_project(&self, project: arbiter_core::Project) -> Result<bool> {
        self.write_global(move |t| {
            let id = project.id.as_str();
            let n = t.execute(
                "INSERT INTO projects (id, name, created_at, created_by) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (id) DO NOTHING",
                &[&id, &project.name, &project.created_at.0, &project.created_by],
            )?;
            // its chain head, at its genesis (a write batch creates it too if it must)
            t.execute(
                "INSERT INTO chain_head (project, seq, hash) VALUES ($1, 0, $2) ON CONFLICT (project) DO NOTHING",
                &[&id, &project.id.genesis_hash()],
            )?;
            Ok(n == 1)
        })
        .await
    }

    async fn projects(&self) -> Result<Vec<arbiter_core::Project>> {
        self.read(|c, _| {
            c.query("SELECT id, name, created_at, created_by FROM projects ORDER BY id", &[])?
                .iter()
                .map(|r| {
                    Ok(arbiter_core::Project {
                        id: arbiter_core::ProjectId::parse(&col::<String>(r, 0)?)
                            .map_err(arbiter_store::StoreError::Corrupt)?,
                        name: col(r, 1)?,
                        created_at: Timestamp(col(r, 2)?),
                        created_by: col(r, 3)?,
                    })
                })
                .collect()
        })
        .await
    }
}
