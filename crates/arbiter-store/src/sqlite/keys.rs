//! API keys and console sessions.

use super::*;

/// The columns of a key row, as a literal for `concat!` (SQL text stays static).
macro_rules! key_cols {
    () => {
        "id, name, role, tags, digest, created_at, revoked_at, expires_at, rate_limit, project"
    };
}

pub(super) type KeyRow = (KeyRecord, String, String, Option<String>, String);

pub(super) fn key_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<KeyRow> {
    Ok((
        KeyRecord {
            id: r.get(0)?,
            name: r.get(1)?,
            role: Role::Agent,
            tags: Default::default(),
            digest: r.get(4)?,
            created_at: Timestamp(r.get(5)?),
            revoked_at: r.get::<_, Option<i64>>(6)?.map(Timestamp),
            expires_at: r.get::<_, Option<i64>>(7)?.map(Timestamp),
            rate_limit: None,
            project: Default::default(),
        },
        r.get(2)?,
        r.get(3)?,
        r.get(8)?,
        r.get(9)?,
    ))
}

pub(super) fn finish_key((mut k, role, tags, rate, project): KeyRow) -> Result<KeyRecord> {
    k.project = ProjectId::parse(&project).map_err(StoreError::Corrupt)?;
    k.role = role.parse().map_err(StoreError::Corrupt)?;
    k.tags = serde_json::from_str(&tags).map_err(corrupt)?;
    k.rate_limit = rate.map(|r| r.parse().map_err(StoreError::Corrupt)).transpose()?;
    Ok(k)
}

fn load_memberships(c: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<Vec<arbiter_core::Membership>> {
    let mut st = c.prepare_cached(sql).map_err(backend)?;
    let rows = st
        .query_map(params, |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, String>(6)?,
            ))
        })
        .map_err(backend)?;
    rows.map(|r| {
        let (project, home, principal, role, tags, at, by) = r.map_err(backend)?;
        Ok(arbiter_core::Membership {
            project: ProjectId::parse(&project).map_err(StoreError::Corrupt)?,
            home: ProjectId::parse(&home).map_err(StoreError::Corrupt)?,
            principal,
            role: role.parse().map_err(StoreError::Corrupt)?,
            tags: serde_json::from_str(&tags).map_err(corrupt)?,
            created_at: Timestamp(at),
            created_by: by,
        })
    })
    .collect()
}

/// Insert a key record into project `p`; a taken id is a conflict.
pub(super) fn insert_key(c: &Connection, p: &str, k: &KeyRecord) -> Result<()> {
    crate::rules::same_project(p, &k.project, "key")?;
    let tags = serde_json::to_string(&k.tags).map_err(corrupt)?;
    c.execute(
        "INSERT INTO api_keys (id, name, role, tags, digest, created_at, revoked_at, expires_at, rate_limit, project)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            k.id,
            k.name,
            k.role.as_str(),
            tags,
            k.digest,
            k.created_at.0,
            k.revoked_at.map(|t| t.0),
            k.expires_at.map(|t| t.0),
            k.rate_limit.map(|r| r.to_string()),
            p
        ],
    )
    .map_err(|e| match e {
        rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation => {
            StoreError::Conflict(format!("a key with id {} already exists", k.id))
        }
        other => backend(other),
    })?;
    Ok(())
}

#[async_trait]
impl crate::KeyStore for SqliteStore {
    async fn create_key(&self, k: KeyRecord) -> Result<()> {
        self.write(move |c, p| insert_key(c, p, &k)).await
    }

    async fn key(&self, id: &str) -> Result<Option<KeyRecord>> {
        let id = id.to_string();
        // global: a key is looked up before its project is known (authentication)
        self.read(move |c, _| {
            c.query_row(concat!("SELECT ", key_cols!(), " FROM api_keys WHERE id = ?1"), [id], key_from_row)
                .optional()
                .map_err(backend)?
                .map(finish_key)
                .transpose()
        })
        .await
    }

