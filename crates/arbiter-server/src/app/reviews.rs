//! Operations on review cases: open (directly, or promoted from a case or
//! decisions), record a stage, move an intervention, close and reopen.

use crate::error::ApiError;
use crate::{AppState, actor};
pub use arbiter_api::reviews::ReviewView;
use arbiter_core::review::{DEFAULT_REVIEWERS, InterventionStatus, Review, ReviewSource, StageRecord};
use arbiter_core::{Case, CaseCommand, CaseKind, Decision, Principal, Severity};
use serde_json::Value;

/// What opening a review needs; every client fills the same fields.
#[derive(Debug, Clone, Default)]
pub struct OpenReview {
    /// One line saying what went wrong.
    pub title: String,
    /// More detail.
    pub description: String,
    /// Where it came from (`manual` unless promoted).
    pub source: Option<ReviewSource>,
    /// Promote this approval case (its decision and trace come along).
    pub from_case: Option<String>,
    /// Decisions the review is about.
    pub decision_ids: Vec<String>,
    /// Traces the review is about.
    pub trace_ids: Vec<String>,
    /// Role tags that work the review ([`DEFAULT_REVIEWERS`] when empty).
    pub reviewers: Option<Vec<String>>,
    /// How bad it looks at first sight (medium by default).
    pub severity: Option<Severity>,
    /// Evidence to attach.
    pub evidence: Option<Value>,
}

fn ids_ok(field: &str, ids: &[String]) -> Result<(), ApiError> {
    if ids.len() > 200 || ids.iter().any(|i| i.is_empty() || i.len() > 256) {
        return Err(ApiError::invalid(field, "up to 200 ids of 1 to 256 characters"));
    }
    Ok(())
}

/// The decisions with these ids, or a 422 naming `field`.
pub async fn require_decisions(state: &AppState, field: &str, ids: &[&str]) -> Result<Vec<Decision>, ApiError> {
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let d = state.store.decision(id).await?.ok_or_else(|| ApiError::invalid(field, format!("no decision {id}")))?;
        out.push(d);
    }
    Ok(out)
}

/// Open a review case.
pub async fn open(state: &AppState, who: &Principal, req: OpenReview) -> Result<Case, ApiError> {
    let title = req.title.trim().to_string();
    if title.is_empty() || title.len() > 300 {
        return Err(ApiError::invalid("title", "must be 1 to 300 characters"));
    }
    if req.description.len() > 64 * 1024 {
        return Err(ApiError::invalid("description", "must be at most 64 KiB"));
    }
    ids_ok("decision_ids", &req.decision_ids)?;
    ids_ok("trace_ids", &req.trace_ids)?;
    let mut decision_ids = req.decision_ids.clone();
    let mut trace_ids = req.trace_ids.clone();
    let mut source = req.source.unwrap_or(ReviewSource::Manual);
    let (mut action_name, mut agent) = (String::new(), String::new());
    if let Some(cid) = &req.from_case {
        let from = super::cases::load(state, cid)
            .await
            .map_err(|_| ApiError::invalid("from_case", format!("no case {cid}")))?;
        source = ReviewSource::Case;
        decision_ids.extend(from.decision_id.clone());
        trace_ids.extend(from.trace_id.clone());
        (action_name, agent) = (from.action_name.clone(), from.agent.clone());
    } else if !decision_ids.is_empty() && req.source.is_none() {
        source = ReviewSource::Decision;
    }
    let ids: Vec<&str> = decision_ids.iter().map(String::as_str).collect();
    let decisions = require_decisions(state, "decision_ids", &ids).await?;
    if let Some(first) = decisions.first() {
        if action_name.is_empty() {
            (action_name, agent) = (first.action.name.clone(), first.agent.clone());
        }
        trace_ids.extend(decisions.iter().filter_map(|d| d.trace_id.clone()));
    }
    decision_ids.dedup();
    trace_ids.sort();
    trace_ids.dedup();
    let reviewers = req.reviewers.unwrap_or_else(|| DEFAULT_REVIEWERS.map(String::from).to_vec());
    if reviewers.is_empty() || reviewers.len() > 32 {
        return Err(ApiError::invalid("reviewers", "name 1 to 32 role tags"));
    }
    let now = state.clock.now();
    let mut review = Review::new(title, source);
    review.description = req.description;
    review.decision_ids = decision_ids;
    review.trace_ids = trace_ids;
    review.from_case = req.from_case;
    review.evidence = req.evidence.unwrap_or(Value::Null);
    let case = Case::new_review(
        uuid::Uuid::now_v7().to_string(),
        review,
        action_name,
        agent,
        req.severity.unwrap_or(Severity::Medium),
        reviewers.into_iter().collect(),
        now,
    );
    Ok(state.store.open_case(case, &who.name).await?)
}

