//! An agent's own run, as OpenTelemetry spans: what Arbiter keeps of them
//! (size-bounded), and the tree a reviewer inspects beside a decision.
//!
//! Attributes are read under the GenAI semantic conventions (current and
//! legacy names) and OpenInference's, so a run instrumented either way shows
//! the same: agent → LLM calls → tool calls, with model, tokens, latency,
//! errors, tool arguments and results, and messages when recorded.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The longest attribute or event value kept, in bytes of UTF-8; longer
/// strings are cut at a character boundary and marked.
pub const MAX_VALUE_BYTES: usize = 8 * 1024;
/// The most attributes kept per span or event (the rest are counted as dropped).
pub const MAX_ATTRIBUTES: usize = 128;
/// The most events kept per span.
pub const MAX_EVENTS: usize = 64;

/// One span, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Span {
    /// 32 lowercase hex digits.
    pub trace_id: String,
    /// 16 lowercase hex digits.
    pub span_id: String,
    /// The parent's span id, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_span_id: Option<String>,
    /// The span's (or event's) name.
    pub name: String,
    /// `internal`, `server`, `client`, `producer`, `consumer` or `unspecified`.
    pub kind: String,
    /// Start and end, nanoseconds since the epoch.
    pub start_ns: i64,
    /// End, nanoseconds since the epoch.
    pub end_ns: i64,
    /// `unset`, `ok` or `error`.
    pub status: String,
    /// The status description, when the instrumentation gave one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status_message: String,
    /// The resource's `service.name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Attributes by key (values as JSON: strings, numbers, booleans, arrays, objects).
    pub attributes: Map<String, Value>,
    /// Events recorded inside the span (at most [`MAX_EVENTS`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<SpanEvent>,
    /// Attributes, events and bytes left out to keep the span within bounds.
    #[serde(default, skip_serializing_if = "Dropped::is_empty")]
    pub dropped: Dropped,
    /// The principal whose key sent the span (set by the store when it is
    /// received; `None` for spans stored before senders were recorded). A
    /// decision's run is assembled only from its own agent's spans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
}

/// An event inside a span.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanEvent {
    /// The span's (or event's) name.
    pub name: String,
    /// When, nanoseconds since the epoch.
    pub time_ns: i64,
    /// Attributes by key.
    pub attributes: Map<String, Value>,
}

/// What bounding a span left out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dropped {
    /// Attributes past [`MAX_ATTRIBUTES`].
    pub attributes: u32,
    /// Events past [`MAX_EVENTS`].
    pub events: u32,
    /// Values cut at [`MAX_VALUE_BYTES`].
    pub truncated_values: u32,
}

impl Dropped {
    fn is_empty(&self) -> bool {
        *self == Dropped::default()
    }
}

/// Whether `s` is `n` lowercase or uppercase hex digits, not all zero.
pub fn valid_id(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit()) && s.bytes().any(|b| b != b'0')
}

fn cut(s: &mut String, dropped: &mut Dropped) {
    if s.len() > MAX_VALUE_BYTES {
        let mut end = MAX_VALUE_BYTES;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        let removed = s.len() - end;
        s.truncate(end);
        s.push_str(&format!("…[{removed} more bytes]"));
        dropped.truncated_values += 1;
    }
}

fn bound_value(v: &mut Value, dropped: &mut Dropped) {
    match v {
        Value::String(s) => cut(s, dropped),
        Value::Array(a) => a.iter_mut().for_each(|x| bound_value(x, dropped)),
        Value::Object(o) => o.values_mut().for_each(|x| bound_value(x, dropped)),
        _ => {}
    }
}

fn bound_map(m: &mut Map<String, Value>, dropped: &mut Dropped) {
    if m.len() > MAX_ATTRIBUTES {
        let keep: Vec<String> = m.keys().take(MAX_ATTRIBUTES).cloned().collect();
        dropped.attributes += (m.len() - MAX_ATTRIBUTES) as u32;
        m.retain(|k, _| keep.contains(k));
    }
    m.values_mut().for_each(|v| bound_value(v, dropped));
}

