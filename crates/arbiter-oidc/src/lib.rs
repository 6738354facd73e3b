//! The OpenID Connect relying party of Arbiter's console.
//!
//! [`Provider`] discovers an issuer (`/.well-known/openid-configuration`),
//! starts the authorization code flow with PKCE (S256), `state` and `nonce`
//! ([`Provider::start`]), exchanges the code at the token endpoint and checks
//! the ID token ([`Provider::finish`]): its signature against the provider's
//! published keys (JWKS, fetched again when a token names a key not seen
//! yet, at most every [`KEYS_REFETCH_FLOOR`]), its issuer, audience,
//! authorized party, nonce, expiry and issue time, with a bounded clock skew.
//! Symmetric algorithms (HS*) and `none` are refused: the only keys trusted
//! are the provider's public ones.
//!
//! The crate knows nothing of Arbiter's roles: it returns the token's claims
//! and the server maps them.

use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::JwkSet};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::RwLock;

/// The shortest time between two JWKS fetches caused by unknown key ids (a
/// token naming a random `kid` must not make the server hammer the provider).
pub const KEYS_REFETCH_FLOOR: Duration = Duration::from_secs(10);

/// What went wrong, in words a person setting up single sign-on can act on.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// The provider could not be reached, or answered with an error.
    #[error("the identity provider: {0}")]
    Provider(String),
    /// The discovery document does not describe the configured issuer.
    #[error("the identity provider's discovery document is unusable: {0}")]
    Discovery(String),
    /// The ID token failed a check; it is not trusted.
    #[error("the ID token was refused: {0}")]
    Token(String),
}

type Result<T> = std::result::Result<T, OidcError>;

/// How Arbiter is registered with the provider.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The issuer URL, exactly as the provider names itself (`iss`).
    pub issuer: String,
    /// The client id Arbiter was registered with.
    pub client_id: String,
    /// The client secret (a confidential client); `None` for a public client (PKCE only).
    pub client_secret: Option<String>,
    /// Where the provider sends the browser back: `<public URL>/sso/callback`.
    pub redirect_uri: String,
    /// Scopes asked for; `openid` is always added.
    pub scopes: Vec<String>,
    /// How far the provider's clock may be from ours when checking `exp` and `iat`.
    pub max_skew: Duration,
}

/// The parts of the provider's discovery document the flow uses.
#[derive(Debug, Clone, Deserialize)]
pub struct Metadata {
    /// The issuer; must equal the configured one exactly.
    pub issuer: String,
    /// Where the browser is sent to sign in.
    pub authorization_endpoint: String,
    /// Where the code is exchanged for tokens.
    pub token_endpoint: String,
    /// The provider's public keys.
    pub jwks_uri: String,
    /// RP-initiated sign-out, when the provider offers it.
    #[serde(default)]
    pub end_session_endpoint: Option<String>,
}

/// A sign-in under way: the URL to send the browser to and the values the
/// callback must be checked against (keep them where only this browser's
/// callback can find them).
#[derive(Debug, Clone)]
pub struct Start {
    /// The provider's authorization URL with every parameter.
    pub url: String,
    /// The `state` the callback must carry.
    pub state: String,
    /// The `nonce` the ID token must carry.
    pub nonce: String,
    /// The PKCE code verifier for the token request.
    pub verifier: String,
}

/// A checked ID token.
#[derive(Debug, Clone)]
pub struct Verified {
    /// Its claims.
    pub claims: Map<String, Value>,
    /// The token itself (the `id_token_hint` of a later sign-out).
    pub id_token: String,
}

struct Keys {
    set: JwkSet,
    fetched: Option<Instant>,
}

/// One OpenID provider, discovered on first use (a server starts even when
/// the provider is down; sign-in says why it cannot proceed) and cached.
pub struct Provider {
    settings: Settings,
    http: reqwest::Client,
    metadata: RwLock<Option<Arc<Metadata>>>,
    keys: RwLock<Keys>,
    refetch_floor: Duration,
}

