//! A signed approval receipt: what a final verdict binds, so a gateway or a
//! tool server can check that the call it is about to run is exactly the one
//! decided (same decision, agent, action and canonical arguments), by that
//! verdict, under that policy version, not after it expired. The signing and
//! checking live in `arbiter-receipt`; this is the data.

use crate::Timestamp;
use serde::{Deserialize, Serialize};

/// The receipt format's version.
pub const RECEIPT_VERSION: u32 = 1;

/// A receipt: the signed fields and the signature over them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    /// [`RECEIPT_VERSION`].
    pub v: u32,
    /// The decision.
    pub decision_id: String,
    /// The agent that proposed it.
    pub agent: String,
    /// The action to run (a reviewer's modification included).
    pub action: String,
    /// `sha256:` and the hex SHA-256 of the RFC 8785 canonical JSON of the arguments to run.
    pub args_digest: String,
    /// `allow` or `deny`.
    pub verdict: String,
    /// The policy version that decided.
    pub policy_hash: String,
    /// When the verdict became final.
    pub issued_at: Timestamp,
    /// After this, the receipt no longer authorises the call.
    pub expires_at: Timestamp,
    /// The signing key (`GET /v1/receipts/keys`).
    pub key_id: String,
    /// Ed25519 signature, hex, over the canonical JSON of every other field.
    pub signature: String,
}

/// A public key receipts are checked with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptKey {
    /// The id receipts name (the first 16 hex digits of the key's SHA-256).
    pub key_id: String,
    /// `ed25519`.
    pub algorithm: String,
    /// The 32-byte public key, hex.
    pub public_key: String,
    /// When it was created.
    pub created_at: Timestamp,
    /// Whether new receipts are signed with it (older keys stay listed to check older receipts).
    pub active: bool,
}
