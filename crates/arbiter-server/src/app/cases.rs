//! Operations on approval cases: a reviewer's answer (with a modification
//! checked against the policy like a new action).

use crate::error::ApiError;
use crate::{AppState, actor};
pub use arbiter_api::cases::ReviewerChoice;
use arbiter_core::{Action, Case, CaseCommand, ModificationCheck, Principal, Verdict};
use arbiter_policy::cel::agent_value;
use arbiter_store::CaseUpdate;
use serde_json::Value;

/// A reviewer's answer, as any client sends it.
#[derive(Debug, Clone)]
pub struct AnswerInput {
    /// approve, reject or modify.
    pub choice: ReviewerChoice,
    /// Why, in the reviewer's words (required; a minimum length applies).
    pub rationale: String,
    /// The edited arguments, for `modify`.
    pub args: Option<Value>,
    /// Failure-mode tags.
    pub failure_modes: Vec<String>,
    /// Where it was given, when not in the console or the API (`slack`).
    pub via: Option<String>,
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
        .ok_or_else(|| ApiError::internal_msg(format!("case {} names a missing decision {did}", case.id)))?;
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

/// The decisions of a case's traces (and the ones it names), in event-time order.
pub async fn chain_of(state: &AppState, case: &Case) -> Result<Vec<arbiter_core::Decision>, ApiError> {
    let mut traces: Vec<String> = case.trace_id.iter().cloned().collect();
    let mut ids: Vec<String> = case.decision_id.iter().cloned().collect();
    if let Some(r) = &case.review {
        traces.extend(r.trace_ids.iter().cloned());
        ids.extend(r.decision_ids.iter().cloned());
    }
    Ok(state.store.decision_chain(&traces, &ids, 500).await?)
}

/// A claim's lease: the configured default, at most the configured maximum.
pub fn lease_ms(state: &AppState, lease: Option<arbiter_core::HumanDuration>) -> Result<i64, ApiError> {
    let d = lease.map_or(state.config.claim_lease, |l| std::time::Duration::from_secs(l.as_secs()));
    if d.is_zero() || d > state.config.max_claim_lease {
        return Err(ApiError::invalid(
            "lease",
            format!("must be between 1s and {}s", state.config.max_claim_lease.as_secs()),
        ));
    }
    Ok(d.as_millis() as i64)
}

/// Claim (or renew the claim on) a case.
pub async fn claim(
    state: &AppState,
    who: &Principal,
    id: &str,
    lease: Option<arbiter_core::HumanDuration>,
) -> Result<Case, ApiError> {
    let cmd = CaseCommand::Claim { by: actor(who), lease_ms: lease_ms(state, lease)? };
    load(state, id).await?;
    Ok(state.update_case(id, cmd).await?.case)
}

/// Give the claim back.
pub async fn release(state: &AppState, who: &Principal, id: &str) -> Result<Case, ApiError> {
    load(state, id).await?;
    Ok(state.update_case(id, CaseCommand::Release { by: actor(who) }).await?.case)
}

/// The proposing agent (or an admin) withdraws a pending decision: its case
/// ends and the decision becomes final, denied, settled by `withdrawn`.
/// Withdrawing a decision that is already final changes nothing and returns it.
pub async fn withdraw(
    state: &AppState,
    who: &Principal,
    decision: arbiter_core::Decision,
    reason: &str,
) -> Result<arbiter_core::Decision, ApiError> {
    let Some(case_id) = decision.case_id.clone().filter(|_| decision.final_verdict.is_none()) else {
        return Ok(decision);
    };
    let update =
        state.update_case(&case_id, CaseCommand::Withdraw { by: actor(who), reason: reason.to_string() }).await;
    match update {
        Ok(u) => Ok(u.decision.unwrap_or(decision)),
        // decided meanwhile (a reviewer, the SLA): the decision as it ended
        Err(ApiError::Case(arbiter_core::CaseError::NotOpen(_))) => state
            .store
            .decision(&decision.id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("decision {} not found", decision.id))),
        Err(e) => Err(e),
    }
}

