//! The hash-chained event log: the audit trail of everything that happens to cases.

use arbiter_core::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The `prev_hash` of the first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One append-only audit record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the log, from 1.
    pub seq: u64,
    /// The case it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case_id: Option<String>,
    /// The decision it concerns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_id: Option<String>,
    /// What happened, e.g. `case.opened`.
    pub kind: String,
    /// Who did it (key name, or `system`).
    pub actor: String,
    /// When.
    pub at: Timestamp,
    /// Details.
    pub data: serde_json::Value,
    /// Hash of the previous event.
    pub prev_hash: String,
    /// Hash of this event.
    pub hash: String,
}

impl Event {
    /// The hash this event should carry: SHA-256 over `prev_hash` and a
    /// canonical JSON encoding (sorted keys, no whitespace) of its own fields.
    pub fn compute_hash(&self) -> String {
        // serde_json's map is ordered by key, so this encoding is canonical.
        let body = serde_json::json!({
            "seq": self.seq, "case_id": self.case_id, "decision_id": self.decision_id,
            "kind": self.kind, "actor": self.actor, "at": self.at.millis(), "data": self.data,
        });
        let mut h = Sha256::new();
        h.update(self.prev_hash.as_bytes());
        h.update(b"\n");
        h.update(body.to_string().as_bytes());
        hex::encode(h.finalize())
    }
}