impl Span {
    /// Bring the span within the stated bounds, lowercasing its ids; counts what was left out.
    pub fn bound(&mut self) {
        self.trace_id.make_ascii_lowercase();
        self.span_id.make_ascii_lowercase();
        if let Some(p) = &mut self.parent_span_id {
            p.make_ascii_lowercase();
        }
        cut(&mut self.name, &mut self.dropped);
        cut(&mut self.status_message, &mut self.dropped);
        bound_map(&mut self.attributes, &mut self.dropped);
        if self.events.len() > MAX_EVENTS {
            self.dropped.events += (self.events.len() - MAX_EVENTS) as u32;
            self.events.truncate(MAX_EVENTS);
        }
        for e in &mut self.events {
            cut(&mut e.name, &mut self.dropped);
            bound_map(&mut e.attributes, &mut self.dropped);
        }
    }

    fn attr(&self, keys: &[&str]) -> Option<&Value> {
        keys.iter().find_map(|k| self.attributes.get(*k))
    }

    fn text(&self, keys: &[&str]) -> Option<String> {
        self.attr(keys).map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }

    fn count(&self, keys: &[&str]) -> Option<u64> {
        self.attr(keys).and_then(|v| v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok())))
    }

    /// The `gen_ai.tool.call.id` (or OpenInference `tool_call.id`) of a tool call span.
    pub fn tool_call_id(&self) -> Option<String> {
        self.text(&["gen_ai.tool.call.id", "tool_call.id"])
    }

    /// What the span is in an agent's run.
    pub fn role(&self) -> SpanRole {
        let op = self.text(&["gen_ai.operation.name"]).unwrap_or_default();
        let oi = self.text(&["openinference.span.kind"]).unwrap_or_default().to_ascii_uppercase();
        match (op.as_str(), oi.as_str()) {
            ("invoke_agent" | "create_agent", _) | (_, "AGENT") => SpanRole::Agent,
            ("execute_tool", _) | (_, "TOOL") => SpanRole::Tool,
            ("chat" | "text_completion" | "generate_content" | "embeddings", _) | (_, "LLM" | "EMBEDDING") => {
                SpanRole::Llm
            }
            _ if self.attr(&["gen_ai.tool.name", "gen_ai.tool.call.id"]).is_some() => SpanRole::Tool,
            _ if self.attr(&["gen_ai.request.model", "gen_ai.system", "gen_ai.provider.name"]).is_some() => {
                SpanRole::Llm
            }
            _ if oi == "CHAIN" || oi == "RETRIEVER" || oi == "RERANKER" || oi == "GUARDRAIL" => SpanRole::Step,
            _ => SpanRole::Other,
        }
    }

    /// What a reviewer reads of it, from GenAI or OpenInference attributes.
    pub fn summary(&self) -> SpanSummary {
        let input_messages = self.messages(
            &["gen_ai.input.messages", "gen_ai.prompt", "llm.input_messages"],
            "gen_ai.prompt.",
            "llm.input_messages.",
        );
        let output_messages = self.messages(
            &["gen_ai.output.messages", "gen_ai.completion", "llm.output_messages"],
            "gen_ai.completion.",
            "llm.output_messages.",
        );
        let error = (self.status == "error").then(|| {
            let kind = self.text(&["error.type", "exception.type"]);
            match (kind, self.status_message.is_empty()) {
                (Some(k), false) => format!("{k}: {}", self.status_message),
                (Some(k), true) => k,
                (None, false) => self.status_message.clone(),
                (None, true) => "error".to_string(),
            }
        });
        SpanSummary {
            role: self.role(),
            agent: self.text(&["gen_ai.agent.name", "agent.name"]),
            model: self.text(&["gen_ai.response.model", "gen_ai.request.model", "llm.model_name"]),
            provider: self.text(&["gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system"]),
            input_tokens: self.count(&[
                "gen_ai.usage.input_tokens",
                "gen_ai.usage.prompt_tokens",
                "llm.token_count.prompt",
            ]),
            output_tokens: self.count(&[
                "gen_ai.usage.output_tokens",
                "gen_ai.usage.completion_tokens",
                "llm.token_count.completion",
            ]),
            tool: self.text(&["gen_ai.tool.name", "tool.name"]),
            tool_call_id: self.tool_call_id(),
            tool_arguments: self
                .text(&["gen_ai.tool.call.arguments", "tool.parameters"])
                .or_else(|| (self.role() == SpanRole::Tool).then(|| self.text(&["input.value"])).flatten()),
            tool_result: self
                .text(&["gen_ai.tool.call.result"])
                .or_else(|| (self.role() == SpanRole::Tool).then(|| self.text(&["output.value"])).flatten()),
            input_messages: input_messages
                .or_else(|| (self.role() != SpanRole::Tool).then(|| self.text(&["input.value"])).flatten()),
            output_messages: output_messages
                .or_else(|| (self.role() != SpanRole::Tool).then(|| self.text(&["output.value"])).flatten()),
            error,
        }
    }

    /// Messages under one key, or flattened under a prefix (`gen_ai.prompt.0.content`,
    /// `llm.input_messages.0.message.content`), as text.
    fn messages(&self, keys: &[&str], legacy: &str, openinference: &str) -> Option<String> {
        if let Some(t) = self.text(keys) {
            return Some(t);
        }
        for prefix in [legacy, openinference] {
            let mut parts: Vec<(u32, String)> = self
                .attributes
                .iter()
                .filter_map(|(k, v)| {
                    let rest = k.strip_prefix(prefix)?;
                    let (index, field) = rest.split_once('.')?;
                    let field = field.strip_prefix("message.").unwrap_or(field);
                    if field != "content" {
                        return None;
                    }
                    Some((index.parse().ok()?, v.as_str().map_or(v.to_string(), str::to_string)))
                })
                .collect();
            if !parts.is_empty() {
                parts.sort_by_key(|(i, _)| *i);
                return Some(parts.into_iter().map(|(_, t)| t).collect::<Vec<_>>().join("\n"));
            }
        }
        None
    }
}

