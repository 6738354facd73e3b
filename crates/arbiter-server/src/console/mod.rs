//! The reviewer console: server-rendered HTML pages at `/`, plain forms, a
//! little hand-written JavaScript (queue refresh, SLA countdown, keyboard
//! navigation). Sign-in exchanges an API key for a signed session cookie
//! (HttpOnly, SameSite=Strict); every form carries a CSRF token bound to the
//! session. Everything an agent sent is escaped wherever it is shown; roles
//! are checked on the server for every page and form.

mod pages;

use crate::AppState;
use crate::error::ApiError;
use arbiter_core::{Principal, Role};
use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use hmac::{KeyInit, Mac};
use std::sync::Arc;

/// The session cookie's name.
pub const COOKIE: &str = "arbiter_session";
const SESSION_MS: i64 = 12 * 3_600_000;

/// The console's routes.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/queue") }))
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/queue", get(pages::queue))
        .route("/cases/{id}", get(pages::case))
        .route("/cases/{id}/act", post(pages::case_act))
        .route("/reviews/{id}", get(pages::review))
        .route("/reviews/{id}/act", post(pages::review_act))
        .route("/dashboard", get(pages::dashboard))
        .route("/policy", get(pages::policy))
        .route("/policy/backtest", post(pages::policy_backtest))
        .route("/static/console.css", get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS) }))
        .route("/static/console.js", get(|| async { ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], JS) }))
}

const CSS: &str = include_str!("console.css");
const JS: &str = include_str!("console.js");

fn mac(secret: &[u8], parts: &[&[u8]]) -> String {
    let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("any key length");
    for p in parts {
        m.update(p);
        m.update(b"\x1f");
    }
    hex::encode(m.finalize().into_bytes())
}

/// The cookie value for stored session `session_id`: the id and its MAC.
pub fn session_value(secret: &[u8], session_id: &str) -> String {
    format!("{session_id}.{}", mac(secret, &[b"session", session_id.as_bytes()]))
}

/// The session id in a cookie value whose MAC verifies (the session itself
/// is then looked up: signing out ends it server-side).
pub fn check_session<'a>(secret: &[u8], value: &'a str) -> Option<&'a str> {
    let (id, sig) = value.split_once('.')?;
    let expected = mac(secret, &[b"session", id.as_bytes()]);
    let same: bool = subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), sig.as_bytes()).into();
    (same && !id.is_empty()).then_some(id)
}

/// Start a stored session for `key_id`; returns the `Set-Cookie` value.
pub async fn start_session(state: &AppState, key_id: &str) -> Result<String, ApiError> {
    let mut raw = [0u8; 24];
    getrandom::fill(&mut raw).map_err(|e| ApiError::Internal(format!("no randomness available: {e}")))?;
    let now = state.clock.now();
    let session = arbiter_store::ConsoleSession {
        id: hex::encode(raw),
        key_id: key_id.to_string(),
        created_at: now,
        expires_at: now.plus_millis(SESSION_MS),
        revoked_at: None,
    };
    state.store.create_session(session.clone()).await?;
    let secret = state.console_secret().await?;
    let secure =
        if state.config.public_url.as_deref().is_some_and(|u| u.starts_with("https://")) { "; Secure" } else { "" };
    Ok(format!(
        "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        session_value(&secret, &session.id),
        SESSION_MS / 1000
    ))
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_cookie(state: &AppState) -> String {
    let secure =
        if state.config.public_url.as_deref().is_some_and(|u| u.starts_with("https://")) { "; Secure" } else { "" };
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}")
}

/// The CSRF token of a session (bound to the cookie value).
pub fn csrf_token(secret: &[u8], session: &str) -> String {
    mac(secret, &[b"csrf", session.as_bytes()])[..32].to_string()
}

fn cookie(parts: &Parts) -> Option<String> {
    parts.headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(
        |c| {
            let (k, v) = c.trim().split_once('=')?;
            (k == COOKIE).then(|| v.to_string())
        },
    )
}

/// The signed-in reviewer of a console request.
pub struct Viewer {
    /// Who.
    pub who: Principal,
    /// The CSRF token for forms on this page.
    pub csrf: String,
    /// The stored session.
    pub session_id: String,
}

