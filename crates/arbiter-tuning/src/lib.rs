//! Arbiter's offline analytics, run by the CLI, never by the server:
//! threshold tuning on history (below), reviewer-load simulation
//! ([`simulate`]), the simulated SOC the demo and the drift scenarios play
//! ([`soc`]), and the drift monitor's evaluation corpus ([`scenarios`]: where
//! a new test of the monitor on traffic goes). Pure, like the core they build
//! on; the core keeps only what the server runs.
//!
//! # Threshold tuning on history, with guarantees
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
//!
//! **Audit designs.** When the history carries an audit design (the allowed
//! decisions of a class drawn for audit with inclusion probability π, see
//! [`crate::sampling`]), the decisions auto-allowed at a threshold split into
//! strata: those whose labels are taken as given (the rest of the history, as
//! without a design) and, per π, the decisions of the design, of which only
//! the drawn ones' labels count (a label that arrived for an undrawn decision
//! was not drawn at random: it is left out, the decision still counts in the
//! population). Drawn decisions without a label yet count as errors. Each
//! stratum's drawn labels are a random sample of it, so its error rate has an
//! exact Clopper–Pearson bound; the rate over the threshold's decisions is
//! the population-weighted sum, bounded by the weighted sum of the stratum
//! bounds at δ / S each (S strata; Bonferroni), which holds with probability
//! ≥ 1 − δ whatever the rates. With a single stratum this is exactly the test
//! above. The point estimate weights each drawn label by its stratum's
//! population over its draws (the Hájek form of Horvitz–Thompson).

mod allocate;
pub mod calibration;
pub mod history;
pub mod scenarios;
pub mod simulate;
pub mod soc;
mod tally;

// The core's pieces these analytics build on, at the paths they use.
use arbiter_core::{Action, Verdict, queue, rng, sampling, stats, time, verdict};

pub use allocate::{Allocation, Choice, allocate, brute_force};
pub use calibration::{Calibration, CalibrationBin, calibration};
pub use history::{History, HistoryError};
pub use tally::Tally;

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

/// The decisions of one class drawn for audit with one inclusion
/// probability, at every grid threshold (cumulative from the top, like
/// [`ClassCurve::auto`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Stratum {
    /// The inclusion probability π.
    pub probability: f64,
    /// `population[j]`: decisions of the design with confidence ≥ threshold j, labelled or not.
    pub population: Vec<u64>,
    /// `drawn[j]`: those the audit drew.
    pub drawn: Vec<u64>,
    /// `drawn_wrong[j]`: drawn ones labelled wrong, or not labelled yet (counted as errors).
    pub drawn_wrong: Vec<u64>,
    /// `drawn_unlabelled[j]`: drawn ones without a label yet.
    pub drawn_unlabelled: Vec<u64>,
    /// `wrong_cost[j]`: the summed error cost of `drawn_wrong[j]`.
    pub wrong_cost: Vec<f64>,
    /// Labels of undrawn decisions, left out of the estimate (all thresholds).
    pub labels_left_out: u64,
}

impl Stratum {
    fn new(probability: f64, bins: usize) -> Stratum {
        Stratum {
            probability,
            population: vec![0; bins],
            drawn: vec![0; bins],
            drawn_wrong: vec![0; bins],
            drawn_unlabelled: vec![0; bins],
            wrong_cost: vec![0.0; bins],
            labels_left_out: 0,
        }
    }

    /// Count one decision of the design in bin `b`: drawn or not, with its
    /// label (and error cost) if it has one; a drawn one without a label
    /// counts as an error at `default_cost` (the conservative choice).
    fn add(&mut self, b: usize, drawn: bool, label: Option<(bool, f64)>, default_cost: f64) {
        self.population[b] += 1;
        match (drawn, label) {
            (true, Some((correct, cost))) => {
                self.drawn[b] += 1;
                if !correct {
                    self.drawn_wrong[b] += 1;
                    self.wrong_cost[b] += cost;
                }
            }
            (true, None) => {
                self.drawn[b] += 1;
                self.drawn_wrong[b] += 1;
                self.drawn_unlabelled[b] += 1;
                self.wrong_cost[b] += default_cost;
            }
            (false, Some(_)) => self.labels_left_out += 1,
            (false, None) => {}
        }
    }

