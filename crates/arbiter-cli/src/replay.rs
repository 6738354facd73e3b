//! `arbiter replay export|run`: reproduce a decision in a controlled place.
//! `export` fetches a decision's self-contained bundle (over HTTP); `run`
//! re-evaluates it against the bundle's exact policy, or a candidate, with no
//! server, and says what changed.

use crate::client::{Api, ApiArgs};
use anyhow::{Context, Result, bail};
use arbiter_core::replay::{BUNDLE_VERSION, Bundle};
use arbiter_policy::Policy;
use clap::Subcommand;
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;

/// Replay subcommands.
#[derive(Debug, Subcommand)]
pub enum ReplayCommand {
    /// Write a decision's replay bundle (the action, context and signals, the exact policy source,
    /// the decision and its final verdict, the run's spans and the cassette of recorded calls).
    Export {
        /// Decision id.
        id: String,
        /// Write it here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Re-evaluate a bundle's action against its own policy version (or `--policy`), with no
    /// server, and print what changed. Exits 0 when the verdict and triggers are the ones
    /// recorded, 1 when they differ.
    Run {
        /// The bundle (from `replay export`).
        bundle: PathBuf,
        /// A candidate policy file to evaluate instead of the bundle's version.
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Run a replay subcommand.
pub fn run(cmd: ReplayCommand) -> Result<ExitCode> {
    match cmd {
        ReplayCommand::Export { id, out, api } => {
            let api = Api::new(&api)?;
            let bundle: Bundle = api.get_as(&format!("/v1/decisions/{id}/replay"))?;
            let text = serde_json::to_string_pretty(&bundle)?;
            match out {
                Some(p) => {
                    std::fs::write(&p, format!("{text}\n")).with_context(|| format!("cannot write {}", p.display()))?;
                    eprintln!("wrote the bundle of {id} to {} (sha256 {})", p.display(), bundle.sha256());
                }
                None => println!("{text}"),
            }
            Ok(ExitCode::SUCCESS)
        }
        ReplayCommand::Run { bundle, policy, json: as_json } => replay(&bundle, policy.as_ref(), as_json),
    }
}

fn replay(path: &PathBuf, candidate: Option<&PathBuf>, as_json: bool) -> Result<ExitCode> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let raw: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
    match raw.get("arbiter_replay").and_then(|v| v.as_u64()) {
        Some(v) if v == u64::from(BUNDLE_VERSION) => {}
        Some(v) => bail!("{}: bundle format {v}; this arbiter reads format {BUNDLE_VERSION}", path.display()),
        None => bail!("{}: not an Arbiter replay bundle (no `arbiter_replay` version)", path.display()),
    }
    let bundle: Bundle =
        serde_json::from_value(raw).with_context(|| format!("{}: a malformed bundle", path.display()))?;
    let (policy, against) = match candidate {
        Some(p) => (crate::policy::load(p)?, format!("{} ({})", p.display(), "candidate")),
        None => {
            let p = Policy::parse(&bundle.policy.source)
                .map_err(|e| anyhow::anyhow!("the bundle's policy no longer compiles: {e}"))?;
            if p.hash() != bundle.policy.hash {
                bail!("the bundle's policy source does not hash to {}: it was edited", bundle.policy.hash);
            }
            (p, format!("{} {}", bundle.policy.name, &bundle.policy.hash[..12.min(bundle.policy.hash.len())]))
        }
    };
    let d = &bundle.decision;
    let agent = arbiter_policy::cel::agent_value(&d.agent, &d.agent_key_id);
    let env = arbiter_policy::env_of(&d.action, &d.context, &agent, d.trace_id.as_deref());
    let eval = policy.evaluate(&env);
    let recorded: Vec<&str> = d.triggers.iter().map(|t| t.name.as_str()).collect();
    let now: Vec<&str> = eval.triggers.iter().map(|t| t.name.as_str()).collect();
    let mut differences = Vec::new();
    if eval.verdict != d.verdict {
        differences.push(format!("verdict {} -> {}", d.verdict, eval.verdict));
    }
    if recorded != now {
        differences.push(format!("triggers [{}] -> [{}]", recorded.join(", "), now.join(", ")));
    }
    let (was_esc, now_esc) = (d.escalation.as_ref(), eval.escalation.as_ref());
    if let (Some(a), Some(b)) = (was_esc, now_esc)
        && (a.severity != b.severity || a.reviewers != b.reviewers || a.approvals != b.approvals)
    {
        differences.push(format!(
            "escalation {} {} x{} -> {} {} x{}",
            a.severity,
            a.reviewers.iter().cloned().collect::<Vec<_>>().join("+"),
            a.approvals,
            b.severity,
            b.reviewers.iter().cloned().collect::<Vec<_>>().join("+"),
            b.approvals
        ));
    }
    let sha = bundle.sha256();
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "bundle_sha256": sha, "decision_id": d.id, "policy": against,
                "recorded": {"verdict": d.verdict, "triggers": recorded, "final": d.final_verdict.as_ref().map(|f| f.verdict)},
                "replayed": {"verdict": eval.verdict, "triggers": now, "explanation": eval.explanation},
                "reproduced": differences.is_empty(), "differences": differences,
                "cassette": {"tool_calls": bundle.cassette.tool_calls.len(), "model_calls": bundle.cassette.model_calls.len()},
            }))?
        );
    } else {
        println!("decision {} ({} {}), replayed against {against}", d.id, d.action.name, d.agent);
        println!("  recorded: {} [{}]", d.verdict, recorded.join(", "));
        println!("  replayed: {} [{}]: {}", eval.verdict, now.join(", "), eval.explanation);
        if let Some(f) = &d.final_verdict {
            println!("  final verdict then: {} by {}", f.verdict, f.source.as_str());
        }
        println!(
            "  cassette: {} tool call(s), {} model call(s) recorded",
            bundle.cassette.tool_calls.len(),
            bundle.cassette.model_calls.len()
        );
        if differences.is_empty() {
            println!("reproduced: the same verdict and triggers");
        } else {
            println!("changed: {}", differences.join("; "));
        }
        println!("bundle sha256 {sha}");
    }
    Ok(if differences.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
