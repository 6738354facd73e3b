//! Decisions: the stored record of one evaluation, later completed by a final
//! verdict and an outcome label.

use crate::action::Action;
use crate::escalation::Escalation;
use crate::time::Timestamp;
use crate::verdict::Verdict;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One trigger that fired during an evaluation, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FiredTrigger {
    /// The trigger's name in the policy.
    pub name: String,
    /// The verdict it asked for.
    pub verdict: Verdict,
    /// The human explanation written in the policy (or derived from its condition).
    pub reason: String,
}

/// Whether the agent can act on the decision yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionStatus {
    /// The verdict is final.
    Final,
    /// A person must answer first; see the case.
    Pending,
}

/// Who or what settled a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinalSource {
    /// The policy decided on its own.
    Policy,
    /// Reviewers answered the case.
    Review,
    /// Nobody answered in time; the fallback verdict applied.
    SlaExpired,
    /// The agent already had its cap of open approval cases; the fallback
    /// verdict applied at once instead of opening another.
    AgentCaseCap,
}

impl FinalSource {
    /// The snake_case name used in the API (and as the reason code).
    pub fn as_str(self) -> &'static str {
        match self {
            FinalSource::Policy => "policy",
            FinalSource::Review => "review",
            FinalSource::SlaExpired => "sla_expired",
            FinalSource::AgentCaseCap => "agent_case_cap",
        }
    }
}

/// The verdict the agent acts on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinalVerdict {
    /// `allow` or `deny`.
    pub verdict: Verdict,
    /// Who settled it.
    pub source: FinalSource,
    /// The action to perform, when reviewers modified the proposed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    /// Names of the reviewers who answered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub decided_by: Vec<String>,
    /// Why, in the reviewers' words (or the policy's explanation).
    pub rationale: String,
    /// When it became final.
    pub decided_at: Timestamp,
}

/// Ground truth about a decision: was the agent's proposed action right?
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// Whether the proposed action was the right thing to do.
    pub correct: bool,
    /// The cost incurred (of an automatic error, or of the review), in the team's unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<f64>,
    /// A free-form label such as `true_positive`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// When the label was recorded.
    pub recorded_at: Timestamp,
    /// Who recorded it (key name).
    pub recorded_by: String,
}

/// The stored record of one evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// Time-ordered unique id.
    pub id: String,
    /// Name of the agent that proposed the action.
    pub agent: String,
    /// Id of the key the agent used.
    pub agent_key_id: String,
    /// The agent's idempotency key, if it sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// The proposed action.
    pub action: Action,
    /// Correlates decisions of one agent run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// Free-form context the agent attached (alert, ticket, conversation ids).
    pub context: Value,
    /// The policy's verdict.
    pub verdict: Verdict,
    /// `final` or `pending` (waiting for a person).
    pub status: DecisionStatus,
    /// Every trigger that fired, in policy order.
    pub triggers: Vec<FiredTrigger>,
    /// One sentence explaining the verdict.
    pub explanation: String,
    /// Who must answer and how fast, when the verdict is `escalate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation: Option<Escalation>,
    /// Content hash of the policy version that produced the verdict.
    pub policy_hash: String,
    /// The case opened for an escalation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case_id: Option<String>,
    /// When the gateway received the request.
    pub received_at: Timestamp,
    /// When the action happened according to the agent (defaults to `received_at`).
    pub event_time: Timestamp,
    /// How long policy evaluation took, in microseconds.
    pub eval_micros: u64,
    /// The verdict the agent acts on, once known.
    #[serde(rename = "final", default, skip_serializing_if = "Option::is_none")]
    pub final_verdict: Option<FinalVerdict>,
    /// Conditions that could not be evaluated (they count as not fired).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub condition_errors: Vec<String>,
    /// Ground truth, once labelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
}
