//! `arbiter tune`: choose per-class thresholds from history under an
//! escalation budget, with a statistical bound on automatic errors.

use crate::history::{self, HistoryArgs};
use anyhow::{Context, Result, bail};
use arbiter_chart::{Chart, Marker, Series};
use arbiter_tuning::{ClassCurve, Tally, TuneOptions, TuneResult, tune_curves};
use clap::Args;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// Options of `arbiter tune`.
#[derive(Debug, Args)]
pub struct TuneArgs {
    #[command(flatten)]
    history: HistoryArgs,
    /// Largest share of all decisions that may escalate (the reviewers' budget).
    #[arg(long, default_value_t = 0.10)]
    max_escalation_rate: f64,
    /// Per-class bound on the error rate of automatically allowed decisions.
    #[arg(long)]
    max_auto_error: Option<f64>,
    /// The bound holds with probability 1 - delta.
    #[arg(long, default_value_t = 0.05)]
    delta: f64,
    /// Cost of an automatic error for a class, e.g. `--cost isolate_host=40` (repeatable; default 1, or the history's error_cost).
    #[arg(long = "cost", value_parser = parse_kv)]
    costs: Vec<(String, f64)>,
    /// Cost of an escalation for a class, e.g. `--escalation-cost close_alert=2` (repeatable; default 0).
    #[arg(long = "escalation-cost", value_parser = parse_kv)]
    escalation_costs: Vec<(String, f64)>,
    /// How to group decisions into classes (only `action` for now).
    #[arg(long, default_value = "action")]
    by: String,
    /// Threshold grid: thresholds are multiples of 1/GRID.
    #[arg(long, default_value_t = 1000)]
    grid: u32,
    /// Least auto-allowed decisions before a threshold is tested (default: max(⌈10/E⌉, the count a spotless record needs)).
    #[arg(long)]
    min_samples: Option<u64>,
    /// Bound every class at once: test each of the K classes at delta/K (Bonferroni), so that with
    /// probability 1 - delta no class's auto-error rate exceeds the bound.
    #[arg(long)]
    family_wise: bool,
    /// Candidate thresholds instead of the whole grid, e.g. `--thresholds 0.5,0.8,0.9,0.95`
    /// (each a multiple of 1/GRID; "never" is always a candidate).
    #[arg(long, value_delimiter = ',')]
    thresholds: Option<Vec<f64>>,
    /// The current policy file. Decisions its triggers settle whatever the threshold do not
    /// shape the thresholds, and those it escalates use part of the budget (histories with
    /// arguments: --db or JSON Lines). With --out, it is rewritten with the chosen thresholds.
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Where to write the new policy (needs --policy).
    #[arg(long, requires = "policy")]
    out: Option<PathBuf>,
    /// Write per class an SVG risk–coverage plot (`CLASS.svg`) and a reliability diagram (`CLASS.calibration.svg`) into this directory.
    #[arg(long)]
    plots: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

fn parse_kv(s: &str) -> Result<(String, f64), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("expected CLASS=COST, got `{s}`"))?;
    let v: f64 = v.parse().map_err(|_| format!("`{v}` is not a number"))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("cost must be a non-negative number, got {v}"));
    }
    Ok((k.to_string(), v))
}

fn pct(x: f64) -> String {
    // never "-0.00%": a share rounds to zero from either side
    let v = 100.0 * x;
    format!("{:.2}%", if v.abs() < 0.005 { 0.0 } else { v })
}

