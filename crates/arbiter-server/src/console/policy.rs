//! `GET /policy`: the active version, every stored version, a line diff
//! between two, a version's source; `POST /policy/backtest`: a stored
//! version replayed on labelled history beside the active one.

use super::auth::Viewer;
use super::forms::{Fields, field};
use super::layout::{QueryMap, error_page, failed, flash, frame, short};
use crate::AppState;
use crate::app;
use crate::extract::Query;
use arbiter_core::chart::{Chart, Marker};
use arbiter_core::policy_version::PolicyVersion;
use axum::Form;
use axum::extract::State;
use axum::response::Response;
use maud::{Markup, PreEscaped, html};
use std::sync::Arc;

/// Diffs of larger documents (lines × lines) are not computed here.
const DIFF_CELLS: usize = 4_000_000;

/// One line of a diff.
#[derive(Debug, PartialEq)]
enum Line<'a> {
    Same(&'a str),
    Added(&'a str),
    Removed(&'a str),
}

/// A line diff by longest common subsequence; `None` when too large.
fn diff_lines<'a>(a: &'a str, b: &'a str) -> Option<Vec<Line<'a>>> {
    let (x, y): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    let (n, m) = (x.len(), y.len());
    if n * m > DIFF_CELLS {
        return None;
    }
    let mut l = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            l[i][j] = if x[i] == y[j] { l[i + 1][j + 1] + 1 } else { l[i + 1][j].max(l[i][j + 1]) };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::with_capacity(n.max(m)));
    while i < n || j < m {
        if i < n && j < m && x[i] == y[j] {
            out.push(Line::Same(x[i]));
            i += 1;
            j += 1;
        } else if j < m && (i == n || l[i][j + 1] >= l[i + 1][j]) {
            out.push(Line::Added(y[j]));
            j += 1;
        } else {
            out.push(Line::Removed(x[i]));
            i += 1;
        }
    }
    Some(out)
}

fn diff(a: &str, b: &str) -> Markup {
    let Some(lines) = diff_lines(a, b) else {
        return html! { p.muted { "Too large to diff here." } };
    };
    html! {
        div.diff { pre {
            @for line in lines {
                @match line {
                    Line::Same(t) => { "  " (t) "\n" }
                    Line::Added(t) => { span.add { "+ " (t) } "\n" }
                    Line::Removed(t) => { span.del { "- " (t) } "\n" }
                }
            }
        } }
    }
}

/// `GET /policy?from=&to=` (a diff) `&view=` (a version's source).
pub async fn page(State(state): State<Arc<AppState>>, viewer: Viewer, Query(q): Query<QueryMap>) -> Response {
    let versions = match state.store.policy_versions().await {
        Ok(v) => v,
        Err(e) => return error_page(e.into()),
    };
    let stored = |h: Option<&String>| {
        let state = state.clone();
        let h = h.cloned();
        async move {
            match h {
                Some(h) => app::policy::version(&state, &h).await.ok(),
                None => None,
            }
        }
    };
    let (from, to, view): (Option<PolicyVersion>, Option<PolicyVersion>, Option<PolicyVersion>) =
        (stored(q.get("from")).await, stored(q.get("to")).await, stored(q.get("view")).await);
    let active = versions.iter().find(|v| v.active);
    let version_options = html! {
        @for v in &versions { option value=(v.hash) { (v.name) " · " (short(&v.hash)) } }
    };
    let body = html! {
        h1 { "Policy" }
        (flash(&q))
        @if let (Some(a), Some(p)) = (active, state.policy()) {
            p {
                "Active: " b { (a.name) } " " code { (short(&a.hash)) } " · " (p.trigger_count()) " triggers · activated "
                (a.last_activated_at.map(|t| t.to_string()).unwrap_or_default())
            }
        }
        h2 { "Versions" }
        table {
            thead { tr { th { "Name" } th { "Hash" } th { "Stored" } th { "By" } th {} } }
            tbody {
                @for v in &versions {
                    tr {
                        td { (v.name) @if v.active { " " span.pill { "active" } } }
                        td { code { (short(&v.hash)) } }
                        td { (super::layout::when(v.created_at)) }
                        td { (v.created_by) }
                        td { a href={ "/policy?view=" (v.hash) } { "source" } }
                    }
                }
            }
        }
        div.grid {
            form.card method="get" action="/policy" {
                h2 { "Compare two versions" }
                label { "From" } select name="from" { (version_options) }
                label { "To" } select name="to" { (version_options) }
                button.secondary type="submit" { "Diff" }
            }
            form.card method="post" action="/policy/backtest" {
                h2 { "Backtest" }
                (viewer.csrf_field())
                label { "Version to test" } select name="hash" { (version_options) }
                p.muted { "Replays the most recent 100,000 decisions with recorded outcomes beside the active version." }
                button type="submit" { "Run backtest" }
            }
        }
        @if let (Some(a), Some(b)) = (&from, &to) {
            h2 { "Diff " (short(&a.hash)) " → " (short(&b.hash)) }
            (diff(&a.source, &b.source))
        }
        @if let Some(v) = &view {
            h2 { "Source of " (short(&v.hash)) }
            pre { (v.source) }
        }
    };
    frame("Policy", Some(&viewer), body)
}

/// `POST /policy/backtest`: run a backtest and show the results with a plot.
pub async fn backtest(State(state): State<Arc<AppState>>, viewer: Viewer, Form(f): Form<Fields>) -> Response {
    if let Err(e) = viewer.check_csrf(&f) {
        return error_page(e);
    }
    let report = match app::policy::backtest(&state, field(&f, "hash"), None, None).await {
        Ok(r) => r,
        Err(e) => return failed("/policy", &e),
    };
    let rows: Vec<_> = [("tested", Some(&report.new)), ("active", report.current.as_ref())]
        .into_iter()
        .filter_map(|(l, s)| Some((l, s?)))
        .collect();
    let chart = Chart {
        title: "Escalation rate vs auto-error rate".into(),
        x_label: "escalation rate".into(),
        y_label: "auto-error rate".into(),
        series: vec![],
        markers: rows
            .iter()
            .map(|(l, s)| Marker {
                at: (s.escalation_rate, s.auto_error_rate),
                label: format!("{l}: {:.1}% / {:.2}%", 100.0 * s.escalation_rate, 100.0 * s.auto_error_rate),
            })
            .collect(),
        hline: None,
        ..Default::default()
    };
    let body = html! {
        h1 { "Backtest" }
        table {
            thead { tr {
                th {} th { "Policy" } th { "Decisions" } th { "Escalated" } th { "Auto-error rate" } th { "Caught" } th { "Missed" }
            } }
            tbody {
                @for (label, s) in &rows {
                    tr {
                        td { (label) } td { (s.policy) " " code { (short(&s.hash)) } } td { (s.decisions) }
                        td { (format!("{:.1}%", 100.0 * s.escalation_rate)) }
                        td { (format!("{:.2}%", 100.0 * s.auto_error_rate)) }
                        td { (s.errors_caught) } td { (s.errors_missed) }
                    }
                }
            }
        }
        // The chart renders (and escapes) its own SVG.
        div.card { (PreEscaped(chart.svg())) }
        h2 { (report.changed) " decisions would change verdict" }
        ul {
            @for c in &report.changes {
                li { (c.from.to_string()) " → " (c.to.to_string()) ": " (c.count) " (" (c.wrong) " wrong actions) e.g. " (c.examples.join(", ")) }
            }
        }
        p { a href="/policy" { "Back to the policy" } }
    };
    frame("Backtest", Some(&viewer), body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diffs_lines_and_escapes_them() {
        assert_eq!(
            diff_lines("a\nb\nc\n", "a\nx\nc\n").unwrap(),
            vec![Line::Same("a"), Line::Added("x"), Line::Removed("b"), Line::Same("c")]
        );
        let html = diff("<x>", "<y>").into_string();
        assert!(html.contains(r#"<span class="add">+ &lt;y&gt;</span>"#), "{html}");
        assert!(html.contains(r#"<span class="del">- &lt;x&gt;</span>"#), "{html}");
    }
}
