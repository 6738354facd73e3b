//! Signed approval receipts. The server issues one for every final verdict:
//! an Ed25519 signature over the RFC 8785 canonical JSON of the receipt's
//! fields (decision id, agent, action, args digest, verdict, policy version,
//! issued-at, expiry, key id). Whoever runs the call (Arbiter's MCP gateway, a
//! tool server) checks the signature with the published keys, that the
//! receipt has not expired, and that the arguments it is about to run have the
//! digest the receipt names; the server then records its single use.
//!
//! Ed25519 signatures are deterministic, so the same verdict served twice
//! carries the same receipt.

use arbiter_core::canonical::{args_digest, canonical_json};
use arbiter_core::receipt::{RECEIPT_VERSION, Receipt, ReceiptKey};
use arbiter_core::{Decision, Timestamp};
use ed25519_dalek::{Signature, Signer, Verifier};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Why a receipt does not authorise a call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    /// Not a receipt of a version this code reads, or a field is malformed.
    #[error("malformed receipt: {0}")]
    Malformed(String),
    /// No published key has this id.
    #[error("unknown signing key `{0}`")]
    UnknownKey(String),
    /// The signature does not match the fields: forged or altered.
    #[error("bad signature: the receipt was altered or not signed by Arbiter")]
    BadSignature,
    /// Past its expiry.
    #[error("expired at {0}")]
    Expired(Timestamp),
    /// The arguments about to run are not the ones decided.
    #[error("the arguments do not match the receipt ({expected}, got {got})")]
    ArgsMismatch {
        /// The receipt's digest.
        expected: String,
        /// The digest of the arguments presented.
        got: String,
    },
    /// The verdict is not `allow`.
    #[error("the verdict is `{0}`, not allow")]
    NotAllowed(String),
}

/// The server's signing key.
pub struct SigningKey {
    key: ed25519_dalek::SigningKey,
    key_id: String,
}

impl SigningKey {
    /// The key from its 32-byte seed, hex.
    pub fn from_seed_hex(seed: &str) -> Result<SigningKey, String> {
        let bytes: [u8; 32] = hex::decode(seed.trim())
            .map_err(|e| format!("the receipt key seed is not hex: {e}"))?
            .try_into()
            .map_err(|_| "the receipt key seed must be 32 bytes".to_string())?;
        let key = ed25519_dalek::SigningKey::from_bytes(&bytes);
        let key_id = key_id(&key.verifying_key().to_bytes());
        Ok(SigningKey { key, key_id })
    }

    /// Its id.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The public half, as published.
    pub fn public(&self, created_at: Timestamp, active: bool) -> ReceiptKey {
        ReceiptKey {
            key_id: self.key_id.clone(),
            algorithm: "ed25519".into(),
            public_key: hex::encode(self.key.verifying_key().to_bytes()),
            created_at,
            active,
        }
    }
}

/// A key's id: the first 16 hex digits of the SHA-256 of the public key.
fn key_id(public: &[u8; 32]) -> String {
    hex::encode(Sha256::digest(public))[..16].to_string()
}

/// The bytes signed: the canonical JSON of every field but the signature.
fn signed_bytes(r: &Receipt) -> Vec<u8> {
    let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.remove("signature");
    }
    canonical_json(&v).into_bytes()
}

/// The receipt of a final decision (`None` while it is pending), valid for `ttl_ms` after it became final.
pub fn issue(key: &SigningKey, d: &Decision, ttl_ms: i64) -> Option<Receipt> {
    let f = d.final_verdict.as_ref()?;
    let action = f.action.as_ref().unwrap_or(&d.action);
    let mut r = Receipt {
        v: RECEIPT_VERSION,
        decision_id: d.id.clone(),
        agent: d.agent.clone(),
        action: action.name.clone(),
        args_digest: args_digest(&action.args),
        verdict: f.verdict.as_str().to_string(),
        policy_hash: d.policy_hash.clone(),
        issued_at: f.decided_at,
        expires_at: f.decided_at.plus_millis(ttl_ms),
        key_id: key.key_id.clone(),
        signature: String::new(),
    };
    r.signature = hex::encode(key.key.sign(&signed_bytes(&r)).to_bytes());
    Some(r)
}

/// Check a receipt's signature against the published keys, its expiry at
/// `now`, and, when given, that `args` are the arguments it names.
pub fn verify(r: &Receipt, keys: &[ReceiptKey], now: Timestamp, args: Option<&Value>) -> Result<(), ReceiptError> {
    if r.v != RECEIPT_VERSION {
        return Err(ReceiptError::Malformed(format!("version {} (this code reads {RECEIPT_VERSION})", r.v)));
    }
    let key = keys.iter().find(|k| k.key_id == r.key_id).ok_or_else(|| ReceiptError::UnknownKey(r.key_id.clone()))?;
    let public: [u8; 32] = hex::decode(&key.public_key)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| ReceiptError::Malformed(format!("key {} is not a 32-byte hex key", key.key_id)))?;
    let public = ed25519_dalek::VerifyingKey::from_bytes(&public)
        .map_err(|_| ReceiptError::Malformed(format!("key {} is not an Ed25519 key", key.key_id)))?;
    let signature: [u8; 64] = hex::decode(&r.signature)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| ReceiptError::Malformed("the signature is not 64 bytes of hex".into()))?;
    public.verify(&signed_bytes(r), &Signature::from_bytes(&signature)).map_err(|_| ReceiptError::BadSignature)?;
    if now > r.expires_at {
        return Err(ReceiptError::Expired(r.expires_at));
    }
    if let Some(args) = args {
        let got = args_digest(args);
        if got != r.args_digest {
            return Err(ReceiptError::ArgsMismatch { expected: r.args_digest.clone(), got });
        }
    }
    Ok(())
}

