//! Policy versions: stored, drafted, activated.

use crate::audit::append_event;
use crate::{Sql, Tx, col};
use arbiter_core::Timestamp;
use arbiter_store::{PolicyVersion, PolicyVersionSummary, Result};
use postgres::Row;

fn row_policy(r: &Row) -> Result<PolicyVersion> {
    Ok(PolicyVersion {
        hash: col(r, 0)?,
        name: col(r, 1)?,
        source: col(r, 2)?,
        created_at: Timestamp(col(r, 3)?),
        created_by: col(r, 4)?,
    })
}

/// Store a version if new; true when it was.
fn store_version(t: &mut Tx<'_>, v: &PolicyVersion) -> Result<bool> {
    let p = t.project.clone();
    Ok(t.execute(
        "INSERT INTO policy_versions (hash, name, source, created_at, created_by, project) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (project, hash) DO NOTHING",
        &[&v.hash, &v.name, &v.source, &v.created_at.0, &v.created_by, &&*p],
    )? > 0)
}

/// The hash of project `p`'s active version, if any.
pub(crate) fn active_hash(c: &mut impl Sql, p: &str) -> Result<Option<String>> {
    c.query_opt("SELECT hash FROM policy_activations WHERE project = $1 ORDER BY seq DESC LIMIT 1", &[&p])?
        .map(|r| col(&r, 0))
        .transpose()
}

pub(crate) fn activate_policy(t: &mut Tx<'_>, v: &PolicyVersion, at: Timestamp, by: &str) -> Result<()> {
    store_version(t, v)?;
    let p = t.project.clone();
    let previous = active_hash(t, &p)?;
    t.execute(
        "INSERT INTO policy_activations (hash, activated_at, activated_by, project) VALUES ($1, $2, $3, $4)",
        &[&v.hash, &at.0, &by, &&*p],
    )?;
    let (kind, data) = arbiter_store::rules::policy_activated(v, previous.as_deref());
    append_event(t, None, None, kind, by, at, data)?;
    Ok(())
}

pub(crate) fn store_draft(t: &mut Tx<'_>, v: &PolicyVersion, at: Timestamp, by: &str) -> Result<bool> {
    let created = store_version(t, v)?;
    if created {
        append_event(t, None, None, "policy.drafted", by, at, serde_json::json!({"hash": v.hash, "name": v.name}))?;
    }
    Ok(created)
}

pub(crate) fn active_policy(c: &mut impl Sql, p: &str) -> Result<Option<PolicyVersion>> {
    c.query_opt(
        "SELECT v.hash, v.name, v.source, v.created_at, v.created_by FROM policy_activations a
         JOIN policy_versions v ON v.project = a.project AND v.hash = a.hash
         WHERE a.project = $1 ORDER BY a.seq DESC LIMIT 1",
        &[&p],
    )?
    .as_ref()
    .map(row_policy)
    .transpose()
}

pub(crate) fn policy_version(c: &mut impl Sql, p: &str, hash: &str) -> Result<Option<PolicyVersion>> {
    c.query_opt(
        "SELECT hash, name, source, created_at, created_by FROM policy_versions WHERE hash = $1 AND project = $2",
        &[&hash, &p],
    )?
    .as_ref()
    .map(row_policy)
    .transpose()
}

pub(crate) fn policy_versions(c: &mut impl Sql, p: &str) -> Result<Vec<PolicyVersionSummary>> {
    let active = active_hash(c, p)?;
    c.query(
        "SELECT v.hash, v.name, v.created_at, v.created_by, MAX(a.activated_at) FROM policy_versions v
         LEFT JOIN policy_activations a ON a.project = v.project AND a.hash = v.hash
         WHERE v.project = $1 GROUP BY v.project, v.hash ORDER BY v.created_at DESC, v.hash",
        &[&p],
    )?
    .iter()
    .map(|r| {
        let hash: String = col(r, 0)?;
        Ok(PolicyVersionSummary {
            active: active.as_deref() == Some(hash.as_str()),
            hash,
            name: col(r, 1)?,
            created_at: Timestamp(col(r, 2)?),
            created_by: col(r, 3)?,
            last_activated_at: col::<Option<i64>>(r, 4)?.map(Timestamp),
        })
    })
    .collect()
}

pub(crate) fn activations(c: &mut impl Sql, p: &str, hash: &str) -> Result<Vec<Timestamp>> {
    c.query("SELECT activated_at FROM policy_activations WHERE hash = $1 AND project = $2 ORDER BY seq", &[&hash, &p])?
        .iter()
        .map(|r| Ok(Timestamp(col(r, 0)?)))
        .collect()
}

#[async_trait::async_trait]
impl arbiter_store::PolicyStore for crate::PostgresStore {
    async fn activate_policy(&self, v: PolicyVersion, at: Timestamp, by: &str) -> Result<()> {
        let by = by.to_string();
        self.write(move |t| activate_policy(t, &v, at, &by)).await
    }

    async fn active_policy(&self) -> Result<Option<PolicyVersion>> {
        self.read(active_policy).await
    }

    async fn policy_version(&self, hash: &str) -> Result<Option<PolicyVersion>> {
        let hash = hash.to_string();
        self.read(move |c, p| policy_version(c, p, &hash)).await
    }

    async fn policy_versions(&self) -> Result<Vec<PolicyVersionSummary>> {
        self.read(policy_versions).await
    }

    async fn store_policy_draft(&self, v: PolicyVersion, at: Timestamp, by: &str) -> Result<bool> {
        let by = by.to_string();
        self.write(move |t| store_draft(t, &v, at, &by)).await
    }

    async fn policy_activations(&self, hash: &str) -> Result<Vec<Timestamp>> {
        let hash = hash.to_string();
        self.read(move |c, p| activations(c, p, &hash)).await
    }
}
