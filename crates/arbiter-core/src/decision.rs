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

wire_names!(DecisionStatus { Final => "final", Pending => "pending" });

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
    /// The agent withdrew its proposal before anyone answered (a cancelled call).
    Withdrawn,
}

wire_names!(FinalSource {
    Policy => "policy",
    Review => "review",
    SlaExpired => "sla_expired",
    AgentCaseCap => "agent_case_cap",
    Withdrawn => "withdrawn",
});

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
    /// The signed receipt of this verdict, added when the decision is served
    /// (never stored: it is derived from the stored fields and the server's key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<crate::receipt::Receipt>,
}

/// The longest tool result kept, in bytes of its JSON; a longer one is kept as
/// the first bytes of that JSON text, marked truncated.
pub const MAX_TOOL_RESULT_BYTES: usize = 16 * 1024;

/// What the tool returned when the allowed action ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolResult {
    /// The result as the tool gave it (MCP content blocks, a JSON value, text).
    pub content: serde_json::Value,
    /// Whether the tool reported an error.
    pub is_error: bool,
    /// Whether `content` was cut to [`MAX_TOOL_RESULT_BYTES`] (then it is the start of the JSON text).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    /// Who recorded it (the agent's or gateway's key name).
    pub recorded_by: String,
    /// When.
    pub recorded_at: Timestamp,
}

impl ToolResult {
    /// A result within the stated bound.
    pub fn bounded(
        content: serde_json::Value,
        is_error: bool,
        recorded_by: &str,
        recorded_at: Timestamp,
    ) -> ToolResult {
        let text = content.to_string();
        let (content, truncated) = if text.len() > MAX_TOOL_RESULT_BYTES {
            let mut end = MAX_TOOL_RESULT_BYTES;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            (serde_json::Value::String(text[..end].to_string()), true)
        } else {
            (content, false)
        };
        ToolResult { content, is_error, truncated, recorded_by: recorded_by.to_string(), recorded_at }
    }
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
    /// How it was found out (a ticket reopened, an alert confirmed, a customer complaint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// When the label was recorded.
    pub recorded_at: Timestamp,
    /// Who recorded it (key name).
    pub recorded_by: String,
}

/// A trigger whose condition could not be evaluated for this action (e.g. it
/// read a field the action does not have). It counts as not fired.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConditionError {
    /// The trigger's name.
    pub trigger: String,
    /// What went wrong.
    pub message: String,
}

/// The result of evaluating one action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// The verdict.
    pub verdict: Verdict,
    /// Every trigger that fired, in policy order.
    pub triggers: Vec<FiredTrigger>,
    /// Escalation settings, when the verdict is `escalate`.
    pub escalation: Option<Escalation>,
    /// One sentence saying why.
    pub explanation: String,
    /// Conditions that could not be evaluated.
    pub condition_errors: Vec<ConditionError>,
    /// The class's `auto_allow_at` in the deciding version (absent: none, or `never`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// The audit sampling that applies (allowed decisions of a class with an `audit_sample`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<crate::sampling::AuditPlan>,
}

/// What the gateway knows of a proposal besides the policy's evaluation.
#[derive(Debug, Clone)]
pub struct Proposal {
    /// The decision's new id.
    pub id: String,
    /// The proposing agent (its key's principal name).
    pub agent: String,
    /// Id of the key the agent used.
    pub agent_key_id: String,
    /// The agent's idempotency key, if it sent one.
    pub idempotency_key: Option<String>,
    /// The proposed action.
    pub action: Action,
    /// The agent run it belongs to.
    pub trace_id: Option<String>,
    /// Free-form context (an object).
    pub context: Value,
    /// When the gateway received it.
    pub received_at: Timestamp,
    /// When it happened according to the agent (defaults to `received_at`).
    pub event_time: Option<Timestamp>,
    /// What it acts on, as the policy names it.
    pub subject: Option<String>,
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
    /// What the tool returned when the allowed action ran (recorded by the
    /// agent or the gateway that ran it), as evidence for review and labelling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_result: Option<ToolResult>,
    /// What the action acts on (`host:srv-db-01`), as the policy names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The class's confidence threshold in the policy version that decided it
    /// (absent: the class has none, or never allows by itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// The audit draw, for an allowed decision of a class the policy samples
    /// for audit: its inclusion probability and whether it was drawn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<crate::sampling::AuditDraw>,
    /// `event_time − received_at` in milliseconds, for a decision whose event
    /// time was outside the server's accepted skew and taken anyway (a server
    /// that takes replays: `--event-time-skew off`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_time_skew_ms: Option<i64>,
}

