//! `GET /cases/{id}`: an approval case with everything needed to answer it
//! (the proposed action, why it escalated, the modification so far, the
//! timeline and the decision chain), and its forms.

use super::auth::ConsoleScope;
use super::auth::Viewer;
use super::forms::{self, Fields, field, last};
use super::layout::{
    QueryMap, done, error_page, failed, flash, frame, join, json_block, rich, severity, short, subject, urlencode, when,
};
use crate::AppState;
use crate::app;
use crate::error::ApiError;
use crate::extract::{Path, Query};
use arbiter_api::cases::ReviewerChoice;
use arbiter_api::learning::CaseInsights;
use arbiter_core::audit::Event;
use arbiter_core::insight::BlastRadius;
use arbiter_core::{Case, CaseKind, Claim, Decision, FinalSource, Verdict, WireName};
use axum::Form;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};

/// `GET /cases/{id}` (a review case redirects to its own page).
pub async fn page(
    ConsoleScope(state): ConsoleScope,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(q): Query<QueryMap>,
) -> Response {
    render(&state, &viewer, &id, &q).await.unwrap_or_else(error_page)
}

async fn render(state: &AppState, viewer: &Viewer, id: &str, q: &QueryMap) -> Result<Response, ApiError> {
    let case = app::cases::load(state, id).await?;
    if case.kind == CaseKind::Review {
        return Ok(Redirect::to(&format!("/reviews/{}", urlencode(id))).into_response());
    }
    let decision = match &case.decision_id {
        Some(d) => state.store.decision(d).await?,
        None => None,
    };
    let events = state.store.case_events(id).await?;
    let chain = app::cases::chain_of(state, &case).await?;
    let insights = app::learning::insights(state, id).await?;
    let run = match &decision {
        Some(d) => app::traces::decision_trace(state, d).await?,
        None => None,
    };
    let now = state.clock.now();
    let held = case.held_at(now);
    // the threshold of the version that decided it, not today's
    let threshold = match &decision {
        Some(d) if d.threshold.is_some() => d.threshold,
        Some(d) => {
            state.policy_version(&d.policy_hash).await.ok().and_then(|p| p.class_config(&d.action.name).auto_allow_at)
        }
        None => None,
    };
    let fin = decision.as_ref().and_then(|d| d.final_verdict.as_ref());
    let body = html! {
        h1 {
            (severity(case.escalation.severity)) " " (case.action_name)
            @if let Some(s) = &case.subject { " " (subject(s)) }
            " " small { "from " (case.agent) }
        }
        (flash(q))
        @if case.kind == CaseKind::Audit {
            p {
                "Audit of an allowed decision (drawn with probability " (audit_probability(decision.as_ref())) ")"
                " · state " b { (case.state.as_str()) }
                @if case.is_active() {
                    " · label within " (super::layout::countdown(super::layout::ServerTime::of(state), case.sla_deadline))
                    @if let Some(h) = held { " · claimed by " b { (h.by) } " until " (when(h.until)) }
                }
            }
        } @else if case.is_active() {
            p {
                "State " b { (case.state.as_str()) }
                " · tier " (case.tier + 1) " (" (join(case.current_reviewers())) ")"
                " · SLA " (super::layout::countdown(super::layout::ServerTime::of(state), case.sla_deadline))
                " · needs " (case.escalation.approvals) " approval(s), " (case.approvals()) " so far"
                " · fallback " b { (case.escalation.fallback.to_string()) }
                @if let Some(h) = held { " · claimed by " b { (h.by) } " until " (when(h.until)) }
            }
        } @else if let Some(f) = fin {
            p.decided { "Decided: " b { (verdict_text(f.verdict, f.action.is_some())) } " by " (source_label(f.source)) " · " (when(f.decided_at)) }
        }
        div.grid {
            div {
                @if let (Some(d), Some(_), false) = (&decision, fin, case.kind == CaseKind::Audit) { (decision_record(&case, d)) }
                @if let Some(d) = &decision { (proposed_action(d, threshold)) }
                (super::trace::card(run.as_ref()))
                @if case.kind == CaseKind::Audit && case.is_active() { (label_card(viewer, &case, held)) }
                @else if case.is_active() { (decide_card(state, viewer, &case, decision.as_ref(), held)) }
                @if let (Some(d), false) = (&decision, case.is_active()) { (outcome_card(viewer, &case, d)) }
                (comments_card(viewer, &case))
            }
            div {
                (blast_card(&insights.blast_radius))
                (similar_card(&insights))
                (timeline(&events, decision.as_ref()))
                (chain_card(&chain, case.decision_id.as_deref()))
            }
        }
    };
    Ok(frame(&format!("Case {}", case.action_name), Some(viewer), body))
}

