//! Tuning on the hours before the drift: per-class thresholds within the
//! reviewers' budget, chosen from the day's labelled decisions, backtested
//! against the live policy on the same hours, and stored as a draft version
//! (not activated: day two measures the lesson, not the tuning).
//!
//! The same steps run from a terminal with the commands the walkthrough
//! prints, on the files written here; they give the same numbers.

use crate::embedded::Embedded;
use anyhow::{Context, Result};
use arbiter_api::policy::PolicyView;
use arbiter_core::Timestamp;
use arbiter_policy::Policy;
use arbiter_policy::backtest::{Backtest, BacktestReport, Replay};
use arbiter_store::prelude::*;
use arbiter_tuning::{History, SettledByRules, TuneOptions, TuneResult, tune};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The reviewers' budget: the share of decisions that may wait for a person
/// (the simulated team of four analysts and three leads keeps up with this).
pub const BUDGET: f64 = 0.15;
/// The bound on wrong actions among those run without a person, per class.
pub const MAX_AUTO_ERROR: f64 = 0.10;

/// What the tuning found.
pub struct Tuned {
    /// Decisions made before this moment were used.
    pub until: Timestamp,
    /// The thresholds and their statistics.
    pub result: TuneResult,
    /// Each class's threshold in the live policy.
    pub live: BTreeMap<String, Option<f64>>,
    /// The tuned policy against the live one, on the same decisions.
    pub backtest: BacktestReport,
    /// The draft version stored on the server.
    pub draft: String,
    /// The live policy and the tuned one, as files.
    pub live_file: PathBuf,
    pub tuned_file: PathBuf,
}

/// An RFC 3339 time without milliseconds, for a command line.
pub fn rfc3339(t: Timestamp) -> String {
    t.to_string().replace(".000Z", "Z")
}

/// Tune on the labelled decisions made before `until`, write `policy.yaml`
/// and `tuned.yaml` into `dir`, and store the tuned policy as a draft.
pub async fn before(server: &Embedded, live_source: &str, until: Timestamp, dir: &Path) -> Result<Tuned> {
    let decisions: Vec<_> =
        server.store.labelled_decisions(1_000_000).await?.into_iter().filter(|d| d.event_time < until).collect();
    let live = Policy::parse(live_source).map_err(|e| anyhow::anyhow!("the live policy: {e}"))?;
    // decisions the live policy's triggers settle whatever the threshold
    let mut settled = SettledByRules::default();
    let mut h = History::default();
    for d in &decisions {
        match Replay::of_decision(d, |r| crate::history::ruled_verdict(&live, r)) {
            Some(v) => settled.add(v),
            None => crate::history::push_decision(&mut h, d),
        }
    }
    let opts = TuneOptions {
        max_escalation_rate: BUDGET,
        max_auto_error: Some(MAX_AUTO_ERROR),
        settled_by_rules: settled,
        ..TuneOptions::default()
    };
    let (result, _) = tune(&h, &opts);
    let thresholds: BTreeMap<String, Option<f64>> =
        result.classes.iter().map(|c| (c.action.clone(), c.threshold)).collect();
    let tuned_source = arbiter_policy::rewrite::with_thresholds(live_source, &thresholds)
        .map_err(|e| anyhow::anyhow!("rewriting the policy with the tuned thresholds: {e}"))?;
    let tuned = Policy::parse(&tuned_source).map_err(|e| anyhow::anyhow!("the tuned policy: {e}"))?;
    let backtest = {
        let mut bt = Backtest::new(&tuned, Some(&live));
        for d in &decisions {
            bt.add_decision(d);
        }
        bt.finish()
    };
    let (live_file, tuned_file) = (dir.join("policy.yaml"), dir.join("tuned.yaml"));
    for (path, text) in [(&live_file, live_source), (&tuned_file, tuned_source.as_str())] {
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let draft: PolicyView = server.admin.post_yaml("/v1/policy/versions", tuned_source).await?;
    let live_thresholds =
        result.classes.iter().map(|c| (c.action.clone(), live.class_config(&c.action).auto_allow_at)).collect();
    Ok(Tuned { until, result, live: live_thresholds, backtest, draft: draft.version.hash, live_file, tuned_file })
}

fn threshold(t: Option<f64>) -> String {
    t.map_or_else(|| "never".to_string(), |t| format!("{t}"))
}

/// Print what the tuning chose and what the backtest says it changes.
pub fn report(t: &Tuned, hours: f64) {
    let r = &t.result;
    let pct = |x: f64, d: usize| format!("{:.*}%", d, 100.0 * x);
    println!(
        "\nTuning on the {hours:.0} simulated hours before the drift: {} labelled decisions, a {} reviewer budget, \
         wrong automatic actions at most {} per class (with 95% confidence).",
        r.decisions,
        pct(BUDGET, 0),
        pct(MAX_AUTO_ERROR, 0)
    );
    for c in &r.classes {
        let live = t.live.get(&c.action).copied().flatten();
        match c.threshold {
            Some(th) => println!(
                "  {:<14} auto-allow at {:<6} (live policy: {:<5})  {} run by themselves, {} of them wrong (bound {})",
                c.action,
                threshold(Some(th)),
                threshold(live),
                pct(c.auto_share, 1),
                pct(c.auto_error_rate, 1),
                c.auto_error_upper.map_or("none".to_string(), |u| pct(u, 1))
            ),
            None => println!(
                "  {:<14} never by itself  (live policy: {:<5})  every one waits for a person ({} decisions)",
                c.action,
                threshold(live),
                c.decisions
            ),
        }
    }
    let rules = r.settled_by_rules;
    println!(
        "  (the policy's triggers settle {} of them whatever the threshold; the {} they escalate use part of the budget)",
        rules.decisions, rules.escalations
    );
    if r.feasible {
        println!("Within budget: {} of those decisions would wait for a person.", pct(r.escalated_share, 1));
    } else {
        println!(
            "Over budget: the bound needs {} of decisions to wait for a person, more than the {} budget.",
            pct(r.min_feasible_budget, 1),
            pct(BUDGET, 0)
        );
    }
    let b = &t.backtest;
    if let Some(cur) = &b.current {
        println!(
            "Backtest on the same hours: escalation {} -> {}, wrong actions run unreviewed {} -> {}; {} verdict(s) change.",
            pct(cur.escalation_rate, 1),
            pct(b.new.escalation_rate, 1),
            pct(cur.auto_error_rate, 2),
            pct(b.new.auto_error_rate, 2),
            b.changed
        );
    }
    println!(
        "Stored as draft policy version {} (not active; the policy page and `arbiter policy activate {}` show its backtest first).",
        &t.draft[..12.min(t.draft.len())],
        &t.draft[..8.min(t.draft.len())]
    );
}

/// The budget the printed `tune` command asks for: the demo's, or, when that
/// history cannot keep the bound within it, the smallest whole percent that can.
pub fn command_budget(t: &Tuned) -> f64 {
    if t.result.feasible { BUDGET } else { (t.result.min_feasible_budget * 100.0).ceil() / 100.0 }
}
