//! The SLA sweep: returns expired leases to the queue, moves cases whose
//! tier ran out to the next tier, and applies the policy's fallback after the
//! last one. It reads the injected clock, so tests move time instead of sleeping.

use crate::{ApiError, AppState};
use arbiter_core::CaseCommand;

/// Cases handled per store round trip.
const BATCH: usize = 256;

/// Sweep everything due now; returns how many cases changed.
pub async fn sweep_once(state: &AppState) -> Result<usize, ApiError> {
    let mut changed = 0;
    loop {
        let now = state.clock.now();
        let due = state.store.due_cases(now, BATCH).await?;
        let n = due.len();
        let before = changed;
        for id in due {
            match state.update_case(&id, CaseCommand::Sweep).await {
                Ok(u) if !u.events.is_empty() => {
                    changed += 1;
                    for e in &u.events {
                        tracing::info!(case = %id, event = %e.kind, "sweeper");
                    }
                }
                Ok(_) => {}
                // Another replica swept it first, or it was decided meanwhile.
                Err(ApiError::NotFound(_) | ApiError::Conflict(_) | ApiError::Case(_)) => {}
                Err(e) => return Err(e),
            }
        }
        // A full batch may hide more due cases; stop when a round changes nothing.
        if n < BATCH || changed == before {
            return Ok(changed);
        }
    }
}