fn proposed_action(d: &Decision, threshold: Option<f64>) -> Markup {
    let threshold = match threshold {
        Some(t) if t.is_infinite() => "never auto-allowed".to_string(),
        Some(t) => format!("class threshold {t} in policy {}", short(&d.policy_hash)),
        None => format!("no threshold in policy {}", short(&d.policy_hash)),
    };
    let non_empty = |v: &serde_json::Value| v.as_object().is_some_and(|m| !m.is_empty());
    html! {
        div.card {
            h2 { "Proposed action" }
            p {
                b { (d.action.name) } " · confidence "
                b { (d.action.confidence.map_or("none given".to_string(), |c| format!("{c:.3}"))) }
                " " small { "(" (threshold) ")" }
            }
            (json_block(&d.action.args))
            @if non_empty(&d.action.signals) { h2 { "Signals" } (json_block(&d.action.signals)) }
            @if non_empty(&d.context) { h2 { "Context" } (json_block(&d.context)) }
            h2 { "Why it escalated" }
            p { (rich(&d.explanation)) }
            ul {
                @for t in &d.triggers { li { b { (t.name) } " (" (t.verdict.to_string()) "): " (rich(&t.reason)) } }
            }
            p.muted { "Policy version " code { (short(&d.policy_hash)) } }
        }
    }
}

fn decide_card(
    state: &AppState,
    viewer: &Viewer,
    case: &Case,
    decision: Option<&Decision>,
    held: Option<&Claim>,
) -> Markup {
    let action_url = format!("/cases/{}/act", case.id);
    // The arguments as they stand: the latest modification, or the proposed ones.
    let current = case.candidate_args().cloned().or_else(|| decision.map(|d| d.action.args.clone()));
    let args = current.map_or_else(|| "{}".to_string(), |a| serde_json::to_string_pretty(&a).unwrap_or_default());
    html! {
        div.card {
            h2 { "Decide" }
            @match held {
                Some(h) if h.key_id == viewer.who.key_id => {
                    form.inline method="post" action=(action_url) {
                        (viewer.csrf_field())
                        button.secondary type="submit" name="op" value="release" { "Release" }
                        button.secondary type="submit" name="op" value="claim" { "Renew claim" }
                    }
                }
                Some(h) => { p.muted { (h.by) " holds this case." } }
                None => {
                    form.inline method="post" action=(action_url) {
                        (viewer.csrf_field())
                        button type="submit" name="op" value="claim" accesskey="c" { "Claim" }
                    }
                }
            }
            @if let (Some(m), Some(d)) = (case.candidate_args(), decision) {
                p { b { "A reviewer modified the arguments." } " Approving now approves these:" }
                (arg_changes(&d.action.args, m))
            }
            form method="post" action=(action_url) {
                (viewer.csrf_field())
                input type="hidden" name="op" value="decide";
                fieldset.choices {
                    legend.muted { "Your answer " small { "(keys: " kbd { "a" } " approve, " kbd { "r" } " reject, " kbd { "m" } " modify)" } }
                    @for c in ReviewerChoice::all() {
                        label.choice {
                            input type="radio" name="decision" value=(c.wire_name()) required;
                            " " (choice_label(*c))
                        }
                    }
                }
                div #modify-args {
                    label for="args" { "Arguments the agent will receive (JSON, for “modify”)" }
                    textarea #args name="args" rows="6" { (args) }
                }
                label for="rationale" { "Rationale (required)" }
                textarea #rationale name="rationale" required minlength=(state.config.min_rationale_len) {}
                label for="failure_modes" { "Failure-mode tags (optional, comma-separated)" }
                input type="text" #failure_modes name="failure_modes";
                button type="submit" { "Submit decision" }
            }
        }
    }
}

