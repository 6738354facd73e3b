//! Proposals: an agent's action evaluated against the active policy and
//! stored (with its approval case, when it escalates) before the answer.

use crate::AppState;
use crate::error::ApiError;
use crate::metrics::DecisionLabels;
pub use arbiter_api::decisions::DecisionRequest;
use arbiter_core::action::check_value;
use arbiter_core::decision::Proposal;
use arbiter_core::{Case, Decision, FinalSource, Principal, Timestamp, Verdict};
use arbiter_policy::cel::agent_value;
use arbiter_store::{Inserted, NewDecision};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::time::Instant;

/// A new time-ordered id.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn validate(req: &DecisionRequest, state: &AppState) -> Result<(), ApiError> {
    let limits = &state.config.limits;
    req.action.validate(limits).map_err(|e| ApiError::invalid(e.field, e.message))?;
    if let Some(ctx) = &req.context {
        if !ctx.is_object() {
            return Err(ApiError::invalid("context", "must be a JSON object"));
        }
        check_value("context", ctx, limits, 0).map_err(|e| ApiError::invalid(e.field, e.message))?;
    }
    if let Some(t) = &req.trace_id
        && (t.is_empty() || t.len() > 256 || t.chars().any(char::is_control))
    {
        return Err(ApiError::invalid("trace_id", "must be 1 to 256 characters without control characters"));
    }
    Ok(())
}

/// Check a proposal's `event_time` against the server's clock: within the
/// configured skew either way, or refused (an agent with a skewed clock
/// cannot move its decisions out of the windows others are judged in). A
/// server that takes replays (no skew configured) accepts any time and
/// returns how far it was, to be recorded on the decision.
fn event_time_skew(req: &DecisionRequest, state: &AppState, now: Timestamp) -> Result<Option<i64>, ApiError> {
    let Some(t) = req.event_time else { return Ok(None) };
    let skew = t.0 - now.0;
    match state.config.event_time_skew {
        Some(max) if skew.unsigned_abs() as u128 > max.as_millis() => {
            let (how_far, side) =
                (arbiter_core::duration::human_ms(skew.abs()), if skew < 0 { "before" } else { "after" });
            Err(ApiError::invalid(
                "event_time",
                format!(
                    "{t} is {how_far} {side} the server's time {now}; this server takes event times within ±{} of its clock \
                     (fix the agent's clock, leave event_time out, or send replays to a server started with --event-time-skew off)",
                    arbiter_core::duration::human_ms(max.as_millis() as i64)
                ),
            ))
        }
        Some(_) => Ok(None),
        // a server that takes replays labels each decision a default server would have refused
        None => Ok((skew.unsigned_abs() as u128 > crate::config::DEFAULT_EVENT_TIME_SKEW.as_millis()).then_some(skew)),
    }
}

