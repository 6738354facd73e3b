//! The result of a backtest: how a policy version does on labelled history,
//! beside the version it would replace (computed by `arbiter_policy::backtest`).

use arbiter_core::Verdict;
use serde::{Deserialize, Serialize};

/// How one policy does on the history.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PolicyStats {
    /// Policy name.
    pub policy: String,
    /// Policy version hash.
    pub hash: String,
    /// Decisions replayed.
    pub decisions: u64,
    /// Allowed automatically.
    pub allowed: u64,
    /// Escalated to a person.
    pub escalated: u64,
    /// Denied automatically.
    pub denied: u64,
    /// Share escalated.
    pub escalation_rate: f64,
    /// Wrong decisions among those allowed automatically.
    pub auto_error_rate: f64,
    /// Wrong decisions stopped (escalated or denied).
    pub errors_caught: u64,
    /// Wrong decisions allowed automatically.
    pub errors_missed: u64,
    /// Right decisions denied automatically.
    pub right_denied: u64,
    /// Trigger conditions that could not be evaluated (e.g. the history lacks arguments).
    pub condition_errors: u64,
}

/// Decisions whose verdict differs between the two policies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerdictChange {
    /// The current policy's verdict.
    pub from: Verdict,
    /// The new policy's verdict.
    pub to: Verdict,
    /// How many.
    pub count: u64,
    /// Of those, how many were wrong actions.
    pub wrong: u64,
    /// Up to five examples (ids).
    pub examples: Vec<String>,
}

/// The backtest result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BacktestReport {
    /// The policy under test.
    pub new: PolicyStats,
    /// The policy it is compared with.
    pub current: Option<PolicyStats>,
    /// Verdict changes, most frequent first.
    pub changes: Vec<VerdictChange>,
    /// Decisions whose verdict changes.
    pub changed: u64,
}
