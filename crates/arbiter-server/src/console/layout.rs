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

/// A whole page around `body`.
pub fn frame(title: &str, viewer: Option<&Viewer>, body: Markup) -> Response {
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
                    @if let Some(v) = viewer {
                        nav {
                            a href="/queue" accesskey="q" { "Queue" }
                            a href="/cases" { "Decided" }
                            a href="/reviews" accesskey="r" { "Reviews" }
                            a href="/dashboard" accesskey="d" { "Dashboard" }
                            a href="/policy" accesskey="p" { "Policy" }
                            a href="/lessons" accesskey="l" { "Lessons" }
                            a href="/suggestions" { "Suggestions" }
                            span.who { (v.who.name) " " small { (join(&v.who.tags)) } }
                            form.inline method="post" action="/logout" {
                                (v.csrf_field())
                                button.link type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    };
    html_response(markup)
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
    let mut r = frame("Error", None, body);
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
    Redirect::to(&format!("{path}?msg={}", urlencode(message))).into_response()
}

/// Back to `path` after a form that failed, saying why.
pub fn failed(path: &str, e: &ApiError) -> Response {
    e.log();
    failed_because(path, &e.detail())
}

/// Back to `path` with a message for the user.
pub fn failed_because(path: &str, why: &str) -> Response {
    Redirect::to(&format!("{path}?err={}", urlencode(why))).into_response()
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
