//! Human-reviewed decisions as training and evaluation data. One record per
//! decision a person decided, in two shapes:
//!
//! - [`Example`]: `input` fields (what the agent proposed, in what context)
//!   and `label` fields (what the reviewers decided), the shape evaluation
//!   tools and DSPy-style optimizers load as examples;
//! - [`chat`]: OpenAI chat fine-tuning format, a system prompt, the proposal
//!   as the user turn and the reviewers' answer as the assistant turn.

use crate::action::Action;
use crate::case::Case;
use crate::decision::{Decision, FinalSource};
use crate::verdict::Verdict;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// What the agent proposed, in what context.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExampleInput {
    /// The proposed action (name, args, confidence, signals).
    pub action: Action,
    /// The context the agent attached.
    pub context: Value,
    /// The proposing agent.
    pub agent: String,
}

/// What the policy said before a person looked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyView {
    /// `escalate` for every reviewed decision (that is how it reached a person).
    pub verdict: Verdict,
    /// Triggers that fired.
    pub triggers: Vec<String>,
    /// The policy's explanation.
    pub explanation: String,
    /// The policy version.
    pub policy_hash: String,
}

/// What the reviewers decided: the label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExampleLabel {
    /// `allow` (approved, perhaps modified) or `deny`.
    pub verdict: Verdict,
    /// The arguments the reviewers approved instead of the proposed ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified_args: Option<Value>,
    /// Why.
    pub rationale: String,
    /// Failure-mode tags.
    #[serde(default)]
    pub failure_modes: Vec<String>,
    /// Who decided.
    pub decided_by: Vec<String>,
}

/// One reviewed decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Example {
    /// The decision id.
    pub id: String,
    /// Input fields.
    pub input: ExampleInput,
    /// The policy's verdict.
    pub policy: PolicyView,
    /// Label fields.
    pub label: ExampleLabel,
    /// When the agent proposed it.
    pub event_time: crate::time::Timestamp,
}

/// The example for `decision` if a person decided it (`case`: its approval
/// case, for the failure-mode tags).
pub fn example(decision: &Decision, case: Option<&Case>) -> Option<Example> {
    let fin = decision.final_verdict.as_ref().filter(|f| f.source == FinalSource::Review)?;
    let mut failure_modes: Vec<String> =
        case.map(|c| c.answers.iter().flat_map(|a| a.failure_modes.iter().cloned()).collect()).unwrap_or_default();
    failure_modes.sort();
    failure_modes.dedup();
    Some(Example {
        id: decision.id.clone(),
        input: ExampleInput {
            action: decision.action.clone(),
            context: decision.context.clone(),
            agent: decision.agent.clone(),
        },
        policy: PolicyView {
            verdict: decision.verdict,
            triggers: decision.triggers.iter().map(|t| t.name.clone()).collect(),
            explanation: decision.explanation.clone(),
            policy_hash: decision.policy_hash.clone(),
        },
        label: ExampleLabel {
            verdict: fin.verdict,
            modified_args: fin.action.as_ref().map(|a| a.args.clone()),
            rationale: fin.rationale.clone(),
            failure_modes,
            decided_by: fin.decided_by.clone(),
        },
        event_time: decision.event_time,
    })
}

/// The system prompt of the chat shape unless the caller gives its own.
pub const DEFAULT_SYSTEM_PROMPT: &str = "You review actions proposed by an automated agent before they run. \
Answer with JSON: {\"verdict\": \"allow\" or \"deny\", \"args\": the arguments to run with if you change them, \
\"rationale\": why}.";

/// An example as one OpenAI chat fine-tuning record (`{"messages": [...]}`).
pub fn chat(e: &Example, system_prompt: &str) -> Value {
    let user = json!({"action": e.input.action, "context": e.input.context, "agent": e.input.agent});
    let mut answer = json!({"verdict": e.label.verdict, "rationale": e.label.rationale});
    if let Some(args) = &e.label.modified_args {
        answer["args"] = args.clone();
    }
    json!({"messages": [
        {"role": "system", "content": system_prompt},
        {"role": "user", "content": user.to_string()},
        {"role": "assistant", "content": answer.to_string()},
    ]})
}
