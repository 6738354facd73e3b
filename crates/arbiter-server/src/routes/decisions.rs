//! `POST /v1/decisions`, `GET /v1/decisions/{id}?wait=`, `POST /v1/decisions/{id}/outcome`.

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{Auth, JsonBody};
use crate::metrics::DecisionLabels;
use arbiter_core::action::check_value;
use arbiter_core::{
    Action, Case, CaseKind, CaseState, Decision, DecisionStatus, FinalSource, FinalVerdict, HumanDuration, Outcome,
    Principal, Role, Timestamp, Verdict,
};
use arbiter_policy::cel::Env;
use arbiter_store::{Inserted, NewDecision};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The body of `POST /v1/decisions`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionRequest {
    /// The proposed action.
    pub action: Action,
    /// Correlates the decisions of one agent run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// Free-form context (alert, ticket, conversation ids, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Value>,
    /// When the action happened, if not now (replays and simulations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_time: Option<Timestamp>,
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let s = v.to_str().map_err(|_| ApiError::invalid("Idempotency-Key", "must be printable ASCII"))?.trim();
    if s.is_empty() || s.len() > 255 || !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::invalid("Idempotency-Key", "must be 1 to 255 printable ASCII characters without spaces"));
    }
    Ok(Some(s.to_string()))
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

/// Propose an action; the decision is durably stored before the answer.
pub async fn propose(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    headers: HeaderMap,
    JsonBody(req): JsonBody<DecisionRequest>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let agent = auth.require(&[Role::Agent, Role::Admin], "proposing actions")?.clone();
    let idem = idempotency_key(&headers)?;
    validate(&req, &state)?;
    let policy = state
        .policy()
        .ok_or_else(|| ApiError::Unavailable("no policy is active; activate one with PUT /v1/policy".into()))?;
    let request_digest = hex::encode(Sha256::digest(serde_json::to_vec(&req).unwrap_or_default()));

    let empty = Value::Object(Default::default());
    let context = req.context.unwrap_or_else(|| empty.clone());
    let agent_value = json!({"name": agent.name, "key_id": agent.key_id});
    let env = Env {
        name: &req.action.name,
        args: &req.action.args,
        confidence: req.action.confidence,
        signals: &req.action.signals,
        context: &context,
        agent: &agent_value,
        trace_id: req.trace_id.as_deref(),
    };
    let eval_started = Instant::now();
    let eval = policy.evaluate(&env);
    let eval_time = eval_started.elapsed();
    state.metrics.policy_eval.observe(eval_time.as_secs_f64());

    let now = state.clock.now();
    let id = new_id();
    let case_id = (eval.verdict == Verdict::Escalate).then(new_id);
    let final_verdict = (eval.verdict != Verdict::Escalate).then(|| FinalVerdict {
        verdict: eval.verdict,
        source: FinalSource::Policy,
        action: None,
        decided_by: vec![],
        rationale: eval.explanation.clone(),
        decided_at: now,
    });
    let decision = Decision {
        id: id.clone(),
        agent: agent.name.clone(),
        agent_key_id: agent.key_id.clone(),
        idempotency_key: idem,
        action: req.action,
        trace_id: req.trace_id,
        context,
        verdict: eval.verdict,
        status: if case_id.is_some() { DecisionStatus::Pending } else { DecisionStatus::Final },
        triggers: eval.triggers,
        explanation: eval.explanation,
        escalation: eval.escalation.clone(),
        policy_hash: policy.hash().to_string(),
        case_id: case_id.clone(),
        received_at: now,
        event_time: req.event_time.unwrap_or(now),
        eval_micros: eval_time.as_micros() as u64,
        final_verdict,
        condition_errors: eval.condition_errors.iter().map(|e| format!("{}: {}", e.trigger, e.message)).collect(),
        outcome: None,
    };
    let case = match (case_id, &eval.escalation) {
        (Some(cid), Some(esc)) => Some(Case {
            id: cid,
            kind: CaseKind::Approval,
            state: CaseState::Open,
            decision_id: Some(id),
            action_name: decision.action.name.clone(),
            agent: agent.name.clone(),
            escalation: esc.clone(),
            tier: 0,
            sla_deadline: now.plus_millis(esc.sla.as_millis()),
            answers: vec![],
            confidence: decision.action.confidence,
            trace_id: decision.trace_id.clone(),
            claim: None,
            comments: vec![],
            review: None,
            created_at: now,
            updated_at: now,
        }),
        _ => None,
    };
    let inserted = state.store.insert_decision(NewDecision { decision, request_digest, case }).await?;
    if matches!(&inserted, Inserted::Created(d) if d.case_id.is_some()) {
        state.cases_changed();
    }
    let (status, decision, replayed) = match inserted {
        Inserted::Created(d) => (StatusCode::CREATED, d, false),
        Inserted::Existing(d) => (StatusCode::OK, d, true),
    };
    if !replayed {
        let action =
            if policy.knows_class(&decision.action.name) { decision.action.name.clone() } else { "other".to_string() };
        state
            .metrics
            .decisions
            .get_or_create(&DecisionLabels { verdict: decision.verdict.as_str().into(), action })
            .inc();
        state.metrics.decision_latency.observe(started.elapsed().as_secs_f64());
    }
    let mut resp = (status, Json(decision)).into_response();
    if replayed {
        resp.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(resp)
}

/// Query of `GET /v1/decisions/{id}`.
#[derive(Debug, Deserialize)]
pub struct WaitQuery {
    /// How long to wait for a final verdict: `30s`, `2m`, or seconds as a number.
    pub wait: Option<String>,
}

fn parse_wait(text: &str, max: Duration) -> Result<Duration, ApiError> {
    let d = match text.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => Duration::from_secs(
            text.parse::<HumanDuration>().map_err(|e| ApiError::invalid("wait", e.to_string()))?.as_secs(),
        ),
    };
    Ok(d.min(max))
}