/// Where a request without a valid session goes.
pub enum ConsoleRejection {
    /// To the sign-in page, coming back afterwards.
    Login(String),
    /// A real error.
    Error(ApiError),
}

impl IntoResponse for ConsoleRejection {
    fn into_response(self) -> Response {
        match self {
            ConsoleRejection::Login(back) => Redirect::to(&format!("/login?next={}", urlencode(&back))).into_response(),
            ConsoleRejection::Error(e) => error_page(e),
        }
    }
}

impl FromRequestParts<Arc<AppState>> for Viewer {
    type Rejection = ConsoleRejection;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let back = parts.uri.path_and_query().map_or("/queue".to_string(), |p| p.to_string());
        let Some(value) = cookie(parts) else { return Err(ConsoleRejection::Login(back)) };
        let secret = state.console_secret().await.map_err(ConsoleRejection::Error)?;
        let Some(sid) = check_session(&secret, &value) else {
            return Err(ConsoleRejection::Login(back));
        };
        let now = state.clock.now();
        let session = state.store.session(sid).await.map_err(|e| ConsoleRejection::Error(e.into()))?;
        let Some(session) = session.filter(|s| s.revoked_at.is_none() && s.expires_at > now) else {
            return Err(ConsoleRejection::Login(back));
        };
        let who = match state.keys.principal_by_id(state.store.as_ref(), &session.key_id, now).await {
            Ok(p) => p,
            Err(_) => return Err(ConsoleRejection::Login(back)),
        };
        if who.role == Role::Agent {
            return Err(ConsoleRejection::Error(ApiError::Forbidden(
                "agent keys cannot use the reviewer console".into(),
            )));
        }
        Ok(Viewer { csrf: csrf_token(&secret, &value), who, session_id: session.id })
    }
}

impl Viewer {
    /// Refuse a form whose CSRF token does not belong to this session.
    pub fn check_csrf(&self, token: &str) -> Result<(), ApiError> {
        let ok: bool = subtle::ConstantTimeEq::ct_eq(self.csrf.as_bytes(), token.as_bytes()).into();
        if ok {
            Ok(())
        } else {
            Err(ApiError::Forbidden(
                "the form expired or did not come from this console; reload the page and try again".into(),
            ))
        }
    }
}

/// Escape text for HTML (element content and quoted attributes).
pub fn esc(s: &str) -> String {
    arbiter_core::chart::escape(s)
}

/// Percent-encode a query value.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A whole page around `body`.
pub fn page(title: &str, viewer: Option<&Viewer>, body: &str) -> Response {
    let nav = match viewer {
        Some(v) => format!(
            r#"<nav><a href="/queue" accesskey="q">Queue</a><a href="/dashboard" accesskey="d">Dashboard</a><a href="/policy" accesskey="p">Policy</a>
<span class="who">{} <small>{}</small></span><form method="post" action="/logout" class="inline"><input type="hidden" name="csrf" value="{}"><button type="submit" class="link">Sign out</button></form></nav>"#,
            esc(&v.who.name),
            esc(&v.who.tags.iter().cloned().collect::<Vec<_>>().join(", ")),
            esc(&v.csrf)
        ),
        None => String::new(),
    };
    let html = format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{} · Arbiter</title><link rel="stylesheet" href="/static/console.css"><script src="/static/console.js" defer></script></head>
<body><header><a class="brand" href="/queue">Arbiter</a>{nav}</header><main>{body}</main></body></html>"#,
        esc(title)
    );
    let mut r = (StatusCode::OK, html).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    secure_headers(h);
    r
}

/// Headers every console response carries: no inline script, no framing, no sniffing.
pub fn secure_headers(h: &mut axum::http::HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// An error as a page.
pub fn error_page(e: ApiError) -> Response {
    let status = e.status();
    let body = format!(
        r#"<h1>{}</h1><p class="error">{}</p><p><a href="/queue">Back to the queue</a></p>"#,
        status.as_u16(),
        esc(&e.detail())
    );
    let mut r = page("Error", None, &body);
    *r.status_mut() = status;
    r
}
