//! `GET /suggestions`: standing rules Arbiter suggests from how reviewers
//! answered, each with its backtest; admins accept one into a draft policy
//! version or dismiss it.

use super::auth::ConsoleScope;
use super::auth::Viewer;
use super::forms::{Fields, last};
use super::layout::{QueryMap, done, error_page, failed, flash, frame, short, urlencode};
use crate::app;
use crate::error::ApiError;
use crate::extract::{Path, Query};
use arbiter_core::Role;
use axum::Form;
use axum::response::Response;
use maud::html;

/// `GET /suggestions`.
pub async fn page(ConsoleScope(state): ConsoleScope, viewer: Viewer, Query(q): Query<QueryMap>) -> Response {
    let now = state.clock.now();
    let all = match state.store.suggestions(200).await {
        Ok(s) => s,
        Err(e) => return error_page(e.into()),
    };
    let admin = viewer.who.role == Role::Admin;
    let (open, past): (Vec<_>, Vec<_>) = all.into_iter().partition(|s| s.is_open(now));
    let body = html! {
        h1 { "Suggested rules" }
        (flash(&q))
        p.muted { "Situations reviewers always answered the same way, as triggers backtested on recent decisions. Accepting one stores a draft policy version; activating it is a separate step on the policy page." }
        @if admin {
            form.inline method="post" action="/suggestions/refresh" {
                (viewer.csrf_field())
                button.secondary type="submit" { "Mine the last 30 days again" }
            }
        }
        @for s in &open {
            div.card {
                h2 { (s.description) }
                p {
                    "Suggests " code { (s.trigger) } " (" b { (s.verdict.to_string()) } "); on " (s.backtest.replayed) " recent decisions it would have answered "
                    b { (s.backtest.escalations_saved) } " escalation(s), " b { (s.backtest.against_reviewers) } " of them against what reviewers decided."
                }
                pre { (s.yaml) }
                p.muted { "Expires " (super::layout::when(s.expires_at)) }
                @if admin {
                    form.inline method="post" action={ "/suggestions/" (urlencode(&s.id)) } {
                        (viewer.csrf_field())
                        button type="submit" name="op" value="accept" { "Accept into a draft version" }
                        button.secondary type="submit" name="op" value="dismiss" { "Dismiss" }
                    }
                }
            }
        }
        @if open.is_empty() { p.muted { "No open suggestions." } }
        @if !past.is_empty() {
            h2 { "Earlier" }
            ul {
                @for s in &past {
                    li {
                        span.pill { @if s.is_open(now) { "open" } @else if s.state == arbiter_core::suggest::SuggestionState::Open { "expired" } @else { (s.state.as_str()) } }
                        " " (s.description)
                        @if let Some(d) = &s.draft_policy { " → draft " a href={ "/policy?view=" (d) } { code { (short(d)) } } }
                    }
                }
            }
        }
    };
    frame("Suggested rules", Some(&viewer), body)
}

/// `POST /suggestions/refresh`.
pub async fn refresh(ConsoleScope(state): ConsoleScope, viewer: Viewer, Form(f): Form<Fields>) -> Response {
    if let Err(e) = viewer.check_csrf(&f) {
        return error_page(e);
    }
    if viewer.who.role != Role::Admin {
        return error_page(ApiError::Forbidden("refreshing suggestions needs an admin key".into()));
    }
    match app::learning::refresh_suggestions(&state, None, None).await {
        Ok(open) => done("/suggestions", &format!("{} suggestion(s) open.", open.len())),
        Err(e) => failed("/suggestions", &e),
    }
}

/// `POST /suggestions/{id}`: accept or dismiss.
pub async fn act(
    ConsoleScope(state): ConsoleScope,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(f): Form<Fields>,
) -> Response {
    if let Err(e) = viewer.check_csrf(&f) {
        return error_page(e);
    }
    if viewer.who.role != Role::Admin {
        return error_page(ApiError::Forbidden("accepting or dismissing suggestions needs an admin key".into()));
    }
    match last(&f, "op") {
        "accept" => match app::learning::accept_suggestion(&state, &viewer.who, &id).await {
            Ok(a) => done(
                "/policy",
                &format!(
                    "Draft version {} stored; compare and backtest it here before activating.",
                    short(&a.draft.hash)
                ),
            ),
            Err(e) => failed("/suggestions", &e),
        },
        "dismiss" => match app::learning::dismiss_suggestion(&state, &viewer.who, &id).await {
            Ok(_) => done("/suggestions", "Dismissed."),
            Err(e) => failed("/suggestions", &e),
        },
        _ => failed("/suggestions", &ApiError::invalid("op", "accept or dismiss")),
    }
}
