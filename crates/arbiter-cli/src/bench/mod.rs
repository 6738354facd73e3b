//! `arbiter bench decide`: a closed-loop load generator for `POST /v1/decisions`.
//!
//! Without `--url` it starts its own `arbiter serve` child on a fresh store in
//! a temporary directory (durable SQLite, the SOC policy), so the figure is
//! the one a user gets from a default install on the same machine.

mod search;
mod traces;

use crate::client::Client;
use crate::embedded::Embedded;
use crate::table::Table;
use anyhow::{Context, Result, bail};
use arbiter_api::cases::{CaseDecisionRequest, ReviewerChoice};
use arbiter_api::decisions::DecisionRequest;
use arbiter_api::keys::CreateKey;
use arbiter_api::reviews::OpenReview;
use arbiter_core::rate::RateLimit;
use arbiter_core::stats::quantile_sorted;
use arbiter_core::{HumanDuration, Role, SystemClock, Timestamp, Verdict};
use arbiter_server::Config;
use arbiter_store::SqliteStore;
use arbiter_store::prelude::*;
use arbiter_tuning::soc::{Soc, SocConfig};
use clap::{Args, Subcommand};
use futures_util::future::join_all;
use serde_json::json;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

/// Benchmark subcommands.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Propose SOC actions as fast as `--concurrency` agents can; print decisions/s and latency percentiles.
    Decide(DecideArgs),
    /// Time the reviewer console's pages on a store with many decisions and open cases.
    Console(ConsoleArgs),
    /// Time full-text search over many lessons and decisions, against a naive scan.
    Search(search::SearchArgs),
    /// OTLP/HTTP trace ingest: spans/s and export latency, against Arbiter or any OTLP receiver.
    Traces(traces::TracesArgs),
    /// Tuning on a history already in memory, on one thread: counting every decision into its class's
    /// grid bins, then the scan and the allocation (what a Python peer does after loading).
    Tune(TuneBenchArgs),
}

/// Options of `arbiter bench tune`.
#[derive(Debug, Args)]
pub struct TuneBenchArgs {
    /// Decisions of the synthetic history (`demo generate`'s).
    #[arg(long, default_value_t = 10_000_000)]
    decisions: usize,
    /// Action classes.
    #[arg(long, default_value_t = 100)]
    classes: usize,
    /// Seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Timed runs (the median is printed).
    #[arg(long, default_value_t = 5)]
    runs: usize,
}

