//! `arbiter cases list|show|claim|release|decide|comment`: an on-call reviewer's terminal.

use crate::client::{Api, ApiArgs, human_ms, json_arg};
use anyhow::{Result, bail};
use clap::Subcommand;
use serde_json::{Value, json};
use std::process::ExitCode;

/// Case subcommands.
#[derive(Debug, Subcommand)]
pub enum CasesCommand {
    /// Your queue: the cases you may answer, most urgent first, with why.
    List {
        /// List all cases instead (filter with --kind/--state).
        #[arg(long)]
        all: bool,
        /// approval or review (with --all).
        #[arg(long)]
        kind: Option<String>,
        /// Comma-separated states (with --all), e.g. open,claimed.
        #[arg(long)]
        state: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// A case: the proposed action, why it escalated, answers, timeline and decision chain.
    Show {
        /// Case id.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Claim a case (renews your claim if you hold it).
    Claim {
        /// Case id.
        id: String,
        /// Lease length, e.g. 10m.
        #[arg(long)]
        lease: Option<String>,
    },
    /// Give a claimed case back to the queue.
    Release {
        /// Case id.
        id: String,
    },
    /// Approve, reject, or approve with modified arguments.
    Decide {
        /// Case id.
        id: String,
        /// Approve the action as proposed.
        #[arg(long, group = "choice")]
        approve: bool,
        /// Reject it.
        #[arg(long, group = "choice")]
        reject: bool,
        /// Approve with these arguments instead (JSON object, or @file).
        #[arg(long, group = "choice", value_name = "ARGS")]
        modify: Option<String>,
        /// Why (required).
        #[arg(long, short)]
        rationale: String,
        /// Failure-mode tag (repeatable).
        #[arg(long = "failure-mode")]
        failure_modes: Vec<String>,
    },
    /// Comment on a case, speaking for one of your roles.
    Comment {
        /// Case id.
        id: String,
        /// The comment.
        #[arg(long, short)]
        text: String,
        /// Perspective: one of your role tags (engineering, product, data_science, ux, ...).
        #[arg(long)]
        role: Option<String>,
    },
}

fn print_case(c: &Value) {
    println!(
        "case {}  [{} {}]  state {}",
        c["id"].as_str().unwrap_or(""),
        c["kind"].as_str().unwrap_or(""),
        c["escalation"]["severity"].as_str().unwrap_or(""),
        c["state"].as_str().unwrap_or("")
    );
    if let Some(claim) = c["claim"].as_object() {
        println!("claimed by {} until {}", claim["by"].as_str().unwrap_or(""), claim["until"].as_str().unwrap_or(""));
    }
}

/// Run a case subcommand.
pub fn run(cmd: CasesCommand, api: &ApiArgs) -> Result<ExitCode> {
    let api = Api::new(api)?;
    match cmd {
        CasesCommand::List { all, kind, state, json } => {
            if all {
                let mut q = vec![];
                if let Some(k) = kind {
                    q.push(format!("kind={k}"));
                }
                if let Some(s) = state {
                    q.push(format!("state={s}"));
                }
                let cases = api.get(&format!("/v1/cases?{}", q.join("&")))?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&cases)?);
                    return Ok(ExitCode::SUCCESS);
                }
                println!(
                    "{:<38} {:<9} {:<8} {:<9} {:<16} TITLE / AGENT",
                    "CASE", "KIND", "STATE", "SEVERITY", "ACTION"
                );
                for c in cases.as_array().into_iter().flatten() {
                    let title = c["review"]["title"].as_str().or(c["agent"].as_str()).unwrap_or("");
                    println!(
                        "{:<38} {:<9} {:<8} {:<9} {:<16} {}",
                        s(c, "id"),
                        s(c, "kind"),
                        s(c, "state"),
                        c["escalation"]["severity"].as_str().unwrap_or(""),
                        s(c, "action_name"),
                        title
                    );
                }
                return Ok(ExitCode::SUCCESS);
            }
            let q = api.get("/v1/queue")?;
            if json {
                println!("{}", serde_json::to_string_pretty(&q)?);
                return Ok(ExitCode::SUCCESS);
            }
            let items = q["items"].as_array().cloned().unwrap_or_default();
            if items.is_empty() {
                println!("your queue is empty");
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:>3} {:<38} {:<9} {:<14} {:<14} {:>5} {:>8}  WHY",
                "#", "CASE", "SEVERITY", "ACTION", "AGENT", "CONF", "SLA"
            );
            for i in items {
                let c = &i["case"];
                let conf = c["confidence"].as_f64().map_or("-".into(), |v| format!("{v:.2}"));
                let reasons: Vec<&str> =
                    i["reasons"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
                println!(
                    "{:>3} {:<38} {:<9} {:<14} {:<14} {:>5} {:>8}  {}",
                    i["position"],
                    s(c, "id"),
                    c["escalation"]["severity"].as_str().unwrap_or(""),
                    s(c, "action_name"),
                    s(c, "agent"),
                    conf,
                    human_ms(i["sla_left_ms"].as_i64().unwrap_or(0)),
                    reasons.join("; ")
                );
            }
        }
        CasesCommand::Show { id, json } => {
            let case = api.get(&format!("/v1/cases/{id}"))?;
            let events = api.get(&format!("/v1/cases/{id}/events"))?;
            let chain = api.get(&format!("/v1/cases/{id}/chain"))?;
            let decision = match case["decision_id"].as_str() {
                Some(d) => api.get(&format!("/v1/decisions/{d}"))?,
                None => Value::Null,
            };
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &json!({"case": case, "decision": decision, "events": events, "chain": chain})
                    )?
                );
                return Ok(ExitCode::SUCCESS);
            }
            print_case(&case);
            if !decision.is_null() {
                let a = &decision["action"];
                println!("\nproposed by {}: {} {}", s(&decision, "agent"), s(a, "name"), a["args"]);
                println!("confidence {}  signals {}", a["confidence"], a["signals"]);
                println!("why escalated: {}", s(&decision, "explanation"));
                for t in decision["triggers"].as_array().into_iter().flatten() {
                    println!("  - {} ({}): {}", s(t, "name"), s(t, "verdict"), s(t, "reason"));
                }
                let e = &case["escalation"];
                println!(
                    "needs {} approval(s) from [{}], tier {}, SLA deadline {}, fallback {}",
                    e["approvals"],
                    list(&e["reviewers"]),
                    case["tier"].as_u64().unwrap_or(0) + 1,
                    s(&case, "sla_deadline"),
                    s(e, "fallback")
                );
            }
            if let Some(r) = case["review"].as_object() {
                println!("\nreview: {}", r["title"].as_str().unwrap_or(""));
            }
            let proposed = &decision["action"]["args"];
            println!("\ntimeline:");
            for e in events.as_array().into_iter().flatten() {
                println!("  {}  {:<26} {}", s(e, "at"), s(e, "kind"), s(e, "actor"));
                let data = &e["data"];
                match s(e, "kind") {
                    "case.answered" => {
                        let a = &data["answer"];
                        println!("      {}: {}", s(a, "verdict"), s(a, "rationale"));
                        if let Some(args) = a.get("modified_args").filter(|v| v.is_object()) {
                            println!("      modified the arguments:");
                            for change in arbiter_core::diff::args_diff(proposed, args) {
                                println!("        {change}");
                            }
                        }
                    }
                    "case.requirements_raised" => {
                        let esc = &data["escalation"];
                        println!(
                            "      the modified action needs {} approval(s) from [{}], severity {} (triggers: {})",
                            esc["approvals"],
                            list(&esc["reviewers"]),
                            s(esc, "severity"),
                            list(&data["triggers"])
                        );
                    }
                    _ => {}
                }
            }
            if chain.as_array().is_some_and(|c| c.len() > 1) {
                println!("\ndecision chain ({} decisions in the same trace):", chain.as_array().map_or(0, Vec::len));
                for d in chain.as_array().into_iter().flatten() {
                    println!(
                        "  {}  {:<14} {:<9} {}",
                        s(d, "event_time"),
                        d["action"]["name"].as_str().unwrap_or(""),
                        s(d, "verdict"),
                        s(d, "id")
                    );
                }
            }
        }
        CasesCommand::Claim { id, lease } => {
            let body = lease.map_or(json!({}), |l| json!({"lease": l}));
            let c = api.post(&format!("/v1/cases/{id}/claim"), &body)?;
            println!("claimed {id} until {}", c["claim"]["until"].as_str().unwrap_or("?"));
        }
        CasesCommand::Release { id } => {
            api.post(&format!("/v1/cases/{id}/release"), &json!({}))?;
            println!("released {id}");
        }
        CasesCommand::Decide { id, approve, reject, modify, rationale, failure_modes } => {
            let body = match (approve, reject, modify) {
                (true, _, _) => {
                    json!({"decision": "approve", "rationale": rationale, "failure_modes": failure_modes})
                }
                (_, true, _) => {
                    json!({"decision": "reject", "rationale": rationale, "failure_modes": failure_modes})
                }
                (_, _, Some(args)) => {
                    json!({"decision": "modify", "rationale": rationale, "failure_modes": failure_modes, "args": json_arg("--modify", &args)?})
                }
                _ => bail!("say --approve, --reject or --modify ARGS"),
            };
            let r = api.post(&format!("/v1/cases/{id}/decision"), &body)?;
            match r["decision"]["final"].as_object() {
                Some(f) => {
                    println!("decided {id}: {} (the agent has its answer)", f["verdict"].as_str().unwrap_or("?"))
                }
                None => println!(
                    "recorded your answer on {id}; {} of {} approvals so far",
                    r["case"]["answers"].as_array().map_or(0, |a| a.iter().filter(|x| x["verdict"] == "allow").count()),
                    r["case"]["escalation"]["approvals"]
                ),
            }
        }
        CasesCommand::Comment { id, text, role } => {
            api.post(&format!("/v1/cases/{id}/comments"), &json!({"text": text, "role": role}))?;
            println!("commented on {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A string field, or "".
pub fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or("")
}

fn list(v: &Value) -> String {
    v.as_array().into_iter().flatten().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")
}
