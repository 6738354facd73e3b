//! Sequential tests: the monitor's alarms.
//!
//! Every watched quantity is a stream of yes/no trials — "is this decision
//! `isolate_host`" (share), "did it escalate", "was it wrong" (among labelled
//! decisions), "is its confidence below the baseline's lower quartile" (and
//! above the upper) — and each gets a one-sided **Bernoulli CUSUM** (Page
//! 1954): `S ← max(0, S + log p₁(x)/p₀(x))` over the trials since the start of
//! the monitored span, where `p₀` is the baseline's rate and `p₁` the rate the
//! test is built to catch (`p₀ × (1 + r)` up, `p₀ / (1 + r)` down, `r` the
//! minimum relative change). Evidence accumulates over time, so a class with
//! forty decisions an hour is watched as closely as its volume allows instead
//! of dropping out of a fixed window.
//!
//! **Baselines.** With at least `min_seasonal_days` of history before the
//! span, `p₀` comes from the same hour of the day on the `seasonal_days`
//! before it (shares per hour of day; escalation, error and confidence rates of
//! the class pooled over those days), so nights are compared with nights. With
//! less, from the `reference_ms` before the recent window (the span is then
//! that window). After an intervention the class's reference restarts at its
//! activation: only decisions from then on count.
//!
//! **False-alarm budget.** The test alarms when `S ≥ h`. By Siegmund's
//! approximation the in-control run length is `ARL₀ ≈ eʰ / KL(p₀‖p₁)` trials,
//! so a test seeing `n` trials a week raises about `n · KL · e⁻ʰ` false alarms a
//! week; `h` is set so that this is the test's share (Bonferroni) of
//! `false_alarms_per_week`. The baseline's own sampling error is charged
//! against it: `p₀` is taken at `z` standard errors on the far side of its
//! estimate, so a noisy baseline costs power, not false alarms.
//!
//! **p-value.** Under the baseline, `e^S` is bounded by a union of
//! nonnegative martingales started at each trial, so `P(S ≥ s at some point
//! of n trials) ≤ n·e⁻ˢ` (Ville's inequality; Lorden 1971). The test reports
//! that bound.

use super::{AlarmKind, DriftConfig, Timed};
use crate::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
/// Hours in a week: a test's expected trials per week is its baseline's hourly rate times this.
const WEEK_HOURS: f64 = 168.0;

/// Which way the watched rate moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// The rate rose (for confidence: more decisions above the baseline's upper quartile).
    Up,
    /// The rate fell (for confidence: more decisions below the baseline's lower quartile).
    Down,
}

impl Direction {
    /// `up` or `down`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Up => "up",
            Direction::Down => "down",
        }
    }
}

/// What a test compares against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// `same_hour` (the same hour of the day on earlier days) or `recent`
    /// (the reference window just before the recent one).
    pub kind: String,
    /// Start of the baseline's decisions.
    pub from: Timestamp,
    /// Its end (the start of the monitored span).
    pub to: Timestamp,
    /// When the class's reference restarted after an intervention, if it did within reach.
    pub restarted_at: Option<Timestamp>,
    /// In words, e.g. "the same hour of day on the 7 days before 2026-12-04T13:00:00Z".
    pub description: String,
}

/// One sequential test at one evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SequentialTest {
    /// Action class.
    pub action: String,
    /// The quantity watched.
    pub kind: AlarmKind,
    /// Which way it is watched.
    pub direction: Direction,
    /// The test: `bernoulli_cusum`.
    pub test: String,
    /// What counts as an event among the trials, in words.
    pub event: String,
    /// What it compares against.
    pub baseline: Baseline,
    /// The baseline's rate (pooled over the baseline; shares vary by hour of day).
    pub baseline_rate: f64,
    /// The rate the test takes as normal: the baseline's, `baseline_z` standard errors towards the alarm's side (pooled).
    pub null_rate: f64,
    /// The rate the test is built to catch (pooled).
    pub alternative_rate: f64,
    /// Start of the monitored span.
    pub since: Timestamp,
    /// Trials in the span.
    pub trials: u64,
    /// Events among them.
    pub events: u64,
    /// Events the baseline expects among them.
    pub expected_events: f64,
    /// The CUSUM statistic now (log-likelihood ratio, nats).
    pub statistic: f64,
    /// It alarms at or above this.
    pub threshold: f64,
    /// Bound on the probability of a statistic this high in this many trials under the baseline.
    pub p_value: f64,
    /// The false alarms a week this test is allowed (its share of the budget).
    pub false_alarms_per_week: f64,
    /// Whether it alarms.
    pub alarm: bool,
}

