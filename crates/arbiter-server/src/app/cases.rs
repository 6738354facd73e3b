//! Operations on approval cases: a reviewer's answer (with a modification
//! checked against the policy like a new action).

use crate::error::ApiError;
use crate::{AppState, actor};
use arbiter_core::{Action, Case, CaseCommand, ModificationCheck, Principal, Verdict};
use arbiter_policy::cel::agent_value;
use arbiter_store::CaseUpdate;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a reviewer decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewerChoice {
    /// Let the agent go ahead as proposed (or as last modified).
    Approve,
    /// Refuse the action.
    Reject,
    /// Approve with edited arguments, which the agent receives instead of its own.
    Modify,
}

impl ReviewerChoice {
    /// Every choice, in the order forms offer them.
    pub const ALL: [ReviewerChoice; 3] = [ReviewerChoice::Approve, ReviewerChoice::Modify, ReviewerChoice::Reject];

    /// The name used in the API and forms.
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewerChoice::Approve => "approve",
            ReviewerChoice::Reject => "reject",
            ReviewerChoice::Modify => "modify",
        }
    }

    /// Parse a form or API value.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// A reviewer's answer, as any client sends it.
#[derive(Debug, Clone)]
pub struct AnswerInput {
    /// approve, reject or modify.
    pub choice: ReviewerChoice,
    /// Why.
    pub rationale: String,
    /// The edited arguments, for `modify`.
    pub args: Option<Value>,
    /// Failure-mode tags.
    pub failure_modes: Vec<String>,
}

/// Check a rationale against the configured minimum; returns it trimmed.
pub fn rationale(state: &AppState, field: &str, text: &str) -> Result<String, ApiError> {
    let t = text.trim();
    let min = state.config.min_rationale_len;
    if t.chars().count() < min {
        return Err(ApiError::invalid(field, format!("explain it in at least {min} characters")));
    }
    if t.len() > 16 * 1024 {
        return Err(ApiError::invalid(field, "must be at most 16 KiB"));
    }
    Ok(t.to_string())
}

fn tag_ok(t: &str) -> bool {
    !t.is_empty() && t.len() <= 64 && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Load a case or answer 404.
pub async fn load(state: &AppState, id: &str) -> Result<Case, ApiError> {
    let nf = || ApiError::NotFound(format!("case {id} not found"));
    if id.len() > 64 {
        return Err(nf());
    }
    state.store.case(id).await?.ok_or_else(nf)
}

/// What the policy version that opened `case` says about its action with
/// `args` instead: a modification is a new action.
pub async fn check_modification(state: &AppState, case: &Case, args: &Value) -> Result<ModificationCheck, ApiError> {
    let did =
        case.decision_id.as_deref().ok_or_else(|| ApiError::invalid("args", "this case has no action to modify"))?;
    let d = state
        .store
        .decision(did)
        .await?
        .ok_or_else(|| ApiError::Internal(format!("case {} names a missing decision {did}", case.id)))?;
    let policy = state.policy_version(&d.policy_hash).await?;
    let modified = Action { args: args.clone(), ..d.action.clone() };
    let agent = agent_value(&d.agent, &d.agent_key_id);
    let eval = policy.evaluate(&arbiter_policy::env_of(&modified, &d.context, &agent, d.trace_id.as_deref()));
    let triggers = eval
        .triggers
        .iter()
        .filter(|t| eval.verdict != Verdict::Deny || t.verdict == Verdict::Deny)
        .map(|t| t.name.clone())
        .collect();
    Ok(ModificationCheck { verdict: eval.verdict, triggers, escalation: eval.escalation })
}

/// A reviewer answers an approval case (only the holder, if someone holds it).
pub async fn answer(
    state: &AppState,
    who: &Principal,
    case_id: &str,
    input: AnswerInput,
) -> Result<CaseUpdate, ApiError> {
    let rationale = rationale(state, "rationale", &input.rationale)?;
    if input.failure_modes.len() > 16 || !input.failure_modes.iter().all(|t| tag_ok(t)) {
        return Err(ApiError::invalid("failure_modes", "up to 16 tags of letters, digits, `_` and `-`"));
    }
    let modified_args = match (input.choice, input.args) {
        (ReviewerChoice::Modify, Some(args)) if args.is_object() => {
            arbiter_core::action::check_value("args", &args, &state.config.limits, 0)
                .map_err(|e| ApiError::invalid(e.field, e.message))?;
            Some(args)
        }
        (ReviewerChoice::Modify, _) => {
            return Err(ApiError::invalid("args", "`modify` needs the edited arguments as a JSON object"));
        }
        (_, Some(_)) => return Err(ApiError::invalid("args", "arguments can only be given with `modify`")),
        (_, None) => None,
    };
    let verdict = if input.choice == ReviewerChoice::Reject { Verdict::Deny } else { Verdict::Allow };
    let case = load(state, case_id).await?;
    let check = match &modified_args {
        Some(args) if case.is_active() => Some(check_modification(state, &case, args).await?),
        _ => None,
    };
    let cmd = CaseCommand::Answer {
        by: actor(who),
        verdict,
        modified_args,
        check,
        rationale,
        failure_modes: input.failure_modes,
    };
    state.update_case(case_id, cmd).await
}