    async fn keys(&self) -> Result<Vec<KeyRecord>> {
        self.read(|c, p| {
            let mut st = c
                .prepare(concat!("SELECT ", key_cols!(), " FROM api_keys WHERE project = ?1 ORDER BY created_at, id"))
                .map_err(backend)?;
            let rows = st.query_map([p], key_from_row).map_err(backend)?;
            rows.map(|r| r.map_err(backend).and_then(finish_key)).collect()
        })
        .await
    }

    async fn revoke_key(&self, id: &str, at: Timestamp) -> Result<bool> {
        let id = id.to_string();
        self.write(move |c, p| {
            let n = c
                .execute(
                    "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND project = ?3 AND revoked_at IS NULL",
                    params![id, at.0, p],
                )
                .map_err(backend)?;
            Ok(n == 1)
        })
        .await
    }

    async fn set_key_expiry(&self, id: &str, expires_at: Option<Timestamp>) -> Result<bool> {
        let id = id.to_string();
        self.write(move |c, p| {
            let n = c
                .execute(
                    "UPDATE api_keys SET expires_at = ?2 WHERE id = ?1 AND project = ?3",
                    params![id, expires_at.map(|t| t.0), p],
                )
                .map_err(backend)?;
            Ok(n == 1)
        })
        .await
    }