impl SequentialTest {
    /// One sentence with the numbers, for people.
    pub fn summary(&self) -> String {
        let pct = |x: f64| format!("{:.1}%", 100.0 * x);
        let moved = match (self.kind, self.direction) {
            (AlarmKind::Share, Direction::Up) => "is a larger share of decisions",
            (AlarmKind::Share, Direction::Down) => "is a smaller share of decisions",
            (AlarmKind::EscalationRate, Direction::Up) => "escalates more often",
            (AlarmKind::EscalationRate, Direction::Down) => "escalates less often",
            (AlarmKind::ErrorRate, _) => "is wrong more often",
            (AlarmKind::Confidence, Direction::Down) => "is less confident",
            (AlarmKind::Confidence, Direction::Up) => "is more confident",
        };
        let observed = if self.trials == 0 { 0.0 } else { self.events as f64 / self.trials as f64 };
        format!(
            "`{}` {moved}: {} of {} trials ({}) against {:.1} expected from {} ({}); CUSUM {:.1} ≥ {:.1}, {}",
            self.action,
            self.events,
            self.trials,
            pct(observed),
            self.expected_events,
            self.baseline.description,
            self.event,
            self.statistic,
            self.threshold,
            if self.p_value < 1e-16 { "p < 1e-16".to_string() } else { format!("p ≤ {:.1e}", self.p_value) },
        )
    }
}

/// Counts of one class over a baseline.
#[derive(Default)]
struct ClassTally {
    /// Decisions of the class per hour of day.
    by_hour: [u64; 24],
    /// Of them, escalated.
    escalated: [u64; 24],
    /// Labelled by now.
    labelled: [u64; 24],
    /// Labelled wrong.
    wrong: [u64; 24],
    /// Confidences, sorted, per hour of day.
    confidences: [Vec<f64>; 24],
}

/// A baseline's counts.
#[derive(Default)]
struct Tally {
    total: u64,
    by_hour: [u64; 24],
    classes: BTreeMap<String, ClassTally>,
}

fn hour_of_day(at: i64) -> usize {
    (at.rem_euclid(DAY) / HOUR) as usize
}

impl Tally {
    fn of(timed: &[Timed], from: i64, to: i64, now: i64) -> Tally {
        let lo = timed.partition_point(|t| t.at < from);
        let hi = timed.partition_point(|t| t.at < to);
        let mut tally = Tally::default();
        for t in &timed[lo..hi] {
            let h = hour_of_day(t.at);
            tally.total += 1;
            tally.by_hour[h] += 1;
            let c = match tally.classes.get_mut(&t.point.action) {
                Some(c) => c,
                None => tally.classes.entry(t.point.action.clone()).or_default(),
            };
            c.by_hour[h] += 1;
            c.escalated[h] += u64::from(t.point.escalated);
            if let Some(x) = t.point.confidence {
                c.confidences[h].push(x);
            }
            if let (Some(ok), Some(l)) = (t.point.correct, t.labelled_at)
                && l <= now
            {
                c.labelled[h] += 1;
                c.wrong[h] += u64::from(!ok);
            }
        }
        for c in tally.classes.values_mut() {
            for v in &mut c.confidences {
                v.sort_by(f64::total_cmp);
            }
        }
        tally
    }
}

/// Where the baseline and the monitored span lie for classes whose history starts at `lo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Plan {
    seasonal: bool,
    from: i64,
    to: i64,
    since: i64,
    restarted: Option<i64>,
}

/// Where the seasonal tests' span starts at `now`: `span_ms` before the top of the hour.
pub(super) fn span_start(now: i64, cfg: &DriftConfig) -> i64 {
    now - now.rem_euclid(HOUR) - cfg.span_ms
}

