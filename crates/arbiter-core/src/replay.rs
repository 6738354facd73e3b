//! Reproduction: a decision as a self-contained, versioned bundle (the action,
//! its context and signals, the exact policy source, the decision and its
//! final verdict, the linked spans), and the **cassette** an agent harness
//! replays instead of live calls: the recorded tool results and model outputs
//! of the run, in order.

use crate::Decision;
use crate::trace::{Span, SpanRole};
use serde::{Deserialize, Serialize};

/// The bundle format's version; a reader refuses versions it does not know.
pub const BUNDLE_VERSION: u32 = 1;

/// Everything needed to replay one decision without a server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bundle {
    /// [`BUNDLE_VERSION`].
    pub arbiter_replay: u32,
    /// When it was exported.
    pub exported_at: crate::Timestamp,
    /// The decision as stored: the action, context, signals, verdict, triggers, final verdict.
    pub decision: Decision,
    /// The policy version that made it, with its source.
    pub policy: BundlePolicy,
    /// The agent's run, when its spans arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<BundleTrace>,
    /// What an agent harness feeds back instead of live calls.
    pub cassette: Cassette,
}

/// The exact policy version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BundlePolicy {
    /// Its content hash.
    pub hash: String,
    /// Its name.
    pub name: String,
    /// The YAML source.
    pub source: String,
}

/// The spans of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BundleTrace {
    /// The trace id.
    pub trace_id: String,
    /// Its spans, in start order.
    pub spans: Vec<Span>,
}

/// The recorded calls of a run, in start order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cassette {
    /// Tool calls with their arguments and results.
    pub tool_calls: Vec<RecordedToolCall>,
    /// Model calls with their messages.
    pub model_calls: Vec<RecordedModelCall>,
}

/// One tool call as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedToolCall {
    /// The span.
    pub span_id: String,
    /// The tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// `gen_ai.tool.call.id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// The arguments, as recorded (usually JSON text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
    /// What the tool returned, as recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// Whether this is the call the decision governed (its result is Arbiter's answer).
    pub is_decision: bool,
}

/// One model call as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedModelCall {
    /// The span.
    pub span_id: String,
    /// The model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The messages sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_messages: Option<String>,
    /// The answer: what the harness returns instead of calling the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_messages: Option<String>,
}

/// The cassette of a run: its tool and model calls in start order. `tool_call_id`
/// marks the decision's own call.
pub fn cassette(spans: &[Span], tool_call_id: Option<&str>) -> Cassette {
    let mut sorted: Vec<&Span> = spans.iter().collect();
    sorted.sort_by(|a, b| (a.start_ns, &a.span_id).cmp(&(b.start_ns, &b.span_id)));
    let mut c = Cassette::default();
    for s in sorted {
        let sum = s.summary();
        match sum.role {
            SpanRole::Tool => c.tool_calls.push(RecordedToolCall {
                span_id: s.span_id.clone(),
                is_decision: tool_call_id.is_some() && sum.tool_call_id.as_deref() == tool_call_id,
                tool: sum.tool,
                tool_call_id: sum.tool_call_id,
                arguments: sum.tool_arguments,
                result: sum.tool_result,
            }),
            SpanRole::Llm => c.model_calls.push(RecordedModelCall {
                span_id: s.span_id.clone(),
                model: sum.model,
                input_messages: sum.input_messages,
                output_messages: sum.output_messages,
            }),
            _ => {}
        }
    }
    c
}

impl Bundle {
    /// SHA-256 of the bundle's canonical JSON (RFC 8785): what a reproduction cites.
    pub fn sha256(&self) -> String {
        use sha2::{Digest, Sha256};
        let v = serde_json::to_value(self).unwrap_or_default();
        hex::encode(Sha256::digest(crate::canonical::canonical_json(&v).as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::Dropped;
    use serde_json::json;

    #[test]
    fn the_cassette_holds_tool_results_and_model_outputs_in_order() {
        let span = |id: &str, start: i64, attrs: serde_json::Value| Span {
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
            span_id: id.into(),
            parent_span_id: None,
            name: id.into(),
            kind: "internal".into(),
            start_ns: start,
            end_ns: start + 1,
            status: "unset".into(),
            status_message: String::new(),
            service: None,
            attributes: attrs.as_object().unwrap().clone(),
            events: vec![],
            dropped: Dropped::default(),
            sender: None,
        };
        let spans = vec![
            span(
                "c",
                30,
                json!({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "isolate_host", "gen_ai.tool.call.id": "call_2", "gen_ai.tool.call.result": "{\"verdict\":\"escalate\"}"}),
            ),
            span(
                "a",
                10,
                json!({"gen_ai.operation.name": "chat", "gen_ai.request.model": "m", "gen_ai.output.messages": "isolate it"}),
            ),
            span(
                "b",
                20,
                json!({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup", "gen_ai.tool.call.id": "call_1", "gen_ai.tool.call.result": "ws-1 is a server"}),
            ),
            span("z", 5, json!({"gen_ai.operation.name": "invoke_agent"})),
        ];
        let c = cassette(&spans, Some("call_2"));
        assert_eq!(c.tool_calls.iter().map(|t| t.span_id.as_str()).collect::<Vec<_>>(), ["b", "c"]);
        assert_eq!(c.tool_calls[0].result.as_deref(), Some("ws-1 is a server"));
        assert!(!c.tool_calls[0].is_decision && c.tool_calls[1].is_decision);
        assert_eq!(c.model_calls.len(), 1);
        assert_eq!(c.model_calls[0].output_messages.as_deref(), Some("isolate it"));
    }
}
