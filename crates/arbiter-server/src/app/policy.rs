//! Policy activation, guarded: a version that would change more than a set
//! share of the verdicts on recent history needs an explicit `force`; and
//! backtests of stored versions on labelled history.

use crate::AppState;
use crate::error::ApiError;
pub use arbiter_api::policy::{ActivationImpact, UndoneLesson};
use arbiter_core::policy_version::PolicyVersion;
use arbiter_policy::Policy;
use arbiter_policy::backtest::{Backtest, BacktestReport};
use std::sync::Arc;

/// Compile `source` and, unless `force`, refuse it when it would change more
/// than the configured share of verdicts on recent history. Then store and
/// activate it; returns the policy, whether the version was new, and the
/// impact that was measured (if there was an active policy to compare with).
pub async fn activate(
    state: &AppState,
    source: &str,
    by: &str,
    force: bool,
) -> Result<(Arc<Policy>, bool, Option<ActivationImpact>), ApiError> {
    let candidate = Arc::new(Policy::parse(source).map_err(ApiError::InvalidPolicy)?);
    if !force {
        let undone = lessons_undone_by(state, &candidate).await?;
        if !undone.is_empty() {
            return Err(ApiError::PolicyUndoesLessons(undone));
        }
    }
    let impact = impact(state, candidate.clone()).await?;
    if let Some(i) = &impact
        && !force
        && i.share > i.guard
    {
        return Err(ApiError::PolicyChangeUnconfirmed(Box::new(i.clone())));
    }
    let (policy, created) = store_and_activate(state, candidate, source, by).await?;
    Ok((policy, created, impact))
}

/// The stored form of policy `p`, compiled from `source`, as `by` stores it at `now`.
pub fn version_of(p: &Policy, source: &str, by: &str, now: arbiter_core::Timestamp) -> PolicyVersion {
    PolicyVersion {
        hash: p.hash().to_string(),
        name: p.name().to_string(),
        source: source.to_string(),
        created_at: now,
        created_by: by.to_string(),
    }
}

/// Store `p` (compiled from `source`) and make it the active version, served
/// at once; returns it and whether this version was new.
async fn store_and_activate(
    state: &AppState,
    p: Arc<Policy>,
    source: &str,
    by: &str,
) -> Result<(Arc<Policy>, bool), ApiError> {
    let existed = state.store.policy_version(p.hash()).await?.is_some();
    let now = state.clock.now();
    let v = version_of(&p, source, by, now);
    state.store.activate_policy(v, now, by).await?;
    state.set_policy(p.clone());
    Ok((p, !existed))
}

/// The published lessons whose policy change `candidate` would undo: for
/// each done (or verified) intervention a policy version carries (a policy
/// change, or a tool change such as a confirmation step), the version it made
/// is the standard, and whatever `candidate` removes or weakens for the
/// lesson's action classes ([`Policy::loosened_in`]) undoes it, once that
/// version has been live (a draft never enforced anything).
pub async fn lessons_undone_by(state: &AppState, candidate: &Policy) -> Result<Vec<UndoneLesson>, ApiError> {
    let lessons = state
        .store
        .lessons(arbiter_store::LessonFilter { published: true, limit: 10_000, ..Default::default() })
        .await?;
    undone_in(state, &lessons, candidate).await
}

/// Which of `lessons` (the published ones count) `candidate` would undo
/// (see [`lessons_undone_by`]); for callers that already hold the lessons.
pub async fn undone_in(
    state: &AppState,
    lessons: &[arbiter_core::lesson::Lesson],
    candidate: &Policy,
) -> Result<Vec<UndoneLesson>, ApiError> {
    use arbiter_core::review::InterventionStatus;
    // each linked version once, compiled through the state's cache of versions
    let mut standards: std::collections::HashMap<String, Option<Arc<Policy>>> = Default::default();
    let mut out = Vec::new();
    for l in lessons.iter().filter(|l| l.publish) {
        let made = l.interventions.iter().filter(|x| {
            x.spec.kind.needs_policy_check()
                && matches!(x.status, InterventionStatus::Done | InterventionStatus::Verified)
        });
        for x in made {
            let Some(hash) = &x.spec.policy_version else { continue };
            if hash == candidate.hash() {
                continue;
            }
            if !standards.contains_key(hash) {
                // only a change that went live can be undone: a draft never enforced anything
                let live = !state.store.policy_activations(hash).await?.is_empty();
                let compiled = if live { Some(state.policy_version(hash).await?) } else { None };
                standards.insert(hash.clone(), compiled);
            }
            let Some(Some(standard)) = standards.get(hash) else { continue };
            let changes: Vec<String> =
                l.action_classes.iter().flat_map(|class| standard.loosened_in(candidate, class)).collect();
            if !changes.is_empty() {
                out.push(UndoneLesson {
                    lesson_id: l.id.clone(),
                    title: l.title.clone(),
                    policy_version: hash.clone(),
                    changes,
                });
            }
        }
    }
    Ok(out)
}

