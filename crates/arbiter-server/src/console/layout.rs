//! The frame every page shares, flash messages, redirects after a form, and
//! error pages. Internal errors are logged here (once) and shown as a
//! generic sentence.

use super::auth::Viewer;
use crate::error::ApiError;
use arbiter_core::Severity;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{DOCTYPE, Markup, html};
use std::collections::HashMap;

/// A query string's parameters.
pub type QueryMap = HashMap<String, String>;

/// The console's main pages, in the order the header lists them.
const PAGES: [(&str, &str, Option<&str>); 8] = [
    ("/queue", "Queue", Some("q")),
    ("/cases", "Decided", None),
    ("/reviews", "Reviews", Some("r")),
    ("/audits", "Audits", None),
    ("/dashboard", "Dashboard", Some("d")),
    ("/policy", "Policy", Some("p")),
    ("/lessons", "Lessons", Some("l")),
    ("/suggestions", "Suggestions", None),
];

/// A whole page around `body`: navigation and the signed-in reviewer when
/// there is one, the brand alone on the sign-in page.
pub fn frame(title: &str, viewer: Option<&Viewer>, body: Markup) -> Response {
    let nav = html! {
        @if let Some(v) = viewer {
            nav {
                @for (href, name, key) in PAGES { a href=(href) accesskey=[key] { (name) } }
                @if v.projects.len() > 1 {
                    form.inline.project method="post" action="/project" {
                        (v.csrf_field())
                        label for="project" { "Project" }
                        select id="project" name="project" {
                            @for p in &v.projects {
                                option value=(p) selected[*p == v.who.project] { (p) }
                            }
                        }
                        button type="submit" { "Switch" }
                    }
                } @else {
                    span.project title="the project this console shows" { (v.who.project) }
                }
                span.who { (v.who.name) " " small { (join(&v.who.tags)) } }
                @if v.sso && v.scope.config.sso.as_ref().is_some_and(|s| s.self_keys) {
                    a href="/me/key" title="an API key of your own, for the CLI" { "API key" }
                }
                form.inline method="post" action="/logout" {
                    (v.csrf_field())
                    button.link type="submit" { "Sign out" }
                }
            }
        }
    };
    page(title, nav, body)
}

/// A page for someone who may not be signed in (errors, unknown paths): the
/// navigation without the reviewer's name (each page asks to sign in if needed).
pub fn frame_anonymous(title: &str, body: Markup) -> Response {
    let nav = html! { nav { @for (href, name, _) in PAGES { a href=(href) { (name) } } } };
    page(title, nav, body)
}

fn page(title: &str, nav: Markup, body: Markup) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Arbiter" }
                link rel="stylesheet" href="/static/console.css";
                script src="/static/console.js" defer {}
            }
            body {
                header {
                    a.brand href="/queue" { "Arbiter" }
                    (nav)
                }
                main { (body) }
            }
        }
    };
    html_response(markup)
}

/// `404` for a browser: what was asked for, and where to go instead.
pub fn not_found_page(path: &str) -> Response {
    let body = html! {
        h1 { "Page not found" }
        p { "There is no page at " code { (path) } "." }
        p { "Try the " a href="/queue" { "review queue" } ", the " a href="/cases" { "decided cases" } ", or "
            a href="/search" { "search lessons and reviews" } ". The API is under " code { "/v1" } " and described by "
            a href="/openapi.json" { "/openapi.json" } "." }
    };
    let mut r = frame_anonymous("Not found", body);
    *r.status_mut() = StatusCode::NOT_FOUND;
    r
}

/// An HTML fragment or page as a response with the console's headers.
pub fn html_response(markup: Markup) -> Response {
    let mut r = (StatusCode::OK, markup.into_string()).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    secure_headers(h);
    r
}

