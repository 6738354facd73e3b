//! Simulated time (`arbiter serve --clock manual`): an admin moves the
//! server's clock, and the work time makes due runs on the way, each at its
//! due time — the drift monitor every `drift_interval` on a fixed schedule,
//! the SLA sweeper with it — so an outside harness can drive the monitor, the
//! sweeper and the SLAs of a real server through simulated days in seconds.
//! Off by default; a server on the system clock refuses to move it, and every
//! move is logged and recorded in the audit log.

use crate::state::ClockControl;
use crate::{ApiError, AppState};
use arbiter_api::drift::{ClockRequest, ClockView};
use arbiter_core::ManualClock;
use arbiter_core::Principal;
use std::sync::Arc;

/// Move the clock as `req` asks, running what falls due on the way.
pub async fn advance(state: &AppState, who: &Principal, req: ClockRequest) -> Result<ClockView, ApiError> {
    let Some(control) = state.clock_control() else {
        return Err(ApiError::Conflict(
            "this server runs on the system clock; only a server started with `arbiter serve --clock manual` lets its clock be moved"
                .into(),
        ));
    };
    let _one = control.moving.lock().await;
    let from = state.clock.now();
    let to = match (req.advance, req.to) {
        (Some(d), None) => from.plus_millis(d.as_millis()),
        (None, Some(t)) if t >= from => t,
        (None, Some(t)) => {
            return Err(ApiError::invalid(
                "to",
                format!("{t} is before the server's time {from}: time only moves forward"),
            ));
        }
        _ => {
            return Err(ApiError::invalid(
                "advance",
                "give exactly one of `advance` (e.g. \"15m\") or `to` (RFC 3339)",
            ));
        }
    };
    tracing::warn!(%from, %to, by = %who.name, "the MANUAL clock is moved");
    let data = serde_json::json!({"from": from, "to": to});
    state.store.record_event("clock.advanced", &who.name, from, data).await?;
    let mut view = ClockView { from, now: to, drift_evaluations: 0, opened_reviews: vec![], sweeps: 0, swept: 0 };
    let interval = state.config.drift_interval.as_millis() as i64;
    loop {
        let due = *control.next_drift.lock().unwrap_or_else(|e| e.into_inner());
        if interval == 0 || due > to {
            break;
        }
        control.clock.set(due);
        // every project's sweeper and drift monitor run at the due time
        for project in state.all_projects().await? {
            view.swept += super::sla::sweep_once(&project).await? as u64;
            if let Some(status) = super::drift::run_if_leader(&project).await? {
                view.drift_evaluations += 1;
                view.opened_reviews.extend(status.opened_reviews);
            }
        }
        view.sweeps += 1;
        *control.next_drift.lock().unwrap_or_else(|e| e.into_inner()) = due.plus_millis(interval);
    }
    control.clock.set(to);
    for project in state.all_projects().await? {
        view.swept += super::sla::sweep_once(&project).await? as u64;
    }
    view.sweeps += 1;
    Ok(view)
}

impl AppState {
    /// Put this server's clock under an admin's control (`--clock manual`): `clock` must be the state's clock.
    pub fn control_clock(&self, clock: Arc<ManualClock>) {
        let control = ClockControl::new(clock, self.config.drift_interval);
        if self.clock_control.set(control).is_err() {
            tracing::warn!("the clock was already under control");
        }
    }

    /// The manual clock's control, when the server runs on one.
    pub fn clock_control(&self) -> Option<&ClockControl> {
        self.clock_control.get()
    }
}