/// An admin gives the case to the reviewer whose key is `key_id`.
pub async fn reassign(
    state: &AppState,
    admin: &Principal,
    id: &str,
    key_id: &str,
    lease: Option<arbiter_core::HumanDuration>,
) -> Result<Case, ApiError> {
    let key = state
        .store
        .key(key_id)
        .await?
        .filter(|k| k.inactive_at(state.clock.now()).is_none() && k.role != arbiter_core::Role::Agent)
        .ok_or_else(|| ApiError::invalid("key_id", format!("no active reviewer key with id {key_id}")))?;
    let to = arbiter_core::Actor {
        name: key.name,
        key_id: key.id,
        tags: key.tags,
        is_admin: key.role == arbiter_core::Role::Admin,
    };
    load(state, id).await?;
    let cmd = CaseCommand::Reassign { by: actor(admin), to, lease_ms: lease_ms(state, lease)? };
    Ok(state.update_case(id, cmd).await?.case)
}

/// Comment on any case, speaking for one of the author's roles (or none).
pub async fn comment(
    state: &AppState,
    who: &Principal,
    id: &str,
    role: Option<String>,
    text: &str,
) -> Result<Case, ApiError> {
    let text = text.trim();
    if text.is_empty() || text.len() > 16 * 1024 {
        return Err(ApiError::invalid("text", "must be 1 character to 16 KiB"));
    }
    load(state, id).await?;
    let cmd = CaseCommand::Comment { by: actor(who), role: role.filter(|r| !r.is_empty()), text: text.to_string() };
    Ok(state.update_case(id, cmd).await?.case)
}

/// A reviewer labels an audit case (only the holder, if someone holds it):
/// the label becomes the decision's outcome.
pub async fn label(
    state: &AppState,
    who: &Principal,
    id: &str,
    correct: bool,
    note: Option<String>,
) -> Result<arbiter_api::cases::LabelResponse, ApiError> {
    let cmd = CaseCommand::Label { by: actor(who), correct, note };
    let update = state.update_case(id, cmd).await?;
    let decision = update.labelled.ok_or_else(|| {
        ApiError::internal_msg(format!("case {id}: the label was recorded but its decision was not returned"))
    })?;
    Ok(arbiter_api::cases::LabelResponse { case: update.case, decision: state.served(decision) })
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
        via: input.via,
    };
    state.update_case(case_id, cmd).await
}

/// Cases matching the query, newest first, a page at a time.
pub async fn find(state: &AppState, q: arbiter_api::cases::ListQuery) -> Result<arbiter_store::CasePage, ApiError> {
    use arbiter_core::{CaseKind, CaseState, FinalSource};
    let blank = |s: Option<String>| s.filter(|v| !v.trim().is_empty());
    let kind = match blank(q.kind) {
        None => None,
        Some(k) => Some(
            CaseKind::parse(&k).ok_or_else(|| ApiError::invalid("kind", "must be `approval`, `review` or `audit`"))?,
        ),
    };
    let states = match blank(q.state) {
        None => vec![],
        Some(s) => s
            .split(',')
            .map(|x| {
                CaseState::parse(x.trim()).ok_or_else(|| ApiError::invalid("state", format!("unknown state `{x}`")))
            })
            .collect::<Result<_, _>>()?,
    };
    let verdict = match blank(q.verdict) {
        None => None,
        Some(v) => match Verdict::parse(&v) {
            Some(v @ (Verdict::Allow | Verdict::Deny)) => Some(v),
            _ => return Err(ApiError::invalid("verdict", "`allow` or `deny` (what the decision ended with)")),
        },
    };
    let source = match blank(q.source) {
        None => None,
        Some(s) => Some(
            [
                FinalSource::Review,
                FinalSource::Policy,
                FinalSource::SlaExpired,
                FinalSource::AgentCaseCap,
                FinalSource::Withdrawn,
            ]
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| {
                ApiError::invalid("source", "`review`, `policy`, `sla_expired`, `agent_case_cap` or `withdrawn`")
            })?,
        ),
    };
    let text = blank(q.q);
    if text.as_ref().is_some_and(|t| arbiter_core::search::terms(t).is_empty()) {
        return Err(ApiError::invalid("q", "give at least one word to search for"));
    }
    let after = match blank(q.cursor) {
        None => None,
        Some(c) => Some(
            c.parse::<u64>()
                .map_err(|_| ApiError::invalid("cursor", "use the cursor of the previous page's `next` link"))?,
        ),
    };
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit", "between 1 and 1000"));
    }
    let query = arbiter_store::CaseQuery {
        kind,
        states,
        agent: blank(q.agent),
        action: blank(q.action),
        subject: blank(q.subject),
        verdict,
        source,
        reviewer: blank(q.reviewer),
        failure_mode: blank(q.failure_mode),
        since: q.since,
        until: q.until,
        text,
        after,
        limit,
    };
    Ok(state.store.find_cases(query).await?)
}