/// Replay the most recent decisions through the active policy and `candidate`.
pub async fn impact(state: &AppState, candidate: Arc<Policy>) -> Result<Option<ActivationImpact>, ApiError> {
    let Some(active) = state.policy() else { return Ok(None) };
    if active.hash() == candidate.hash() || state.config.policy_guard_window == 0 {
        return Ok(None);
    }
    let recent = state.store.recent_decisions(state.config.policy_guard_window).await?;
    if recent.is_empty() {
        return Ok(None);
    }
    let guard = state.config.policy_guard;
    tokio::task::spawn_blocking(move || {
        let mut bt = Backtest::new(&candidate, Some(&active));
        for d in &recent {
            bt.add_decision(d);
        }
        let backtest = bt.finish();
        let replayed = backtest.new.decisions;
        Some(ActivationImpact {
            replayed,
            changed: backtest.changed,
            share: backtest.changed as f64 / replayed.max(1) as f64,
            guard,
            backtest,
        })
    })
    .await
    .map_err(|e| ApiError::internal("the activation backtest failed", e))
}

/// Labelled decisions a backtest replays unless told otherwise.
pub const BACKTEST_DEFAULT_LIMIT: usize = 100_000;
/// The most labelled decisions one backtest may replay.
pub const BACKTEST_MAX_LIMIT: usize = 1_000_000;

/// A stored policy version by its full hash.
pub async fn version(state: &AppState, hash: &str) -> Result<PolicyVersion, ApiError> {
    let not_found = || ApiError::NotFound(format!("policy version {hash} not found"));
    if hash.len() != 64 {
        return Err(not_found());
    }
    state.store.policy_version(hash).await?.ok_or_else(not_found)
}

fn compile(v: &PolicyVersion) -> Result<Policy, ApiError> {
    Policy::parse(&v.source).map_err(|e| ApiError::internal(format!("stored version {} no longer compiles", v.hash), e))
}

/// Replay the most recent `limit` decisions with recorded outcomes through the
/// stored version `hash`, beside `against` (another stored version) or, by
/// default, the active one.
pub async fn backtest(
    state: &AppState,
    hash: &str,
    against: Option<&str>,
    limit: Option<usize>,
) -> Result<BacktestReport, ApiError> {
    let new = compile(&version(state, hash).await?)?;
    let current = match against {
        Some(h) => Some(compile(&version(state, h).await?)?),
        None => state.store.active_policy().await?.as_ref().map(compile).transpose()?,
    };
    let limit = limit.unwrap_or(BACKTEST_DEFAULT_LIMIT).clamp(1, BACKTEST_MAX_LIMIT);
    let decisions = state.store.labelled_decisions(limit).await?;
    tokio::task::spawn_blocking(move || {
        let mut bt = Backtest::new(&new, current.as_ref());
        for d in &decisions {
            bt.add_decision(d);
        }
        bt.finish()
    })
    .await
    .map_err(|e| ApiError::internal("the backtest task failed", e))
}

/// Store `source` as a version without activating it (a draft); returns the
/// stored version and whether it was new. Its lint warnings are the same as
/// when it is activated.
pub async fn store_draft(state: &AppState, source: &str, by: &str) -> Result<(PolicyVersion, bool), ApiError> {
    let p = Policy::parse(source).map_err(ApiError::InvalidPolicy)?;
    let now = state.clock.now();
    let v = version_of(&p, source, by, now);
    let created = state.store.store_policy_draft(v.clone(), now, by).await?;
    let stored = if created { v } else { version(state, p.hash()).await? };
    Ok((stored, created))
}

/// The most action names one `always_denied` question may hold.
pub const MOST_ASKED: usize = 1000;

/// Which of `actions` the active policy denies whatever the call
/// ([`Policy::always_denies`]), in the order asked, with the version that answered.
pub fn always_denied(state: &AppState, actions: Vec<String>) -> Result<arbiter_api::policy::AlwaysDenied, ApiError> {
    if actions.len() > MOST_ASKED {
        return Err(ApiError::Invalid {
            field: "actions".into(),
            message: format!("at most {MOST_ASKED} names per request (got {})", actions.len()),
        });
    }
    let policy = state.policy().ok_or_else(|| ApiError::NotFound("no policy is active".into()))?;
    let actions = actions.into_iter().filter(|a| policy.always_denies(a)).collect();
    Ok(arbiter_api::policy::AlwaysDenied { policy_hash: policy.hash().to_string(), actions })
}
