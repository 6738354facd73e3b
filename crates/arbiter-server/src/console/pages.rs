//! The console's pages and forms.

use super::{Viewer, error_page, esc, page, urlencode};
use crate::error::ApiError;
use crate::extract::{Path, Query};
use crate::{AppState, app};
use arbiter_core::chart::{Chart, Series};
use arbiter_core::duration::human_ms;
use arbiter_core::queue;
use arbiter_core::review::*;
use arbiter_core::{CaseKind, Role, Timestamp};
use axum::Form;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;

type Fields = Vec<(String, String)>;

/// Rows shown on the queue page (the most urgent ones).
const QUEUE_PAGE: usize = 100;

fn field<'a>(f: &'a Fields, name: &str) -> &'a str {
    f.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str())
}

fn lines(s: &str) -> Vec<String> {
    s.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect()
}

fn back(path: &str, err: Option<&str>, msg: Option<&str>) -> Response {
    let mut to = path.to_string();
    if let Some(e) = err {
        to.push_str(&format!("?err={}", urlencode(e)));
    } else if let Some(m) = msg {
        to.push_str(&format!("?msg={}", urlencode(m)));
    }
    Redirect::to(&to).into_response()
}

fn flash(q: &HashMap<String, String>) -> String {
    let mut o = String::new();
    if let Some(e) = q.get("err") {
        let _ = write!(o, r#"<p class="error" role="alert">{}</p>"#, esc(e));
    }
    if let Some(m) = q.get("msg") {
        let _ = write!(o, r#"<p class="ok" role="status">{}</p>"#, esc(m));
    }
    o
}

fn json_pretty(v: &serde_json::Value) -> String {
    esc(&serde_json::to_string_pretty(v).unwrap_or_default())
}

// ---------------------------------------------------------------- sign-in

/// `GET /login`.
pub async fn login_form(Query(q): Query<HashMap<String, String>>) -> Response {
    let next = q.get("next").map_or("/queue", String::as_str);
    let body = format!(
        r#"<h1>Sign in</h1>{}<form method="post" action="/login" class="card narrow">
<label for="key">API key</label><input type="password" id="key" name="key" autocomplete="off" autofocus required placeholder="arb_…">
<input type="hidden" name="next" value="{}"><button type="submit">Sign in</button>
<p class="muted">Use a reviewer or admin key (<code>arbiter keys create --role reviewer --tag soc_analyst</code>). The key is exchanged for a session cookie and never stored in the browser.</p></form>"#,
        flash(&q),
        esc(next)
    );
    page("Sign in", None, &body)
}

fn safe_next(next: &str) -> &str {
    // Only local paths: never an open redirect.
    if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') { next } else { "/queue" }
}

/// `POST /login`: exchange an API key for a session cookie.
pub async fn login(State(state): State<Arc<AppState>>, Form(f): Form<Fields>) -> Response {
    let next = safe_next(field(&f, "next")).to_string();
    let who = match state.keys.authenticate(state.store.as_ref(), field(&f, "key").trim(), state.clock.now()).await {
        Ok(p) => p,
        Err(e) => return back("/login", Some(&e.detail()), None),
    };
    if who.role == Role::Agent {
        return back("/login", Some("agent keys cannot use the reviewer console; use a reviewer or admin key"), None);
    }
    let cookie = match super::start_session(&state, &who.key_id).await {
        Ok(c) => c,
        Err(e) => return error_page(e),
    };
    let mut r = Redirect::to(&next).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// `POST /logout`: ends the stored session, so the old cookie stops working at once.
pub async fn logout(State(state): State<Arc<AppState>>, viewer: Viewer, Form(f): Form<Fields>) -> Response {
    if let Err(e) = viewer.check_csrf(field(&f, "csrf")) {
        return error_page(e);
    }
    if let Err(e) = state.store.end_session(&viewer.session_id, state.clock.now()).await {
        return error_page(e.into());
    }
    let mut r = Redirect::to("/login").into_response();
    if let Ok(v) = HeaderValue::from_str(&super::clear_cookie(&state)) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

// ---------------------------------------------------------------- queue

fn queue_rows(items: &[queue::QueueItem], now: Timestamp) -> String {
    let mut o = String::new();
    if items.is_empty() {
        o.push_str(r#"<tr><td colspan="8" class="muted">Nothing waiting for you.</td></tr>"#);
    }
    for i in items {
        let c = &i.case;
        let sev = c.escalation.severity.as_str();
        let conf = c.confidence.map_or("–".to_string(), |v| format!("{v:.2}"));
        let held = c
            .held_at(now)
            .map_or(String::new(), |h| format!(r#" <span class="pill">claimed by {}</span>"#, esc(&h.by)));
        let _ = write!(
            o,
            r#"<tr class="row"><td>{}</td><td><a href="/cases/{id}" data-case="{id}"><span class="sev sev-{sev}">{sev}</span> {}</a>{held}</td><td>{}</td><td class="opt">{conf}</td><td><span data-deadline="{}">{}</span></td><td class="opt">{}</td><td class="opt"><small>{}</small></td></tr>"#,
            i.position,
            esc(&c.action_name),
            esc(&c.agent),
            c.sla_deadline.0,
            if i.sla_left_ms < 0 { format!("overdue {}", human_ms(i.sla_left_ms)) } else { human_ms(i.sla_left_ms) },
            c.tier + 1,
            esc(&i.reasons.join("; ")),
            id = esc(&c.id),
        );
    }
    o
}

/// `GET /queue`: the cases this reviewer may answer, most urgent first.
pub async fn queue(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let now = state.clock.now();
    let who = &viewer.who;
    let cases = match state.active_approval_cases().await {
        Ok(c) => c,
        Err(e) => return error_page(e),
    };
    let visible =
        cases.iter().filter(|c| queue::visible_to(c, &who.name, &who.key_id, &who.tags, who.role == Role::Admin, now));
    // The most urgent page of the queue; the count says how much more is waiting.
    let (total, items) = queue::top(visible, now, QUEUE_PAGE);
    let shown = &items[..];
    let mut rows = queue_rows(shown, now);
    if total > shown.len() {
        let _ = write!(
            rows,
            r#"<tr><td colspan="7" class="muted">… and {} more, less urgent.</td></tr>"#,
            total - shown.len()
        );
    }
    if q.contains_key("rows") {
        let mut r = (StatusCode::OK, rows).into_response();
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
        super::secure_headers(r.headers_mut());
        return r;
    }
    let reviews = state
        .store
        .cases(arbiter_store::CaseFilter {
            kind: Some(CaseKind::Review),
            states: vec![arbiter_core::CaseState::Open],
            limit: 20,
        })
        .await
        .unwrap_or_default();
    let mut rv = String::new();
    for c in &reviews {
        let title = c.review.as_ref().map_or("", |r| r.title.as_str());
        let _ = write!(
            rv,
            r#"<li><a href="/reviews/{}">{}</a> <small>{}</small></li>"#,
            esc(&c.id),
            esc(title),
            esc(&c.created_at.to_string())
        );
    }
    let body = format!(
        r#"<h1>Your queue <small>({} waiting)</small></h1>{}
<p class="muted">Most urgent first: due within 5 minutes, then severity, time left, agent confidence (lower first), age. Keys: <kbd>j</kbd>/<kbd>k</kbd> to move, <kbd>Enter</kbd> to open.</p>
<table><thead><tr><th>#</th><th>Case</th><th>Agent</th><th class="opt">Confidence</th><th>SLA left</th><th class="opt">Tier</th><th class="opt">Why here</th></tr></thead>
<tbody id="queue-rows">{rows}</tbody></table>
<h2>Open review cases</h2><ul>{}</ul>"#,
        total,
        flash(&q),
        if rv.is_empty() { "<li class=\"muted\">None.</li>".to_string() } else { rv }
    );
    page("Queue", Some(&viewer), &body)
}

// ---------------------------------------------------------------- case

/// `GET /cases/{id}`.
pub async fn case(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    render_case(&state, &viewer, &id, &q).await.unwrap_or_else(error_page)
}

async fn render_case(
    state: &AppState,
    viewer: &Viewer,
    id: &str,
    q: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let case = crate::routes::cases::load(state, id).await?;
    if case.kind == CaseKind::Review {
        return Ok(Redirect::to(&format!("/reviews/{}", urlencode(id))).into_response());
    }
    let now = state.clock.now();
    let decision = match &case.decision_id {
        Some(d) => state.store.decision(d).await?,
        None => None,
    };
    let events = state.store.case_events(id).await?;
    let chain = crate::routes::cases::chain_of(state, &case).await?;
    let mut o = String::new();
    let sev = case.escalation.severity.as_str();
    let _ = write!(
        o,
        r#"<h1><span class="sev sev-{sev}">{sev}</span> {} <small>from {}</small></h1>{}"#,
        esc(&case.action_name),
        esc(&case.agent),
        flash(q)
    );
    let held = case.held_at(now);
    let _ = write!(
        o,
        r#"<p>State <b>{}</b> · tier {} ({}) · SLA <span data-deadline="{}">{}</span> · needs {} approval(s), {} so far · fallback <b>{}</b>{}</p>"#,
        case.state.as_str(),
        case.tier + 1,
        esc(&case.current_reviewers().iter().cloned().collect::<Vec<_>>().join(", ")),
        case.sla_deadline.0,
        human_ms(case.sla_deadline.0 - now.0),
        case.escalation.approvals,
        case.approvals(),
        case.escalation.fallback,
        held.map_or(String::new(), |h| format!(
            " · claimed by <b>{}</b> until {}",
            esc(&h.by),
            esc(&h.until.to_string())
        ))
    );
    o.push_str(r#"<div class="grid"><div>"#);
    if let Some(d) = &decision {
        let threshold = state.policy().and_then(|p| p.class_config(&d.action.name).auto_allow_at);
        let conf = d.action.confidence.map_or("none given".to_string(), |c| format!("{c:.3}"));
        let th = match threshold {
            Some(t) if t.is_infinite() => "never auto-allowed".to_string(),
            Some(t) => format!("class threshold {t}"),
            None => "no threshold".to_string(),
        };
        let _ = write!(
            o,
            r#"<div class="card"><h2>Proposed action</h2><p><b>{}</b> · confidence <b>{}</b> <small>({})</small></p><pre>{}</pre>"#,
            esc(&d.action.name),
            conf,
            esc(&th),
            json_pretty(&d.action.args)
        );
        if d.action.signals.as_object().is_some_and(|m| !m.is_empty()) {
            let _ = write!(o, "<h2>Signals</h2><pre>{}</pre>", json_pretty(&d.action.signals));
        }
        if d.context.as_object().is_some_and(|m| !m.is_empty()) {
            let _ = write!(o, "<h2>Context</h2><pre>{}</pre>", json_pretty(&d.context));
        }
        let _ = write!(o, "<h2>Why it escalated</h2><p>{}</p><ul>", esc(&d.explanation));
        for t in &d.triggers {
            let _ = write!(o, "<li><b>{}</b> ({}): {}</li>", esc(&t.name), t.verdict, esc(&t.reason));
        }
        let _ = write!(
            o,
            "</ul><p class=\"muted\">Policy version <code>{}</code></p></div>",
            esc(&d.policy_hash[..12.min(d.policy_hash.len())])
        );
    }
    // actions
    let csrf = esc(&viewer.csrf);
    let action_url = format!("/cases/{}/act", esc(id));
    if case.is_active() {
        o.push_str(r#"<div class="card"><h2>Decide</h2>"#);
        match held {
            Some(h) if h.key_id == viewer.who.key_id => {
                let _ = write!(
                    o,
                    r#"<form method="post" action="{action_url}" class="inline"><input type="hidden" name="csrf" value="{csrf}"><button type="submit" name="op" value="release" class="secondary">Release</button><button type="submit" name="op" value="claim" class="secondary">Renew claim</button></form>"#
                );
            }
            Some(h) => {
                let _ = write!(o, r#"<p class="muted">{} holds this case.</p>"#, esc(&h.by));
            }
            None => {
                let _ = write!(
                    o,
                    r#"<form method="post" action="{action_url}" class="inline"><input type="hidden" name="csrf" value="{csrf}"><button type="submit" name="op" value="claim" accesskey="c">Claim</button></form>"#
                );
            }
        }
        // The arguments as they stand: the latest modification, or the proposed ones.
        let current = case.candidate_args().cloned().or_else(|| decision.as_ref().map(|d| d.action.args.clone()));
        let args = current.map_or(String::from("{}"), |a| serde_json::to_string_pretty(&a).unwrap_or_default());
        if let (Some(m), Some(d)) = (case.candidate_args(), &decision) {
            o.push_str(
                r#"<p><b>A reviewer modified the arguments.</b> Approving now approves these:</p><ul class="diff">"#,
            );
            for change in arbiter_core::diff::args_diff(&d.action.args, m) {
                let _ = write!(o, "<li><code>{}</code></li>", esc(&change.to_string()));
            }
            o.push_str("</ul>");
        }
        let _ = write!(
            o,
            r#"<form method="post" action="{action_url}"><input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="op" value="decide">
<fieldset class="choices"><legend class="muted">Your answer</legend>
<label class="choice"><input type="radio" name="decision" value="approve" checked> Approve</label>
<label class="choice"><input type="radio" name="decision" value="modify"> Modify and approve</label>
<label class="choice"><input type="radio" name="decision" value="reject"> Reject</label></fieldset>
<div id="modify-args"><label for="args">Arguments the agent will receive (JSON, for “modify”)</label><textarea id="args" name="args" rows="6">{}</textarea></div>
<label for="rationale">Rationale (required)</label><textarea id="rationale" name="rationale" required minlength="{}"></textarea>
<label for="failure_modes">Failure-mode tags (optional, comma-separated)</label><input type="text" id="failure_modes" name="failure_modes">
<button type="submit">Submit decision</button></form></div>"#,
            esc(&args),
            state.config.min_rationale_len
        );
    }
    let roles: String =
        viewer.who.tags.iter().map(|t| format!(r#"<option value="{0}">{0}</option>"#, esc(t))).collect();
    let _ = write!(
        o,
        r#"<div class="card"><h2>Comments</h2><ul>{}</ul><form method="post" action="{action_url}"><input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="op" value="comment">
<label for="comment">Comment</label><textarea id="comment" name="text" required></textarea><label for="role">Speaking as</label><select id="role" name="role"><option value="">(no role)</option>{roles}</select><button type="submit" class="secondary">Add comment</button>
<button type="submit" name="op" value="promote" class="secondary" formnovalidate>Open a review case from this</button></form></div>"#,
        case.comments
            .iter()
            .map(|c| format!(
                "<li><b>{}</b> {} <small>{}</small>: {}</li>",
                esc(&c.by),
                c.role.as_deref().map(|r| format!(r#"<span class="pill">{}</span>"#, esc(r))).unwrap_or_default(),
                esc(&c.at.to_string()),
                esc(&c.text)
            ))
            .collect::<String>()
    );
    o.push_str("</div><div>");
    o.push_str(r#"<div class="card"><h2>Timeline</h2><ol class="timeline">"#);
    let proposed = decision.as_ref().map(|d| d.action.args.clone()).unwrap_or_default();
    for e in &events {
        let _ = write!(o, "<li><code>{}</code> <b>{}</b> by {}", esc(&e.at.to_string()), esc(&e.kind), esc(&e.actor));
        if let Some(args) = e.data["answer"].get("modified_args").filter(|v| v.is_object()) {
            o.push_str(r#"<ul class="diff">"#);
            for change in arbiter_core::diff::args_diff(&proposed, args) {
                let _ = write!(o, "<li><code>{}</code></li>", esc(&change.to_string()));
            }
            o.push_str("</ul>");
        }
        if e.kind == "case.requirements_raised" {
            let _ = write!(
                o,
                r#"<p class="muted">The modified action needs {} approval(s) from {}.</p>"#,
                e.data["escalation"]["approvals"],
                esc(&e.data["escalation"]["reviewers"].to_string())
            );
        }
        o.push_str("</li>");
    }
    o.push_str("</ol></div>");
    o.push_str(&chain_card(&chain, case.decision_id.as_deref()));
    o.push_str("</div></div>");
    Ok(page(&format!("Case {}", case.action_name), Some(viewer), &o))
}

fn chain_card(chain: &[arbiter_core::Decision], current: Option<&str>) -> String {
    let mut o = String::from(r#"<div class="card"><h2>Decision chain</h2>"#);
    if chain.len() <= 1 && current.is_some() {
        o.push_str(r#"<p class="muted">No earlier decisions in this trace or session.</p>"#);
    }
    o.push_str("<ol>");
    for d in chain {
        let me = if Some(d.id.as_str()) == current { " <span class=\"pill\">this case</span>" } else { "" };
        let _ = write!(
            o,
            "<li><code>{}</code> <b>{}</b> {} → {}{me}<br><small>{}</small></li>",
            esc(&d.event_time.to_string()),
            esc(&d.action.name),
            d.action.confidence.map_or(String::new(), |c| format!("({c:.2})")),
            d.final_verdict.as_ref().map_or(d.verdict.to_string(), |f| f.verdict.to_string()),
            esc(&d.id)
        );
    }
    o.push_str("</ol></div>");
    o
}

/// `POST /cases/{id}/act`: claim, release, decide, comment, promote.
pub async fn case_act(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(f): Form<Fields>,
) -> Response {
    let here = format!("/cases/{}", urlencode(&id));
    if let Err(e) = viewer.check_csrf(field(&f, "csrf")) {
        return error_page(e);
    }
    let who = &viewer.who;
    // the last `op` wins (the promote button overrides the hidden comment op)
    let op = f.iter().rev().find(|(k, _)| k == "op").map_or("", |(_, v)| v.as_str());
    let result: Result<(Option<String>, Option<String>), ApiError> = async {
        match op {
            "claim" => {
                app::cases::claim(&state, who, &id, None).await?;
                Ok((None, Some("Claimed: nobody else can decide it while you hold it.".into())))
            }
            "release" => {
                app::cases::release(&state, who, &id).await?;
                Ok((None, Some("Released back to the queue.".into())))
            }
            "decide" => {
                let choice = crate::app::cases::ReviewerChoice::parse(field(&f, "decision"))
                    .ok_or_else(|| ApiError::invalid("decision", "choose approve, modify or reject"))?;
                let args = if choice == crate::app::cases::ReviewerChoice::Modify {
                    Some(
                        serde_json::from_str::<serde_json::Value>(field(&f, "args"))
                            .map_err(|e| ApiError::invalid("args", format!("the arguments are not valid JSON: {e}")))?,
                    )
                } else {
                    None
                };
                let failure_modes: Vec<String> = field(&f, "failure_modes")
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect();
                let input = crate::app::cases::AnswerInput {
                    choice,
                    rationale: field(&f, "rationale").to_string(),
                    args,
                    failure_modes,
                };
                let u = crate::app::cases::answer(&state, &viewer.who, &id, input).await?;
                let msg = match u.decision.and_then(|d| d.final_verdict) {
                    Some(fv) => format!("Decided: {} — the agent has its answer.", fv.verdict),
                    None => "Your approval is recorded; another reviewer must approve too.".to_string(),
                };
                Ok((Some("/queue".to_string()), Some(msg)))
            }
            "comment" => {
                let role = Some(field(&f, "role").to_string());
                app::cases::comment(&state, who, &id, role, field(&f, "text")).await?;
                Ok((None, Some("Comment added.".into())))
            }
            "promote" => {
                let from = app::cases::load(&state, &id).await?;
                let input = app::reviews::OpenReview {
                    title: format!("Review of {} by {}", from.action_name, from.agent),
                    from_case: Some(from.id.clone()),
                    ..Default::default()
                };
                let review = app::reviews::open(&state, who, input).await?;
                Ok((Some(format!("/reviews/{}", urlencode(&review.id))), Some("Review case opened.".into())))
            }
            _ => Err(ApiError::invalid("op", "unknown action")),
        }
    }
    .await;
    match result {
        Ok((to, msg)) => back(to.as_deref().unwrap_or(&here), None, msg.as_deref()),
        Err(e) => back(&here, Some(&e.detail()), None),
    }
}

// ---------------------------------------------------------------- review

fn options(values: &[&str], selected: &str) -> String {
    values
        .iter()
        .map(|v| format!(r#"<option value="{v}"{}>{v}</option>"#, if *v == selected { " selected" } else { "" }))
        .collect()
}

/// `GET /reviews/{id}`.
pub async fn review(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    render_review(&state, &viewer, &id, &q).await.unwrap_or_else(error_page)
}

async fn render_review(
    state: &AppState,
    viewer: &Viewer,
    id: &str,
    q: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let case = crate::routes::cases::load(state, id).await?;
    let Some(r) = case.review.clone() else {
        return Ok(Redirect::to(&format!("/cases/{}", urlencode(id))).into_response());
    };
    let chain = crate::routes::cases::chain_of(state, &case).await?;
    let csrf = esc(&viewer.csrf);
    let url = format!("/reviews/{}/act", esc(id));
    let mut o = format!(
        r#"<h1>{} <small>{}</small></h1>{}<p>Source <b>{:?}</b> · state <b>{}</b> · opened {}</p>"#,
        esc(&r.title),
        esc(&case.action_name),
        flash(q),
        r.source,
        case.state.as_str(),
        esc(&case.created_at.to_string())
    );
    if !r.description.is_empty() {
        let _ = write!(o, "<p>{}</p>", esc(&r.description));
    }
    let missing = r.missing();
    if missing.is_empty() {
        o.push_str(r#"<p class="ok">Every stage has an entry; the review can close.</p>"#);
    } else {
        let _ = write!(o, r#"<p class="error">Missing before it can close: {}</p>"#, esc(&missing.join("; ")));
    }
    if !r.evidence.is_null() {
        let _ = write!(
            o,
            r#"<details class="card"><summary>Evidence attached when it was opened</summary><pre>{}</pre></details>"#,
            json_pretty(&r.evidence)
        );
    }
    o.push_str(r#"<div class="grid"><div>"#);
    for stage in Stage::ALL {
        let entries: Vec<&StageEntry> = r.entries.iter().filter(|e| e.record.stage() == stage).collect();
        let _ = write!(
            o,
            r#"<div class="card"><h2>{} {}</h2>"#,
            stage_title(stage),
            if entries.is_empty() { "<span class=\"pill\">missing</span>" } else { "<span class=\"pill\">✓</span>" }
        );
        for e in entries {
            let record = serde_json::to_value(&e.record).unwrap_or_default();
            let _ = write!(
                o,
                "<p><b>{}</b> <span class=\"pill\">{}</span> <small>{}</small><br>{}</p><pre>{}</pre>",
                esc(&e.by),
                esc(&e.role),
                esc(&e.at.to_string()),
                esc(&e.rationale),
                json_pretty(&record)
            );
        }
        if case.state != arbiter_core::CaseState::Closed {
            o.push_str(&stage_form(stage, &url, &csrf, viewer, &chain));
        }
        o.push_str("</div>");
    }
    o.push_str("</div><div>");
    o.push_str(r#"<div class="card"><h2>Interventions</h2>"#);
    if r.interventions.is_empty() {
        o.push_str(r#"<p class="muted">None yet (propose them in the resolution design).</p>"#);
    }
    if let Some(why) = &r.no_intervention_needed {
        let _ = write!(o, "<p>No intervention needed: {}</p>", esc(why));
    }
    for i in &r.interventions {
        let _ = write!(
            o,
            r#"<form method="post" action="{url}" class="card"><input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="op" value="intervention"><input type="hidden" name="index" value="{}">
<p><b>{:?}</b>: {} <br><small>owner {} · expected: {}</small></p><label>Status</label><select name="status">{}</select><label>Note</label><input type="text" name="note" value="{}"><button type="submit" class="secondary">Update</button></form>"#,
            i.index,
            i.spec.kind,
            esc(&i.spec.description),
            esc(&i.spec.owner),
            esc(&i.spec.expected_effect),
            options(
                &["proposed", "in_progress", "done", "verified"],
                &serde_json::to_value(i.status).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()
            ),
            esc(i.note.as_deref().unwrap_or(""))
        );
    }
    o.push_str("</div>");
    let roles: String =
        viewer.who.tags.iter().map(|t| format!(r#"<option value="{0}">{0}</option>"#, esc(t))).collect();
    let _ = write!(
        o,
        r#"<div class="card"><h2>Perspectives</h2><ul>{}</ul><form method="post" action="/cases/{}/act"><input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="op" value="comment"><label>Comment</label><textarea name="text" required></textarea><label>Speaking as</label><select name="role">{roles}</select><button type="submit" class="secondary">Add</button></form></div>"#,
        case.comments
            .iter()
            .map(|c| format!(
                "<li><b>{}</b> {}: {}</li>",
                esc(&c.by),
                c.role.as_deref().map(|r| format!(r#"<span class="pill">{}</span>"#, esc(r))).unwrap_or_default(),
                esc(&c.text)
            ))
            .collect::<String>(),
        esc(id)
    );
    if case.state == arbiter_core::CaseState::Closed {
        let _ = write!(
            o,
            r#"<form method="post" action="{url}" class="card"><input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="op" value="reopen"><label>Why reopen</label><input type="text" name="reason" required><button type="submit" class="secondary">Reopen</button></form>"#
        );
    } else {
        let _ = write!(
            o,
            r#"<form method="post" action="{url}" class="card"><input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="op" value="close"><label for="close-reason">Closing remark</label><input type="text" id="close-reason" name="reason" required><button type="submit">Close the review</button></form>"#
        );
    }
    o.push_str(&chain_card(&chain, None));
    o.push_str("</div></div>");
    Ok(page(&r.title, Some(viewer), &o))
}

fn stage_title(s: Stage) -> &'static str {
    match s {
        Stage::ContextualAnalysis => "1. Contextual analysis",
        Stage::TraceInspection => "2. Trace inspection",
        Stage::ImpactAssessment => "3. Impact assessment",
        Stage::ResolutionDesign => "4. Resolution design",
    }
}

fn stage_form(stage: Stage, url: &str, csrf: &str, viewer: &Viewer, chain: &[arbiter_core::Decision]) -> String {
    let roles: String =
        viewer.who.tags.iter().map(|t| format!(r#"<option value="{0}">{0}</option>"#, esc(t))).collect();
    let decisions: String = chain
        .iter()
        .map(|d| format!(r#"<option value="{0}">{1} · {0}</option>"#, esc(&d.id), esc(&d.action.name)))
        .collect();
    let s = stage.as_str();
    let fields = match stage {
        Stage::ContextualAnalysis => format!(
            r#"<label>Reproduced</label><select name="reproduced">{}</select><label>Steps (one per line)</label><textarea name="steps" required></textarea><label>Environment</label><input type="text" name="environment" required><label>Linked decisions (ids, one per line)</label><textarea name="links"></textarea>"#,
            options(&["yes", "partly", "no"], "yes")
        ),
        Stage::TraceInspection => format!(
            r#"<label>Decision</label><select name="decision_id">{decisions}</select><label>Trace span (optional)</label><input type="text" name="span_id"><label>Kind</label><select name="kind">{}</select><label>Finding</label><textarea name="note" required></textarea>"#,
            options(
                &["misread_intent", "wrong_action", "wrong_arguments", "missing_context", "tool_failure", "other"],
                "wrong_action"
            )
        ),
        Stage::ImpactAssessment => format!(
            r#"<label>Severity</label><select name="severity">{}</select><label>Entities affected (count)</label><input type="number" name="count" min="0" value="1"><label>Entities (kind:id, one per line)</label><textarea name="entities"></textarea><label>Technical correctness</label><textarea name="technical_correctness" required></textarea><label>User experience</label><textarea name="user_experience" required></textarea>"#,
            options(&["S1", "S2", "S3", "S4"], "S3")
        ),
        Stage::ResolutionDesign => format!(
            r#"<label>Intervention</label><select name="kind">{}</select><label>Description</label><input type="text" name="description"><label>Owner</label><input type="text" name="owner"><label>Expected effect</label><input type="text" name="expected_effect"><label>…or why no intervention is needed</label><input type="text" name="no_intervention_needed">"#,
            options(
                &[
                    "prompt_refinement",
                    "workflow_redesign",
                    "new_skill",
                    "tool_change",
                    "policy_change",
                    "ux_change",
                    "training"
                ],
                "policy_change"
            )
        ),
    };
    format!(
        r#"<details><summary>Add an entry</summary><form method="post" action="{url}"><input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="op" value="stage"><input type="hidden" name="stage" value="{s}">{fields}
<label>Your role</label><select name="role">{roles}</select><label>Rationale</label><textarea name="rationale" required></textarea><button type="submit">Record</button></form></details>"#
    )
}

fn stage_record(f: &Fields) -> Result<StageRecord, ApiError> {
    let bad = |field: &str, m: &str| ApiError::invalid(field, m);
    Ok(match field(f, "stage") {
        "contextual_analysis" => StageRecord::ContextualAnalysis(ContextualAnalysis {
            reproduced: serde_json::from_value(serde_json::json!(field(f, "reproduced")))
                .map_err(|_| bad("reproduced", "yes, partly or no"))?,
            steps: lines(field(f, "steps")),
            environment: field(f, "environment").trim().to_string(),
            links: lines(field(f, "links"))
                .into_iter()
                .map(|d| Link { decision_id: Some(d), ..Link::default() })
                .collect(),
        }),
        "trace_inspection" => StageRecord::TraceInspection(TraceInspection {
            findings: vec![Finding {
                decision_id: field(f, "decision_id").to_string(),
                span_id: Some(field(f, "span_id").trim().to_string()).filter(|s| !s.is_empty()),
                kind: serde_json::from_value(serde_json::json!(field(f, "kind")))
                    .map_err(|_| bad("kind", "unknown finding kind"))?,
                note: field(f, "note").trim().to_string(),
            }],
        }),
        "impact_assessment" => StageRecord::ImpactAssessment(ImpactAssessment {
            severity: serde_json::from_value(serde_json::json!(field(f, "severity")))
                .map_err(|_| bad("severity", "S1 to S4"))?,
            scope: Scope {
                count: field(f, "count").trim().parse().map_err(|_| bad("count", "a whole number"))?,
                entities: lines(field(f, "entities"))
                    .into_iter()
                    .map(|l| match l.split_once(':') {
                        Some((k, i)) => Entity { kind: k.trim().to_string(), id: i.trim().to_string() },
                        None => Entity { kind: "entity".into(), id: l },
                    })
                    .collect(),
            },
            technical_correctness: field(f, "technical_correctness").trim().to_string(),
            user_experience: field(f, "user_experience").trim().to_string(),
        }),
        "resolution_design" => {
            let why = field(f, "no_intervention_needed").trim();
            if why.is_empty() {
                StageRecord::ResolutionDesign(ResolutionDesign {
                    interventions: vec![InterventionSpec {
                        kind: serde_json::from_value(serde_json::json!(field(f, "kind")))
                            .map_err(|_| bad("kind", "unknown intervention kind"))?,
                        description: field(f, "description").trim().to_string(),
                        owner: field(f, "owner").trim().to_string(),
                        expected_effect: field(f, "expected_effect").trim().to_string(),
                    }],
                    no_intervention_needed: None,
                })
            } else {
                StageRecord::ResolutionDesign(ResolutionDesign {
                    interventions: vec![],
                    no_intervention_needed: Some(why.to_string()),
                })
            }
        }
        _ => return Err(bad("stage", "unknown stage")),
    })
}

/// `POST /reviews/{id}/act`: stage entries, interventions, close, reopen.
pub async fn review_act(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(f): Form<Fields>,
) -> Response {
    let here = format!("/reviews/{}", urlencode(&id));
    if let Err(e) = viewer.check_csrf(field(&f, "csrf")) {
        return error_page(e);
    }
    let who = &viewer.who;
    let result: Result<&str, ApiError> = async {
        match field(&f, "op") {
            "stage" => {
                let record = stage_record(&f)?;
                let role = field(&f, "role").to_string();
                app::reviews::record_stage(&state, who, &id, role, field(&f, "rationale"), record).await?;
                Ok("Entry recorded.")
            }
            "intervention" => {
                let index = field(&f, "index").parse().map_err(|_| ApiError::invalid("index", "a number"))?;
                let status = InterventionStatus::parse(field(&f, "status"))
                    .ok_or_else(|| ApiError::invalid("status", "unknown status"))?;
                let note = Some(field(&f, "note").trim().to_string()).filter(|n| !n.is_empty());
                app::reviews::update_intervention(&state, who, &id, index, status, note).await?;
                Ok("Intervention updated.")
            }
            "close" => {
                app::reviews::close(&state, who, &id, field(&f, "reason")).await?;
                Ok("Review closed.")
            }
            "reopen" => {
                app::reviews::reopen(&state, who, &id, field(&f, "reason")).await?;
                Ok("Review reopened.")
            }
            _ => Err(ApiError::invalid("op", "unknown action")),
        }
    }
    .await;
    match result {
        Ok(msg) => back(&here, None, Some(msg)),
        Err(e) => back(&here, Some(&e.detail()), None),
    }
}

// ---------------------------------------------------------------- dashboard

/// `GET /dashboard`.
pub async fn dashboard(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let hours: i64 = q.get("hours").and_then(|h| h.parse().ok()).unwrap_or(24).clamp(1, 24 * 90);
    let now = state.clock.now();
    let since = now.plus_millis(-hours * 3_600_000);
    let d = match state.store.dashboard(since).await {
        Ok(d) => d,
        Err(e) => return error_page(e.into()),
    };
    let budget = 0.10;
    let points: Vec<(f64, f64)> = d
        .hourly
        .iter()
        .map(|h| ((h.hour.0 - since.0) as f64 / 3_600_000.0, h.escalated as f64 / h.decisions.max(1) as f64))
        .collect();
    let chart = Chart {
        title: format!("Escalation rate per hour, last {hours} h"),
        x_label: "hours".into(),
        y_label: "share escalated".into(),
        series: vec![Series { name: "escalated".into(), points, color: "#0a6ebd", dashed: false }],
        markers: vec![],
        hline: Some((budget, "budget 10%".into())),
    };
    let total: u64 = d.hourly.iter().map(|h| h.decisions).sum();
    let escalated: u64 = d.hourly.iter().map(|h| h.escalated).sum();
    let mut ttd: Vec<f64> = d.time_to_decision_ms.iter().map(|m| *m as f64).collect();
    ttd.sort_by(f64::total_cmp);
    let p = |q: f64| human_ms(arbiter_core::stats::quantile_sorted(&ttd, q) as i64);
    let mut classes: std::collections::BTreeMap<&str, [u64; 3]> = Default::default();
    for c in &d.by_class {
        let slot = classes.entry(c.action.as_str()).or_default();
        slot[c.verdict as usize] += c.decisions;
    }
    let max = classes.values().map(|c| c.iter().sum::<u64>()).max().unwrap_or(1).max(1);
    let mut rows = String::new();
    for (a, c) in &classes {
        let sum: u64 = c.iter().sum();
        let _ = write!(
            rows,
            r##"<tr><td>{}</td><td>{sum}</td><td>{}</td><td>{}</td><td>{}</td><td><svg width="200" height="10" role="img" aria-label="{sum} decisions"><title>{sum} decisions</title><rect width="{}" height="10" fill="#0a6ebd"/></svg></td></tr>"##,
            esc(a),
            c[0],
            c[1],
            c[2],
            (sum * 200 / max).max(1)
        );
    }
    let count = |kind: CaseKind| -> u64 { d.open_cases.iter().filter(|c| c.kind == kind).map(|c| c.cases).sum() };
    let (open, reviews) = (count(CaseKind::Approval), count(CaseKind::Review));
    let mut drift = String::from("<p class=\"muted\">No drift evaluation yet.</p>");
    if let Some(s) = state.drift_status() {
        drift = String::from(
            "<table><thead><tr><th>Action</th><th>Share</th><th>Escalated</th><th>Wrong</th><th>PSI</th></tr></thead><tbody>",
        );
        for c in &s.report.classes {
            let r = |t: &arbiter_core::drift::RateTest| {
                format!("{:.1}% → {:.1}%", 100.0 * t.reference_rate, 100.0 * t.rate)
            };
            let _ = write!(
                drift,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&c.action),
                r(&c.share),
                r(&c.escalation_rate),
                r(&c.error_rate),
                c.psi.map_or("–".into(), |p| format!("{p:.2}"))
            );
        }
        drift.push_str("</tbody></table>");
        for a in &s.report.alarms {
            let _ = write!(drift, r#"<p class="error">ALARM: {}</p>"#, esc(&a.summary));
        }
    }
    let body = format!(
        r#"<h1>Dashboard <small>last {hours} hours</small></h1>
<div class="grid"><div class="card"><h2>Decisions</h2><p><b>{total}</b> decisions, <b>{escalated}</b> escalated ({:.1}%, budget {:.0}%)</p>
<p>Open approval cases: <b>{open}</b> · open reviews: <b>{reviews}</b></p><p>Time to decision: p50 <b>{}</b>, p95 <b>{}</b> ({} decided)</p>
<p>SLA: <b>{}</b> tier escalations, <b>{}</b> fallbacks after the SLA · drift alarms: <b>{}</b></p></div>
<div class="card">{}</div></div>
<h2>By action class</h2><table><thead><tr><th>Action</th><th>Decisions</th><th>Allowed</th><th>Escalated</th><th>Denied</th><th></th></tr></thead><tbody>{rows}</tbody></table>
<h2>Drift</h2>{drift}
<p class="muted"><a href="/dashboard?hours=1">1 h</a> · <a href="/dashboard?hours=24">24 h</a> · <a href="/dashboard?hours=168">7 days</a></p>"#,
        100.0 * escalated as f64 / total.max(1) as f64,
        100.0 * budget,
        p(0.5),
        p(0.95),
        ttd.len(),
        d.tier_escalations,
        d.sla_fallbacks,
        d.drift_alarms,
        chart.svg()
    );
    page("Dashboard", Some(&viewer), &body)
}

// ---------------------------------------------------------------- policy

/// A line diff (longest common subsequence), as HTML.
fn diff(a: &str, b: &str) -> String {
    let (x, y): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    let (n, m) = (x.len(), y.len());
    if n * m > 4_000_000 {
        return "<p class=\"muted\">Too large to diff here.</p>".into();
    }
    let mut l = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            l[i][j] = if x[i] == y[j] { l[i + 1][j + 1] + 1 } else { l[i + 1][j].max(l[i][j + 1]) };
        }
    }
    let (mut i, mut j, mut o) = (0, 0, String::from(r#"<div class="diff"><pre>"#));
    while i < n || j < m {
        if i < n && j < m && x[i] == y[j] {
            let _ = writeln!(o, "  {}", esc(x[i]));
            i += 1;
            j += 1;
        } else if j < m && (i == n || l[i][j + 1] >= l[i + 1][j]) {
            let _ = writeln!(o, r#"<span class="add">+ {}</span>"#, esc(y[j]));
            j += 1;
        } else {
            let _ = writeln!(o, r#"<span class="del">- {}</span>"#, esc(x[i]));
            i += 1;
        }
    }
    o.push_str("</pre></div>");
    o
}

/// `GET /policy`: the active version, history, a diff between two versions.
pub async fn policy(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let versions = match state.store.policy_versions().await {
        Ok(v) => v,
        Err(e) => return error_page(e.into()),
    };
    let active = versions.iter().find(|v| v.active);
    let csrf = esc(&viewer.csrf);
    let mut o = format!("<h1>Policy</h1>{}", flash(&q));
    if let (Some(a), Some(p)) = (active, state.policy()) {
        let _ = write!(
            o,
            r#"<p>Active: <b>{}</b> <code>{}</code> · {} triggers · activated {}</p>"#,
            esc(&a.name),
            esc(&a.hash[..12]),
            p.trigger_count(),
            esc(&a.last_activated_at.map(|t| t.to_string()).unwrap_or_default())
        );
    }
    o.push_str("<h2>Versions</h2><table><thead><tr><th>Name</th><th>Hash</th><th>Stored</th><th>By</th><th></th></tr></thead><tbody>");
    let opts: String = versions
        .iter()
        .map(|v| format!(r#"<option value="{}">{} · {}</option>"#, esc(&v.hash), esc(&v.name), esc(&v.hash[..12])))
        .collect();
    for v in &versions {
        let _ = write!(
            o,
            "<tr><td>{}{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td><a href=\"/policy?view={}\">source</a></td></tr>",
            esc(&v.name),
            if v.active { " <span class=\"pill\">active</span>" } else { "" },
            esc(&v.hash[..12]),
            esc(&v.created_at.to_string()),
            esc(&v.created_by),
            esc(&v.hash)
        );
    }
    o.push_str("</tbody></table>");
    let _ = write!(
        o,
        r#"<div class="grid"><form method="get" action="/policy" class="card"><h2>Compare two versions</h2><label>From</label><select name="from">{opts}</select><label>To</label><select name="to">{opts}</select><button type="submit" class="secondary">Diff</button></form>
<form method="post" action="/policy/backtest" class="card"><h2>Backtest</h2><input type="hidden" name="csrf" value="{csrf}"><label>Version to test</label><select name="hash">{opts}</select><p class="muted">Replays the most recent 100,000 decisions with recorded outcomes beside the active version.</p><button type="submit">Run backtest</button></form></div>"#
    );
    let get = |h: &str| {
        let store = state.store.clone();
        let h = h.to_string();
        async move { store.policy_version(&h).await.ok().flatten() }
    };
    if let (Some(f), Some(t)) = (q.get("from"), q.get("to"))
        && let (Some(a), Some(b)) = (get(f).await, get(t).await)
    {
        let _ =
            write!(o, "<h2>Diff {} → {}</h2>{}", esc(&a.hash[..12]), esc(&b.hash[..12]), diff(&a.source, &b.source));
    }
    if let Some(h) = q.get("view")
        && let Some(v) = get(h).await
    {
        let _ = write!(o, "<h2>Source of {}</h2><pre>{}</pre>", esc(&v.hash[..12]), esc(&v.source));
    }
    page("Policy", Some(&viewer), &o)
}

/// `POST /policy/backtest`: run a backtest and show the results with a plot.
pub async fn policy_backtest(State(state): State<Arc<AppState>>, viewer: Viewer, Form(f): Form<Fields>) -> Response {
    if let Err(e) = viewer.check_csrf(field(&f, "csrf")) {
        return error_page(e);
    }
    let hash = field(&f, "hash").to_string();
    let run = async {
        let v = state
            .store
            .policy_version(&hash)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("policy version {hash}")))?;
        let new = arbiter_policy::Policy::parse(&v.source).map_err(|e| ApiError::Internal(e.to_string()))?;
        let current = state.policy();
        let decisions = state.store.labelled_decisions(100_000).await?;
        let report = tokio::task::spawn_blocking(move || {
            let mut bt = arbiter_policy::backtest::Backtest::new(&new, current.as_deref());
            for d in &decisions {
                bt.add_decision(d);
            }
            bt.finish()
        })
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
        Ok::<_, ApiError>(report)
    };
    let report = match run.await {
        Ok(r) => r,
        Err(e) => return back("/policy", Some(&e.detail()), None),
    };
    let mut o = String::from(
        "<h1>Backtest</h1><table><thead><tr><th></th><th>Policy</th><th>Decisions</th><th>Escalated</th><th>Auto-error rate</th><th>Caught</th><th>Missed</th></tr></thead><tbody>",
    );
    let mut bars = Vec::new();
    for (label, s) in [("tested", Some(&report.new)), ("active", report.current.as_ref())] {
        let Some(s) = s else { continue };
        let _ = write!(
            o,
            "<tr><td>{label}</td><td>{} <code>{}</code></td><td>{}</td><td>{:.1}%</td><td>{:.2}%</td><td>{}</td><td>{}</td></tr>",
            esc(&s.policy),
            esc(&s.hash[..12]),
            s.decisions,
            100.0 * s.escalation_rate,
            100.0 * s.auto_error_rate,
            s.errors_caught,
            s.errors_missed
        );
        bars.push((label, s.escalation_rate, s.auto_error_rate));
    }
    o.push_str("</tbody></table>");
    let chart = Chart {
        title: "Escalation rate vs auto-error rate".into(),
        x_label: "escalation rate".into(),
        y_label: "auto-error rate".into(),
        series: vec![],
        markers: bars
            .iter()
            .map(|(l, e, a)| arbiter_core::chart::Marker {
                at: (*e, *a),
                label: format!("{l}: {:.1}% / {:.2}%", 100.0 * e, 100.0 * a),
            })
            .collect(),
        hline: None,
    };
    let _ = write!(
        o,
        r#"<div class="card">{}</div><h2>{} decisions would change verdict</h2><ul>"#,
        chart.svg(),
        report.changed
    );
    for c in &report.changes {
        let _ = write!(
            o,
            "<li>{} → {}: {} ({} wrong actions) e.g. {}</li>",
            c.from,
            c.to,
            c.count,
            c.wrong,
            esc(&c.examples.join(", "))
        );
    }
    o.push_str("</ul><p><a href=\"/policy\">Back to the policy</a></p>");
    page("Backtest", Some(&viewer), &o)
}

#[cfg(test)]
mod tests {
    use super::super::csrf_token;
    use super::*;

    #[test]
    fn sessions_and_csrf() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let v = super::super::session_value(secret, "abc123");
        assert_eq!(super::super::check_session(secret, &v), Some("abc123"));
        assert_eq!(super::super::check_session(b"another secret", &v), None, "forged");
        let tampered = v.replacen("abc123", "abc124", 1);
        assert_eq!(super::super::check_session(secret, &tampered), None);
        assert_eq!(super::super::check_session(secret, "abc123"), None, "no MAC");
        assert_ne!(csrf_token(secret, &v), csrf_token(secret, &tampered));
        assert_eq!(safe_next("//evil.example/x"), "/queue");
        assert_eq!(safe_next("https://evil.example"), "/queue");
        assert_eq!(safe_next("/cases/1"), "/cases/1");
    }

    #[test]
    fn diffs_lines() {
        let d = diff("a\nb\nc\n", "a\nx\nc\n");
        assert!(d.contains(r#"<span class="del">- b</span>"#) && d.contains(r#"<span class="add">+ x</span>"#));
        assert!(diff("<x>", "<y>").contains("&lt;y&gt;"));
    }
}