/// `n` random bytes, base64url without padding.
fn random_token(n: usize) -> Result<String> {
    let mut raw = vec![0u8; n];
    getrandom::fill(&mut raw).map_err(|e| OidcError::Provider(format!("no randomness available: {e}")))?;
    Ok(b64(&raw))
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The PKCE S256 challenge of `verifier` (RFC 7636 §4.2).
pub fn pkce_challenge(verifier: &str) -> String {
    use sha2::Digest;
    b64(&sha2::Sha256::digest(verifier.as_bytes()))
}

fn query(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (k, v) in pairs {
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(&percent(v));
    }
    out
}

fn percent(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn with_query(endpoint: &str, q: &str) -> String {
    let sep = if endpoint.contains('?') { '&' } else { '?' };
    format!("{endpoint}{sep}{q}")
}

impl Provider {
    /// A provider for `settings`, reached with `http` (nothing is fetched yet).
    pub fn new(settings: Settings, http: reqwest::Client) -> Provider {
        Provider {
            settings,
            http,
            metadata: RwLock::new(None),
            keys: RwLock::new(Keys { set: JwkSet { keys: vec![] }, fetched: None }),
            refetch_floor: KEYS_REFETCH_FLOOR,
        }
    }

    /// The shortest time between two fetches of the keys caused by an
    /// unknown key id ([`KEYS_REFETCH_FLOOR`] unless set).
    pub fn with_refetch_floor(mut self, floor: Duration) -> Provider {
        self.refetch_floor = floor;
        self
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str, what: &str) -> Result<T> {
        let r = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| OidcError::Provider(format!("cannot fetch {what} from {url}: {e}")))?;
        if !r.status().is_success() {
            return Err(OidcError::Provider(format!("{what} at {url} answered {}", r.status())));
        }
        r.json()
            .await
            .map_err(|e| OidcError::Provider(format!("{what} at {url} is not what OpenID Connect describes: {e}")))
    }

    /// The discovery document, fetched once and checked: its issuer must be
    /// the configured one, character for character (OpenID Connect Discovery §4.3).
    pub async fn metadata(&self) -> Result<Arc<Metadata>> {
        if let Some(m) = self.metadata.read().await.clone() {
            return Ok(m);
        }
        let url = format!("{}/.well-known/openid-configuration", self.settings.issuer.trim_end_matches('/'));
        let m: Metadata = self.get_json(&url, "the discovery document").await?;
        if m.issuer != self.settings.issuer {
            return Err(OidcError::Discovery(format!(
                "it names the issuer `{}`, but Arbiter is configured with `{}`; set the issuer to exactly the provider's",
                m.issuer, self.settings.issuer
            )));
        }
        let m = Arc::new(m);
        *self.metadata.write().await = Some(m.clone());
        Ok(m)
    }

    /// Start a sign-in: fresh `state`, `nonce` and PKCE verifier, and the
    /// authorization URL that carries them.
    pub async fn start(&self) -> Result<Start> {
        let meta = self.metadata().await?;
        let (state, nonce, verifier) = (random_token(24)?, random_token(24)?, random_token(32)?);
        let mut scopes = vec!["openid".to_string()];
        scopes.extend(self.settings.scopes.iter().filter(|s| s.as_str() != "openid").cloned());
        let scope = scopes.join(" ");
        let challenge = pkce_challenge(&verifier);
        let q = query(&[
            ("response_type", "code"),
            ("client_id", &self.settings.client_id),
            ("redirect_uri", &self.settings.redirect_uri),
            ("scope", &scope),
            ("state", &state),
            ("nonce", &nonce),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ]);
        Ok(Start { url: with_query(&meta.authorization_endpoint, &q), state, nonce, verifier })
    }

    /// Finish a sign-in: exchange `code` (with the PKCE `verifier`) for
    /// tokens and check the ID token against `nonce` at `now` (Unix seconds).
    pub async fn finish(&self, code: &str, verifier: &str, nonce: &str, now: i64) -> Result<Verified> {
        let meta = self.metadata().await?;
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", self.settings.redirect_uri.as_str()),
            ("code_verifier", verifier),
        ];
        let mut req = self.http.post(&meta.token_endpoint);
        match &self.settings.client_secret {
            // client_secret_basic (RFC 6749 §2.3.1): both parts form-encoded first
            Some(secret) => req = req.basic_auth(percent(&self.settings.client_id), Some(percent(secret))),
            None => form.push(("client_id", self.settings.client_id.as_str())),
        }
        let r = req.form(&form).send().await.map_err(|e| {
            OidcError::Provider(format!("cannot reach the token endpoint {}: {e}", meta.token_endpoint))
        })?;
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let err = body["error"].as_str().unwrap_or("no error code");
            let desc = body["error_description"].as_str().unwrap_or("");
            return Err(OidcError::Provider(format!("the token endpoint refused the code ({status}): {err} {desc}")));
        }
        let Some(id_token) = body["id_token"].as_str() else {
            return Err(OidcError::Provider(
                "the token endpoint sent no id_token (is `openid` among the scopes?)".into(),
            ));
        };
        let claims = self.verify_id_token(id_token, nonce, now).await?;
        Ok(Verified { claims, id_token: id_token.to_string() })
    }

    async fn fetch_keys(&self, force: bool) -> Result<()> {
        let meta = self.metadata().await?;
        let mut keys = self.keys.write().await;
        if let Some(at) = keys.fetched
            && (!force || at.elapsed() < self.refetch_floor)
        {
            return Ok(()); // fetched already, or too recently to fetch again
        }
        let set: JwkSet = self.get_json(&meta.jwks_uri, "the provider's keys (JWKS)").await?;
        *keys = Keys { set, fetched: Some(Instant::now()) };
        Ok(())
    }

    async fn key_for(&self, kid: Option<&str>) -> Result<DecodingKey> {
        for refetch in [false, true] {
            self.fetch_keys(refetch).await?;
            let keys = self.keys.read().await;
            let found = match kid {
                Some(kid) => keys.set.find(kid),
                // no kid: usable only when the provider publishes exactly one key
                None if keys.set.keys.len() == 1 => keys.set.keys.first(),
                None => {
                    return Err(OidcError::Token(
                        "the token names no key (`kid`) and the provider publishes several".into(),
                    ));
                }
            };
            if let Some(jwk) = found {
                return DecodingKey::from_jwk(jwk).map_err(|e| {
                    OidcError::Token(format!("the provider's key `{}` is unusable: {e}", kid.unwrap_or("?")))
                });
            }
        }
        Err(OidcError::Token(format!(
            "it was signed with key `{}`, which the provider does not publish",
            kid.unwrap_or("?")
        )))
    }

    /// Check an ID token: signature by a published key with an asymmetric
    /// algorithm, `iss`, `aud` (and `azp` when there are several audiences),
    /// `nonce`, `exp` and `iat` with at most `max_skew` of clock difference.
    pub async fn verify_id_token(&self, token: &str, nonce: &str, now: i64) -> Result<Map<String, Value>> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| OidcError::Token(format!("it is not a JWT: {e}")))?;
        if !ALLOWED.contains(&header.alg) {
            return Err(OidcError::Token(format!(
                "it is signed with {:?}; only the provider's public-key algorithms (RS*, PS*, ES*, EdDSA) are trusted",
                header.alg
            )));
        }
        let key = self.key_for(header.kid.as_deref()).await?;
        let mut v = Validation::new(header.alg);
        // the time, issuer and audience checks are ours (below), with our clock and clearer errors
        v.validate_exp = false;
        v.validate_nbf = false;
        v.validate_aud = false;
        v.required_spec_claims.clear();
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &v)
            .map_err(|e| OidcError::Token(format!("its signature does not verify: {e}")))?;
        check_claims(&data.claims, &self.settings, nonce, now)?;
        Ok(data.claims)
    }

    /// Where to send the browser to sign out of the provider too (RP-initiated
    /// logout), when the provider offers it.
    pub async fn logout_url(&self, id_token_hint: Option<&str>, post_logout_redirect_uri: &str) -> Option<String> {
        let meta = self.metadata().await.ok()?;
        let end = meta.end_session_endpoint.as_deref()?;
        let mut pairs = vec![
            ("client_id", self.settings.client_id.as_str()),
            ("post_logout_redirect_uri", post_logout_redirect_uri),
        ];
        if let Some(hint) = id_token_hint {
            pairs.push(("id_token_hint", hint));
        }
        Some(with_query(end, &query(&pairs)))
    }
}

