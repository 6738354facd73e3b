//! Approval cases and the queue.

use arbiter_core::queue::QueueItem;
use arbiter_core::{Case, Decision, HumanDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a reviewer decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewerChoice {
    /// Let the agent go ahead as proposed (or as last modified).
    Approve,
    /// Refuse the action.
    Reject,
    /// Approve with edited arguments, which the agent receives instead of its own.
    Modify,
}

impl ReviewerChoice {
    /// Every choice, in the order forms offer them.
    pub const ALL: [ReviewerChoice; 3] = [ReviewerChoice::Approve, ReviewerChoice::Modify, ReviewerChoice::Reject];

    /// The name used in the API and forms.
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewerChoice::Approve => "approve",
            ReviewerChoice::Reject => "reject",
            ReviewerChoice::Modify => "modify",
        }
    }

    /// Parse a form or API value.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl arbiter_core::WireName for ReviewerChoice {
    fn all() -> &'static [Self] {
        &Self::ALL
    }

    fn wire_name(self) -> &'static str {
        self.as_str()
    }
}

/// The reviewer's queue.
#[derive(Debug, Serialize, Deserialize)]
pub struct QueueView {
    /// When the order was computed.
    pub now: Timestamp,
    /// Cases, most urgent first.
    pub items: Vec<QueueItem>,
}

/// Query of `GET /v1/cases`: every filter given must hold; newest first.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// `approval` or `review`.
    pub kind: Option<String>,
    /// Comma-separated states: `open,claimed,decided,closed`.
    pub state: Option<String>,
    /// Proposed by this agent.
    pub agent: Option<String>,
    /// Of this action class.
    pub action: Option<String>,
    /// Acting on this subject (`host:ws-1`).
    pub subject: Option<String>,
    /// Whose decision ended `allow` or `deny`.
    pub verdict: Option<String>,
    /// Settled by `review`, `policy`, `sla_expired`, `agent_case_cap` or `withdrawn`.
    pub source: Option<String>,
    /// Answered (approval) or written in (review) by this person.
    pub reviewer: Option<String>,
    /// With this failure mode in an answer or a finding.
    pub failure_mode: Option<String>,
    /// Last changed at or after this time (RFC 3339).
    pub since: Option<Timestamp>,
    /// Last changed before this time (RFC 3339).
    pub until: Option<Timestamp>,
    /// Words in rationales, comments and stage entries.
    pub q: Option<String>,
    /// The next page: the cursor from the previous page's `Link: <...>; rel="next"` header.
    pub cursor: Option<String>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<usize>,
}

/// The body of `POST /v1/cases/{id}/claim`.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimRequest {
    /// Lease length (`10m` by default).
    #[serde(default)]
    pub lease: Option<HumanDuration>,
}

/// The body of `POST /v1/cases/{id}/reassign`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReassignRequest {
    /// Id of the reviewer's key.
    pub key_id: String,
    /// Lease length (`10m` by default).
    #[serde(default)]
    pub lease: Option<HumanDuration>,
}

/// The body of `POST /v1/cases/{id}/decision`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CaseDecisionRequest {
    /// approve, reject or modify.
    pub decision: ReviewerChoice,
    /// Why; required, with a configurable minimum length.
    pub rationale: String,
    /// The edited arguments, for `modify`.
    #[serde(default)]
    pub args: Option<Value>,
    /// Failure-mode tags, e.g. `wrong_target`.
    #[serde(default)]
    pub failure_modes: Vec<String>,
}

/// The answer to `POST /v1/cases/{id}/decision`.
#[derive(Debug, Serialize, Deserialize)]
pub struct CaseDecisionResponse {
    /// The case after the answer.
    pub case: Case,
    /// The decision, when the answer made it final.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
}

/// The body of `POST /v1/cases/{id}/label`: the label of an audit case.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LabelRequest {
    /// Whether the action the policy allowed was the right one.
    pub correct: bool,
    /// What the reviewer saw (optional, at most 4 KiB).
    #[serde(default)]
    pub note: Option<String>,
}

/// The answer to `POST /v1/cases/{id}/label`.
#[derive(Debug, Serialize, Deserialize)]
pub struct LabelResponse {
    /// The audit case, now closed.
    pub case: Case,
    /// The decision, with the label as its outcome.
    pub decision: Decision,
}

/// The body of `POST /v1/cases/{id}/comments`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CommentRequest {
    /// The text.
    pub text: String,
    /// The perspective it speaks for: one of the author's role tags (`engineering`, `product`, `data_science`, `ux`...).
    #[serde(default)]
    pub role: Option<String>,
}
