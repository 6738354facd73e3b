//! Sign-in, sessions and CSRF. A session is stored (so signing out ends it
//! at once); the cookie carries its id and a MAC under the console secret;
//! the CSRF token of a page is a MAC of the cookie value.

use super::forms::{Fields, field};
use super::layout::{QueryMap, error_page, failed, failed_because, flash, frame, urlencode};
use crate::AppState;
use crate::error::ApiError;
use crate::extract::Query;
use arbiter_core::{Principal, Role};
use axum::Form;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use hmac::{KeyInit, Mac};
use maud::{Markup, html};
use std::sync::Arc;

/// The session cookie's name.
pub const COOKIE: &str = "arbiter_session";
/// The cookie that remembers the project a server admin switched the console to.
pub const PROJECT_COOKIE: &str = "arbiter_project";
pub(super) fn mac(secret: &[u8], parts: &[&[u8]]) -> String {
    let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
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

/// The CSRF token of a session (bound to the cookie value).
pub fn csrf_token(secret: &[u8], session: &str) -> String {
    mac(secret, &[b"csrf", session.as_bytes()])[..32].to_string()
}

pub(super) fn secure_attribute(state: &AppState) -> &'static str {
    if state.config.public_url.as_deref().is_some_and(|u| u.starts_with("https://")) { "; Secure" } else { "" }
}

/// Start a stored session for `key_id`; returns the `Set-Cookie` value.
async fn start_session(state: &AppState, key_id: &str) -> Result<String, ApiError> {
    let mut raw = [0u8; 24];
    getrandom::fill(&mut raw).map_err(|e| ApiError::internal("no randomness available", e))?;
    let now = state.clock.now();
    let session = arbiter_store::ConsoleSession {
        id: hex::encode(raw),
        key_id: key_id.to_string(),
        created_at: now,
        expires_at: now.plus_millis(state.config.session_lifetime.as_millis() as i64),
        revoked_at: None,
        identity: None,
    };
    state.store.create_session(session.clone()).await?;
    let secret = state.console_secret().await?;
    Ok(session_cookie(state, &secret, &session.id))
}

/// The `Set-Cookie` value of stored session `id`.
pub(super) fn session_cookie(state: &AppState, secret: &[u8], id: &str) -> String {
    format!(
        "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        session_value(secret, id),
        state.config.session_lifetime.as_secs(),
        secure_attribute(state)
    )
}

/// The `Set-Cookie` value that removes the session cookie.
fn clear_cookie(state: &AppState) -> String {
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}", secure_attribute(state))
}

fn cookie(parts: &Parts) -> Option<String> {
    named_cookie(parts, COOKIE)
}

pub(super) fn named_cookie(parts: &Parts, name: &str) -> Option<String> {
    parts.headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(
        |c| {
            let (k, v) = c.trim().split_once('=')?;
            (k == name).then(|| v.to_string())
        },
    )
}

/// The signed-in reviewer of a console request.
#[derive(Clone)]
pub struct Viewer {
    /// Who is signed in (the key's principal).
    pub who: Principal,
    /// The CSRF token every form on this page carries.
    pub csrf: String,
    /// The stored session's id (signing out ends it).
    pub session_id: String,
    /// The state of the project the page shows (the key's project, or the
    /// one a server admin switched to).
    pub scope: Arc<AppState>,
    /// The projects the viewer may switch to: their key's, those they have a
    /// role in, and for a server admin all of them.
    pub projects: Vec<arbiter_core::ProjectId>,
    /// Signed in by single sign-on (not with a key).
    pub sso: bool,
}

/// The state of the project a console page shows: every read and write of
/// the page goes through its project-scoped store handle.
pub struct ConsoleScope(pub Arc<AppState>);

impl FromRequestParts<Arc<AppState>> for ConsoleScope {
    type Rejection = ConsoleRejection;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        Ok(ConsoleScope(Viewer::from_request_parts(parts, state).await?.scope))
    }
}