/// Evaluate and store one proposal. `Inserted::Existing` is the decision an
/// earlier request with the same idempotency key got.
pub async fn propose(
    state: &AppState,
    agent: &Principal,
    req: DecisionRequest,
    idempotency_key: Option<String>,
) -> Result<Inserted, ApiError> {
    let started = Instant::now();
    let now = state.clock.now();
    let request_digest = hex::encode(Sha256::digest(serde_json::to_vec(&req).unwrap_or_default()));
    let limit = crate::limits::RateLimiter::limit_for(agent, &state.config.rate_limits);
    if let Err(retry_after_ms) = state.limiter.take(agent, limit, now) {
        // a retry of an accepted proposal costs nothing: it gets the stored decision
        if let Some(key) = &idempotency_key
            && let Some(d) = state.store.replayed_decision(&agent.name, key, &request_digest).await?
        {
            return Ok(Inserted::Existing(d));
        }
        state.metrics.rate_limited.inc();
        if state.rate_episodes.starts(&agent.key_id, now) {
            let data = serde_json::json!({"key_id": agent.key_id, "agent": agent.name, "limit": limit.to_string()});
            if let Err(e) = state.store.record_event("agent.rate_limited", &agent.name, now, data).await {
                tracing::warn!(error = %e, "could not record the rate-limit alarm");
            }
            tracing::warn!(agent = %agent.name, key = %agent.key_id, %limit, "an agent exceeds its proposal rate limit");
        }
        return Err(ApiError::RateLimited { retry_after_ms, limit });
    }
    validate(&req, state)?;
    let skew = event_time_skew(&req, state, now)?;
    let policy = state
        .policy()
        .ok_or_else(|| ApiError::Unavailable("no policy is active; activate one with PUT /v1/policy".into()))?;

    let context = req.context.unwrap_or_else(|| Value::Object(Default::default()));
    let agent_v = agent_value(&agent.name, &agent.key_id);
    let eval_started = Instant::now();
    let env = arbiter_policy::env_of(&req.action, &context, &agent_v, req.trace_id.as_deref());
    let eval = policy.evaluate(&env);
    let eval_time = eval_started.elapsed();
    let subject = policy.subject(&env);
    state.metrics.policy_eval.observe(eval_time.as_secs_f64());

    let escalation = eval.escalation.clone();
    let proposal = Proposal {
        id: new_id(),
        agent: agent.name.clone(),
        agent_key_id: agent.key_id.clone(),
        idempotency_key,
        action: req.action,
        trace_id: req.trace_id,
        context,
        received_at: now,
        event_time: req.event_time,
        subject,
    };
    let mut decision = Decision::from_evaluation(proposal, eval, policy.hash(), eval_time.as_micros() as u64);
    decision.event_time_skew_ms = skew;
    let case = match (decision.verdict, escalation) {
        (Verdict::Escalate, Some(esc)) => {
            let mut case = Case::new_approval(new_id(), &decision, esc, now);
            // announced as due soon (`case.due_soon`, for paging) this long before each tier ends
            case.warn_before_ms = state.config.page_before.map(|d| d.as_millis() as i64);
            decision.case_id = Some(case.id.clone());
            Some(case)
        }
        // an allowed decision the audit draw selected: a person labels it later; the agent goes on
        (Verdict::Allow, _) if decision.audit.is_some_and(|a| a.selected) => {
            let config = policy.class_config(&decision.action.name);
            let reviewers = config.escalation.reviewers.clone();
            Some(Case::new_audit(new_id(), &decision, reviewers, config.audit_sla, now))
        }
        _ => None,
    };
    let open_case_cap = state.config.max_open_cases_per_agent;
    let inserted = state.store.insert_decision(NewDecision { decision, request_digest, case, open_case_cap }).await?;
    if let Inserted::Created(d) = &inserted
        && d.final_verdict.as_ref().is_some_and(|f| f.source == FinalSource::AgentCaseCap)
    {
        state.metrics.case_cap_fallbacks.inc();
        if state.cap_episodes.starts(&format!("{}/{}", state.project(), d.agent), now) {
            let data = serde_json::json!({"agent": d.agent, "cap": open_case_cap, "decision_id": d.id,
                                          "fallback": d.final_verdict.as_ref().map(|f| f.verdict)});
            if let Err(e) = state.store.record_event("agent.case_cap", &d.agent, now, data).await {
                tracing::warn!(error = %e, "could not record the case-cap alarm");
            }
            tracing::warn!(agent = %d.agent, cap = ?open_case_cap, "an agent reached its cap of open approval cases");
        }
    }
    if let Inserted::Created(d) = &inserted {
        if d.case_id.is_some() {
            state.cases_changed();
        }
        let action = if policy.knows_class(&d.action.name) { d.action.name.clone() } else { "other".to_string() };
        let labels =
            DecisionLabels { verdict: d.verdict.as_str().into(), action, project: state.project().to_string() };
        state.metrics.decisions.get_or_create(&labels).inc();
        state.metrics.decision_latency.observe(started.elapsed().as_secs_f64());
    }
    Ok(inserted)
}

/// Record (or replace) what became of a decision: was the proposed action right?
pub async fn record_outcome(
    state: &AppState,
    who: &Principal,
    id: &str,
    req: arbiter_api::decisions::OutcomeRequest,
) -> Result<Decision, ApiError> {
    if req.cost.is_some_and(|c| !c.is_finite()) {
        return Err(ApiError::invalid("cost", "must be a finite number"));
    }
    if req.label.as_ref().is_some_and(|l| l.is_empty() || l.len() > 128) {
        return Err(ApiError::invalid("label", "must be 1 to 128 characters"));
    }
    if req.note.as_ref().is_some_and(|n| n.len() > 4096) {
        return Err(ApiError::invalid("note", "must be at most 4 KiB"));
    }
    let out = arbiter_core::Outcome {
        correct: req.correct,
        cost: req.cost,
        label: req.label,
        note: req.note.filter(|n| !n.trim().is_empty()),
        recorded_at: state.clock.now(),
        recorded_by: who.name.clone(),
    };
    Ok(state.store.record_outcome(id, out).await?)
}
