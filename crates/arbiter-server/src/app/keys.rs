//! API keys as operations: generate, create (one principal per name, unless
//! meant), warn about a reviewer key that will never see a case, rotate
//! without downtime. The API, the console and the CLI all call these.

use crate::auth::KEY_PREFIX;
use crate::error::ApiError;
use arbiter_core::{Role, Timestamp};
use arbiter_store::{KeyRecord, Store};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;

/// A freshly generated key: the secret (shown once) and the record to store.
#[derive(Debug, Clone)]
pub struct NewKey {
    /// The full key; never stored.
    pub secret: String,
    /// What is stored.
    pub record: KeyRecord,
}

fn random_hex(bytes: usize) -> Result<String, ApiError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| ApiError::internal("no randomness available", e))?;
    Ok(hex::encode(buf))
}

/// Generate a key `arb_<id>_<secret>` with a 256-bit random secret.
pub fn generate_key(name: &str, role: Role, tags: BTreeSet<String>, now: Timestamp) -> Result<NewKey, ApiError> {
    let id = random_hex(6)?;
    let secret = format!("{KEY_PREFIX}{id}_{}", random_hex(32)?);
    let digest = Sha256::digest(secret.as_bytes()).to_vec();
    Ok(NewKey {
        secret,
        record: KeyRecord {
            id,
            name: name.to_string(),
            role,
            tags,
            digest,
            created_at: now,
            revoked_at: None,
            expires_at: None,
            rate_limit: None,
            project: Default::default(),
        },
    })
}

/// A key's name is its principal: approvals by two keys of one name count
/// once, and nobody approves their own agent's action. So a second key with
/// an existing name must be meant (`same_principal`), never an accident.
pub fn check_principal(existing: &[KeyRecord], name: &str, same_principal: bool) -> Result<(), ApiError> {
    match existing.iter().find(|k| k.name == name) {
        Some(k) if !same_principal => Err(ApiError::Conflict(format!(
            "a key named `{name}` already exists (id {}, role {}); keys with one name are one person, whose approvals \
             count once. To add or rotate a key for that person, pass same_principal (CLI: --same-principal); \
             otherwise choose another name",
            k.id, k.role
        ))),
        _ => Ok(()),
    }
}

/// What a new key should be.
#[derive(Debug, Clone)]
pub struct KeySpec {
    /// Who the key is for (its principal); for agents, the agent's name.
    pub name: String,
    /// agent, reviewer or admin.
    pub role: Role,
    /// Reviewer role tags.
    pub tags: BTreeSet<String>,
    /// How long until it stops working on its own.
    pub expires_in: Option<arbiter_core::HumanDuration>,
    /// Its own proposal rate limit.
    pub rate_limit: Option<arbiter_core::rate::RateLimit>,
    /// The name is meant to be an existing principal's (a second key for that person).
    pub same_principal: bool,
}

/// Create and store a key as `spec` says, in `store`'s project; the secret
/// is in the result, shown once.
pub async fn create_key(store: &dyn Store, spec: KeySpec, now: Timestamp) -> Result<NewKey, ApiError> {
    validate_key_fields(&spec.name, &spec.tags)?;
    check_principal(&store.keys().await?, &spec.name, spec.same_principal)?;
    let mut key = generate_key(&spec.name, spec.role, spec.tags, now)?;
    key.record.project = store.project().clone();
    key.record.expires_at = spec.expires_in.map(|d| now.plus_millis(d.as_millis()));
    key.record.rate_limit = spec.rate_limit;
    store.create_key(key.record.clone()).await?;
    Ok(key)
}

/// What an admin should know about a key just created: a reviewer key whose
/// tags can do nothing (none is a reviewer role of the active policy,
/// `roles` when known, nor a review perspective such as `engineering`, which
/// writes review stages) will never see a case.
pub fn key_warnings(record: &KeyRecord, roles: Option<&BTreeSet<String>>) -> Vec<String> {
    if record.role != Role::Reviewer {
        return vec![];
    }
    let known = roles.map(|r| r.iter().cloned().collect::<Vec<_>>().join(", "));
    let hint = known.as_ref().map_or(String::new(), |k| format!(" (the active policy routes to: {k})"));
    if record.tags.is_empty() {
        return vec![format!(
            "reviewer key `{}` has no tags, so its queue will stay empty: cases reach reviewers by role tag{hint}. \
             Create it again with --tag ROLE and revoke this one",
            record.name
        )];
    }
    let perspective = |t: &String| arbiter_core::review::DEFAULT_REVIEWERS.contains(&t.as_str());
    match roles {
        Some(r) if record.tags.is_disjoint(r) && !record.tags.iter().any(perspective) => vec![format!(
            "none of reviewer key `{}`'s tags ({}) is a role the active policy routes cases to{hint}; \
             its queue stays empty until one is",
            record.name,
            record.tags.iter().cloned().collect::<Vec<_>>().join(", ")
        )],
        _ => vec![],
    }
}

/// Rotate key `id` without downtime: a new key for the same principal (role,
/// tags and rate limit too), while the old one keeps working until
/// `old_expires_in` from now.
pub async fn rotate_key(
    store: &dyn Store,
    id: &str,
    old_expires_in: arbiter_core::HumanDuration,
    now: Timestamp,
) -> Result<NewKey, ApiError> {
    let old = store
        .key(id)
        .await?
        .filter(|k| &k.project == store.project())
        .ok_or_else(|| ApiError::NotFound(format!("no key with id {id} in project {}", store.project())))?;
    if let Some(why) = old.inactive_at(now) {
        return Err(ApiError::Conflict(format!("{why}; create a new key instead of rotating this one")));
    }
    let spec = KeySpec {
        name: old.name.clone(),
        role: old.role,
        tags: old.tags.clone(),
        expires_in: None,
        rate_limit: old.rate_limit,
        same_principal: true,
    };
    let key = create_key(store, spec, now).await?;
    let until = now.plus_millis(old_expires_in.as_millis());
    let until = old.expires_at.map_or(until, |t| t.min(until));
    store.set_key_expiry(id, Some(until)).await?;
    Ok(key)
}

/// Check the name and tags of a key to be created.
pub fn validate_key_fields(name: &str, tags: &BTreeSet<String>) -> Result<(), ApiError> {
    let ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 64
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'@'))
    };
    if !ok(name) {
        return Err(ApiError::invalid("name", "use 1-64 letters, digits, `_`, `-`, `.` or `@`"));
    }
    if let Some(t) = tags.iter().find(|t| !ok(t)) {
        return Err(ApiError::invalid("tags", format!("tag `{t}`: use 1-64 letters, digits, `_`, `-`, `.` or `@`")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_key_whose_tags_can_do_nothing_is_warned_about() {
        let roles: BTreeSet<String> = ["soc_analyst".to_string()].into();
        let key = |tags: &[&str]| {
            generate_key("k", Role::Reviewer, tags.iter().map(|t| t.to_string()).collect(), Timestamp(0))
                .unwrap()
                .record
        };
        assert!(key_warnings(&key(&["soc_analyst"]), Some(&roles)).is_empty());
        assert!(key_warnings(&key(&["engineering"]), Some(&roles)).is_empty(), "engineering writes review stages");
        assert!(key_warnings(&key(&["ux", "nobody"]), Some(&roles)).is_empty());
        assert_eq!(key_warnings(&key(&["finanse"]), Some(&roles)).len(), 1, "a typo can do nothing");
        assert_eq!(key_warnings(&key(&[]), Some(&roles)).len(), 1, "no tags at all");
    }
}
