//! `arbiter bench decide`: a closed-loop load generator for `POST /v1/decisions`.
//!
//! Without `--url` it starts its own `arbiter serve` child on a fresh store in
//! a temporary directory (durable SQLite, the SOC policy), so the figure is
//! the one a user gets from a default install on the same machine.

use anyhow::{Context, Result, bail};
use arbiter_core::HumanDuration;
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// Benchmark subcommands.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Propose SOC actions as fast as `--concurrency` agents can; print decisions/s and latency percentiles.
    Decide(DecideArgs),
    /// Time the reviewer console's pages on a store with many decisions and open cases.
    Console(ConsoleArgs),
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
}

/// Run a benchmark subcommand.
pub fn run(cmd: BenchCommand) -> Result<ExitCode> {
    match cmd {
        BenchCommand::Decide(args) => decide(args),
        BenchCommand::Console(args) => crate::runtime()?.block_on(console(args)),
    }
}

/// A server started for the benchmark; stopped on drop.
struct ChildServer {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_child() -> Result<(ChildServer, String, String)> {
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let policy = dir.path().join("soc.yaml");
    std::fs::write(&policy, crate::SOC_POLICY)?;
    let exe = std::env::current_exe().context("cannot find the arbiter binary")?;
    let mut child = Command::new(exe)
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(dir.path().join("bench.db"))
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
    while url.is_none() || admin.is_none() {
        let Some(line) = lines.next() else {
            let status = server.child.wait()?;
            bail!("the server exited ({status}) before it was ready");
        };
        let line = line?;
        if let Some(u) = line.strip_prefix("listening on ") {
            url = Some(u.to_string());
        } else if let Some(k) = line.strip_prefix("admin key: ") {
            admin = Some(k.to_string());
        }
    }
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    let _ = &mut server;
    Ok((server, url.unwrap_or_default(), admin.unwrap_or_default()))
}

/// A realistic mix of SOC proposals: mostly routine closes and tickets, some
/// disruptive actions that escalate, a few that are denied outright.
fn action_for(i: u64) -> Value {
    let host = format!("ws-{:04}", i % 5000);
    match i % 20 {
        0..=9 => json!({"name": "close_alert", "confidence": 0.97,
            "args": {"alert_id": format!("A-{i}"), "resolution": "benign"},
            "signals": {"alert_type": "benign_noise", "alert_severity": "low", "anomaly_score": 0.1}}),
        10..=12 => json!({"name": "open_ticket", "confidence": 0.8,
            "args": {"title": "Suspicious login", "priority": "p3", "queue": "soc"},
            "signals": {"alert_type": "brute_force", "alert_severity": "medium"}}),
        13..=14 => json!({"name": "block_ip", "confidence": 0.95,
            "args": {"ip": format!("203.0.{}.{}", (i / 256) % 256, i % 256), "direction": "inbound", "duration_hours": 24},
            "signals": {"alert_type": "brute_force", "alert_severity": "medium", "ip_reputation": "malicious", "ip_internal": false}}),
        15..=16 => json!({"name": "isolate_host", "confidence": 0.9,
            "args": {"host": host, "host_tags": ["workstation"], "business_unit": "sales"},
            "signals": {"alert_type": "malware", "alert_severity": "high", "hosts_isolated_last_hour": 1}}),
        17 => json!({"name": "disable_user", "confidence": 0.93,
            "args": {"user": format!("user{}", i % 900), "user_groups": ["staff"], "is_admin": false, "is_service_account": false},
            "signals": {"alert_type": "impossible_travel", "alert_severity": "medium", "repeat_count": 3}}),
        18 => json!({"name": "close_alert", "confidence": 0.6,
            "args": {"alert_id": format!("A-{i}"), "resolution": "false_positive"},
            "signals": {"alert_type": "phishing", "alert_severity": "medium"}}),
        _ => json!({"name": "block_ip", "confidence": 0.99,
            "args": {"ip": "8.8.8.8", "direction": "outbound", "duration_hours": 1},
            "signals": {"alert_type": "data_exfiltration", "alert_severity": "high"}}),
    }
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    allow: u64,
    escalate: u64,
    deny: u64,
    errors: u64,
    first_error: Option<String>,
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx] as f64 / 1000.0
}