    async fn grant_membership(&self, m: arbiter_core::Membership) -> Result<()> {
        self.write(move |c, p| {
            crate::rules::same_project(p, &m.project, "membership")?;
            crate::rules::member_role(m.role)?;
            let tags = serde_json::to_string(&m.tags).map_err(corrupt)?;
            c.prepare_cached(
                "INSERT INTO memberships (project, home, principal, role, tags, created_at, created_by)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (project, home, principal) DO UPDATE SET role = ?4, tags = ?5, created_at = ?6, created_by = ?7",
            )
            .map_err(backend)?
            .execute(params![p, m.home.as_str(), m.principal, m.role.as_str(), tags, m.created_at.0, m.created_by])
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn revoke_membership(&self, home: &ProjectId, principal: &str) -> Result<bool> {
        let (home, principal) = (home.to_string(), principal.to_string());
        self.write(move |c, p| {
            let n = c
                .execute(
                    "DELETE FROM memberships WHERE project = ?1 AND home = ?2 AND principal = ?3",
                    params![p, home, principal],
                )
                .map_err(backend)?;
            Ok(n == 1)
        })
        .await
    }

    async fn members(&self) -> Result<Vec<arbiter_core::Membership>> {
        self.read(|c, p| {
            load_memberships(
                c,
                "SELECT project, home, principal, role, tags, created_at, created_by FROM memberships
                 WHERE project = ?1 ORDER BY home, principal",
                params![p],
            )
        })
        .await
    }

    async fn memberships_of(&self, home: &ProjectId, principal: &str) -> Result<Vec<arbiter_core::Membership>> {
        let (home, principal) = (home.to_string(), principal.to_string());
        // server-wide: read before the request's project is known
        self.read(move |c, _| {
            load_memberships(
                c,
                "SELECT project, home, principal, role, tags, created_at, created_by FROM memberships
                 WHERE home = ?1 AND principal = ?2 ORDER BY project",
                params![home, principal],
            )
        })
        .await
    }

    async fn create_session(&self, session: crate::ConsoleSession) -> Result<()> {
        self.write(move |c, _| {
            c.execute(
                "INSERT INTO console_sessions (id, key_id, created_at, expires_at, revoked_at, identity)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    session.id,
                    session.key_id,
                    session.created_at.0,
                    session.expires_at.0,
                    session.revoked_at.map(|t| t.0),
                    session.identity.as_ref().map(to_json).transpose()?
                ],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn session(&self, id: &str) -> Result<Option<crate::ConsoleSession>> {
        let id = id.to_string();
        self.read(move |c, _| {
            c.prepare_cached(
                "SELECT id, key_id, created_at, expires_at, revoked_at, identity FROM console_sessions WHERE id = ?1",
            )
            .map_err(backend)?
            .query_row([id], |r| {
                Ok((
                    crate::ConsoleSession {
                        id: r.get(0)?,
                        key_id: r.get(1)?,
                        created_at: Timestamp(r.get(2)?),
                        expires_at: Timestamp(r.get(3)?),
                        revoked_at: r.get::<_, Option<i64>>(4)?.map(Timestamp),
                        identity: None,
                    },
                    r.get::<_, Option<String>>(5)?,
                ))
            })
            .optional()
            .map_err(backend)?
            .map(|(mut s, identity)| {
                s.identity = identity.as_deref().map(from_json).transpose()?;
                Ok(s)
            })
            .transpose()
        })
        .await
    }

    async fn end_session(&self, id: &str, at: Timestamp) -> Result<bool> {
        let id = id.to_string();
        self.write(move |c, _| {
            let n = c
                .execute(
                    "UPDATE console_sessions SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                    params![id, at.0],
                )
                .map_err(backend)?;
            Ok(n == 1)
        })
        .await
    }

    async fn record_sign_in(&self, identity: arbiter_core::Identity, at: Timestamp) -> Result<()> {
        self.write(move |c, _| {
            let json = to_json(&identity)?;
            c.execute(
                "INSERT INTO people (name, email, identity, signed_in_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (name) DO UPDATE SET email = excluded.email, identity = excluded.identity,
                     signed_in_at = excluded.signed_in_at",
                params![identity.name, identity.email, json, at.0],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn link_slack(&self, name: &str, slack_user: Option<&str>) -> Result<()> {
        let (name, slack_user) = (name.to_string(), slack_user.map(str::to_string));
        self.write(move |c, _| {
            if let Some(u) = &slack_user {
                c.execute("UPDATE people SET slack_user = NULL WHERE slack_user = ?1 AND name <> ?2", params![u, name])
                    .map_err(backend)?;
            }
            c.execute(
                "INSERT INTO people (name, slack_user) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET slack_user = excluded.slack_user",
                params![name, slack_user],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn person(&self, name: &str) -> Result<Option<arbiter_core::Person>> {
        let name = name.to_string();
        self.read(move |c, _| Ok(load_people(c, "WHERE name = ?1", params![name])?.pop())).await
    }

    async fn person_by_slack(&self, slack_user: &str) -> Result<Option<arbiter_core::Person>> {
        let u = slack_user.to_string();
        self.read(move |c, _| Ok(load_people(c, "WHERE slack_user = ?1", params![u])?.pop())).await
    }

    async fn people_by_email(&self, email: &str) -> Result<Vec<arbiter_core::Person>> {
        let email = email.to_string();
        self.read(move |c, _| load_people(c, "WHERE email = ?1 COLLATE NOCASE", params![email])).await
    }

    async fn people(&self) -> Result<Vec<arbiter_core::Person>> {
        self.read(move |c, _| load_people(c, "", params![])).await
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(corrupt)
}

fn from_json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(corrupt)
}

fn load_people(c: &Connection, filter: &str, params: impl rusqlite::Params) -> Result<Vec<arbiter_core::Person>> {
    let sql = format!("SELECT name, identity, signed_in_at, slack_user FROM people {filter} ORDER BY name");
    let mut stmt = c.prepare_cached(&sql).map_err(backend)?;
    let rows = stmt
        .query_map(params, |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?, r.get::<_, Option<i64>>(2)?, r.get(3)?))
        })
        .map_err(backend)?;
    rows.map(|row| {
        let (name, identity, signed_in_at, slack_user) = row.map_err(backend)?;
        Ok(arbiter_core::Person {
            name,
            identity: identity.as_deref().map(from_json).transpose()?,
            signed_in_at: signed_in_at.map(Timestamp),
            slack_user,
        })
    })
    .collect()
}