    /// Turn per-bin counts (`0..=grid`) into counts at or above each threshold, with "never" (`grid + 1`) at 0.
    fn accumulate(&mut self) {
        fn cum<T: Copy + std::ops::Add<Output = T>>(v: &mut [T]) {
            for j in (0..v.len() - 1).rev() {
                v[j] = v[j] + v[j + 1];
            }
        }
        cum(&mut self.population);
        cum(&mut self.drawn);
        cum(&mut self.drawn_wrong);
        cum(&mut self.drawn_unlabelled);
        cum(&mut self.wrong_cost);
    }

    /// The stratum's weight per drawn decision at `j`: its population over its draws.
    fn expansion(&self, j: usize) -> f64 {
        if self.drawn[j] == 0 { 0.0 } else { self.population[j] as f64 / self.drawn[j] as f64 }
    }
}

/// One part of the decisions auto-allowed at a threshold, with the labels that speak for it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Part {
    /// Decisions in the part.
    population: u64,
    /// Labels that speak for them (a random sample of them).
    labelled: u64,
    /// Wrong among those labels.
    wrong: u64,
}

/// The stratified bound over `parts` of `n` decisions at level `delta`: each
/// part's Clopper–Pearson bound at `delta / S`, weighted by its share.
fn weighted_upper(parts: &[Part], n: u64, delta: f64) -> f64 {
    let s = parts.len() as f64;
    parts
        .iter()
        .map(|p| p.population as f64 / n as f64 * clopper_pearson_upper(p.wrong, p.labelled, delta / s))
        .sum::<f64>()
        .min(1.0)
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
    /// `auto[j]`: decisions with confidence ≥ threshold j (with an audit
    /// design: labelled or not).
    pub auto: Vec<u64>,
    /// `auto_wrong[j]`: wrong decisions among them (with an audit design:
    /// among the labels that count, see [`Stratum`]).
    pub auto_wrong: Vec<u64>,
    /// `error_cost[j]`: summed cost of those automatic errors (with an audit
    /// design: estimated, each drawn label weighted by its stratum's expansion).
    pub error_cost: Vec<f64>,
    /// `escalation_cost[j]`: summed cost of escalating everything below threshold j.
    pub escalation_cost: Vec<f64>,
    /// The audit design's strata, one per inclusion probability (empty without one).
    pub strata: Vec<Stratum>,
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

    /// The decisions auto-allowed at `j`, split into the parts the bound
    /// weighs: those with labels taken as given, then each audit stratum.
    fn parts(&self, j: usize) -> Vec<Part> {
        let design: u64 = self.strata.iter().map(|s| s.population[j]).sum();
        let drawn_wrong: u64 = self.strata.iter().map(|s| s.drawn_wrong[j]).sum();
        let given = self.auto[j] - design;
        let mut out = Vec::with_capacity(1 + self.strata.len());
        if given > 0 || self.strata.is_empty() {
            out.push(Part { population: given, labelled: given, wrong: self.auto_wrong[j] - drawn_wrong });
        }
        out.extend(self.strata.iter().filter(|s| s.population[j] > 0).map(|s| Part {
            population: s.population[j],
            labelled: s.drawn[j],
            wrong: s.drawn_wrong[j],
        }));
        out
    }

    /// Labels the test at `j` rests on (label-blind: whether a decision is
    /// labelled or drawn does not depend on its outcome).
    pub fn labelled(&self, j: usize) -> u64 {
        self.parts(j).iter().map(|p| p.labelled).sum()
    }

    /// The estimated auto-error rate at `j`: each part's rate among its
    /// labels, weighted by its share of the decisions (0 when none is allowed).
    pub fn estimated_error_rate(&self, j: usize) -> f64 {
        let n = self.auto[j];
        if n == 0 {
            return 0.0;
        }
        self.parts(j)
            .iter()
            .filter(|p| p.labelled > 0)
            .map(|p| p.population as f64 / n as f64 * p.wrong as f64 / p.labelled as f64)
            .sum()
    }

    /// The upper confidence bound on the auto-error rate at `j` at level
    /// `delta`: Clopper–Pearson for one part; with S parts, the
    /// population-weighted sum of each part's bound at `delta / S`.
    pub fn error_upper(&self, j: usize, delta: f64) -> Option<f64> {
        let n = self.auto[j];
        if n == 0 {
            return None;
        }
        Some(weighted_upper(&self.parts(j), n, delta))
    }

    /// Kish's effective sample size of the labels behind `j`: (Σ w)² / Σ w²
    /// with each label weighted by its part's decisions per label (N itself
    /// when every label is taken as given).
    pub fn effective_sample_size(&self, j: usize) -> f64 {
        let parts = self.parts(j);
        let sum_w: f64 = parts.iter().filter(|p| p.labelled > 0).map(|p| p.population as f64).sum();
        let sum_w2: f64 =
            parts.iter().filter(|p| p.labelled > 0).map(|p| (p.population as f64).powi(2) / p.labelled as f64).sum();
        if sum_w2 == 0.0 { 0.0 } else { sum_w * sum_w / sum_w2 }
    }

    /// The test of "the auto-error rate at `j` exceeds `e`" at level `delta`:
    /// its p-value (the smallest level at which it rejects) and whether p ≤ δ.
    fn test(&self, j: usize, e: f64, delta: f64) -> (f64, bool) {
        let parts = self.parts(j);
        if let [p] = parts.as_slice() {
            let pv = if p.labelled == 0 { 1.0 } else { binomial_cdf(p.wrong, p.labelled, e) };
            return (pv, pv <= delta);
        }
        // the parts are read once; only the level changes while bisecting
        let n = self.auto[j];
        let rejects = |d: f64| n > 0 && weighted_upper(&parts, n, d) <= e;
        let pass = rejects(delta);
        if !rejects(1.0) {
            return (1.0, pass);
        }
        // the bound grows as the level shrinks: bisect on log(level) for the smallest that rejects
        let (mut lo, mut hi) = (-700.0f64, 0.0f64);
        if rejects(lo.exp()) {
            return (0.0, pass);
        }
        for _ in 0..60 {
            let mid = 0.5 * (lo + hi);
            if rejects(mid.exp()) { hi = mid } else { lo = mid }
        }
        (hi.exp().max(if pass { 0.0 } else { delta.next_up() }).min(if pass { delta } else { 1.0 }), pass)
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

/// [`bin`] with the grid's thresholds computed once: the same answer, with
/// table lookups where `bin` divides (tallies bin every decision).
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    grid: u32,
    /// `edges[j]` = j / grid as the policy engine's threshold (j in 0..=grid).
    edges: Vec<f64>,
}

impl Grid {
    /// The thresholds `j / grid`.
    pub fn new(grid: u32) -> Grid {
        Grid { grid, edges: (0..=grid).map(|j| j as f64 / grid as f64).collect() }
    }

    /// The largest `j` with `confidence ≥ j / grid` (exactly [`bin`]).
    #[inline]
    pub fn bin(&self, confidence: f64) -> usize {
        let g = self.grid as usize;
        let mut j = (confidence * self.grid as f64).floor().clamp(0.0, self.grid as f64) as usize;
        while j < g && confidence >= self.edges[j + 1] {
            j += 1;
        }
        while j > 0 && confidence < self.edges[j] {
            j -= 1;
        }
        j
    }
}

/// Build every class's curve in one pass over the history (in class-name order).
pub fn curves(h: &History, opts: &TuneOptions) -> Vec<ClassCurve> {
    Tally::of(h, opts, 1).curves()
}

/// One threshold the scan tested.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ThresholdTest {
    /// The threshold.
    pub threshold: f64,
    /// Decisions it auto-allows.
    pub auto_allowed: u64,
    /// Labels the test rests on: all of them without an audit design; with
    /// one, those taken as given plus the audit's draws.
    pub labelled: u64,
    /// Wrong ones among those labels.
    pub auto_errors: u64,
    /// The smallest level at which "the auto-error rate exceeds E" is
    /// rejected: the exact binomial test's p-value (with an audit design, that
    /// of the stratified bound).
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
        let labelled = curve.labelled(j);
        if labelled < start {
            skipped = Some(skipped.map_or((j, j), |(hi, _)| (hi, j)));
            continue;
        }
        if record.started_at.is_none() {
            record.started_at = curve.threshold(j);
        }
        if let Some(e) = opts.max_auto_error {
            let (p, pass) = curve.test(j, e, delta);
            record.tests.push(ThresholdTest {
                threshold: curve.threshold(j).unwrap_or(1.0),
                auto_allowed: n,
                labelled,
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
        let what =
            if curve.strata.is_empty() { "auto-allowed decisions" } else { "labels (given, or drawn for audit)" };
        record.not_tested = Some(format!("not tested: fewer than {start} {what} at {range}"));
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
    /// Their rate among auto-allowed decisions (with an audit design: the
    /// weighted estimate, see [`ClassCurve::estimated_error_rate`]).
    pub auto_error_rate: f64,
    /// Clopper–Pearson upper bound on that rate at the class's level (with an
    /// audit design, the stratified bound; `None` when nothing is
    /// auto-allowed: there is no rate to bound).
    pub auto_error_upper: Option<f64>,
    /// Kish's effective sample size of the labels behind the rate (the
    /// auto-allowed count when every label is taken as given).
    pub effective_sample_size: f64,
    /// The audit design's strata, when the class has one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub audit: Vec<AuditStratum>,
    /// Wrong decisions that went to a person instead.
    pub errors_caught: u64,
    /// Cost of automatic errors plus cost of escalations.
    pub expected_cost: f64,
    /// The lowest threshold the bound certified (`None`: only never).
    pub lowest_certified: Option<f64>,
    /// The certified set, the p-value of every tested threshold, and where the scan started and why.
    pub scan: Scan,
}

/// What a class's audit design held, per inclusion probability.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditStratum {
    /// The inclusion probability π.
    pub probability: f64,
    /// Decisions of the design (allowed when they were made), labelled or not.
    pub decisions: u64,
    /// Those the audit drew.
    pub drawn: u64,
    /// Drawn ones without a label yet: counted as errors.
    pub unlabelled: u64,
    /// Labels of undrawn decisions, left out (they were not drawn at random).
    pub labels_left_out: u64,
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
    tune_curves(curves(h, opts), opts)
}

/// Tune thresholds on the curves of a history (from [`curves`], or a [`Tally`] counted as it was read).
pub fn tune_curves(curves: Vec<ClassCurve>, opts: &TuneOptions) -> (TuneResult, Vec<ClassCurve>) {
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
                auto_error_rate: c.estimated_error_rate(j),
                auto_error_upper: c.error_upper(j, delta),
                effective_sample_size: c.effective_sample_size(j),
                audit: c
                    .strata
                    .iter()
                    .map(|s| AuditStratum {
                        probability: s.probability,
                        decisions: s.population[0],
                        drawn: s.drawn[0],
                        unlabelled: s.drawn_unlabelled[0],
                        labels_left_out: s.labels_left_out,
                    })
                    .collect(),
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
