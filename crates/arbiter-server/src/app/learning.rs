//! Learning: lessons (created when a review
//! closes), search, what a reviewer sees beside a case, guidance for agents,
//! datasets of reviewed decisions, standing-rule suggestions, and the checks
//! that close the loop (an intervention's policy version backtested on the
//! review's decisions; recurrence after it went live).

use crate::error::ApiError;
use crate::{AppState, actor};
use arbiter_api::learning::{
    AcceptedSuggestion, CaseInsights, DatasetQuery, Guidance, LessonListQuery, LessonView, SearchParams,
};
use arbiter_core::insight::{self, BlastRadius};
use arbiter_core::lesson::{self, Lesson, LessonPatch};
use arbiter_core::policy_version::{PolicyVersion, PolicyVersionSummary};
use arbiter_core::recurrence::{self, Recurrence};
use arbiter_core::review::InterventionCheck;
use arbiter_core::search::{SearchHit, SearchQuery};
use arbiter_core::suggest::{self, Observation, Suggestion, SuggestionState};
use arbiter_core::{Case, CaseCommand, Decision, Principal, Timestamp, Verdict};
use arbiter_policy::Policy;
use arbiter_policy::cel::agent_value;
use arbiter_store::LessonFilter;
use serde_json::Value;

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
/// Past decisions compared for similar cases.
const SIMILAR_CANDIDATES: usize = 500;
/// Lessons compared for similar lessons.
const SIMILAR_LESSONS: usize = 500;
/// Decisions of the class read for the blast radius (8 days).
const ACTIVITY_LIMIT: usize = 100_000;
/// Days of review history mined for suggestions unless told.
pub const SUGGEST_DAYS: u32 = 30;
/// How many times a situation must have been answered the same way.
pub const SUGGEST_MIN_SUPPORT: u64 = 20;
/// How long a suggestion is offered.
pub const SUGGESTION_TTL_MS: i64 = 14 * DAY;
/// Recent decisions a suggestion is backtested on.
const SUGGEST_BACKTEST: usize = 20_000;

/// Load a lesson or answer 404.
pub async fn load(state: &AppState, id: &str) -> Result<Lesson, ApiError> {
    let nf = || ApiError::NotFound(format!("lesson {id} not found"));
    if id.len() > 128 {
        return Err(nf());
    }
    state.store.lesson(id).await?.ok_or_else(nf)
}

/// A lesson with its history and recurrence.
pub async fn view(state: &AppState, id: &str) -> Result<LessonView, ApiError> {
    let lesson = load(state, id).await?;
    let history = state.store.lesson_events(id).await?;
    let recurrence = recurrence_of(state, &lesson).await?;
    let undone = match state.policy() {
        Some(active) => super::policy::undone_in(state, std::slice::from_ref(&lesson), &active)
            .await?
            .into_iter()
            .map(|u| arbiter_api::learning::UndoneBy {
                policy_version: u.policy_version,
                undone_by: active.hash().to_string(),
                changes: u.changes,
            })
            .collect(),
        None => vec![],
    };
    Ok(LessonView { lesson, history, recurrence, undone })
}

/// For each policy version the lesson's interventions link that went live,
/// the failure's rate before against after (see [`recurrence`]).
pub async fn recurrence_of(state: &AppState, l: &Lesson) -> Result<Vec<Recurrence>, ApiError> {
    let now = state.clock.now();
    let mut out = Vec::new();
    let versions: Vec<&String> = l
        .interventions
        .iter()
        .filter(|x| x.spec.kind.needs_policy_check())
        .filter_map(|x| x.spec.policy_version.as_ref())
        .collect();
    for v in versions {
        let Some(activated_at) = state.store.policy_activations(v).await?.into_iter().next() else { continue };
        let (from, to, _) = recurrence::window(activated_at, now);
        let points = state.store.labelled_points(&l.action_classes, from, to).await?;
        out.push(recurrence::measure(v, l.action_classes.clone(), activated_at, now, &points));
    }
    Ok(out)
}

/// Lessons, most recently changed first.
pub async fn list(state: &AppState, q: LessonListQuery) -> Result<Vec<Lesson>, ApiError> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit", "between 1 and 1000"));
    }
    Ok(state.store.lessons(LessonFilter { action: q.action, published: q.published.unwrap_or(false), limit }).await?)
}

