//! API keys and console sessions.

use crate::{Sql, Tx, col, corrupt};
use arbiter_core::Timestamp;
use arbiter_store::{ConsoleSession, KeyRecord, Result, StoreError};
use postgres::Row;

/// The columns of a key row, as a literal for `concat!` (SQL text stays static).
macro_rules! key_cols {
    () => {
        "id, name, role, tags, digest, created_at, revoked_at, expires_at, rate_limit, project"
    };
}

/// The columns of a person row.
macro_rules! people_cols {
    () => {
        "name, identity, signed_in_at, slack_user"
    };
}

fn row_person(r: &Row) -> Result<arbiter_core::Person> {
    Ok(arbiter_core::Person {
        name: col(r, 0)?,
        identity: col::<Option<String>>(r, 1)?.map(|j| serde_json::from_str(&j).map_err(corrupt)).transpose()?,
        signed_in_at: col::<Option<i64>>(r, 2)?.map(Timestamp),
        slack_user: col(r, 3)?,
    })
}

fn row_key(r: &Row) -> Result<KeyRecord> {
    let role: String = col(r, 2)?;
    Ok(KeyRecord {
        id: col(r, 0)?,
        name: col(r, 1)?,
        role: role.parse().map_err(StoreError::Corrupt)?,
        tags: serde_json::from_str(&col::<String>(r, 3)?).map_err(corrupt)?,
        digest: col(r, 4)?,
        created_at: Timestamp(col(r, 5)?),
        revoked_at: col::<Option<i64>>(r, 6)?.map(Timestamp),
        expires_at: col::<Option<i64>>(r, 7)?.map(Timestamp),
        rate_limit: col::<Option<String>>(r, 8)?.map(|s| s.parse().map_err(StoreError::Corrupt)).transpose()?,
        project: arbiter_core::ProjectId::parse(&col::<String>(r, 9)?).map_err(StoreError::Corrupt)?,
    })
}

fn memberships(c: &mut impl Sql, sql: &str, params: crate::Params<'_>) -> Result<Vec<arbiter_core::Membership>> {
    c.query(sql, params)?
        .iter()
        .map(|r| {
            let role: String = col(r, 3)?;
            Ok(arbiter_core::Membership {
                project: arbiter_core::ProjectId::parse(&col::<String>(r, 0)?).map_err(StoreError::Corrupt)?,
                home: arbiter_core::ProjectId::parse(&col::<String>(r, 1)?).map_err(StoreError::Corrupt)?,
                principal: col(r, 2)?,
                role: role.parse().map_err(StoreError::Corrupt)?,
                tags: serde_json::from_str(&col::<String>(r, 4)?).map_err(corrupt)?,
                created_at: Timestamp(col(r, 5)?),
                created_by: col(r, 6)?,
            })
        })
        .collect()
}

pub(crate) fn create_key(t: &mut Tx<'_>, k: &KeyRecord) -> Result<()> {
    let p = t.project.clone();
    arbiter_store::rules::same_project(&p, &k.project, "key")?;
    let tags = serde_json::to_string(&k.tags).map_err(corrupt)?;
    let n = t.execute(
        "INSERT INTO api_keys (id, name, role, tags, digest, created_at, revoked_at, expires_at, rate_limit, project)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (id) DO NOTHING",
        &[
            &k.id,
            &k.name,
            &k.role.as_str(),
            &tags,
            &k.digest,
            &k.created_at.0,
            &k.revoked_at.map(|t| t.0),
            &k.expires_at.map(|t| t.0),
            &k.rate_limit.map(|r| r.to_string()),
            &&*p,
        ],
    )?;
    if n == 0 {
        return Err(StoreError::Conflict(format!("a key with id {} already exists", k.id)));
    }
    Ok(())
}

pub(crate) fn key(c: &mut impl Sql, id: &str) -> Result<Option<KeyRecord>> {
    c.query_opt(concat!("SELECT ", key_cols!(), " FROM api_keys WHERE id = $1"), &[&id])?
        .as_ref()
        .map(row_key)
        .transpose()
}

