//! `arbiter reviews open|show|stage|intervention|close`: work a review case from a terminal.

use crate::cases::s;
use crate::client::{Api, ApiArgs, json_arg};
use anyhow::{Result, bail};
use clap::Subcommand;
use serde_json::{Value, json};
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
    /// Move an intervention along: proposed, in_progress, done, verified.
    Intervention {
        /// Review case id.
        id: String,
        /// Intervention index (from `reviews show`).
        index: usize,
        /// New status.
        #[arg(long)]
        status: String,
        /// How it was done or verified.
        #[arg(long)]
        note: Option<String>,
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
        ReviewsCommand::Open { title, description, from_case, decisions, traces } => {
            let r = api.post("/v1/reviews", &json!({"title": title, "description": description, "from_case": from_case, "decision_ids": decisions, "trace_ids": traces}))?;
            println!("opened review {}", s(&r, "id"));
        }
        ReviewsCommand::Show { id, json } => {
            let v = api.get(&format!("/v1/reviews/{id}"))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(ExitCode::SUCCESS);
            }
            let c = &v["case"];
            let r = &c["review"];
            println!("review {}: {}  [{}]", s(c, "id"), s(r, "title"), s(c, "state"));
            for e in r["entries"].as_array().into_iter().flatten() {
                println!(
                    "  {} by {} ({}) at {}: {}",
                    s(e, "stage"),
                    s(e, "by"),
                    s(e, "role"),
                    s(e, "at"),
                    s(e, "rationale")
                );
            }
            for i in r["interventions"].as_array().into_iter().flatten() {
                println!(
                    "  intervention {} [{}] {}: {} (owner {}, expect: {})",
                    i["index"],
                    s(i, "status"),
                    s(i, "kind"),
                    s(i, "description"),
                    s(i, "owner"),
                    s(i, "expected_effect")
                );
            }
            for cm in c["comments"].as_array().into_iter().flatten() {
                println!("  comment by {} ({}): {}", s(cm, "by"), cm["role"].as_str().unwrap_or("-"), s(cm, "text"));
            }
            let missing: Vec<&str> = v["missing"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            if missing.is_empty() {
                println!("ready to close");
            } else {
                println!("missing before it can close: {}", missing.join("; "));
            }
            println!("decision chain: {} decision(s)", v["chain"].as_array().map_or(0, Vec::len));
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
        ReviewsCommand::Intervention { id, index, status, note } => {
            api.post(&format!("/v1/reviews/{id}/interventions/{index}"), &json!({"status": status, "note": note}))?;
            println!("intervention {index} of {id} is now {status}");
        }
        ReviewsCommand::Close { id, reason } => {
            api.post(&format!("/v1/reviews/{id}/close"), &json!({"reason": reason}))?;
            println!("closed review {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
