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
    let (x, w) = bar_geometry(r.offset_ms, r.duration_ms, t.duration_ms);
    let marker = on_timeline(t).map(|o| percent(o, t.duration_ms).clamp(0.0, 100.0));
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

/// The narrowest bar drawn, in percent of the timeline.
const MIN_BAR: f64 = 0.4;

/// `v` as a percentage of the run's `total`; 0 for what is not a number.
fn percent(v: f64, total_ms: f64) -> f64 {
    let total = if total_ms.is_finite() && total_ms > 0.0 { total_ms } else { 1e-6 };
    let p = 100.0 * v / total;
    if p.is_finite() { p } else { 0.0 }
}

/// A span's bar on the timeline: its left edge and width, in percent. The
/// times come from the agent, so this never fails: the bar is at least
/// [`MIN_BAR`] wide and stays inside the track (a span starting at the very
/// end of the run is drawn at the end, not past it).
fn bar_geometry(offset_ms: f64, duration_ms: f64, total_ms: f64) -> (f64, f64) {
    let x = percent(offset_ms, total_ms).clamp(0.0, 100.0 - MIN_BAR);
    let w = percent(duration_ms, total_ms).clamp(MIN_BAR, 100.0 - x);
    (x, w)
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

#[cfg(test)]
mod tests {
    use super::*;
    use arbiter_core::trace::{Dropped, Span};
    use proptest::prelude::*;

    #[test]
    fn a_span_at_the_very_end_of_the_run_is_drawn_inside_it() {
        // the trust review's panic: the last span starts within 0.4% of the run's end
        let (x, w) = bar_geometry(999.0, 0.0, 1000.0);
        assert!((x + w - 100.0).abs() < 1e-9 && w >= MIN_BAR, "{x} {w}");
        for (o, d, t) in [(f64::NAN, 1.0, 10.0), (5.0, f64::INFINITY, 10.0), (-3.0, -1.0, 0.0), (1e300, 1e300, 1e-300)]
        {
            let (x, w) = bar_geometry(o, d, t);
            assert!((0.0..=100.0 - MIN_BAR).contains(&x) && w >= MIN_BAR && x + w <= 100.0 + 1e-9, "{o} {d} {t}");
        }
    }

    fn span(i: usize, parent: Option<usize>, start: i64, end: i64) -> Span {
        Span {
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
            span_id: format!("{i:016x}"),
            parent_span_id: parent.map(|p| format!("{p:016x}")),
            name: format!("span {i}"),
            kind: "internal".into(),
            start_ns: start,
            end_ns: end,
            status: if i.is_multiple_of(3) { "error".into() } else { "unset".into() },
            status_message: String::new(),
            service: None,
            attributes: Default::default(),
            events: vec![],
            dropped: Dropped::default(),
            sender: None,
        }
    }

    proptest! {
        /// Any spans an agent can send lay out and render: no panic, every
        /// bar inside the track.
        #[test]
        fn any_run_renders(
            times in proptest::collection::vec((any::<i64>(), any::<i64>(), any::<Option<u8>>()), 1..24),
            decided in any::<Option<i64>>(),
        ) {
            let spans: Vec<Span> = times
                .iter()
                .enumerate()
                .map(|(i, (s, e, p))| span(i + 1, p.map(|p| usize::from(p) % (i + 1)).filter(|p| *p > 0), *s, *e))
                .collect();
            let tree = arbiter_core::trace::tree("4bf92f3577b34da6a3ce929d0e0e4736", &spans, None, decided);
            for r in &tree.rows {
                let (x, w) = bar_geometry(r.offset_ms, r.duration_ms, tree.duration_ms);
                prop_assert!(x >= 0.0 && w >= MIN_BAR && x + w <= 100.0 + 1e-9);
            }
            let _ = card(Some(&tree)).into_string();
        }
    }
}