/// The lesson of a review that closed before lessons existed.
pub async fn create(state: &AppState, who: &Principal, review_id: &str) -> Result<Lesson, ApiError> {
    super::reviews::load(state, review_id).await?;
    Ok(state.store.create_missing_lesson(review_id, &who.name, state.clock.now()).await?)
}

/// Edit a lesson's title, summary, root cause, failure modes, guidance or publication.
pub async fn update(state: &AppState, who: &Principal, id: &str, patch: LessonPatch) -> Result<Lesson, ApiError> {
    patch.validate().map_err(|(f, m)| ApiError::invalid(f, m))?;
    load(state, id).await?;
    Ok(state.store.update_lesson(id, patch, &who.name, state.clock.now()).await?)
}

/// Full-text search with filters.
pub async fn search(state: &AppState, p: SearchParams) -> Result<Vec<SearchHit>, ApiError> {
    if arbiter_core::search::terms(&p.q).is_empty() {
        return Err(ApiError::invalid("q", "give at least one word to search for"));
    }
    if p.q.len() > 1024 {
        return Err(ApiError::invalid("q", "must be at most 1 KiB"));
    }
    let limit = p.limit.unwrap_or(20);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::invalid("limit", "between 1 and 200"));
    }
    let q = SearchQuery {
        q: p.q,
        kind: p.kind,
        action: p.action,
        agent: p.agent,
        failure_mode: p.failure_mode,
        since: p.since,
        until: p.until,
        limit,
    };
    Ok(state.store.search(q).await?)
}

/// Similar past cases and lessons, and the blast radius, for an approval case.
pub async fn insights(state: &AppState, case_id: &str) -> Result<CaseInsights, ApiError> {
    let case = super::cases::load(state, case_id).await?;
    let did = case.decision_id.as_deref().ok_or_else(|| {
        ApiError::NotFound(format!("case {case_id} is a review case; insights are for approval cases"))
    })?;
    let d = state
        .store
        .decision(did)
        .await?
        .ok_or_else(|| ApiError::internal_msg(format!("case {case_id} names a missing decision {did}")))?;
    let candidates = state.store.similar_candidates(&d.action.name, d.event_time, SIMILAR_CANDIDATES).await?;
    let lessons = state.store.lessons(LessonFilter { limit: SIMILAR_LESSONS, ..Default::default() }).await?;
    Ok(CaseInsights {
        similar_cases: insight::similar_cases(&d, &candidates),
        similar_lessons: insight::similar_lessons(&d, &lessons),
        blast_radius: blast_radius(state, &d).await?,
    })
}

async fn blast_radius(state: &AppState, d: &Decision) -> Result<BlastRadius, ApiError> {
    let now = d.event_time;
    let activity =
        state.store.agent_activity(&d.agent, &d.action.name, Timestamp(now.0 - 8 * DAY), ACTIVITY_LIMIT).await?;
    let totals = state.store.agent_totals(&d.agent, Timestamp(now.0 - 7 * DAY)).await?;
    let (total, history) = match insight::subject(&d.action) {
        Some(s) => state.store.subject_history(&s, now, 10).await?,
        None => (0, Vec::new()),
    };
    // the case's own decision is part of the activity up to its time, not of the subject's past
    let activity: Vec<_> = activity.into_iter().filter(|a| a.at <= now).collect();
    Ok(insight::blast_radius(d, now, &activity, &history, total, totals))
}

/// Guidance for an agent's prompt from the published lessons.
pub async fn guidance(state: &AppState, action: Option<String>) -> Result<Guidance, ApiError> {
    let mut lessons =
        state.store.lessons(LessonFilter { published: true, limit: 10_000, ..Default::default() }).await?;
    // a required step the active policy no longer enforces is not told to the agent as required
    if let Some(active) = state.policy() {
        let undone = super::policy::undone_in(state, &lessons, &active).await?;
        for l in lessons.iter_mut() {
            let undone_versions: Vec<&str> =
                undone.iter().filter(|u| u.lesson_id == l.id).map(|u| u.policy_version.as_str()).collect();
            l.interventions.retain(|x| {
                !x.spec.kind.needs_policy_check()
                    || x.spec.policy_version.as_deref().is_none_or(|v| !undone_versions.contains(&v))
            });
        }
    }
    let items = lesson::guidance(&lessons, action.as_deref());
    let prompt = lesson::guidance_prompt(&items);
    Ok(Guidance { action, items, prompt })
}

