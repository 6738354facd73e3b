//! `GET /queue`: the approval cases this reviewer may answer, most urgent
//! first, and the open review cases. `?rows=1` returns only the table rows
//! (the page refreshes them every few seconds).

use super::auth::Viewer;
use super::layout::{QueryMap, error_page, flash, frame, html_response, severity};
use crate::AppState;
use crate::extract::Query;
use arbiter_core::duration::human_ms;
use arbiter_core::queue::{self, QueueItem};
use arbiter_core::{CaseKind, CaseState, Role, Timestamp};
use axum::extract::State;
use axum::response::Response;
use maud::{Markup, html};
use std::sync::Arc;

/// Rows shown (the most urgent ones); the heading counts them all.
const QUEUE_PAGE: usize = 100;
/// Open review cases listed under the queue.
const REVIEWS_LISTED: usize = 20;

fn sla_left(ms: i64) -> String {
    if ms < 0 { format!("overdue {}", human_ms(ms)) } else { human_ms(ms) }
}

fn rows(items: &[QueueItem], total: usize, now: Timestamp) -> Markup {
    html! {
        @if items.is_empty() {
            tr { td.muted colspan="7" { "Nothing waiting for you." } }
        }
        @for i in items {
            @let c = &i.case;
            tr.row {
                td { (i.position) }
                td {
                    a href={ "/cases/" (c.id) } data-case=(c.id) { (severity(c.escalation.severity)) " " (c.action_name) }
                    @if let Some(h) = c.held_at(now) { " " span.pill { "claimed by " (h.by) } }
                }
                td { (c.agent) }
                td.opt { (c.confidence.map_or("–".to_string(), |v| format!("{v:.2}"))) }
                td { span data-deadline=(c.sla_deadline.0) { (sla_left(i.sla_left_ms)) } }
                td.opt { (c.tier + 1) }
                td.opt { small { (i.reasons.join("; ")) } }
            }
        }
        @if total > items.len() {
            tr { td.muted colspan="7" { "… and " (total - items.len()) " more, less urgent." } }
        }
    }
}

/// `GET /queue`.
pub async fn page(State(state): State<Arc<AppState>>, viewer: Viewer, Query(q): Query<QueryMap>) -> Response {
    let now = state.clock.now();
    let who = &viewer.who;
    let cases = match state.active_approval_cases().await {
        Ok(c) => c,
        Err(e) => return error_page(e),
    };
    let visible =
        cases.iter().filter(|c| queue::visible_to(c, &who.name, &who.key_id, &who.tags, who.role == Role::Admin, now));
    let (total, items) = queue::top(visible, now, QUEUE_PAGE);
    let rows = rows(&items, total, now);
    if q.contains_key("rows") {
        return html_response(rows);
    }
    let filter = arbiter_store::CaseFilter {
        kind: Some(CaseKind::Review),
        states: vec![CaseState::Open],
        limit: REVIEWS_LISTED,
    };
    let reviews = match state.store.cases(filter).await {
        Ok(r) => r,
        Err(e) => return error_page(e.into()),
    };
    let body = html! {
        h1 { "Your queue " small { "(" (total) " waiting)" } }
        (flash(&q))
        p.muted {
            "Most urgent first: due within 5 minutes, then severity, time left, agent confidence (lower first), age. Keys: "
            kbd { "j" } "/" kbd { "k" } " to move, " kbd { "Enter" } " to open."
        }
        table {
            thead { tr {
                th { "#" } th { "Case" } th { "Agent" } th.opt { "Confidence" } th { "SLA left" } th.opt { "Tier" } th.opt { "Why here" }
            } }
            tbody #queue-rows { (rows) }
        }
        h2 { "Open review cases" }
        ul {
            @for c in &reviews {
                li {
                    a href={ "/reviews/" (c.id) } { (c.review.as_ref().map_or("", |r| r.title.as_str())) }
                    " " small { (c.created_at.to_string()) }
                }
            }
            @if reviews.is_empty() { li.muted { "None." } }
        }
    };
    frame("Queue", Some(&viewer), body)
}
