//! `GET /queue`: the approval cases this reviewer may answer, most urgent
//! first, and the open review cases. `?rows=1` returns only the table rows
//! (the page refreshes them every few seconds).

use super::auth::ConsoleScope;
use super::auth::Viewer;
use super::layout::{
    QueryMap, ServerTime, countdown, error_page, flash, frame, html_response, rich, severity, subject,
};
use crate::extract::Query;
use arbiter_core::queue::{self, QueueItem};
use arbiter_core::{CaseKind, Role};
use axum::response::Response;
use maud::{Markup, html};

/// Rows shown (the most urgent ones); the heading counts them all.
const QUEUE_PAGE: usize = 100;

fn confidence(c: &arbiter_core::Case) -> String {
    match (c.confidence, c.threshold) {
        (Some(v), Some(t)) => format!("{v:.2} / {t:.2}"),
        (Some(v), None) => format!("{v:.2}"),
        (None, _) => "–".into(),
    }
}

fn rows(items: &[QueueItem], total: usize, t: ServerTime) -> Markup {
    let now = t.now;
    html! {
        @if items.is_empty() {
            tr { td.muted colspan="7" { "Nothing waiting for you." } }
        }
        @for i in items {
            @let c = &i.case;
            tr.row title=(i.reasons.join("; ")) {
                td { (i.position) }
                td {
                    a href={ "/cases/" (c.id) } data-case=(c.id) {
                        (severity(c.escalation.severity)) " " (c.action_name)
                        @if let Some(s) = &c.subject { " " b { (subject(s)) } }
                    }
                    @if let Some(h) = c.held_at(now) { " " span.pill { "claimed by " (h.by) } }
                }
                td {
                    @if let Some(t) = &c.trigger { code { (t.name) } br; small { (rich(&t.reason)) } }
                    @else { small.muted { "below its confidence threshold" } }
                }
                td.opt { (confidence(c)) }
                td { (countdown(t, c.sla_deadline)) }
                td.opt { (c.agent) }
                td.opt { (c.tier + 1) }
            }
        }
        @if total > items.len() {
            tr { td.muted colspan="7" { "… and " (total - items.len()) " more, less urgent." } }
        }
    }
}

/// `GET /queue`.
pub async fn page(ConsoleScope(state): ConsoleScope, viewer: Viewer, Query(q): Query<QueryMap>) -> Response {
    let now = state.clock.now();
    let who = &viewer.who;
    let cases = match state.active_approval_cases().await {
        Ok(c) => c,
        Err(e) => return error_page(e),
    };
    let visible =
        cases.iter().filter(|c| queue::visible_to(c, &who.name, &who.key_id, &who.tags, who.role == Role::Admin, now));
    let (total, items) = queue::top(visible, now, QUEUE_PAGE);
    let rows = rows(&items, total, ServerTime::of(&state));
    if q.contains_key("rows") {
        return html_response(rows);
    }
    let (open_reviews, open_audits) = match (
        state.store.open_case_count(Some(CaseKind::Review)).await,
        state.store.open_case_count(Some(CaseKind::Audit)).await,
    ) {
        (Ok(r), Ok(a)) => (r, a),
        (Err(e), _) | (_, Err(e)) => return error_page(e.into()),
    };
    let body = html! {
        h1 { "Your queue " small { "(" (total) " waiting)" } }
        (flash(&q))
        p.muted {
            "Most urgent first: due within 5 minutes, then severity, time left, agent confidence (lower first), age (hover a row for its reasons). Keys: "
            kbd { "j" } "/" kbd { "k" } " to move, " kbd { "Enter" } " to open. "
            a href="/reviews" { (open_reviews) " open review case(s)" } " · "
            a href="/audits" { (open_audits) " audit(s) to label" } " · " a href="/cases" { "decided cases" }
        }
        table {
            thead { tr {
                th { "#" } th { "Action and subject" } th { "Why it escalated" } th.opt { "Confidence / threshold" } th { "SLA left" }
                th.opt { "Agent" } th.opt { "Tier" }
            } }
            tbody #queue-rows { (rows) }
        }
    };
    frame("Queue", Some(&viewer), body)
}
