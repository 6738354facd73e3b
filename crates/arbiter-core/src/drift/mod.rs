//! Drift detection, per action class, on four kinds of quantity:
//!
//! - **share**: the class's share of all decisions;
//! - **escalation_rate**: the share of the class's decisions that escalated;
//! - **confidence**: the class's confidence distribution (its tails);
//! - **error_rate**: among labelled decisions, the share that was wrong.
//!
//! Alarms come from sequential tests against a seasonal or recent baseline
//! ([`sequential`]); an alarm's life is an episode ([`episode`]). A recent
//! window is also compared with the reference window before it ([`compare`]:
//! binomial tests, PSI, Kolmogorov–Smirnov) so people see the rates side by side.
//!
//! Pure: the server gathers the decisions from the store and acts on alarms.

pub mod episode;
pub mod sequential;

pub use sequential::{Direction, Monitor, SequentialTest};

use crate::stats::binomial_cdf;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Thresholds, windows and baselines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DriftConfig {
    /// Length of the recent window, ms.
    pub window_ms: i64,
    /// Length of the reference window just before it, ms (also the baseline
    /// while history is too short for a seasonal one).
    pub reference_ms: i64,
    /// How far back the sequential tests accumulate evidence, ms (from the top of an hour).
    pub span_ms: i64,
    /// Days of the same hour the seasonal baseline looks back over.
    pub seasonal_days: u32,
    /// Days of history before the span needed for a seasonal baseline.
    pub min_seasonal_days: u32,
    /// False alarms a week the tests may raise together on traffic that did
    /// not drift (shared equally among them).
    pub false_alarms_per_week: f64,
    /// The baseline rate is taken this many standard errors towards the
    /// alarm's side, so that a noisy baseline costs power, not false alarms.
    pub baseline_z: f64,
    /// The relative change of a rate the tests are built to catch (1.0: a doubling, or a halving).
    pub min_relative_change: f64,
    /// An episode ends once its test has been quiet this long, ms.
    pub episode_quiet_ms: i64,
    /// Fewest decisions of a class in each window before PSI and KS compare its confidence.
    pub min_confidence_samples: usize,
    /// Fewest events in the baseline (and, for the window comparison, expected) before a rate is tested.
    pub min_expected: f64,
    /// Fewest trials in the baseline before a rate is tested (a young or
    /// sparse reference says little about what is normal).
    pub min_reference_trials: u64,
}

impl Default for DriftConfig {
    fn default() -> Self {
        DriftConfig {
            window_ms: 2 * 3_600_000,
            reference_ms: 12 * 3_600_000,
            span_ms: 24 * 3_600_000,
            seasonal_days: 7,
            min_seasonal_days: 2,
            false_alarms_per_week: 0.5,
            baseline_z: 2.0,
            min_relative_change: 1.0,
            episode_quiet_ms: 2 * 3_600_000,
            min_confidence_samples: 200,
            min_expected: 10.0,
            min_reference_trials: 200,
        }
    }
}

/// One decision, as drift detection sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Action class.
    pub action: String,
    /// Whether the policy escalated it.
    pub escalated: bool,
    /// The agent's confidence, if given.
    pub confidence: Option<f64>,
    /// The outcome, if known: was the action right.
    pub correct: Option<bool>,
}

/// What drifted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmKind {
    /// The class's share of all decisions.
    Share,
    /// The class's escalation rate.
    EscalationRate,
    /// The class's confidence distribution.
    Confidence,
    /// The class's error rate among labelled decisions.
    ErrorRate,
}

impl AlarmKind {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmKind::Share => "share",
            AlarmKind::EscalationRate => "escalation_rate",
            AlarmKind::Confidence => "confidence",
            AlarmKind::ErrorRate => "error_rate",
        }
    }
}

/// A rate in both windows with its test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RateTest {
    /// Events in the reference window.
    pub reference_events: u64,
    /// Trials in the reference window.
    pub reference_trials: u64,
    /// Events in the recent window.
    pub events: u64,
    /// Trials in the recent window.
    pub trials: u64,
    /// Reference rate.
    pub reference_rate: f64,
    /// Recent rate.
    pub rate: f64,
    /// p-value of the binomial test against the reference rate (1 when not tested).
    pub p_value: f64,
}

