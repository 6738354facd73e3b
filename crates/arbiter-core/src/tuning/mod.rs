//! Threshold tuning on history, with guarantees.
//!
//! For each action class, a threshold `t` auto-allows decisions whose
//! confidence is at least `t` and escalates the rest. Thresholds come from a
//! fixed grid (`j / grid`, plus "never auto-allow"), so the search order is
//! fixed before the data is seen:
//!
//! 1. **Bound (Learn-then-Test).** With `max_auto_error = E` and `delta`, the
//!    grid is scanned from the most conservative threshold down; each step tests
//!    "the auto-error rate at this threshold exceeds E" with the exact binomial
//!    test (equivalently: the one-sided Clopper–Pearson upper bound is ≤ E) at
//!    level `delta`, and the scan stops at the first threshold that fails.
//!    Fixed-sequence testing controls the family-wise error at `delta`, so with
//!    probability ≥ 1 − δ every threshold certified for a class has an
//!    auto-error rate ≤ E. The scan starts at the first threshold that
//!    auto-allows at least [`TuneOptions::scan_start`] decisions (where the test
//!    has power; higher thresholds cover almost nothing); that choice looks only
//!    at confidences, never at outcomes, so the guarantee holds.
//! 2. **Budget.** Among certified thresholds, choose one per class to minimise
//!    the cost of automatic errors plus the cost of escalations, subject to the
//!    total escalations ≤ the budget in decisions ([`escalation_budget`]): an
//!    exact multiple-choice knapsack ([`allocate`]).

mod allocate;
pub mod calibration;
pub mod history;

pub use allocate::{Allocation, Choice, allocate, brute_force};
pub use calibration::{Calibration, CalibrationBin, calibration};
pub use history::{History, HistoryError};

use crate::stats::{binomial_cdf, clopper_pearson_upper};
use serde::Serialize;
use std::collections::BTreeMap;

/// What to tune for.
#[derive(Debug, Clone, PartialEq)]
pub struct TuneOptions {
    /// Largest share of all decisions that may escalate (e.g. 0.10).
    pub max_escalation_rate: f64,
    /// Per-class bound on the auto-error rate, if any.
    pub max_auto_error: Option<f64>,
    /// The bound holds with probability 1 − delta.
    pub delta: f64,
    /// Threshold grid resolution: thresholds are `j / grid`.
    pub grid: u32,
    /// Thresholds auto-allowing fewer decisions than this are not tested;
    /// `None` picks [`TuneOptions::scan_start`]'s default.
    pub min_samples: Option<u64>,
    /// Cost of an automatic error, per class (default [`TuneOptions::default_error_cost`]).
    pub error_cost: BTreeMap<String, f64>,
    /// Cost of an escalation, per class (default [`TuneOptions::default_escalation_cost`]).
    pub escalation_cost: BTreeMap<String, f64>,
    /// Cost of an automatic error where neither the row nor the class says.
    pub default_error_cost: f64,
    /// Cost of an escalation where neither the row nor the class says.
    pub default_escalation_cost: f64,
    /// Decisions outside the history that the policy's rules settle whatever
    /// the threshold: they count in the total the budget is a share of, and
    /// those the rules escalate use part of it.
    pub settled_by_rules: SettledByRules,
    /// Bound every class at once: each class is tested at δ / K (Bonferroni over
    /// the K classes), so with probability ≥ 1 − δ no class exceeds E.
    pub family_wise: bool,
    /// The candidate thresholds, as grid indices (`j` for `j / grid`); `None`: every grid point.
    pub candidates: Option<Vec<u32>>,
}

/// Decisions a policy's triggers settle whatever the confidence threshold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct SettledByRules {
    /// All of them.
    pub decisions: u64,
    /// Those the rules escalate (the rest are allowed or denied by a rule).
    pub escalations: u64,
}

impl SettledByRules {
    /// Count one decision the rules settle with `verdict`.
    pub fn add(&mut self, verdict: crate::Verdict) {
        self.decisions += 1;
        self.escalations += u64::from(verdict == crate::Verdict::Escalate);
    }
}

impl TuneOptions {
    /// The fewest auto-allowed decisions at which the scan tests a threshold.
    /// Never below the count at which even a spotless record could pass
    /// (⌈ln δ / ln(1 − E)⌉); by default ⌈10 / E⌉, where the test has the power
    /// to certify a class whose true rate is well below E. Label-blind.
    pub fn scan_start(&self) -> u64 {
        let Some(e) = self.max_auto_error.filter(|e| *e > 0.0 && *e < 1.0) else {
            return self.min_samples.unwrap_or(1).max(1);
        };
        let spotless = (self.delta.ln() / (1.0 - e).ln()).ceil().max(1.0) as u64;
        self.min_samples.unwrap_or((10.0 / e).ceil() as u64).max(spotless)
    }
}

