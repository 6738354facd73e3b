//! `arbiter simulate`: replay the history's escalations through a reviewer pool.

use crate::history::{self, HistoryArgs};
use anyhow::{Context, Result, bail};
use arbiter_core::HumanDuration;
use arbiter_core::Verdict;
use arbiter_core::chart::{Chart, Series};
use arbiter_core::simulate::{Arrival, SimOptions, simulate};
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
    /// Median time to review one case.
    #[arg(long, default_value = "4m")]
    review_median: HumanDuration,
    /// Spread of review times (log-normal sigma; 0 for constant).
    #[arg(long, default_value_t = 0.6)]
    review_sigma: f64,
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
            let sla = ev.escalation.map_or(30 * 60_000, |e| e.sla.as_millis());
            arrivals.push(Arrival { at_ms: at.0, sla_ms: sla });
        }
    })?;
    if arrivals.is_empty() {
        bail!("the policy escalates nothing in this history; there is no load to simulate");
    }
    let opts = SimOptions {
        reviewers: args.reviewers,
        review_median_s: args.review_median.as_secs() as f64,
        review_sigma: args.review_sigma.max(0.0),
        working_hours: args.working_hours,
        seed: args.seed,
    };
    let r = simulate(&arrivals, &opts);
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
        println!("{}", serde_json::to_string_pretty(&r)?);
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
    println!("SLA breaches: {} ({:.1}%)", r.sla_breaches, 100.0 * r.sla_breach_share);
    println!("reviewer utilisation: {:.0}%   largest backlog: {}", 100.0 * r.utilisation, r.max_backlog);
    let e = &r.erlang_c;
    println!(
        "Erlang C at the average rate ({:.1}/h, {:.1} reviews/h per reviewer, ρ = {:.2}): P(wait) {:.2}, mean wait {}",
        e.arrivals_per_hour,
        e.service_per_hour,
        e.utilisation,
        e.p_wait,
        mins(e.mean_wait_s)
    );
    if args.working_hours.is_some() {
        println!(
            "(Erlang C assumes reviewers around the clock; with working hours the simulation is the figure to trust)"
        );
    }
    Ok(ExitCode::SUCCESS)
}