impl Decision {
    /// The record of `proposal` evaluated by policy version `policy_hash`:
    /// final at once unless it escalates (then pending, waiting for a person).
    pub fn from_evaluation(proposal: Proposal, eval: Evaluation, policy_hash: &str, eval_micros: u64) -> Decision {
        let escalated = eval.verdict == Verdict::Escalate;
        let audit = eval
            .audit
            .filter(|_| eval.verdict == Verdict::Allow)
            .map(|p| crate::sampling::draw(&proposal.id, p.sample));
        let final_verdict = (!escalated).then(|| FinalVerdict {
            verdict: eval.verdict,
            source: FinalSource::Policy,
            action: None,
            decided_by: vec![],
            rationale: eval.explanation.clone(),
            decided_at: proposal.received_at,
            receipt: None,
        });
        Decision {
            id: proposal.id,
            agent: proposal.agent,
            agent_key_id: proposal.agent_key_id,
            idempotency_key: proposal.idempotency_key,
            action: proposal.action,
            trace_id: proposal.trace_id,
            context: proposal.context,
            verdict: eval.verdict,
            status: if escalated { DecisionStatus::Pending } else { DecisionStatus::Final },
            triggers: eval.triggers,
            explanation: eval.explanation,
            escalation: eval.escalation,
            policy_hash: policy_hash.to_string(),
            case_id: None,
            received_at: proposal.received_at,
            event_time: proposal.event_time.unwrap_or(proposal.received_at),
            eval_micros,
            final_verdict,
            condition_errors: eval.condition_errors.iter().map(|e| format!("{}: {}", e.trigger, e.message)).collect(),
            outcome: None,
            tool_result: None,
            subject: proposal.subject,
            threshold: eval.threshold,
            audit,
            event_time_skew_ms: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{HumanDuration, Severity};

    fn proposal(event_time: Option<Timestamp>) -> Proposal {
        Proposal {
            id: "d1".into(),
            agent: "soc-agent".into(),
            agent_key_id: "k1".into(),
            idempotency_key: None,
            action: Action {
                name: "isolate_host".into(),
                args: serde_json::json!({"host": "ws-1"}),
                confidence: Some(0.5),
                signals: serde_json::json!({}),
            },
            trace_id: Some("t1".into()),
            context: serde_json::json!({}),
            received_at: Timestamp(1_000),
            event_time,
            subject: None,
        }
    }

    fn evaluation(verdict: Verdict) -> Evaluation {
        Evaluation {
            verdict,
            triggers: vec![],
            escalation: (verdict == Verdict::Escalate).then(|| Escalation {
                severity: Severity::High,
                reviewers: ["soc_analyst".to_string()].into_iter().collect(),
                approvals: 1,
                sla: HumanDuration(900),
                fallback: Verdict::Deny,
                tiers: vec![],
            }),
            explanation: "because".into(),
            condition_errors: vec![ConditionError { trigger: "t".into(), message: "no field `x`".into() }],
            threshold: None,
            audit: None,
        }
    }

    #[test]
    fn a_verdict_that_needs_nobody_is_final_at_once() {
        for verdict in [Verdict::Allow, Verdict::Deny] {
            let d = Decision::from_evaluation(proposal(None), evaluation(verdict), "h", 3);
            assert_eq!(d.status, DecisionStatus::Final);
            let f = d.final_verdict.expect("final");
            assert_eq!((f.verdict, f.source, f.decided_at), (verdict, FinalSource::Policy, Timestamp(1_000)));
            assert_eq!(f.rationale, "because");
            assert_eq!(d.event_time, Timestamp(1_000), "event time defaults to receipt");
            assert_eq!(d.condition_errors, vec!["t: no field `x`".to_string()]);
        }
    }

    #[test]
    fn an_escalation_waits_for_a_person() {
        let d = Decision::from_evaluation(proposal(Some(Timestamp(7))), evaluation(Verdict::Escalate), "h", 3);
        assert_eq!(d.status, DecisionStatus::Pending);
        assert!(d.final_verdict.is_none() && d.escalation.is_some() && d.case_id.is_none());
        assert_eq!((d.event_time, d.policy_hash.as_str(), d.eval_micros), (Timestamp(7), "h", 3));
    }
}