impl Default for TuneOptions {
    fn default() -> Self {
        TuneOptions {
            max_escalation_rate: 0.10,
            settled_by_rules: SettledByRules::default(),
            max_auto_error: None,
            delta: 0.05,
            grid: 1000,
            min_samples: None,
            error_cost: BTreeMap::new(),
            escalation_cost: BTreeMap::new(),
            default_error_cost: 1.0,
            default_escalation_cost: 0.0,
            family_wise: false,
            candidates: None,
        }
    }
}

impl TuneOptions {
    /// The level each class is tested at, among `classes` classes: δ, or δ / K family-wise.
    pub fn class_delta(&self, classes: usize) -> f64 {
        if self.family_wise { self.delta / classes.max(1) as f64 } else { self.delta }
    }

    /// Why the scan starts where it does, in words.
    pub fn scan_start_rule(&self) -> String {
        let start = self.scan_start();
        match (self.max_auto_error.filter(|e| *e > 0.0 && *e < 1.0), self.min_samples) {
            (Some(e), given) => {
                let spotless = (self.delta.ln() / (1.0 - e).ln()).ceil().max(1.0) as u64;
                let asked = match given {
                    Some(m) => format!("--min-samples {m}"),
                    None => format!("⌈10 / E⌉ = {}", (10.0 / e).ceil() as u64),
                };
                format!(
                    "thresholds are tested once they auto-allow at least {start} decisions: the larger of {asked} and \
                     ⌈ln δ / ln(1 − E)⌉ = {spotless}, the count at which even a record with no error can pass"
                )
            }
            (None, Some(m)) => format!("thresholds need at least {m} auto-allowed decisions (--min-samples)"),
            (None, None) => "no bound asked: every threshold is a candidate".into(),
        }
    }
}

/// One class's counts at every grid threshold. Index `j` in `0..=grid` is the
/// threshold `j / grid`; index `grid + 1` is "never auto-allow".
#[derive(Debug, Clone, PartialEq)]
pub struct ClassCurve {
    /// Class name.
    pub name: String,
    /// Decisions of this class.
    pub n: u64,
    /// Wrong decisions of this class.
    pub wrong: u64,
    /// Grid resolution.
    pub grid: u32,
    /// `auto[j]`: decisions with confidence ≥ threshold j.
    pub auto: Vec<u64>,
    /// `auto_wrong[j]`: wrong decisions among them.
    pub auto_wrong: Vec<u64>,
    /// `error_cost[j]`: summed cost of those automatic errors.
    pub error_cost: Vec<f64>,
    /// `escalation_cost[j]`: summed cost of escalating everything below threshold j.
    pub escalation_cost: Vec<f64>,
}

impl ClassCurve {
    /// Index of "never auto-allow".
    pub fn never(&self) -> usize {
        self.grid as usize + 1
    }

    /// The threshold at index `j` (`None` for never).
    pub fn threshold(&self, j: usize) -> Option<f64> {
        (j <= self.grid as usize).then(|| j as f64 / self.grid as f64)
    }

    /// Decisions escalated at index `j`.
    pub fn escalated(&self, j: usize) -> u64 {
        self.n - self.auto[j]
    }
}

/// The grid bin of a confidence: the largest `j` with `confidence ≥ j / grid`,
/// computed so that it agrees exactly with the policy engine's comparison.
pub fn bin(confidence: f64, grid: u32) -> usize {
    let g = grid as f64;
    let mut j = (confidence * g).floor().clamp(0.0, g) as usize;
    while j < grid as usize && confidence >= (j + 1) as f64 / g {
        j += 1;
    }
    while j > 0 && confidence < j as f64 / g {
        j -= 1;
    }
    j
}

