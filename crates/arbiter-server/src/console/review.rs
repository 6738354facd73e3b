//! `GET /reviews/{id}`: a review case's four stages with their entries and
//! forms, the interventions and their status, perspectives, and the
//! decision chain.

use super::auth::ConsoleScope;
use super::auth::Viewer;
use super::case::chain_card;
use super::forms::{self, Fields, choice, field, optional};
use super::layout::{QueryMap, done, error_page, failed, flash, frame, json_block, short, urlencode};
use crate::AppState;
use crate::app;
use crate::error::ApiError;
use crate::extract::{Path, Query};
use arbiter_core::review::*;
use arbiter_core::{CaseState, Decision};
use axum::Form;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};

/// `GET /reviews/{id}` (an approval case redirects to its own page).
pub async fn page(
    ConsoleScope(state): ConsoleScope,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(q): Query<QueryMap>,
) -> Response {
    render(&state, &viewer, &id, &q).await.unwrap_or_else(error_page)
}

fn stage_title(s: Stage) -> &'static str {
    match s {
        Stage::ContextualAnalysis => "1. Contextual analysis",
        Stage::TraceInspection => "2. Trace inspection",
        Stage::ImpactAssessment => "3. Impact assessment",
        Stage::ResolutionDesign => "4. Resolution design",
    }
}

