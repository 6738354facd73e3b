//! `arbiter demo`: the whole loop on a simulated SOC day. Starts the server on
//! the embedded store (with a clock that the demo moves through simulated
//! time), replays the triage agent's proposals over HTTP like any agent, lets a
//! simulated reviewer pool work the queue, posts outcome labels after a delay,
//! runs the SLA sweeper and the drift monitor, and prints a walkthrough.

use anyhow::{Context, Result};
use arbiter_core::soc::{DriftMode, Proposal, Soc, SocConfig};
use arbiter_core::{Clock, ManualClock, Timestamp};
use arbiter_server::{AppState, Config};
use arbiter_store::SqliteStore;
use clap::{Args, ValueEnum};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;

/// Which drift to inject.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DriftArg {
    /// The agent starts isolating far more hosts, mostly wrongly.
    OverIsolation,
    /// The agent's confidence slides down.
    ConfidenceSlide,
    /// No drift.
    None,
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
}

struct Reviewer {
    name: &'static str,
    key: String,
    busy_until: i64,
    working: Option<(String, i64)>, // (case id, done at)
}

#[derive(Default)]
struct Tally {
    by_verdict: BTreeMap<String, u64>,
    escalated_before: (u64, u64),
    escalated_after: (u64, u64),
    answered: u64,
    modified: u64,
    human_errors: u64,
}

fn hhmm(ms: i64) -> String {
    format!("{:02}:{:02}", ms / HOUR, (ms % HOUR) / MIN)
}

/// Run the demo.
pub fn run(args: DemoArgs) -> Result<ExitCode> {
    crate::init_logging_quiet();
    std::fs::create_dir_all(&args.data_dir).with_context(|| format!("cannot create {}", args.data_dir.display()))?;
    let db = args.data_dir.join("arbiter.db");
    for suffix in ["", "-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{suffix}", db.display()));
        if p.exists() {
            std::fs::remove_file(&p).with_context(|| format!("cannot replace the old demo store {}", p.display()))?;
        }
    }
    crate::runtime()?.block_on(demo(args, db))
}

