//! `arbiter demo generate`: a deterministic, labelled synthetic history.

use anyhow::{Context, Result, bail};
use arbiter_core::Timestamp;
use arbiter_core::tuning::{history, synthetic};
use clap::Subcommand;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Demo subcommands.
#[derive(Debug, Subcommand)]
pub enum DemoCommand {
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
        /// Output file: `.csv` or `.jsonl`.
        #[arg(long)]
        out: PathBuf,
    },
}

/// Run a demo subcommand.
pub fn run(cmd: DemoCommand) -> Result<ExitCode> {
    match cmd {
        DemoCommand::Generate {
            decisions,
            classes,
            seed,
            out,
        } => {
            if classes == 0 || classes > 10_000 {
                bail!("--classes must be between 1 and 10000");
            }
            let h = synthetic(decisions, classes, seed);
            let file = std::fs::File::create(&out)
                .with_context(|| format!("cannot create {}", out.display()))?;
            let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
            match out.extension().and_then(|e| e.to_str()) {
                Some("csv") => history::write_csv(&h, &mut w)?,
                Some("jsonl" | "ndjson") => {
                    for i in 0..h.len() {
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
                _ => bail!("{}: use a .csv or .jsonl file name", out.display()),
            }
            w.flush()?;
            eprintln!(
                "wrote {decisions} decisions over {classes} action classes (seed {seed}) to {}",
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
