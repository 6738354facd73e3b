//! `arbiter cases list|show|claim|release|decide|comment`: an on-call reviewer's terminal.

use crate::client::{Api, ApiArgs, json_arg};
use crate::table::Table;
use anyhow::{Result, bail};
use arbiter_api::cases::{CaseDecisionRequest, CaseDecisionResponse, QueueView, ReviewerChoice};
use arbiter_api::learning::CaseInsights;
use arbiter_core::audit::Event;
use arbiter_core::duration::human_ms;
use arbiter_core::{Case, Decision, FinalSource};
use clap::Subcommand;
use serde_json::json;
use std::process::ExitCode;

/// Case subcommands.
#[derive(Debug, Subcommand)]
pub enum CasesCommand {
    /// Your queue: the cases you may answer, most urgent first, with why.
    List {
        /// List all cases instead (filter with --kind/--state).
        #[arg(long)]
        all: bool,
        /// approval, review or audit (with --all).
        #[arg(long)]
        kind: Option<String>,
        /// Comma-separated states (with --all), e.g. open,claimed.
        #[arg(long)]
        state: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Decided approval cases, newest first, filtered: what was asked, how it ended, who answered.
    History {
        #[command(flatten)]
        filters: crate::filters::CaseFilters,
        /// Print JSON (the cases and the next page's cursor).
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
    /// Audits waiting for a label: allowed decisions drawn at random (the policy's
    /// `audit_sample`), oldest first, with the time left to label them.
    Audits {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Label an audit: was the action the policy allowed right? The label becomes the decision's outcome.
    Label {
        /// Audit case id.
        id: String,
        /// The allowed action was right.
        #[arg(long, group = "label", required = true)]
        right: bool,
        /// The allowed action was wrong.
        #[arg(long, group = "label", required = true)]
        wrong: bool,
        /// What you saw (optional).
        #[arg(long)]
        note: Option<String>,
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

/// A case's one-line header.
/// Similar past cases and lessons, and the blast radius.
fn print_insights(i: &CaseInsights) {
    let b = &i.blast_radius;
    println!("\nblast radius: {}", b.summary);
    println!(
        "  distinct subjects: {} in the last hour, {} in the last day; agent over 7 days: {:.0}% escalated{}",
        b.distinct_subjects_hour,
        b.distinct_subjects_day,
        100.0 * b.escalation_rate_7d,
        b.override_rate_7d.map_or(String::new(), |r| format!(", {:.0}% of reviewed ones overridden", 100.0 * r))
    );
    for h in &b.subject_history {
        println!(
            "  before: {} {} -> {} {}",
            h.at,
            h.action,
            h.verdict.map_or("pending".to_string(), |v| v.to_string()),
            h.rationale.as_deref().unwrap_or("")
        );
    }
    if i.similar_cases.is_empty() && i.similar_lessons.is_empty() {
        println!("no similar past cases or lessons");
    }
    for c in &i.similar_cases {
        println!(
            "similar case ({:.2}): {} {} {} -> {}{}: {}",
            c.score,
            c.at,
            c.action,
            c.subject.as_deref().unwrap_or(""),
            c.verdict.map_or("pending".to_string(), |v| v.to_string()),
            if c.modified { " (modified)" } else { "" },
            c.rationale.as_deref().unwrap_or("")
        );
    }
    for l in &i.similar_lessons {
        println!("similar lesson ({:.2}): {} [{}]", l.score, l.title, l.lesson_id);
    }
}

fn print_case(c: &Case) {
    println!("case {}  [{} {}]  state {}", c.id, c.kind.as_str(), c.escalation.severity, c.state.as_str());
    if let Some(claim) = &c.claim {
        println!("claimed by {} until {}", claim.by, claim.until);
    }
}

fn roles(r: &std::collections::BTreeSet<String>) -> String {
    r.iter().cloned().collect::<Vec<_>>().join(", ")
}

/// The decision record of a decided case: the final verdict, who settled it
/// and how, and every answer with its rationale, tags and modification.
fn print_decision_record(case: &Case, decision: &Decision) {
    let Some(fin) = &decision.final_verdict else { return };
    let source = match fin.source {
        FinalSource::Review => "reviewers",
        FinalSource::Policy => "the policy",
        FinalSource::SlaExpired => "the SLA fallback (nobody answered in time)",
        FinalSource::AgentCaseCap => "the open-case cap (denied at once)",
        FinalSource::Withdrawn => "the agent, which withdrew it",
    };
    println!("\ndecision: {} by {} at {}", fin.verdict, source, fin.decided_at);
    if !fin.decided_by.is_empty() {
        println!("decided by: {}", fin.decided_by.join(", "));
    }
    if let Some(a) = &fin.action {
        println!("the agent runs modified arguments:");
        for change in arbiter_core::diff::args_diff(&decision.action.args, &a.args) {
            println!("  {change}");
        }
    }
    if fin.source != FinalSource::Review {
        println!("why: {}", fin.rationale);
    }
    if !case.answers.is_empty() {
        println!("answers:");
        for a in &case.answers {
            let tags =
                if a.failure_modes.is_empty() { String::new() } else { format!(" [{}]", a.failure_modes.join(", ")) };
            let what =
                if a.modified_args.is_some() { "modified and approved".to_string() } else { a.verdict.to_string() };
            println!("  {} {} at {}{tags}: {}", a.by, what, a.at, a.rationale);
        }
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
                let cases: Vec<Case> = api.get_as(&format!("/v1/cases?{}", q.join("&")))?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&cases)?);
                    return Ok(ExitCode::SUCCESS);
                }
                let mut t = Table::new(&["CASE", "KIND", "STATE", "SEVERITY", "ACTION", "TITLE / AGENT"]);
                for c in &cases {
                    let title = c.review.as_ref().map_or(c.agent.clone(), |r| r.title.clone());
                    t.row(vec![
                        c.id.clone(),
                        c.kind.as_str().into(),
                        c.state.as_str().into(),
                        c.escalation.severity.to_string(),
                        c.action_name.clone(),
                        title,
                    ]);
                }
                t.print();
                return Ok(ExitCode::SUCCESS);
            }
            let q: QueueView = api.get_as("/v1/queue")?;
            if json {
                println!("{}", serde_json::to_string_pretty(&q)?);
                return Ok(ExitCode::SUCCESS);
            }
            if q.items.is_empty() {
                println!("your queue is empty");
                return Ok(ExitCode::SUCCESS);
            }
            let mut t = Table::new(&[
                "#",
                "CASE",
                "SEVERITY",
                "ACTION",
                "SUBJECT",
                "TRIGGER",
                "CONF/THRESHOLD",
                "SLA",
                "AGENT",
            ])
            .right(&[0, 6, 7]);
            for i in &q.items {
                let c = &i.case;
                let conf = match (c.confidence, c.threshold) {
                    (Some(v), Some(t)) => format!("{v:.2}/{t:.2}"),
                    (Some(v), None) => format!("{v:.2}"),
                    (None, _) => "-".into(),
                };
                t.row(vec![
                    i.position.to_string(),
                    c.id.clone(),
                    c.escalation.severity.to_string(),
                    c.action_name.clone(),
                    c.subject.clone().unwrap_or_else(|| "-".into()),
                    c.trigger.as_ref().map_or_else(|| c.kind.as_str().to_string(), |t| t.name.clone()),
                    conf,
                    if i.sla_left_ms < 0 { format!("-{}", human_ms(i.sla_left_ms)) } else { human_ms(i.sla_left_ms) },
                    c.agent.clone(),
                ]);
            }
            t.print();
        }
        CasesCommand::History { filters, json } => {
            let (cases, next) = filters.fetch(&api, "approval", "decided")?;
            if json {
                println!("{}", serde_json::to_string_pretty(&json!({"cases": cases, "next_cursor": next}))?);
                return Ok(ExitCode::SUCCESS);
            }
            if cases.is_empty() {
                println!("no decided case matches");
                return Ok(ExitCode::SUCCESS);
            }
            let mut t = Table::new(&["DECIDED", "CASE", "ACTION", "SUBJECT", "ENDED", "BY", "FAILURE MODES"]);
            for c in &cases {
                let decision: Option<Decision> = match &c.decision_id {
                    Some(d) => Some(api.get_as(&format!("/v1/decisions/{d}"))?),
                    None => None,
                };
                let fin = decision.as_ref().and_then(|d| d.final_verdict.as_ref());
                let modes: std::collections::BTreeSet<&str> =
                    c.answers.iter().flat_map(|a| a.failure_modes.iter().map(String::as_str)).collect();
                t.row(vec![
                    fin.map_or(c.updated_at, |f| f.decided_at).to_string(),
                    c.id.clone(),
                    c.action_name.clone(),
                    c.subject.clone().unwrap_or_default(),
                    fin.map_or(c.state.as_str().to_string(), |f| {
                        format!(
                            "{}{} ({})",
                            f.verdict,
                            if f.action.is_some() { " modified" } else { "" },
                            f.source.as_str()
                        )
                    }),
                    fin.map(|f| f.decided_by.join(",")).unwrap_or_default(),
                    modes.into_iter().collect::<Vec<_>>().join(","),
                ]);
            }
            t.print();
            crate::filters::print_next("arbiter cases history", next.as_deref());
        }
        CasesCommand::Show { id, json } => {
            let case: Case = api.get_as(&format!("/v1/cases/{id}"))?;
            let events: Vec<Event> = api.get_as(&format!("/v1/cases/{id}/events"))?;
            let chain: Vec<Decision> = api.get_as(&format!("/v1/cases/{id}/chain"))?;
            let decision: Option<Decision> = match &case.decision_id {
                Some(d) => Some(api.get_as(&format!("/v1/decisions/{d}"))?),
                None => None,
            };
            let insights: Option<CaseInsights> = match case.kind {
                arbiter_core::CaseKind::Approval => Some(api.get_as(&format!("/v1/cases/{id}/insights"))?),
                arbiter_core::CaseKind::Review | arbiter_core::CaseKind::Audit => None,
            };
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &json!({"case": case, "decision": decision, "events": events, "chain": chain, "insights": insights})
                    )?
                );
                return Ok(ExitCode::SUCCESS);
            }
            print_case(&case);
            if let Some(d) = &decision {
                let a = &d.action;
                println!("\nproposed by {}: {} {}", d.agent, a.name, a.args);
                println!("confidence {}  signals {}", a.confidence.map_or("none".into(), |c| c.to_string()), a.signals);
                println!("policy version {}", &d.policy_hash[..12.min(d.policy_hash.len())]);
                println!("why escalated: {}", d.explanation);
                for t in &d.triggers {
                    println!("  - {} ({}): {}", t.name, t.verdict, t.reason);
                }
                let e = &case.escalation;
                if case.is_active() {
                    println!(
                        "needs {} approval(s) of the same arguments from [{}]; {} so far; tier {} [{}], SLA deadline {}, fallback {}",
                        e.approvals,
                        roles(&e.reviewers),
                        case.approvals(),
                        case.tier + 1,
                        roles(case.current_reviewers()),
                        case.sla_deadline,
                        e.fallback
                    );
                } else {
                    print_decision_record(&case, d);
                }
            }
            if let Some(r) = &case.review {
                println!("\nreview: {}", r.title);
            }
            if let Some(i) = &insights {
                print_insights(i);
            }
            let proposed = decision.as_ref().map(|d| d.action.args.clone()).unwrap_or_default();
            println!("\ntimeline:");
            for e in &events {
                println!("  {}  {:<26} {}", e.at, e.kind, e.actor);
                match arbiter_core::CaseEvent::from_parts(&e.kind, &e.data) {
                    Ok(arbiter_core::CaseEvent::Answered { answer }) => {
                        println!("      {}: {}", answer.verdict, answer.rationale);
                        if let Some(args) = &answer.modified_args {
                            println!("      modified the arguments:");
                            for change in arbiter_core::diff::args_diff(&proposed, args) {
                                println!("        {change}");
                            }
                        }
                    }
                    Ok(arbiter_core::CaseEvent::RequirementsRaised { escalation, triggers, .. }) => println!(
                        "      the modified action needs {} approval(s) from [{}], severity {} (triggers: {})",
                        escalation.approvals,
                        roles(&escalation.reviewers),
                        escalation.severity,
                        triggers.join(", ")
                    ),
                    _ => {}
                }
            }
            if chain.len() > 1 {
                println!("\ndecision chain ({} decisions in the same trace or session):", chain.len());
                let mut t = Table::new(&["TIME", "ACTION", "VERDICT", "DECISION"]);
                for d in &chain {
                    t.row(vec![d.event_time.to_string(), d.action.name.clone(), d.verdict.to_string(), d.id.clone()]);
                }
                t.print();
            }
        }
        CasesCommand::Claim { id, lease } => {
            let body = lease.map_or(json!({}), |l| json!({"lease": l}));
            let c: Case = api.post_as(&format!("/v1/cases/{id}/claim"), &body)?;
            println!("claimed {id} until {}", c.claim.map_or("?".into(), |c| c.until.to_string()));
        }
        CasesCommand::Release { id } => {
            api.post(&format!("/v1/cases/{id}/release"), &json!({}))?;
            println!("released {id}");
        }
        CasesCommand::Decide { id, approve, reject, modify, rationale, failure_modes } => {
            let (decision, args) = match (approve, reject, modify) {
                (true, _, _) => (ReviewerChoice::Approve, None),
                (_, true, _) => (ReviewerChoice::Reject, None),
                (_, _, Some(args)) => (ReviewerChoice::Modify, Some(json_arg("--modify", &args)?)),
                _ => bail!("say --approve, --reject or --modify ARGS"),
            };
            let body = CaseDecisionRequest { decision, rationale, args, failure_modes };
            let r: CaseDecisionResponse = api.post_as(&format!("/v1/cases/{id}/decision"), &body)?;
            match r.decision.and_then(|d| d.final_verdict) {
                Some(f) => println!("decided {id}: {} (the agent has its answer)", f.verdict),
                None => println!(
                    "recorded your answer on {id}; {} of {} approvals of these arguments so far",
                    r.case.approvals(),
                    r.case.escalation.approvals
                ),
            }
        }
        CasesCommand::Audits { json } => {
            let mut cases: Vec<Case> = api.get_as("/v1/cases?kind=audit&state=open,claimed&limit=500")?;
            cases.sort_by_key(|c| c.sla_deadline);
            if json {
                println!("{}", serde_json::to_string_pretty(&cases)?);
                return Ok(ExitCode::SUCCESS);
            }
            if cases.is_empty() {
                println!("no audit is waiting for a label");
                return Ok(ExitCode::SUCCESS);
            }
            let now = arbiter_core::time::Clock::now(&arbiter_core::time::SystemClock);
            let mut t =
                Table::new(&["CASE", "ACTION", "SUBJECT", "CONFIDENCE", "LABEL DUE", "AGENT", "STATE"]).right(&[3, 4]);
            for c in &cases {
                let left = c.sla_deadline.0 - now.0;
                t.row(vec![
                    c.id.clone(),
                    c.action_name.clone(),
                    c.subject.clone().unwrap_or_else(|| "-".into()),
                    c.confidence.map_or("-".into(), |v| format!("{v:.2}")),
                    if left < 0 { format!("overdue {}", human_ms(left)) } else { human_ms(left) },
                    c.agent.clone(),
                    c.state.as_str().into(),
                ]);
            }
            t.print();
            println!("label one: arbiter cases label CASE --right|--wrong [--note ...]");
        }
        CasesCommand::Label { id, right, wrong: _, note } => {
            let r: arbiter_api::cases::LabelResponse =
                api.post_as(&format!("/v1/cases/{id}/label"), &json!({"correct": right, "note": note}))?;
            println!(
                "labelled {id}: the allowed {} was {} (decision {})",
                r.decision.action.name,
                if right { "right" } else { "wrong" },
                r.decision.id
            );
        }
        CasesCommand::Comment { id, text, role } => {
            api.post(&format!("/v1/cases/{id}/comments"), &json!({"text": text, "role": role}))?;
            println!("commented on {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
