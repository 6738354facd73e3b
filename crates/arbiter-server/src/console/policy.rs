//! `GET /policy`: the active version, every stored version, the changed hunks
//! between two, a version's source, and (for admins) activation and rollback
//! behind a backtest summary; `POST /policy/backtest`: a stored version
//! replayed on labelled history beside another; `POST /policy/activate`.

use super::auth::ConsoleScope;
use super::auth::Viewer;
use super::forms::{Fields, field};
use super::layout::{QueryMap, done, error_page, failed, flash, frame, short, when};
use crate::AppState;
use crate::app;
use crate::error::ApiError;
use crate::extract::Query;
use arbiter_chart::{Axis, Chart, Marker};
use arbiter_core::Role;
use arbiter_core::policy_version::{PolicyVersion, PolicyVersionSummary};
use arbiter_policy::backtest::BacktestReport;
use axum::Form;
use axum::response::Response;
use maud::{Markup, PreEscaped, html};

/// Diffs of larger documents (lines × lines) are not computed here.
const DIFF_CELLS: usize = 4_000_000;
/// Unchanged lines shown around each change.
const CONTEXT: usize = 3;

/// One line of a diff.
#[derive(Debug, PartialEq, Clone, Copy)]
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

/// A run of changed lines with up to `CONTEXT` unchanged lines either side.
#[derive(Debug, PartialEq)]
struct Hunk<'a> {
    /// The first line's number in the old file (1-based).
    old_start: usize,
    /// The first line's number in the new file (1-based).
    new_start: usize,
    lines: Vec<Line<'a>>,
}

/// Group a diff into hunks; nearby changes share one.
fn hunks<'a>(lines: &[Line<'a>], context: usize) -> Vec<Hunk<'a>> {
    let changed: Vec<usize> =
        lines.iter().enumerate().filter(|(_, l)| !matches!(l, Line::Same(_))).map(|(i, _)| i).collect();
    // Line numbers before each diff line, in the old and the new file.
    let mut numbers = Vec::with_capacity(lines.len());
    let (mut old, mut new) = (1, 1);
    for l in lines {
        numbers.push((old, new));
        match l {
            Line::Same(_) => (old, new) = (old + 1, new + 1),
            Line::Added(_) => new += 1,
            Line::Removed(_) => old += 1,
        }
    }
    let mut out: Vec<Hunk> = Vec::new();
    let mut range: Option<(usize, usize)> = None;
    let flush = |r: (usize, usize), out: &mut Vec<Hunk<'a>>| {
        let (old_start, new_start) = numbers[r.0];
        out.push(Hunk { old_start, new_start, lines: lines[r.0..r.1].to_vec() });
    };
    for &c in &changed {
        let start = c.saturating_sub(context);
        let end = (c + 1 + context).min(lines.len());
        range = match range {
            Some((s, e)) if start <= e => Some((s, end.max(e))),
            Some(r) => {
                flush(r, &mut out);
                Some((start, end))
            }
            None => Some((start, end)),
        };
    }
    if let Some(r) = range {
        flush(r, &mut out);
    }
    out
}

fn diff(a: &str, b: &str) -> Markup {
    let Some(lines) = diff_lines(a, b) else {
        return html! { p.muted { "Too large to diff here." } };
    };
    let hunks = hunks(&lines, CONTEXT);
    let (added, removed) = lines.iter().fold((0, 0), |(a, r), l| match l {
        Line::Added(_) => (a + 1, r),
        Line::Removed(_) => (a, r + 1),
        Line::Same(_) => (a, r),
    });
    html! {
        @if hunks.is_empty() {
            p.muted { "The two versions have the same text." }
        } @else {
            p.muted { (added) " line(s) added, " (removed) " removed, in " (hunks.len()) " place(s)." }
        }
        @for h in &hunks {
            div.diff {
                p.hunk { "Line " (h.old_start) " (now line " (h.new_start) ")" }
                pre {
                    @for line in &h.lines {
                        @match line {
                            Line::Same(t) => { "  " (t) "\n" }
                            Line::Added(t) => { span.add { "+ " (t) } "\n" }
                            Line::Removed(t) => { span.del { "- " (t) } "\n" }
                        }
                    }
                }
            }
        }
    }
}