/// Where a request without a valid session goes.
pub enum ConsoleRejection {
    /// To the sign-in page, coming back to this path afterwards.
    Login(String),
    /// A real error (the store failed, or an agent key signed in).
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
        if let Some(v) = parts.extensions.get::<Viewer>() {
            return Ok(v.clone());
        }
        let back = parts.uri.path_and_query().map_or("/queue".to_string(), |p| p.to_string());
        let Some(value) = cookie(parts) else { return Err(ConsoleRejection::Login(back)) };
        let secret = state.console_secret().await.map_err(ConsoleRejection::Error)?;
        let Some(sid) = check_session(&secret, &value) else {
            return Err(ConsoleRejection::Login(back));
        };
        let now = state.clock.now();
        let session = state.root.session(sid).await.map_err(|e| ConsoleRejection::Error(e.into()))?;
        let Some(session) = session.filter(|s| s.revoked_at.is_none() && s.expires_at > now) else {
            return Err(ConsoleRejection::Login(back));
        };
        let asked = named_cookie(parts, PROJECT_COOKIE).and_then(|v| arbiter_core::ProjectId::parse(&v).ok());
        let (who, projects) = match &session.identity {
            // a person signed in by single sign-on: the roles their groups gave them at sign-in
            Some(identity) => {
                let all: Vec<arbiter_core::ProjectId> = state
                    .root
                    .projects()
                    .await
                    .map_err(|e| ConsoleRejection::Error(e.into()))?
                    .into_iter()
                    .map(|p| p.id)
                    .collect();
                let projects: Vec<_> = all.into_iter().filter(|p| identity.principal_in(p).is_some()).collect();
                let project = asked.filter(|p| projects.contains(p)).or_else(|| identity.home().cloned());
                let Some(who) = project.and_then(|p| identity.principal_in(&p)).filter(|_| !projects.is_empty()) else {
                    return Err(ConsoleRejection::Error(ApiError::Forbidden(format!(
                        "{} has no role in any project of this server",
                        identity.name
                    ))));
                };
                (who, projects)
            }
            None => {
                let who = match state.keys.principal_by_id(state.root.as_ref(), &session.key_id, now).await {
                    Ok(p) => p,
                    Err(_) => return Err(ConsoleRejection::Login(back)),
                };
                if who.role == Role::Agent {
                    return Err(ConsoleRejection::Error(ApiError::Forbidden(
                        "agent keys cannot use the reviewer console".into(),
                    )));
                }
                let mut who = who;
                let projects = crate::extract::projects_of(state, &who).await.map_err(ConsoleRejection::Error)?;
                // the project chosen with the switcher, kept in a cookie (only one the key may act in counts)
                if let Some(asked) = asked
                    && projects.contains(&asked)
                {
                    who = crate::extract::act_in(state, &who, asked).await.map_err(ConsoleRejection::Error)?;
                }
                (who, projects)
            }
        };
        let scope = state.in_project(&who.project).await.map_err(ConsoleRejection::Error)?;
        let sso = session.identity.is_some();
        let viewer = Viewer { csrf: csrf_token(&secret, &value), who, session_id: session.id, scope, projects, sso };
        parts.extensions.insert(viewer.clone());
        Ok(viewer)
    }
}

impl Viewer {
    /// Refuse a form whose CSRF token does not belong to this session.
    pub fn check_csrf(&self, f: &Fields) -> Result<(), ApiError> {
        let ok: bool = subtle::ConstantTimeEq::ct_eq(self.csrf.as_bytes(), field(f, "csrf").as_bytes()).into();
        if ok {
            Ok(())
        } else {
            Err(ApiError::Forbidden(
                "the form expired or did not come from this console; reload the page and try again".into(),
            ))
        }
    }

    /// The hidden field that carries the CSRF token.
    pub fn csrf_field(&self) -> Markup {
        html! { input type="hidden" name="csrf" value=(self.csrf); }
    }
}

/// Only local paths: never an open redirect.
pub(super) fn safe_next(next: &str) -> &str {
    if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') { next } else { "/queue" }
}

/// `GET /login`.
pub async fn login_form(State(state): State<Arc<AppState>>, Query(q): Query<QueryMap>) -> Response {
    let next = q.get("next").map_or("/queue", String::as_str);
    let sso = state.config.sso.as_ref().map(|s| s.label.clone());
    let body = html! {
        h1 { "Sign in" }
        (flash(&q))
        @if let Some(label) = &sso {
            p.card.narrow {
                a.button #sso href=(format!("/sso/login?next={}", urlencode(next))) { (label) }
            }
        }
        @if state.config.key_sign_in {
        form.card.narrow method="post" action="/login" {
            label for="key" { "API key" }
            input type="password" id="key" name="key" autocomplete="off" autofocus required placeholder="arb_…";
            input type="hidden" name="next" value=(next);
            button type="submit" { "Sign in" }
            p.muted {
                "Use a reviewer or admin key. An admin creates one with "
                code { "arbiter keys create --name ann --role reviewer --tag soc_analyst" }
                " (the tags are the reviewer roles whose cases reach the key's queue). "
                "The key is exchanged for a session cookie and never stored in the browser."
            }
        }
        }
    };
    frame("Sign in", None, body)
}

