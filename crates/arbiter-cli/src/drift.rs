//! `arbiter drift status`: the drift monitor's latest statistics (over HTTP).

use crate::client::{Api, ApiArgs};
use anyhow::Result;
use clap::Subcommand;
use serde_json::Value;
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

fn rate(v: &Value) -> String {
    let r = |k: &str| v[k].as_f64().unwrap_or(0.0) * 100.0;
    format!("{:>5.1}% → {:>5.1}%", r("reference_rate"), r("rate"))
}

/// Run a drift subcommand.
pub fn run(cmd: DriftCommand, api: &ApiArgs) -> Result<ExitCode> {
    let api = Api::new(api)?;
    let DriftCommand::Status { json } = cmd;
    let s = api.get("/v1/drift")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "evaluated at {}; window {} – {} ({} decisions) against {} – {} ({} decisions)",
        s["evaluated_at"].as_str().unwrap_or("?"),
        s["window"][0].as_str().unwrap_or("?"),
        s["window"][1].as_str().unwrap_or("?"),
        s["report"]["decisions"],
        s["reference"][0].as_str().unwrap_or("?"),
        s["reference"][1].as_str().unwrap_or("?"),
        s["report"]["reference_decisions"]
    );
    println!("{:<18} {:>17} {:>17} {:>17} {:>6} {:>6}", "ACTION", "SHARE", "ESCALATED", "WRONG", "PSI", "KS D");
    for c in s["report"]["classes"].as_array().into_iter().flatten() {
        println!(
            "{:<18} {:>17} {:>17} {:>17} {:>6} {:>6}",
            c["action"].as_str().unwrap_or(""),
            rate(&c["share"]),
            rate(&c["escalation_rate"]),
            rate(&c["error_rate"]),
            c["psi"].as_f64().map_or("-".into(), |p| format!("{p:.2}")),
            c["ks"][0].as_f64().map_or("-".into(), |d| format!("{d:.2}"))
        );
    }
    let alarms = s["report"]["alarms"].as_array().cloned().unwrap_or_default();
    if alarms.is_empty() {
        println!("no alarms");
    }
    for a in alarms {
        println!(
            "ALARM {} {}: {}",
            a["action"].as_str().unwrap_or(""),
            a["kind"].as_str().unwrap_or(""),
            a["summary"].as_str().unwrap_or("")
        );
    }
    Ok(ExitCode::SUCCESS)
}