fn plan(lo: i64, restarted: Option<i64>, now: i64, cfg: &DriftConfig) -> Option<Plan> {
    let span_start = span_start(now, cfg);
    if cfg.seasonal_days > 0 && lo <= span_start - i64::from(cfg.min_seasonal_days) * DAY {
        let from = lo.max(span_start - i64::from(cfg.seasonal_days) * DAY);
        return Some(Plan { seasonal: true, from, to: span_start, since: span_start, restarted });
    }
    let since = now - cfg.window_ms;
    let from = lo.max(since - cfg.reference_ms);
    (from < since).then_some(Plan { seasonal: false, from, to: since, since, restarted })
}

/// One test before it is run: its trials, rates and threshold.
struct Candidate<'a> {
    action: &'a str,
    kind: AlarmKind,
    direction: Direction,
    event: String,
    plan: Plan,
    /// Null and alternative rate per hour of day (the same in every hour unless seasonal).
    rates: [(f64, f64); 24],
    /// The baseline's own rate per hour of day (for the expected count).
    raw: [f64; 24],
    pooled: (f64, f64),
    pooled_raw: f64,
    /// Trials a week, from the baseline.
    per_week: f64,
    kl: f64,
    trial: Trial,
}

#[derive(Clone, Copy)]
enum Trial {
    Share,
    Escalated,
    Wrong,
    ConfidenceBelow(f64),
    ConfidenceAbove(f64),
}

/// Kullback–Leibler divergence of Bernoulli(q) from Bernoulli(p), nats.
pub fn bernoulli_kl(p: f64, q: f64) -> f64 {
    let t = |a: f64, b: f64| if a <= 0.0 { 0.0 } else { a * (a / b).ln() };
    t(p, q) + t(1.0 - p, 1.0 - q)
}

/// The null rate at `z` standard errors on the side the test looks (so baseline
/// noise does not turn into false alarms), and the alternative it is built to catch.
fn guarded(events: u64, trials: u64, direction: Direction, cfg: &DriftConfig) -> (f64, f64) {
    let n = trials as f64;
    let p = events as f64 / n;
    let se = (p * (1.0 - p) / n).sqrt();
    let floor = 0.5 / n;
    match direction {
        Direction::Up => {
            let p0 = (p + cfg.baseline_z * se).clamp(floor, 1.0 - floor);
            (p0, (p0 * (1.0 + cfg.min_relative_change)).min((1.0 + p0) / 2.0))
        }
        Direction::Down => {
            let p0 = (p - cfg.baseline_z * se).clamp(floor, 1.0 - floor);
            (p0, p0 / (1.0 + cfg.min_relative_change))
        }
    }
}

fn enough(events: u64, trials: u64, cfg: &DriftConfig) -> bool {
    trials >= cfg.min_reference_trials.max(1) && events as f64 >= cfg.min_expected
}

/// Runs the sequential tests; keeps the baselines' counts between runs (a
/// caller evaluating every few minutes rebuilds a seasonal baseline once an hour).
pub struct Monitor {
    cfg: DriftConfig,
    cache: HashMap<(i64, i64), std::sync::Arc<Tally>>,
}

impl Monitor {
    /// A monitor with these settings.
    pub fn new(cfg: DriftConfig) -> Monitor {
        Monitor { cfg, cache: HashMap::new() }
    }

    /// Its settings.
    pub fn config(&self) -> &DriftConfig {
        &self.cfg
    }

    /// The tests at `now`. `timed` must be sorted by `at` and reach back to
    /// `now - span - seasonal_days` where history allows (older decisions are
    /// ignored); `restarts` holds, per class, when its reference restarted.
    pub fn run(&mut self, timed: &[Timed], now: i64, restarts: &BTreeMap<String, i64>) -> Vec<SequentialTest> {
        let cfg = self.cfg.clone();
        let first = timed.first().map_or(now, |t| t.at);
        let mut used: HashMap<(i64, i64), std::sync::Arc<Tally>> = HashMap::new();
        // every class seen in the reach of any baseline
        let lo = timed.partition_point(|t| t.at < super::reach(now, &cfg));
        let names: std::collections::BTreeSet<&str> = timed[lo..].iter().map(|t| t.point.action.as_str()).collect();
        let mut candidates = Vec::new();
        for name in names {
            let restarted = restarts.get(name).copied().filter(|&r| r > first);
            let Some(plan) = plan(first.max(restarted.unwrap_or(i64::MIN)), restarted, now, &cfg) else {
                continue;
            };
            let key = (plan.from, plan.to);
            let tally = match used.get(&key).or_else(|| self.cache.get(&key)) {
                Some(t) => t.clone(),
                None => std::sync::Arc::new(Tally::of(timed, plan.from, plan.to, now)),
            };
            used.insert(key, tally.clone());
            candidates.extend(class_candidates(name, &tally, plan, &cfg));
        }
        self.cache = used;
        let per_test_budget = cfg.false_alarms_per_week / candidates.len().max(1) as f64;
        candidates.iter().map(|c| run_test(c, timed, now, per_test_budget)).collect()
    }
}

