//! Review cases and their four stages.

use arbiter_core::review::{InterventionStatus, ReviewSource, StageRecord};
use arbiter_core::{Case, Decision, Severity};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The body of `POST /v1/reviews`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OpenReview {
    /// One line saying what went wrong.
    pub title: String,
    /// More detail.
    #[serde(default)]
    pub description: String,
    /// `manual` (default), `user_report` or `drift_alarm`; promotions set it themselves.
    #[serde(default)]
    pub source: Option<ReviewSource>,
    /// Promote this approval case (its decision and trace come along).
    #[serde(default)]
    pub from_case: Option<String>,
    /// Decisions the review is about.
    #[serde(default)]
    pub decision_ids: Vec<String>,
    /// Traces the review is about.
    #[serde(default)]
    pub trace_ids: Vec<String>,
    /// Role tags that work the review (default: engineering, product, data_science, ux).
    #[serde(default)]
    pub reviewers: Option<Vec<String>>,
    /// How bad it looks at first sight.
    #[serde(default)]
    pub severity: Option<Severity>,
    /// Evidence to attach (statistics, sample decisions).
    #[serde(default)]
    pub evidence: Option<Value>,
}

/// The body of `POST /v1/reviews/{id}/stages`: the stage record's fields plus these.
#[derive(Debug, Deserialize, Serialize)]
pub struct StageRequest {
    /// The perspective of the author (one of their role tags).
    pub role: String,
    /// Why the author concludes what the record says.
    pub rationale: String,
    /// `stage` and the stage's fields.
    #[serde(flatten)]
    pub record: StageRecord,
}

/// The body of `POST /v1/reviews/{id}/interventions/{index}`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InterventionUpdate {
    /// proposed, in_progress, done or verified.
    #[serde(default)]
    pub status: Option<InterventionStatus>,
    /// How it was done or verified.
    #[serde(default)]
    pub note: Option<String>,
    /// For a `policy_change` or `tool_change`: the stored version that carries it.
    #[serde(default)]
    pub policy_version: Option<String>,
}

/// The body of `POST /v1/reviews/{id}/close` and `/reopen`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CloseRequest {
    /// Closing remark, or why it is reopened.
    pub reason: String,
}

/// A review case with what it still needs and its decision chain.
#[derive(Debug, Serialize, Deserialize)]
pub struct ReviewView {
    /// The case (with its review record).
    pub case: Case,
    /// What is missing before it can close (empty: it can close).
    pub missing: Vec<String>,
    /// The decisions of its traces, in event-time order.
    pub chain: Vec<Decision>,
}