/// Statistics of one class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassDrift {
    /// Action class.
    pub action: String,
    /// Share of all decisions.
    pub share: RateTest,
    /// Escalation rate.
    pub escalation_rate: RateTest,
    /// Error rate among labelled decisions.
    pub error_rate: RateTest,
    /// Population stability index of the confidence (None: too few samples).
    pub psi: Option<f64>,
    /// KS statistic and p-value of the confidence.
    pub ks: Option<(f64, f64)>,
}

/// An alarm: which class, what moved, and the evidence (the test that fired,
/// its baseline, statistic, p-value bound and false-alarm budget).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alarm {
    /// Action class.
    pub action: String,
    /// What moved.
    pub kind: AlarmKind,
    /// Which way.
    pub direction: Direction,
    /// One sentence with the numbers.
    pub summary: String,
    /// The test that fired.
    pub test: SequentialTest,
}

impl Alarm {
    /// The alarm of a test that fired.
    pub fn of(test: &SequentialTest) -> Alarm {
        Alarm {
            action: test.action.clone(),
            kind: test.kind,
            direction: test.direction,
            summary: test.summary(),
            test: test.clone(),
        }
    }
}

/// The recent window beside the reference window before it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Decisions in the reference window.
    pub reference_decisions: u64,
    /// Decisions in the recent window.
    pub decisions: u64,
    /// Per class.
    pub classes: Vec<ClassDrift>,
}

/// The result of one evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftReport {
    /// Decisions in the reference window.
    pub reference_decisions: u64,
    /// Decisions in the recent window.
    pub decisions: u64,
    /// Per class, the recent window beside the reference window.
    pub classes: Vec<ClassDrift>,
    /// Every sequential test run.
    pub tests: Vec<SequentialTest>,
    /// The tests that fired.
    pub alarms: Vec<Alarm>,
}

impl DriftReport {
    /// A report of a window comparison and the sequential tests.
    pub fn new(comparison: Comparison, tests: Vec<SequentialTest>) -> DriftReport {
        let alarms = tests.iter().filter(|t| t.alarm).map(Alarm::of).collect();
        DriftReport {
            reference_decisions: comparison.reference_decisions,
            decisions: comparison.decisions,
            classes: comparison.classes,
            tests,
            alarms,
        }
    }
}

/// Population stability index of `current` against `reference`, over `bins`
/// quantile bins of the reference (ε = 1e-4 for empty bins).
pub fn psi(reference: &[f64], current: &[f64], bins: usize) -> f64 {
    if reference.is_empty() || current.is_empty() || bins < 2 {
        return 0.0;
    }
    let mut r = reference.to_vec();
    r.sort_by(f64::total_cmp);
    // interior cut points at reference quantiles (deduplicated)
    let mut cuts: Vec<f64> = (1..bins).map(|i| r[(i * r.len() / bins).min(r.len() - 1)]).collect();
    cuts.dedup();
    let count = |v: &[f64]| {
        let mut c = vec![0f64; cuts.len() + 1];
        for x in v {
            c[cuts.partition_point(|cut| cut <= x)] += 1.0;
        }
        c
    };
    let (rc, cc) = (count(reference), count(current));
    let eps = 1e-4;
    rc.iter()
        .zip(&cc)
        .map(|(a, b)| {
            let p = (a / reference.len() as f64).max(eps);
            let q = (b / current.len() as f64).max(eps);
            (q - p) * (q / p).ln()
        })
        .sum()
}

