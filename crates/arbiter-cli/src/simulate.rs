//! `arbiter simulate`: replay the history's escalations through a reviewer pool.

use crate::history::{self, HistoryArgs};
use anyhow::{Context, Result, bail};
use arbiter_chart::{Chart, Series};
use arbiter_core::HumanDuration;
use arbiter_core::Verdict;
use arbiter_tuning::simulate::{Arrival, Service, SimOptions, erlang_c_reviewers, find_reviewers, replicate};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

/// Options of `arbiter simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    #[command(flatten)]
    history: HistoryArgs,
    /// The policy whose escalations to simulate.
    #[arg(long)]
    policy: PathBuf,
    /// Reviewers on duty.
    #[arg(long, default_value_t = 2)]
    reviewers: u32,
    /// How review times are drawn: `lognormal` (by --review-median, or --review-mean), `exponential`
    /// (mean --review-mean, or the median's mean), `fixed`, or `empirical` (the review times of the
    /// cases decided in --db's store, drawn with replacement).
    #[arg(long, default_value = "lognormal", value_parser = ["lognormal", "exponential", "fixed", "empirical"])]
    service: String,
    /// Median time to review one case.
    #[arg(long, default_value = "4m")]
    review_median: HumanDuration,
    /// Mean time to review one case, in seconds (fractions allowed, e.g. 0.5); overrides --review-median.
    #[arg(long)]
    review_mean: Option<f64>,
    /// Spread of review times (log-normal sigma; 0 for constant).
    #[arg(long, default_value_t = 0.6)]
    review_sigma: f64,
    /// Independent runs (fresh review times each), reported as means with 95% confidence intervals.
    #[arg(long, default_value_t = 1)]
    replicates: u32,
    /// Find the smallest team whose P(wait > SLA) is at most --target-sla-breach (mean over the replicates).
    #[arg(long)]
    find_reviewers: bool,
    /// With --find-reviewers: the largest acceptable share of escalations waiting past their SLA.
    #[arg(long, default_value_t = 0.05)]
    target_sla_breach: f64,
    /// Working hours in UTC, e.g. `8-18` (default: around the clock).
    #[arg(long, value_parser = parse_hours)]
    working_hours: Option<(u32, u32)>,
    /// Seed for review times.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write an SVG of the queue length over time.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

fn parse_hours(s: &str) -> Result<(u32, u32), String> {
    let (a, b) = s.split_once('-').ok_or("expected START-END, e.g. 8-18")?;
    let (a, b): (u32, u32) = (a.parse().map_err(|_| "bad start hour")?, b.parse().map_err(|_| "bad end hour")?);
    if a >= b || b > 24 {
        return Err("hours must satisfy 0 ≤ START < END ≤ 24".into());
    }
    Ok((a, b))
}

fn mins(s: f64) -> String {
    if s.is_infinite() {
        "∞".into()
    } else if s < 120.0 {
        format!("{s:.0}s")
    } else {
        format!("{:.1}m", s / 60.0)
    }
}

