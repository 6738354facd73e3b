//! Policy versions, activation and backtests.

use crate::backtest::BacktestReport;
use arbiter_core::policy_version::PolicyVersion;
use serde::{Deserialize, Serialize};

/// A policy version with its compiled facts.
#[derive(Debug, Serialize, Deserialize)]
pub struct PolicyView {
    /// The stored version.
    #[serde(flatten)]
    pub version: PolicyVersion,
    /// Number of triggers.
    pub triggers: usize,
    /// Whether it is the active version.
    pub active: bool,
}

/// Query of `PUT /v1/policy` and `POST /v1/policy/versions/{hash}/activate`.
#[derive(Debug, Default, serde::Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ActivateQuery {
    /// Activate even if the version changes more verdicts on recent history than the guard allows.
    #[serde(default)]
    pub force: bool,
}

/// The body of `POST /v1/policy/versions/{hash}/backtest`.
#[derive(Debug, Default, serde::Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BacktestRequest {
    /// Compare with this version instead of the active one.
    #[serde(default)]
    pub against: Option<String>,
    /// Replay the most recent this many labelled decisions (default 100000, at most 1000000).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// What activating a version would change on recent decisions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ActivationImpact {
    /// Recent decisions replayed through the active and the new version.
    pub replayed: u64,
    /// Of those, decisions whose verdict would change.
    pub changed: u64,
    /// `changed / replayed`.
    pub share: f64,
    /// The share above which activation needs `force=true`.
    pub guard: f64,
    /// The backtest behind these figures.
    pub backtest: BacktestReport,
}

/// A published lesson whose required policy change a version would undo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UndoneLesson {
    /// The lesson.
    pub lesson_id: String,
    /// Its title.
    pub title: String,
    /// The policy version its policy-change intervention made (the standard).
    pub policy_version: String,
    /// What the new version removes or weakens for the lesson's action classes.
    pub changes: Vec<String>,
}

/// Body of `POST /v1/policy/always-denied`: action names (an MCP gateway's tools).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlwaysDeniedRequest {
    /// The action names to check (at most 1000).
    pub actions: Vec<String>,
}

/// Which of the asked actions the active policy denies whatever the call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlwaysDenied {
    /// The policy version that answered.
    pub policy_hash: String,
    /// The asked names it always denies, in the order asked.
    pub actions: Vec<String>,
}
