//! `arbiter bench traces`: OTLP/HTTP ingest throughput. Sends agent runs
//! (one `invoke_agent` span, then model and tool calls with GenAI attributes
//! and short messages) as protobuf exports, each with fresh trace and span
//! ids, from `--concurrency` connections for `--duration`; prints spans/s and
//! the request latency percentiles. Any OTLP/HTTP receiver can be measured
//! with the same client (`--url`): `bench/traces/compare.py` runs it against
//! Arbiter and Arize Phoenix in turn.

use anyhow::{Result, bail};
use arbiter_core::HumanDuration;
use arbiter_core::stats::quantile_sorted;
use arbiter_core::trace::{Dropped, Span};
use clap::Args;
use serde_json::{Map, json};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Options of `arbiter bench traces`.
#[derive(Debug, Args)]
pub struct TracesArgs {
    /// Receiver's base URL (`/v1/traces` is appended). Without it, an Arbiter is started on a temporary store.
    #[arg(long)]
    url: Option<String>,
    /// Bearer key for `--url` (an agent key for Arbiter; none for receivers without auth).
    #[arg(long, env = "ARBITER_KEY")]
    key: Option<String>,
    /// Concurrent connections, each one export at a time.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Spans per export request.
    #[arg(long, default_value_t = 50)]
    spans: usize,
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

/// The spans of one agent run: `n` spans under one trace, ids unique to `(run, k)`.
fn run_spans(run: u64, k: u64, n: usize, now_ns: i64) -> Vec<Span> {
    let trace_id = format!("{run:016x}{k:016x}");
    let id = |i: usize| format!("{:016x}", (k << 16) | (i as u64 + 1));
    let attrs =
        |pairs: serde_json::Value| -> Map<String, serde_json::Value> { pairs.as_object().cloned().unwrap_or_default() };
    (0..n)
        .map(|i| {
            let start = now_ns + i as i64 * 1_000_000;
            let (name, attributes) = match i {
                0 => ("invoke_agent triage".to_string(), attrs(json!({"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "triage"}))),
                i if i % 2 == 1 => (
                    "chat gpt-4.1".into(),
                    attrs(json!({"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4.1", "gen_ai.provider.name": "openai",
                        "gen_ai.usage.input_tokens": 812, "gen_ai.usage.output_tokens": 64,
                        "gen_ai.input.messages": format!("[{{\"role\":\"user\",\"parts\":[{{\"type\":\"text\",\"content\":\"alert A-{k}: malware on ws-{i}\"}}]}}]"),
                        "gen_ai.output.messages": "[{\"role\":\"assistant\",\"parts\":[{\"type\":\"tool_call\",\"name\":\"isolate_host\"}]}]"})),
                ),
                i => (
                    "execute_tool isolate_host".into(),
                    attrs(json!({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "isolate_host",
                        "gen_ai.tool.call.id": format!("call_{k}_{i}"), "gen_ai.tool.call.arguments": format!("{{\"host\":\"ws-{i}\"}}")})),
                ),
            };
            Span {
                trace_id: trace_id.clone(),
                span_id: id(i),
                parent_span_id: (i > 0).then(|| id(0)),
                name,
                kind: if i % 2 == 1 { "client".into() } else { "internal".into() },
                start_ns: start,
                end_ns: start + 900_000,
                status: "unset".into(),
                status_message: String::new(),
                service: None,
                attributes,
                events: vec![],
                dropped: Dropped::default(),
                sender: None,
            }
        })
        .collect()
}

/// Run the benchmark.
pub fn run(args: TracesArgs) -> Result<ExitCode> {
    if args.concurrency == 0 || args.spans == 0 {
        bail!("--concurrency and --spans must be at least 1");
    }
    let (child, url, key) = match &args.url {
        Some(u) => (None, u.trim_end_matches('/').to_string(), args.key.clone()),
        None => {
            let (child, url, admin) = crate::bench::start_child()?;
            (Some(child), url, Some(admin))
        }
    };
    let endpoint = format!("{url}/v1/traces");
    let rt = crate::process::runtime()?;
    let (lat, errors, first_error) = rt.block_on(async {
        let http = reqwest::Client::builder().pool_max_idle_per_host(args.concurrency).build()?;
        let started = Instant::now();
        let warm_until = started + Duration::from_secs(args.warmup.0);
        let end = warm_until + Duration::from_secs(args.duration.0);
        let run_id = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos() as u64 | 1;
        let now_ns = (run_id & 0x0fff_ffff_ffff_ffff) as i64;
        let mut tasks = Vec::new();
        for t in 0..args.concurrency {
            let (http, endpoint, key) = (http.clone(), endpoint.clone(), key.clone());
            let spans = args.spans;
            let conc = args.concurrency as u64;
            tasks.push(tokio::spawn(async move {
                let (mut lat, mut errors, mut first) = (Vec::new(), 0u64, None::<String>);
                let mut k = t as u64;
                loop {
                    let body =
                        arbiter_otlp::encode_request("triage-agent", "bench", &run_spans(run_id, k, spans, now_ns));
                    k += conc;
                    let sent = Instant::now();
                    if sent >= end {
                        break;
                    }
                    let mut req = http.post(&endpoint).header("content-type", "application/x-protobuf").body(body);
                    if let Some(key) = &key {
                        req = req.bearer_auth(key);
                    }
                    let outcome = req.send().await;
                    let done = Instant::now();
                    let ok = match outcome {
                        Ok(r) if r.status().is_success() => {
                            let _ = r.bytes().await;
                            true
                        }
                        Ok(r) => {
                            first.get_or_insert(format!("{}: {}", r.status(), r.text().await.unwrap_or_default()));
                            false
                        }
                        Err(e) => {
                            first.get_or_insert(e.to_string());
                            false
                        }
                    };
                    if sent < warm_until {
                        continue;
                    }
                    if ok {
                        lat.push((done - sent).as_secs_f64() * 1000.0);
                    } else {
                        errors += 1;
                    }
                }
                (lat, errors, first)
            }));
        }
        let (mut lat, mut errors, mut first_error) = (Vec::new(), 0, None);
        for task in tasks {
            let (l, e, f) = task.await?;
            lat.extend(l);
            errors += e;
            if first_error.is_none() {
                first_error = f;
            }
        }
        anyhow::Ok((lat, errors, first_error))
    })?;
    drop(child);
    let mut lat = lat;
    lat.sort_by(f64::total_cmp);
    let secs = args.duration.0 as f64;
    let requests = lat.len() as u64;
    let spans_per_sec = (requests * args.spans as u64) as f64 / secs;
    let q = |p: f64| quantile_sorted(&lat, p);
    if args.json {
        println!(
            "{}",
            json!({"url": url, "concurrency": args.concurrency, "spans_per_request": args.spans, "duration_secs": secs,
                "requests": requests, "spans_per_sec": spans_per_sec, "p50_ms": q(0.5), "p99_ms": q(0.99),
                "errors": errors, "first_error": first_error})
        );
    } else {
        println!(
            "arbiter bench traces: {} connections, {} spans per export, for {} against {endpoint}",
            args.concurrency, args.spans, args.duration
        );
        println!("exports: {requests} ({} spans), errors: {errors}", requests * args.spans as u64);
        println!("throughput: {spans_per_sec:.0} spans/s");
        println!("export latency: p50 {:.2} ms, p99 {:.2} ms", q(0.5), q(0.99));
        if let Some(e) = first_error {
            println!("first error: {e}");
        }
    }
    Ok(if errors == 0 && requests > 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