/// Load a decision the caller may see; agents see only their own.
async fn visible(state: &AppState, who: &Principal, id: &str) -> Result<Decision, ApiError> {
    let not_found = || ApiError::NotFound(format!("decision {id} not found"));
    if id.len() > 64 {
        return Err(not_found());
    }
    let d = state.store.decision(id).await?.ok_or_else(not_found)?;
    if who.role == Role::Agent && d.agent != who.name {
        return Err(not_found());
    }
    Ok(d)
}

/// Read a decision, optionally long-polling until it is final.
pub async fn get(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<WaitQuery>,
) -> Result<Json<Decision>, ApiError> {
    let wait = q.wait.as_deref().map(|w| parse_wait(w, state.config.max_wait)).transpose()?.unwrap_or_default();
    let d = visible(&state, &auth.0, &id).await?;
    if d.status == DecisionStatus::Final || wait.is_zero() {
        return Ok(Json(d));
    }
    state.metrics.waiting_agents.inc();
    let result = long_poll(&state, &auth.0, &id, wait).await;
    state.metrics.waiting_agents.dec();
    result.map(Json)
}

async fn long_poll(state: &AppState, who: &Principal, id: &str, wait: Duration) -> Result<Decision, ApiError> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut stopping = state.stopping();
    let waiter = state.waiters.register(id);
    loop {
        // Arm the wake-up before reading, so a finalisation between the read
        // and the wait is not missed.
        let notified = waiter.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let d = visible(state, who, id).await?;
        if d.status == DecisionStatus::Final || tokio::time::Instant::now() >= deadline || *stopping.borrow() {
            return Ok(d);
        }
        let recheck = tokio::time::Instant::now() + state.config.recheck_interval;
        tokio::select! {
            _ = notified => {}
            _ = tokio::time::sleep_until(deadline.min(recheck)) => {}
            _ = stopping.changed() => {}
        }
    }
}

/// The body of `POST /v1/decisions/{id}/outcome`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutcomeRequest {
    /// Was the agent's proposed action the right thing to do?
    pub correct: bool,
    /// Cost incurred, in the team's unit.
    #[serde(default)]
    pub cost: Option<f64>,
    /// A label such as `true_positive`.
    #[serde(default)]
    pub label: Option<String>,
}

/// Record the ground truth about a decision.
pub async fn outcome(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<OutcomeRequest>,
) -> Result<Json<Decision>, ApiError> {
    visible(&state, &auth.0, &id).await?;
    if req.cost.is_some_and(|c| !c.is_finite()) {
        return Err(ApiError::invalid("cost", "must be a finite number"));
    }
    if req.label.as_ref().is_some_and(|l| l.is_empty() || l.len() > 128) {
        return Err(ApiError::invalid("label", "must be 1 to 128 characters"));
    }
    let out = Outcome {
        correct: req.correct,
        cost: req.cost,
        label: req.label,
        recorded_at: state.clock.now(),
        recorded_by: auth.0.name.clone(),
    };
    Ok(Json(state.store.record_outcome(&id, out).await?))
}
