//! `GET /dashboard`: decisions and escalations per hour against the reviewer
//! budget, per action class, time to decision, SLA events, and drift.

use super::auth::ConsoleScope;
use super::auth::Viewer;
use super::layout::{QueryMap, error_page, frame};
use crate::AppState;
use crate::extract::Query;
use arbiter_chart::{Axis, Chart, Series};
use arbiter_core::drift::RateTest;
use arbiter_core::duration::human_ms;
use arbiter_core::stats::quantile_sorted;
use arbiter_core::{CaseKind, FinalSource, Verdict};
use axum::response::Response;
use maud::{Markup, PreEscaped, html};
use std::collections::BTreeMap;

const HOUR_MS: i64 = 3_600_000;
/// The columns of the endings table: how a decision ended and who settled it.
/// The last one takes whatever else there is.
const ENDINGS: [(&str, Option<Verdict>, Option<FinalSource>); 7] = [
    ("Allowed by the policy", Some(Verdict::Allow), Some(FinalSource::Policy)),
    ("Denied by the policy", Some(Verdict::Deny), Some(FinalSource::Policy)),
    ("Approved by people", Some(Verdict::Allow), Some(FinalSource::Review)),
    ("Refused by people", Some(Verdict::Deny), Some(FinalSource::Review)),
    ("Denied after the SLA", Some(Verdict::Deny), Some(FinalSource::SlaExpired)),
    ("Allowed after the SLA", Some(Verdict::Allow), Some(FinalSource::SlaExpired)),
    ("Waiting or other", None, None),
];

/// Width of the per-class bars, px.
const BAR_WIDTH: u64 = 200;

/// `GET /dashboard?hours=N` (1 to 90 days; 24 by default).
pub async fn page(ConsoleScope(state): ConsoleScope, viewer: Viewer, Query(q): Query<QueryMap>) -> Response {
    let hours: i64 = q.get("hours").and_then(|h| h.parse().ok()).unwrap_or(24).clamp(1, 24 * 90);
    let now = state.clock.now();
    let budget = state.config.escalation_budget;
    let since = now.plus_millis(-hours * HOUR_MS);
    let d = match state.store.dashboard(since).await {
        Ok(d) => d,
        Err(e) => return error_page(e.into()),
    };
    let points: Vec<(f64, f64)> = d
        .hourly
        .iter()
        .map(|h| ((h.hour.0 - since.0) as f64 / HOUR_MS as f64, h.escalated as f64 / h.decisions.max(1) as f64))
        .collect();
    let chart = Chart {
        title: format!("Escalation rate per hour, last {hours} h"),
        x_label: "time (UTC)".into(),
        y_label: "escalated".into(),
        series: vec![Series { name: "escalated".into(), points, color: "#0a6ebd", dashed: false }],
        markers: vec![],
        hline: Some((budget, format!("budget {}", percent(budget)))),
        x_axis: Axis::Clock(since.0),
        y_axis: Axis::Percent,
        x_range: Some((0.0, hours as f64)),
    };
    let depth: Vec<(f64, f64)> =
        d.queue_depth.iter().map(|(t, n)| ((t.0 - since.0) as f64 / HOUR_MS as f64, *n as f64)).collect();
    let depth_chart = Chart {
        title: "Approval cases waiting for people".into(),
        x_label: "time (UTC)".into(),
        y_label: "cases".into(),
        series: vec![Series { name: "waiting".into(), points: depth, color: "#b35900", dashed: false }],
        x_axis: Axis::Clock(since.0),
        y_axis: Axis::Count,
        x_range: Some((0.0, hours as f64)),
        ..Default::default()
    };
    let total: u64 = d.hourly.iter().map(|h| h.decisions).sum();
    let escalated: u64 = d.hourly.iter().map(|h| h.escalated).sum();
    let mut ttd: Vec<f64> = d.time_to_decision_ms.iter().map(|m| *m as f64).collect();
    ttd.sort_by(f64::total_cmp);
    let ttd_at = |q: f64| human_ms(quantile_sorted(&ttd, q) as i64);
    // per class: how the decisions ended, by who settled them
    let mut classes: BTreeMap<&str, [u64; ENDINGS.len()]> = BTreeMap::new();
    for e in &d.endings {
        let slot = ENDINGS.iter().position(|(_, v, s)| *v == e.verdict && *s == e.source).unwrap_or(ENDINGS.len() - 1);
        classes.entry(e.action.as_str()).or_default()[slot] += e.decisions;
    }
    let class_total = |c: &[u64; ENDINGS.len()]| c.iter().sum::<u64>();
    let max = classes.values().map(class_total).max().unwrap_or(1).max(1);
    let recurrence = recurrence_table(&state).await;
    let open_of = |kind: CaseKind| -> u64 { d.open_cases.iter().filter(|c| c.kind == kind).map(|c| c.cases).sum() };
    let body = html! {
        h1 { "Dashboard " small { "last " (hours) " hours" } }
        div.grid {
            div.card {
                h2 { "Decisions" }
                p {
                    b { (total) } " decisions, " b { (escalated) } " escalated ("
                    (format!("{:.1}", 100.0 * escalated as f64 / total.max(1) as f64)) "%, budget "
                    (percent(budget)) ")"
                }
                p { "Open approval cases: " b { (open_of(CaseKind::Approval)) } " · open reviews: " b { (open_of(CaseKind::Review)) } }
                p { "Time to decision: p50 " b { (ttd_at(0.5)) } ", p95 " b { (ttd_at(0.95)) } " (" (ttd.len()) " decided)" }
                p {
                    "SLA: " b { (d.tier_escalations) } " tier escalations, " b { (d.sla_fallbacks) }
                    " fallbacks after the SLA · drift episodes started: " b { (d.drift_alarms) }
                }
            }
            // The charts render (and escape) their own SVG.
            div.card { (PreEscaped(chart.svg())) }
            div.card { (PreEscaped(depth_chart.svg())) }
        }
        h2 { "How decisions ended, by action class" }
        table.endings {
            thead { tr { th { "Action" } th { "Decisions" } @for (label, _, _) in ENDINGS { th.num { (label) } } th.opt {} } }
            tbody {
                @for (action, c) in &classes {
                    @let sum = class_total(c);
                    tr {
                        td { (action) } td.num { (sum) }
                        @for n in c { td.num { (n) } }
                        td.opt {
                            svg width=(BAR_WIDTH) height="10" role="img" aria-label={ (sum) " decisions" } {
                                title { (sum) " decisions" }
                                rect width=((sum * BAR_WIDTH / max).max(1)) height="10" fill="#0a6ebd" {}
                            }
                        }
                    }
                }
            }
        }
        h2 { "Drift" }
        (drift(&state))
        h2 { "Did the failures stop?" }
        (recurrence)
        p.muted {
            a href="/dashboard?hours=1" { "1 h" } " · " a href="/dashboard?hours=24" { "24 h" } " · "
            a href="/dashboard?hours=168" { "7 days" }
        }
    };
    frame("Dashboard", Some(&viewer), body)
}