async fn render(state: &AppState, viewer: &Viewer, id: &str, q: &QueryMap) -> Result<Response, ApiError> {
    let case = app::cases::load(state, id).await?;
    let Some(r) = &case.review else {
        return Ok(Redirect::to(&format!("/cases/{}", urlencode(id))).into_response());
    };
    let chain = app::cases::chain_of(state, &case).await?;
    // the agent's run around the first decision the review is about (the case it was promoted from, else the first named)
    let run = match r.decision_ids.first().or(case.decision_id.as_ref()) {
        Some(did) => match state.store.decision(did).await? {
            Some(d) => app::traces::decision_trace(state, &d).await?,
            None => None,
        },
        None => None,
    };
    let url = format!("/reviews/{}/act", case.id);
    let open = case.state != CaseState::Closed;
    let missing = r.missing();
    let body = html! {
        h1 { (r.title) " " small { (case.action_name) } }
        (flash(q))
        p {
            "Source " b { (r.source.label()) } " · state " b { (case.state.as_str()) }
            " · opened " (super::layout::when(case.created_at))
        }
        @if !r.description.is_empty() { p { (r.description) } }
        @if open {
            @if missing.is_empty() {
                p.ok #can-close { "Every stage has an entry; the review can close." }
            } @else {
                p.error #cannot-close { "Missing before it can close: " (missing.join("; ")) }
            }
        }
        @if !r.evidence.is_null() {
            details.card { summary { "Evidence attached when it was opened" } (json_block(&r.evidence)) }
        }
        div.grid {
            div {
                @for stage in Stage::ALL {
                    @let entries: Vec<&StageEntry> = r.entries.iter().filter(|e| e.record.stage() == *stage).collect();
                    div.card {
                        h2 {
                            (stage_title(*stage)) " "
                            span.pill { @if entries.is_empty() { "missing" } @else { "✓" } }
                        }
                        @for e in entries {
                            p { b { (e.by) } " " span.pill { (e.role) } " " small { (super::layout::when(e.at)) } br; (e.rationale) }
                            (json_block(&serde_json::to_value(&e.record).unwrap_or_default()))
                            @if let StageRecord::TraceInspection(t) = &e.record {
                                @for f in t.findings.iter().filter(|f| f.span_id.is_some()) {
                                    @let span = f.span_id.as_deref().unwrap_or("");
                                    p { "Evidence: " a href={ "/decisions/" (urlencode(&f.decision_id)) "#span-" (urlencode(span)) } { "span " code { (span) } " of " (short(&f.decision_id)) } }
                                }
                            }
                        }
                        @if open { (stage_form(*stage, &url, viewer, &chain)) }
                    }
                }
            }
            div {
                div.card {
                    h2 { "Interventions" }
                    @if r.interventions.is_empty() { p.muted { "None yet (propose them in the resolution design)." } }
                    @if let Some(why) = &r.no_intervention_needed { p { "No intervention needed: " (why) } }
                    @for i in &r.interventions {
                        form.card method="post" action=(url) {
                            (viewer.csrf_field())
                            input type="hidden" name="op" value="intervention";
                            input type="hidden" name="index" value=(i.index);
                            p {
                                b { (i.spec.kind.as_str()) } ": " (i.spec.description) br;
                                small { "owner " (i.spec.owner) " · expected: " (i.spec.expected_effect) }
                            }
                            label { "Status" }
                            select name="status" { (forms::options(Some(i.status))) }
                            label { "Note" }
                            input type="text" name="note" value=(i.note.as_deref().unwrap_or(""));
                            @if i.spec.kind.needs_policy_check() {
                                label { "Policy version that carries it (full hash)" }
                                input type="text" name="policy_version" value=(i.spec.policy_version.as_deref().unwrap_or(""));
                                @if let Some(c) = &i.check {
                                    p class=(if c.passed() { "ok" } else { "error" }) {
                                        "Backtest of " code { (super::layout::short(&c.policy_version)) } " on "
                                        (c.decisions.len()) " decision(s): "
                                        @if c.passed() { "all would now be escalated or denied." }
                                        @else if c.decisions.is_empty() { "the review cites no decisions to check." }
                                        @else { (c.still_allowed.len()) " would still be allowed (" (c.still_allowed.join(", ")) ")." }
                                    }
                                }
                            }
                            button.secondary type="submit" { "Update" }
                            @if i.spec.kind.needs_policy_check() && i.spec.policy_version.is_some() && open {
                                button.secondary type="submit" name="op" value="check" formnovalidate { "Run the backtest" }
                            }
                        }
                    }
                }
                div.card {
                    h2 { "Perspectives" }
                    ul {
                        @for c in &case.comments {
                            li { b { (c.by) } " " @if let Some(r) = &c.role { span.pill { (r) } } ": " (c.text) }
                        }
                    }
                    form method="post" action={ "/cases/" (case.id) "/act" } {
                        (viewer.csrf_field())
                        input type="hidden" name="op" value="comment";
                        label { "Comment" }
                        textarea name="text" required {}
                        label { "Speaking as" }
                        select name="role" { (forms::tag_options(&viewer.who.tags)) }
                        button.secondary type="submit" { "Add" }
                    }
                }
                @if open {
                    form.card method="post" action=(url) {
                        (viewer.csrf_field())
                        input type="hidden" name="op" value="close";
                        label for="close-reason" { "Closing remark" }
                        input type="text" #close-reason name="reason" required;
                        @if missing.is_empty() {
                            button type="submit" { "Close the review" }
                        } @else {
                            button type="submit" disabled title=(format!("missing: {}", missing.join("; "))) { "Close the review" }
                            small.muted { " Not yet: " (missing.join("; ")) "." }
                        }
                    }
                } @else {
                    form.card method="post" action=(url) {
                        (viewer.csrf_field())
                        input type="hidden" name="op" value="reopen";
                        label { "Why reopen" }
                        input type="text" name="reason" required;
                        button.secondary type="submit" { "Reopen" }
                    }
                }
                (chain_card(&chain, None))
                (super::trace::card(run.as_ref()))
            }
        }
    };
    Ok(frame(&r.title, Some(viewer), body))
}

