//! `arbiter policy check|eval`.

use crate::client::json_arg;
use anyhow::{Context, Result, bail};
use arbiter_core::{Action, Limits, Verdict};
use arbiter_policy::Policy;
use clap::Subcommand;
use serde_json::json;
use std::collections::BTreeSet;
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
        /// A store (SQLite file or postgres:// URL) to check names against: action classes no
        /// decision had in the last year and reviewer roles no active key holds are warned about.
        #[arg(long)]
        db: Option<PathBuf>,
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
    /// Stored versions on the server, newest first, with the active one marked (over HTTP).
    Versions {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        api: crate::client::ApiArgs,
    },
    /// Activate a stored version (a hash or a unique prefix of at least 8 characters).
    /// Shows its backtest against the active version first and asks to confirm.
    Activate {
        /// The version's hash or a unique prefix.
        hash: String,
        /// Do not ask (for scripts).
        #[arg(long)]
        yes: bool,
        /// Activate even if it changes more verdicts on recent decisions than the server's guard allows.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        api: crate::client::ApiArgs,
    },
    /// Activate the version that was active before the current one (with the same confirmation).
    Rollback {
        /// Do not ask (for scripts).
        #[arg(long)]
        yes: bool,
        /// Activate even if it changes more verdicts on recent decisions than the server's guard allows.
        #[arg(long)]
        force: bool,
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
        PolicyCommand::Versions { json, api } => versions(&api, json),
        PolicyCommand::Activate { hash, yes, force, api } => activate(&api, Target::Hash(hash), yes, force),
        PolicyCommand::Rollback { yes, force, api } => activate(&api, Target::Previous, yes, force),
        PolicyCommand::Check { files, db } => check(&files, db.as_deref()),
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

/// The action classes a store's decisions had in the last year and the reviewer roles its active keys hold.
fn known_names(db: &Path) -> Result<(BTreeSet<String>, BTreeSet<String>)> {
    crate::process::current_thread()?.block_on(async {
        let store = crate::store::open_existing(db).await?;
        let now = arbiter_core::Clock::now(&arbiter_core::SystemClock);
        // the last year of the hourly roll-up
        let since = now.plus_millis(-365 * 24 * 3600 * 1000);
        let classes = store.dashboard(since).await?.by_class.into_iter().map(|c| c.action);
        let classes: BTreeSet<String> = classes.collect();
        let roles: BTreeSet<String> = store
            .keys()
            .await?
            .into_iter()
            .filter(|k| k.role != arbiter_core::Role::Agent && k.inactive_at(now).is_none())
            .flat_map(|k| k.tags)
            .collect();
        store.close();
        Ok((classes, roles))
    })
}

fn check(files: &[PathBuf], db: Option<&Path>) -> Result<ExitCode> {
    let known = db.map(known_names).transpose()?;
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
                    let names = p.name_warnings(known.as_ref().map(|k| &k.0), known.as_ref().map(|k| &k.1));
                    for w in &names {
                        eprintln!("{}: {w} (warning)", file.display());
                    }
                    println!(
                        "{}: ok: policy {:?}, {} triggers, version {}{}",
                        file.display(),
                        p.name(),
                        p.trigger_count(),
                        &p.hash()[..12],
                        match p.warnings().len() + names.len() {
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
    let env = arbiter_policy::env_of(&action, &context, &agent_value, trace_id);
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
            "activate it after reading its backtest against the live version: arbiter policy activate {}",
            &a.draft.hash[..12.min(a.draft.hash.len())]
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

fn versions(api: &crate::client::ApiArgs, json: bool) -> Result<ExitCode> {
    let api = crate::client::Api::new(api)?;
    let list: Vec<arbiter_core::policy_version::PolicyVersionSummary> = api.get_as("/v1/policy/versions")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = crate::table::Table::new(&["HASH", "NAME", "STORED", "BY", "LAST ACTIVATED", ""]);
    for v in &list {
        t.row(vec![
            v.hash[..12.min(v.hash.len())].to_string(),
            v.name.clone(),
            v.created_at.to_string(),
            v.created_by.clone(),
            v.last_activated_at.map_or_else(|| "never (draft)".to_string(), |t| t.to_string()),
            if v.active { "active".into() } else { String::new() },
        ]);
    }
    t.print();
    Ok(ExitCode::SUCCESS)
}

/// Which version `activate` means.
enum Target {
    Hash(String),
    Previous,
}

fn activate(api: &crate::client::ApiArgs, target: Target, yes: bool, force: bool) -> Result<ExitCode> {
    use arbiter_core::policy_version::PolicyVersionSummary;
    use arbiter_policy::backtest::BacktestReport;
    use std::io::{BufRead, IsTerminal, Write};
    let api = crate::client::Api::new(api)?;
    let list: Vec<PolicyVersionSummary> = api.get_as("/v1/policy/versions")?;
    let active = list.iter().find(|v| v.active);
    let chosen: &PolicyVersionSummary = match &target {
        Target::Hash(h) => {
            let h = h.trim().to_ascii_lowercase();
            if h.len() < 8 {
                bail!("give at least 8 characters of the hash (`arbiter policy versions` lists them)");
            }
            let found: Vec<&PolicyVersionSummary> = list.iter().filter(|v| v.hash.starts_with(&h)).collect();
            match found.as_slice() {
                [one] => one,
                [] => bail!("no stored version starts with {h} (`arbiter policy versions` lists them)"),
                _ => bail!("{h} names {} versions; give more of the hash", found.len()),
            }
        }
        Target::Previous => list
            .iter()
            .filter(|v| !v.active && v.last_activated_at.is_some())
            .max_by_key(|v| v.last_activated_at)
            .context("no earlier active version to roll back to")?,
    };
    if chosen.active {
        println!("{} ({}) is already active", &chosen.hash[..12], chosen.name);
        return Ok(ExitCode::SUCCESS);
    }
    let bt: BacktestReport = api.post_as(&format!("/v1/policy/versions/{}/backtest", chosen.hash), &json!({}))?;
    println!("{} ({}, stored {} by {})", &chosen.hash[..12], chosen.name, chosen.created_at, chosen.created_by);
    match (&bt.current, active) {
        (Some(cur), Some(a)) => println!(
            "against the active {} on {} labelled decisions: escalation {:.1}% -> {:.1}%, wrong actions run unreviewed {:.2}% -> {:.2}%; {} verdict(s) change",
            &a.hash[..12],
            bt.new.decisions,
            100.0 * cur.escalation_rate,
            100.0 * bt.new.escalation_rate,
            100.0 * cur.auto_error_rate,
            100.0 * bt.new.auto_error_rate,
            bt.changed
        ),
        _ => println!("no active version to compare with"),
    }
    if !yes {
        if !std::io::stdin().is_terminal() {
            bail!("not activated: confirm with --yes when not at a terminal");
        }
        print!("Activate it? [y/N] ");
        std::io::stdout().flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            println!("not activated");
            return Ok(ExitCode::FAILURE);
        }
    }
    let path = format!("/v1/policy/versions/{}/activate{}", chosen.hash, if force { "?force=true" } else { "" });
    let v: arbiter_api::policy::PolicyView = match api.post_as(&path, &json!({})) {
        Ok(v) => v,
        Err(e) => match e.downcast_ref::<arbiter_client::Error>().and_then(arbiter_client::Error::problem) {
            Some(p) if p.code == "policy_change_unconfirmed" => {
                bail!(
                    "not activated: {}; if that is intended, rerun with --force",
                    p.detail.split("; review").next().unwrap_or(&p.detail)
                )
            }
            Some(p) if p.code == "policy_undoes_lessons" => {
                let mut why = String::from("not activated: this version undoes published lessons:");
                for l in p.lessons.iter().flatten() {
                    why.push_str(&format!("\n  - {} ({}): {}", l.title, l.lesson_id, l.changes.join("; ")));
                }
                why.push_str("\nif that is intended, rerun with --force (the lessons will show the change as undone)");
                bail!(why)
            }
            _ => return Err(e),
        },
    };
    println!("activated {} ({}, {} triggers)", &v.version.hash[..12], v.version.name, v.triggers);
    Ok(ExitCode::SUCCESS)
}
