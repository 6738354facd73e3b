//! The drift monitor's latest evaluation.

use arbiter_core::Timestamp;
use arbiter_core::drift::{self, DriftReport};
use serde::{Deserialize, Serialize};

/// The latest evaluation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DriftStatus {
    /// When it ran (the injected clock).
    pub evaluated_at: Timestamp,
    /// The recent window `[from, to)`.
    pub window: (Timestamp, Timestamp),
    /// The reference window before it.
    pub reference: (Timestamp, Timestamp),
    /// The configuration used.
    pub config: drift::DriftConfig,
    /// Statistics and alarms.
    pub report: DriftReport,
    /// Review cases opened by this evaluation.
    pub opened_reviews: Vec<String>,
}

/// The body of `POST /v1/admin/clock` (servers started with `--clock manual`):
/// move the clock forward by `advance`, or to `to`. Exactly one of them.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClockRequest {
    /// How far to move the clock, e.g. `15m`.
    #[serde(default)]
    pub advance: Option<arbiter_core::HumanDuration>,
    /// The time to move the clock to (not earlier than now).
    #[serde(default)]
    pub to: Option<Timestamp>,
}

/// The answer to `POST /v1/admin/clock`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClockView {
    /// The server's time before the move.
    pub from: Timestamp,
    /// Its time now.
    pub now: Timestamp,
    /// Drift evaluations run on the way, each at its due time.
    pub drift_evaluations: u32,
    /// Review cases those evaluations opened.
    pub opened_reviews: Vec<String>,
    /// SLA sweeps run on the way.
    pub sweeps: u32,
    /// Cases the sweeps changed (lease expiries, tier escalations, fallbacks).
    pub swept: u64,
}