/// The recent lessons whose policy change went live, and whether the failure stopped.
async fn recurrence_table(state: &AppState) -> Markup {
    let lessons = match state.store.lessons(arbiter_store::LessonFilter { limit: 20, ..Default::default() }).await {
        Ok(l) => l,
        Err(e) => {
            let e: crate::error::ApiError = e.into();
            e.log();
            return html! { p.error { (e.detail()) } };
        }
    };
    let mut rows = Vec::new();
    for l in &lessons {
        match crate::app::learning::recurrence_of(state, l).await {
            Ok(rs) => rows.extend(rs.into_iter().map(|r| (l, r))),
            Err(e) => e.log(),
        }
    }
    html! {
        @if rows.is_empty() { p.muted { "No lesson's policy change has gone live yet." } }
        @else {
            table {
                thead { tr { th { "Lesson" } th { "Went live" } th { "Result" } } }
                tbody {
                    @for (l, r) in &rows {
                        tr {
                            td { a href={ "/lessons/" (super::layout::urlencode(&l.id)) } { (l.title) } }
                            td { small { (super::layout::when(r.activated_at)) } }
                            td { (r.summary) }
                        }
                    }
                }
            }
        }
    }
}

fn drift(state: &AppState) -> Markup {
    let Some(s) = state.drift_status() else {
        return html! { p.muted { "No drift evaluation yet." } };
    };
    let rate = |t: &RateTest| format!("{:.1}% → {:.1}%", 100.0 * t.reference_rate, 100.0 * t.rate);
    html! {
        table {
            thead { tr { th { "Action" } th { "Share" } th { "Escalated" } th { "Wrong" } th { "PSI" } } }
            tbody {
                @for c in &s.report.classes {
                    tr {
                        td { (c.action) } td { (rate(&c.share)) } td { (rate(&c.escalation_rate)) } td { (rate(&c.error_rate)) }
                        td { (c.psi.map_or("–".into(), |p| format!("{p:.2}"))) }
                    }
                }
            }
        }
        @for a in &s.report.alarms { p.error { "ALARM: " (a.summary) } }
        @if !s.episodes.is_empty() {
            h3 { "Open drift episodes" }
            ul {
                @for e in &s.episodes {
                    li {
                        code { (e.action) } " " (e.kind.as_str()) " " (e.direction.as_str()) " since " (e.started_at)
                        " (peak CUSUM " (format!("{:.1}", e.peak_statistic)) ")"
                        @if let Some(case) = &e.case_id { " · " a href={ "/cases/" (case) } { "its review" } }
                        @if !e.acknowledgements.is_empty() { " · acknowledged " (e.acknowledgements.len()) "×" }
                        @if let Some(until) = e.snoozed_until { " · snoozed until " (until) }
                    }
                }
            }
        }
    }
}

/// A share as a percent for people: `10%`, `12.5%`.
fn percent(share: f64) -> String {
    let p = 100.0 * share;
    if (p - p.round()).abs() < 1e-9 { format!("{p:.0}%") } else { format!("{p:.1}%") }
}
