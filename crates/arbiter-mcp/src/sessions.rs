//! Who may use an MCP session over HTTP: each session belongs to the key that
//! opened it. `Mcp-Session-Id` is not a secret (reviewers read it in a
//! decision's `context.mcp.session`), so every request on a session must carry
//! the same key as the `initialize` that opened it, or it is refused before
//! the MCP layer sees it: nobody else can cancel its calls, read its stream or
//! end it. A bearer key that is malformed, unknown or revoked opens nothing.

use arbiter_client::Client;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a key Arbiter accepted is trusted for new sessions before it is checked again.
const KEY_CHECK_TTL: Duration = Duration::from_secs(60);

/// The sessions of one HTTP gateway and the key each belongs to.
pub struct SessionOwners {
    arbiter: Client,
    /// The MCP layer's sessions: an owner whose session ended there (the
    /// client left, the session expired) is forgotten when the next one opens.
    live: Arc<LocalSessionManager>,
    /// Session id → digest of the key that opened it (the digest of "" for none: the gateway's own key).
    owners: Mutex<HashMap<String, [u8; 32]>>,
    /// Key digests Arbiter accepted, and when.
    checked: Mutex<HashMap<[u8; 32], Instant>>,
}

impl SessionOwners {
    /// Sessions checked against `arbiter` (the gateway's client; keys are tried with `as_key`).
    pub fn new(arbiter: Client, live: Arc<LocalSessionManager>) -> Arc<SessionOwners> {
        Arc::new(SessionOwners { arbiter, live, owners: Mutex::default(), checked: Mutex::default() })
    }

    /// Record that session `id` belongs to `digest`, forgetting sessions that ended.
    async fn opened(&self, id: &str, digest: [u8; 32]) {
        let live: std::collections::HashSet<String> =
            self.live.sessions.read().await.keys().map(|k| k.to_string()).collect();
        let mut owners = self.owners.lock().unwrap_or_else(|e| e.into_inner());
        owners.retain(|s, _| live.contains(s));
        owners.insert(id.to_string(), digest);
    }

    /// Whether Arbiter accepts `key` (cached for [`KEY_CHECK_TTL`]).
    async fn accepts(&self, key: &str, digest: [u8; 32]) -> Result<(), Refusal> {
        let fresh = self
            .checked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&digest)
            .is_some_and(|t| t.elapsed() < KEY_CHECK_TTL);
        if fresh {
            return Ok(());
        }
        match self.arbiter.as_key(key).always_denied(&[]).await {
            Ok(_) => {
                let mut checked = self.checked.lock().unwrap_or_else(|e| e.into_inner());
                checked.retain(|_, t| t.elapsed() < KEY_CHECK_TTL);
                checked.insert(digest, Instant::now());
                Ok(())
            }
            Err(e) => match e.problem() {
                Some(p) if p.status == 401 || p.status == 403 => {
                    Err((StatusCode::UNAUTHORIZED, format!("Arbiter refused the key: {}", p.detail)))
                }
                _ => Err((
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("cannot check the key with Arbiter now: {e}; try again shortly"),
                )),
            },
        }
    }
}

/// Why a request is refused before the MCP layer: its status and message.
type Refusal = (StatusCode, String);

/// The bearer key of a request: `Ok(None)` without one, `Err` for a header
/// that is not a well-formed Arbiter key.
fn bearer(headers: &HeaderMap) -> Result<Option<&str>, Refusal> {
    let Some(v) = headers.get(header::AUTHORIZATION) else { return Ok(None) };
    let malformed = || {
        (StatusCode::UNAUTHORIZED, "malformed API key: expected `Authorization: Bearer arb_<id>_<secret>`".to_string())
    };
    let v = v.to_str().map_err(|_| malformed())?;
    let key = v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")).map(str::trim).ok_or_else(malformed)?;
    let well_formed = key.len() <= 256
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        && key
            .strip_prefix("arb_")
            .and_then(|rest| rest.split_once('_'))
            .is_some_and(|(id, secret)| !id.is_empty() && !secret.is_empty());
    if !well_formed {
        return Err(malformed());
    }
    Ok(Some(key))
}

fn refuse(status: StatusCode, why: &str) -> Response {
    let body = serde_json::json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32001, "message": why}});
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer realm=\"arbiter\""));
    }
    r
}

/// The middleware in front of `/mcp`.
pub async fn guard(State(sessions): State<Arc<SessionOwners>>, req: Request, next: Next) -> Response {
    let key = match bearer(req.headers()) {
        Ok(k) => k.map(str::to_string),
        Err((status, why)) => return refuse(status, &why),
    };
    let digest: [u8; 32] = Sha256::digest(key.as_deref().unwrap_or("").as_bytes()).into();
    let session = req.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()).map(str::to_string);
    match session {
        Some(id) => {
            let owner = sessions.owners.lock().unwrap_or_else(|e| e.into_inner()).get(&id).copied();
            // an unknown session goes on to the MCP layer, which answers 404 as the transport says
            if owner.is_some_and(|o| o != digest) {
                tracing::warn!(session = %id, "a request on an MCP session with another key was refused");
                return refuse(
                    StatusCode::FORBIDDEN,
                    "this MCP session belongs to another key: send the key that opened it",
                );
            }
            let ending = req.method() == axum::http::Method::DELETE;
            let response = next.run(req).await;
            if ending && response.status().is_success() {
                sessions.owners.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
            }
            response
        }
        None => {
            if let Some(k) = &key
                && let Err((status, why)) = sessions.accepts(k, digest).await
            {
                return refuse(status, &why);
            }
            let response = next.run(req).await;
            if let Some(id) = response.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()) {
                sessions.opened(id, digest).await;
            }
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, v.parse().unwrap());
        h
    }

    #[test]
    fn only_well_formed_keys_pass() {
        assert_eq!(bearer(&HeaderMap::new()).unwrap(), None);
        assert_eq!(bearer(&auth("Bearer arb_abc123_s3cr3t")).unwrap(), Some("arb_abc123_s3cr3t"));
        for bad in
            ["Bearer nope", "Basic dXNlcg==", "Bearer arb_", "Bearer arb_id", "Bearer arb_id_", "Bearer arb_a b_c"]
        {
            assert_eq!(bearer(&auth(bad)).unwrap_err().0, StatusCode::UNAUTHORIZED, "{bad}");
        }
    }
}
