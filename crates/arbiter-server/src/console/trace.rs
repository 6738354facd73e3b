//! The agent's run around a decision, on the case and review pages: the span
//! tree (agent → LLM calls → tool calls) with a timeline, the decision's own
//! tool call marked, and each span's details (model, tokens, latency, errors,
//! tool arguments and results, messages) one click away.

use arbiter_core::trace::{SpanRole, TraceTree, TreeRow};
use maud::{Markup, html};

/// Widest indentation step drawn (deeper spans share it).
const MAX_DEPTH: u32 = 8;

fn ms(v: f64) -> String {
    if v >= 1000.0 { format!("{:.2} s", v / 1000.0) } else { format!("{v:.1} ms") }
}

/// The timeline of one row: an SVG bar (no inline styles under the page's CSP).
fn bar(t: &TraceTree, r: &TreeRow) -> Markup {
    let total = t.duration_ms.max(1e-6);
    let x = (100.0 * r.offset_ms / total).clamp(0.0, 100.0);
    let w = (100.0 * r.duration_ms / total).clamp(0.4, 100.0 - x);
    let marker = on_timeline(t).map(|o| (100.0 * o / total).clamp(0.0, 100.0));
    let class = match (r.status.as_str(), r.summary.role) {
        ("error", _) => "bar error",
        (_, SpanRole::Agent) => "bar agent",
        (_, SpanRole::Llm) => "bar llm",
        (_, SpanRole::Tool) => "bar tool",
        _ => "bar other",
    };
    html! {
        svg.timeline viewBox="0 0 100 10" preserveAspectRatio="none" role="img"
            aria-label={ "starts at " (ms(r.offset_ms)) ", lasts " (ms(r.duration_ms)) } {
            rect class=(class) x=(format!("{x:.2}")) y="1" width=(format!("{w:.2}")) height="8" {}
            @if let Some(m) = marker { line.decided x1=(format!("{m:.2}")) x2=(format!("{m:.2}")) y1="0" y2="10" {} }
        }
    }
}

/// When the proposal arrived, if that falls within the run's timeline.
fn on_timeline(t: &TraceTree) -> Option<f64> {
    t.decision_offset_ms.filter(|o| *o <= t.duration_ms)
}

fn detail(label: &str, value: &Option<String>) -> Markup {
    html! { @if let Some(v) = value { dt { (label) } dd { pre { (v) } } } }
}

/// The card; `None` says where the run would come from.
pub fn card(tree: Option<&TraceTree>) -> Markup {
    let Some(t) = tree else {
        return html! {
            div.card #agent-run {
                h2 { "Agent run" }
                p.muted {
                    "No span of this decision's run has arrived. Agents that export OpenTelemetry traces to "
                    code { "/v1/traces" } " and propose with the same " code { "trace_id" } " (or a "
                    code { "context.tool_call_id" } ") show their run here."
                }
            }
        };
    };
    html! {
        div.card #agent-run {
            h2 { "Agent run" }
            p {
                (t.rows.len()) " spans over " (ms(t.duration_ms)) " · " (t.llm_calls) " LLM call(s), "
                (t.input_tokens) " → " (t.output_tokens) " tokens · " (t.tool_calls) " tool call(s)"
                @if t.errors > 0 { " · " b.error-text { (t.errors) " error(s)" } }
                br; small.muted { "trace " code { (t.trace_id) } @if on_timeline(t).is_some() { " · the red line is when Arbiter got the proposal" } @else if t.decision_offset_ms.is_some() { " · the proposal arrived after the run's last span ended" } }
            }
            ol.spans {
                @for r in &t.rows {
                    li id={ "span-" (r.span_id) } class={ "span depth-" (r.depth.min(MAX_DEPTH)) @if r.is_decision { " decision" } } {
                        details {
                            summary {
                                span.role { (r.summary.role.label()) } " "
                                b { (r.name) }
                                @if let Some(m) = &r.summary.model { " " small { (m) } }
                                @if let Some(tool) = &r.summary.tool { " " small { (tool) } }
                                @if r.is_decision { " " span.pill { "this decision" } }
                                @if let Some(e) = &r.summary.error { " " span.pill.error-text { (e) } }
                                " " small.muted { (ms(r.duration_ms)) }
                                (bar(t, r))
                            }
                            dl {
                                dt { "Span" } dd { code { (r.span_id) } @if let Some(s) = &r.span.service { " · " (s) } " · " (r.span.kind) }
                                @if let (Some(i), o) = (r.summary.input_tokens, r.summary.output_tokens) {
                                    dt { "Tokens" } dd { (i) " in, " (o.unwrap_or(0)) " out" }
                                }
                                (detail("Tool arguments", &r.summary.tool_arguments))
                                (detail("Tool result", &r.summary.tool_result))
                                (detail("Input messages", &r.summary.input_messages))
                                (detail("Output messages", &r.summary.output_messages))
                                @if !r.span.events.is_empty() {
                                    dt { "Events" }
                                    dd { ul { @for e in &r.span.events { li { (e.name) } } } }
                                }
                                dt { "Attributes" }
                                dd { pre { (serde_json::to_string_pretty(&r.span.attributes).unwrap_or_default()) } }
                            }
                        }
                    }
                }
            }
        }
    }
}
