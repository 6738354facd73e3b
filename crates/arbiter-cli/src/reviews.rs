//! `arbiter reviews open|show|stage|intervention|check|close`: work a review case from a terminal.

use crate::client::{Api, ApiArgs, json_arg};
use anyhow::{Result, bail};
use arbiter_api::reviews::ReviewView;
use arbiter_core::Case;
use clap::Subcommand;
use serde_json::json;
use std::process::ExitCode;

/// Review subcommands.
#[derive(Debug, Subcommand)]
pub enum ReviewsCommand {
    /// Open a review case, or promote a case or decisions into one.
    Open {
        /// What went wrong, in one line.
        #[arg(long)]
        title: String,
        /// More detail.
        #[arg(long, default_value = "")]
        description: String,
        /// Promote this approval case.
        #[arg(long)]
        from_case: Option<String>,
        /// A decision the review is about (repeatable).
        #[arg(long = "decision")]
        decisions: Vec<String>,
        /// A trace the review is about (repeatable).
        #[arg(long = "trace")]
        traces: Vec<String>,
        /// Print only the review's id (for scripts: `REVIEW=$(arbiter reviews open ... --quiet)`).
        #[arg(long)]
        quiet: bool,
    },
    /// Review cases, newest first: open ones unless --state says otherwise, filtered.
    List {
        /// open, closed, or open,closed for all.
        #[arg(long, default_value = "open")]
        state: String,
        #[command(flatten)]
        filters: crate::filters::CaseFilters,
        /// Print JSON (the cases and the next page's cursor).
        #[arg(long)]
        json: bool,
    },
    /// A review: its stages, interventions, what is missing, and the decision chain.
    Show {
        /// Review case id.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Record a stage entry. FIELDS is the stage's JSON fields (or @file), e.g. for
    /// contextual_analysis: '{"reproduced":"yes","steps":["..."],"environment":"staging"}'.
    Stage {
        /// Review case id.
        id: String,
        /// contextual_analysis, trace_inspection, impact_assessment or resolution_design.
        stage: String,
        /// The stage's fields as JSON (or @file).
        fields: String,
        /// Your perspective: one of your role tags.
        #[arg(long)]
        role: String,
        /// Why you conclude this.
        #[arg(long, short)]
        rationale: String,
    },
    /// Move an intervention along (proposed, in_progress, done, verified) and/or link
    /// the stored policy version that carries a policy or tool change.
    Intervention {
        /// Review case id.
        id: String,
        /// Intervention index (from `reviews show`).
        index: usize,
        /// New status.
        #[arg(long, required_unless_present = "policy_version")]
        status: Option<String>,
        /// How it was done or verified.
        #[arg(long)]
        note: Option<String>,
        /// The full hash of the stored version that carries it (`arbiter policy draft FILE` stores one).
        #[arg(long)]
        policy_version: Option<String>,
    },
    /// Backtest an intervention's policy version on the review's decisions: each
    /// must now be escalated or denied before the review can close.
    Check {
        /// Review case id.
        id: String,
        /// Intervention index (from `reviews show`).
        index: usize,
    },
    /// Close a review (every stage recorded, and an intervention or a reason none is needed).
    Close {
        /// Review case id.
        id: String,
        /// Closing remark.
        #[arg(long, short)]
        reason: String,
    },
}

/// Run a review subcommand.
pub fn run(cmd: ReviewsCommand, api: &ApiArgs) -> Result<ExitCode> {
    let api = Api::new(api)?;
    match cmd {
        ReviewsCommand::Open { title, description, from_case, decisions, traces, quiet } => {
            let body = json!({"title": title, "description": description, "from_case": from_case,
                              "decision_ids": decisions, "trace_ids": traces});
            let r: Case = api.post_as("/v1/reviews", &body)?;
            if quiet {
                println!("{}", r.id);
            } else {
                println!("opened review {}", r.id);
            }
        }
        ReviewsCommand::List { state, filters, json } => {
            let (cases, next) = filters.fetch(&api, "review", &state)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&json!({"cases": cases, "next_cursor": next}))?);
                return Ok(ExitCode::SUCCESS);
            }
            if cases.is_empty() {
                println!("no {state} review case matches");
                return Ok(ExitCode::SUCCESS);
            }
            let mut t = crate::table::Table::new(&["OPENED", "REVIEW", "STATE", "SOURCE", "MISSING", "TITLE"]);
            for c in &cases {
                let r = c.review.as_ref();
                t.row(vec![
                    c.created_at.to_string(),
                    c.id.clone(),
                    c.state.as_str().into(),
                    r.map_or("", |r| r.source.label()).into(),
                    r.map_or(String::new(), |r| r.missing().join(", ")),
                    r.map_or(String::new(), |r| r.title.clone()),
                ]);
            }
            t.print();
            crate::filters::print_next("arbiter reviews list", next.as_deref());
        }
        ReviewsCommand::Show { id, json } => {
            let v: ReviewView = api.get_as(&format!("/v1/reviews/{id}"))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(ExitCode::SUCCESS);
            }
            let c = &v.case;
            let Some(r) = &c.review else { bail!("case {id} has no review record") };
            println!("review {}: {}  [{}]  ({})", c.id, r.title, c.state.as_str(), r.source.label());
            for e in &r.entries {
                println!("  {} by {} ({}) at {}: {}", e.record.stage().as_str(), e.by, e.role, e.at, e.rationale);
            }
            for (i, x) in r.interventions.iter().enumerate() {
                println!(
                    "  intervention {i} [{}] {}: {} (owner {}, expect: {})",
                    x.status.as_str(),
                    x.spec.kind.as_str(),
                    x.spec.description,
                    x.spec.owner,
                    x.spec.expected_effect
                );
                if let Some(v) = &x.spec.policy_version {
                    let check = match &x.check {
                        Some(c) if c.policy_version == *v && c.passed() => "backtest passed".to_string(),
                        Some(c) if c.policy_version == *v => {
                            format!("backtest failed ({} still allowed)", c.still_allowed.len())
                        }
                        _ => "not backtested yet".to_string(),
                    };
                    println!("      policy version {}: {check}", &v[..12.min(v.len())]);
                }
            }
            for cm in &c.comments {
                println!("  comment by {} ({}): {}", cm.by, cm.role.as_deref().unwrap_or("-"), cm.text);
            }
            if v.missing.is_empty() {
                println!("ready to close");
            } else {
                println!("missing before it can close: {}", v.missing.join("; "));
            }
            println!("decision chain: {} decision(s)", v.chain.len());
        }
        ReviewsCommand::Stage { id, stage, fields, role, rationale } => {
            let mut body = json_arg("FIELDS", &fields)?;
            let Some(obj) = body.as_object_mut() else { bail!("FIELDS must be a JSON object") };
            obj.insert("stage".into(), json!(stage));
            obj.insert("role".into(), json!(role));
            obj.insert("rationale".into(), json!(rationale));
            api.post(&format!("/v1/reviews/{id}/stages"), &body)?;
            println!("recorded {stage} on {id}");
        }
        ReviewsCommand::Intervention { id, index, status, note, policy_version } => {
            let body = json!({"status": status, "note": note, "policy_version": policy_version});
            api.post(&format!("/v1/reviews/{id}/interventions/{index}"), &body)?;
            if let Some(v) = &policy_version {
                println!("intervention {index} of {id} is carried by policy version {v}");
            }
            if let Some(s) = &status {
                println!("intervention {index} of {id} is now {s}");
            }
        }
        ReviewsCommand::Check { id, index } => {
            let c: Case = api.post_as(&format!("/v1/reviews/{id}/interventions/{index}/check"), &json!({}))?;
            let check = c.review.as_ref().and_then(|r| r.interventions.get(index)).and_then(|x| x.check.as_ref());
            let Some(check) = check else { bail!("the server recorded no check") };
            if check.passed() {
                println!("passed: all {} decision(s) would now be escalated or denied", check.decisions.len());
            } else if check.decisions.is_empty() {
                println!("failed: the review cites no decisions to check the change against");
                return Ok(ExitCode::FAILURE);
            } else {
                println!(
                    "failed: {} of {} decision(s) would still be allowed: {}",
                    check.still_allowed.len(),
                    check.decisions.len(),
                    check.still_allowed.join(", ")
                );
                return Ok(ExitCode::FAILURE);
            }
        }
        ReviewsCommand::Close { id, reason } => {
            api.post(&format!("/v1/reviews/{id}/close"), &json!({"reason": reason}))?;
            println!("closed review {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