/// The version a rollback returns to: the most recently active one besides the active.
fn previous(versions: &[PolicyVersionSummary]) -> Option<&PolicyVersionSummary> {
    versions.iter().filter(|v| !v.active && v.last_activated_at.is_some()).max_by_key(|v| v.last_activated_at)
}

/// The version worth comparing with the active one: the newest other.
fn candidate(versions: &[PolicyVersionSummary]) -> Option<&PolicyVersionSummary> {
    versions.iter().filter(|v| !v.active).max_by_key(|v| v.created_at)
}

fn options(versions: &[PolicyVersionSummary], selected: Option<&str>) -> Markup {
    html! {
        @for v in versions {
            option value=(v.hash) selected[selected == Some(v.hash.as_str())] {
                (v.name) " · " (short(&v.hash)) @if v.active { " (active)" }
            }
        }
    }
}

fn pct(x: f64, digits: usize) -> String {
    format!("{:.*}%", digits, 100.0 * x)
}

/// `GET /policy?from=&to=` (a diff) `&view=` (a version's source) `&activate=` (an admin's confirmation).
pub async fn page(ConsoleScope(state): ConsoleScope, viewer: Viewer, Query(q): Query<QueryMap>) -> Response {
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
    let admin = viewer.who.role == Role::Admin;
    let confirm = match q.get("activate") {
        Some(h) if admin => match confirmation(&state, &viewer, h, &versions).await {
            Ok(m) => Some(m),
            Err(e) => return failed("/policy", &e),
        },
        _ => None,
    };
    let active = versions.iter().find(|v| v.active);
    let (active_hash, candidate) = (active.map(|a| a.hash.as_str()), candidate(&versions));
    let previous = previous(&versions);
    let body = html! {
        h1 { "Policy" }
        (flash(&q))
        @if let (Some(a), Some(p)) = (active, state.policy()) {
            p {
                "Active: " b { (a.name) } " " code { (short(&a.hash)) } " · " (p.trigger_count()) " triggers"
                @if let Some(t) = a.last_activated_at { " · activated " (when(t)) }
            }
            @if admin && let Some(prev) = previous {
                p { a.button.secondary href={ "/policy?activate=" (prev.hash) } { "Roll back to " (prev.name) " " (short(&prev.hash)) "…" } }
            }
        }
        @if let Some(c) = confirm { (c) }
        h2 { "Versions" }
        table {
            thead { tr { th { "Name" } th { "Hash" } th { "Stored" } th { "By" } th { "Last activated" } th {} } }
            tbody {
                @for v in &versions {
                    tr {
                        td { (v.name) @if v.active { " " span.pill { "active" } } }
                        td { code { (short(&v.hash)) } }
                        td { (when(v.created_at)) }
                        td { (v.created_by) }
                        td { @if let Some(t) = v.last_activated_at { (when(t)) } @else { span.muted { "never (draft)" } } }
                        td.actions {
                            a href={ "/policy?view=" (v.hash) } { "source" }
                            @if let (Some(a), false) = (active_hash, v.active) {
                                " · " a href={ "/policy?from=" (a) "&to=" (v.hash) } { "diff with active" }
                                @if admin { " · " a href={ "/policy?activate=" (v.hash) } { "activate…" } }
                            }
                        }
                    }
                }
            }
        }
        div.grid {
            form.card method="get" action="/policy" {
                h2 { "Compare two versions" }
                label { "From" select name="from" { (options(&versions, from.as_ref().map(|v| v.hash.as_str()).or(active_hash))) } }
                label { "To" select name="to" { (options(&versions, to.as_ref().map(|v| v.hash.as_str()).or(candidate.map(|c| c.hash.as_str())))) } }
                button.secondary type="submit" { "Diff" }
            }
            form.card method="post" action="/policy/backtest" {
                h2 { "Backtest" }
                (viewer.csrf_field())
                label { "Version to test" select name="hash" { (options(&versions, candidate.map(|c| c.hash.as_str()).or(active_hash))) } }
                label { "Against" select name="against" { (options(&versions, active_hash)) } }
                p.muted { "Replays the most recent 100,000 decisions with recorded outcomes through both versions." }
                button type="submit" { "Run backtest" }
            }
        }
        @if let (Some(a), Some(b)) = (&from, &to) {
            h2 { "Diff " (a.name) " " code { (short(&a.hash)) } " → " (b.name) " " code { (short(&b.hash)) } }
            (diff(&a.source, &b.source))
        }
        @if let Some(v) = &view {
            h2 { "Source of " (v.name) " " code { (short(&v.hash)) } }
            pre { (v.source) }
        }
    };
    frame("Policy", Some(&viewer), body)
}