/// Two-sample Kolmogorov–Smirnov test: (D, asymptotic p-value).
pub fn ks(a: &[f64], b: &[f64]) -> (f64, f64) {
    if a.is_empty() || b.is_empty() {
        return (0.0, 1.0);
    }
    let (mut x, mut y) = (a.to_vec(), b.to_vec());
    x.sort_by(f64::total_cmp);
    y.sort_by(f64::total_cmp);
    let (n, m) = (x.len() as f64, y.len() as f64);
    let (mut i, mut j, mut d) = (0, 0, 0f64);
    while i < x.len() && j < y.len() {
        let v = x[i].min(y[j]);
        while i < x.len() && x[i] <= v {
            i += 1;
        }
        while j < y.len() && y[j] <= v {
            j += 1;
        }
        d = d.max((i as f64 / n - j as f64 / m).abs());
    }
    let ne = n * m / (n + m);
    let lambda = (ne.sqrt() + 0.12 + 0.11 / ne.sqrt()) * d;
    if lambda < 0.2 {
        // The Kolmogorov series is 1 to within 1e-20 here (and does not converge at 0).
        return (d, 1.0);
    }
    let mut p = 0.0;
    for k in 1..=100 {
        let term = 2.0 * (-1f64).powi(k - 1) * (-2.0 * (k as f64).powi(2) * lambda * lambda).exp();
        p += term;
        if term.abs() < 1e-12 {
            break;
        }
    }
    (d, p.clamp(0.0, 1.0))
}

pub(crate) fn rate_test(ref_e: u64, ref_n: u64, e: u64, n: u64, two_sided: bool, cfg: &DriftConfig) -> RateTest {
    let p0 = if ref_n == 0 { 0.0 } else { ref_e as f64 / ref_n as f64 };
    let rate = if n == 0 { 0.0 } else { e as f64 / n as f64 };
    let mut p_value = 1.0;
    let expected = p0 * n as f64;
    if ref_n >= cfg.min_reference_trials.max(1)
        && n > 0
        && (expected >= cfg.min_expected || e as f64 >= cfg.min_expected)
    {
        // Guard p0 away from 0 and 1 so that an event never seen in the reference can still be tested.
        let p0g = p0.clamp(0.5 / ref_n as f64, 1.0 - 0.5 / ref_n as f64);
        let upper = if e == 0 { 1.0 } else { 1.0 - binomial_cdf(e - 1, n, p0g) };
        let lower = binomial_cdf(e, n, p0g);
        p_value = if two_sided { (2.0 * upper.min(lower)).min(1.0) } else { upper };
    }
    RateTest {
        reference_events: ref_e,
        reference_trials: ref_n,
        events: e,
        trials: n,
        reference_rate: p0,
        rate,
        p_value,
    }
}

#[derive(Default)]
struct Acc {
    n: u64,
    escalated: u64,
    labelled: u64,
    wrong: u64,
    conf: Vec<f64>,
}

fn tally(points: &[Point]) -> BTreeMap<&str, Acc> {
    let mut m: BTreeMap<&str, Acc> = BTreeMap::new();
    for p in points {
        let a = m.entry(p.action.as_str()).or_default();
        a.n += 1;
        a.escalated += u64::from(p.escalated);
        if let Some(c) = p.confidence {
            a.conf.push(c);
        }
        if let Some(ok) = p.correct {
            a.labelled += 1;
            a.wrong += u64::from(!ok);
        }
    }
    m
}

/// Compare `current` with `reference`, class by class.
pub fn compare(reference: &[Point], current: &[Point], cfg: &DriftConfig) -> Comparison {
    let (r, c) = (tally(reference), tally(current));
    let (rn, cn) = (reference.len() as u64, current.len() as u64);
    let empty = Acc::default();
    let names: std::collections::BTreeSet<&str> = r.keys().chain(c.keys()).copied().collect();
    let classes = names
        .into_iter()
        .map(|name| {
            let (a, b) = (r.get(name).unwrap_or(&empty), c.get(name).unwrap_or(&empty));
            let enough = a.conf.len() >= cfg.min_confidence_samples && b.conf.len() >= cfg.min_confidence_samples;
            ClassDrift {
                action: name.into(),
                share: rate_test(a.n, rn, b.n, cn, true, cfg),
                escalation_rate: rate_test(a.escalated, a.n, b.escalated, b.n, true, cfg),
                error_rate: rate_test(a.wrong, a.labelled, b.wrong, b.labelled, false, cfg),
                psi: enough.then(|| psi(&a.conf, &b.conf, 10)),
                ks: enough.then(|| ks(&a.conf, &b.conf)),
            }
        })
        .collect();
    Comparison { reference_decisions: rn, decisions: cn, classes }
}

