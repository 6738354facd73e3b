//! Reading labelled history for `tune`, `simulate` and `policy backtest`:
//! from a CSV or JSON Lines file (docs/tuning.md), or from the store.

pub mod csv;
pub mod parquet;
use crate::progress::Progress;
use anyhow::{Context, Result, bail};
use arbiter_core::{Timestamp, Verdict};
use arbiter_policy::backtest::Replay;
use arbiter_tuning::history::Record;
use arbiter_tuning::{History, Tally, TuneOptions, history};
use clap::Args;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// What to say when no history is given.
const NO_SOURCE: &str = "no history to read: give --history FILE (CSV, JSON Lines or Parquet; see docs/tuning.md) \
                         or --db STORE (an Arbiter store's decisions with their outcomes, e.g. --db ./arbiter.db)";

/// Where the history comes from.
#[derive(Debug, Clone, Args)]
pub struct HistoryArgs {
    /// A history file: `.csv`, `.jsonl`/`.ndjson` (JSON Lines) or `.parquet`.
    #[arg(long, conflicts_with = "db")]
    pub history: Option<PathBuf>,
    /// Read decisions with recorded outcomes from this store instead.
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// With --db: the most recent this many labelled decisions.
    #[arg(long, default_value_t = 1_000_000)]
    pub limit: usize,
    /// Only decisions made at or after this time (RFC 3339, e.g. 2026-11-26T00:00:00Z).
    #[arg(long, value_name = "TIME")]
    pub since: Option<Timestamp>,
    /// Only decisions made before this time (RFC 3339): e.g. tune on the weeks before a known incident.
    #[arg(long, value_name = "TIME")]
    pub until: Option<Timestamp>,
}

impl HistoryArgs {
    fn in_window(&self, t: Timestamp) -> bool {
        self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t < u)
    }

    fn window(&self) -> String {
        match (self.since, self.until) {
            (Some(s), Some(u)) => format!(" between {s} and {u}"),
            (Some(s), None) => format!(" since {s}"),
            (None, Some(u)) => format!(" before {u}"),
            (None, None) => String::new(),
        }
    }
}

/// The formats a history file comes in, named by its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Csv,
    JsonLines,
    Parquet,
}

fn format(p: &Path) -> Result<Format> {
    match p.extension().and_then(|e| e.to_str()) {
        Some("csv") => Ok(Format::Csv),
        Some("jsonl" | "ndjson" | "json") => Ok(Format::JsonLines),
        Some("parquet") => Ok(Format::Parquet),
        _ => bail!("{}: name the format by the extension: .csv, .jsonl or .parquet", p.display()),
    }
}

fn is_jsonl(p: &Path) -> Result<bool> {
    Ok(format(p)? == Format::JsonLines)
}

fn read(p: &Path) -> Result<String> {
    std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))
}

fn store_decisions(db: &Path, limit: usize) -> Result<Vec<arbiter_core::Decision>> {
    Ok(read_store(db, limit, false)?.0)
}

/// The most recent `limit` labelled decisions and, with `audit`, the
/// unlabelled decisions of an audit design made since the oldest of them
/// (the population its audit labels stand for).
fn read_store(
    db: &Path,
    limit: usize,
    audit: bool,
) -> Result<(Vec<arbiter_core::Decision>, Vec<arbiter_core::Decision>)> {
    let _spin = Progress::spinner(&format!("reading labelled decisions from {}", db.display()));
    crate::process::current_thread()?.block_on(async {
        let store = crate::process::open_store(db).await?;
        let labelled = store.labelled_decisions(limit).await?;
        let mut unlabelled = if audit { store.unlabelled_audit_decisions(limit).await? } else { Vec::new() };
        if labelled.len() == limit
            && let Some(oldest) = labelled.first().map(|d| d.event_time)
        {
            unlabelled.retain(|d| d.event_time >= oldest);
        }
        store.close();
        Ok((labelled, unlabelled))
    })
}