/// One line comparing a tested version with the one it was replayed beside.
fn summary(report: &BacktestReport) -> Markup {
    let new = &report.new;
    html! {
        @if let Some(cur) = &report.current {
            p {
                "On " (new.decisions) " labelled decisions: escalation " b { (pct(cur.escalation_rate, 1)) " → " (pct(new.escalation_rate, 1)) }
                ", wrong actions run without review " b { (pct(cur.auto_error_rate, 2)) " → " (pct(new.auto_error_rate, 2)) }
                "; " (report.changed) " verdict(s) change."
            }
        } @else {
            p { "On " (new.decisions) " labelled decisions: escalation " (pct(new.escalation_rate, 1)) ", wrong actions run without review " (pct(new.auto_error_rate, 2)) "." }
        }
        @if new.decisions == 0 {
            p.muted { "No decisions have recorded outcomes yet, so the replay has nothing to measure (record them with " code { "arbiter outcomes" } " or on a decided case)." }
        }
    }
}

/// The card an admin confirms an activation on: the backtest against the active version first.
async fn confirmation(
    state: &AppState,
    viewer: &Viewer,
    hash: &str,
    versions: &[PolicyVersionSummary],
) -> Result<Markup, ApiError> {
    let v = versions
        .iter()
        .find(|v| v.hash == hash)
        .ok_or_else(|| ApiError::NotFound(format!("policy version {hash} not found")))?;
    if v.active {
        return Err(ApiError::Conflict(format!("{} {} is already active", v.name, short(&v.hash))));
    }
    let report = app::policy::backtest(state, hash, None, None).await?;
    let undone = app::policy::lessons_undone_by(state, &*state.policy_version(&v.hash).await?).await?;
    let rollback = previous(versions).is_some_and(|p| p.hash == v.hash);
    Ok(html! {
        section.card.confirm {
            h2 { @if rollback { "Roll back to " } @else { "Activate " } (v.name) " " code { (short(&v.hash)) } "?" }
            p.muted { "Stored " (when(v.created_at)) " by " (v.created_by) ". Decisions made from now on use it; past decisions keep the version that made them." }
            (summary(&report))
            @if !undone.is_empty() {
                div.warning role="alert" {
                    p { strong { "This version undoes " (undone.len()) " published lesson(s):" } }
                    ul {
                        @for l in &undone {
                            li { a href={ "/lessons/" (l.lesson_id) } { (l.title) } ": " (l.changes.join("; ")) }
                        }
                    }
                }
            }
            form method="post" action="/policy/activate" {
                (viewer.csrf_field())
                input type="hidden" name="hash" value=(v.hash);
                label.check { input type="checkbox" name="force" value="true"; " Activate even if it changes more verdicts on recent history than the guard allows, or undoes a published lesson" }
                button type="submit" { @if rollback { "Roll back" } @else { "Activate" } }
                " " a href="/policy" { "Cancel" }
            }
        }
    })
}

/// `POST /policy/activate`: an admin activates a stored version.
pub async fn activate(ConsoleScope(state): ConsoleScope, viewer: Viewer, Form(f): Form<Fields>) -> Response {
    if let Err(e) = viewer.check_csrf(&f) {
        return error_page(e);
    }
    if viewer.who.role != Role::Admin {
        return error_page(ApiError::Forbidden("only admins activate policy versions".into()));
    }
    let hash = field(&f, "hash");
    let back = format!("/policy?activate={hash}");
    let v = match app::policy::version(&state, hash).await {
        Ok(v) => v,
        Err(e) => return failed("/policy", &e),
    };
    match app::policy::activate(&state, &v.source, &viewer.who.name, field(&f, "force") == "true").await {
        Ok((p, _, _)) => {
            done("/policy", &format!("Activated {} {} ({} triggers).", p.name(), short(p.hash()), p.trigger_count()))
        }
        Err(e) => failed(&back, &e),
    }
}