pub(crate) fn keys(c: &mut impl Sql, p: &str) -> Result<Vec<KeyRecord>> {
    c.query(concat!("SELECT ", key_cols!(), " FROM api_keys WHERE project = $1 ORDER BY created_at, id"), &[&p])?
        .iter()
        .map(row_key)
        .collect()
}

pub(crate) fn session(c: &mut impl Sql, id: &str) -> Result<Option<ConsoleSession>> {
    let r = c.query_opt(
        "SELECT id, key_id, created_at, expires_at, revoked_at, identity FROM console_sessions WHERE id = $1",
        &[&id],
    )?;
    r.map(|r| {
        Ok(ConsoleSession {
            id: col(&r, 0)?,
            key_id: col(&r, 1)?,
            created_at: Timestamp(col(&r, 2)?),
            expires_at: Timestamp(col(&r, 3)?),
            revoked_at: col::<Option<i64>>(&r, 4)?.map(Timestamp),
            identity: col::<Option<String>>(&r, 5)?.map(|j| serde_json::from_str(&j).map_err(corrupt)).transpose()?,
        })
    })
    .transpose()
}

#[async_trait::async_trait]
impl arbiter_store::KeyStore for crate::PostgresStore {
    async fn create_key(&self, key: KeyRecord) -> Result<()> {
        self.write(move |t| create_key(t, &key)).await
    }

    async fn key(&self, id: &str) -> Result<Option<KeyRecord>> {
        let id = id.to_string();
        // global: a key is looked up before its project is known (authentication)
        self.read(move |c, _| key(c, &id)).await
    }

    async fn keys(&self) -> Result<Vec<KeyRecord>> {
        self.read(keys).await
    }

    async fn revoke_key(&self, id: &str, at: Timestamp) -> Result<bool> {
        let id = id.to_string();
        let p = self.project.shared();
        self.write_global(move |t| {
            use crate::Sql;
            Ok(t.execute(
                "UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND project = $3 AND revoked_at IS NULL",
                &[&id, &at.0, &&*p],
            )? == 1)
        })
        .await
    }

    async fn set_key_expiry(&self, id: &str, expires_at: Option<Timestamp>) -> Result<bool> {
        let id = id.to_string();
        let p = self.project.shared();
        self.write_global(move |t| {
            use crate::Sql;
            Ok(t.execute(
                "UPDATE api_keys SET expires_at = $2 WHERE id = $1 AND project = $3",
                &[&id, &expires_at.map(|t| t.0), &&*p],
            )? == 1)
        })
        .await
    }

    async fn grant_membership(&self, m: arbiter_core::Membership) -> Result<()> {
        self.write(move |t| {
            use crate::Sql;
            let p = t.project.clone();
            arbiter_store::rules::same_project(&p, &m.project, "membership")?;
            arbiter_store::rules::member_role(m.role)?;
            let tags = serde_json::to_string(&m.tags).map_err(corrupt)?;
            t.execute(
                "INSERT INTO memberships (project, home, principal, role, tags, created_at, created_by)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (project, home, principal) DO UPDATE SET role = EXCLUDED.role, tags = EXCLUDED.tags,
                     created_at = EXCLUDED.created_at, created_by = EXCLUDED.created_by",
                &[&&*p, &m.home.as_str(), &m.principal, &m.role.as_str(), &tags, &m.created_at.0, &m.created_by],
            )?;
            Ok(())
        })
        .await
    }

    async fn revoke_membership(&self, home: &arbiter_core::ProjectId, principal: &str) -> Result<bool> {
        let (home, principal) = (home.to_string(), principal.to_string());
        self.write(move |t| {
            use crate::Sql;
            let p = t.project.clone();
            Ok(t.execute(
                "DELETE FROM memberships WHERE project = $1 AND home = $2 AND principal = $3",
                &[&&*p, &home, &principal],
            )? == 1)
        })
        .await
    }

    async fn members(&self) -> Result<Vec<arbiter_core::Membership>> {
        self.read(|c, p| {
            memberships(
                c,
                "SELECT project, home, principal, role, tags, created_at, created_by FROM memberships
                 WHERE project = $1 ORDER BY home, principal",
                &[&p],
            )
        })
        .await
    }