fn audit_probability(d: Option<&Decision>) -> String {
    d.and_then(|d| d.audit).map_or_else(|| "–".to_string(), |a| format!("{}", a.probability))
}

/// The `correct` radio pair of the outcome and label forms (none pre-selected).
fn right_or_wrong(question: &str, yes: &str, no: &str) -> Markup {
    html! {
        fieldset.choices {
            legend.muted { (question) }
            label.choice { input type="radio" name="correct" value="true" required; " " (yes) }
            label.choice { input type="radio" name="correct" value="false"; " " (no) }
        }
    }
}

/// The answer to [`right_or_wrong`].
fn right_or_wrong_field(f: &Fields) -> Result<bool, ApiError> {
    match field(f, "correct") {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ApiError::invalid("correct", "choose whether the action was right or wrong")),
    }
}

/// The audit's question: the agent already acted; was the allowed action right?
fn label_card(viewer: &Viewer, case: &Case, held: Option<&Claim>) -> Markup {
    let action_url = format!("/cases/{}/act", case.id);
    html! {
        div.card #label {
            h2 { "Label this audit" }
            p.muted {
                "The policy allowed this action and the agent went ahead; it was drawn at random for a person to check. "
                "Your label is the decision's outcome: tuning weights it to estimate the error rate of everything the policy allows."
            }
            @match held {
                Some(h) if h.key_id == viewer.who.key_id => {
                    form.inline method="post" action=(action_url) {
                        (viewer.csrf_field())
                        button.secondary type="submit" name="op" value="release" { "Release" }
                    }
                }
                Some(h) => { p.muted { (h.by) " holds this audit." } }
                None => {
                    form.inline method="post" action=(action_url) {
                        (viewer.csrf_field())
                        button.secondary type="submit" name="op" value="claim" { "Claim" }
                    }
                }
            }
            form method="post" action=(action_url) {
                (viewer.csrf_field())
                input type="hidden" name="op" value="label";
                (right_or_wrong("Was the allowed action right?", "Right", "Wrong"))
                label for="label-note" { "What you saw (optional)" }
                input type="text" #label-note name="note";
                button type="submit" { "Record the label" }
            }
        }
    }
}

fn blast_card(b: &BlastRadius) -> Markup {
    let pct = |r: f64| format!("{:.0}%", 100.0 * r);
    html! {
        div.card #blast-radius {
            h2 { "Blast radius" }
            p { (rich(&b.summary)) }
            ul {
                li { "Distinct subjects: " b { (b.distinct_subjects_hour) } " in the last hour, " b { (b.distinct_subjects_day) } " in the last day" }
                li {
                    "The agent over 7 days: " b { (pct(b.escalation_rate_7d)) } " escalated"
                    @if let Some(r) = b.override_rate_7d { ", " b { (pct(r)) } " of its reviewed actions refused or changed by people" }
                }
            }
            @if !b.subject_history.is_empty() {
                h2 { "Earlier on " (b.subject.as_deref().unwrap_or("this subject")) }
                ul {
                    @for h in &b.subject_history {
                        li {
                            (super::layout::when(h.at)) " " (h.action) " → " b { (h.verdict.map_or("pending".to_string(), |v| v.to_string())) }
                            @if let Some(r) = &h.rationale { ": " (r) }
                        }
                    }
                }
            }
        }
    }
}