/// The whole evaluation at `now`: the window comparison and the sequential
/// tests (`timed` sorted by `at`, reaching back as [`Monitor::run`] asks).
pub fn evaluate(monitor: &mut Monitor, timed: &[Timed], now: i64, restarts: &BTreeMap<String, i64>) -> DriftReport {
    let (reference, current) = windows(timed, now, monitor.config());
    let comparison = compare(&reference, &current, monitor.config());
    DriftReport::new(comparison, monitor.run(timed, now, restarts))
}

/// How far back [`Monitor::run`] reads decisions at `now`.
pub fn reach(now: i64, cfg: &DriftConfig) -> i64 {
    let seasonal = sequential::span_start(now, cfg) - i64::from(cfg.seasonal_days) * 24 * 3_600_000;
    seasonal.min(now - cfg.window_ms - cfg.reference_ms)
}

/// A decision with its event time and the time its outcome became known.
#[derive(Debug, Clone, PartialEq)]
pub struct Timed {
    /// Event time, ms.
    pub at: i64,
    /// The decision (its `correct` is used only once `labelled_at` has passed).
    pub point: Point,
    /// When the outcome was recorded, if ever.
    pub labelled_at: Option<i64>,
}

/// The reference and recent windows ending at `now`, as of `now` (outcomes
/// recorded later are not yet known). `timed` must be sorted by `at`.
pub fn windows(timed: &[Timed], now: i64, cfg: &DriftConfig) -> (Vec<Point>, Vec<Point>) {
    let (cur_from, ref_from) = (now - cfg.window_ms, now - cfg.window_ms - cfg.reference_ms);
    let lo = timed.partition_point(|t| t.at < ref_from);
    let hi = timed.partition_point(|t| t.at < now);
    let mut reference = Vec::new();
    let mut current = Vec::new();
    for t in &timed[lo..hi] {
        let mut p = t.point.clone();
        if t.labelled_at.is_none_or(|l| l > now) {
            p.correct = None;
        }
        if t.at < cur_from { reference.push(p) } else { current.push(p) }
    }
    (reference, current)
}