/// Load the history into columns.
pub fn load(args: &HistoryArgs) -> Result<History> {
    let h = match (&args.history, &args.db) {
        (Some(p), _) => match format(p)? {
            Format::JsonLines => {
                let text = read(p)?;
                let bar = Progress::bytes(text.len() as u64, &format!("loading {}", p.display()));
                let mut report = |done: usize| bar.set(done as u64);
                history::parse_jsonl_with(&text, &mut report).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?
            }
            Format::Csv => {
                let bar = Progress::bytes(file_len(p), &format!("loading {}", p.display()));
                // one parsing thread keeps the file's order; reading runs beside it
                let parts = csv::read(p, true, 1, History::default, |h, r| h.push_record(r), &mut |n| bar.set(n))?;
                parts.into_iter().next().unwrap_or_default()
            }
            Format::Parquet => {
                let mut h = History::default();
                parquet::read(p, true, &mut |r| h.push_record(r))?;
                h
            }
        },
        (None, Some(db)) => {
            let mut h = History::default();
            let (labelled, unlabelled) = read_store(db, args.limit, true)?;
            for d in labelled {
                push_decision(&mut h, &d);
            }
            for d in unlabelled {
                if let Some(draw) = d.audit {
                    h.push_unlabelled(d.event_time, &d.action.name, d.action.confidence.unwrap_or(0.0), draw);
                }
            }
            h
        }
        (None, None) => bail!(NO_SOURCE),
    };
    let h = if args.since.is_some() || args.until.is_some() || h.has_audit_design() {
        h.between(args.since, args.until)
    } else {
        h
    };
    if h.is_empty() {
        bail!("the history has no decisions with outcomes{}: tuning needs some", args.window());
    }
    Ok(h)
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map_or(0, |m| m.len())
}

/// The counts `tune` needs, read straight from the history: a CSV file is
/// parsed on every core as it streams (timestamps only when windowing by
/// time), a Parquet file column by column; other sources are loaded first.
pub fn tally(args: &HistoryArgs, opts: &TuneOptions, calibration_bins: usize) -> Result<Tally> {
    let window = args.since.is_some() || args.until.is_some();
    let add = |t: &mut Tally, r: &Record<'_>| {
        if window && !r.timestamp.is_some_and(|ts| args.in_window(ts)) {
            return;
        }
        let class = t.class(r.action);
        match r.correct {
            Some(correct) => t.add(class, r.confidence, correct, r.error_cost, r.escalation_cost, r.audit),
            None => {
                t.add_unlabelled(class, r.confidence, r.audit.expect("only rows of an audit design are unlabelled"))
            }
        }
    };
    let t = match args.history.as_deref().map(format).transpose()? {
        Some(Format::Csv) => {
            let p = args.history.as_deref().expect("a file");
            let bar = Progress::bytes(file_len(p), &format!("loading {}", p.display()));
            let parts =
                csv::read(p, window, csv::workers(), || Tally::new(opts, calibration_bins), add, &mut |n| bar.set(n))?;
            merged(parts, || Tally::new(opts, calibration_bins))
        }
        Some(Format::Parquet) => {
            let p = args.history.as_deref().expect("a file");
            let _spin = Progress::spinner(&format!("loading {}", p.display()));
            let parts = parquet::read_parallel(p, window, csv::workers(), || Tally::new(opts, calibration_bins), add)?;
            merged(parts, || Tally::new(opts, calibration_bins))
        }
        _ => return Ok(Tally::of(&load(args)?, opts, calibration_bins)),
    };
    if t.decisions() == 0 {
        bail!("the history has no decisions with outcomes{}: tuning needs some", args.window());
    }
    Ok(t)
}

/// The threads' tallies as one, merged in thread order (the same sums every run).
fn merged(parts: Vec<Tally>, empty: impl FnOnce() -> Tally) -> Tally {
    let mut it = parts.into_iter();
    let mut t = it.next().unwrap_or_else(empty);
    it.for_each(|o| t.merge(o));
    t
}

/// Add a stored labelled decision to a history (with its audit draw, if it has one).
pub fn push_decision(h: &mut History, d: &arbiter_core::Decision) {
    let o = d.outcome.as_ref().expect("labelled decisions have outcomes");
    let row = history::Row {
        timestamp: d.event_time,
        action: &d.action.name,
        confidence: d.action.confidence.unwrap_or(0.0),
        correct: o.correct,
        error_cost: o.cost,
        escalation_cost: None,
    };
    match d.audit {
        Some(draw) => h.push_audited(&row, draw),
        None => h.push(&row),
    }
}