fn similar_card(i: &CaseInsights) -> Markup {
    html! {
        div.card #similar {
            h2 { "Similar past cases and lessons" }
            @if i.similar_cases.is_empty() && i.similar_lessons.is_empty() { p.muted { "Nothing similar yet." } }
            ul {
                @for l in &i.similar_lessons {
                    li {
                        span.pill { "lesson" } " " a href={ "/lessons/" (urlencode(&l.lesson_id)) } { (l.title) }
                        " " small { "similarity " (format!("{:.2}", l.score)) }
                        br; span.muted { (l.summary) }
                    }
                }
                @for c in &i.similar_cases {
                    li {
                        (c.action) " " (c.subject.as_deref().unwrap_or("")) " → "
                        b { (c.verdict.map_or("pending".to_string(), |v| v.to_string())) }
                        @if c.modified { " (modified)" }
                        @if let Some(r) = &c.rationale { ": " (r) }
                        " " small { (super::layout::when(c.at)) " · similarity " (format!("{:.2}", c.score))
                            @if let Some(ok) = c.correct { " · the action was " @if ok { "right" } @else { "wrong" } } }
                    }
                }
            }
        }
    }
}

fn source_label(s: FinalSource) -> &'static str {
    match s {
        FinalSource::Review => "reviewers",
        FinalSource::Policy => "the policy",
        FinalSource::SlaExpired => "the SLA fallback (nobody answered in time)",
        FinalSource::AgentCaseCap => "the open-case cap (the fallback applied at once)",
        FinalSource::Withdrawn => "the agent, which withdrew it",
    }
}

fn verdict_text(v: Verdict, modified: bool) -> &'static str {
    match (v, modified) {
        (Verdict::Allow, true) => "allowed with modified arguments",
        (Verdict::Allow, false) => "allowed",
        (Verdict::Deny, _) => "denied",
        (Verdict::Escalate, _) => "escalated",
    }
}

/// The decision record of a decided case: the verdict, who settled it and
/// when, every answer with its rationale and tags, and what a modification changed.
fn decision_record(case: &Case, d: &Decision) -> Markup {
    let Some(f) = &d.final_verdict else { return html! {} };
    html! {
        div.card #decision {
            h2 { "Decision" }
            p {
                b.verdict { (verdict_text(f.verdict, f.action.is_some())) } " by " (source_label(f.source)) " · " (when(f.decided_at))
                @if !f.decided_by.is_empty() { br; "Answered by " b { (f.decided_by.join(", ")) } }
            }
            @if f.source != FinalSource::Review { p { (rich(&f.rationale)) } }
            @if let Some(a) = &f.action {
                p { "The agent runs these arguments instead of its own:" }
                (arg_changes(&d.action.args, &a.args))
            }
            @if let Some(r) = &d.tool_result {
                h2 { "What the tool returned" @if r.is_error { " " span.pill.error-text { "error" } } }
                p.muted { "Recorded by " (r.recorded_by) " · " (when(r.recorded_at)) @if r.truncated { " · cut at 16 KiB" } }
                (json_block(&r.content))
            }
            @if !case.answers.is_empty() {
                h2 { "Answers" }
                ol {
                    @for a in &case.answers {
                        li {
                            b { (a.by) } " " (match (a.verdict, a.modified_args.is_some()) {
                                (_, true) => "modified and approved",
                                (Verdict::Allow, false) => "approved",
                                (Verdict::Deny, false) => "rejected",
                                (Verdict::Escalate, false) => "escalated",
                            })
                            " · " (when(a.at))
                            @for m in &a.failure_modes { " " span.pill { (m) } }
                            br; (a.rationale)
                        }
                    }
                }
            }
        }
    }
}