/// Alarm episodes found by evaluating every `step_ms` from `from` to `to`,
/// kept as the server keeps them ([`episode::step`]): (time, alarm) for
/// each episode that started.
pub fn scan(timed: &[Timed], from: i64, to: i64, step_ms: i64, cfg: &DriftConfig) -> Vec<(i64, Alarm)> {
    let mut monitor = Monitor::new(cfg.clone());
    let mut open = Vec::new();
    let mut out = Vec::new();
    let mut ids = 0u64;
    let mut now = from;
    while now <= to {
        let tests = monitor.run(timed, now, &BTreeMap::new());
        let changes = episode::step(&open, &tests, crate::Timestamp(now), cfg.episode_quiet_ms, || {
            ids += 1;
            ids.to_string()
        });
        for change in changes {
            if let episode::Change::Started(e) = &change {
                out.push((now, Alarm::of(&e.test)));
            }
            episode::apply(&mut open, change.episode().clone());
        }
        now += step_ms;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psi_by_hand() {
        // reference deciles of 0..100: cuts at 10, 20, ..., 90; current all in the top bin
        let reference: Vec<f64> = (0..100).map(f64::from).collect();
        let same = psi(&reference, &reference, 10);
        assert!(same.abs() < 1e-12);
        // current: half in bin 0, half in bin 9 → each 0.5 vs 0.1; others ε
        let current: Vec<f64> = (0..50).map(|_| 1.0).chain((0..50).map(|_| 95.0)).collect();
        let expected = 2.0 * (0.5 - 0.1) * (0.5f64 / 0.1).ln() + 8.0 * (1e-4 - 0.1) * (1e-4f64 / 0.1).ln();
        assert!((psi(&reference, &current, 10) - expected).abs() < 1e-9, "{}", psi(&reference, &current, 10));
    }

    #[test]
    fn ks_by_hand() {
        // a = {1,2,3,4}, b = {3,4,5,6}: the largest ECDF gap is 0.5 (at 2)
        let (d, p) = ks(&[1.0, 2.0, 3.0, 4.0], &[3.0, 4.0, 5.0, 6.0]);
        assert!((d - 0.5).abs() < 1e-12);
        assert!(p > 0.3 && p < 1.0, "{p}");
        let (d, p) = ks(&[1.0, 2.0], &[1.0, 2.0]);
        assert_eq!(d, 0.0);
        assert!((p - 1.0).abs() < 1e-9);
        // identical large samples shifted far apart: p tiny
        let a: Vec<f64> = (0..500).map(|i| i as f64 / 500.0).collect();
        let b: Vec<f64> = a.iter().map(|x| x + 0.5).collect();
        let (d, p) = ks(&a, &b);
        assert!((d - 0.5).abs() < 0.01 && p < 1e-20);
    }

    fn pts(action: &str, n: usize, escalated_every: usize, conf: f64) -> Vec<Point> {
        (0..n)
            .map(|i| Point {
                action: action.into(),
                escalated: escalated_every > 0 && i % escalated_every == 0,
                confidence: Some(conf + (i % 10) as f64 * 0.01),
                correct: None,
            })
            .collect()
    }

    #[test]
    fn the_window_comparison_shows_share_escalation_confidence_and_error_moves() {
        let cfg = DriftConfig::default();
        let mut reference = pts("close_alert", 3000, 10, 0.8);
        reference.extend(pts("isolate_host", 300, 2, 0.8));
        let class = |c: &Comparison, name: &str| c.classes.iter().find(|x| x.action == name).unwrap().clone();
        // same mix: nothing moved
        let mut same = pts("close_alert", 1000, 10, 0.8);
        same.extend(pts("isolate_host", 100, 2, 0.8));
        let c = compare(&reference, &same, &cfg);
        assert!(c.classes.iter().all(|x| x.share.p_value > 0.5 && x.escalation_rate.p_value > 0.5), "{c:?}");
        // isolate_host triples its share
        let mut drifted = pts("close_alert", 1000, 10, 0.8);
        drifted.extend(pts("isolate_host", 330, 2, 0.8));
        assert!(class(&compare(&reference, &drifted, &cfg), "isolate_host").share.p_value < 1e-6);
        // confidence slides down by 0.15 for close_alert
        let mut slid = pts("close_alert", 1000, 10, 0.65);
        slid.extend(pts("isolate_host", 100, 2, 0.8));
        let c = class(&compare(&reference, &slid, &cfg), "close_alert");
        assert!(c.psi.unwrap() > 0.2 && c.ks.unwrap().1 < 1e-3, "{c:?}");
        // escalation rate of close_alert jumps from 10% to 50%
        let mut esc = pts("close_alert", 1000, 2, 0.8);
        esc.extend(pts("isolate_host", 100, 2, 0.8));
        assert!(class(&compare(&reference, &esc, &cfg), "close_alert").escalation_rate.p_value < 1e-6);
        // error rate among labelled decisions rises from 5% to 30%
        let label = |v: &mut Vec<Point>, every: usize| {
            for (i, p) in v.iter_mut().enumerate() {
                p.correct = Some(i % every != 0);
            }
        };
        let mut lref = pts("isolate_host", 1000, 2, 0.8);
        label(&mut lref, 20);
        let mut lcur = pts("isolate_host", 300, 2, 0.8);
        label(&mut lcur, 3);
        let e = compare(&lref, &lcur, &cfg).classes[0].error_rate.clone();
        assert_eq!((e.reference_events, e.reference_trials, e.events, e.trials), (50, 1000, 100, 300));
        assert!(e.p_value < 1e-6);
    }

    #[test]
    fn binomial_rate_test_by_hand() {
        // 10 events in 100 against a reference of 10/1000: P(X ≥ 10 | 100, 0.01) = 7.6316e-8 (scipy binom.sf(9, 100, 0.01))
        let cfg = DriftConfig::default();
        let t = rate_test(10, 1000, 10, 100, false, &cfg);
        assert!((t.p_value - 7.631_587_532e-8).abs() < 1e-14, "{}", t.p_value);
        // a reference of 20 trials is too young to test against
        assert_eq!(rate_test(0, 20, 10, 40, false, &cfg).p_value, 1.0);
    }
}