fn decide(args: DecideArgs) -> Result<ExitCode> {
    if args.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    let (_child, url, key) = match (&args.url, &args.key) {
        (Some(u), Some(k)) => (None, u.trim_end_matches('/').to_string(), k.clone()),
        _ => {
            let (child, url, admin) = start_child()?;
            (Some(child), url, admin)
        }
    };
    let rt = crate::runtime()?;
    let tally = rt.block_on(async {
        let client = reqwest::Client::builder().pool_max_idle_per_host(args.concurrency).build()?;
        // With our own server, load it the way an agent would: with an agent key.
        let key = if _child.is_some() {
            let created: Value = client
                .post(format!("{url}/v1/keys"))
                .bearer_auth(&key)
                .json(&json!({"name": "bench-agent", "role": "agent", "rate_limit": "unlimited"}))
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            created["key"].as_str().context("no key in the response")?.to_string()
        } else {
            key
        };
        let started = Instant::now();
        let warm_until = started + Duration::from_secs(args.warmup.0);
        let end = warm_until + Duration::from_secs(args.duration.0);
        let run_id = format!("{:x}", started.elapsed().as_nanos() ^ std::process::id() as u128);
        let mut tasks = Vec::new();
        for t in 0..args.concurrency {
            let (client, url, key, run_id) = (client.clone(), url.clone(), key.clone(), run_id.clone());
            tasks.push(tokio::spawn(async move {
                let mut tally = Tally::default();
                let mut i = t as u64;
                loop {
                    let sent = Instant::now();
                    if sent >= end {
                        break;
                    }
                    let body = serde_json::to_vec(&json!({"action": action_for(i), "trace_id": format!("bench-{t}")}))
                        .unwrap_or_default();
                    let res = client
                        .post(format!("{url}/v1/decisions"))
                        .bearer_auth(&key)
                        .header("content-type", "application/json")
                        .header("idempotency-key", format!("bench-{run_id}-{t}-{i}"))
                        .body(body)
                        .send()
                        .await;
                    let outcome = match res {
                        Ok(r) if r.status().is_success() => r.json::<Value>().await.map_err(|e| e.to_string()),
                        Ok(r) => {
                            let status = r.status();
                            Err(format!("{status}: {}", r.text().await.unwrap_or_default()))
                        }
                        Err(e) => Err(e.to_string()),
                    };
                    let done = Instant::now();
                    i += args.concurrency as u64;
                    if sent < warm_until {
                        continue;
                    }
                    match outcome {
                        Ok(v) => {
                            tally.latencies_us.push((done - sent).as_micros().min(u32::MAX as u128) as u32);
                            match v["verdict"].as_str() {
                                Some("allow") => tally.allow += 1,
                                Some("escalate") => tally.escalate += 1,
                                Some("deny") => tally.deny += 1,
                                _ => {}
                            }
                        }
                        Err(e) => {
                            tally.errors += 1;
                            tally.first_error.get_or_insert(e);
                        }
                    }
                }
                tally
            }));
        }
        let mut all = Tally::default();
        for task in tasks {
            let t = task.await?;
            all.latencies_us.extend(t.latencies_us);
            all.allow += t.allow;
            all.escalate += t.escalate;
            all.deny += t.deny;
            all.errors += t.errors;
            if all.first_error.is_none() {
                all.first_error = t.first_error;
            }
        }
        anyhow::Ok(all)
    })?;
    let mut lat = tally.latencies_us;
    lat.sort_unstable();
    let secs = args.duration.0 as f64;
    let ok = lat.len() as u64;
    let rate = ok as f64 / secs;
    let (p50, p90, p99, max) =
        (percentile(&lat, 0.5), percentile(&lat, 0.9), percentile(&lat, 0.99), percentile(&lat, 1.0));
    if args.json {
        println!(
            "{}",
            json!({"url": url, "concurrency": args.concurrency, "duration_secs": secs, "decisions": ok,
                "decisions_per_sec": rate, "p50_ms": p50, "p90_ms": p90, "p99_ms": p99, "max_ms": max,
                "allow": tally.allow, "escalate": tally.escalate, "deny": tally.deny, "errors": tally.errors})
        );
    } else {
        println!("arbiter bench decide: {} connections for {} against {url}", args.concurrency, args.duration);
        println!(
            "decisions: {ok} (allow {}, escalate {}, deny {}), errors: {}",
            tally.allow, tally.escalate, tally.deny, tally.errors
        );
        println!("throughput: {rate:.0} decisions/s");
        println!("latency: p50 {p50:.2} ms, p90 {p90:.2} ms, p99 {p99:.2} ms, max {max:.2} ms");
    }
    if let Some(e) = tally.first_error {
        eprintln!("first error: {e}");
    }
    Ok(if tally.errors == 0 && ok > 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

async fn console(args: ConsoleArgs) -> Result<ExitCode> {
    let dir = tempfile::tempdir()?;
    let store = std::sync::Arc::new(arbiter_store::SqliteStore::open(dir.path().join("bench.db"))?);
    let state = arbiter_server::AppState::new(
        store.clone(),
        arbiter_server::Config::default(),
        std::sync::Arc::new(arbiter_core::SystemClock),
    )
    .await?;
    let admin = arbiter_server::bootstrap(&state, Some(crate::SOC_POLICY)).await?.admin_key.context("admin key")?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(arbiter_server::serve(listener, state.clone(), async {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    let key = |name: &str, role: &str, tags: &[&str]| {
        let req = http
            .post(format!("{url}/v1/keys"))
            .bearer_auth(&admin)
            .json(&json!({"name": name, "role": role, "tags": tags}));
        async move {
            anyhow::Ok(
                req.send().await?.error_for_status()?.json::<Value>().await?["key"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        }
    };
    let agent = key("soc-triage-agent", "agent", &[]).await?;
    let reviewer = key(
        "rita",
        "reviewer",
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
    // Load the store through the API, as agents would.
    let loaded = Instant::now();
    let start = state.clock.now().0 - 24 * 3_600_000;
    let hours = (args.decisions as f64 / 400.0 * 1.1).ceil() as i64 + 1;
    let mut props =
        arbiter_core::soc::Soc::run(arbiter_core::soc::SocConfig { seed: 1, ..Default::default() }, hours * 3_600_000);
    props.truncate(args.decisions);
    let mut case_ids = Vec::new();
    for chunk in props.chunks(256) {
        let res = futures_util::future::join_all(chunk.iter().map(|p| {
            let body = json!({"action": p.action, "trace_id": p.trace_id, "event_time": arbiter_core::Timestamp(start + p.offset_ms * 24 * 3_600_000 / (hours * 3_600_000))});
            let req = http.post(format!("{url}/v1/decisions")).bearer_auth(&agent).json(&body);
            async move { anyhow::Ok(req.send().await?.error_for_status()?.json::<Value>().await?) }
        }))
        .await;
        for r in res {
            if let Some(c) = r?["case_id"].as_str() {
                case_ids.push(c.to_string());
            }
        }
    }
    let review: Value = http
        .post(format!("{url}/v1/reviews"))
        .bearer_auth(&reviewer)
        .json(&json!({"title": "bench review", "from_case": case_ids[0]}))
        .send()
        .await?
        .json()
        .await?;
    let review_id = review["id"].as_str().unwrap_or_default().to_string();
    let open = arbiter_store::Store::open_case_count(store.as_ref()).await?;
    println!("loaded {} decisions and {} open cases in {:.1}s", props.len(), open, loaded.elapsed().as_secs_f64());
    // Sign in like a browser.
    let login =
        http.post(format!("{url}/login")).form(&[("key", reviewer.as_str()), ("next", "/queue")]).send().await?;
    let cookie = login
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|c| c.split(';').next())
        .context("no session cookie")?
        .to_string();
    let pages = [
        ("queue (all open cases visible)", "/queue".to_string()),
        ("case", format!("/cases/{}", case_ids[case_ids.len() / 2])),
        ("review case", format!("/reviews/{review_id}")),
        ("dashboard (24 h)", "/dashboard".to_string()),
        ("policy", "/policy".to_string()),
    ];
    println!("{:<32} {:>9} {:>9} {:>9}", "page", "p50 ms", "p95 ms", "bytes");
    for (name, path) in pages {
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
        println!(
            "{name:<32} {:>9.1} {:>9.1} {size:>9}",
            arbiter_core::stats::quantile_sorted(&times, 0.5),
            arbiter_core::stats::quantile_sorted(&times, 0.95)
        );
    }
    let _ = stop.send(());
    server.await??;
    store.close();
    Ok(ExitCode::SUCCESS)
}