fn tune_bench(a: TuneBenchArgs) -> Result<ExitCode> {
    use arbiter_tuning::{Tally, TuneOptions, synthetic, tune_curves};
    let h = synthetic(a.decisions, a.classes.max(1), a.seed);
    let opts =
        TuneOptions { max_escalation_rate: 0.10, max_auto_error: Some(0.05), delta: 0.05, ..TuneOptions::default() };
    let (mut count, mut tune) = (Vec::new(), Vec::new());
    for _ in 0..a.runs.max(1) {
        let started = std::time::Instant::now();
        let tally = Tally::of(&h, &opts, 10);
        let counted = started.elapsed();
        let (r, _) = tune_curves(tally.curves(), &opts);
        std::hint::black_box((r, tally.calibration()));
        count.push(counted.as_secs_f64());
        tune.push((started.elapsed() - counted).as_secs_f64());
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (c, t) = (median(&mut count), median(&mut tune));
    println!(
        "{} decisions, {} classes, in memory, one thread, median of {}: counting {c:.3} s, scan and allocation {t:.3} s, total {:.3} s",
        h.len(),
        h.classes.len(),
        a.runs.max(1),
        c + t
    );
    Ok(ExitCode::SUCCESS)
}

/// Options of `arbiter bench console`.
#[derive(Debug, Args)]
pub struct ConsoleArgs {
    /// Decisions to load first (the simulated SOC agent; about one in eight escalates).
    #[arg(long, default_value_t = 100_000)]
    decisions: usize,
    /// Requests per page.
    #[arg(long, default_value_t = 30)]
    requests: usize,
    /// Escalated cases the reviewer decides first, so the history pages have something to list.
    #[arg(long, default_value_t = 5_000)]
    decide: usize,
    /// Keep the loaded store in this new file (to look at its queries) instead of a temporary one.
    #[arg(long)]
    keep_db: Option<std::path::PathBuf>,
}

/// Options of `arbiter bench decide`.
#[derive(Debug, Args)]
pub struct DecideArgs {
    /// Server to load. Without it, a server is started on a temporary store.
    #[arg(long, requires = "key")]
    url: Option<String>,
    /// Agent (or admin) key for `--url`.
    #[arg(long, env = "ARBITER_KEY")]
    key: Option<String>,
    /// Concurrent connections, each one request at a time.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// How long to measure, e.g. `10s`.
    #[arg(long, default_value = "10s")]
    duration: HumanDuration,
    /// Load before measuring, not counted.
    #[arg(long, default_value = "2s")]
    warmup: HumanDuration,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    /// Without --url: start the server(s) on this store instead of a temporary SQLite file, e.g. an empty
    /// PostgreSQL database `postgres://user@host/db` (it must be empty: the first start prints the admin key).
    #[arg(long, conflicts_with = "url")]
    db: Option<String>,
    /// Without --url: start this many replicas on --db (PostgreSQL) and spread the connections over them.
    #[arg(long, default_value_t = 1, requires = "db")]
    replicas: usize,
    /// Without --url: load this many projects (the default one and `bench-2`, `bench-3`, ...; each with
    /// the SOC policy and its own agent key), the connections spread over them.
    #[arg(long, default_value_t = 1, conflicts_with = "url")]
    projects: usize,
    /// With several projects and replicas: send each project's connections to one replica (project i to
    /// replica i mod replicas), as a load balancer that routes by team would; without it, every replica
    /// gets every project's requests.
    #[arg(long)]
    affinity: bool,
}

/// Run a benchmark subcommand.
pub fn run(cmd: BenchCommand) -> Result<ExitCode> {
    match cmd {
        BenchCommand::Decide(args) => decide(args),
        BenchCommand::Console(args) => crate::process::runtime()?.block_on(console(args)),
        BenchCommand::Search(args) => search::run(args),
        BenchCommand::Traces(args) => traces::run(args),
        BenchCommand::Tune(args) => tune_bench(args),
    }
}

/// A server started for the benchmark; stopped on drop.
pub(crate) struct ChildServer {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn start_child() -> Result<(ChildServer, String, String)> {
    start_child_on(None)
}

/// Start a server on `db` (a temporary SQLite file when `None`); its URL and
/// the admin key it printed (empty when the store had keys already).
pub(crate) fn start_child_on(db: Option<&str>) -> Result<(ChildServer, String, String)> {
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let policy = dir.path().join("soc.yaml");
    std::fs::write(&policy, arbiter_tuning::soc::POLICY)?;
    let exe = std::env::current_exe().context("cannot find the arbiter binary")?;
    let store = match db {
        Some(d) => std::path::PathBuf::from(d),
        None => dir.path().join("bench.db"),
    };
    let mut child = Command::new(exe)
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(store)
        .arg("--policy")
        .arg(&policy)
        // Every escalation opens its case, however many pile up: the load is the point.
        .args(["--max-open-cases-per-agent", "0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start `arbiter serve`")?;
    let stdout = child.stdout.take().context("no stdout from the server")?;
    let mut server = ChildServer { child, _dir: dir };
    let (mut url, mut admin) = (None, None);
    let mut lines = BufReader::new(stdout).lines();
    loop {
        let Some(line) = lines.next() else {
            let status = server.child.wait()?;
            bail!("the server exited ({status}) before it was ready");
        };
        let line = line?;
        if let Some(u) = line.strip_prefix("listening on ") {
            url = Some(u.to_string());
        } else if let Some(k) = line.strip_prefix("admin key: ") {
            admin = Some(k.to_string());
        } else if line == "ready" {
            break;
        }
    }
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    let _ = &mut server;
    Ok((server, url.unwrap_or_default(), admin.unwrap_or_default()))
}

/// What one connection (and then all of them) saw after the warm-up.
#[derive(Default)]
struct Tally {
    latencies_ms: Vec<f64>,
    verdicts: BTreeMap<Verdict, u64>,
    errors: u64,
    first_error: Option<String>,
}

fn decide(args: DecideArgs) -> Result<ExitCode> {
    if args.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    if args.replicas == 0 {
        bail!("--replicas must be at least 1");
    }
    if args.projects == 0 {
        bail!("--projects must be at least 1");
    }
    if args.replicas > 1
        && args.db.as_deref().is_none_or(|d| crate::store::postgres_url(std::path::Path::new(d)).is_none())
    {
        bail!("--replicas needs --db postgres://...: replicas share a PostgreSQL database");
    }
    let (children, urls, key) = match (&args.url, &args.key) {
        (Some(u), Some(k)) => (vec![], vec![u.clone()], k.clone()),
        _ => {
            let mut children = Vec::new();
            let mut urls = Vec::new();
            let mut admin_key = String::new();
            for i in 0..args.replicas {
                let (child, url, admin) = start_child_on(args.db.as_deref())?;
                if i == 0 {
                    if admin.is_empty() {
                        bail!(
                            "--db must name an empty store: the benchmark needs the admin key its first start prints"
                        );
                    }
                    admin_key = admin;
                }
                children.push(child);
                urls.push(url);
            }
            (children, urls, admin_key)
        }
    };
    let url = urls.join(",");
    let rt = crate::process::runtime()?;
    let (tally, lock) = rt.block_on(async {
        let http = reqwest::Client::builder().pool_max_idle_per_host(args.concurrency).build()?;
        let admin = Client::new(http.clone(), &urls[0], key.clone());
        // With our own server, load it the way an agent would: with an agent key (one per project).
        let mut agent_keys = vec![key];
        if !children.is_empty() {
            agent_keys = bench_projects(&admin, args.projects).await?;
        }
        let started = Instant::now();
        let warm_until = started + Duration::from_secs(args.warmup.0);
        let end = warm_until + Duration::from_secs(args.duration.0);
        let run_id = format!("{:x}", started.elapsed().as_nanos() ^ std::process::id() as u128);
        // each connection talks to one replica, round robin (a load balancer's spread), as the agent of one project
        let mut tasks = Vec::new();
        for t in 0..args.concurrency {
            let project = t % agent_keys.len();
            let replica = if args.affinity { project % urls.len() } else { t % urls.len() };
            let (url, agent) = (&urls[replica], &agent_keys[project]);
            let (client, run_id) = (Client::new(http.clone(), url, agent.clone()), run_id.clone());
            tasks.push(tokio::spawn(async move {
                let mut tally = Tally::default();
                let mut i = t as u64;
                loop {
                    let sent = Instant::now();
                    if sent >= end {
                        break;
                    }
                    let req = DecisionRequest {
                        action: arbiter_tuning::soc::load_mix(i),
                        trace_id: Some(format!("bench-{t}")),
                        context: None,
                        event_time: None,
                    };
                    let outcome = client.propose(&req, Some(&format!("bench-{run_id}-{t}-{i}"))).await;
                    let done = Instant::now();
                    i += args.concurrency as u64;
                    if sent < warm_until {
                        continue;
                    }
                    match outcome {
                        Ok(d) => {
                            tally.latencies_ms.push((done - sent).as_secs_f64() * 1000.0);
                            *tally.verdicts.entry(d.verdict).or_default() += 1;
                        }
                        Err(e) => {
                            tally.errors += 1;
                            tally.first_error.get_or_insert(format!("{e:#}"));
                        }
                    }
                }
                tally
            }));
        }
        let mut all = Tally::default();
        for task in tasks {
            let t = task.await?;
            all.latencies_ms.extend(t.latencies_ms);
            for (v, n) in t.verdicts {
                *all.verdicts.entry(v).or_default() += n;
            }
            all.errors += t.errors;
            if all.first_error.is_none() {
                all.first_error = t.first_error;
            }
        }
        let lock = if children.is_empty() { None } else { chain_lock(&http, &urls).await };
        anyhow::Ok((all, lock))
    })?;
    drop(children);
    let mut lat = tally.latencies_ms;
    lat.sort_by(f64::total_cmp);
    let secs = args.duration.0 as f64;
    let ok = lat.len() as u64;
    let rate = ok as f64 / secs;
    let q = |p: f64| quantile_sorted(&lat, p);
    let (p50, p90, p99, max) = (q(0.5), q(0.9), q(0.99), q(1.0));
    let count = |v: Verdict| tally.verdicts.get(&v).copied().unwrap_or(0);
    let (allow, escalate, deny) = (count(Verdict::Allow), count(Verdict::Escalate), count(Verdict::Deny));
    if args.json {
        println!(
            "{}",
            json!({"url": url, "concurrency": args.concurrency, "projects": args.projects, "affinity": args.affinity, "duration_secs": secs, "decisions": ok,
                "decisions_per_sec": rate, "p50_ms": p50, "p90_ms": p90, "p99_ms": p99, "max_ms": max,
                "allow": allow, "escalate": escalate, "deny": deny, "errors": tally.errors,
                "replicas": urls.len(), "chain_lock": lock})
        );
    } else {
        println!(
            "arbiter bench decide: {} connections for {} against {url} ({} project(s))",
            args.concurrency, args.duration, args.projects
        );
        println!("decisions: {ok} (allow {allow}, escalate {escalate}, deny {deny}), errors: {}", tally.errors);
        println!("throughput: {rate:.0} decisions/s");
        println!("latency: p50 {p50:.2} ms, p90 {p90:.2} ms, p99 {p99:.2} ms, max {max:.2} ms");
        if let Some(l) = &lock {
            println!(
                "audit chain lock (all replicas, warm-up included): {} batches of {:.1} writes; per batch: waited {:.2} ms, held {:.2} ms (of which COMMIT {:.2} ms)",
                l.batches, l.jobs_per_batch, l.wait_ms_per_batch, l.held_ms_per_batch, l.commit_ms_per_batch
            );
        }
    }
    if let Some(e) = tally.first_error {
        eprintln!("first error: {e}");
    }
    Ok(if tally.errors == 0 && ok > 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// An unlimited agent key in each of `n` projects: the default one, and `bench-2` ... `bench-n`
/// (created by `admin`, the server admin, each with the SOC policy).
async fn bench_projects(admin: &Client, n: usize) -> Result<Vec<String>> {
    let mut keys = Vec::new();
    for i in 1..=n {
        let client = if i == 1 {
            admin.clone()
        } else {
            let id = format!("bench-{i}");
            admin.create_project(&arbiter_api::projects::CreateProject { id: id.clone(), name: None }).await?;
            let scoped = admin.in_project(id);
            let draft: arbiter_api::policy::PolicyView =
                scoped.post_yaml("/v1/policy/versions", arbiter_tuning::soc::POLICY.to_string()).await?;
            let _: arbiter_api::policy::PolicyView =
                scoped.post(&format!("/v1/policy/versions/{}/activate", draft.version.hash), &json!({})).await?;
            scoped
        };
        let created = client
            .create_key(&CreateKey {
                name: "bench-agent".into(),
                role: Role::Agent,
                tags: Default::default(),
                expires_in: None,
                rate_limit: Some(RateLimit::Unlimited),
                same_principal: false,
            })
            .await?;
        keys.push(created.key);
    }
    Ok(keys)
}

/// What the audit chain's lock cost during a run, from the replicas' `/metrics`.
#[derive(Debug, serde::Serialize)]
struct ChainLock {
    batches: u64,
    jobs_per_batch: f64,
    wait_ms_per_batch: f64,
    held_ms_per_batch: f64,
    commit_ms_per_batch: f64,
}

async fn chain_lock(http: &reqwest::Client, urls: &[String]) -> Option<ChainLock> {
    let (mut batches, mut jobs, mut wait, mut held, mut commit) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for u in urls {
        let text = http.get(format!("{u}/metrics")).send().await.ok()?.text().await.ok()?;
        let value = |name: &str| {
            text.lines()
                .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        batches += value("arbiter_store_write_batches");
        jobs += value("arbiter_store_write_jobs");
        wait += value("arbiter_store_chain_lock_wait_seconds");
        held += value("arbiter_store_chain_lock_held_seconds");
        commit += value("arbiter_store_commit_seconds");
    }
    (batches > 0.0).then(|| ChainLock {
        batches: batches as u64,
        jobs_per_batch: jobs / batches,
        wait_ms_per_batch: wait * 1000.0 / batches,
        held_ms_per_batch: held * 1000.0 / batches,
        commit_ms_per_batch: commit * 1000.0 / batches,
    })
}

async fn console(args: ConsoleArgs) -> Result<ExitCode> {
    let dir = tempfile::tempdir()?;
    let path = match &args.keep_db {
        Some(p) if p.exists() => bail!("{} exists: --keep-db writes a new store", p.display()),
        Some(p) => p.clone(),
        None => dir.path().join("bench.db"),
    };
    let store = Arc::new(SqliteStore::open(path)?);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    // Every escalation opens its case, however many pile up: the worst case for the queue is the point.
    // The day of history is loaded with its event times, as a replay.
    let config = Config { max_open_cases_per_agent: None, event_time_skew: None, ..Config::default() };
    let server = Embedded::start(store, config, Arc::new(SystemClock), listener).await?;
    let key = |name: &str, role: Role, tags: &[&str]| {
        let req = CreateKey {
            name: name.into(),
            role,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            expires_in: None,
            rate_limit: Some(RateLimit::Unlimited),
            same_principal: false,
        };
        let admin = server.admin.clone();
        async move { anyhow::Ok(admin.as_key(admin.create_key(&req).await?.key)) }
    };
    let agent = key("soc-triage-agent", Role::Agent, &[]).await?;
    let reviewer = key(
        "rita",
        Role::Reviewer,
        &[
            "soc_analyst",
            "soc_lead",
            "identity_team",
            "network_team",
            "incident_commander",
            "data_protection",
            "engineering",
        ],
    )
    .await?;
    // Load the store through the API, as agents would: a day's worth of timestamps.
    let loaded = Instant::now();
    let start = server.state.clock.now().0 - DAY;
    let hours = (args.decisions as f64 / 400.0 * 1.1).ceil() as i64 + 1;
    let mut props = Soc::run(SocConfig { seed: 1, ..Default::default() }, hours * HOUR);
    props.truncate(args.decisions);
    let mut case_ids = Vec::new();
    for chunk in props.chunks(256) {
        let answers = join_all(chunk.iter().map(|p| {
            let req = DecisionRequest {
                action: p.action.clone(),
                trace_id: Some(p.trace_id.clone()),
                context: None,
                event_time: Some(Timestamp(start + p.offset_ms * DAY / (hours * HOUR))),
            };
            let agent = &agent;
            async move { agent.propose(&req, None).await }
        }))
        .await;
        for d in answers {
            case_ids.extend(d?.case_id);
        }
    }
    let Some(first_case) = case_ids.first() else { bail!("no proposal escalated: nothing to show on the pages") };
    let review = reviewer
        .open_review(&OpenReview {
            title: "bench review".into(),
            description: String::new(),
            source: None,
            from_case: Some(first_case.clone()),
            decision_ids: vec![],
            trace_ids: vec![],
            reviewers: None,
            severity: None,
            evidence: None,
        })
        .await?;
    // The reviewer decides some, with rationales and failure modes, for the history and search pages.
    const RATIONALES: [&str; 4] = [
        "checked the alert evidence; the action fits",
        "backup agent on this host runs a scheduled job; benign",
        "contain at the network level only; keep the host for forensics",
        "duplicate of an alert already handled by the on-call analyst",
    ];
    let to_decide: Vec<(usize, &String)> = case_ids.iter().skip(1).take(args.decide).enumerate().collect();
    for chunk in to_decide.chunks(64) {
        let answers = join_all(chunk.iter().map(|(i, id)| {
            let reject = i % 3 == 1;
            let req = CaseDecisionRequest {
                decision: if reject { ReviewerChoice::Reject } else { ReviewerChoice::Approve },
                rationale: RATIONALES[i % RATIONALES.len()].into(),
                args: None,
                failure_modes: if reject { vec!["wrong_target".into()] } else { vec![] },
            };
            let reviewer = &reviewer;
            async move { reviewer.answer(id, &req).await }
        }))
        .await;
        for a in answers {
            a?;
        }
    }
    let open = server.store.open_case_count(None).await?;
    println!(
        "loaded {} decisions, answered {} cases, {} cases open, in {:.1}s",
        props.len(),
        to_decide.len(),
        open,
        loaded.elapsed().as_secs_f64()
    );
    // Sign in like a browser.
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    let url = server.url();
    let login = http.post(format!("{url}/login")).form(&[("key", reviewer.key()), ("next", "/queue")]).send().await?;
    let cookie = login
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|c| c.split(';').next())
        .context("no session cookie")?
        .to_string();
    let pages = [
        ("sign-in page (no store reads: the floor)", "/login".to_string()),
        ("queue (all open cases visible)", "/queue".to_string()),
        ("case", format!("/cases/{}", case_ids[case_ids.len() / 2])),
        ("review case", format!("/reviews/{}", review.id)),
        ("dashboard (24 h)", "/dashboard".to_string()),
        ("policy", "/policy".to_string()),
        ("decided cases, first page", "/cases".to_string()),
        ("decided cases, action + failure mode", "/cases?action=isolate_host&failure_mode=wrong_target".to_string()),
        ("decided cases, words in rationales", "/cases?q=forensics".to_string()),
        ("decided cases, a later page", "/cases?cursor=REPLACE".to_string()),
        ("review cases (all)", "/reviews?state=open,closed".to_string()),
        ("search", "/search?q=backup+agent".to_string()),
    ];
    let mut table = Table::new(&["PAGE", "P50 MS", "P95 MS", "BYTES"]).right(&[1, 2, 3]);
    // a cursor from the middle of the history, for a page that is not the first
    let later = {
        let path = format!("/v1/cases?kind=approval&state=decided&limit={}", (args.decide / 2).clamp(1, 1000));
        let (_, next): (Vec<serde_json::Value>, _) = reviewer.get_page(&path).await?;
        next.unwrap_or_default()
    };
    for (name, path) in pages {
        let path = path.replace("REPLACE", &later);
        let mut times = Vec::new();
        let mut size = 0;
        for _ in 0..args.requests {
            let t = Instant::now();
            let r = http.get(format!("{url}{path}")).header("cookie", &cookie).send().await?;
            let status = r.status();
            let body = r.bytes().await?;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            size = body.len();
            if !status.is_success() {
                bail!("{path} answered {status}");
            }
        }
        times.sort_by(f64::total_cmp);
        table.row(vec![
            name.to_string(),
            format!("{:.1}", quantile_sorted(&times, 0.5)),
            format!("{:.1}", quantile_sorted(&times, 0.95)),
            size.to_string(),
        ]);
    }
    table.print();
    server.stop().await?;
    Ok(ExitCode::SUCCESS)
}