/// What became of it: the outcome recorded so far, and the form to record one.
fn outcome_card(viewer: &Viewer, case: &Case, d: &Decision) -> Markup {
    html! {
        div.card #outcome {
            h2 { "Outcome" }
            @match &d.outcome {
                Some(o) => p {
                    "The proposed action was " b { @if o.correct { "right" } @else { "wrong" } }
                    " (recorded by " (o.recorded_by) ", " (when(o.recorded_at)) ")"
                    @if let Some(l) = &o.label { " " span.pill { (l) } }
                    @if let Some(c) = o.cost { " · cost " (c) }
                    @if let Some(n) = &o.note { br; (n) }
                },
                None => p.muted { "Not recorded yet. Tuning, backtests, drift and recurrence learn from outcomes." },
            }
            form method="post" action={ "/cases/" (case.id) "/act" } {
                (viewer.csrf_field())
                input type="hidden" name="op" value="outcome";
                (right_or_wrong("Was the agent's proposed action right?", "Correct", "Incorrect"))
                label for="outcome-cost" { "Cost (optional, in your team's unit)" }
                input type="number" #outcome-cost name="cost" step="any";
                label for="outcome-label" { "Label (optional, e.g. false_positive)" }
                input type="text" #outcome-label name="label";
                label for="outcome-note" { "How you found out (optional)" }
                input type="text" #outcome-note name="note" placeholder="ticket reopened, alert confirmed, customer complaint";
                button.secondary type="submit" { "Record the outcome" }
            }
        }
    }
}

fn choice_label(c: ReviewerChoice) -> &'static str {
    match c {
        ReviewerChoice::Approve => "Approve",
        ReviewerChoice::Modify => "Modify and approve",
        ReviewerChoice::Reject => "Reject",
    }
}

fn comments_card(viewer: &Viewer, case: &Case) -> Markup {
    html! {
        div.card {
            h2 { "Comments" }
            ul {
                @for c in &case.comments {
                    li {
                        b { (c.by) } " "
                        @if let Some(r) = &c.role { span.pill { (r) } " " }
                        small { (super::layout::when(c.at)) } ": " (c.text)
                    }
                }
            }
            form method="post" action={ "/cases/" (case.id) "/act" } {
                (viewer.csrf_field())
                input type="hidden" name="op" value="comment";
                label for="comment" { "Comment" }
                textarea #comment name="text" required {}
                label for="role" { "Speaking as" }
                select #role name="role" { option value="" { "(no role)" } (forms::tag_options(&viewer.who.tags)) }
                button.secondary type="submit" { "Add comment" }
                button.secondary type="submit" name="op" value="promote" formnovalidate { "Open a review case from this" }
            }
        }
    }
}

/// What a modification changed, one line per argument.
fn arg_changes(proposed: &serde_json::Value, modified: &serde_json::Value) -> Markup {
    html! {
        ul.diff { @for change in arbiter_core::diff::args_diff(proposed, modified) { li { code { (change.to_string()) } } } }
    }
}

