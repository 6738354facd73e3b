//! `arbiter demo --projects`: a second team on the same server. Beside the
//! SOC team (the default project), a support team gets a project of its own
//! (`support`): its refund policy, its agent, its lead, its queue and its
//! audit chain. Its agent proposes a few hundred refunds, its lead works the
//! queue, and then the two teams are shown side by side, with what each
//! cannot see of the other.

use crate::client::Client;
use anyhow::{Result, bail};
use arbiter_api::audit::Verification;
use arbiter_api::cases::{CaseDecisionRequest, QueueView, ReviewerChoice};
use arbiter_api::decisions::DecisionRequest;
use arbiter_api::keys::CreateKey;
use arbiter_api::policy::PolicyView;
use arbiter_api::projects::CreateProject;
use arbiter_core::rate::RateLimit;
use arbiter_core::{Action, Role, Verdict};
use serde_json::json;

/// The support team's policy.
pub const REFUNDS_POLICY: &str = include_str!("../../../../examples/policies/refunds.yaml");

/// The second project's id.
pub const PROJECT: &str = "support";

/// What the support team's day left, and the keys to explore it with.
pub struct SecondTeam {
    /// The support lead's key.
    pub lead_key: String,
    /// The refund agent's key.
    pub agent_key: String,
}

async fn key(admin: &Client, name: &str, role: Role, tags: &[&str], unlimited: bool) -> Result<String> {
    let created = admin
        .create_key(&CreateKey {
            name: name.into(),
            role,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            expires_in: None,
            rate_limit: unlimited.then_some(RateLimit::Unlimited),
            same_principal: false,
        })
        .await?;
    Ok(created.key)
}

/// Create the support project, run its day, and show both teams side by side.
/// `soc_admin` is the server admin (the default project's admin key);
/// `soc_analyst` a reviewer of the SOC team.
pub async fn run(soc_admin: &Client, soc_analyst: &Client, seed: u64, alerts: usize) -> Result<SecondTeam> {
    println!("\nA second team on the same server: the support team gets a project of its own.");
    let project =
        soc_admin.create_project(&CreateProject { id: PROJECT.into(), name: Some("Support refunds".into()) }).await?;
    // the server admin sets the project up; from then on the team works with its own keys
    let admin = soc_admin.in_project(PROJECT);
    let draft: PolicyView = admin.post_yaml("/v1/policy/versions", REFUNDS_POLICY.to_string()).await?;
    let _: PolicyView = admin.post(&format!("/v1/policy/versions/{}/activate", draft.version.hash), &json!({})).await?;
    let agent = admin.as_key(key(&admin, "refund-agent", Role::Agent, &[], true).await?);
    let lead = admin.as_key(key(&admin, "sam", Role::Reviewer, &["support_lead"], false).await?);
    println!(
        "  project `{}` ({}): policy {} (refunds over 300 wait for a support lead, over 2000 are refused), \
         an agent key and a lead (sam: support_lead)",
        project.id,
        project.name,
        &draft.version.hash[..12]
    );
    // the support agent's refunds: mostly small and confident, some large, some repeat customers
    let mut rng = arbiter_core::rng::Rng::new(seed ^ 0x5u64);
    let n = (alerts / 20).clamp(50, 400);
    let (mut allowed, mut denied, mut escalated) = (0, 0, 0);
    for i in 0..n {
        let amount = (rng.lognormal(60.0, 1.3) * 100.0).round() / 100.0;
        // mostly sure of itself; about one in five below the policy's 0.85
        let confidence = 0.98 - 0.3 * rng.uniform().powi(3);
        let repeat = if rng.chance(0.08) { 3 + rng.below(3) } else { rng.below(3) };
        let req = DecisionRequest {
            action: Action {
                name: "refund".into(),
                args: json!({"order_id": format!("ORD-{:05}", 10_000 + i), "customer": format!("cust-{}", rng.below(120)),
                             "amount": amount, "currency": "EUR", "reason": "damaged_item"}),
                confidence: Some(confidence),
                signals: json!({"refunds_last_30d": repeat}),
            },
            trace_id: None,
            context: None,
            event_time: None,
        };
        let d = agent.propose(&req, Some(&format!("refund-{seed}-{i}"))).await?;
        match d.verdict {
            Verdict::Allow => allowed += 1,
            Verdict::Deny => denied += 1,
            Verdict::Escalate => escalated += 1,
        }
    }
    // the support lead works the queue to the end: refunds up to 1000 approved, the rest refused
    let mut answered = 0;
    loop {
        let queue: QueueView = lead.get("/v1/queue").await?;
        if queue.items.is_empty() {
            break;
        }
        for item in &queue.items {
            let Some(decision_id) = item.case.decision_id.as_deref() else { continue };
            let d: arbiter_core::Decision = lead.get(&format!("/v1/decisions/{decision_id}")).await?;
            let amount = d.action.args["amount"].as_f64().unwrap_or(0.0);
            let (decision, rationale) = if amount <= 1000.0 {
                (ReviewerChoice::Approve, "order and damage photo checked")
            } else {
                (ReviewerChoice::Reject, "above what support refunds without finance")
            };
            let body = CaseDecisionRequest { decision, rationale: rationale.into(), args: None, failure_modes: vec![] };
            let _: serde_json::Value = lead.post(&format!("/v1/cases/{}/decision", item.case.id), &body).await?;
            answered += 1;
        }
    }
    println!(
        "  the refund agent proposed {n} refunds: {allowed} allowed, {denied} refused, {escalated} escalated; \
         sam answered {answered} cases from the support queue"
    );
    // side by side
    println!(
        "\n  {:<10} {:>9} {:>10} {:>11} {:>8}  HEAD",
        "PROJECT", "POLICY", "CASES OPEN", "AUDIT CHAIN", "VERIFIED"
    );
    for (name, who) in [("default", soc_admin.clone()), (PROJECT, soc_admin.in_project(PROJECT))] {
        let policy: PolicyView = who.get("/v1/policy").await?;
        let open: Vec<serde_json::Value> = who.get("/v1/cases?state=open&limit=1000").await?;
        let v: Verification = who.get("/v1/audit/verify").await?;
        let head = v.report.head.as_ref().map_or("-".to_string(), |h| format!("{}:{}", h.seq, &h.hash[..12]));
        println!(
            "  {:<10} {:>9} {:>10} {:>11} {:>8}  {head}",
            name,
            policy.version.name.chars().take(9).collect::<String>(),
            open.len(),
            format!("{} events", v.report.events),
            if v.report.problem.is_none() { "ok" } else { "FAILED" },
        );
        if v.report.problem.is_some() {
            bail!("the audit chain of project {name} does not verify: {:?}", v.report.problem);
        }
    }
    // what each team cannot see of the other
    let soc_queue: QueueView = soc_analyst.get("/v1/queue").await?;
    let leaked = soc_queue.items.iter().any(|i| i.case.action_name == "refund");
    let stepped = soc_analyst.in_project(PROJECT).get::<serde_json::Value>("/v1/queue").await;
    let crossed = agent.in_project("default").get::<serde_json::Value>("/v1/queue").await;
    if leaked || stepped.is_ok() || crossed.is_ok() {
        bail!("a team saw the other team's work: the projects are not apart");
    }
    println!("  apart: the SOC analyst's queue holds no refund; asked for the support queue, the server answers");
    println!("    {}", stepped.err().map(|e| e.to_string()).unwrap_or_default());
    println!("  and the refund agent's key is refused in `default` the same way.");
    Ok(SecondTeam { lead_key: lead.key().to_string(), agent_key: agent.key().to_string() })
}
