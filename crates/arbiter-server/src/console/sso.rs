//! Single sign-on to the console with an OpenID provider: the authorization
//! code flow with PKCE. `GET /sso/login` starts it: the state, nonce and
//! code verifier go into a short-lived cookie bound to this browser (MAC'd
//! under the console secret, `SameSite=Lax` so the provider's redirect back
//! carries it). `GET /sso/callback` checks the state against the cookie,
//! exchanges the code, checks the ID token ([`arbiter_oidc`]), maps the
//! person's groups to roles, and starts a stored session whose id is derived
//! from the state: a replayed callback cannot start a second session, on any
//! replica.

use super::auth::{self, mac};
use super::layout::{QueryMap, error_page, frame};
use crate::AppState;
use crate::error::ApiError;
use crate::extract::Query;
use arbiter_core::Identity;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use std::sync::Arc;

/// The cookie that carries a sign-in under way.
pub const PENDING_COOKIE: &str = "arbiter_sso";
/// How long a sign-in may take at the provider.
const PENDING_MS: i64 = 10 * 60_000;

#[derive(Debug)]
struct Pending {
    state: String,
    nonce: String,
    verifier: String,
    next: String,
}

fn pending_value(secret: &[u8], p: &Pending, expires: i64) -> String {
    let body = format!("{}.{}.{}.{}.{expires}", p.state, p.nonce, p.verifier, hex::encode(&p.next));
    let sig = mac(secret, &[b"sso-pending", body.as_bytes()]);
    format!("{body}.{sig}")
}

fn check_pending(secret: &[u8], value: &str, now: i64) -> Result<Pending, &'static str> {
    let (body, sig) = value.rsplit_once('.').ok_or("the sign-in cookie is malformed")?;
    let expected = mac(secret, &[b"sso-pending", body.as_bytes()]);
    let same: bool = subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), sig.as_bytes()).into();
    if !same {
        return Err("the sign-in cookie was not made by this server");
    }
    let parts: Vec<&str> = body.split('.').collect();
    let [state, nonce, verifier, next, expires] = parts[..] else { return Err("the sign-in cookie is malformed") };
    if expires.parse::<i64>().map_or(true, |e| e <= now) {
        return Err("the sign-in took longer than 10 minutes");
    }
    let next =
        hex::decode(next).ok().and_then(|b| String::from_utf8(b).ok()).ok_or("the sign-in cookie is malformed")?;
    Ok(Pending { state: state.into(), nonce: nonce.into(), verifier: verifier.into(), next })
}

fn clear_pending(state: &AppState) -> String {
    format!("{PENDING_COOKIE}=; Path=/sso; HttpOnly; SameSite=Lax; Max-Age=0{}", auth::secure_attribute(state))
}