fn stage_form(stage: Stage, url: &str, viewer: &Viewer, chain: &[Decision]) -> Markup {
    let fields = match stage {
        Stage::ContextualAnalysis => html! {
            label { "Reproduced" }
            select name="reproduced" { (forms::options(Some(Reproduced::Yes))) }
            label { "Steps (one per line)" }
            textarea name="steps" required {}
            label { "Environment" }
            input type="text" name="environment" required;
            label { "Linked decisions (ids, one per line)" }
            textarea name="links" {}
            label { "Replay bundle SHA-256 (printed by " code { "arbiter replay run" } ")" }
            input type="text" name="bundle_sha256";
            label { "What differed from the recorded run" }
            input type="text" name="differences";
        },
        Stage::TraceInspection => html! {
            label { "Decision" }
            select name="decision_id" {
                @for d in chain { option value=(d.id) { (d.action.name) " · " (d.id) } }
            }
            label { "Trace span (optional)" }
            input type="text" name="span_id";
            label { "Kind" }
            select name="kind" { (forms::options(Some(FindingKind::WrongAction))) }
            label { "Finding" }
            textarea name="note" required {}
        },
        Stage::ImpactAssessment => html! {
            label { "Severity" }
            select name="severity" { (forms::options(Some(ImpactSeverity::S3))) }
            label { "Entities affected (count)" }
            input type="number" name="count" min="0" value="1";
            label { "Entities (kind:id, one per line)" }
            textarea name="entities" {}
            label { "Technical correctness" }
            textarea name="technical_correctness" required {}
            label { "User experience" }
            textarea name="user_experience" required {}
        },
        Stage::ResolutionDesign => html! {
            label { "Intervention" }
            select name="kind" { (forms::options(Some(InterventionKind::PolicyChange))) }
            label { "Description" }
            input type="text" name="description";
            label { "Owner" }
            input type="text" name="owner";
            label { "Expected effect" }
            input type="text" name="expected_effect";
            label { "Policy version that carries it (for a policy or tool change; full hash)" }
            input type="text" name="policy_version";
            label { "…or why no intervention is needed" }
            input type="text" name="no_intervention_needed";
        },
    };
    html! {
        details {
            summary { "Add an entry" }
            form method="post" action=(url) {
                (viewer.csrf_field())
                input type="hidden" name="op" value="stage";
                input type="hidden" name="stage" value=(stage.as_str());
                (fields)
                label { "Your role" }
                select name="role" { (forms::tag_options(&viewer.who.tags)) }
                label { "Rationale" }
                textarea name="rationale" required {}
                button type="submit" { "Record" }
            }
        }
    }
}

/// `POST /reviews/{id}/act`: stage entries, interventions, close, reopen.
pub async fn act(
    ConsoleScope(state): ConsoleScope,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(f): Form<Fields>,
) -> Response {
    let here = format!("/reviews/{}", urlencode(&id));
    if let Err(e) = viewer.check_csrf(&f) {
        return error_page(e);
    }
    let who = &viewer.who;
    let result: Result<&str, ApiError> = async {
        match forms::last(&f, "op") {
            "stage" => {
                let record = forms::stage_record(&f)?;
                let role = field(&f, "role").to_string();
                app::reviews::record_stage(&state, who, &id, role, field(&f, "rationale"), record).await?;
                Ok("Entry recorded.")
            }
            "intervention" => {
                let index = field(&f, "index").parse().map_err(|_| ApiError::invalid("index", "a number"))?;
                let status: InterventionStatus = choice(&f, "status")?;
                let version = optional(&f, "policy_version");
                app::reviews::update_intervention(&state, who, &id, index, Some(status), optional(&f, "note"), version)
                    .await?;
                Ok("Intervention updated.")
            }
            "check" => {
                let index = field(&f, "index").parse().map_err(|_| ApiError::invalid("index", "a number"))?;
                let case = app::learning::check_intervention(&state, who, &id, index).await?;
                let passed = case
                    .review
                    .as_ref()
                    .and_then(|r| r.interventions.get(index))
                    .and_then(|x| x.check.as_ref())
                    .is_some_and(|c| c.passed());
                Ok(if passed {
                    "Backtest passed: every decision of the review would now be escalated or denied."
                } else {
                    "Backtest failed: some of the review's decisions would still be allowed (see the intervention)."
                })
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
        Ok(msg) => done(&here, msg),
        Err(e) => failed(&here, &e),
    }
}
