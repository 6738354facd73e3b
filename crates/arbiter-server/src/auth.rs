//! Authentication: a request's API key checked against its stored digest in
//! constant time, with a short-lived cache so that a request costs one hash,
//! not one database read. Creating and rotating keys are operations
//! ([`crate::app::keys`]).

use crate::error::ApiError;
use arbiter_core::{Principal, Timestamp};
use arbiter_store::{KeyRecord, Store};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// Prefix of every Arbiter key, so that secret scanners can find leaked ones.
pub const KEY_PREFIX: &str = "arb_";

/// The problem detail for a well-formed key that matches no stored key.
pub const INVALID_KEY: &str = "the API key is not valid";

/// The public id inside a key, if the key is well formed.
pub fn key_id(secret: &str) -> Option<&str> {
    let rest = secret.strip_prefix(KEY_PREFIX)?;
    let (id, s) = rest.split_once('_')?;
    (id.len() == 12 && s.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
}

struct Cached {
    record: KeyRecord,
    fetched: Instant,
}

/// Looks keys up, caching records for a few seconds. Revocations made through
/// this server apply at once; those made elsewhere (another replica, the CLI)
/// within the cache TTL.
pub struct KeyCache {
    ttl: Duration,
    map: Mutex<HashMap<String, Cached>>,
}

impl KeyCache {
    /// A cache whose entries live for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        KeyCache { ttl, map: Mutex::new(HashMap::new()) }
    }

    /// Forget a key (after revocation).
    pub fn invalidate(&self, id: &str) {
        if let Ok(mut m) = self.map.lock() {
            m.remove(id);
        }
    }

    /// The key record with id `id`, from the cache while it is fresh.
    async fn record(&self, store: &dyn Store, id: &str) -> Result<Option<KeyRecord>, ApiError> {
        let cached = self
            .map
            .lock()
            .ok()
            .and_then(|m| m.get(id).filter(|c| c.fetched.elapsed() < self.ttl).map(|c| c.record.clone()));
        if let Some(r) = cached {
            return Ok(Some(r));
        }
        let Some(r) = store.key(id).await.map_err(ApiError::from)? else { return Ok(None) };
        if let Ok(mut m) = self.map.lock() {
            if m.len() > 100_000 {
                m.clear();
            }
            m.insert(id.to_string(), Cached { record: r.clone(), fetched: Instant::now() });
        }
        Ok(Some(r))
    }

    /// The principal of an active key, by id (console sessions carry the id, not the secret).
    pub async fn principal_by_id(&self, store: &dyn Store, id: &str, now: Timestamp) -> Result<Principal, ApiError> {
        Ok(self.active_by_id(store, id, now).await?.0)
    }

    /// The principal and record of an active key, by id.
    pub async fn active_by_id(
        &self,
        store: &dyn Store,
        id: &str,
        now: Timestamp,
    ) -> Result<(Principal, KeyRecord), ApiError> {
        let record = self.record(store, id).await?.ok_or_else(|| ApiError::Unauthorized("unknown key".into()))?;
        if let Some(why) = record.inactive_at(now) {
            return Err(ApiError::Unauthorized(why));
        }
        Ok((record.principal(), record))
    }

    /// Check a presented key and return who it belongs to.
    pub async fn authenticate(
        &self,
        store: &dyn Store,
        presented: &str,
        now: Timestamp,
    ) -> Result<Principal, ApiError> {
        let bad = || ApiError::Unauthorized(INVALID_KEY.into());
        let id = key_id(presented).ok_or_else(|| {
            ApiError::Unauthorized("malformed API key: expected `Authorization: Bearer arb_<id>_<secret>`".into())
        })?;
        let record = self.record(store, id).await?.ok_or_else(bad)?;
        let digest = Sha256::digest(presented.as_bytes());
        if !bool::from(digest.as_slice().ct_eq(&record.digest)) {
            return Err(bad());
        }
        if let Some(why) = record.inactive_at(now) {
            return Err(ApiError::Unauthorized(why));
        }
        Ok(record.principal())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::keys::generate_key;
    use arbiter_core::Role;
    use std::collections::BTreeSet;

    #[test]
    fn generated_keys_parse_and_are_unique() {
        let a = generate_key("ann", Role::Reviewer, BTreeSet::new(), Timestamp(0)).unwrap();
        let b = generate_key("ann", Role::Reviewer, BTreeSet::new(), Timestamp(0)).unwrap();
        assert_ne!(a.secret, b.secret);
        assert_eq!(key_id(&a.secret), Some(a.record.id.as_str()));
        assert_eq!(key_id("arb_short_x"), None);
        assert_eq!(key_id("Bearer nonsense"), None);
    }
}