fn with_cookies(mut r: Response, cookies: &[String]) -> Response {
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(c) {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    r
}

/// A sign-in that cannot go on: the page says why and offers to start again.
fn refused(state: &AppState, why: &str) -> Response {
    tracing::warn!(reason = why, "single sign-on refused");
    let body = html! {
        h1 { "Sign-in refused" }
        p.flash.error role="alert" { (why) }
        p { a href="/login" { "Back to sign-in" } }
    };
    let mut r = frame("Sign-in refused", None, body).into_response();
    *r.status_mut() = axum::http::StatusCode::FORBIDDEN;
    with_cookies(r, &[clear_pending(state)])
}

/// `GET /sso/login?next=/queue`: send the browser to the provider.
pub async fn start(State(state): State<Arc<AppState>>, Query(q): Query<QueryMap>) -> Response {
    let Some(provider) = &state.sso else {
        return error_page(ApiError::NotFound("single sign-on is not configured on this server".into()));
    };
    let next = auth::safe_next(q.get("next").map_or("/queue", String::as_str)).to_string();
    let start = match provider.start().await {
        Ok(s) => s,
        Err(e) => {
            return refused(&state, &format!("{e}. Try again in a moment, or ask an admin to check the SSO settings."));
        }
    };
    let secret = match state.console_secret().await {
        Ok(s) => s,
        Err(e) => return error_page(e),
    };
    let pending = Pending { state: start.state, nonce: start.nonce, verifier: start.verifier, next };
    let value = pending_value(&secret, &pending, state.clock.now().millis() + PENDING_MS);
    // Lax: the provider's redirect back is a cross-site top-level GET
    let cookie = format!(
        "{PENDING_COOKIE}={value}; Path=/sso; HttpOnly; SameSite=Lax; Max-Age={}{}",
        PENDING_MS / 1000,
        auth::secure_attribute(&state)
    );
    with_cookies(Redirect::to(&start.url).into_response(), &[cookie])
}

/// The claim `name` of the token as a list of strings (one string counts as one).
fn strings(claims: &serde_json::Map<String, serde_json::Value>, name: &str) -> Vec<String> {
    match claims.get(name) {
        Some(serde_json::Value::Array(a)) => a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
        Some(serde_json::Value::String(s)) => vec![s.clone()],
        _ => vec![],
    }
}

/// The person an ID token names, with the roles their groups give.
fn identity_of(
    sso: &crate::SsoConfig,
    claims: &serde_json::Map<String, serde_json::Value>,
    id_token: String,
) -> Result<Identity, String> {
    let email_verified = claims.get("email_verified").and_then(serde_json::Value::as_bool) != Some(false);
    let email = claims.get("email").and_then(|v| v.as_str()).filter(|_| email_verified).map(str::to_string);
    let name = match claims.get(&sso.name_claim).and_then(|v| v.as_str()) {
        Some(_) if sso.name_claim == "email" && email.is_none() => {
            return Err("the provider says this account's email is not verified, and people are named by email \
                        here; verify the email with the provider first"
                .into());
        }
        Some(n) if !n.trim().is_empty() => n.trim().to_string(),
        _ => {
            return Err(format!(
                "the ID token has no `{}` claim to name you by (ask an admin: the claim is set by sso_name_claim, \
                 and the provider may need a scope to send it)",
                sso.name_claim
            ));
        }
    };
    let groups = strings(claims, &sso.groups_claim);
    let grants = arbiter_core::identity::grants_for(&groups, &sso.groups);
    if grants.is_empty() {
        let mapped: Vec<&str> = sso.groups.iter().map(|g| g.group.as_str()).collect();
        return Err(format!(
            "{name} is in none of the groups that give a role here ({}); the provider sent {}. Ask an admin to add \
             you to one of them",
            mapped.join(", "),
            if groups.is_empty() {
                format!("no `{}` claim", sso.groups_claim)
            } else {
                format!("the groups {}", groups.join(", "))
            }
        ));
    }
    Ok(Identity { name, email, grants, id_token: Some(id_token) })
}

/// The session id a sign-in's state stands for: one sign-in, one session.
fn session_id_for(state: &str) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(format!("arbiter:sso-state:{state}").as_bytes())[..24])
}

