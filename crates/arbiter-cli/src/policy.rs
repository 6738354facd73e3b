//! `arbiter policy check|eval`.

use crate::client::json_arg;
use anyhow::{Context, Result, bail};
use arbiter_core::{Action, Limits, Verdict};
use arbiter_policy::Policy;
use arbiter_policy::cel::Env;
use clap::Subcommand;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Policy subcommands.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Check policy files; print every error as `file:line:col: field: message`, and warnings (such as an `allow`
    /// trigger that reads only what the agent itself sends). Exits 1 if any file has errors.
    Check {
        /// Policy files (YAML).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Replay labelled history through a policy (beside the current one) and report what changes.
    Backtest {
        /// The policy to test.
        file: PathBuf,
        #[command(flatten)]
        history: crate::history::HistoryArgs,
        /// The current policy to compare with.
        #[arg(long)]
        against: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Standing rules suggested from how reviewers answered: situations always approved
    /// unchanged or always refused, each as a trigger backtested on history (over HTTP).
    /// Accepting one stores a draft version; activating it stays a separate step.
    Suggest {
        /// Mine the review history again first (admin key).
        #[arg(long)]
        refresh: bool,
        /// Days of history to mine (with --refresh; default 30).
        #[arg(long)]
        days: Option<u32>,
        /// Times a situation must have been answered the same way (with --refresh; default 20).
        #[arg(long)]
        min_support: Option<u64>,
        /// Accept this suggestion into a draft policy version (admin key).
        #[arg(long, conflicts_with = "dismiss")]
        accept: Option<String>,
        /// Dismiss this suggestion (admin key).
        #[arg(long)]
        dismiss: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        api: crate::client::ApiArgs,
    },
    /// Store a policy file on the server as a draft version, not activated: to
    /// backtest it, link it to a review's intervention, and activate it later.
    Draft {
        /// Policy file (YAML).
        file: PathBuf,
        #[command(flatten)]
        api: crate::client::ApiArgs,
    },
    /// Evaluate one action against a policy file and print the verdict with its explanation.
    Eval {
        /// Policy file (YAML).
        file: PathBuf,
        /// The action as JSON: {"name": ..., "args": {...}, "confidence": 0.9, "signals": {...}}.
        /// `@path` reads it from a file.
        #[arg(long)]
        action: String,
        /// Context object as JSON (or `@path`).
        #[arg(long)]
        context: Option<String>,
        /// Agent name the action comes from.
        #[arg(long, default_value = "cli")]
        agent: String,
        /// Trace id.
        #[arg(long)]
        trace_id: Option<String>,
        /// Print the whole evaluation as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Run a policy subcommand.
pub fn run(cmd: PolicyCommand) -> Result<ExitCode> {
    match cmd {
        PolicyCommand::Suggest { refresh, days, min_support, accept, dismiss, json, api } => {
            suggest(&api, refresh, days, min_support, accept, dismiss, json)
        }
        PolicyCommand::Draft { file, api } => draft(&file, &api),
        PolicyCommand::Check { files } => check(&files),
        PolicyCommand::Backtest { file, history, against, json } => backtest(&file, &history, against.as_deref(), json),
        PolicyCommand::Eval { file, action, context, agent, trace_id, json } => {
            eval(&file, &action, context.as_deref(), &agent, trace_id.as_deref(), json)
        }
    }
}

/// Read and compile a policy file, with every error rendered against its path.
pub fn load(file: &Path) -> Result<Policy> {
    let src = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    Policy::parse(&src).map_err(|e| anyhow::anyhow!("{}", e.render(&file.display().to_string()).trim_end()))
}

fn check(files: &[PathBuf]) -> Result<ExitCode> {
    let mut failed = 0;
    for file in files {
        match std::fs::read_to_string(file) {
            Err(e) => {
                eprintln!("{}: cannot read: {e}", file.display());
                failed += 1;
            }
            Ok(src) => match Policy::parse(&src) {
                Ok(p) => {
                    for w in p.warnings() {
                        eprintln!("{}:{w} (warning)", file.display());
                    }
                    println!(
                        "{}: ok: policy {:?}, {} triggers, version {}{}",
                        file.display(),
                        p.name(),
                        p.trigger_count(),
                        &p.hash()[..12],
                        match p.warnings().len() {
                            0 => String::new(),
                            n => format!(", {n} warning(s)"),
                        }
                    );
                }
                Err(errs) => {
                    eprint!("{}", errs.render(&file.display().to_string()));
                    eprintln!("{}: {} error(s)", file.display(), errs.0.len());
                    failed += 1;
                }
            },
        }
    }
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn eval(
    file: &Path,
    action: &str,
    context: Option<&str>,
    agent: &str,
    trace_id: Option<&str>,
    as_json: bool,
) -> Result<ExitCode> {
    let policy = load(file)?;
    let action_value = json_arg("--action", action)?;
    let action: Action = serde_path_to_error::deserialize(action_value)
        .map_err(|e| anyhow::anyhow!("--action: at `{}`: {}", e.path(), e.inner()))?;
    if let Err(e) = action.validate(&Limits::default()) {
        bail!("--action: {}: {}", e.field, e.message);
    }
    let context = match context {
        Some(raw) => json_arg("--context", raw)?,
        None => json!({}),
    };
    if !context.is_object() {
        bail!("--context must be a JSON object");
    }
    let agent_value = arbiter_policy::cel::agent_value(agent, "");
    let env = Env::of(&action, &context, &agent_value, trace_id);
    let ev = policy.evaluate(&env);
    if as_json {
        println!("{}", serde_json::to_string_pretty(&json!({"policy_hash": policy.hash(), "evaluation": ev}))?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("verdict: {}", ev.verdict);
    println!("why: {}", ev.explanation);
    if ev.triggers.is_empty() {
        println!("triggers fired: none");
    } else {
        println!("triggers fired:");
        for t in &ev.triggers {
            println!("  - {} ({}): {}", t.name, t.verdict, t.reason);
        }
    }
    if let (Verdict::Escalate, Some(esc)) = (ev.verdict, &ev.escalation) {
        let reviewers: Vec<&str> = esc.reviewers.iter().map(String::as_str).collect();
        println!(
            "escalation: severity {}, reviewers [{}], {} approval(s), SLA {}, fallback {}",
            esc.severity,
            reviewers.join(", "),
            esc.approvals,
            esc.sla,
            esc.fallback
        );
        for (i, tier) in esc.tiers.iter().enumerate() {
            let r: Vec<&str> = tier.reviewers.iter().map(String::as_str).collect();
            println!("  then tier {}: [{}] for {}", i + 2, r.join(", "), tier.sla);
        }
    }
    for e in &ev.condition_errors {
        println!("condition error (trigger counted as not fired): {}: {}", e.trigger, e.message);
    }
    println!("policy: {} ({})", policy.name(), &policy.hash()[..12]);
    Ok(ExitCode::SUCCESS)
}

fn backtest(
    file: &Path,
    history: &crate::history::HistoryArgs,
    against: Option<&Path>,
    as_json: bool,
) -> Result<ExitCode> {
    let new = load(file)?;
    let current = against.map(load).transpose()?;
    let mut bt = arbiter_policy::backtest::Backtest::new(&new, current.as_ref());
    crate::history::replay(history, |r, _| bt.add(r))?;
    let report = bt.finish();
    if as_json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    let pct = |x: f64| format!("{:.2}%", 100.0 * x);
    let row = |label: &str, s: &arbiter_policy::backtest::PolicyStats| {
        println!(
            "{label:<10} {:<28} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            format!("{} ({})", s.policy, &s.hash[..8]),
            s.decisions,
            pct(s.escalation_rate),
            s.denied,
            pct(s.auto_error_rate),
            s.errors_caught,
            s.errors_missed,
            s.right_denied
        )
    };
    println!(
        "{:<10} {:<28} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "", "POLICY", "DECISIONS", "ESCALATED", "DENIED", "AUTO-ERR", "CAUGHT", "MISSED", "RIGHT-DENIED"
    );
    row("new", &report.new);
    if let Some(cur) = &report.current {
        row("current", cur);
        println!();
        println!("{} decisions would change verdict:", report.changed);
        for c in &report.changes {
            println!(
                "  {} -> {}: {} ({} of them wrong actions), e.g. {}",
                c.from,
                c.to,
                c.count,
                c.wrong,
                c.examples.join(", ")
            );
        }
    }
    if report.new.condition_errors > 0 {
        println!(
            "note: {} trigger conditions could not be evaluated (the history lacks the fields they read, e.g. args); they count as not fired",
            report.new.condition_errors
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn suggest(
    api: &crate::client::ApiArgs,
    refresh: bool,
    days: Option<u32>,
    min_support: Option<u64>,
    accept: Option<String>,
    dismiss: Option<String>,
    json: bool,
) -> Result<ExitCode> {
    use arbiter_api::learning::{AcceptedSuggestion, SuggestionList};
    let api = crate::client::Api::new(api)?;
    if let Some(id) = accept {
        let a: AcceptedSuggestion = api.post_as(&format!("/v1/suggestions/{id}/accept"), &json!({}))?;
        println!("accepted: draft policy version {} carries `{}`", a.draft.hash, a.suggestion.trigger);
        println!(
            "review it with `arbiter policy backtest`, then activate it: POST /v1/policy/versions/{}/activate",
            a.draft.hash
        );
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(id) = dismiss {
        let _: arbiter_core::suggest::Suggestion = api.post_as(&format!("/v1/suggestions/{id}/dismiss"), &json!({}))?;
        println!("dismissed {id}");
        return Ok(ExitCode::SUCCESS);
    }
    let list: SuggestionList = if refresh {
        api.post_as("/v1/suggestions/refresh", &json!({"days": days, "min_support": min_support}))?
    } else {
        api.get_as("/v1/suggestions")?
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(ExitCode::SUCCESS);
    }
    if list.suggestions.is_empty() {
        println!("no open suggestions{}", if refresh { "" } else { " (--refresh mines the review history again)" });
    }
    for s in &list.suggestions {
        println!("{}  expires {}", s.id, s.expires_at);
        println!("  {}", s.description);
        println!(
            "  suggests `{}` ({}): would have answered {} escalation(s) of {} replayed; {} against what reviewers decided",
            s.trigger, s.verdict, s.backtest.escalations_saved, s.backtest.replayed, s.backtest.against_reviewers
        );
        println!("  when: {}", s.condition);
    }
    Ok(ExitCode::SUCCESS)
}

fn draft(file: &Path, api: &crate::client::ApiArgs) -> Result<ExitCode> {
    let source = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    if let Err(errs) = Policy::parse(&source) {
        eprint!("{}", errs.render(&file.display().to_string()));
        bail!("{}: {} error(s); nothing was stored", file.display(), errs.0.len());
    }
    let api = crate::client::Api::new(api)?;
    let v: arbiter_api::policy::PolicyView = api.post_yaml("/v1/policy/versions", source)?;
    println!("stored draft {} ({}, {} triggers); not active", v.version.hash, v.version.name, v.triggers);
    Ok(ExitCode::SUCCESS)
}
