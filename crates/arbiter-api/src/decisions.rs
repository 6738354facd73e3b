//! Proposals and their outcomes: `POST /v1/decisions`, `GET /v1/decisions/{id}?wait=`, `POST /v1/decisions/{id}/outcome`.

use arbiter_core::{Action, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The body of `POST /v1/decisions`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionRequest {
    /// The proposed action.
    pub action: Action,
    /// Correlates the decisions of one agent run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// Free-form context (alert, ticket, conversation ids, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Value>,
    /// When the action happened, if not now (replays and simulations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_time: Option<Timestamp>,
}

/// Query of `GET /v1/decisions/{id}`.
#[derive(Debug, Deserialize, Serialize)]
pub struct WaitQuery {
    /// How long to wait for a final verdict: `30s`, `2m`, or seconds as a number.
    pub wait: Option<String>,
}

/// The body of `POST /v1/decisions/{id}/outcome`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OutcomeRequest {
    /// Was the agent's proposed action the right thing to do?
    pub correct: bool,
    /// Cost incurred, in the team's unit.
    #[serde(default)]
    pub cost: Option<f64>,
    /// A label such as `true_positive`.
    #[serde(default)]
    pub label: Option<String>,
    /// How it was found out (a ticket reopened, an alert confirmed, a customer complaint).
    #[serde(default)]
    pub note: Option<String>,
}

/// Body of `POST /v1/decisions/{id}/withdraw`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WithdrawRequest {
    /// Why, e.g. `the MCP client cancelled the call`.
    pub reason: String,
}

/// Body of `POST /v1/decisions/{id}/result`: what the tool returned when the allowed action ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolResultRequest {
    /// The result as the tool gave it (MCP content blocks, a JSON value, text); cut at 16 KiB.
    pub content: serde_json::Value,
    /// Whether the tool reported an error.
    #[serde(default)]
    pub is_error: bool,
}