/// Whether a rate differs between the hours of the day: Pearson's χ² of the
/// hourly counts against the pooled rate, read with the Wilson–Hilferty
/// normal approximation, rejects at 1%. Hourly estimates cost power (each
/// hour has a seventh of a week's trials), so a rate is taken per hour only
/// when it is seasonal.
fn varies_by_hour(events: &[u64; 24], trials: &[u64; 24]) -> bool {
    let (e, n): (u64, u64) = (events.iter().sum(), trials.iter().sum());
    if n == 0 || e == 0 || e == n {
        return false;
    }
    let p = e as f64 / n as f64;
    let (mut chi2, mut cells) = (0.0, 0.0);
    for (&e_h, &n_h) in events.iter().zip(trials) {
        if n_h > 0 {
            let expected = n_h as f64 * p;
            chi2 += (e_h as f64 - expected).powi(2) / (expected * (1.0 - p));
            cells += 1.0;
        }
    }
    let df: f64 = cells - 1.0;
    if df < 1.0 {
        return false;
    }
    let k = 2.0 / (9.0 * df);
    let z = ((chi2 / df).cbrt() - (1.0 - k)) / k.sqrt();
    z > 2.326
}

/// Per hour of day: the null and alternative rates, and the baseline's own
/// rate, from events among trials in that hour on the baseline's days — or
/// the hours either side when an hour has too few trials — when the baseline
/// is seasonal and the rate varies by hour; otherwise the whole baseline's.
fn hourly_rates(
    events: &[u64; 24],
    trials: &[u64; 24],
    look: Direction,
    seasonal: bool,
    cfg: &DriftConfig,
) -> ([(f64, f64); 24], [f64; 24]) {
    let (e_all, n_all): (u64, u64) = (events.iter().sum(), trials.iter().sum());
    let by_hour = seasonal && varies_by_hour(events, trials);
    let mut rates = [(0.0, 0.0); 24];
    let mut raw = [0.0; 24];
    for h in 0..24 {
        let wide = |w: usize| {
            let hs = (0..=2 * w).map(|k| (h + 24 + k - w) % 24);
            hs.fold((0, 0), |(e, n), i| (e + events[i], n + trials[i]))
        };
        let (e, n) = if by_hour {
            [wide(0), wide(1)].into_iter().find(|&(_, n)| n >= cfg.min_reference_trials).unwrap_or((e_all, n_all))
        } else {
            (e_all, n_all)
        };
        rates[h] = guarded(e.max(1), n, look, cfg);
        raw[h] = e as f64 / n as f64;
    }
    (rates, raw)
}