/// A span's part in the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpanRole {
    /// `invoke_agent`, or OpenInference `AGENT`.
    Agent,
    /// A model call: `chat`, `text_completion`, ...; OpenInference `LLM`.
    Llm,
    /// `execute_tool`; OpenInference `TOOL`.
    Tool,
    /// A chain, retriever or guardrail step.
    Step,
    /// Anything else (HTTP, database, ...).
    Other,
}

impl SpanRole {
    /// For people.
    pub fn label(self) -> &'static str {
        match self {
            SpanRole::Agent => "agent",
            SpanRole::Llm => "LLM call",
            SpanRole::Tool => "tool call",
            SpanRole::Step => "step",
            SpanRole::Other => "span",
        }
    }
}

/// What a reviewer reads of a span.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanSummary {
    /// Its part in the run.
    pub role: SpanRole,
    /// The agent's name (`gen_ai.agent.name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// The model that answered, else the one asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The model's provider (`gen_ai.provider.name`, legacy `gen_ai.system`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Tokens in the prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    /// Tokens in the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    /// The tool called.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// The tool call's id (`gen_ai.tool.call.id`), which a decision's `context.tool_call_id` names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// The arguments the tool was called with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_arguments: Option<String>,
    /// What the tool returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_result: Option<String>,
    /// The messages sent to the model, when recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_messages: Option<String>,
    /// The model's answer, when recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_messages: Option<String>,
    /// The error, when the span failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One row of the inspection tree: a span, its depth and its place on the timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TreeRow {
    /// The span's id.
    pub span_id: String,
    /// The parent's span id, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_span_id: Option<String>,
    /// 0 for a root.
    pub depth: u32,
    /// The span's (or event's) name.
    pub name: String,
    /// Start, in milliseconds after the trace's first span started.
    pub offset_ms: f64,
    /// How long it took, in milliseconds.
    pub duration_ms: f64,
    /// `unset`, `ok` or `error`.
    pub status: String,
    /// What a reviewer reads of it.
    pub summary: SpanSummary,
    /// Whether this is the tool call the decision was proposed from.
    pub is_decision: bool,
    /// The whole span: attributes and events.
    pub span: Span,
}

/// The run around a decision, as a reviewer inspects it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceTree {
    /// The trace (32 hex digits).
    pub trace_id: String,
    /// Depth-first, children in start order; spans whose parent never arrived are roots.
    pub rows: Vec<TreeRow>,
    /// The whole run, first start to last end.
    pub duration_ms: f64,
    /// Where the decision was made on the timeline (ms after the first span started), when it falls inside or after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_offset_ms: Option<f64>,
    /// How the decision was matched to a span: `tool_call_id`, or none (`trace_id` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_span_id: Option<String>,
    /// Totals over the LLM calls.
    pub input_tokens: u64,
    /// Answer tokens over the LLM calls.
    pub output_tokens: u64,
    /// LLM calls in the run.
    pub llm_calls: u32,
    /// Tool calls in the run.
    pub tool_calls: u32,
    /// Spans that failed.
    pub errors: u32,
}