/// `GET /sso/callback?code=...&state=...`: finish the sign-in.
pub async fn callback(State(state): State<Arc<AppState>>, parts: Parts) -> Response {
    let (Some(provider), Some(sso)) = (&state.sso, &state.config.sso) else {
        return error_page(ApiError::NotFound("single sign-on is not configured on this server".into()));
    };
    let q: QueryMap = form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes()).into_owned().collect();
    if let Some(err) = q.get("error") {
        let desc = q.get("error_description").map_or("", String::as_str);
        return refused(&state, &format!("the identity provider did not sign you in: {err} {desc}"));
    }
    let secret = match state.console_secret().await {
        Ok(s) => s,
        Err(e) => return error_page(e),
    };
    let now = state.clock.now();
    let Some(cookie) = auth::named_cookie(&parts, PENDING_COOKIE) else {
        return refused(
            &state,
            "no sign-in is under way in this browser: this sign-in link was already used, or it was started \
             elsewhere. Start again from the sign-in page.",
        );
    };
    let pending = match check_pending(&secret, &cookie, now.millis()) {
        Ok(p) => p,
        Err(why) => return refused(&state, &format!("{why}; start again from the sign-in page")),
    };
    let got = q.get("state").map_or("", String::as_str);
    let same: bool = subtle::ConstantTimeEq::ct_eq(got.as_bytes(), pending.state.as_bytes()).into();
    if !same {
        return refused(&state, "the provider's answer is not for the sign-in this browser started (state mismatch)");
    }
    let Some(code) = q.get("code") else { return refused(&state, "the provider sent no authorization code") };
    // ID tokens are stamped with real time, whatever clock the server runs on
    let wall = arbiter_core::Clock::now(&arbiter_core::SystemClock).millis().div_euclid(1000);
    let verified = match provider.finish(code, &pending.verifier, &pending.nonce, wall).await {
        Ok(v) => v,
        Err(e) => return refused(&state, &e.to_string()),
    };
    let identity = match identity_of(sso, &verified.claims, verified.id_token) {
        Ok(i) => i,
        Err(why) => return refused(&state, &why),
    };
    let session = arbiter_store::ConsoleSession {
        id: session_id_for(&pending.state),
        key_id: String::new(),
        created_at: now,
        expires_at: now.plus_millis(state.config.session_lifetime.as_millis() as i64),
        revoked_at: None,
        identity: Some(identity.clone()),
    };
    if state.root.session(&session.id).await.ok().flatten().is_some()
        || state.root.create_session(session.clone()).await.is_err()
    {
        return refused(&state, "this sign-in was already used to start a session; start again from the sign-in page");
    }
    if let Err(e) = state.root.record_sign_in(identity.clone(), now).await {
        tracing::warn!(error = %e, person = %identity.name, "could not update the people directory");
    }
    tracing::info!(person = %identity.name, projects = identity.grants.len(), "signed in by single sign-on");
    let session_cookie = auth::session_cookie(&state, &secret, &session.id);
    // A page, not a redirect: the session cookie is SameSite=Strict, and a
    // browser sends it only once the navigation starts on this site.
    let next = pending.next;
    let body = html! {
        meta http-equiv="refresh" content=(format!("0;url={next}"));
        h1 { "Signed in" }
        p { "Signed in as " strong { (identity.name) } ". " a href=(next) { "Continue" } }
    };
    with_cookies(frame("Signed in", None, body).into_response(), &[clear_pending(&state), session_cookie])
}

fn self_keys_allowed(viewer: &super::Viewer) -> Result<(), ApiError> {
    if !viewer.sso {
        return Err(ApiError::Forbidden(
            "you signed in with an API key: use that key, or ask an admin for another (`arbiter keys create`)".into(),
        ));
    }
    if !viewer.scope.config.sso.as_ref().is_some_and(|s| s.self_keys) {
        return Err(ApiError::NotFound(
            "this server does not let people create their own API keys (an admin turns it on with --sso-self-keys on)"
                .into(),
        ));
    }
    Ok(())
}

/// `GET /me/key`: what a key of one's own is, and the button that makes one.
pub async fn my_key_form(viewer: super::Viewer) -> Response {
    if let Err(e) = self_keys_allowed(&viewer) {
        return error_page(e);
    }
    let lifetime = arbiter_core::HumanDuration(viewer.scope.config.session_lifetime.as_secs());
    let who = &viewer.who;
    let body = html! {
        h1 { "An API key of your own" }
        div.card.narrow {
            p {
                "A key for the CLI or scripts that acts as " strong { (who.name) } " in project "
                strong { (who.project) } ", as " (who.role)
                @if !who.tags.is_empty() { " (" (who.tags.iter().cloned().collect::<Vec<_>>().join(", ")) ")" }
                ". It is you: your approvals by key and in the console count once. It stops working after "
                (lifetime.to_string()) ", like a session, so a role your groups no longer give does not outlive it."
            }
            form method="post" action="/me/key" {
                (viewer.csrf_field())
                button type="submit" { "Create my key" }
            }
        }
    };
    frame("API key", Some(&viewer), body).into_response()
}