/// `POST /policy/backtest`: run a backtest and show the results with a plot.
pub async fn backtest(ConsoleScope(state): ConsoleScope, viewer: Viewer, Form(f): Form<Fields>) -> Response {
    if let Err(e) = viewer.check_csrf(&f) {
        return error_page(e);
    }
    let against = Some(field(&f, "against")).filter(|a| !a.is_empty());
    let report = match app::policy::backtest(&state, field(&f, "hash"), against, None).await {
        Ok(r) => r,
        Err(e) => return failed("/policy", &e),
    };
    let same = report.current.as_ref().is_some_and(|c| c.hash == report.new.hash);
    let rows: Vec<_> = [("tested", Some(&report.new)), ("against", report.current.as_ref())]
        .into_iter()
        .filter_map(|(l, s)| Some((l, s?)))
        .collect();
    let x_max = rows.iter().map(|(_, s)| s.escalation_rate).fold(0.0f64, f64::max);
    let chart = Chart {
        title: "Escalation rate and unreviewed wrong actions".into(),
        x_label: "escalated".into(),
        y_label: "wrong actions run without review".into(),
        series: vec![],
        markers: rows
            .iter()
            .map(|(l, s)| Marker {
                at: (s.escalation_rate, s.auto_error_rate),
                label: format!("{l} {}: {} / {}", short(&s.hash), pct(s.escalation_rate, 1), pct(s.auto_error_rate, 2)),
            })
            .collect(),
        x_axis: Axis::Percent,
        y_axis: Axis::Percent,
        // From zero to a little past the larger rate (never past 100%).
        x_range: Some((0.0, (x_max * 1.25).clamp(0.01, 1.0))),
        ..Default::default()
    };
    let body = html! {
        h1 { "Backtest" }
        @if same {
            p.error { "Both sides are the same version, so nothing can change: choose a candidate to test against the active version." }
        }
        (summary(&report))
        table {
            thead { tr {
                th {} th { "Policy" } th { "Decisions" } th { "Escalated" } th { "Wrong actions run without review" } th { "Caught" } th { "Missed" }
            } }
            tbody {
                @for (label, s) in &rows {
                    tr {
                        td { (label) } td { (s.policy) " " code { (short(&s.hash)) } } td { (s.decisions) }
                        td { (pct(s.escalation_rate, 1)) }
                        td { (pct(s.auto_error_rate, 2)) }
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

    #[test]
    fn shows_only_changed_hunks_with_context() {
        let old: String = (1..=40).map(|i| format!("line {i}\n")).collect();
        let new = old.replace("line 5\n", "line five\n").replace("line 30\n", "");
        let lines = diff_lines(&old, &new).unwrap();
        let h = hunks(&lines, 3);
        assert_eq!(h.len(), 2, "{h:?}");
        assert_eq!((h[0].old_start, h[0].new_start), (2, 2));
        assert_eq!(h[0].lines.len(), 3 + 2 + 3);
        assert_eq!((h[1].old_start, h[1].new_start), (27, 27));
        assert_eq!(
            h[1].lines,
            vec![
                Line::Same("line 27"),
                Line::Same("line 28"),
                Line::Same("line 29"),
                Line::Removed("line 30"),
                Line::Same("line 31"),
                Line::Same("line 32"),
                Line::Same("line 33"),
            ]
        );
        let html = diff(&old, &new).into_string();
        assert!(!html.contains("line 15"), "unchanged lines far from a change are not shown");
        // Changes closer than twice the context share a hunk.
        let near = old.replace("line 5\n", "").replace("line 9\n", "");
        assert_eq!(hunks(&diff_lines(&old, &near).unwrap(), 3).len(), 1);
        assert!(hunks(&diff_lines(&old, &old).unwrap(), 3).is_empty());
    }
}