/// Arrange a trace's spans into the inspection tree. `tool_call_id` marks the
/// decision's own tool call span; `decided_at_ns` places the decision on the timeline.
pub fn tree(trace_id: &str, spans: &[Span], tool_call_id: Option<&str>, decided_at_ns: Option<i64>) -> TraceTree {
    let origin = spans.iter().map(|s| s.start_ns).min().unwrap_or(0);
    let end = spans.iter().map(|s| s.end_ns.max(s.start_ns)).max().unwrap_or(origin);
    let ids: std::collections::HashSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    let mut children: std::collections::BTreeMap<Option<&str>, Vec<&Span>> = Default::default();
    for s in spans {
        let parent = s.parent_span_id.as_deref().filter(|p| ids.contains(p) && *p != s.span_id);
        children.entry(parent).or_default().push(s);
    }
    for list in children.values_mut() {
        list.sort_by(|a, b| (a.start_ns, &a.span_id).cmp(&(b.start_ns, &b.span_id)));
    }
    let decision_span = tool_call_id
        .and_then(|id| spans.iter().find(|s| s.tool_call_id().as_deref() == Some(id)))
        .map(|s| s.span_id.clone());
    // times are the agent's: differences saturate instead of overflowing
    let ms = |ns: i64| ns as f64 / 1e6;
    let row = |s: &Span, depth: u32| TreeRow {
        span_id: s.span_id.clone(),
        parent_span_id: s.parent_span_id.clone(),
        depth,
        name: s.name.clone(),
        offset_ms: ms(s.start_ns.saturating_sub(origin)),
        duration_ms: ms(s.end_ns.saturating_sub(s.start_ns).max(0)),
        status: s.status.clone(),
        summary: s.summary(),
        is_decision: decision_span.as_deref() == Some(s.span_id.as_str()),
        span: s.clone(),
    };
    let mut rows = Vec::with_capacity(spans.len());
    let mut seen = std::collections::HashSet::new();
    // depth-first from the roots; a cycle in parent ids cannot loop (each span once)
    let mut stack: Vec<(&Span, u32)> =
        children.get(&None).map_or(vec![], |r| r.iter().rev().map(|s| (*s, 0)).collect());
    while let Some((s, depth)) = stack.pop() {
        if !seen.insert(s.span_id.as_str()) {
            continue;
        }
        rows.push(row(s, depth));
        if let Some(kids) = children.get(&Some(s.span_id.as_str())) {
            stack.extend(kids.iter().rev().map(|k| (*k, depth + 1)));
        }
    }
    // spans only reachable through a cycle of parents: shown as roots rather than lost
    for s in spans {
        if !seen.contains(s.span_id.as_str()) {
            seen.insert(s.span_id.as_str());
            rows.push(row(s, 0));
        }
    }
    let llm: Vec<&TreeRow> = rows.iter().filter(|r| r.summary.role == SpanRole::Llm).collect();
    TraceTree {
        trace_id: trace_id.to_string(),
        duration_ms: ms(end.saturating_sub(origin)),
        decision_offset_ms: decided_at_ns
            .filter(|_| !spans.is_empty())
            .map(|t| ms(t.saturating_sub(origin)))
            .filter(|o| *o >= 0.0),
        decision_span_id: decision_span,
        input_tokens: llm.iter().filter_map(|r| r.summary.input_tokens).sum(),
        output_tokens: llm.iter().filter_map(|r| r.summary.output_tokens).sum(),
        llm_calls: llm.len() as u32,
        tool_calls: rows.iter().filter(|r| r.summary.role == SpanRole::Tool).count() as u32,
        errors: rows.iter().filter(|r| r.status == "error").count() as u32,
        rows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn span(id: &str, parent: Option<&str>, start: i64, end: i64, attrs: Value) -> Span {
        Span {
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
            span_id: id.into(),
            parent_span_id: parent.map(str::to_string),
            name: id.into(),
            kind: "internal".into(),
            start_ns: start,
            end_ns: end,
            status: "unset".into(),
            status_message: String::new(),
            service: Some("triage-agent".into()),
            attributes: attrs.as_object().unwrap().clone(),
            events: vec![],
            dropped: Dropped::default(),
            sender: None,
        }
    }

    #[test]
    fn a_run_becomes_agent_then_llm_then_tool_with_the_decision_marked() {
        let spans = vec![
            // arrives out of order, a tool call after the model call, under the agent
            span(
                "0000000000000003",
                Some("0000000000000001"),
                3_000_000,
                4_000_000,
                json!({
                "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "isolate_host",
                "gen_ai.tool.call.id": "call_7", "gen_ai.tool.call.arguments": "{\"host\":\"ws-1\"}"}),
            ),
            span(
                "0000000000000001",
                None,
                0,
                5_000_000,
                json!({"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "triage"}),
            ),
            span(
                "0000000000000002",
                Some("0000000000000001"),
                1_000_000,
                2_500_000,
                json!({
                "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4.1",
                "gen_ai.usage.input_tokens": 812, "gen_ai.usage.output_tokens": "64"}),
            ),
            // legacy names and OpenInference are understood too
            span(
                "0000000000000004",
                Some("0000000000000001"),
                4_100_000,
                4_200_000,
                json!({
                "openinference.span.kind": "LLM", "llm.model_name": "claude", "llm.token_count.prompt": 10,
                "llm.input_messages.1.message.content": "second", "llm.input_messages.0.message.content": "first"}),
            ),
            // a span whose parent never arrived is a root, not lost
            span(
                "0000000000000009",
                Some("00000000000000ff"),
                6_000_000,
                7_000_000,
                json!({"gen_ai.usage.prompt_tokens": 5, "gen_ai.system": "openai"}),
            ),
        ];
        let t = tree("4bf92f3577b34da6a3ce929d0e0e4736", &spans, Some("call_7"), Some(3_500_000));
        let order: Vec<(&str, u32)> = t.rows.iter().map(|r| (r.span_id.as_str(), r.depth)).collect();
        assert_eq!(
            order,
            [
                ("0000000000000001", 0),
                ("0000000000000002", 1),
                ("0000000000000003", 1),
                ("0000000000000004", 1),
                ("0000000000000009", 0)
            ]
        );
        let roles: Vec<SpanRole> = t.rows.iter().map(|r| r.summary.role).collect();
        assert_eq!(roles, [SpanRole::Agent, SpanRole::Llm, SpanRole::Tool, SpanRole::Llm, SpanRole::Llm]);
        assert!(t.rows[2].is_decision && t.rows.iter().filter(|r| r.is_decision).count() == 1);
        assert_eq!(t.decision_span_id.as_deref(), Some("0000000000000003"));
        assert_eq!(t.rows[2].summary.tool_arguments.as_deref(), Some("{\"host\":\"ws-1\"}"));
        assert_eq!(
            (t.rows[1].summary.model.as_deref(), t.rows[1].summary.input_tokens, t.rows[1].summary.output_tokens),
            (Some("gpt-4.1"), Some(812), Some(64))
        );
        assert_eq!(t.rows[3].summary.input_messages.as_deref(), Some("first\nsecond"));
        assert_eq!((t.input_tokens, t.output_tokens, t.llm_calls, t.tool_calls), (827, 64, 3, 1));
        assert_eq!((t.rows[1].offset_ms, t.rows[1].duration_ms), (1.0, 1.5));
        assert_eq!((t.duration_ms, t.decision_offset_ms), (7.0, Some(3.5)));
    }

    #[test]
    fn bounds_cut_long_values_and_count_what_they_drop() {
        let mut attrs = Map::new();
        for i in 0..MAX_ATTRIBUTES + 5 {
            attrs.insert(format!("k{i:03}"), json!(i));
        }
        attrs.insert("k000".into(), json!("é".repeat(MAX_VALUE_BYTES)));
        let mut s = span("00000000000000AB", None, 0, 1, Value::Object(attrs));
        s.events = (0..MAX_EVENTS + 2)
            .map(|i| SpanEvent { name: format!("e{i}"), time_ns: 0, attributes: Map::new() })
            .collect();
        s.bound();
        assert_eq!(s.span_id, "00000000000000ab");
        assert_eq!(s.attributes.len(), MAX_ATTRIBUTES);
        let v = s.attributes["k000"].as_str().unwrap();
        assert!(v.len() <= MAX_VALUE_BYTES + 32 && v.ends_with("more bytes]"), "{}", v.len());
        assert_eq!(s.dropped, Dropped { attributes: 5, events: 2, truncated_values: 1 });
        assert!(
            valid_id("4bf92f3577b34da6a3ce929d0e0e4736", 32) && !valid_id(&"0".repeat(32), 32) && !valid_id("xyz", 3)
        );
    }
}