/// Build every class's curve in one pass over the history.
pub fn curves(h: &History, opts: &TuneOptions) -> Vec<ClassCurve> {
    let g = opts.grid as usize;
    let k = h.classes.len();
    let mut cnt = vec![0u64; k * (g + 1)];
    let mut wrong = vec![0u64; k * (g + 1)];
    let mut wcost = vec![0f64; k * (g + 1)];
    let mut ecost = vec![0f64; k * (g + 1)];
    let err_default: Vec<f64> =
        h.classes.iter().map(|c| opts.error_cost.get(c).copied().unwrap_or(opts.default_error_cost)).collect();
    let esc_default: Vec<f64> = h
        .classes
        .iter()
        .map(|c| opts.escalation_cost.get(c).copied().unwrap_or(opts.default_escalation_cost))
        .collect();
    for i in 0..h.len() {
        let c = h.class[i] as usize;
        let at = c * (g + 1) + bin(h.confidence[i], opts.grid);
        cnt[at] += 1;
        let ec = h.escalation_cost[i];
        ecost[at] += if ec.is_nan() { esc_default[c] } else { ec };
        if !h.correct[i] {
            wrong[at] += 1;
            let wc = h.error_cost[i];
            wcost[at] += if wc.is_nan() { err_default[c] } else { wc };
        }
    }
    (0..k)
        .map(|c| {
            let base = c * (g + 1);
            let mut curve = ClassCurve {
                name: h.classes[c].clone(),
                n: 0,
                wrong: 0,
                grid: opts.grid,
                auto: vec![0; g + 2],
                auto_wrong: vec![0; g + 2],
                error_cost: vec![0.0; g + 2],
                escalation_cost: vec![0.0; g + 2],
            };
            for j in (0..=g).rev() {
                curve.auto[j] = curve.auto[j + 1] + cnt[base + j];
                curve.auto_wrong[j] = curve.auto_wrong[j + 1] + wrong[base + j];
                curve.error_cost[j] = curve.error_cost[j + 1] + wcost[base + j];
            }
            curve.n = curve.auto[0];
            curve.wrong = curve.auto_wrong[0];
            let mut below = 0.0;
            for j in 0..=g + 1 {
                curve.escalation_cost[j] = below;
                if j <= g {
                    below += ecost[base + j];
                }
            }
            curve
        })
        .collect()
}

/// One threshold the scan tested.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ThresholdTest {
    /// The threshold.
    pub threshold: f64,
    /// Decisions it auto-allows.
    pub auto_allowed: u64,
    /// Wrong ones among them.
    pub auto_errors: u64,
    /// P(at most this many errors | the true rate is E): the exact binomial test's p-value.
    pub p_value: f64,
    /// Whether p ≤ δ (certified; the scan stops at the first that is not).
    pub certified: bool,
}

/// How a class's thresholds were tested, for a statistician to check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scan {
    /// The level the class was tested at (δ, or δ / K family-wise).
    pub delta: f64,
    /// The fewest auto-allowed decisions a tested threshold has.
    pub min_samples: u64,
    /// Why (the min-samples rule, in words).
    pub rule: String,
    /// The first threshold tested (from the top), if any.
    pub started_at: Option<f64>,
    /// Thresholds above it that were not tested, and why (`None` when there are none).
    pub not_tested: Option<String>,
    /// Every tested threshold in scan order, with its p-value; the last one
    /// failed unless the scan reached the bottom of the grid.
    pub tests: Vec<ThresholdTest>,
    /// The certified thresholds, most conservative first (`None`: never auto-allow, always certified).
    pub certified: Vec<Option<f64>>,
}

/// The thresholds certified for a class (indexes, most conservative first),
/// always starting with "never auto-allow".
pub fn certified(curve: &ClassCurve, opts: &TuneOptions) -> Vec<usize> {
    scan(curve, opts, opts.delta).0
}

/// The fixed-sequence scan of a class at level `delta`: the certified
/// thresholds (indexes, most conservative first, "never" first) and its record.
pub fn scan(curve: &ClassCurve, opts: &TuneOptions, delta: f64) -> (Vec<usize>, Scan) {
    let mut out = vec![curve.never()];
    let start = opts.scan_start();
    let order: Vec<usize> = match &opts.candidates {
        Some(c) => {
            let mut c: Vec<usize> = c.iter().map(|&j| j as usize).filter(|&j| j <= curve.grid as usize).collect();
            c.sort_unstable_by(|a, b| b.cmp(a));
            c.dedup();
            c
        }
        None => (0..=curve.grid as usize).rev().collect(),
    };
    let mut record = Scan {
        delta,
        min_samples: start,
        rule: opts.scan_start_rule(),
        started_at: None,
        not_tested: None,
        tests: Vec::new(),
        certified: vec![None],
    };
    let mut skipped: Option<(usize, usize)> = None; // (highest, lowest) skipped for too few decisions
    for j in order {
        let n = curve.auto[j];
        if n < start {
            skipped = Some(skipped.map_or((j, j), |(hi, _)| (hi, j)));
            continue;
        }
        if record.started_at.is_none() {
            record.started_at = curve.threshold(j);
        }
        if let Some(e) = opts.max_auto_error {
            let p = binomial_cdf(curve.auto_wrong[j], n, e);
            let pass = p <= delta;
            record.tests.push(ThresholdTest {
                threshold: curve.threshold(j).unwrap_or(1.0),
                auto_allowed: n,
                auto_errors: curve.auto_wrong[j],
                p_value: p,
                certified: pass,
            });
            if !pass {
                break;
            }
        }
        out.push(j);
        record.certified.push(curve.threshold(j));
    }
    if let Some((hi, lo)) = skipped {
        let (hi, lo) = (curve.threshold(hi).unwrap_or(1.0), curve.threshold(lo).unwrap_or(1.0));
        let range = if hi == lo { format!("{hi}") } else { format!("{lo} to {hi}") };
        record.not_tested = Some(format!("not tested: fewer than {start} auto-allowed decisions at {range}"));
    }
    (out, record)
}

