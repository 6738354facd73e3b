//! Re-read the active policy version from the store, so that an activation
//! made through another replica (or the CLI) takes effect here within
//! `policy_refresh` (5 s by default); the receipt keys likewise, so a key
//! rotated through another replica signs here too.

use crate::AppState;
use std::sync::Arc;

/// One refresh; failures are logged and retried at the next tick.
pub async fn run_once(state: Arc<AppState>) {
    match state.all_projects().await {
        Ok(projects) => {
            for p in projects {
                if let Err(e) = p.refresh_policy().await {
                    tracing::warn!(project = %p.project(), error = %e, "could not refresh the active policy");
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not list the projects to refresh their policies"),
    }
    if let Err(e) = state.receipts.load(&state).await {
        tracing::warn!(error = %e, "could not refresh the receipt keys");
    }
}
