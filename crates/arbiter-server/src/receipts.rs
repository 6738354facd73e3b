//! The server's receipt keys and the receipts it serves. Keys live in the
//! store's settings (`receipt_key.000001`, ...), so every replica signs with
//! the same newest key and publishes all of them; rotating adds a key, and
//! older ones stay published so receipts already issued still verify.

use crate::{ApiError, AppState};
use arbiter_core::receipt::ReceiptKey;
use arbiter_core::{Decision, Timestamp};
use arbiter_receipt::SigningKey;
use std::sync::RwLock;

const PREFIX: &str = "receipt_key.";

struct Stored {
    name: String,
    created_at: Timestamp,
    key: SigningKey,
}

/// Loaded keys, oldest first.
#[derive(Default)]
pub struct Receipts {
    keys: RwLock<Vec<Stored>>,
}

fn fresh_seed() -> Result<String, ApiError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| ApiError::internal("no randomness available", e))?;
    Ok(hex::encode(seed))
}

impl Receipts {
    /// Read the keys from the store, creating the first one if there is none.
    pub async fn load(&self, state: &AppState) -> Result<(), ApiError> {
        let mut stored = state.store.settings_with_prefix(PREFIX).await?;
        if stored.is_empty() {
            let value = serde_json::json!({"seed": fresh_seed()?, "created_at": state.clock.now()}).to_string();
            let name = format!("{PREFIX}000001");
            let kept = state.store.setting_or_insert(&name, &value).await?;
            stored = vec![(name, kept)];
        }
        {
            // the refresh runs every few seconds: rebuild only when a key was added
            let have = self.keys.read().unwrap_or_else(|e| e.into_inner());
            if have.len() == stored.len() && have.iter().zip(&stored).all(|(k, (name, _))| &k.name == name) {
                return Ok(());
            }
        }
        let mut keys = Vec::with_capacity(stored.len());
        for (name, value) in stored {
            let v: serde_json::Value = serde_json::from_str(&value)
                .map_err(|e| ApiError::internal(format!("receipt key {name} is not JSON"), e))?;
            let key = SigningKey::from_seed_hex(v["seed"].as_str().unwrap_or(""))
                .map_err(|e| ApiError::internal_msg(format!("receipt key {name}: {e}")))?;
            let created_at = serde_json::from_value(v["created_at"].clone()).unwrap_or(Timestamp(0));
            keys.push(Stored { name, created_at, key });
        }
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = keys;
        Ok(())
    }

    /// Add a new signing key (new receipts use it; older keys stay published).
    pub async fn rotate(&self, state: &AppState) -> Result<ReceiptKey, ApiError> {
        self.load(state).await?;
        let next = {
            let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
            keys.last().and_then(|k| k.name.strip_prefix(PREFIX)).and_then(|n| n.parse::<u32>().ok()).unwrap_or(0) + 1
        };
        let value = serde_json::json!({"seed": fresh_seed()?, "created_at": state.clock.now()}).to_string();
        state.store.setting_or_insert(&format!("{PREFIX}{next:06}"), &value).await?;
        self.load(state).await?;
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let last = keys.last().ok_or_else(|| ApiError::internal_msg("no receipt key after rotating"))?;
        Ok(last.key.public(last.created_at, true))
    }

    /// Every published key, newest first; the newest signs.
    pub fn public_keys(&self) -> Vec<ReceiptKey> {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let n = keys.len();
        keys.iter().enumerate().rev().map(|(i, k)| k.key.public(k.created_at, i + 1 == n)).collect()
    }

    /// `d` with its receipt in `final.receipt`, when it is final.
    pub fn attach(&self, mut d: Decision, ttl_ms: i64) -> Decision {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        if let Some(k) = keys.last() {
            let receipt = arbiter_receipt::issue(&k.key, &d, ttl_ms);
            if let Some(f) = &mut d.final_verdict {
                f.receipt = receipt;
            }
        }
        d
    }
}
