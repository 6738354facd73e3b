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