/// One class's chosen threshold and what it does on the history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassResult {
    /// Class name.
    pub action: String,
    /// Decisions in the history.
    pub decisions: u64,
    /// The chosen `auto_allow_at` (`None`: never auto-allow).
    pub threshold: Option<f64>,
    /// Share of this class auto-allowed.
    pub auto_share: f64,
    /// Share of this class escalated.
    pub escalated_share: f64,
    /// Auto-allowed decisions that were wrong.
    pub auto_errors: u64,
    /// Their rate among auto-allowed decisions.
    pub auto_error_rate: f64,
    /// Clopper–Pearson upper bound on that rate at the class's level (`None`
    /// when nothing is auto-allowed: there is no rate to bound).
    pub auto_error_upper: Option<f64>,
    /// Wrong decisions that went to a person instead.
    pub errors_caught: u64,
    /// Cost of automatic errors plus cost of escalations.
    pub expected_cost: f64,
    /// The lowest threshold the bound certified (`None`: only never).
    pub lowest_certified: Option<f64>,
    /// The certified set, the p-value of every tested threshold, and where the scan started and why.
    pub scan: Scan,
}

/// The whole result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TuneResult {
    /// Per class, in name order.
    pub classes: Vec<ClassResult>,
    /// Decisions in the history, with those the rules settle.
    pub decisions: u64,
    /// Of them, those the policy's rules settle whatever the threshold.
    pub settled_by_rules: SettledByRules,
    /// Share of all decisions escalated with the chosen thresholds (and by the rules).
    pub escalated_share: f64,
    /// The budget asked for.
    pub budget: f64,
    /// Whether the budget and the bound hold together.
    pub feasible: bool,
    /// The smallest escalation budget under which the bound holds.
    pub min_feasible_budget: f64,
    /// Automatic errors in all.
    pub auto_errors: u64,
    /// Errors caught by review in all.
    pub errors_caught: u64,
    /// Total expected cost.
    pub expected_cost: f64,
    /// The escalations the budget allows, in decisions ([`escalation_budget`]).
    pub budget_escalations: u64,
    /// The fewest escalations under which the bound holds, in decisions.
    pub min_escalations: u64,
    /// Distance of this allocation's cost from the exact optimum (0: the allocation is exact).
    pub optimality_gap: f64,
}

/// The escalation budget in decisions: `rate × total` rounded down, where a
/// product within one part in a billion of an integer counts as that integer
/// (a rate written in decimal is meant exactly: 0.29 × 100 is 29 escalations,
/// not the 28.999… that floating point computes).
pub fn escalation_budget(rate: f64, total: u64) -> u64 {
    let x = rate.clamp(0.0, 1.0) * total as f64;
    let nearest = x.round();
    if (x - nearest).abs() <= 1e-9 * x.max(1.0) { nearest as u64 } else { x.floor() as u64 }
}