/// Run `arbiter tune`.
pub fn run(args: TuneArgs) -> Result<ExitCode> {
    if args.by != "action" {
        bail!("--by {}: only `action` is supported so far", args.by);
    }
    if !(0.0..=1.0).contains(&args.max_escalation_rate) {
        bail!("--max-escalation-rate must be between 0 and 1");
    }
    if args.max_auto_error.is_some_and(|e| !(0.0 < e && e < 1.0)) || !(0.0 < args.delta && args.delta < 1.0) {
        bail!("--max-auto-error and --delta must be between 0 and 1 (exclusive)");
    }
    if args.grid < 10 || args.grid > 100_000 {
        bail!("--grid must be between 10 and 100000");
    }
    let candidates = match &args.thresholds {
        None => None,
        Some(ts) => Some(
            ts.iter()
                .map(|&t| {
                    let j = (t * args.grid as f64).round();
                    if !(0.0..=1.0).contains(&t) || (t * args.grid as f64 - j).abs() > 1e-9 {
                        bail!("--thresholds: {t} is not a multiple of 1/{} between 0 and 1 (use --grid)", args.grid);
                    }
                    Ok(j as u32)
                })
                .collect::<Result<Vec<u32>>>()?,
        ),
    };
    let mut opts = TuneOptions {
        max_escalation_rate: args.max_escalation_rate,
        max_auto_error: args.max_auto_error,
        delta: args.delta,
        grid: args.grid,
        min_samples: args.min_samples,
        family_wise: args.family_wise,
        candidates,
        error_cost: args.costs.iter().cloned().collect(),
        escalation_cost: args.escalation_costs.iter().cloned().collect(),
        ..TuneOptions::default()
    };
    let loaded = Instant::now();
    let tally = match &args.policy {
        Some(path) if history::has_arguments(&args.history) => {
            // the policy's triggers settle some decisions whatever the threshold: replay them, count the rest
            let policy = crate::policy::load(path)?;
            let h = history::load(&args.history)?;
            let rules = history::settled_by_rules(&args.history, &policy)?.unwrap_or_default();
            if rules.len() != h.len() {
                bail!("the history changed while it was read ({} then {} decisions)", h.len(), rules.len());
            }
            rules.iter().flatten().for_each(|v| opts.settled_by_rules.add(*v));
            let free: Vec<bool> = rules.iter().map(Option::is_none).collect();
            Tally::of(&h.select(&free), &opts, CALIBRATION_BINS)
        }
        Some(path) => {
            eprintln!(
                "note: a CSV or Parquet history has no arguments or signals, so {}'s triggers are not replayed; \
                 the escalations they cause are not counted against the budget (use --db or JSON Lines)",
                path.display()
            );
            history::tally(&args.history, &opts, CALIBRATION_BINS)?
        }
        None => history::tally(&args.history, &opts, CALIBRATION_BINS)?,
    };
    let loaded_n = tally.decisions();
    let load_time = loaded.elapsed();
    let started = Instant::now();
    let spin = crate::progress::Progress::spinner(&format!("tuning {loaded_n} decisions"));
    let (result, curves) = tune_curves(tally.curves(), &opts);
    let calibrations = tally.calibration();
    drop(spin);
    let tune_time = started.elapsed();
    if let Some(dir) = &args.plots {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        for c in &curves {
            let r = result.classes.iter().find(|r| r.action == c.name).expect("every class has a result");
            let path = dir.join(format!("{}.svg", c.name.replace(['/', '\\', ':'], "_")));
            std::fs::write(&path, plot(c, r, &opts).svg())
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        for c in &calibrations {
            let path = dir.join(format!("{}.calibration.svg", c.action.replace(['/', '\\', ':'], "_")));
            std::fs::write(&path, reliability(c).svg()).with_context(|| format!("cannot write {}", path.display()))?;
        }
    }
    let new_policy = match (&args.policy, &args.out) {
        (Some(p), Some(out)) => {
            let src = std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
            let map: BTreeMap<String, Option<f64>> =
                result.classes.iter().map(|c| (c.action.clone(), c.threshold)).collect();
            let new = arbiter_policy::rewrite::with_thresholds(&src, &map)
                .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
            std::fs::write(out, &new).with_context(|| format!("cannot write {}", out.display()))?;
            Some(out.clone())
        }
        _ => None,
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"result": result, "calibration": calibrations, "load_seconds": load_time.as_secs_f64(), "tune_seconds": tune_time.as_secs_f64()})
            )?
        );
    } else {
        print_table(&result, &opts);
        print_calibration(&calibrations);
        eprintln!(
            "(loaded {} decisions in {:.2}s; tuned in {:.3}s)",
            loaded_n,
            load_time.as_secs_f64(),
            tune_time.as_secs_f64()
        );
        if let Some(out) = new_policy {
            println!(
                "wrote the policy with these thresholds to {} — backtest it: arbiter policy backtest {} --history ...",
                out.display(),
                out.display()
            );
        }
    }
    Ok(if result.feasible { ExitCode::SUCCESS } else { ExitCode::from(2) })
}