/// The shape of a dataset export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatasetFormat {
    /// Input and label fields.
    Examples,
    /// OpenAI chat fine-tuning.
    Chat,
}

/// Reviewed decisions as dataset records (one JSON value per line), most recent first.
pub async fn dataset(state: &AppState, q: DatasetQuery) -> Result<Vec<Value>, ApiError> {
    let format = match q.format.as_deref().unwrap_or("examples") {
        "examples" => DatasetFormat::Examples,
        "chat" => DatasetFormat::Chat,
        _ => return Err(ApiError::invalid("format", "`examples` or `chat`")),
    };
    let limit = q.limit.unwrap_or(10_000);
    if !(1..=100_000).contains(&limit) {
        return Err(ApiError::invalid("limit", "between 1 and 100000"));
    }
    let decisions =
        state.store.reviewed_decisions(q.action.as_deref(), q.since.unwrap_or(Timestamp(i64::MIN)), limit).await?;
    let mut out = Vec::with_capacity(decisions.len());
    for d in &decisions {
        let case = match &d.case_id {
            Some(c) => state.store.case(c).await?,
            None => None,
        };
        let Some(e) = arbiter_core::dataset::example(d, case.as_ref()) else { continue };
        out.push(match format {
            DatasetFormat::Examples => {
                serde_json::to_value(&e).map_err(|e| ApiError::internal("serializing an example", e))?
            }
            DatasetFormat::Chat => arbiter_core::dataset::chat(&e, arbiter_core::dataset::DEFAULT_SYSTEM_PROMPT),
        });
    }
    Ok(out)
}

/// Mine the review history for situations people always answered the same
/// way, backtest each as a trigger against the active policy, and offer the
/// new ones. Returns the suggestions open now.
pub async fn refresh_suggestions(
    state: &AppState,
    days: Option<u32>,
    min_support: Option<u64>,
) -> Result<Vec<Suggestion>, ApiError> {
    let days = days.unwrap_or(SUGGEST_DAYS);
    let min_support = min_support.unwrap_or(SUGGEST_MIN_SUPPORT);
    if !(1..=365).contains(&days) {
        return Err(ApiError::invalid("days", "between 1 and 365"));
    }
    if !(3..=100_000).contains(&min_support) {
        return Err(ApiError::invalid("min_support", "between 3 and 100000"));
    }
    let policy = state
        .policy()
        .ok_or_else(|| ApiError::Unavailable("no policy is active; activate one with PUT /v1/policy".into()))?;
    let now = state.clock.now();
    let reviewed = state.store.reviewed_decisions(None, Timestamp(now.0 - days as i64 * DAY), 100_000).await?;
    let recent = state.store.recent_decisions(SUGGEST_BACKTEST).await?;
    let found = tokio::task::spawn_blocking(move || {
        let obs: Vec<Observation<'_>> = reviewed.iter().filter_map(Observation::of).collect();
        let mut out = Vec::new();
        for p in suggest::mine(&obs, min_support, 20) {
            let trigger = arbiter_policy::suggest::trigger_for(&p, days);
            // a pattern the policy file cannot take (e.g. the trigger exists already) is skipped
            let Ok((_, backtest)) = arbiter_policy::suggest::backtest(&policy, &trigger, &recent) else { continue };
            out.push(Suggestion {
                id: uuid::Uuid::now_v7().to_string(),
                fingerprint: p.fingerprint(),
                description: format!("{} in {days} days", p.describe()),
                trigger: trigger.name.clone(),
                condition: trigger.when.clone(),
                verdict: trigger.verdict,
                yaml: trigger.yaml_lines().join("\n"),
                base_policy: policy.hash().to_string(),
                backtest,
                window_days: days,
                created_at: now,
                expires_at: Timestamp(now.0 + SUGGESTION_TTL_MS),
                state: SuggestionState::Open,
                draft_policy: None,
                decided_by: None,
                pattern: p,
            });
        }
        out
    })
    .await
    .map_err(|e| ApiError::internal("the suggestion task failed", e))?;
    Ok(state.store.offer_suggestions(found, now).await?)
}

