//! The review team closes the loop on the drift review: the four stages, a
//! policy change stored as a draft, linked to its intervention and
//! backtested on the review's own decisions, then activated; a prompt
//! refinement; the review closes and becomes a published lesson whose
//! guidance the agent can read.

use super::day::Summary;
use super::lesson::{lesson_policy_source, lesson_trigger};
use crate::client::Client;
use crate::embedded::Embedded;
use anyhow::{Context, Result, bail};
use arbiter_api::keys::CreateKey;
use arbiter_api::learning::Guidance;
use arbiter_api::policy::PolicyView;
use arbiter_core::lesson::{Lesson, LessonPatch};
use arbiter_core::{Case, Role};
use arbiter_policy::backtest::BacktestReport;
use serde_json::{Value, json};

/// What the team leaves behind.
pub struct Closed {
    /// The lesson the review became.
    pub lesson: Lesson,
    /// The policy version now active.
    pub policy: String,
    /// The first lines of the guidance an agent reads.
    pub guidance: String,
    /// The engineer's key (eve: engineering), for the reader to work reviews with.
    pub engineer_key: String,
}

async fn member(admin: &Client, name: &str, tag: &str) -> Result<Client> {
    let created = admin
        .create_key(&CreateKey {
            name: name.into(),
            role: Role::Reviewer,
            tags: [tag.to_string()].into(),
            expires_in: None,
            rate_limit: None,
            same_principal: false,
        })
        .await?;
    Ok(admin.as_key(created.key))
}

async fn stage(who: &Client, review: &str, role: &str, rationale: &str, mut fields: Value) -> Result<()> {
    fields["role"] = json!(role);
    fields["rationale"] = json!(rationale);
    let _: Case = who.post(&format!("/v1/reviews/{review}/stages"), &fields).await?;
    Ok(())
}

/// Work review `review` (opened by the drift monitor) to its close, given what day one saw.
pub async fn close_the_loop(server: &Embedded, review: &str, day: &Summary) -> Result<Closed> {
    let admin = &server.admin;
    let eng = member(admin, "eve", "engineering").await?;
    let ds = member(admin, "dan", "data_science").await?;
    let pm = member(admin, "pat", "product").await?;
    let ux = member(admin, "uma", "ux").await?;
    // the decisions the team finds wrong: isolations that ran unreviewed after the drift
    let cited: Vec<&String> = day.harmful_ids.iter().take(10).collect();
    if cited.is_empty() {
        bail!("no wrong isolation ran unreviewed after the drift: nothing for the review to cite");
    }
    stage(&eng, review, "engineering", "replayed the afternoon's isolations against the agent with its current prompt",
        json!({"stage": "contextual_analysis", "reproduced": "yes",
               "steps": ["took the isolate_host proposals after the drift alarm", "replayed them against the triage agent in staging", "compared with the labelled outcomes"],
               "environment": "staging, triage agent prompt of this morning"})).await?;
    let findings: Vec<Value> = cited
        .iter()
        .map(|d| json!({"decision_id": d, "kind": "wrong_action", "note": "isolated the host although the alert was not severe malware or exfiltration; the right call was to close it or open a ticket"}))
        .collect();
    stage(
        &eng,
        review,
        "engineering",
        "the decision log shows isolation chosen for alerts that never call for it",
        json!({"stage": "trace_inspection", "findings": findings}),
    )
    .await?;
    let entities: Vec<Value> = day.harmful_hosts.iter().take(20).map(|h| json!({"kind": "host", "id": h})).collect();
    let count = (day.harmful_isolations.1 as usize).max(entities.len());
    stage(&ds, review, "data_science", "counted from the labelled outcomes",
        json!({"stage": "impact_assessment", "severity": "S2", "scope": {"count": count, "entities": entities},
               "technical_correctness": "the agent isolates hosts on benign and low-severity alerts; isolate_host doubled its share",
               "user_experience": "employees lose their machines for alerts that needed no action"})).await?;
    // the policy change, stored as a draft and linked before it goes live
    let draft: PolicyView = admin.post_yaml("/v1/policy/versions", lesson_policy_source()?).await?;
    let hash = draft.version.hash.clone();
    stage(&eng, review, "engineering", "a guard in the policy now, and the prompt fixed at the source",
        json!({"stage": "resolution_design", "interventions": [
            {"kind": "policy_change", "description": format!("trigger `{}`: isolation runs by itself only for high or critical malware and exfiltration alerts", lesson_trigger().name),
             "owner": "eve", "expected_effect": "no wrong isolation runs unreviewed", "policy_version": hash},
            {"kind": "prompt_refinement", "description": "Isolate a host only for high or critical malware or data-exfiltration alerts; otherwise close the alert or open a ticket.",
             "owner": "pat", "expected_effect": "isolate_host back to its usual share"}]})).await?;
    let _: Case = pm
        .post(&format!("/v1/cases/{review}/comments"), &json!({"role": "product", "text": "the help desk saw the isolations; we tell affected teams when a host is isolated"}))
        .await?;
    let _: Case = ux
        .post(
            &format!("/v1/cases/{review}/comments"),
            &json!({"role": "ux", "text": "the analyst's case page now shows the alert severity next to the host"}),
        )
        .await?;
    // the backtest on the review's own decisions must pass before the review can close
    let checked: Case = eng.post(&format!("/v1/reviews/{review}/interventions/0/check"), &json!({})).await?;
    let check = checked
        .review
        .as_ref()
        .and_then(|r| r.interventions.first())
        .and_then(|x| x.check.clone())
        .context("no check recorded")?;
    println!(
        "[review] intervention backtest: {} of the {} cited decisions would now wait for an analyst",
        check.decisions.len() - check.still_allowed.len(),
        check.decisions.len()
    );
    let bt: BacktestReport = admin.post(&format!("/v1/policy/versions/{hash}/backtest"), &json!({})).await?;
    if let Some(cur) = &bt.current {
        println!(
            "[review] backtest on {} labelled decisions: escalation {:.1}% -> {:.1}%, wrong actions run unreviewed {:.2}% -> {:.2}%",
            bt.new.decisions,
            100.0 * cur.escalation_rate,
            100.0 * bt.new.escalation_rate,
            100.0 * cur.auto_error_rate,
            100.0 * bt.new.auto_error_rate
        );
    }
    // the team has seen the backtest, so the activation guard is confirmed
    let _: PolicyView = admin.post(&format!("/v1/policy/versions/{hash}/activate?force=true"), &json!({})).await?;
    for (i, status) in [(0, "done"), (1, "in_progress")] {
        let _: Case = eng.post(&format!("/v1/reviews/{review}/interventions/{i}"), &json!({"status": status})).await?;
    }
    let _: Case = eng
        .post(&format!("/v1/reviews/{review}/close"), &json!({"reason": "isolations outside severe malware and exfiltration now wait for an analyst; the prompt fix is rolling out"}))
        .await?;
    let lessons: Vec<Lesson> = eng.get("/v1/lessons?limit=5").await?;
    let lesson = lessons.into_iter().find(|l| l.review_id == review).context("closing the review created no lesson")?;
    let patch = LessonPatch { publish: Some(true), ..Default::default() };
    let lesson: Lesson = eng.patch(&format!("/v1/lessons/{}", lesson.id), &patch).await?;
    let guidance: Guidance = server.admin.get("/v1/guidance?action=isolate_host").await?;
    Ok(Closed { lesson, policy: hash, guidance: guidance.prompt, engineer_key: eng.key().to_string() })
}
