//! Verifying requests from Slack
//! (<https://api.slack.com/authentication/verifying-requests-from-slack>):
//! `X-Slack-Signature: v0=hex(HMAC-SHA256(signing secret, "v0:" + X-Slack-Request-Timestamp + ":" + raw body))`,
//! and a timestamp within five minutes of now (a replayed request is refused).

use hmac::{KeyInit, Mac};

/// How far a request's timestamp may be from now, either way.
pub const MAX_AGE_SECS: i64 = 5 * 60;

/// Why a request is not from Slack.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// A header is missing or unreadable.
    #[error("the request has no usable {0} header")]
    Missing(&'static str),
    /// The timestamp is too far from now.
    #[error("the request's timestamp is {0} s from now (at most 300 s is accepted): an old or replayed request")]
    Stale(i64),
    /// The signature does not match.
    #[error("the request's signature does not match the signing secret")]
    Mismatch,
}

/// The `v0=...` signature of `body` sent at `timestamp`.
pub fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

/// Check a request: `timestamp` and `signature` are the headers' values
/// (`None` when absent), `body` the raw body, `now` Unix seconds.
pub fn verify(
    secret: &str,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), SignatureError> {
    let ts = timestamp.ok_or(SignatureError::Missing("X-Slack-Request-Timestamp"))?;
    let sig = signature.ok_or(SignatureError::Missing("X-Slack-Signature"))?;
    let at: i64 = ts.trim().parse().map_err(|_| SignatureError::Missing("X-Slack-Request-Timestamp"))?;
    if (now - at).abs() > MAX_AGE_SECS {
        return Err(SignatureError::Stale(now - at));
    }
    let expected = sign(secret, ts.trim(), body);
    let same: bool = subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), sig.trim().as_bytes()).into();
    if same { Ok(()) } else { Err(SignatureError::Mismatch) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_request_verifies_and_nothing_else_does() {
        let body = b"payload=%7B%22type%22%3A%22block_actions%22%7D";
        let sig = sign("secret", "1800000000", body);
        assert!(sig.starts_with("v0=") && sig.len() == 67);
        assert_eq!(verify("secret", Some("1800000000"), Some(&sig), body, 1_800_000_100), Ok(()));
        assert_eq!(verify("other", Some("1800000000"), Some(&sig), body, 1_800_000_100), Err(SignatureError::Mismatch));
        assert_eq!(
            verify("secret", Some("1800000000"), Some(&sig), b"payload=tampered", 1_800_000_100),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify("secret", Some("1800000000"), Some(&sig), body, 1_800_000_301),
            Err(SignatureError::Stale(301))
        );
        assert_eq!(
            verify("secret", None, Some(&sig), body, 0),
            Err(SignatureError::Missing("X-Slack-Request-Timestamp"))
        );
        assert_eq!(
            verify("secret", Some("1800000000"), None, body, 0),
            Err(SignatureError::Missing("X-Slack-Signature"))
        );
    }
}