async fn demo(args: DemoArgs, db: PathBuf) -> Result<ExitCode> {
    let wall = Instant::now();
    let store = Arc::new(SqliteStore::open(&db)?);
    let real_now = arbiter_core::SystemClock.now();
    let start = Timestamp(real_now.0 - args.hours * HOUR);
    let clock = Arc::new(ManualClock::new(start));
    let config = Config { drift_interval: Duration::ZERO, ..Config::default() };
    let state = AppState::new(store.clone(), config, clock.clone()).await?;
    let boot = arbiter_server::bootstrap(&state, Some(crate::SOC_POLICY)).await?;
    let admin = boot.admin_key.context("a fresh store prints an admin key")?;
    let listener = match tokio::net::TcpListener::bind(&args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("note: cannot listen on {} ({e}); using a free port instead", args.listen);
            tokio::net::TcpListener::bind("127.0.0.1:0").await?
        }
    };
    let url = format!("http://{}", listener.local_addr()?);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(arbiter_server::serve(listener, state.clone(), async {
        let _ = stop_rx.await;
    }));
    let http = reqwest::Client::new();
    let key = |name: &str, role: &str, tags: &[&str]| {
        let (http, url, admin) = (http.clone(), url.clone(), admin.clone());
        let mut body = json!({"name": name, "role": role, "tags": tags});
        if role == "agent" {
            // The simulated agent replays a day in seconds: no rate limit on its key.
            body["rate_limit"] = json!("unlimited");
        }
        async move {
            let v: Value = http
                .post(format!("{url}/v1/keys"))
                .bearer_auth(admin)
                .json(&body)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            anyhow::Ok(v["key"].as_str().unwrap_or_default().to_string())
        }
    };
    let agent = key("soc-triage-agent", "agent", &[]).await?;
    let mut reviewers = Vec::new();
    let pool: Vec<(&'static str, Vec<&str>)> = ["ana", "ben", "cho", "dev", "eli", "fay"]
        .iter()
        .take(args.analysts.clamp(1, 6))
        .map(|n| (*n, vec!["soc_analyst"]))
        .chain([
            ("lee", vec!["soc_lead", "network_team"]),
            ("ida", vec!["identity_team", "soc_lead"]),
            ("ivy", vec!["incident_commander", "data_protection"]),
        ])
        .collect();
    for (name, tags) in &pool {
        reviewers.push(Reviewer { name, key: key(name, "reviewer", tags).await?, busy_until: 0, working: None });
    }
    let lead_key = reviewers.iter().find(|r| r.name == "lee").map(|r| r.key.clone()).unwrap_or_default();
    let drift = match args.drift {
        DriftArg::OverIsolation => DriftMode::OverIsolation,
        DriftArg::ConfidenceSlide => DriftMode::ConfidenceSlide,
        DriftArg::None => DriftMode::None,
    };
    let drift_at = args.drift_at * HOUR;
    let total = args.hours * HOUR;
    let proposals =
        Soc::run(SocConfig { seed: args.seed, alerts_per_hour: args.rate, drift, drift_at_ms: drift_at }, total);
    println!("Arbiter demo: a simulated security operations center, {} hours, seed {}", args.hours, args.seed);
    println!("  server:     {url}   (store: {})", db.display());
    println!("  console:    {url}/   (sign in with the lead key below)");
    println!(
        "  policy:     soc-triage, {} triggers (examples/policies/soc.yaml)",
        state.policy().map_or(0, |p| p.trigger_count())
    );
    println!("  admin key:  {admin}");
    println!("  lead key:   {lead_key}   (reviewer lee: soc_lead)");
    println!(
        "  replaying {} alerts at ~{:.0}/hour; {}",
        proposals.len(),
        args.rate,
        match drift {
            DriftMode::None => "no drift injected".to_string(),
            DriftMode::OverIsolation => format!("the agent starts over-isolating hosts at {}", hhmm(drift_at)),
            DriftMode::ConfidenceSlide => format!("the agent's confidence slides from {}", hhmm(drift_at)),
        }
    );
    println!();

    let mut tally = Tally::default();
    let mut labels: VecDeque<(i64, String, bool)> = VecDeque::new();
    let mut truth: HashMap<String, (bool, Value)> = HashMap::new(); // case id -> (right action?, args)
    let mut next = 0usize;
    let mut alarms: Vec<(i64, Value)> = Vec::new();
    let mut reviews: Vec<String> = Vec::new();
    let mut rng = arbiter_core::rng::Rng::new(args.seed ^ 0xD3E0);
    let mut t = 0;
    while t < total {
        clock.set(Timestamp(start.0 + t));
        // 1. the agent proposes what arrived this minute
        let end = next + proposals[next..].partition_point(|p| p.offset_ms < t + MIN);
        let batch: &[Proposal] = &proposals[next..end];
        next = end;
        let answers = futures_util::future::join_all(batch.iter().map(|p| {
            let body = json!({"action": p.action, "trace_id": p.trace_id, "event_time": Timestamp(start.0 + p.offset_ms), "context": {"alert_id": p.alert_id}});
            let req = http.post(format!("{url}/v1/decisions")).bearer_auth(&agent).header("idempotency-key", format!("{}-{}", p.alert_id, args.seed)).json(&body);
            async move { req.send().await?.error_for_status()?.json::<Value>().await }
        }))
        .await;
        for (p, r) in batch.iter().zip(answers) {
            let d = r.context("the agent's proposal failed")?;
            let verdict = d["verdict"].as_str().unwrap_or("?").to_string();
            *tally.by_verdict.entry(verdict.clone()).or_default() += 1;
            let slot = if p.offset_ms < drift_at { &mut tally.escalated_before } else { &mut tally.escalated_after };
            slot.1 += 1;
            if verdict == "escalate" {
                slot.0 += 1;
                if let Some(c) = d["case_id"].as_str() {
                    truth.insert(c.to_string(), (p.correct, p.action["args"].clone()));
                }
            }
            labels.push_back((p.offset_ms + 30 * MIN, d["id"].as_str().unwrap_or_default().to_string(), p.correct));
        }
        // 2. outcome labels arrive 30 minutes later
        let mut due = Vec::new();
        while labels.front().is_some_and(|(at, _, _)| *at <= t) {
            due.push(labels.pop_front().expect("checked"));
        }
        futures_util::future::join_all(due.iter().map(|(_, id, ok)| {
            http.post(format!("{url}/v1/decisions/{id}/outcome"))
                .bearer_auth(&agent)
                .json(&json!({"correct": ok, "label": if *ok { "confirmed" } else { "wrong_action" }}))
                .send()
        }))
        .await;
        // 3. reviewers finish and pick up work from their queues
        for r in reviewers.iter_mut() {
            if let Some((case, done)) = r.working.clone()
                && done <= t
            {
                r.working = None;
                let (right, args) = truth.get(&case).cloned().unwrap_or((true, Value::Null));
                // a small human error rate
                let err = rng.chance(0.03);
                tally.human_errors += u64::from(err);
                let approve = right != err;
                let modify = approve && rng.chance(0.1) && args.get("host").is_some();
                let body = if modify {
                    let mut a = args.clone();
                    a["mode"] = json!("network_only");
                    json!({"decision": "modify", "rationale": "contain at the network level only; keep the host reachable for forensics", "args": a})
                } else if approve {
                    json!({"decision": "approve", "rationale": "checked the alert evidence; the action fits"})
                } else {
                    json!({"decision": "reject", "rationale": "the evidence does not support this action"})
                };
                let res =
                    http.post(format!("{url}/v1/cases/{case}/decision")).bearer_auth(&r.key).json(&body).send().await?;
                if res.status().is_success() {
                    tally.answered += 1;
                    tally.modified += u64::from(modify);
                }
            }
            if r.working.is_none() && r.busy_until <= t {
                let q: Value = http.get(format!("{url}/v1/queue")).bearer_auth(&r.key).send().await?.json().await?;
                let top = q["items"].as_array().and_then(|i| i.iter().find(|i| i["case"]["claim"].is_null()).cloned());
                if let Some(item) = top {
                    let case = item["case"]["id"].as_str().unwrap_or_default().to_string();
                    let res = http.post(format!("{url}/v1/cases/{case}/claim")).bearer_auth(&r.key).send().await?;
                    if res.status().is_success() {
                        let took = (rng.lognormal(4.0, 0.5) * MIN as f64) as i64;
                        r.working = Some((case, t + took.max(MIN)));
                        r.busy_until = t + took.max(MIN);
                    }
                }
            }
        }
        // 4. time-driven work: SLA tiers and fallbacks, the drift monitor
        arbiter_server::jobs::sweeper::sweep_once(&state).await?;
        if t % (15 * MIN) == 0 && t > 0 {
            let status = arbiter_server::jobs::drift::run_once(&state).await?;
            for a in &status.report.alarms {
                if !alarms.iter().any(|(_, x)| x["action"] == a.action && x["kind"] == a.kind.as_str()) {
                    println!("[{}] drift alarm: {}", hhmm(t), a.summary);
                    alarms.push((t, json!({"action": a.action, "kind": a.kind.as_str(), "summary": a.summary})));
                }
            }
            for id in &status.opened_reviews {
                println!("[{}] review case: {id} opened with the evidence attached", hhmm(t));
                reviews.push(id.clone());
            }
        }
        if t % (4 * HOUR) == 0 {
            println!("[{}] {} proposals so far", hhmm(t), next);
        }
        t += MIN;
    }
    clock.set(Timestamp(start.0 + total));
    arbiter_server::jobs::sweeper::sweep_once(&state).await?;

    // The walkthrough
    let n: u64 = tally.by_verdict.values().sum();
    let get = |v: &str| tally.by_verdict.get(v).copied().unwrap_or(0);
    let pct = |a: u64, b: u64| 100.0 * a as f64 / b.max(1) as f64;
    let (tiers, fallbacks) = count_sla_events(&store).await?;
    println!();
    println!("Replayed {} simulated hours in {:.1} s.", args.hours, wall.elapsed().as_secs_f64());
    println!(
        "Decisions: {n}: allowed {} ({:.1}%), escalated {} ({:.1}%), denied {} ({:.1}%)",
        get("allow"),
        pct(get("allow"), n),
        get("escalate"),
        pct(get("escalate"), n),
        get("deny"),
        pct(get("deny"), n)
    );
    println!(
        "Escalation rate against a 10% reviewer budget: {:.1}% before {}, {:.1}% after",
        pct(tally.escalated_before.0, tally.escalated_before.1),
        hhmm(drift_at),
        pct(tally.escalated_after.0, tally.escalated_after.1)
    );
    println!(
        "Reviewers answered {} cases ({} modified, {} human mistakes); {} moved to a later tier, {} fell back after their SLA",
        tally.answered, tally.modified, tally.human_errors, tiers, fallbacks
    );
    match alarms.iter().find(|(at, _)| *at >= drift_at) {
        Some((at, a)) if !matches!(drift, DriftMode::None) => println!(
            "Drift caught {:.2} h after it started: {}",
            (at - drift_at) as f64 / HOUR as f64,
            a["summary"].as_str().unwrap_or("")
        ),
        _ if matches!(drift, DriftMode::None) => {
            println!("No drift injected; {} alarm(s) raised", alarms.len())
        }
        _ => println!("The drift was NOT caught within the replay."),
    }
    if let Some(first) = reviews.first() {
        println!(
            "\nLook closer: open the reviewer console at {url}/ and sign in with the lead key above, or from a terminal:"
        );
        println!("  export ARBITER_URL={url} ARBITER_KEY={lead_key}");
        println!("  arbiter reviews show {first}          # the drift review case and its evidence");
        println!("  arbiter cases list                        # the lead's queue");
        println!("  curl -s $ARBITER_URL/v1/drift -H \"Authorization: Bearer $ARBITER_KEY\"");
        println!("  arbiter tune --db {} --max-escalation-rate 0.10 --max-auto-error 0.05", db.display());
        println!("  arbiter audit verify --db {}", db.display());
    }
    let code = if alarms.iter().any(|(at, _)| *at >= drift_at) || matches!(drift, DriftMode::None) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    };
    if args.exit {
        let _ = stop_tx.send(());
        server.await??;
        store.close();
        return Ok(code);
    }
    println!("\nThe server keeps running for exploration; Ctrl-C to stop.");
    // From here on, time is real time again.
    let follower = {
        let clock = clock.clone();
        tokio::spawn(async move {
            loop {
                clock.set(arbiter_core::SystemClock.now().max(clock.now()));
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };
    let _ = tokio::signal::ctrl_c().await;
    follower.abort();
    let _ = stop_tx.send(());
    server.await??;
    store.close();
    Ok(code)
}

async fn count_sla_events(store: &SqliteStore) -> Result<(u64, u64)> {
    use arbiter_store::Store;
    let (mut tiers, mut fallbacks, mut after) = (0, 0, 0);
    loop {
        let page = store.events(after, 10_000).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        tiers += page.iter().filter(|e| e.kind == "case.tier_escalated").count() as u64;
        fallbacks += page.iter().filter(|e| e.kind == "case.fallback_applied").count() as u64;
    }
    Ok((tiers, fallbacks))
}