/// Load a suggestion or answer 404.
async fn load_suggestion(state: &AppState, id: &str) -> Result<Suggestion, ApiError> {
    let nf = || ApiError::NotFound(format!("suggestion {id} not found"));
    if id.len() > 64 {
        return Err(nf());
    }
    state.store.suggestion(id).await?.ok_or_else(nf)
}

/// Accept a suggestion: its trigger is written into the active policy as a
/// new **draft** version (never activated here).
pub async fn accept_suggestion(state: &AppState, who: &Principal, id: &str) -> Result<AcceptedSuggestion, ApiError> {
    let s = load_suggestion(state, id).await?;
    let active = state
        .store
        .active_policy()
        .await?
        .ok_or_else(|| ApiError::Unavailable("no policy is active; activate one with PUT /v1/policy".into()))?;
    let trigger = arbiter_policy::suggest::trigger_for(&s.pattern, s.window_days);
    let source = arbiter_policy::rewrite::with_trigger(&active.source, &trigger)
        .map_err(|e| ApiError::Conflict(format!("the suggestion no longer fits the active policy: {e}")))?;
    let draft = Policy::parse(&source).map_err(ApiError::InvalidPolicy)?;
    let now = state.clock.now();
    let version = PolicyVersion {
        hash: draft.hash().to_string(),
        name: active.name.clone(),
        source,
        created_at: now,
        created_by: who.name.clone(),
    };
    state.store.store_policy_draft(version.clone(), now, &who.name).await?;
    let suggestion = state
        .store
        .decide_suggestion(id, SuggestionState::Accepted, Some(version.hash.clone()), &who.name, now)
        .await?;
    let draft = PolicyVersionSummary {
        hash: version.hash,
        name: version.name,
        created_at: version.created_at,
        created_by: version.created_by,
        active: false,
        last_activated_at: None,
    };
    Ok(AcceptedSuggestion { suggestion, draft })
}

/// Dismiss a suggestion (it is not offered again until it expires).
pub async fn dismiss_suggestion(state: &AppState, who: &Principal, id: &str) -> Result<Suggestion, ApiError> {
    load_suggestion(state, id).await?;
    Ok(state.store.decide_suggestion(id, SuggestionState::Dismissed, None, &who.name, state.clock.now()).await?)
}

/// Backtest the policy version an intervention links on the review's
/// decisions (those its trace inspection found wrong): would each now be
/// escalated or denied? The result is attached to the intervention.
pub async fn check_intervention(state: &AppState, who: &Principal, id: &str, index: usize) -> Result<Case, ApiError> {
    let case = super::reviews::load(state, id).await?;
    let review =
        case.review.as_ref().ok_or_else(|| ApiError::internal_msg(format!("review case {id} has no review")))?;
    let x = review.interventions.get(index).ok_or_else(|| {
        ApiError::invalid("index", format!("the review has {} intervention(s)", review.interventions.len()))
    })?;
    let Some(hash) = x.spec.policy_version.clone() else {
        return Err(ApiError::invalid(
            "policy_version",
            "link the policy version that carries this intervention first (POST /v1/reviews/{id}/interventions/{index} with `policy_version`)",
        ));
    };
    let version = super::policy::version(state, &hash).await?;
    let policy = Policy::parse(&version.source)
        .map_err(|e| ApiError::internal(format!("stored version {hash} no longer compiles"), e))?;
    let ids = review.failing_decisions();
    let decisions =
        super::reviews::require_decisions(state, "decisions", &ids.iter().map(String::as_str).collect::<Vec<_>>())
            .await?;
    let still_allowed = decisions
        .iter()
        .filter(|d| {
            let agent = agent_value(&d.agent, &d.agent_key_id);
            policy.evaluate(&arbiter_policy::env_of(&d.action, &d.context, &agent, d.trace_id.as_deref())).verdict
                == Verdict::Allow
        })
        .map(|d| d.id.clone())
        .collect();
    let check = InterventionCheck {
        policy_version: hash,
        decisions: ids,
        still_allowed,
        at: state.clock.now(),
        by: who.name.clone(),
    };
    Ok(state.update_case(id, CaseCommand::RecordCheck { by: actor(who), index, check }).await?.case)
}
