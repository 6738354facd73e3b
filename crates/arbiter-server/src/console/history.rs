//! `GET /cases`: decided cases, filtered (agent, action, subject, verdict,
//! source, reviewer, failure mode, dates, words in rationales), a page at a
//! time; `GET /reviews`: review cases, open or closed.

use super::auth::ConsoleScope;
use super::auth::Viewer;
use super::layout::{QueryMap, error_page, flash, frame, subject, urlencode, when};
use crate::app;
use crate::extract::Query;
use arbiter_api::cases::ListQuery;
use arbiter_core::{Case, CaseKind};
use axum::response::Response;
use maud::{Markup, html};

/// Cases per page.
const PAGE: usize = 50;

/// The filters as a query string (the same page's link to the next one).
fn query_string(q: &QueryMap, cursor: u64) -> String {
    let mut parts: Vec<String> = q
        .iter()
        .filter(|(k, v)| k.as_str() != "cursor" && !v.is_empty())
        .map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v)))
        .collect();
    parts.sort();
    parts.push(format!("cursor={cursor}"));
    parts.join("&")
}

fn text_input(q: &QueryMap, name: &str, label: &str, placeholder: &str) -> Markup {
    html! {
        div.filter {
            label for=(name) { (label) }
            input type="text" id=(name) name=(name) value=(q.get(name).map_or("", String::as_str)) placeholder=(placeholder);
        }
    }
}

fn select(q: &QueryMap, name: &str, label: &str, options: &[(&str, &str)]) -> Markup {
    let current = q.get(name).map_or("", String::as_str);
    html! {
        div.filter {
            label for=(name) { (label) }
            select id=(name) name=(name) {
                @for (value, text) in options { option value=(value) selected[*value == current] { (text) } }
            }
        }
    }
}

fn list_query(q: &QueryMap, kind: CaseKind, default_state: &str) -> ListQuery {
    let get = |k: &str| q.get(k).filter(|v| !v.trim().is_empty()).cloned();
    let time = |k: &str| {
        get(k).and_then(|v| {
            // `<input type=date>` sends a day; a full RFC 3339 time works too
            let v = if v.len() == 10 { format!("{v}T00:00:00Z") } else { v };
            v.parse().ok()
        })
    };
    ListQuery {
        kind: Some(kind.as_str().into()),
        state: Some(get("state").unwrap_or_else(|| default_state.into())),
        agent: get("agent"),
        action: get("action"),
        subject: get("subject"),
        verdict: get("verdict"),
        source: get("source"),
        reviewer: get("reviewer"),
        failure_mode: get("failure_mode"),
        since: time("since"),
        until: time("until"),
        q: get("q"),
        cursor: get("cursor"),
        limit: Some(PAGE),
    }
}

