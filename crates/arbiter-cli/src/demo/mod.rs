//! `arbiter demo`: the whole loop on a simulated SOC day. Starts the server on
//! the embedded store (with a clock that the demo moves through simulated
//! time), replays the triage agent's proposals over HTTP like any agent, lets a
//! simulated reviewer pool work the queue, posts outcome labels after a delay,
//! runs the SLA sweeper and the drift monitor, and prints a walkthrough.
//!
//! [`day`] drives the simulated time, [`reviewers`] is the reviewer pool,
//! [`report`] the walkthrough; [`offline`] holds the subcommands that need no
//! server (`generate`, `evaluate`).

mod audit;
mod day;
mod lesson;
mod offline;
mod projects;
mod report;
mod reviewers;
mod team;
mod tuning;

pub use offline::{DemoCommand, run as run_command};

use crate::embedded::Embedded;
use anyhow::{Context, Result};
use arbiter_api::keys::CreateKey;
use arbiter_core::rate::RateLimit;
use arbiter_core::{Clock, ManualClock, Role, Timestamp};
use arbiter_server::Config;
use arbiter_store::SqliteStore;
use arbiter_tuning::soc::{DriftMode, Soc, SocConfig};
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;

/// Which drift to inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DriftArg {
    /// The agent starts isolating far more hosts, mostly wrongly.
    OverIsolation,
    /// The agent's confidence slides down.
    ConfidenceSlide,
    /// No drift.
    None,
}

impl From<DriftArg> for DriftMode {
    fn from(d: DriftArg) -> DriftMode {
        match d {
            DriftArg::OverIsolation => DriftMode::OverIsolation,
            DriftArg::ConfidenceSlide => DriftMode::ConfidenceSlide,
            DriftArg::None => DriftMode::None,
        }
    }
}

/// Options of `arbiter demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where the demo keeps its store (replaced on every run).
    #[arg(long, default_value = "./arbiter-demo")]
    data_dir: PathBuf,
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// Random seed of the simulated SOC.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Simulated hours to replay.
    #[arg(long, default_value_t = 24)]
    hours: i64,
    /// Hour at which the drift starts.
    #[arg(long, default_value_t = 16)]
    drift_at: i64,
    /// The drift to inject.
    #[arg(long, value_enum, default_value = "over-isolation")]
    drift: DriftArg,
    /// Alerts per hour.
    #[arg(long, default_value_t = 400.0)]
    rate: f64,
    /// Analysts in the simulated reviewer pool.
    #[arg(long, default_value_t = 4)]
    analysts: usize,
    /// Stop after the walkthrough instead of serving for exploration.
    #[arg(long)]
    exit: bool,
    /// Also run a second team on the same server in a project of its own (support refunds), and show
    /// both teams side by side: their own policy, queue and audit chain, and what each cannot see.
    #[arg(long)]
    projects: bool,
}

/// A moment of the simulation, `ms` after it began at a UTC midnight: the
/// simulated clock's UTC time, `16:00` on the first day, `day 2 08:00` after.
fn hhmm(ms: i64) -> String {
    let (day, ms) = (ms / DAY, ms % DAY);
    let time = format!("{:02}:{:02}", ms / HOUR, (ms % HOUR) / MIN);
    if day == 0 { time } else { format!("day {} {time}", day + 1) }
}

/// Where the simulation starts: a UTC midnight, early enough that every
/// simulated day has ended by `now` (so nothing is stamped in the future),
/// and the `[16:00]` marks are the simulated clock's UTC time.
fn simulation_start(now: Timestamp, span_ms: i64) -> Timestamp {
    Timestamp((now.0 - span_ms).div_euclid(DAY) * DAY)
}

/// Run the demo.
pub fn run(args: DemoArgs) -> Result<ExitCode> {
    crate::process::init_logging_quiet();
    std::fs::create_dir_all(&args.data_dir).with_context(|| format!("cannot create {}", args.data_dir.display()))?;
    let db = args.data_dir.join("arbiter.db");
    for suffix in ["", "-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{suffix}", db.display()));
        if p.exists() {
            std::fs::remove_file(&p).with_context(|| format!("cannot replace the old demo store {}", p.display()))?;
        }
    }
    crate::process::runtime()?.block_on(demo(args, db))
}

