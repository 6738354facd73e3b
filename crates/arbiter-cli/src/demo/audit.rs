//! `arbiter demo evaluate --audit`: why tuning needs audit labels, on the
//! simulated SOC. Reviewers label what the policy escalates; of what it
//! allows, only the errors that surface later (an incident, a complaint)
//! get a label. Estimating the auto-allowed error rate from those labels is
//! biased. Drawing a small share of the allowed decisions for audit, with the
//! same draw the server makes, and weighting the drawn labels by their
//! inclusion probability gives an estimate, and an upper bound, that hold.

use anyhow::Result;
use arbiter_core::rng::Rng;
use arbiter_core::{Timestamp, Verdict, sampling};
use arbiter_tuning::soc;
use arbiter_tuning::{self as tuning, History, TuneOptions, history::Row};
use serde::Serialize;

/// What the evaluation simulates.
#[derive(Debug, Clone, Copy)]
pub struct AuditSetup {
    /// Seeds (one simulated SOC each).
    pub seeds: u64,
    /// Alerts per hour.
    pub rate: f64,
    /// Simulated hours per seed.
    pub hours: i64,
    /// The audit share π of allowed decisions.
    pub share: f64,
    /// Chance that an allowed decision's error surfaces on its own (and gets a label).
    pub reported: f64,
    /// The bound's level.
    pub delta: f64,
}

impl Default for AuditSetup {
    fn default() -> Self {
        AuditSetup { seeds: 20, rate: 400.0, hours: 7 * 24, share: 0.02, reported: 0.3, delta: 0.1 }
    }
}

/// One class on one seed, at the class's threshold in the SOC policy.
#[derive(Debug, Clone, Serialize)]
pub struct ClassOutcome {
    /// The seed.
    pub seed: u64,
    /// The action class.
    pub action: String,
    /// Its `auto_allow_at`.
    pub threshold: f64,
    /// Decisions at or above the threshold.
    pub decisions: u64,
    /// Their true error rate.
    pub truth: f64,
    /// The rate among the labels there are without audits (escalations and reported errors).
    pub naive: f64,
    /// The weighted estimate with audit labels.
    pub weighted: f64,
    /// Its upper bound at level δ.
    pub upper: f64,
    /// Kish's effective sample size of the labels behind it.
    pub effective_sample_size: f64,
}

/// Per class over all seeds.
#[derive(Debug, Clone, Serialize)]
pub struct ClassSummary {
    /// The action class.
    pub action: String,
    /// Seeds where the class had decisions at or above its threshold.
    pub runs: usize,
    /// Mean true error rate.
    pub truth: f64,
    /// Mean of (naive − truth).
    pub naive_bias: f64,
    /// Mean of (weighted − truth).
    pub weighted_bias: f64,
    /// Share of runs where the upper bound is at or above the truth.
    pub coverage: f64,
    /// Mean effective sample size.
    pub effective_sample_size: f64,
}

/// The whole evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct AuditReport {
    /// Seeds.
    pub seeds: u64,
    /// The audit share.
    pub share: f64,
    /// The bound's level δ: coverage is promised at ≥ 1 − δ.
    pub delta: f64,
    /// Share of (class, seed) runs whose upper bound covers the truth.
    pub coverage: f64,
    /// Per class.
    pub classes: Vec<ClassSummary>,
    /// Every run.
    pub runs: Vec<ClassOutcome>,
}