/// Tune thresholds on `h`. Returns the curves too, for plots.
pub fn tune(h: &History, opts: &TuneOptions) -> (TuneResult, Vec<ClassCurve>) {
    let curves = curves(h, opts);
    let delta = opts.class_delta(curves.len());
    let (allowed, scans): (Vec<Vec<usize>>, Vec<Scan>) = curves.iter().map(|c| scan(c, opts, delta)).unzip();
    let choices: Vec<Vec<Choice>> = curves
        .iter()
        .zip(&allowed)
        .map(|(c, js)| {
            // the objective: the cost of the automatic errors plus the cost of the escalations
            js.iter()
                .map(|&j| Choice {
                    index: j,
                    escalations: c.escalated(j),
                    cost: c.error_cost[j] + c.escalation_cost[j],
                })
                .collect()
        })
        .collect();
    let settled = opts.settled_by_rules;
    let total: u64 = curves.iter().map(|c| c.n).sum::<u64>() + settled.decisions;
    let budget = escalation_budget(opts.max_escalation_rate, total);
    let alloc = allocate(&choices, budget.saturating_sub(settled.escalations));
    let mut classes: Vec<ClassResult> = curves
        .iter()
        .zip(&alloc.picks)
        .zip(&allowed)
        .zip(scans)
        .map(|(((c, &j), js), scan)| {
            let auto = c.auto[j];
            let n = c.n.max(1) as f64;
            ClassResult {
                action: c.name.clone(),
                decisions: c.n,
                threshold: c.threshold(j),
                auto_share: auto as f64 / n,
                escalated_share: c.escalated(j) as f64 / n,
                auto_errors: c.auto_wrong[j],
                auto_error_rate: if auto == 0 { 0.0 } else { c.auto_wrong[j] as f64 / auto as f64 },
                auto_error_upper: (auto > 0).then(|| clopper_pearson_upper(c.auto_wrong[j], auto, delta)),
                errors_caught: c.wrong - c.auto_wrong[j],
                expected_cost: c.error_cost[j] + c.escalation_cost[j],
                lowest_certified: js.last().and_then(|&l| c.threshold(l)),
                scan,
            }
        })
        .collect();
    classes.sort_by(|a, b| a.action.cmp(&b.action));
    let escalated: u64 = curves.iter().zip(&alloc.picks).map(|(c, &j)| c.escalated(j)).sum();
    let result = TuneResult {
        decisions: total,
        settled_by_rules: settled,
        escalated_share: (escalated + settled.escalations) as f64 / total.max(1) as f64,
        budget: opts.max_escalation_rate,
        feasible: alloc.feasible && budget >= settled.escalations,
        min_feasible_budget: (alloc.min_escalations + settled.escalations) as f64 / total.max(1) as f64,
        auto_errors: classes.iter().map(|c| c.auto_errors).sum(),
        errors_caught: classes.iter().map(|c| c.errors_caught).sum(),
        expected_cost: classes.iter().map(|c| c.expected_cost).sum(),
        optimality_gap: alloc.gap,
        budget_escalations: budget,
        min_escalations: alloc.min_escalations + settled.escalations,
        classes,
    };
    (result, curves)
}

/// A synthetic labelled history: `classes` action classes with different
/// volumes, base error rates (1–15%) and calibration, over 30 days, from `seed`.
/// Confidence is drawn so that higher confidence means fewer errors.
pub fn synthetic(decisions: usize, classes: usize, seed: u64) -> History {
    let mut rng = crate::rng::Rng::new(seed);
    let classes = classes.max(1);
    // class weights (Zipf-like volumes), error rates 1–15%, sharpness
    let weights: Vec<f64> = (0..classes).map(|i| 1.0 / (i as f64 + 1.0).powf(0.8)).collect();
    let total_w: f64 = weights.iter().sum();
    let mut cdf = Vec::with_capacity(classes);
    let mut acc = 0.0;
    for w in &weights {
        acc += w / total_w;
        cdf.push(acc);
    }
    let params: Vec<(f64, f64, f64)> = (0..classes)
        .map(|_| (0.01 + 0.14 * rng.uniform(), 6.0 + 14.0 * rng.uniform(), 5.0 + 30.0 * rng.uniform()))
        .collect();
    let mut h = History::default();
    let names: Vec<String> = (0..classes).map(|i| format!("action_{i:03}")).collect();
    let start = 1_780_000_000_000i64;
    let span = 30 * 24 * 3600 * 1000i64;
    for i in 0..decisions {
        let u = rng.uniform();
        let c = cdf.partition_point(|&x| x < u).min(classes - 1);
        let (err_rate, sharp, cost) = params[c];
        let wrong = rng.chance(err_rate);
        // wrong decisions lean to low confidence, right ones to high
        let confidence = if wrong { rng.beta(2.0, 3.0) } else { rng.beta(sharp, 1.0) };
        let ts = start + (i as i64 * span) / decisions.max(1) as i64;
        h.push(&history::Row {
            timestamp: crate::time::Timestamp(ts),
            action: &names[c],
            confidence: (confidence * 10_000.0).round() / 10_000.0,
            correct: !wrong,
            error_cost: Some(cost),
            escalation_cost: Some(1.0),
        });
    }
    h
}

#[cfg(test)]
mod tests;