/// Load a review case (404 for an approval case).
pub async fn load(state: &AppState, id: &str) -> Result<Case, ApiError> {
    let case = super::cases::load(state, id).await?;
    if case.kind != CaseKind::Review {
        return Err(ApiError::NotFound(format!("case {id} is not a review case")));
    }
    Ok(case)
}

/// A review with what it still needs and its decision chain.
pub async fn view(state: &AppState, id: &str) -> Result<ReviewView, ApiError> {
    let case = load(state, id).await?;
    let missing = case.review.as_ref().map(Review::missing).unwrap_or_default();
    let chain = super::cases::chain_of(state, &case).await?;
    Ok(ReviewView { case, missing, chain })
}

/// Record a stage entry; the decisions it cites must exist.
pub async fn record_stage(
    state: &AppState,
    who: &Principal,
    id: &str,
    role: String,
    rationale: &str,
    record: StageRecord,
) -> Result<Case, ApiError> {
    let rationale = super::cases::rationale(state, "rationale", rationale)?;
    load(state, id).await?;
    require_decisions(state, "record", &record.referenced_decisions()).await?;
    if let StageRecord::ResolutionDesign(r) = &record {
        for (i, x) in r.interventions.iter().enumerate() {
            if let Some(v) = &x.policy_version {
                super::policy::version(state, v).await.map_err(|_| {
                    ApiError::invalid(
                        format!("interventions[{i}].policy_version"),
                        format!("no stored policy version {v}"),
                    )
                })?;
            }
        }
    }
    let cmd = CaseCommand::RecordStage { by: actor(who), role, rationale, record };
    Ok(state.update_case(id, cmd).await?.case)
}

/// Move an intervention along (`status`, with a `note`) and/or link the
/// stored policy version that carries it (`policy_version`).
pub async fn update_intervention(
    state: &AppState,
    who: &Principal,
    id: &str,
    index: usize,
    status: Option<InterventionStatus>,
    note: Option<String>,
    policy_version: Option<String>,
) -> Result<Case, ApiError> {
    if note.as_ref().is_some_and(|n| n.len() > 16 * 1024) {
        return Err(ApiError::invalid("note", "must be at most 16 KiB"));
    }
    if status.is_none() && policy_version.is_none() {
        return Err(ApiError::invalid("status", "give a new `status`, a `policy_version` to link, or both"));
    }
    let mut case = load(state, id).await?;
    if let Some(v) = policy_version {
        super::policy::version(state, &v)
            .await
            .map_err(|_| ApiError::invalid("policy_version", format!("no stored policy version {v}")))?;
        let cmd = CaseCommand::LinkPolicyVersion { by: actor(who), index, policy_version: v };
        case = state.update_case(id, cmd).await?.case;
    }
    if let Some(status) = status {
        let cmd = CaseCommand::UpdateIntervention { by: actor(who), index, status, note };
        case = state.update_case(id, cmd).await?.case;
    }
    Ok(case)
}

/// Close a review: every stage has an entry and there is an intervention or a recorded decision that none is needed.
pub async fn close(state: &AppState, who: &Principal, id: &str, reason: &str) -> Result<Case, ApiError> {
    let reason = super::cases::rationale(state, "reason", reason)?;
    load(state, id).await?;
    Ok(state.update_case(id, CaseCommand::Close { by: actor(who), reason }).await?.case)
}

/// Reopen a closed review.
pub async fn reopen(state: &AppState, who: &Principal, id: &str, reason: &str) -> Result<Case, ApiError> {
    let reason = super::cases::rationale(state, "reason", reason)?;
    load(state, id).await?;
    Ok(state.update_case(id, CaseCommand::Reopen { by: actor(who), reason }).await?.case)
}