/// [`verify`], and that the verdict allows the call: what a gateway checks before forwarding.
pub fn authorises(r: &Receipt, keys: &[ReceiptKey], now: Timestamp, args: &Value) -> Result<(), ReceiptError> {
    verify(r, keys, now, Some(args))?;
    if r.verdict != "allow" {
        return Err(ReceiptError::NotAllowed(r.verdict.clone()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arbiter_core::{Action, FinalSource, FinalVerdict, Verdict};
    use serde_json::json;

    fn decision() -> Decision {
        let mut d: Decision = serde_json::from_value(json!({
            "id": "01a2", "agent": "triage", "agent_key_id": "k", "action": {"name": "write_file", "args": {"path": "/srv/a", "content": "x"}},
            "verdict": "escalate", "status": "final", "triggers": [], "explanation": "", "policy_hash": "aac0", "context": {},
            "received_at": "2026-11-26T10:00:00.000Z", "event_time": "2026-11-26T10:00:00.000Z", "eval_micros": 1
        }))
        .unwrap();
        d.final_verdict = Some(FinalVerdict {
            verdict: Verdict::Allow,
            source: FinalSource::Review,
            action: Some(
                serde_json::from_value::<Action>(
                    json!({"name": "write_file", "args": {"path": "/srv/a", "content": "y"}}),
                )
                .unwrap(),
            ),
            decided_by: vec!["ana".into()],
            rationale: "ok".into(),
            decided_at: Timestamp(1_800_000_000_000),
            receipt: None,
        });
        d
    }

    #[test]
    fn a_receipt_binds_the_modified_call_and_nothing_else() {
        let key = SigningKey::from_seed_hex(&"07".repeat(32)).unwrap();
        let keys = [key.public(Timestamp(0), true)];
        let d = decision();
        let r = issue(&key, &d, 600_000).unwrap();
        assert_eq!(r, issue(&key, &d, 600_000).unwrap(), "deterministic: served twice, the same receipt");
        let now = Timestamp(1_800_000_000_000 + 1_000);
        // the reviewer's modified arguments, in any key order
        authorises(&r, &keys, now, &json!({"content": "y", "path": "/srv/a"})).unwrap();
        assert!(matches!(
            authorises(&r, &keys, now, &json!({"path": "/srv/a", "content": "x"})),
            Err(ReceiptError::ArgsMismatch { .. })
        ));
        assert_eq!(verify(&r, &keys, Timestamp(1_800_000_600_001), None), Err(ReceiptError::Expired(r.expires_at)));
        // any altered field breaks the signature
        for alter in [
            |r: &mut Receipt| r.verdict = "deny".into(),
            |r: &mut Receipt| r.expires_at = Timestamp(i64::MAX),
            |r: &mut Receipt| r.args_digest = args_digest(&json!({"path": "/etc/passwd"})),
            |r: &mut Receipt| r.decision_id = "other".into(),
        ] {
            let mut forged = r.clone();
            alter(&mut forged);
            assert_eq!(verify(&forged, &keys, now, None), Err(ReceiptError::BadSignature));
        }
        // another key's signature, or an unpublished key, is refused
        let other = SigningKey::from_seed_hex(&"08".repeat(32)).unwrap();
        let foreign = issue(&other, &d, 600_000).unwrap();
        assert_eq!(verify(&foreign, &keys, now, None), Err(ReceiptError::UnknownKey(other.key_id().to_string())));
        let mut swapped = foreign.clone();
        swapped.key_id = key.key_id().to_string();
        assert_eq!(verify(&swapped, &keys, now, None), Err(ReceiptError::BadSignature));
        // a deny receipt verifies but does not authorise
        let mut denied = decision();
        denied.final_verdict.as_mut().unwrap().verdict = Verdict::Deny;
        let r = issue(&key, &denied, 600_000).unwrap();
        verify(&r, &keys, now, None).unwrap();
        assert_eq!(
            authorises(&r, &keys, now, &json!({"path": "/srv/a", "content": "y"})),
            Err(ReceiptError::NotAllowed("deny".into()))
        );
        assert!(
            issue(
                &key,
                &{
                    let mut p = decision();
                    p.final_verdict = None;
                    p
                },
                1
            )
            .is_none(),
            "no receipt while pending"
        );
    }
}