/// Headers every console response carries: no inline script, no framing, no sniffing.
pub fn secure_headers(h: &mut HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// An error as a page, with the error's status.
pub fn error_page(e: ApiError) -> Response {
    e.log();
    let status = e.status();
    let body = html! {
        h1 { (status.as_u16()) }
        p.error { (e.detail()) }
        p { a href="/queue" { "Back to the queue" } }
    };
    let mut r = frame_anonymous("Error", body);
    *r.status_mut() = status;
    r
}

/// The messages a redirect carried (`?err=` and `?msg=`).
pub fn flash(q: &QueryMap) -> Markup {
    html! {
        @if let Some(e) = q.get("err") { p.error role="alert" { (e) } }
        @if let Some(m) = q.get("msg") { p.ok role="status" { (m) } }
    }
}

/// Back to `path` after a form that worked, saying what happened.
pub fn done(path: &str, message: &str) -> Response {
    Redirect::to(&format!("{path}{}msg={}", query_separator(path), urlencode(message))).into_response()
}

/// Back to `path` after a form that failed, saying why.
pub fn failed(path: &str, e: &ApiError) -> Response {
    e.log();
    failed_because(path, &e.detail())
}

/// Back to `path` with a message for the user.
pub fn failed_because(path: &str, why: &str) -> Response {
    Redirect::to(&format!("{path}{}err={}", query_separator(path), urlencode(why))).into_response()
}

/// `?` to start a query, `&` to add to one.
fn query_separator(path: &str) -> char {
    if path.contains('?') { '&' } else { '?' }
}

/// Percent-encode a path segment or query value.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A severity badge.
pub fn severity(s: Severity) -> Markup {
    html! { span class={ "sev sev-" (s.as_str()) } { (s.as_str()) } }
}

/// JSON as an indented block.
pub fn json_block(v: &serde_json::Value) -> Markup {
    html! { pre { (serde_json::to_string_pretty(v).unwrap_or_default()) } }
}

/// Names joined with commas.
pub fn join<'a>(names: impl IntoIterator<Item = &'a String>) -> String {
    names.into_iter().map(String::as_str).collect::<Vec<_>>().join(", ")
}

/// A moment: UTC in the page, shown in the reader's time zone by the
/// script, with the UTC value on hover.
/// The server's clock as a page renders it: the countdowns run from it, never
/// from the browser's clock (which may be hours off, and knows nothing of a
/// simulated clock).
#[derive(Debug, Clone, Copy)]
pub struct ServerTime {
    /// The server's time now.
    pub now: arbiter_core::Timestamp,
    /// The server's clock is manual (simulated): it stands still between moves.
    pub frozen: bool,
}

impl ServerTime {
    /// The server's time for a page of `state`.
    pub fn of(state: &crate::AppState) -> ServerTime {
        ServerTime { now: state.clock.now(), frozen: state.clock_control().is_some() }
    }
}

/// Time left until `deadline` ("14m05s", "overdue 3m"), ticking in the
/// browser from the server's time at rendering (`data-now`), on the
/// browser's monotonic clock; still when the server's clock is simulated.
pub fn countdown(t: ServerTime, deadline: arbiter_core::Timestamp) -> Markup {
    let left = deadline.0 - t.now.0;
    html! {
        span data-deadline=(deadline.0) data-now=(t.now.0) data-frozen[t.frozen] .overdue[left < 0] {
            @if left < 0 { "overdue " } (arbiter_core::duration::human_ms(left))
        }
    }
}

pub fn when(t: arbiter_core::Timestamp) -> Markup {
    let utc = t.to_string();
    html! { time datetime=(utc) title={ (utc) " UTC" } { (utc.get(..16).unwrap_or(&utc).replace('T', " ")) " UTC" } }
}

/// Text whose `backticked` parts are code (explanations and trigger descriptions use them).
pub fn rich(text: &str) -> Markup {
    html! {
        @for (i, part) in text.split('`').enumerate() {
            @if i % 2 == 1 { code { (part) } } @else { (part) }
        }
    }
}

/// A subject for people: `host:srv-db-01` -> `srv-db-01` with the field on hover.
pub fn subject(s: &str) -> Markup {
    match s.split_once(':') {
        Some((field, value)) => html! { span.subject title=(field) { (value) } },
        None => html! { span.subject { (s) } },
    }
}

/// The first 12 characters of a content hash, as shown everywhere.
pub fn short(hash: &str) -> &str {
    &hash[..12.min(hash.len())]
}
