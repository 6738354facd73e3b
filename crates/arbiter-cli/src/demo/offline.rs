//! `arbiter demo generate`: a deterministic, labelled synthetic history.

use crate::progress::Progress;
use anyhow::{Context, Result, bail};
use arbiter_core::Timestamp;
use arbiter_core::drift;
use arbiter_tuning::soc;
use arbiter_tuning::{history, synthetic};
use clap::Subcommand;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Demo subcommands.
#[derive(Debug, Subcommand)]
pub enum DemoCommand {
    /// Measure drift detection on the simulated SOC over many seeds: delay after
    /// injected over-isolation, and false alarms per week without drift. With
    /// --audit: measure audit sampling instead (the bias of escalation labels,
    /// and the coverage of the audit-weighted bound).
    Evaluate {
        /// Number of seeds.
        #[arg(long, default_value_t = 20)]
        seeds: u64,
        /// Alerts per hour.
        #[arg(long, default_value_t = 400.0)]
        rate: f64,
        /// Evaluate audit sampling: per seed a simulated week, 2% of the allowed decisions
        /// drawn for audit, the auto-allowed error rate estimated three ways.
        #[arg(long)]
        audit: bool,
        /// With --audit: the share of allowed decisions drawn.
        #[arg(long, default_value_t = 0.02, requires = "audit")]
        audit_sample: f64,
        /// Evaluate the drift monitor on the scenario kinds of production traffic instead: seasonality,
        /// bursts, a ramp, a low-volume confidence slide, a mid-size error shift with late labels.
        #[arg(long, conflicts_with = "audit")]
        scenarios: bool,
        /// With --scenarios: days of the same hour the seasonal baseline looks back over
        /// (0: always the reference window before the recent one, as before drift v2).
        #[arg(long, default_value_t = 7, requires = "scenarios")]
        seasonal_days: u32,
        /// With --scenarios: also write every scenario's streams (CSV per seed) to this
        /// directory, for the side-by-side run of another detector.
        #[arg(long, requires = "scenarios")]
        export: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write a labelled history (CSV or JSON Lines, the format `tune` reads) from a seed.
    Generate {
        /// Number of decisions.
        #[arg(long, default_value_t = 100_000)]
        decisions: usize,
        /// Number of action classes.
        #[arg(long, default_value_t = 20)]
        classes: usize,
        /// Random seed; the same seed gives the same file.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Output file: `.csv`, `.jsonl` or `.parquet`.
        #[arg(long)]
        out: PathBuf,
        /// Generate the simulated SOC agent's decisions instead (JSON Lines then carry args and signals).
        #[arg(long)]
        soc: bool,
    },
}

const HOUR: i64 = 3_600_000;

fn evaluate(seeds: u64, rate: f64, as_json: bool) -> Result<ExitCode> {
    let policy = arbiter_policy::Policy::parse(arbiter_tuning::soc::POLICY).map_err(|e| anyhow::anyhow!("{e}"))?;
    let lesson = arbiter_policy::Policy::parse(&super::lesson::lesson_policy_source()?)
        .map_err(|e| anyhow::anyhow!("the lesson's policy does not compile: {e}"))?;
    let mut reductions = Vec::new();
    let cfg = drift::DriftConfig::default();
    let warm = cfg.window_ms + cfg.reference_ms;
    let step = 15 * 60_000;
    let drift_at = warm + 2 * HOUR;
    let mut delays = Vec::new();
    let mut missed = 0;
    let mut false_alarms = 0usize;
    let mut rows = Vec::new();
    for seed in 1..=seeds {
        // a day with over-isolation from `drift_at`
        let day = soc::Soc::run(
            soc::SocConfig {
                seed,
                alerts_per_hour: rate,
                drift: soc::DriftMode::OverIsolation,
                drift_at_ms: drift_at,
                ..Default::default()
            },
            drift_at + 8 * HOUR,
        );
        let pts = arbiter_tuning::scenarios::timed_points(&day, &policy, 0);
        let alarms = drift::scan(&pts, warm, drift_at + 8 * HOUR, step, &cfg);
        let early = alarms.iter().filter(|(t, _)| *t < drift_at).count();
        let first = alarms.iter().find(|(t, _)| *t >= drift_at);
        let delay = first.map(|(t, _)| (t - drift_at) as f64 / HOUR as f64);
        match delay {
            Some(d) => delays.push(d),
            None => missed += 1,
        }
        // a week without drift
        let week = soc::Soc::run(
            soc::SocConfig { seed: 1000 + seed, alerts_per_hour: rate, ..Default::default() },
            warm + 7 * 24 * HOUR,
        );
        let wpts = arbiter_tuning::scenarios::timed_points(&week, &policy, 0);
        let fa = drift::scan(&wpts, warm, warm + 7 * 24 * HOUR, step, &cfg);
        false_alarms += fa.len() + early;
        // the loop closed: a drifted day under the old policy and under the lesson's version
        let drifted = soc::Soc::run(
            soc::SocConfig {
                seed: 2000 + seed,
                alerts_per_hour: rate,
                drift: soc::DriftMode::OverIsolation,
                drift_at_ms: 0,
                ..Default::default()
            },
            24 * HOUR,
        );
        let (old, new) = (super::lesson::day_under(&policy, &drifted), super::lesson::day_under(&lesson, &drifted));
        let reduction = 1.0 - new.harmful_isolations as f64 / old.harmful_isolations.max(1) as f64;
        reductions.push(reduction);
        rows.push(serde_json::json!({
            "seed": seed,
            "detection_delay_hours": delay,
            "first_alarm": first.map(|(_, a)| format!("{} {}", a.action, a.kind.as_str())),
            "false_alarms_before_drift": early,
            "false_alarms_in_clean_week": fa.len(),
            "false_alarm_examples": fa.iter().take(3).map(|(t, a)| format!("{:.1}h: {}", (t - warm) as f64 / HOUR as f64, a.summary)).collect::<Vec<_>>(),
            "harmful_isolations_unreviewed": {"old_policy": old.harmful_isolations, "with_lesson": new.harmful_isolations, "reduction": reduction},
            "escalation_rate": {"old_policy": old.escalated as f64 / old.proposals.max(1) as f64, "with_lesson": new.escalated as f64 / new.proposals.max(1) as f64},
        }));
    }
    delays.sort_by(f64::total_cmp);
    let median = arbiter_core::stats::quantile_sorted(&delays, 0.5);
    let worst = delays.last().copied().unwrap_or(f64::NAN);
    let per_week = false_alarms as f64 / seeds as f64;
    reductions.sort_by(f64::total_cmp);
    let (r_min, r_med, r_max) = (
        reductions.first().copied().unwrap_or(f64::NAN),
        arbiter_core::stats::quantile_sorted(&reductions, 0.5),
        reductions.last().copied().unwrap_or(f64::NAN),
    );
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
            "seeds": seeds, "alerts_per_hour": rate, "config": cfg, "median_delay_hours": median, "max_delay_hours": worst,
            "missed": missed, "false_alarms_per_week": per_week,
            "recurrence_reduction": {"min": r_min, "median": r_med, "max": r_max, "target_every_seed": 0.5, "met": r_min >= 0.5},
            "runs": rows}))?
        );
    } else {
        for r in &rows {
            let h = &r["harmful_isolations_unreviewed"];
            println!(
                "seed {:>3}: detected after {:>5} ({}), false alarms: {} before drift, {} in a clean week; \
                 wrong isolations run unreviewed on a drifted day: {} -> {} with the lesson (-{:.0}%)",
                r["seed"],
                r["detection_delay_hours"].as_f64().map_or("never".into(), |d| format!("{d:.2}h")),
                r["first_alarm"].as_str().unwrap_or("-"),
                r["false_alarms_before_drift"],
                r["false_alarms_in_clean_week"],
                h["old_policy"],
                h["with_lesson"],
                100.0 * h["reduction"].as_f64().unwrap_or(0.0)
            );
        }
        println!(
            "\n{seeds} seeds at {rate} alerts/hour: over-isolation detected in {} of {seeds} (median {median:.2} h, worst {worst:.2} h after it started); {per_week:.2} false alarms per simulated week",
            seeds as usize - missed
        );
        println!(
            "the lesson's policy change cuts wrong isolations that run unreviewed by {:.0}% (median; {:.0}% to {:.0}% across seeds; target: at least 50% on every seed: {})",
            100.0 * r_med,
            100.0 * r_min,
            100.0 * r_max,
            if r_min >= 0.5 { "met" } else { "NOT met" }
        );
    }
    Ok(if reductions.first().is_some_and(|r| *r >= 0.5) { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Run a demo subcommand.
pub fn run(cmd: DemoCommand) -> Result<ExitCode> {
    match cmd {
        DemoCommand::Evaluate { seeds, rate, json, audit: true, audit_sample, .. } => {
            if !(audit_sample > 0.0 && audit_sample <= 1.0) {
                bail!("--audit-sample must be in (0, 1]");
            }
            let policy =
                arbiter_policy::Policy::parse(arbiter_tuning::soc::POLICY).map_err(|e| anyhow::anyhow!("{e}"))?;
            let setup = super::audit::AuditSetup { seeds, rate, share: audit_sample, ..Default::default() };
            let spin = Progress::spinner(&format!("simulating {seeds} SOC weeks"));
            let report = super::audit::evaluate(setup, &policy)?;
            drop(spin);
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                super::audit::print(&report, &setup);
            }
            Ok(if report.coverage >= 1.0 - report.delta { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        DemoCommand::Evaluate { seeds, rate, json, scenarios: true, seasonal_days, export, .. } => {
            let policy =
                arbiter_policy::Policy::parse(arbiter_tuning::soc::POLICY).map_err(|e| anyhow::anyhow!("{e}"))?;
            if let Some(dir) = &export {
                let _spin = Progress::spinner(&format!("writing the scenarios' streams to {}", dir.display()));
                arbiter_tuning::scenarios::export(dir, seeds, rate, &policy)?;
            }
            let spin = Progress::spinner(&format!("simulating 5 scenarios × {seeds} seeds"));
            let cfg = drift::DriftConfig { seasonal_days, ..Default::default() };
            let results = arbiter_tuning::scenarios::evaluate(seeds, rate, &policy, &cfg);
            drop(spin);
            if json {
                println!("{}", serde_json::to_string_pretty(&results)?);
            } else {
                arbiter_tuning::scenarios::print(&results, rate);
            }
            Ok(ExitCode::SUCCESS)
        }
        DemoCommand::Evaluate { seeds, rate, json, .. } => evaluate(seeds, rate, json),
        DemoCommand::Generate { decisions, seed, out, soc: true, .. } => generate_soc(decisions, seed, &out),
        DemoCommand::Generate { decisions, classes, seed, out, soc: false } => {
            if classes == 0 || classes > 10_000 {
                bail!("--classes must be between 1 and 10000");
            }
            let spin = Progress::spinner(&format!("generating {decisions} decisions"));
            let h = synthetic(decisions, classes, seed);
            drop(spin);
            if out.extension().and_then(|e| e.to_str()) == Some("parquet") {
                let _spin = Progress::spinner(&format!("writing {} (Parquet)", out.display()));
                crate::history::parquet::write(&h, &out)?;
                eprintln!(
                    "wrote {decisions} decisions over {classes} action classes (seed {seed}) to {}",
                    out.display()
                );
                return Ok(ExitCode::SUCCESS);
            }
            let bar = Progress::items(h.len() as u64, &format!("writing {}", out.display()));
            let file = std::fs::File::create(&out).with_context(|| format!("cannot create {}", out.display()))?;
            let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
            match out.extension().and_then(|e| e.to_str()) {
                Some("csv") => {
                    bar.message(&format!("writing {} (CSV)", out.display()));
                    history::write_csv(&h, &mut w)?
                }
                Some("jsonl" | "ndjson") => {
                    for i in 0..h.len() {
                        if i % 4096 == 0 {
                            bar.set(i as u64);
                        }
                        let v = serde_json::json!({
                            "timestamp": Timestamp(h.timestamp[i]).to_string(),
                            "action": h.classes[h.class[i] as usize],
                            "confidence": h.confidence[i],
                            "correct": h.correct[i],
                            "error_cost": h.error_cost[i],
                            "escalation_cost": h.escalation_cost[i],
                        });
                        serde_json::to_writer(&mut w, &v)?;
                        w.write_all(b"\n")?;
                    }
                }
                _ => bail!("{}: use a .csv, .jsonl or .parquet file name", out.display()),
            }
            w.flush()?;
            eprintln!("wrote {decisions} decisions over {classes} action classes (seed {seed}) to {}", out.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A labelled history of the simulated SOC agent (400 alerts an hour, no drift).
fn generate_soc(decisions: usize, seed: u64, out: &std::path::Path) -> Result<ExitCode> {
    let rate = 400.0;
    // enough simulated time for `decisions` proposals, then cut
    let hours = (decisions as f64 / rate * 1.1).ceil() as i64 + 1;
    let spin = Progress::spinner(&format!("simulating {decisions} SOC alerts"));
    let mut props = soc::Soc::run(soc::SocConfig { seed, alerts_per_hour: rate, ..Default::default() }, hours * HOUR);
    drop(spin);
    props.truncate(decisions);
    let start = 1_780_000_000_000i64;
    let jsonl = match out.extension().and_then(|e| e.to_str()) {
        Some("csv") => false,
        Some("jsonl" | "ndjson") => true,
        _ => bail!("{}: use a .csv or .jsonl file name", out.display()),
    };
    let file = std::fs::File::create(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    if !jsonl {
        writeln!(w, "timestamp,action,confidence,correct")?;
    }
    let bar = Progress::items(props.len() as u64, &format!("writing {}", out.display()));
    for (i, p) in props.iter().enumerate() {
        if i % 4096 == 0 {
            bar.set(i as u64);
        }
        let ts = Timestamp(start + p.offset_ms);
        if jsonl {
            let v = serde_json::json!({"id": p.alert_id, "timestamp": ts.to_string(), "action": p.action.name, "confidence": p.action.confidence,
                "correct": p.correct, "args": p.action.args, "signals": p.action.signals});
            serde_json::to_writer(&mut w, &v)?;
            w.write_all(b"\n")?;
        } else {
            writeln!(w, "{ts},{},{},{}", p.action.name, serde_json::json!(p.action.confidence), u8::from(p.correct))?;
        }
    }
    w.flush()?;
    eprintln!("wrote {} simulated SOC decisions (seed {seed}) to {}", props.len(), out.display());
    Ok(ExitCode::SUCCESS)
}