fn class_candidates<'a>(name: &'a str, tally: &Tally, plan: Plan, cfg: &DriftConfig) -> Vec<Candidate<'a>> {
    let mut out = Vec::new();
    let Some(c) = tally.classes.get(name) else { return out };
    let hours = ((plan.to - plan.from) as f64 / HOUR as f64).max(1.0);
    // the confidence quartiles of the whole baseline, and the tails per hour of day
    let mut pooled_conf: Vec<f64> = c.confidences.iter().flatten().copied().collect();
    pooled_conf.sort_by(f64::total_cmp);
    let (q_low, q_high) =
        (crate::stats::quantile_sorted(&pooled_conf, 0.25), crate::stats::quantile_sorted(&pooled_conf, 0.75));
    let mut conf_n = [0u64; 24];
    let mut below = [0u64; 24];
    let mut above = [0u64; 24];
    for (h, v) in c.confidences.iter().enumerate() {
        conf_n[h] = v.len() as u64;
        below[h] = v.partition_point(|&x| x < q_low) as u64;
        above[h] = (v.len() - v.partition_point(|&x| x <= q_high)) as u64;
    }
    let mut add = |kind, direction: Direction, events: &[u64; 24], trials: &[u64; 24], event: String, trial: Trial| {
        let (e, n): (u64, u64) = (events.iter().sum(), trials.iter().sum());
        if !enough(e, n, cfg) {
            return;
        }
        // a confidence test watches its tail grow, whichever way confidence moved
        let look = if kind == AlarmKind::Confidence { Direction::Up } else { direction };
        let (rates, raw) = hourly_rates(events, trials, look, plan.seasonal, cfg);
        let pooled = guarded(e, n, look, cfg);
        out.push(Candidate {
            action: name,
            kind,
            direction,
            event,
            plan,
            rates,
            raw,
            pooled,
            pooled_raw: e as f64 / n as f64,
            per_week: n as f64 / hours * WEEK_HOURS,
            kl: bernoulli_kl(pooled.0, pooled.1),
            trial,
        });
    };
    for direction in [Direction::Up, Direction::Down] {
        let share = format!("the decision is `{name}`");
        add(AlarmKind::Share, direction, &c.by_hour, &tally.by_hour, share, Trial::Share);
        let escalated = "the decision escalated".to_string();
        add(AlarmKind::EscalationRate, direction, &c.escalated, &c.by_hour, escalated, Trial::Escalated);
    }
    let wrong = "a labelled decision was wrong".to_string();
    add(AlarmKind::ErrorRate, Direction::Up, &c.wrong, &c.labelled, wrong, Trial::Wrong);
    if !pooled_conf.is_empty() {
        let event = format!("confidence below {q_low:.3}, the baseline's lower quartile");
        add(AlarmKind::Confidence, Direction::Down, &below, &conf_n, event, Trial::ConfidenceBelow(q_low));
        let event = format!("confidence above {q_high:.3}, the baseline's upper quartile");
        add(AlarmKind::Confidence, Direction::Up, &above, &conf_n, event, Trial::ConfidenceAbove(q_high));
    }
    out
}

