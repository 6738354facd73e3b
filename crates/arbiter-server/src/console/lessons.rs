//! `GET /lessons` (the lessons, with a search box), `GET /lessons/{id}`
//! (a lesson, its recurrence and history, and the form to edit it),
//! `GET /search` (search over lessons, reviews and reviewed decisions).

use super::auth::ConsoleScope;
use super::auth::Viewer;
use super::forms::{Fields, field, lines, optional};
use super::layout::{QueryMap, done, error_page, failed, flash, frame, urlencode};
use crate::app;
use crate::error::ApiError;
use crate::extract::{Path, Query};
use arbiter_api::learning::{LessonListQuery, SearchParams};
use arbiter_core::WireName;
use arbiter_core::lesson::LessonPatch;
use arbiter_core::recurrence::RecurrenceStatus;
use arbiter_core::search::{SearchHit, SearchKind};
use axum::Form;
use axum::response::Response;
use maud::{Markup, html};

/// The search box every knowledge page shows.
pub fn search_box(q: &str, kind: Option<SearchKind>) -> Markup {
    html! {
        form.search method="get" action="/search" role="search" {
            label for="q" { "Search lessons, reviews and reviewers' rationales" }
            input type="search" #q name="q" value=(q) required placeholder="e.g. backup agent beacon";
            select name="kind" aria-label="What to search" {
                option value="" { "everything" }
                @for k in SearchKind::all() { option value=(k.wire_name()) selected[kind == Some(*k)] { (k.wire_name()) "s" } }
            }
            button.secondary type="submit" { "Search" }
        }
    }
}

fn hit_link(h: &SearchHit) -> String {
    match h.kind {
        SearchKind::Lesson => format!("/lessons/{}", urlencode(&h.id)),
        SearchKind::Review => format!("/reviews/{}", urlencode(&h.id)),
        SearchKind::Decision => format!("/decisions/{}", urlencode(&h.id)),
    }
}

/// `GET /lessons?action=`.
pub async fn list(ConsoleScope(state): ConsoleScope, viewer: Viewer, Query(q): Query<QueryMap>) -> Response {
    let action = q.get("action").filter(|a| !a.is_empty()).cloned();
    let query = LessonListQuery { action: action.clone(), published: None, limit: Some(200) };
    let lessons = match app::learning::list(&state, query).await {
        Ok(l) => l,
        Err(e) => return error_page(e),
    };
    let body = html! {
        h1 { "Lessons" @if let Some(a) = &action { " " small { "about " (a) } } }
        (flash(&q))
        (search_box("", None))
        p.muted { "Closing a review case creates its lesson. Published lessons become guidance agents read at run time (" code { "GET /v1/guidance" } ")." }
        table {
            thead { tr { th { "Lesson" } th.opt { "Actions" } th.opt { "Failure modes" } th { "Published" } th.opt { "Updated" } } }
            tbody {
                @for l in &lessons {
                    tr {
                        td { a href={ "/lessons/" (l.id) } { (l.title) } }
                        td.opt { @for a in &l.action_classes { a href={ "/lessons?action=" (urlencode(a)) } { (a) } " " } }
                        td.opt { (l.failure_modes.join(", ")) }
                        td { @if l.publish { "yes" } @else { "no" } }
                        td.opt { small { (super::layout::when(l.updated_at)) } }
                    }
                }
                @if lessons.is_empty() { tr { td.muted colspan="5" { "No lessons yet." } } }
            }
        }
    };
    frame("Lessons", Some(&viewer), body)
}