/// The verdict `policy`'s triggers give a decision whatever the threshold, if any fired.
pub fn ruled_verdict(policy: &arbiter_policy::Policy, r: &Replay<'_>) -> Option<Verdict> {
    let e = policy.evaluate(&r.env());
    (!e.triggers.is_empty()).then_some(e.verdict)
}

/// What `policy`'s triggers settle, decision by decision in the order [`load`]
/// gives: `Some(verdict)` where a trigger fired (the threshold plays no part),
/// `None` where the confidence threshold decides. `Ok(None)` for a CSV
/// history, which has no arguments or signals for the triggers to read.
pub fn settled_by_rules(args: &HistoryArgs, policy: &arbiter_policy::Policy) -> Result<Option<Vec<Option<Verdict>>>> {
    if !has_arguments(args) {
        return Ok(None);
    }
    let mut out = Vec::new();
    replay(args, |r, _| out.push(ruled_verdict(policy, r)))?;
    Ok(Some(out))
}

/// Whether the history's decisions carry their arguments and signals (the
/// store, JSON Lines) for a policy's triggers to read; CSV and Parquet do not.
pub fn has_arguments(args: &HistoryArgs) -> bool {
    args.history.as_deref().is_none_or(|p| is_jsonl(p).unwrap_or(false))
}

/// Replay every labelled decision (with its arguments where the source has them).
pub fn replay(args: &HistoryArgs, mut f: impl FnMut(&Replay<'_>, Timestamp)) -> Result<u64> {
    let empty = json!({});
    let agent = json!({"name": "history", "key_id": ""});
    let mut n = 0;
    match (&args.history, &args.db) {
        (Some(p), _) if is_jsonl(p)? => {
            let text = read(p)?;
            let bar = Progress::bytes(text.len() as u64, &format!("replaying {}", p.display()));
            for (i, line) in text.lines().enumerate() {
                bar.inc(line.len() as u64 + 1);
                if line.trim().is_empty() {
                    continue;
                }
                let v: Value =
                    serde_json::from_str(line).with_context(|| format!("{}: line {}", p.display(), i + 1))?;
                // validate the row the same way tuning does
                let row = history::parse_jsonl(line)
                    .map_err(|e| anyhow::anyhow!("{}: line {}: {}: {}", p.display(), i + 1, e.field, e.message))?;
                if row.is_empty() {
                    // a decision of an audit design without a label: counted by tuning, not replayed
                    continue;
                }
                let id = v.get("id").and_then(Value::as_str).map_or_else(|| format!("line {}", i + 1), str::to_string);
                let ts = Timestamp(row.timestamp[0]);
                if !args.in_window(ts) {
                    continue;
                }
                f(
                    &Replay {
                        id: &id,
                        name: v["action"].as_str().unwrap_or(""),
                        confidence: v["confidence"].as_f64(),
                        args: v.get("args").unwrap_or(&empty),
                        signals: v.get("signals").unwrap_or(&empty),
                        context: v.get("context").unwrap_or(&empty),
                        agent: &agent,
                        correct: v["correct"].as_bool().unwrap_or(true),
                    },
                    ts,
                );
                n += 1;
            }
        }
        (Some(_), _) => {
            let h = load(args)?;
            let bar = Progress::items(h.len() as u64, "replaying");
            for i in 0..h.len() {
                bar.inc(1);
                let id = format!("line {}", i + 2);
                f(
                    &Replay {
                        id: &id,
                        name: &h.classes[h.class[i] as usize],
                        confidence: Some(h.confidence[i]),
                        args: &empty,
                        signals: &empty,
                        context: &empty,
                        agent: &agent,
                        correct: h.correct[i],
                    },
                    Timestamp(h.timestamp[i]),
                );
                n += 1;
            }
        }
        (None, Some(db)) => {
            let decisions = store_decisions(db, args.limit)?;
            let bar = Progress::items(decisions.len() as u64, "replaying");
            for d in decisions {
                bar.inc(1);
                if !args.in_window(d.event_time) {
                    continue;
                }
                Replay::of_decision(&d, |r| f(r, d.event_time));
                n += 1;
            }
        }
        (None, None) => bail!(NO_SOURCE),
    }
    Ok(n)
}