fn run_test(c: &Candidate, timed: &[Timed], now: i64, budget: f64) -> SequentialTest {
    let lo = timed.partition_point(|t| t.at < c.plan.since);
    let hi = timed.partition_point(|t| t.at < now);
    // log-likelihood ratios of an event and a non-event, per hour of day
    let llr: Vec<(f64, f64)> =
        c.rates.iter().map(|&(p0, p1)| ((p1 / p0).ln(), ((1.0 - p1) / (1.0 - p0)).ln())).collect();
    let (mut s, mut trials, mut events, mut expected) = (0f64, 0u64, 0u64, 0f64);
    for t in &timed[lo..hi] {
        let p = &t.point;
        let x = match c.trial {
            Trial::Share => p.action == c.action,
            _ if p.action != c.action => continue,
            Trial::Escalated => p.escalated,
            Trial::Wrong => match (p.correct, t.labelled_at) {
                (Some(ok), Some(l)) if l <= now => !ok,
                _ => continue,
            },
            Trial::ConfidenceBelow(q) => match p.confidence {
                Some(x) => x < q,
                None => continue,
            },
            Trial::ConfidenceAbove(q) => match p.confidence {
                Some(x) => x > q,
                None => continue,
            },
        };
        let h = if c.plan.seasonal { hour_of_day(t.at) } else { 0 };
        let (up, down) = llr[h];
        s = (s + if x { up } else { down }).max(0.0);
        trials += 1;
        events += u64::from(x);
        expected += c.raw[h];
    }
    let threshold = (c.per_week * c.kl / budget).ln().max(1.0);
    let days = (c.plan.to - c.plan.from) as f64 / DAY as f64;
    let mut description = if c.plan.seasonal {
        format!("the same hour of day on the {days:.1} days before {}", Timestamp(c.plan.to))
    } else {
        format!("the {:.1} h before {}", (c.plan.to - c.plan.from) as f64 / HOUR as f64, Timestamp(c.plan.to))
    };
    if let Some(r) = c.plan.restarted {
        description.push_str(&format!(", since the reference restarted at {}", Timestamp(r)));
    }
    SequentialTest {
        action: c.action.to_string(),
        kind: c.kind,
        direction: c.direction,
        test: "bernoulli_cusum".into(),
        event: c.event.clone(),
        baseline: Baseline {
            kind: if c.plan.seasonal { "same_hour" } else { "recent" }.into(),
            from: Timestamp(c.plan.from),
            to: Timestamp(c.plan.to),
            restarted_at: c.plan.restarted.map(Timestamp),
            description,
        },
        baseline_rate: c.pooled_raw,
        null_rate: c.pooled.0,
        alternative_rate: c.pooled.1,
        since: Timestamp(c.plan.since),
        trials,
        events,
        expected_events: expected,
        statistic: s,
        threshold,
        p_value: (trials as f64 * (-s).exp()).min(1.0),
        false_alarms_per_week: budget,
        alarm: trials > 0 && s >= threshold,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drift::Point;

    /// A deterministic stream: `per_hour` decisions an hour from `from` to `to`,
    /// `share(at)` of them `isolate_host` (every k-th by a low-discrepancy rule), the rest `close_alert`.
    fn stream(from: i64, to: i64, per_hour: i64, share: impl Fn(i64) -> f64) -> Vec<Timed> {
        let step = HOUR / per_hour;
        let mut acc = 0.0;
        (0..)
            .map(|i| from + i * step)
            .take_while(|&at| at < to)
            .map(|at| {
                acc += share(at);
                let hit = acc >= 1.0;
                if hit {
                    acc -= 1.0;
                }
                Timed {
                    at,
                    point: Point {
                        action: if hit { "isolate_host" } else { "close_alert" }.into(),
                        escalated: false,
                        confidence: Some(0.9),
                        correct: None,
                    },
                    labelled_at: None,
                }
            })
            .collect()
    }

    fn share_test(tests: &[SequentialTest], direction: Direction) -> &SequentialTest {
        tests
            .iter()
            .find(|t| t.action == "isolate_host" && t.kind == AlarmKind::Share && t.direction == direction)
            .unwrap()
    }

    #[test]
    fn the_threshold_spends_the_tests_share_of_the_budget() {
        // 10 days at 400/h, isolate_host 5% by day and 20% by night: a seasonal baseline
        let night = |at: i64| !(6..22).contains(&hour_of_day(at));
        let timed = stream(0, 10 * DAY, 400, |at| if night(at) { 0.2 } else { 0.05 });
        let cfg = DriftConfig::default();
        let now = 10 * DAY - 30 * 60_000;
        let tests = Monitor::new(cfg.clone()).run(&timed, now, &BTreeMap::new());
        let up = share_test(&tests, Direction::Up);
        assert_eq!(up.baseline.kind, "same_hour");
        assert_eq!(up.since, Timestamp(now - now.rem_euclid(HOUR) - DAY));
        // h = ln(trials a week × KL(p0‖p1) / (budget / tests))
        let per_week = 400.0 * 168.0;
        let budget = cfg.false_alarms_per_week / tests.len() as f64;
        let expected = (per_week * bernoulli_kl(up.null_rate, up.alternative_rate) / budget).ln();
        assert!((up.threshold - expected).abs() < 0.05, "{} vs {expected}", up.threshold);
        assert!((up.false_alarms_per_week - budget).abs() < 1e-12);
        // the night's share is the night's baseline: nothing alarms, and the expected count follows the hours
        assert!(tests.iter().all(|t| !t.alarm), "{:?}", tests.iter().filter(|t| t.alarm).collect::<Vec<_>>());
        assert!((up.expected_events - up.events as f64).abs() / up.events as f64 <= 0.1, "{up:?}");
        // the same stream against the 12 h before the window (no seasonal baseline): night against day
        let recent = Monitor::new(DriftConfig { seasonal_days: 0, ..cfg.clone() }).run(&timed, now, &BTreeMap::new());
        let against_day = share_test(&recent, Direction::Up);
        assert_eq!(against_day.baseline.kind, "recent");
        assert!(against_day.alarm, "the night against the day alarms: {against_day:?}");
    }

    #[test]
    fn a_step_is_caught_with_its_evidence_and_a_p_value_bound() {
        // 9 days steady at 5%, then 10% for the last 3 hours
        let change = 9 * DAY - 3 * HOUR;
        let timed = stream(0, 9 * DAY, 400, |at| if at >= change { 0.10 } else { 0.05 });
        let tests = Monitor::new(DriftConfig::default()).run(&timed, 9 * DAY, &BTreeMap::new());
        let up = share_test(&tests, Direction::Up);
        assert!(up.alarm, "{up:?}");
        assert!(up.statistic >= up.threshold);
        assert!((up.p_value - up.trials as f64 * (-up.statistic).exp()).abs() < 1e-12);
        assert!(up.p_value < 1.0);
        let summary = up.summary();
        assert!(summary.contains("the same hour of day on the 7.0 days before"), "{summary}");
        assert!(summary.contains("CUSUM") && summary.contains("p ≤"), "{summary}");
        assert!(!share_test(&tests, Direction::Down).alarm);
    }

    #[test]
    fn a_restart_makes_the_decisions_after_it_the_baseline() {
        // the share doubled 20 h ago and stays: a restart at the change accepts it
        let change = 9 * DAY - 20 * HOUR;
        let timed = stream(0, 9 * DAY, 400, |at| if at >= change { 0.10 } else { 0.05 });
        let mut monitor = Monitor::new(DriftConfig::default());
        assert!(share_test(&monitor.run(&timed, 9 * DAY, &BTreeMap::new()), Direction::Up).alarm);
        let restarts = BTreeMap::from([("isolate_host".to_string(), change)]);
        let tests = monitor.run(&timed, 9 * DAY, &restarts);
        let up = share_test(&tests, Direction::Up);
        assert!(!up.alarm, "{up:?}");
        assert_eq!(up.baseline.kind, "recent");
        assert!(up.baseline.from >= Timestamp(change));
        assert_eq!(up.baseline.restarted_at, Some(Timestamp(change)));
        assert!(up.baseline.description.contains("since the reference restarted"), "{}", up.baseline.description);
        // other classes keep their seasonal baseline
        let other = tests.iter().find(|t| t.action == "close_alert").unwrap();
        assert_eq!(other.baseline.kind, "same_hour");
    }

    #[test]
    fn a_rate_is_taken_per_hour_only_when_it_varies_by_hour() {
        // 10% in every hour, 2,800 trials an hour: binomial noise only
        let mut rng = crate::rng::Rng::new(3);
        let trials = [2_800u64; 24];
        let flat: [u64; 24] = std::array::from_fn(|_| (0..2_800).filter(|_| rng.chance(0.1)).count() as u64);
        assert!(!varies_by_hour(&flat, &trials));
        // nights at 15%
        let night: [u64; 24] = std::array::from_fn(|h| if !(6..22).contains(&h) { 420 } else { 280 });
        assert!(varies_by_hour(&night, &trials));
        // a flat rate is pooled even on a seasonal baseline: every hour gets the week's estimate
        let cfg = DriftConfig::default();
        let (rates, raw) = hourly_rates(&flat, &trials, Direction::Up, true, &cfg);
        assert!(rates.iter().all(|r| *r == rates[0]) && raw.iter().all(|r| *r == raw[0]));
        let (rates, _) = hourly_rates(&night, &trials, Direction::Up, true, &cfg);
        assert!(rates[2].0 > rates[12].0 + 0.04, "{:?} {:?}", rates[2], rates[12]);
    }

    /// The budget holds on streams that did not drift: Bernoulli trials at a
    /// known rate, many independent weeks, false alarms counted as crossings.
    #[test]
    fn false_alarms_stay_within_the_budget_on_streams_that_did_not_drift() {
        let mut rng = crate::rng::Rng::new(7);
        let cfg = DriftConfig { false_alarms_per_week: 1.0, ..DriftConfig::default() };
        // one test alone: per week 100 trials an hour at p = 0.1, the baseline estimated from 7 days
        let (p, per_week) = (0.1, 16_800u64);
        let weeks = 60;
        let mut alarms = 0;
        for _ in 0..weeks {
            let baseline_events = (0..per_week).filter(|_| rng.chance(p)).count() as u64;
            let (p0, p1) = guarded(baseline_events, per_week, Direction::Up, &cfg);
            let h = (per_week as f64 * bernoulli_kl(p0, p1) / cfg.false_alarms_per_week).ln();
            let (up, down) = ((p1 / p0).ln(), ((1.0 - p1) / (1.0 - p0)).ln());
            let mut s: f64 = 0.0;
            for _ in 0..per_week {
                s = (s + if rng.chance(p) { up } else { down }).max(0.0);
                if s >= h {
                    alarms += 1;
                    s = 0.0;
                }
            }
        }
        assert!(alarms as f64 / weeks as f64 <= cfg.false_alarms_per_week, "{alarms} false alarms in {weeks} weeks");
    }
}