    async fn memberships_of(
        &self,
        home: &arbiter_core::ProjectId,
        principal: &str,
    ) -> Result<Vec<arbiter_core::Membership>> {
        let (home, principal) = (home.to_string(), principal.to_string());
        // server-wide: read before the request's project is known
        self.read(move |c, _| {
            memberships(
                c,
                "SELECT project, home, principal, role, tags, created_at, created_by FROM memberships
                 WHERE home = $1 AND principal = $2 ORDER BY project",
                &[&home, &principal],
            )
        })
        .await
    }

    async fn create_session(&self, s: ConsoleSession) -> Result<()> {
        let identity = s.identity.as_ref().map(serde_json::to_string).transpose().map_err(corrupt)?;
        self.write_global(move |t| {
            use crate::Sql;
            t.execute(
                "INSERT INTO console_sessions (id, key_id, created_at, expires_at, revoked_at, identity)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[&s.id, &s.key_id, &s.created_at.0, &s.expires_at.0, &s.revoked_at.map(|t| t.0), &identity],
            )?;
            Ok(())
        })
        .await
    }

    async fn session(&self, id: &str) -> Result<Option<ConsoleSession>> {
        let id = id.to_string();
        self.read(move |c, _| session(c, &id)).await
    }

    async fn end_session(&self, id: &str, at: Timestamp) -> Result<bool> {
        let id = id.to_string();
        self.write_global(move |t| {
            use crate::Sql;
            Ok(t.execute(
                "UPDATE console_sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
                &[&id, &at.0],
            )? == 1)
        })
        .await
    }

    async fn record_sign_in(&self, identity: arbiter_core::Identity, at: Timestamp) -> Result<()> {
        let json = serde_json::to_string(&identity).map_err(corrupt)?;
        self.write_global(move |t| {
            t.execute(
                "INSERT INTO people (name, email, identity, signed_in_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (name) DO UPDATE SET email = excluded.email, identity = excluded.identity,
                     signed_in_at = excluded.signed_in_at",
                &[&identity.name, &identity.email, &json, &at.0],
            )?;
            Ok(())
        })
        .await
    }

    async fn link_slack(&self, name: &str, slack_user: Option<&str>) -> Result<()> {
        let (name, slack_user) = (name.to_string(), slack_user.map(str::to_string));
        self.write_global(move |t| {
            if let Some(u) = &slack_user {
                t.execute("UPDATE people SET slack_user = NULL WHERE slack_user = $1 AND name <> $2", &[u, &name])?;
            }
            t.execute(
                "INSERT INTO people (name, slack_user) VALUES ($1, $2)
                 ON CONFLICT (name) DO UPDATE SET slack_user = excluded.slack_user",
                &[&name, &slack_user],
            )?;
            Ok(())
        })
        .await
    }

    async fn person(&self, name: &str) -> Result<Option<arbiter_core::Person>> {
        let name = name.to_string();
        self.read(move |c, _| {
            let rows = c.query(concat!("SELECT ", people_cols!(), " FROM people WHERE name = $1"), &[&name])?;
            rows.iter().map(row_person).next().transpose()
        })
        .await
    }

    async fn person_by_slack(&self, slack_user: &str) -> Result<Option<arbiter_core::Person>> {
        let u = slack_user.to_string();
        self.read(move |c, _| {
            let rows = c.query(concat!("SELECT ", people_cols!(), " FROM people WHERE slack_user = $1"), &[&u])?;
            rows.iter().map(row_person).next().transpose()
        })
        .await
    }

    async fn people_by_email(&self, email: &str) -> Result<Vec<arbiter_core::Person>> {
        let email = email.to_string();
        self.read(move |c, _| {
            let rows = c.query(
                concat!("SELECT ", people_cols!(), " FROM people WHERE lower(email) = lower($1) ORDER BY name"),
                &[&email],
            )?;
            rows.iter().map(row_person).collect()
        })
        .await
    }

    async fn people(&self) -> Result<Vec<arbiter_core::Person>> {
        self.read(move |c, _| {
            let rows = c.query(concat!("SELECT ", people_cols!(), " FROM people ORDER BY name"), &[])?;
            rows.iter().map(row_person).collect()
        })
        .await
    }
}