/// `POST /login`: exchange an API key for a session cookie.
pub async fn login(State(state): State<Arc<AppState>>, Form(f): Form<Fields>) -> Response {
    let next = safe_next(field(&f, "next")).to_string();
    let back = format!("/login?next={}", urlencode(&next));
    if !state.config.key_sign_in {
        return failed_because(
            &back,
            "Signing in with an API key is turned off on this server; sign in with single sign-on.",
        );
    }
    let presented = field(&f, "key").trim();
    if crate::auth::key_id(presented).is_none() {
        return failed_because(
            &back,
            "That is not an Arbiter API key. Keys start with arb_ and are printed once by `arbiter keys create`; paste the whole key.",
        );
    }
    let who = match state.keys.authenticate(state.root.as_ref(), presented, state.clock.now()).await {
        Ok(p) => p,
        Err(ApiError::Unauthorized(why)) => {
            let why = match why.as_str() {
                crate::auth::INVALID_KEY => {
                    "This key is not valid. Check that you pasted all of it, or ask an admin for a new one.".to_string()
                }
                other => format!("This key cannot sign in: {other}."),
            };
            return failed_because(&back, &why);
        }
        Err(e) => return failed(&back, &e),
    };
    if who.role == Role::Agent {
        return failed_because(
            &back,
            "Agent keys cannot use the reviewer console; sign in with a reviewer or admin key.",
        );
    }
    let cookie = match start_session(&state, &who.key_id).await {
        Ok(c) => c,
        Err(e) => return error_page(e),
    };
    let mut r = Redirect::to(&next).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// `POST /project`: switch the console to another project the viewer may act
/// in (server admins: any; others: those they have a role in). The choice is
/// kept in a cookie of this browser.
pub async fn switch_project(viewer: Viewer, Form(f): Form<Fields>) -> Response {
    if let Err(e) = viewer.check_csrf(&f) {
        return error_page(e);
    }
    let asked = match arbiter_core::ProjectId::parse(field(&f, "project")) {
        Ok(p) => p,
        Err(why) => return failed_because("/queue", &why),
    };
    if !viewer.projects.contains(&asked) {
        return failed_because("/queue", &format!("you cannot switch to project `{asked}`"));
    }
    let secure = secure_attribute(&viewer.scope);
    let cookie = format!("{PROJECT_COOKIE}={asked}; Path=/; HttpOnly; SameSite=Strict{secure}");
    let mut r = Redirect::to("/queue").into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// `POST /logout`: ends the stored session, so the old cookie stops working at once.
pub async fn logout(State(state): State<Arc<AppState>>, viewer: Viewer, Form(f): Form<Fields>) -> Response {
    if let Err(e) = viewer.check_csrf(&f) {
        return error_page(e);
    }
    let identity = match state.root.session(&viewer.session_id).await {
        Ok(s) => s.and_then(|s| s.identity),
        Err(e) => return error_page(e.into()),
    };
    if let Err(e) = state.store.end_session(&viewer.session_id, state.clock.now()).await {
        return error_page(e.into());
    }
    // a person signed in by single sign-on signs out of the provider too
    // (RP-initiated logout). A page that moves on, not a redirect: the
    // console's CSP (`form-action 'self'`) stops a form's redirect to another site.
    let mut r = match (identity, &state.sso, &state.config.public_url) {
        (Some(identity), Some(provider), Some(public)) => {
            let back = format!("{}/login", public.trim_end_matches('/'));
            match provider.logout_url(identity.id_token.as_deref(), &back).await {
                Some(url) => {
                    let body = html! {
                        meta http-equiv="refresh" content=(format!("0;url={url}"));
                        h1 { "Signed out" }
                        p { "Signed out of Arbiter. " a #provider-logout href=(url) { "Sign out of the identity provider too" } }
                    };
                    frame("Signed out", None, body).into_response()
                }
                None => Redirect::to("/login").into_response(),
            }
        }
        _ => Redirect::to("/login").into_response(),
    };
    if let Ok(v) = HeaderValue::from_str(&clear_cookie(&state)) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_and_csrf() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let v = session_value(secret, "abc123");
        assert_eq!(check_session(secret, &v), Some("abc123"));
        assert_eq!(check_session(b"another secret", &v), None, "forged");
        let tampered = v.replacen("abc123", "abc124", 1);
        assert_eq!(check_session(secret, &tampered), None);
        assert_eq!(check_session(secret, "abc123"), None, "no MAC");
        assert_ne!(csrf_token(secret, &v), csrf_token(secret, &tampered));
        assert_eq!(safe_next("//evil.example/x"), "/queue");
        assert_eq!(safe_next("https://evil.example"), "/queue");
        assert_eq!(safe_next("/cases/1"), "/cases/1");
    }
}