/// `GET /lessons/{id}`.
pub async fn page(
    ConsoleScope(state): ConsoleScope,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(q): Query<QueryMap>,
) -> Response {
    let v = match app::learning::view(&state, &id).await {
        Ok(v) => v,
        Err(e) => return error_page(e),
    };
    let l = &v.lesson;
    let act = format!("/lessons/{}/edit", urlencode(&l.id));
    let body = html! {
        h1 { (l.title) " " small { "revision " (l.revision) } }
        (flash(&q))
        p {
            "From review " a href={ "/reviews/" (l.review_id) } { (l.review_id) }
            " · actions " b { (l.action_classes.join(", ")) } " · agents " (l.agents.join(", "))
            " · " @if l.publish { b { "published" } " as guidance" } @else { "not published" }
        }
        div.grid {
            div {
                div.card {
                    h2 { "Summary" }
                    p.pre { (l.summary) }
                    h2 { "Root cause" }
                    p.pre { (l.root_cause) }
                    h2 { "Failure modes" }
                    p { @for m in &l.failure_modes { span.pill { (m) } " " } }
                    @if !l.guidance.is_empty() {
                        h2 { "Guidance for the agent" }
                        ul { @for g in &l.guidance { li { (g) } } }
                    }
                }
                div.card {
                    h2 { "Interventions" }
                    ul {
                        @for x in &l.interventions {
                            li {
                                span.pill { (x.status.as_str()) } " " b { (x.spec.kind.as_str()) } ": " (x.spec.description)
                                @if let Some(c) = &x.check { " " small { "backtest " @if c.passed() { "passed" } @else { "failed" } } }
                            }
                        }
                    }
                    h2 { "What reviewers decided" }
                    ul {
                        @for a in &l.answers {
                            li { code { (a.decision_id) } " " b { (a.verdict.to_string()) } ": " (a.rationale)
                                 @if !a.changes.is_empty() { " " small { "(" (a.changes.join("; ")) ")" } } }
                        }
                        @if l.answers.is_empty() { li.muted { "No decision of this review was answered by people." } }
                    }
                }
            }
            div {
                div.card {
                    h2 { "Did it stop?" }
                    @for r in &v.recurrence {
                        p class=(match r.status { RecurrenceStatus::Reduced => "ok", RecurrenceStatus::Worse => "error", _ => "muted" }) {
                            "After " code { (super::layout::short(&r.policy_version)) } " went live (" (super::layout::when(r.activated_at)) "): " (r.summary)
                        }
                    }
                    @if v.recurrence.is_empty() { p.muted { "None of its policy versions has gone live yet." } }
                }
                form.card method="post" action=(act) {
                    h2 { "Edit" }
                    (viewer.csrf_field())
                    label for="title" { "Title" }
                    input type="text" #title name="title" value=(l.title) required;
                    label for="summary" { "Summary" }
                    textarea #summary name="summary" rows="4" { (l.summary) }
                    label for="root_cause" { "Root cause" }
                    textarea #root_cause name="root_cause" rows="3" { (l.root_cause) }
                    label for="guidance" { "Guidance for the agent (one line each)" }
                    textarea #guidance name="guidance" rows="3" { (l.guidance.join("\n")) }
                    label.choice { input type="checkbox" name="publish" value="true" checked[l.publish]; " Publish as guidance" }
                    button type="submit" { "Save" }
                }
                div.card {
                    h2 { "History" }
                    ol.timeline {
                        @for e in &v.history {
                            li {
                                (super::layout::when(e.at)) " " b { (e.kind) } " by " (e.actor)
                                @if let Some(c) = e.data["changed"].as_array().filter(|c| !c.is_empty()) {
                                    " " small { "(" (c.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(", ")) ")" }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    frame(&l.title, Some(&viewer), body)
}

/// `POST /lessons/{id}/edit`.
pub async fn edit(
    ConsoleScope(state): ConsoleScope,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(f): Form<Fields>,
) -> Response {
    let here = format!("/lessons/{}", urlencode(&id));
    if let Err(e) = viewer.check_csrf(&f) {
        return error_page(e);
    }
    let patch = LessonPatch {
        title: Some(field(&f, "title").to_string()),
        summary: Some(field(&f, "summary").replace("\r\n", "\n")),
        root_cause: Some(field(&f, "root_cause").replace("\r\n", "\n")),
        failure_modes: None,
        guidance: Some(lines(field(&f, "guidance"))),
        publish: Some(optional(&f, "publish").is_some()),
    };
    match app::learning::update(&state, &viewer.who, &id, patch).await {
        Ok(_) => done(&here, "Lesson saved."),
        Err(e) => failed(&here, &e),
    }
}

/// `GET /search?q=&kind=`.
pub async fn search(ConsoleScope(state): ConsoleScope, viewer: Viewer, Query(q): Query<QueryMap>) -> Response {
    let text = q.get("q").cloned().unwrap_or_default();
    let kind = q.get("kind").and_then(|k| SearchKind::parse(k));
    let hits = if text.trim().is_empty() {
        Ok(Vec::new())
    } else {
        let params = SearchParams { q: text.clone(), kind, limit: Some(50), ..Default::default() };
        app::learning::search(&state, params).await
    };
    let (hits, problem): (Vec<SearchHit>, Option<ApiError>) = match hits {
        Ok(h) => (h, None),
        Err(e) => {
            e.log();
            (Vec::new(), Some(e))
        }
    };
    let body = html! {
        h1 { "Search" }
        (search_box(&text, kind))
        @if let Some(e) = &problem { p.error role="alert" { (e.detail()) } }
        @if !text.trim().is_empty() && hits.is_empty() && problem.is_none() { p.muted { "Nothing found." } }
        ol.hits {
            @for h in &hits {
                li {
                    span.pill { (h.kind.as_str()) } " " a href=(hit_link(h)) { (h.title) }
                    " " small { (super::layout::when(h.at)) @if !h.failure_modes.is_empty() { " · " (h.failure_modes.join(", ")) } }
                    br;
                    span.muted { (h.snippet) }
                }
            }
        }
    };
    frame("Search", Some(&viewer), body)
}

/// `GET /decisions/{id}`: a decision is shown on its approval case's page.
pub async fn decision(ConsoleScope(state): ConsoleScope, _viewer: Viewer, Path(id): Path<String>) -> Response {
    use axum::response::{IntoResponse, Redirect};
    let found = match state.store.decision(&id).await {
        Ok(d) => d,
        Err(e) => return error_page(e.into()),
    };
    match found.and_then(|d| d.case_id) {
        Some(case) => Redirect::to(&format!("/cases/{}", urlencode(&case))).into_response(),
        None => error_page(ApiError::NotFound(format!("decision {id} has no case to show"))),
    }
}