/// `POST /me/key`: create it; the key is shown once.
pub async fn my_key(viewer: super::Viewer, axum::Form(f): axum::Form<super::forms::Fields>) -> Response {
    if let Err(e) = viewer.check_csrf(&f).and_then(|_| self_keys_allowed(&viewer)) {
        return error_page(e);
    }
    let state = &viewer.scope;
    let who = &viewer.who;
    let lifetime = arbiter_core::HumanDuration(state.config.session_lifetime.as_secs());
    let spec = crate::app::keys::KeySpec {
        name: who.name.clone(),
        role: who.role,
        tags: who.tags.clone(),
        expires_in: Some(lifetime),
        rate_limit: None,
        same_principal: true,
    };
    let key = match crate::app::keys::create_key(state.store.as_ref(), spec, state.clock.now()).await {
        Ok(k) => k,
        Err(e) => return error_page(e),
    };
    tracing::info!(person = %who.name, key = %key.record.id, project = %who.project, "a person created an API key for themselves");
    let until = key.record.expires_at.map(|t| t.to_string()).unwrap_or_default();
    let body = html! {
        h1 { "Your API key" }
        div.card.narrow {
            p.flash.ok role="status" { "Copy it now: it is shown once and stored only as a digest." }
            pre #my-key { (key.secret) }
            p { "It acts as " strong { (who.name) } " in project " strong { (who.project) } " until " (until) "." }
            pre {
                "export ARBITER_URL=" (state.config.public_url.as_deref().unwrap_or("http://127.0.0.1:8080")) "\n"
                "export ARBITER_KEY=" (key.secret) "\n"
                "arbiter cases list"
            }
        }
    };
    frame("Your API key", Some(&viewer), body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pending_cookie_is_bound_to_the_server_and_expires() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let p =
            Pending { state: "st".into(), nonce: "no".into(), verifier: "ve".into(), next: "/cases/1?x=y.z".into() };
        let v = pending_value(secret, &p, 1_000);
        let back = check_pending(secret, &v, 999).unwrap();
        assert_eq!((back.state.as_str(), back.next.as_str()), ("st", "/cases/1?x=y.z"));
        assert!(check_pending(secret, &v, 1_000).unwrap_err().contains("10 minutes"));
        assert!(check_pending(b"another", &v, 0).unwrap_err().contains("not made by this server"));
        let forged = v.replacen("st.", "ss.", 1);
        assert!(check_pending(secret, &forged, 0).is_err());
        assert_ne!(session_id_for("a"), session_id_for("b"));
    }

    #[test]
    fn groups_and_names_come_from_the_configured_claims() {
        let sso = crate::SsoConfig {
            issuer: "https://idp".into(),
            client_id: "arbiter".into(),
            client_secret: None,
            scopes: vec![],
            name_claim: "email".into(),
            groups_claim: "roles".into(),
            groups: vec![arbiter_core::GroupRule::parse("soc=reviewer:soc_analyst").unwrap()],
            max_skew: std::time::Duration::from_secs(60),
            label: "SSO".into(),
            self_keys: false,
        };
        let claims = |v: serde_json::Value| v.as_object().unwrap().clone();
        let ok = identity_of(
            &sso,
            &claims(serde_json::json!({"sub": "00u1", "email": "a@x.io", "roles": "soc"})),
            "t".into(),
        )
        .unwrap();
        assert_eq!((ok.name.as_str(), ok.grants.len()), ("a@x.io", 1));
        let e = identity_of(
            &sso,
            &claims(serde_json::json!({"sub": "00u1", "email": "a@x.io", "email_verified": false, "roles": ["soc"]})),
            "t".into(),
        )
        .unwrap_err();
        assert!(e.contains("not verified"), "{e}");
        let e = identity_of(
            &sso,
            &claims(serde_json::json!({"sub": "1", "email": "a@x.io", "roles": ["dev"]})),
            "t".into(),
        )
        .unwrap_err();
        assert!(e.contains("none of the groups that give a role here (soc)") && e.contains("the groups dev"), "{e}");
    }
}
