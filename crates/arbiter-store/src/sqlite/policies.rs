//! Stored policy versions and their activations.

use super::*;

pub(super) fn row_policy_version(r: &rusqlite::Row<'_>) -> rusqlite::Result<PolicyVersion> {
    Ok(PolicyVersion {
        hash: r.get(0)?,
        name: r.get(1)?,
        source: r.get(2)?,
        created_at: Timestamp(r.get(3)?),
        created_by: r.get(4)?,
    })
}

/// Store `v` (once) and make it the active version, with its `policy.activated` event.
pub(super) fn activate(c: &Connection, p: &str, v: &PolicyVersion, at: Timestamp, by: &str) -> Result<()> {
    c.execute(
        "INSERT OR IGNORE INTO policy_versions (hash, name, source, created_at, created_by, project)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![v.hash, v.name, v.source, v.created_at.0, v.created_by, p],
    )
    .map_err(backend)?;
    let previous = active_hash(c, p)?;
    c.execute(
        "INSERT INTO policy_activations (hash, activated_at, activated_by, project) VALUES (?1, ?2, ?3, ?4)",
        params![v.hash, at.0, by, p],
    )
    .map_err(backend)?;
    let (kind, data) = crate::rules::policy_activated(v, previous.as_deref());
    append_event(c, p, About::NOTHING, kind, by, at, data)?;
    Ok(())
}

/// The hash of project `p`'s active policy version, if any.
pub(super) fn active_hash(c: &Connection, p: &str) -> Result<Option<String>> {
    c.prepare_cached("SELECT hash FROM policy_activations WHERE project = ?1 ORDER BY seq DESC LIMIT 1")
        .map_err(backend)?
        .query_row([p], |r| r.get(0))
        .optional()
        .map_err(backend)
}

#[async_trait]
impl crate::PolicyStore for SqliteStore {
    async fn activate_policy(&self, v: PolicyVersion, at: Timestamp, by: &str) -> Result<()> {
        let by = by.to_string();
        self.write(move |c, p| activate(c, p, &v, at, &by)).await
    }

    async fn active_policy(&self) -> Result<Option<PolicyVersion>> {
        self.read(|c, p| {
            c.query_row(
                "SELECT v.hash, v.name, v.source, v.created_at, v.created_by FROM policy_activations a
                 JOIN policy_versions v ON v.project = a.project AND v.hash = a.hash
                 WHERE a.project = ?1 ORDER BY a.seq DESC LIMIT 1",
                [p],
                row_policy_version,
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn policy_version(&self, hash: &str) -> Result<Option<PolicyVersion>> {
        let hash = hash.to_string();
        self.read(move |c, p| {
            c.query_row(
                "SELECT hash, name, source, created_at, created_by FROM policy_versions WHERE hash = ?1 AND project = ?2",
                params![hash, p],
                row_policy_version,
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn policy_versions(&self) -> Result<Vec<PolicyVersionSummary>> {
        self.read(|c, p| {
            let active = active_hash(c, p)?;
            let mut st = c
                .prepare(
                    "SELECT v.hash, v.name, v.created_at, v.created_by, MAX(a.activated_at) FROM policy_versions v
                     LEFT JOIN policy_activations a ON a.project = v.project AND a.hash = v.hash
                     WHERE v.project = ?1 GROUP BY v.hash ORDER BY v.created_at DESC, v.hash",
                )
                .map_err(backend)?;
            let rows = st
                .query_map([p], |r| {
                    let hash: String = r.get(0)?;
                    Ok(PolicyVersionSummary {
                        active: active.as_deref() == Some(hash.as_str()),
                        hash,
                        name: r.get(1)?,
                        created_at: Timestamp(r.get(2)?),
                        created_by: r.get(3)?,
                        last_activated_at: r.get::<_, Option<i64>>(4)?.map(Timestamp),
                    })
                })
                .map_err(backend)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
        })
        .await
    }

    async fn store_policy_draft(&self, v: PolicyVersion, at: Timestamp, by: &str) -> Result<bool> {
        let by = by.to_string();
        self.write(move |c, p| {
            let created = c
                .execute(
                    "INSERT OR IGNORE INTO policy_versions (hash, name, source, created_at, created_by, project)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![v.hash, v.name, v.source, v.created_at.0, v.created_by, p],
                )
                .map_err(backend)?
                > 0;
            if created {
                append_event(
                    c,
                    p,
                    About::NOTHING,
                    "policy.drafted",
                    &by,
                    at,
                    serde_json::json!({"hash": v.hash, "name": v.name}),
                )?;
            }
            Ok(created)
        })
        .await
    }

    async fn policy_activations(&self, hash: &str) -> Result<Vec<Timestamp>> {
        let hash = hash.to_string();
        self.read(move |c, p| {
            let mut st = c
                .prepare_cached(
                    "SELECT activated_at FROM policy_activations WHERE hash = ?1 AND project = ?2 ORDER BY seq",
                )
                .map_err(backend)?;
            let rows = st.query_map(params![hash, p], |r| r.get::<_, i64>(0)).map_err(backend)?;
            rows.map(|r| r.map(Timestamp).map_err(backend)).collect()
        })
        .await
    }
}