fn print_table(r: &TuneResult, opts: &TuneOptions) {
    println!(
        "{:<24} {:>9} {:>9} {:>8} {:>8} {:>9} {:>9} {:>8} {:>12}",
        "ACTION", "DECISIONS", "THRESHOLD", "AUTO", "ESCAL.", "AUTO-ERR", "UPPER", "CAUGHT", "COST"
    );
    for c in &r.classes {
        println!(
            "{:<24} {:>9} {:>9} {:>8} {:>8} {:>9} {:>9} {:>8} {:>12.1}",
            c.action,
            c.decisions,
            c.threshold.map_or("never".to_string(), |t| format!("{t}")),
            pct(c.auto_share),
            pct(c.escalated_share),
            pct(c.auto_error_rate),
            c.auto_error_upper.map_or("—".to_string(), pct),
            c.errors_caught,
            c.expected_cost
        );
    }
    let rules = r.settled_by_rules;
    if rules.decisions > 0 {
        let n = r.decisions.max(1) as f64;
        println!(
            "{:<24} {:>9} {:>9} {:>8} {:>8}",
            "(settled by the rules)",
            rules.decisions,
            "",
            "",
            pct(rules.escalations as f64 / n),
        );
    }
    let auto: f64 = r.classes.iter().map(|c| c.auto_share * c.decisions as f64).sum();
    println!(
        "{:<24} {:>9} {:>9} {:>8} {:>8} {:>9} {:>9} {:>8} {:>12.1}",
        "TOTAL",
        r.decisions,
        "",
        pct(auto / r.decisions.max(1) as f64),
        pct(r.escalated_share),
        pct(r.auto_errors as f64 / auto.max(1.0)),
        "",
        r.errors_caught,
        r.expected_cost
    );
    println!();
    if rules.decisions > 0 {
        println!(
            "the policy's triggers settle {} decisions whatever the threshold ({} of them escalate, {} of all decisions); \
             the thresholds share the rest of the budget",
            rules.decisions,
            rules.escalations,
            pct(rules.escalations as f64 / r.decisions.max(1) as f64)
        );
    }
    print_audit(r);
    match (r.feasible, opts.max_auto_error) {
        (true, Some(e)) => println!(
            "escalated share {} within the budget {} ({} of {} decisions); {} auto-error rate is ≤ {} with probability ≥ {} (Clopper–Pearson, Learn-then-Test{}); the least-cost allocation (exact)",
            pct(r.escalated_share),
            pct(r.budget),
            r.budget_escalations,
            r.decisions,
            if opts.family_wise { "every class's" } else { "each class's" },
            pct(e),
            1.0 - opts.delta,
            if opts.family_wise {
                format!(
                    ", all {} classes at once: each tested at δ/{} = {:.4}",
                    r.classes.len(),
                    r.classes.len(),
                    opts.class_delta(r.classes.len())
                )
            } else {
                String::new()
            }
        ),
        (true, None) => println!(
            "escalated share {} within the budget {} ({} of {} decisions); the least-cost allocation (exact)",
            pct(r.escalated_share),
            pct(r.budget),
            r.budget_escalations,
            r.decisions
        ),
        (false, Some(e)) if r.classes.iter().all(|c| c.decisions < opts.scan_start()) => println!(
            "TOO FEW OUTCOMES: bounding the auto-error rate at {} with probability {} needs at least {} labelled \
             decisions in a class before any threshold can be tested ({}); the history has {} ({}). Record more \
             outcomes (`arbiter outcomes`, audits) or tune without --max-auto-error; nothing was bounded.",
            pct(e),
            1.0 - opts.delta,
            opts.scan_start(),
            opts.scan_start_rule(),
            r.decisions,
            r.classes.iter().map(|c| format!("{}: {}", c.action, c.decisions)).collect::<Vec<_>>().join(", ")
        ),
        (false, Some(e)) => println!(
            "INFEASIBLE: the budget {} allows {} escalations of {} decisions, and the bound {} needs at least {} ({}); the thresholds above use that.",
            pct(r.budget),
            r.budget_escalations,
            r.decisions,
            pct(e),
            r.min_escalations,
            pct(r.min_feasible_budget)
        ),
        (false, None) => println!(
            "INFEASIBLE: the budget {} allows {} escalations of {} decisions; the policy's rules alone escalate more",
            pct(r.budget),
            r.budget_escalations,
            r.decisions
        ),
    }
    if r.optimality_gap > 0.0 {
        println!("the allocation is within {:.1} cost units of the exact optimum", r.optimality_gap);
    }
}