fn timeline(events: &[Event], decision: Option<&Decision>) -> Markup {
    let proposed = decision.map(|d| d.action.args.clone()).unwrap_or_default();
    let names = |v: &serde_json::Value| -> String {
        v.as_array().map(|a| a.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(", ")).unwrap_or_default()
    };
    html! {
        div.card {
            h2 { "Timeline" }
            ol.timeline {
                @for e in events {
                    li {
                        (super::layout::when(e.at)) " " b { (e.kind) } " by " (e.actor)
                        @if let Some(args) = e.data["answer"].get("modified_args").filter(|v| v.is_object()) {
                            (arg_changes(&proposed, args))
                        }
                        @if e.kind == "case.requirements_raised" {
                            p.muted {
                                "The modified action needs " (e.data["escalation"]["approvals"].as_u64().unwrap_or(1))
                                " approval(s) from " (names(&e.data["escalation"]["reviewers"])) "."
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The decisions of the same trace or session, oldest first; `current` is marked.
pub fn chain_card(chain: &[Decision], current: Option<&str>) -> Markup {
    html! {
        div.card {
            h2 { "Decision chain" }
            @if chain.len() <= 1 && current.is_some() {
                p.muted { "No earlier decisions in this trace or session." }
            }
            ol {
                @for d in chain {
                    li {
                        (super::layout::when(d.event_time)) " " b { (d.action.name) } " "
                        @if let Some(c) = d.action.confidence { "(" (format!("{c:.2}")) ") " }
                        "→ " (d.final_verdict.as_ref().map_or(d.verdict, |f| f.verdict).to_string())
                        @if Some(d.id.as_str()) == current { " " span.pill { "this case" } }
                        br;
                        small { (d.id) }
                    }
                }
            }
        }
    }
}

/// `POST /cases/{id}/act`: claim, release, decide, comment, promote.
pub async fn act(
    ConsoleScope(state): ConsoleScope,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(f): Form<Fields>,
) -> Response {
    let here = format!("/cases/{}", urlencode(&id));
    if let Err(e) = viewer.check_csrf(&f) {
        return error_page(e);
    }
    let who = &viewer.who;
    // (where to go next, what to say)
    let result: Result<(String, String), ApiError> = async {
        match last(&f, "op") {
            "claim" => {
                app::cases::claim(&state, who, &id, None).await?;
                Ok((here.clone(), "Claimed: nobody else can decide it while you hold it.".into()))
            }
            "release" => {
                app::cases::release(&state, who, &id).await?;
                Ok((here.clone(), "Released back to the queue.".into()))
            }
            "decide" => {
                let u = app::cases::answer(&state, who, &id, forms::answer(&f)?).await?;
                let msg = match u.decision.and_then(|d| d.final_verdict) {
                    Some(fv) => format!("Decided: {} — the agent has its answer.", fv.verdict),
                    None => "Your approval is recorded; another reviewer must approve too.".to_string(),
                };
                Ok(("/queue".to_string(), msg))
            }
            "label" => {
                app::cases::label(&state, who, &id, right_or_wrong_field(&f)?, forms::optional(&f, "note")).await?;
                Ok(("/audits".to_string(), "Labelled: the label is the decision's outcome.".into()))
            }
            "comment" => {
                app::cases::comment(&state, who, &id, Some(field(&f, "role").to_string()), field(&f, "text")).await?;
                Ok((here.clone(), "Comment added.".into()))
            }
            "outcome" => {
                let did = app::cases::load(&state, &id)
                    .await?
                    .decision_id
                    .ok_or_else(|| ApiError::invalid("op", "this case has no decision"))?;
                let correct = right_or_wrong_field(&f)?;
                let cost = match forms::optional(&f, "cost") {
                    None => None,
                    Some(c) => Some(c.parse::<f64>().map_err(|_| ApiError::invalid("cost", "a number"))?),
                };
                let req = arbiter_api::decisions::OutcomeRequest {
                    correct,
                    cost,
                    label: forms::optional(&f, "label"),
                    note: forms::optional(&f, "note"),
                };
                app::decisions::record_outcome(&state, who, &did, req).await?;
                Ok((here.clone(), "Outcome recorded.".into()))
            }
            "promote" => {
                let from = app::cases::load(&state, &id).await?;
                let input = app::reviews::OpenReview {
                    title: format!("Review of {} by {}", from.action_name, from.agent),
                    from_case: Some(from.id.clone()),
                    ..Default::default()
                };
                let review = app::reviews::open(&state, who, input).await?;
                Ok((format!("/reviews/{}", urlencode(&review.id)), "Review case opened.".into()))
            }
            _ => Err(ApiError::invalid("op", "unknown action")),
        }
    }
    .await;
    match result {
        Ok((to, msg)) => done(&to, &msg),
        Err(e) => failed(&here, &e),
    }
}
