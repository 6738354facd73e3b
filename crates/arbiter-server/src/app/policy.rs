//! Policy activation, guarded: a version that would change more than a set
//! share of the verdicts on recent history needs an explicit `force`.

use crate::AppState;
use crate::error::ApiError;
pub use arbiter_api::policy::ActivationImpact;
use arbiter_policy::Policy;
use arbiter_policy::backtest::Backtest;
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
    let impact = impact(state, candidate.clone()).await?;
    if let Some(i) = &impact
        && !force
        && i.share > i.guard
    {
        return Err(ApiError::PolicyChangeUnconfirmed(Box::new(i.clone())));
    }
    let (policy, created) = state.activate_source(source, by).await?;
    Ok((policy, created, impact))
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
    .map_err(|e| ApiError::Internal(format!("the activation backtest failed: {e}")))
}