/// `GET /cases`.
pub async fn cases(ConsoleScope(state): ConsoleScope, viewer: Viewer, Query(q): Query<QueryMap>) -> Response {
    let page = match app::cases::find(&state, list_query(&q, CaseKind::Approval, "decided")).await {
        Ok(p) => p,
        Err(e) => return error_page(e),
    };
    let decisions = {
        let mut out = Vec::with_capacity(page.cases.len());
        for c in &page.cases {
            let d = match &c.decision_id {
                Some(id) => state.store.decision(id).await.ok().flatten(),
                None => None,
            };
            out.push(d);
        }
        out
    };
    let body = html! {
        h1 { "Decided cases" }
        (flash(&q))
        form.filters method="get" action="/cases" {
            (text_input(&q, "q", "Words in rationales", "backup agent"))
            (text_input(&q, "agent", "Agent", "soc-triage-agent"))
            (text_input(&q, "action", "Action", "isolate_host"))
            (text_input(&q, "subject", "Subject", "host:ws-0042"))
            (select(&q, "verdict", "Ended", &[("", "any"), ("allow", "allowed"), ("deny", "denied")]))
            (select(&q, "source", "Settled by", &[("", "anyone"), ("review", "reviewers"), ("sla_expired", "the SLA fallback"), ("agent_case_cap", "the case cap"), ("withdrawn", "the agent (withdrawn)")]))
            (text_input(&q, "reviewer", "Reviewer", "ann"))
            (text_input(&q, "failure_mode", "Failure mode", "wrong_target"))
            div.filter { label for="since" { "From" } input type="date" #since name="since" value=(q.get("since").map_or("", String::as_str)); }
            div.filter { label for="until" { "Before" } input type="date" #until name="until" value=(q.get("until").map_or("", String::as_str)); }
            div.filter { button type="submit" { "Filter" } " " a href="/cases" { "clear" } }
        }
        table {
            thead { tr { th { "Decided" } th { "Action and subject" } th { "Ended" } th.opt { "Agent" } th.opt { "Answered by" } th.opt { "Rationale" } } }
            tbody {
                @for (c, d) in page.cases.iter().zip(&decisions) {
                    @let fin = d.as_ref().and_then(|d| d.final_verdict.as_ref());
                    tr.row {
                        td { (when(fin.map_or(c.updated_at, |f| f.decided_at))) }
                        td { a href={ "/cases/" (urlencode(&c.id)) } { (c.action_name) @if let Some(s) = &c.subject { " " b { (subject(s)) } } } }
                        td {
                            @if let Some(f) = fin {
                                b { (f.verdict.to_string()) } @if f.action.is_some() { " (modified)" } " " small { (f.source.as_str()) }
                            } @else { (c.state.as_str()) }
                        }
                        td.opt { (c.agent) }
                        td.opt { (fin.map(|f| f.decided_by.join(", ")).unwrap_or_default()) }
                        td.opt { small { (excerpt(c)) } }
                    }
                }
                @if page.cases.is_empty() { tr { td.muted colspan="6" { "No case matches." } } }
            }
        }
        @if let Some(next) = page.next { p { a rel="next" href={ "/cases?" (query_string(&q, next)) } { "Older →" } } }
    };
    frame("Decided cases", Some(&viewer), body)
}

fn excerpt(c: &Case) -> String {
    let text = c.answers.iter().map(|a| a.rationale.as_str()).collect::<Vec<_>>().join(" / ");
    if text.chars().count() > 120 { format!("{}…", text.chars().take(120).collect::<String>()) } else { text }
}

/// `GET /reviews`.
pub async fn reviews(ConsoleScope(state): ConsoleScope, viewer: Viewer, Query(q): Query<QueryMap>) -> Response {
    let page = match app::cases::find(&state, list_query(&q, CaseKind::Review, "open")).await {
        Ok(p) => p,
        Err(e) => return error_page(e),
    };
    let state_now = q.get("state").map_or("open", String::as_str).to_string();
    let body = html! {
        h1 { "Review cases" }
        (flash(&q))
        p {
            @for (s, label) in [("open", "Open"), ("closed", "Closed"), ("open,closed", "All")] {
                @if s == state_now { b { (label) } } @else { a href={ "/reviews?state=" (urlencode(s)) } { (label) } }
                " · "
            }
            a href="/lessons" { "Lessons" }
        }
        form.filters method="get" action="/reviews" {
            input type="hidden" name="state" value=(state_now);
            (text_input(&q, "q", "Words", "isolation"))
            (text_input(&q, "action", "Action", "isolate_host"))
            (text_input(&q, "reviewer", "Written in by", "eve"))
            (text_input(&q, "failure_mode", "Finding", "wrong_action"))
            div.filter { button type="submit" { "Filter" } }
        }
        table {
            thead { tr { th { "Review" } th { "State" } th.opt { "Source" } th.opt { "Missing" } th.opt { "Opened" } } }
            tbody {
                @for c in &page.cases {
                    @let r = c.review.as_ref();
                    tr.row {
                        td { a href={ "/reviews/" (urlencode(&c.id)) } { (r.map_or("", |r| r.title.as_str())) } }
                        td { (c.state.as_str()) }
                        td.opt { (r.map_or("", |r| r.source.label())) }
                        td.opt { (r.map_or(0, |r| r.missing().len())) }
                        td.opt { (when(c.created_at)) }
                    }
                }
                @if page.cases.is_empty() { tr { td.muted colspan="5" { "No review case matches." } } }
            }
        }
        @if let Some(next) = page.next { p { a rel="next" href={ "/reviews?" (query_string(&q, next)) } { "Older →" } } }
    };
    frame("Review cases", Some(&viewer), body)
}

/// `GET /audits`: allowed decisions drawn for audit, waiting for a label (or labelled).
pub async fn audits(ConsoleScope(state): ConsoleScope, viewer: Viewer, Query(q): Query<QueryMap>) -> Response {
    let page = match app::cases::find(&state, list_query(&q, CaseKind::Audit, "open,claimed")).await {
        Ok(p) => p,
        Err(e) => return error_page(e),
    };
    let now = state.clock.now();
    let state_now = q.get("state").map_or("open,claimed", String::as_str).to_string();
    let body = html! {
        h1 { "Audits" }
        (flash(&q))
        p.muted {
            "Allowed decisions drawn at random (the policy's " code { "audit_sample" } ") for a person to label after the fact. "
            "The agent was not held. Labels become outcomes; " code { "arbiter tune" } " weights them by their inclusion probability "
            "to estimate the error rate of everything the policy allows."
        }
        p {
            @for (s, label) in [("open,claimed", "Waiting"), ("closed", "Labelled"), ("open,claimed,closed", "All")] {
                @if s == state_now { b { (label) } } @else { a href={ "/audits?state=" (urlencode(s)) } { (label) } }
                " · "
            }
        }
        form.filters method="get" action="/audits" {
            input type="hidden" name="state" value=(state_now);
            (text_input(&q, "action", "Action", "close_alert"))
            (text_input(&q, "agent", "Agent", "soc-triage-agent"))
            div.filter { button type="submit" { "Filter" } }
        }
        table {
            thead { tr { th { "Allowed" } th { "Action and subject" } th.opt { "Confidence" } th { "Label due" } th.opt { "Agent" } th { "State" } } }
            tbody {
                @for c in &page.cases {
                    tr.row {
                        td { (when(c.created_at)) }
                        td { a href={ "/cases/" (urlencode(&c.id)) } { (c.action_name) @if let Some(s) = &c.subject { " " b { (subject(s)) } } } }
                        td.opt { (c.confidence.map_or("–".to_string(), |v| format!("{v:.2}"))) }
                        td {
                            @if c.is_active() {
                                (super::layout::countdown(super::layout::ServerTime::of(&state), c.sla_deadline))
                            } @else { "–" }
                        }
                        td.opt { (c.agent) }
                        td { (c.state.as_str()) @if let Some(h) = c.held_at(now) { " " span.pill { "claimed by " (h.by) } } }
                    }
                }
                @if page.cases.is_empty() { tr { td.muted colspan="6" { "No audit matches." } } }
            }
        }
        @if let Some(next) = page.next { p { a rel="next" href={ "/audits?" (query_string(&q, next)) } { "Older →" } } }
    };
    frame("Audits", Some(&viewer), body)
}
