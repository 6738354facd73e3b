//! The simulated reviewer pool: analysts and leads who claim the top of their
//! queue, take a lognormal while to decide, sometimes modify (network-only
//! containment), and make a small share of mistakes.

use super::MIN;
use crate::client::Client;
use anyhow::Result;
use arbiter_api::cases::{CaseDecisionRequest, ReviewerChoice};
use arbiter_api::keys::CreateKey;
use arbiter_core::Role;
use arbiter_core::rng::Rng;
use serde_json::{Value, json};
use std::collections::HashMap;

/// How often a reviewer gets a case wrong.
const HUMAN_ERROR_RATE: f64 = 0.03;
/// How often an approval of a host action is narrowed to network-only containment.
const MODIFY_RATE: f64 = 0.1;
/// Analyst names, in hiring order.
const ANALYSTS: [&str; 6] = ["ana", "ben", "cho", "dev", "eli", "fay"];
/// The leads and specialists every pool has: (name, role tags).
const LEADS: [(&str, &[&str]); 3] = [
    ("lee", &["soc_lead", "network_team"]),
    ("ida", &["identity_team", "soc_lead"]),
    ("ivy", &["incident_commander", "data_protection"]),
];
/// The lead whose key the walkthrough hands out.
const LEAD: &str = "lee";

struct Reviewer {
    name: &'static str,
    api: Client,
    busy_until: i64,
    /// The case being worked and when the reviewer will be done with it.
    working: Option<(String, i64)>,
}

/// What the reviewers did.
#[derive(Debug, Default, Clone, Copy)]
pub struct PoolTally {
    /// Cases answered.
    pub answered: u64,
    /// Of them, approved with modified arguments.
    pub modified: u64,
    /// Answers that went against the ground truth.
    pub human_errors: u64,
}

/// The pool.
pub struct Pool {
    reviewers: Vec<Reviewer>,
    /// Case id → (was the proposed action right?, its arguments).
    truth: HashMap<String, (bool, Value)>,
    rng: Rng,
    tally: PoolTally,
}

impl Pool {
    /// Create a key for each of `analysts` analysts (1–6) and the three leads.
    pub async fn hire(admin: &Client, analysts: usize, seed: u64) -> Result<Pool> {
        let names = ANALYSTS.iter().take(analysts.clamp(1, ANALYSTS.len())).map(|n| (*n, &["soc_analyst"][..]));
        let mut reviewers = Vec::new();
        for (name, tags) in names.chain(LEADS) {
            let created = admin
                .create_key(&CreateKey {
                    name: name.into(),
                    role: Role::Reviewer,
                    tags: tags.iter().map(|t| t.to_string()).collect(),
                    expires_in: None,
                    rate_limit: None,
                    same_principal: false,
                })
                .await?;
            reviewers.push(Reviewer { name, api: admin.as_key(created.key), busy_until: 0, working: None });
        }
        Ok(Pool { reviewers, truth: HashMap::new(), rng: Rng::new(seed ^ 0xD3E0), tally: PoolTally::default() })
    }

    /// The first analyst's key (soc_analyst), for the reader to sign in with.
    pub fn analyst_key(&self) -> &str {
        self.reviewers.first().map_or("", |r| r.api.key())
    }

    /// The lead's key, for the reader to sign in with.
    pub fn lead_key(&self) -> &str {
        self.reviewers.iter().find(|r| r.name == LEAD).map_or("", |r| r.api.key())
    }

    /// What the reviewers did so far.
    pub fn tally(&self) -> PoolTally {
        self.tally
    }

    /// Remember the ground truth of a new case, which the reviewer will "see" in the evidence.
    pub fn expect(&mut self, case: String, correct: bool, args: Value) {
        self.truth.insert(case, (correct, args));
    }

    /// At minute `t`: reviewers who are done answer, idle ones claim the top of their queue.
    pub async fn work(&mut self, t: i64) -> Result<()> {
        for r in self.reviewers.iter_mut() {
            if let Some((case, _)) = r.working.take_if(|(_, done)| *done <= t) {
                let (right, args) = self.truth.get(&case).cloned().unwrap_or((true, Value::Null));
                let mistaken = self.rng.chance(HUMAN_ERROR_RATE);
                self.tally.human_errors += u64::from(mistaken);
                let approve = right != mistaken;
                let modify = approve && self.rng.chance(MODIFY_RATE) && args.get("host").is_some();
                let answer = if modify {
                    let mut narrowed = args;
                    narrowed["mode"] = json!("network_only");
                    CaseDecisionRequest {
                        decision: ReviewerChoice::Modify,
                        rationale: "contain at the network level only; keep the host reachable for forensics".into(),
                        args: Some(narrowed),
                        failure_modes: vec![],
                    }
                } else if approve {
                    CaseDecisionRequest {
                        decision: ReviewerChoice::Approve,
                        rationale: "checked the alert evidence; the action fits".into(),
                        args: None,
                        failure_modes: vec![],
                    }
                } else {
                    CaseDecisionRequest {
                        decision: ReviewerChoice::Reject,
                        rationale: "the evidence does not support this action".into(),
                        args: None,
                        failure_modes: vec![],
                    }
                };
                // A case can be gone by now (its SLA fallback applied): that answer simply does not count.
                if r.api.answer(&case, &answer).await.is_ok() {
                    self.tally.answered += 1;
                    self.tally.modified += u64::from(modify);
                }
            }
            if r.working.is_none() && r.busy_until <= t {
                let queue = r.api.queue().await?;
                let Some(top) = queue.items.into_iter().find(|i| i.case.claim.is_none()) else { continue };
                if r.api.claim(&top.case.id).await.is_ok() {
                    let took = ((self.rng.lognormal(4.0, 0.5) * MIN as f64) as i64).max(MIN);
                    r.working = Some((top.case.id, t + took));
                    r.busy_until = t + took;
                }
            }
        }
        Ok(())
    }
}