/// Simulate `setup.seeds` SOC weeks and compare the estimates, class by class.
pub fn evaluate(setup: AuditSetup, policy: &arbiter_policy::Policy) -> Result<AuditReport> {
    let agent = arbiter_policy::cel::agent_value("soc-triage-agent", "");
    let empty = serde_json::json!({});
    let mut runs = Vec::new();
    for seed in 1..=setup.seeds {
        let cfg = soc::SocConfig { seed, alerts_per_hour: setup.rate, ..Default::default() };
        let props = soc::Soc::run(cfg, setup.hours * 3_600_000);
        let mut reports = Rng::new(seed ^ 0x5eed_a0d1);
        let (mut audited, mut naive) = (History::default(), History::default());
        for (i, p) in props.iter().enumerate() {
            let env = arbiter_policy::env_of(&p.action, &empty, &agent, None);
            let verdict = policy.evaluate(&env).verdict;
            let row = Row {
                timestamp: Timestamp(p.offset_ms),
                action: &p.action.name,
                confidence: p.action.confidence.unwrap_or(0.0),
                correct: p.correct,
                error_cost: None,
                escalation_cost: None,
            };
            if verdict != Verdict::Allow {
                // people saw it: its label comes from their review
                audited.push(&row);
                naive.push(&row);
                continue;
            }
            let draw = sampling::draw(&format!("{seed}-{i}"), setup.share);
            let reported = !p.correct && reports.chance(setup.reported);
            if reported {
                naive.push(&row);
            }
            if draw.selected || reported {
                audited.push_audited(&row, draw);
            } else {
                audited.push_unlabelled(row.timestamp, row.action, row.confidence, draw);
            }
        }
        let opts = TuneOptions { grid: 1000, ..TuneOptions::default() };
        let curves = tuning::curves(&audited, &opts);
        let naive_curves = tuning::curves(&naive, &opts);
        for c in &curves {
            let Some(t) = policy.class_config(&c.name).auto_allow_at.filter(|t| t.is_finite()) else { continue };
            let j = tuning::bin(t, opts.grid);
            let truth = props
                .iter()
                .filter(|p| p.action.name == c.name && p.action.confidence.unwrap_or(0.0) >= t)
                .fold((0u64, 0u64), |(n, w), p| (n + 1, w + u64::from(!p.correct)));
            if truth.0 == 0 {
                continue;
            }
            let naive = naive_curves
                .iter()
                .find(|n| n.name == c.name)
                .filter(|n| n.auto[j] > 0)
                .map_or(0.0, |n| n.auto_wrong[j] as f64 / n.auto[j] as f64);
            runs.push(ClassOutcome {
                seed,
                action: c.name.clone(),
                threshold: t,
                decisions: truth.0,
                truth: truth.1 as f64 / truth.0 as f64,
                naive,
                weighted: c.estimated_error_rate(j),
                upper: c.error_upper(j, setup.delta).unwrap_or(1.0),
                effective_sample_size: c.effective_sample_size(j),
            });
        }
    }
    let mut names: Vec<String> = runs.iter().map(|r| r.action.clone()).collect();
    names.sort();
    names.dedup();
    let mean =
        |v: &[&ClassOutcome], f: &dyn Fn(&ClassOutcome) -> f64| v.iter().map(|r| f(r)).sum::<f64>() / v.len() as f64;
    let classes = names
        .into_iter()
        .map(|name| {
            let v: Vec<&ClassOutcome> = runs.iter().filter(|r| r.action == name).collect();
            ClassSummary {
                runs: v.len(),
                truth: mean(&v, &|r| r.truth),
                naive_bias: mean(&v, &|r| r.naive - r.truth),
                weighted_bias: mean(&v, &|r| r.weighted - r.truth),
                coverage: mean(&v, &|r| f64::from(u8::from(r.upper >= r.truth))),
                effective_sample_size: mean(&v, &|r| r.effective_sample_size),
                action: name,
            }
        })
        .collect();
    let coverage = runs.iter().filter(|r| r.upper >= r.truth).count() as f64 / runs.len().max(1) as f64;
    Ok(AuditReport { seeds: setup.seeds, share: setup.share, delta: setup.delta, coverage, classes, runs })
}

/// Print the report as a table.
pub fn print(r: &AuditReport, setup: &AuditSetup) {
    println!(
        "audit sampling on the simulated SOC: {} seeds × {} h at {} alerts/h; {:.0}% of allowed decisions drawn for audit; \
         {:.0}% of the allowed errors surface on their own",
        r.seeds,
        setup.hours,
        setup.rate,
        100.0 * r.share,
        100.0 * setup.reported
    );
    println!(
        "{:<16} {:>5} {:>8} {:>12} {:>14} {:>12} {:>8}",
        "ACTION", "RUNS", "TRUTH", "NAIVE BIAS", "WEIGHTED BIAS", "COVERAGE", "ESS"
    );
    let pp = |x: f64| format!("{:+.2} pp", 100.0 * x);
    for c in &r.classes {
        println!(
            "{:<16} {:>5} {:>7.2}% {:>12} {:>14} {:>11.0}% {:>8.0}",
            c.action,
            c.runs,
            100.0 * c.truth,
            pp(c.naive_bias),
            pp(c.weighted_bias),
            100.0 * c.coverage,
            c.effective_sample_size
        );
    }
    println!(
        "the upper bound covered the true auto-allowed error rate in {:.1}% of {} class-runs (promised: at least {:.0}%)",
        100.0 * r.coverage,
        r.runs.len(),
        100.0 * (1.0 - r.delta)
    );
    println!(
        "NAIVE: the error rate among the labels there are without audits (reviews of escalations, reported errors); \
         WEIGHTED: escalation labels as given, plus the audit labels weighted by 1/π"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The demonstration, small: three simulated days. Labels from escalations
    /// and reported errors overstate the auto-allowed error rate many times
    /// over; the audit-weighted estimate is close and its bound covers.
    #[test]
    fn audit_labels_remove_the_bias_that_escalation_labels_have() {
        let policy = arbiter_policy::Policy::parse(arbiter_tuning::soc::POLICY).unwrap();
        let setup = AuditSetup { seeds: 3, hours: 72, ..AuditSetup::default() };
        let r = evaluate(setup, &policy).unwrap();
        assert!(r.runs.len() >= 12, "{:?}", r.runs);
        let close = r.classes.iter().find(|c| c.action == "close_alert").unwrap();
        assert!(close.naive_bias > 5.0 * close.truth, "naive is biased upward: {close:?}");
        assert!(close.weighted_bias.abs() < close.naive_bias.abs() / 5.0, "{close:?}");
        let misses = r.runs.iter().filter(|o| o.upper < o.truth).count();
        assert!(misses <= 1, "the bound covers in all but chance cases: {:?}", r.runs);
    }
}
