//! `arbiter drift status`: the drift monitor's latest statistics (over HTTP).

use crate::client::{Api, ApiArgs};
use crate::table::Table;
use anyhow::Result;
use arbiter_api::drift::DriftStatus;
use arbiter_core::drift::RateTest;
use clap::Subcommand;
use std::process::ExitCode;

/// Drift subcommands.
#[derive(Debug, Subcommand)]
pub enum DriftCommand {
    /// Per action class: share, escalation rate, error rate and confidence shift against the reference window, and alarms.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `12.0% → 31.5%`: the reference rate, then the recent one.
fn rate(t: &RateTest) -> String {
    format!("{:.1}% → {:.1}%", t.reference_rate * 100.0, t.rate * 100.0)
}

/// Run a drift subcommand.
pub fn run(cmd: DriftCommand, api: &ApiArgs) -> Result<ExitCode> {
    let api = Api::new(api)?;
    let DriftCommand::Status { json } = cmd;
    let s: DriftStatus = api.get_as("/v1/drift")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "evaluated at {}; window {} – {} ({} decisions) against {} – {} ({} decisions)",
        s.evaluated_at,
        s.window.0,
        s.window.1,
        s.report.decisions,
        s.reference.0,
        s.reference.1,
        s.report.reference_decisions
    );
    let mut t = Table::new(&["ACTION", "SHARE", "ESCALATED", "WRONG", "PSI", "KS D"]).right(&[1, 2, 3, 4, 5]);
    for c in &s.report.classes {
        t.row(vec![
            c.action.clone(),
            rate(&c.share),
            rate(&c.escalation_rate),
            rate(&c.error_rate),
            c.psi.map_or("-".into(), |p| format!("{p:.2}")),
            c.ks.map_or("-".into(), |(d, _)| format!("{d:.2}")),
        ]);
    }
    t.print();
    if s.report.alarms.is_empty() {
        println!("no alarms");
    }
    for a in &s.report.alarms {
        println!("ALARM {} {}: {}", a.action, a.kind.as_str(), a.summary);
    }
    Ok(ExitCode::SUCCESS)
}
