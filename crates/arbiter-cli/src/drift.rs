//! `arbiter drift status|episodes|ack`: the drift monitor's latest
//! statistics, its alarm episodes, and acknowledging one (over HTTP).

use crate::client::{Api, ApiArgs};
use crate::table::Table;
use anyhow::Result;
use arbiter_api::drift::{AcknowledgeRequest, DriftStatus, EpisodeList};
use arbiter_core::drift::RateTest;
use arbiter_core::drift::episode::Episode;
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
    /// Alarm episodes, newest first: what fired, since when, its review case, acknowledgements.
    Episodes {
        /// Only the open ones.
        #[arg(long)]
        open: bool,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Acknowledge an episode with a reason; optionally snooze it, or restart its
    /// class's reference at an intervention's activation (which ends it).
    Ack {
        /// The episode's id.
        id: String,
        /// What you know and what you did.
        #[arg(long)]
        reason: String,
        /// Keep it open, without a new case for its class and kind, this long (e.g. `12h`).
        #[arg(long)]
        snooze: Option<arbiter_core::HumanDuration>,
        /// The intervention's activation (RFC 3339, or `now`): the class's reference restarts there.
        #[arg(long)]
        restart_at: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn episode_row(e: &Episode) -> Vec<String> {
    vec![
        e.id.clone(),
        e.action.clone(),
        format!("{} {}", e.kind.as_str(), e.direction.as_str()),
        e.started_at.to_string(),
        e.ended_at.map_or("open".into(), |t| t.to_string()),
        format!("{:.1}", e.peak_statistic),
        e.case_id.clone().unwrap_or_default(),
        e.acknowledgements.len().to_string(),
    ]
}

fn episodes_table(episodes: &[Episode]) {
    let mut t = Table::new(&["EPISODE", "ACTION", "WHAT", "STARTED", "ENDED", "PEAK", "CASE", "ACKS"]).right(&[5, 7]);
    for e in episodes {
        t.row(episode_row(e));
    }
    t.print();
}

/// `12.0% → 31.5%`: the reference rate, then the recent one.
fn rate(t: &RateTest) -> String {
    format!("{:.1}% → {:.1}%", t.reference_rate * 100.0, t.rate * 100.0)
}

/// Run a drift subcommand.
pub fn run(cmd: DriftCommand, api: &ApiArgs) -> Result<ExitCode> {
    let api = Api::new(api)?;
    let json = match cmd {
        DriftCommand::Status { json } => json,
        DriftCommand::Episodes { open, limit, json } => {
            let list: EpisodeList = api.get_as(&format!("/v1/drift/episodes?open={open}&limit={limit}"))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.episodes.is_empty() {
                println!("no {}drift episodes", if open { "open " } else { "" });
            } else {
                episodes_table(&list.episodes);
            }
            return Ok(ExitCode::SUCCESS);
        }
        DriftCommand::Ack { id, reason, snooze, restart_at, json } => {
            let restart_at = match restart_at.as_deref() {
                None => None,
                Some("now") => Some(arbiter_core::Clock::now(&arbiter_core::SystemClock)),
                Some(t) => Some(t.parse().map_err(|e| anyhow::anyhow!("--restart-at: {e} (RFC 3339, or `now`)"))?),
            };
            let e: Episode = api.post_as(
                &format!("/v1/drift/episodes/{id}/acknowledge"),
                &AcknowledgeRequest { reason, snooze, restart_at },
            )?;
            if json {
                println!("{}", serde_json::to_string_pretty(&e)?);
            } else {
                match (&e.ended_at, &e.snoozed_until) {
                    (Some(_), _) => println!("episode {} ended: {}", e.id, e.end_reason.as_deref().unwrap_or("")),
                    (None, Some(until)) => println!("episode {} acknowledged, snoozed until {until}", e.id),
                    (None, None) => println!("episode {} acknowledged", e.id),
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
    };
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
        println!("ALARM {} {} {}: {}", a.action, a.kind.as_str(), a.direction.as_str(), a.summary);
    }
    if !s.episodes.is_empty() {
        println!("open episodes:");
        episodes_table(&s.episodes);
    }
    Ok(ExitCode::SUCCESS)
}