/// Run `arbiter simulate`.
pub fn run(args: SimulateArgs) -> Result<ExitCode> {
    if args.reviewers == 0 {
        bail!("--reviewers must be at least 1");
    }
    let policy = crate::policy::load(&args.policy)?;
    let mut arrivals = Vec::new();
    history::replay(&args.history, |r, at| {
        let ev = policy.evaluate(&r.env());
        if ev.verdict == Verdict::Escalate {
            // the queue's order and every tier: severity, confidence, the tiers' SLAs
            arrivals.push(match &ev.escalation {
                Some(e) => Arrival {
                    at_ms: at.0,
                    sla_ms: e.sla.as_millis(),
                    tiers_ms: e.tiers.iter().map(|t| t.sla.as_millis()).collect(),
                    severity: e.severity,
                    confidence: r.confidence,
                },
                None => Arrival { confidence: r.confidence, ..Arrival::simple(at.0, 30 * 60_000) },
            });
        }
    })?;
    if arrivals.is_empty() {
        bail!("the policy escalates nothing in this history; there is no load to simulate");
    }
    let service = service(&args)?;
    let opts = SimOptions { reviewers: args.reviewers, service, working_hours: args.working_hours, seed: args.seed };
    if args.find_reviewers {
        return find(&args, &arrivals, &opts);
    }
    let (rep, runs) = replicate(&arrivals, &opts, args.replicates.max(1));
    let r = runs.into_iter().next().expect("at least one run");
    if let Some(p) = &args.plot {
        let chart = Chart {
            title: format!("Queue length, {} reviewers ({} escalations)", args.reviewers, r.escalations),
            x_label: "hours".into(),
            y_label: "escalations waiting".into(),
            series: vec![Series { name: "waiting".into(), points: r.queue.clone(), color: "#0a6ebd", dashed: false }],
            markers: vec![],
            hline: None,
            ..Default::default()
        };
        std::fs::write(p, chart.svg()).with_context(|| format!("cannot write {}", p.display()))?;
    }
    if args.json {
        let mut v = serde_json::to_value(&r)?;
        v["replicated"] = serde_json::to_value(&rep)?;
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{} escalations over {:.1} hours, {} reviewers{}",
        r.escalations,
        r.hours,
        args.reviewers,
        args.working_hours
            .map_or(" around the clock".to_string(), |(a, b)| format!(" working {a:02}:00–{b:02}:00 UTC"))
    );
    println!(
        "escalations per hour: median {:.0}, p95 {:.0}, peak {:.0}",
        r.per_hour_median, r.per_hour_p95, r.per_hour_peak
    );
    println!("queue wait: mean {}, p50 {}, p95 {}", mins(r.wait_mean_s), mins(r.wait_p50_s), mins(r.wait_p95_s));
    println!(
        "P(wait > 0) {:.1}%, P(wait > SLA) {:.1}% ({} waited past their first tier), fallbacks {} ({:.1}%: nobody within every tier)",
        100.0 * r.p_wait,
        100.0 * r.sla_breach_share,
        r.sla_breaches,
        r.fallbacks,
        100.0 * r.fallback_share
    );
    if rep.replicates > 1 {
        let ci = |e: arbiter_tuning::simulate::Estimate, f: &dyn Fn(f64) -> String| {
            format!("{} [{}, {}]", f(e.mean), f(e.low), f(e.high))
        };
        let p = |x: f64| format!("{:.1}%", 100.0 * x);
        println!("over {} replicates (mean [95% CI]):", rep.replicates);
        println!("  mean wait {}", ci(rep.wait_mean_s, &|x| mins(x)));
        println!("  p95 wait {}", ci(rep.wait_p95_s, &|x| mins(x)));
        println!("  P(wait > 0) {}", ci(rep.p_wait, &p));
        println!("  P(wait > SLA) {}", ci(rep.p_wait_over_sla, &p));
        println!("  utilisation {}", ci(rep.utilisation, &p));
    }
    println!("reviewer utilisation: {:.0}%   largest backlog: {}", 100.0 * r.utilisation, r.max_backlog);
    let e = &r.erlang_c;
    println!(
        "Erlang C at the average rate ({:.1}/h, {:.2} reviews/h per reviewer, ρ = {:.2}): P(wait > 0) {:.2}, P(wait > SLA) {:.3}, mean wait {}",
        e.arrivals_per_hour,
        e.service_per_hour,
        e.utilisation,
        e.p_wait,
        e.p_wait_over_sla,
        mins(e.mean_wait_s)
    );
    println!(
        "(Erlang C assumes exponential review times, first come first served and nobody leaving the queue; the simulation uses the queue's order and every tier: P(wait > 0) and the mean wait compare directly, its P(wait > SLA) is lower where cases about to breach jump ahead)"
    );
    if args.working_hours.is_some() {
        println!(
            "(Erlang C assumes reviewers around the clock; with working hours the simulation is the figure to trust)"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The review-time distribution the flags describe.
fn service(args: &SimulateArgs) -> Result<Service> {
    let median = args.review_median.as_secs() as f64;
    if args.review_mean.is_some_and(|m| !(m > 0.0 && m.is_finite())) {
        bail!("--review-mean must be a positive number of seconds");
    }
    Ok(match args.service.as_str() {
        "fixed" => Service::Fixed(args.review_mean.unwrap_or(median)),
        "exponential" => Service::Exponential { mean_s: args.review_mean.unwrap_or(median / std::f64::consts::LN_2) },
        "empirical" => {
            let Some(db) = &args.history.db else {
                bail!("--service empirical draws from the review times of decided cases: it needs --db");
            };
            let times = crate::process::current_thread()?.block_on(async {
                let store = crate::process::open_store(db).await?;
                let d = store.dashboard(arbiter_core::Timestamp(0)).await?;
                store.close();
                anyhow::Ok(d.time_to_decision_ms)
            })?;
            let secs: Vec<f64> = times.iter().filter(|ms| **ms >= 0).map(|ms| *ms as f64 / 1000.0).collect();
            if secs.is_empty() {
                bail!("{} has no decided cases, so no review times to draw from", db.display());
            }
            Service::Empirical(secs)
        }
        _ => match args.review_mean {
            Some(mean) => Service::lognormal_with_mean(mean, args.review_sigma.max(0.0)),
            None => Service::LogNormal { median_s: median, sigma: args.review_sigma.max(0.0) },
        },
    })
}

/// `--find-reviewers`: the smallest team meeting the target, beside Erlang C's answer.
fn find(args: &SimulateArgs, arrivals: &[Arrival], opts: &SimOptions) -> Result<ExitCode> {
    if !(0.0..1.0).contains(&args.target_sla_breach) {
        bail!("--target-sla-breach must be a share between 0 and 1");
    }
    let replicates = args.replicates.max(1);
    let found = find_reviewers(arrivals, opts, args.target_sla_breach, replicates, 500);
    let first = arrivals.iter().map(|a| a.at_ms).min().unwrap_or(0);
    let last = arrivals.iter().map(|a| a.at_ms).max().unwrap_or(0);
    let lambda = arrivals.len() as f64 / ((last - first).max(1) as f64 / 3_600_000.0);
    let slas: Vec<f64> = arrivals.iter().map(|a| a.sla_ms as f64 / 1000.0).collect();
    let formula =
        erlang_c_reviewers(lambda, 3600.0 / opts.service.mean_s().max(1e-9), &slas, args.target_sla_breach, 500);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "target_sla_breach": args.target_sla_breach, "replicates": replicates,
                "found": found, "erlang_c_reviewers": formula,
                "erlang_c_applies": matches!(opts.service, Service::Exponential { .. }) && args.working_hours.is_none(),
            }))?
        );
        return Ok(if found.is_some() { ExitCode::SUCCESS } else { ExitCode::from(2) });
    }
    match &found {
        Some(r) => println!(
            "{} reviewers keep P(wait > SLA) at {:.2}% [{:.2}%, {:.2}%] (target {:.1}%, {} replicates); {} would not",
            r.reviewers,
            100.0 * r.p_wait_over_sla.mean,
            100.0 * r.p_wait_over_sla.low,
            100.0 * r.p_wait_over_sla.high,
            100.0 * args.target_sla_breach,
            replicates,
            r.reviewers.saturating_sub(1)
        ),
        None => println!("no team of up to 500 reviewers meets P(wait > SLA) ≤ {:.1}%", 100.0 * args.target_sla_breach),
    }
    match formula {
        Some(c) if matches!(opts.service, Service::Exponential { .. }) && args.working_hours.is_none() => {
            println!("Erlang C (M/M/c at the average rate, first come first served): {c} reviewers")
        }
        Some(c) => println!(
            "Erlang C at the average rate would say {c} (it assumes exponential review times around the clock)"
        ),
        None => println!("Erlang C: no team of up to 500 reviewers meets it"),
    }
    Ok(if found.is_some() { ExitCode::SUCCESS } else { ExitCode::from(2) })
}