/// The audit design, for classes that have one: what the weighted estimate rests on.
fn print_audit(r: &TuneResult) {
    let audited: Vec<_> = r.classes.iter().filter(|c| !c.audit.is_empty()).collect();
    if audited.is_empty() {
        return;
    }
    println!(
        "audit design: the labels of drawn decisions are weighted by their stratum's decisions per draw (Horvitz–Thompson); \
         AUTO-ERR is that estimate and UPPER the stratified bound (Clopper–Pearson per stratum at δ/S, weighted; docs/tuning.md)"
    );
    println!(
        "  {:<22} {:>6} {:>10} {:>7} {:>11} {:>10} {:>8}",
        "ACTION", "π", "DECISIONS", "DRAWN", "UNLABELLED", "LEFT OUT", "ESS"
    );
    for c in audited {
        for (i, s) in c.audit.iter().enumerate() {
            println!(
                "  {:<22} {:>6} {:>10} {:>7} {:>11} {:>10} {:>8}",
                if i == 0 { c.action.as_str() } else { "" },
                s.probability,
                s.decisions,
                s.drawn,
                s.unlabelled,
                s.labels_left_out,
                if i == 0 { format!("{:.0}", c.effective_sample_size) } else { String::new() }
            );
        }
    }
    println!(
        "  UNLABELLED: drawn, not labelled yet, counted as errors (label them: arbiter cases audits); \
         LEFT OUT: labels of undrawn decisions, which were not drawn at random; ESS: effective sample size at the chosen threshold"
    );
    println!();
}

/// Bins of the reliability diagrams.
const CALIBRATION_BINS: usize = 10;

/// How far each class's stated confidence is from its observed accuracy: the
/// thresholds' error bounds hold on this history, but only carry over to new
/// decisions as far as the confidences are calibrated.
fn print_calibration(cals: &[arbiter_tuning::Calibration]) {
    println!();
    println!("calibration (stated confidence against observed accuracy, {CALIBRATION_BINS} bins; --plots draws them):");
    for c in cals.iter().filter(|c| c.n > 0) {
        let lean = if c.overconfidence > 0.0 { "overconfident" } else { "underconfident" };
        println!(
            "  {:<24} expected calibration error {:>5.1}%, {lean} by {:.1} points on average",
            c.action,
            100.0 * c.ece,
            100.0 * c.overconfidence.abs()
        );
    }
}

/// A reliability diagram: observed accuracy per bin of stated confidence, against the diagonal.
fn reliability(c: &arbiter_tuning::Calibration) -> Chart {
    Chart {
        title: format!("{}: calibration ({} decisions, error {:.1}%)", c.action, c.n, 100.0 * c.ece),
        x_label: "stated confidence".into(),
        y_label: "observed share right".into(),
        series: vec![
            Series {
                name: "perfectly calibrated".into(),
                points: vec![(0.0, 0.0), (1.0, 1.0)],
                color: "#888",
                dashed: true,
            },
            Series {
                name: "this agent".into(),
                points: c.bins.iter().map(|b| (b.mean_confidence, b.observed)).collect(),
                color: "#0a6ebd",
                dashed: false,
            },
        ],
        x_axis: arbiter_chart::Axis::Percent,
        y_axis: arbiter_chart::Axis::Percent,
        x_range: Some((0.0, 1.0)),
        ..Default::default()
    }
}

fn plot(c: &ClassCurve, r: &arbiter_tuning::ClassResult, opts: &TuneOptions) -> Chart {
    let step = (c.grid as usize / 200).max(1);
    let mut rate = Vec::new();
    let mut upper = Vec::new();
    for j in (0..=c.grid as usize).step_by(step) {
        let n = c.auto[j];
        if n == 0 {
            continue;
        }
        let cov = n as f64 / c.n.max(1) as f64;
        rate.push((cov, c.auto_wrong[j] as f64 / n as f64));
        upper.push((cov, arbiter_core::stats::clopper_pearson_upper(c.auto_wrong[j], n, opts.delta)));
    }
    let label = match r.threshold {
        Some(t) => {
            format!("threshold {t}: {:.1}% auto, {:.2}% errors", 100.0 * r.auto_share, 100.0 * r.auto_error_rate)
        }
        None => "never auto-allow".to_string(),
    };
    Chart {
        title: format!("{}: risk vs coverage ({} decisions)", c.name, c.n),
        x_label: "share auto-allowed (coverage)".into(),
        y_label: "auto-error rate".into(),
        series: vec![
            Series { name: "error rate".into(), points: rate, color: "#0a6ebd", dashed: false },
            Series {
                name: format!("upper bound (1-δ = {})", 1.0 - opts.delta),
                points: upper,
                color: "#888",
                dashed: true,
            },
        ],
        markers: vec![Marker { at: (r.auto_share, r.auto_error_rate), label }],
        hline: opts.max_auto_error.map(|e| (e, format!("bound {:.1}%", 100.0 * e))),
        ..Default::default()
    }
}
