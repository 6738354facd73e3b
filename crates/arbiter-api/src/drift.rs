//! The drift monitor's latest evaluation.

use arbiter_core::Timestamp;
use arbiter_core::drift::episode::Episode;
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
    /// Review cases opened by this evaluation (one per episode it started).
    pub opened_reviews: Vec<String>,
    /// The alarm episodes open after it.
    #[serde(default)]
    pub episodes: Vec<Episode>,
}

/// `GET /v1/drift/episodes`: alarm episodes, newest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EpisodeList {
    /// The episodes.
    pub episodes: Vec<Episode>,
}

/// The query of `GET /v1/drift/episodes`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct EpisodeQuery {
    /// Only the open ones.
    #[serde(default)]
    pub open: Option<bool>,
    /// At most this many (default 100, at most 1000).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// The body of `POST /v1/drift/episodes/{id}/acknowledge`: a reason, and
/// optionally a snooze and a restart of the class's reference.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AcknowledgeRequest {
    /// What you know and what you did, in a sentence.
    pub reason: String,
    /// Keep the episode open (no new case for its class and kind) this long, e.g. `12h`.
    #[serde(default)]
    pub snooze: Option<arbiter_core::HumanDuration>,
    /// An intervention activated at this time: the class's reference restarts
    /// here (decisions before it no longer count as normal) and the episode ends.
    #[serde(default)]
    pub restart_at: Option<Timestamp>,
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