const ALLOWED: [Algorithm; 8] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::EdDSA,
];

/// The checks of an ID token's claims (OpenID Connect Core §3.1.3.7) once
/// its signature verified.
pub fn check_claims(claims: &Map<String, Value>, settings: &Settings, nonce: &str, now: i64) -> Result<()> {
    let refuse = |why: String| Err(OidcError::Token(why));
    let iss = claims.get("iss").and_then(Value::as_str).unwrap_or("");
    if iss != settings.issuer {
        return refuse(format!("it was issued by `{iss}`, not by the configured issuer `{}`", settings.issuer));
    }
    let auds: Vec<&str> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    if !auds.contains(&settings.client_id.as_str()) {
        return refuse(format!("it is meant for {auds:?}, not for this client `{}`", settings.client_id));
    }
    if let Some(azp) = claims.get("azp").and_then(Value::as_str)
        && azp != settings.client_id
    {
        return refuse(format!("it was requested by client `{azp}`, not by `{}`", settings.client_id));
    }
    if auds.len() > 1 && !claims.contains_key("azp") {
        return refuse("it has several audiences and no authorized party (`azp`)".into());
    }
    let skew = settings.max_skew.as_secs() as i64;
    let Some(exp) = claims.get("exp").and_then(Value::as_i64) else { return refuse("it has no expiry (`exp`)".into()) };
    if now > exp + skew {
        return refuse(format!("it expired {} s ago", now - exp));
    }
    let Some(iat) = claims.get("iat").and_then(Value::as_i64) else {
        return refuse("it has no issue time (`iat`)".into());
    };
    if iat > now + skew {
        return refuse(format!("it was issued {} s in the future (clocks apart by more than {skew} s?)", iat - now));
    }
    let got = claims.get("nonce").and_then(Value::as_str).unwrap_or("");
    let same: bool =
        got.len() == nonce.len() && got.bytes().zip(nonce.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
    if !same || nonce.is_empty() {
        return refuse("its nonce is not the one this sign-in sent (a replayed or injected token)".into());
    }
    if claims.get("sub").and_then(Value::as_str).is_none_or(str::is_empty) {
        return refuse("it names no subject (`sub`)".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests;