async fn demo(args: DemoArgs, db: PathBuf) -> Result<ExitCode> {
    let wall = Instant::now();
    let store = Arc::new(SqliteStore::open(&db)?);
    // Day one, and (once a drift review is closed) day two, both end now.
    let days = if args.drift == DriftArg::None { 1 } else { 2 };
    let start = simulation_start(arbiter_core::SystemClock.now(), days * args.hours * HOUR);
    let clock = Arc::new(ManualClock::new(start));
    let listener = match tokio::net::TcpListener::bind(&args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("note: cannot listen on {} ({e}); using a free port instead", args.listen);
            tokio::net::TcpListener::bind("127.0.0.1:0").await?
        }
    };
    // The demo runs the drift monitor itself, at simulated quarter hours.
    let config = Config { drift_interval: Duration::ZERO, escalation_budget: tuning::BUDGET, ..Config::default() };
    let server = Embedded::start(store, config, clock.clone(), listener).await?;
    let agent = server
        .admin
        .create_key(&CreateKey {
            name: "soc-triage-agent".into(),
            role: Role::Agent,
            tags: Default::default(),
            expires_in: None,
            // The simulated agent replays a day in seconds: no rate limit on its key.
            rate_limit: Some(RateLimit::Unlimited),
            same_principal: false,
        })
        .await?;
    let agent = server.admin.as_key(agent.key);
    let mut pool = reviewers::Pool::hire(&server.admin, args.analysts, args.seed).await?;
    let drift: DriftMode = args.drift.into();
    let drift_at = args.drift_at * HOUR;
    let total = args.hours * HOUR;
    let proposals = Soc::run(
        SocConfig { seed: args.seed, alerts_per_hour: args.rate, drift, drift_at_ms: drift_at, ..Default::default() },
        total,
    );
    report::intro(&report::Intro {
        args: &args,
        url: server.url(),
        db: &db,
        triggers: server.state.policy().map_or(0, |p| p.trigger_count()),
        start,
        admin_key: server.admin.key(),
        analyst_key: pool.analyst_key(),
        lead_key: pool.lead_key(),
        alerts: proposals.len(),
        drift,
        drift_at,
    });
    let proposals_len = proposals.len();
    let day = day::Day { start, begins: 0, total, drift_at, seed: args.seed };
    let summary = day.replay(&server, &clock, &agent, &proposals, &mut pool).await?;
    let sla = report::sla_counts(server.store.as_ref()).await?;
    report::walkthrough(&report::Walkthrough {
        args: &args,
        elapsed: wall.elapsed(),
        drift,
        drift_at,
        summary: &summary,
        pool: pool.tally(),
        sla,
    });
    let caught = summary.alarms.iter().any(|a| a.at >= drift_at) || drift == DriftMode::None;
    let mut code = if caught { ExitCode::SUCCESS } else { ExitCode::FAILURE };
    // The data scientist's step: thresholds for the reviewers' budget, from the hours before the drift.
    let tuned = if drift != DriftMode::None && args.drift_at > 0 {
        let t =
            tuning::before(&server, arbiter_tuning::soc::POLICY, Timestamp(start.0 + drift_at), &args.data_dir).await?;
        tuning::report(&t, args.drift_at as f64);
        Some(t)
    } else {
        None
    };
    let mut lesson = None;
    let mut engineer_key = None;
    if let (Some(review), true) = (summary.reviews.first(), drift != DriftMode::None) {
        println!("\nClosing the loop: the review team works {review}.");
        let closed = team::close_the_loop(&server, review, &summary).await?;
        report::loop_closed(&closed);
        engineer_key = Some(closed.engineer_key.clone());
        // Day two: the agent still drifts (its prompt fix is rolling out); the policy change is live.
        let proposals = Soc::run(
            SocConfig { seed: args.seed + 1, alerts_per_hour: args.rate, drift, drift_at_ms: 0, ..Default::default() },
            total,
        );
        println!("\nDay two: {} alerts, the agent still over-isolating, the lesson's policy live.", proposals.len());
        let second = day::Day { start, begins: total, total, drift_at: total, seed: args.seed + 1 };
        let day2 = second.replay(&server, &clock, &agent, &proposals, &mut pool).await?;
        let view: arbiter_api::learning::LessonView =
            server.admin.get(&format!("/v1/lessons/{}", closed.lesson.id)).await?;
        let stopped = report::day_two(&args, &summary, &day2, &view);
        if !stopped {
            code = ExitCode::FAILURE;
        }
        lesson = Some(closed.lesson.id);
    }
    let second = if args.projects {
        let analyst = server.admin.as_key(pool.analyst_key());
        Some(projects::run(&server.admin, &analyst, args.seed, proposals_len).await?)
    } else {
        None
    };
    if let Some(t) = &second {
        println!("\n  support team keys: lead (sam: support_lead) {}  agent {}", t.lead_key, t.agent_key);
    }
    report::look_closer(&report::LookCloser {
        url: server.url(),
        running: !args.exit,
        db: &db,
        keys: &[
            ("admin", "admin", server.admin.key()),
            ("analyst", "ana: soc_analyst", pool.analyst_key()),
            ("lead", "lee: soc_lead, network_team", pool.lead_key()),
            ("engineer", "eve: engineering", engineer_key.as_deref().unwrap_or("")),
        ],
        review: summary.reviews.first(),
        lesson: lesson.as_deref(),
        tuned: tuned.as_ref(),
    });
    if !args.exit {
        let end = clock.now();
        println!(
            "\nThe server keeps running for exploration (Ctrl-C to stop). It keeps the simulated clock, which now runs at \
             normal speed from {} UTC: SLA countdowns tick in real minutes and the queue does not drain at once.",
            tuning::rfc3339(end).replace('T', " ").trim_end_matches('Z')
        );
        let follower = {
            let clock = clock.clone();
            let from = std::time::Instant::now();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    clock.set(Timestamp(end.0 + from.elapsed().as_millis() as i64));
                }
            })
        };
        let _ = tokio::signal::ctrl_c().await;
        follower.abort();
    }
    server.stop().await?;
    Ok(code)
}
