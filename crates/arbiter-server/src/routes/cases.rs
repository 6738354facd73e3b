//! `GET /v1/cases/{id}`, `POST /v1/cases/{id}/decision`, `GET /v1/cases/{id}/events`.

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{Auth, JsonBody};
use arbiter_core::{Answer, Case, Role, Verdict};
use arbiter_store::{CaseAnswer, Event};
use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;

const READERS: &[Role] = &[Role::Reviewer, Role::Admin];

async fn load(state: &AppState, id: &str) -> Result<Case, ApiError> {
    let nf = || ApiError::NotFound(format!("case {id} not found"));
    if id.len() > 64 {
        return Err(nf());
    }
    state.store.case(id).await?.ok_or_else(nf)
}

/// One case.
pub async fn get(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Case>, ApiError> {
    auth.require(READERS, "reading cases")?;
    Ok(Json(load(&state, &id).await?))
}

/// A case's timeline: its events in order.
pub async fn events(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Vec<Event>>, ApiError> {
    auth.require(READERS, "reading case events")?;
    load(&state, &id).await?;
    Ok(Json(state.store.case_events(&id).await?))
}

/// What a reviewer decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewerChoice {
    /// Let the agent go ahead as proposed.
    Approve,
    /// Refuse the action.
    Reject,
    /// Approve with edited arguments, which the agent receives instead of its own.
    Modify,
}

/// The body of `POST /v1/cases/{id}/decision`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseDecisionRequest {
    /// approve, reject or modify.
    pub decision: ReviewerChoice,
    /// Why; required, with a configurable minimum length.
    pub rationale: String,
    /// The edited arguments, for `modify`.
    #[serde(default)]
    pub args: Option<Value>,
}

/// The answer to `POST /v1/cases/{id}/decision`.
#[derive(Debug, Serialize)]
pub struct CaseDecisionResponse {
    /// The case after the answer.
    pub case: Case,
    /// The decision, when the answer made it final.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<arbiter_core::Decision>,
}

/// A reviewer answers an approval case.
pub async fn decide(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<CaseDecisionRequest>,
) -> Result<Json<CaseDecisionResponse>, ApiError> {
    let who = auth.require(READERS, "deciding cases")?.clone();
    let rationale = req.rationale.trim().to_string();
    let min = state.config.min_rationale_len;
    if rationale.chars().count() < min {
        return Err(ApiError::invalid(
            "rationale",
            format!("explain the decision in at least {min} characters"),
        ));
    }
    if rationale.len() > 16 * 1024 {
        return Err(ApiError::invalid("rationale", "must be at most 16 KiB"));
    }
    let modified_args = match (req.decision, req.args) {
        (ReviewerChoice::Modify, Some(args)) if args.is_object() => {
            arbiter_core::action::check_value("args", &args, &state.config.limits, 0)
                .map_err(|e| ApiError::invalid(e.field, e.message))?;
            Some(args)
        }
        (ReviewerChoice::Modify, _) => {
            return Err(ApiError::invalid(
                "args",
                "`modify` needs the edited arguments as a JSON object",
            ));
        }
        (_, Some(_)) => {
            return Err(ApiError::invalid(
                "args",
                "arguments can only be given with `modify`",
            ));
        }
        (_, None) => None,
    };
    let verdict = if req.decision == ReviewerChoice::Reject {
        Verdict::Deny
    } else {
        Verdict::Allow
    };
    load(&state, &id).await?;
    let answer = Answer {
        by: who.name.clone(),
        key_id: who.key_id.clone(),
        verdict,
        modified_args,
        rationale,
        at: state.clock.now(),
    };
    let answered = state
        .store
        .answer_case(CaseAnswer {
            case_id: id,
            answer,
            reviewer_tags: who.tags.clone(),
            is_admin: who.role == Role::Admin,
        })
        .await?;
    if let Some(d) = &answered.decision {
        super::decisions::wake(&state, &d.id);
    }
    Ok(Json(CaseDecisionResponse {
        case: answered.case,
        decision: answered.decision,
    }))
}
