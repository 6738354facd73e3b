//! Cases: work for people.

use serde::{Deserialize, Serialize};

/// Why a case exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseKind {
    /// An agent is waiting for a person's answer.
    Approval,
    /// A failure or anomaly to analyse.
    Review,
    /// An allowed decision drawn for audit: a person labels it afterwards (the agent was not held).
    Audit,
}

/// Where a case is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseState {
    /// Waiting in the queue.
    Open,
    /// A reviewer holds a lease on it.
    Claimed,
    /// Answered; the agent has its final verdict.
    Decided,
    /// Finished without further work (e.g. a closed review).
    Closed,
}

impl CaseState {
    /// The lowercase name used in the API and storage.
    pub fn as_str(self) -> &'static str {
        match self {
            CaseState::Open => "open",
            CaseState::Claimed => "claimed",
            CaseState::Decided => "decided",
            CaseState::Closed => "closed",
        }
    }

    /// Parse the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "open" => CaseState::Open,
            "claimed" => CaseState::Claimed,
            "decided" => CaseState::Decided,
            "closed" => CaseState::Closed,
            _ => return None,
        })
    }
}

impl CaseKind {
    /// The lowercase name used in the API and storage.
    pub fn as_str(self) -> &'static str {
        match self {
            CaseKind::Approval => "approval",
            CaseKind::Review => "review",
            CaseKind::Audit => "audit",
        }
    }

    /// Parse the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "approval" => CaseKind::Approval,
            "review" => CaseKind::Review,
            "audit" => CaseKind::Audit,
            _ => return None,
        })
    }
}

use crate::escalation::Escalation;
use crate::time::Timestamp;
use crate::verdict::Verdict;

/// One reviewer's answer on an approval case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    /// Reviewer key name.
    pub by: String,
    /// Reviewer key id.
    pub key_id: String,
    /// `allow` (approve) or `deny` (reject).
    pub verdict: Verdict,
    /// Edited arguments the agent should use instead of its own, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified_args: Option<serde_json::Value>,
    /// Why, in the reviewer's words.
    pub rationale: String,
    /// Failure-mode tags (e.g. `wrong_target`, `low_evidence`), for learning across cases.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failure_modes: Vec<String>,
    /// Digest (RFC 8785 canonical JSON, SHA-256) of the arguments this answer
    /// approves or rejects: the modified ones for a modification, otherwise
    /// the case's arguments at the time. An approval counts only toward
    /// exactly these arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args_digest: Option<String>,
    /// When it happened (the server's clock).
    pub at: Timestamp,
    /// Where it was given, when not in the console or the API (`slack`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
}

/// Work for people, as projected from the event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Case {
    /// Time-ordered unique id.
    pub id: String,
    /// Approval or review.
    pub kind: CaseKind,
    /// Where it is in its life.
    pub state: CaseState,
    /// The decision the case is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_id: Option<String>,
    /// Action class of that decision.
    pub action_name: String,
    /// Agent that proposed it.
    pub agent: String,
    /// Who may answer, how fast, and the fallback.
    pub escalation: Escalation,
    /// Index of the current tier: 0 is the first (the escalation's own reviewers).
    pub tier: usize,
    /// When the current tier's time runs out.
    pub sla_deadline: Timestamp,
    /// Answers so far.
    pub answers: Vec<Answer>,
    /// The agent's confidence in the proposed action, if it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    /// The trace the decision belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// Digest of the arguments the agent proposed (approval cases); see [`Answer::args_digest`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args_digest: Option<String>,
    /// The reviewer holding the case, until the lease runs out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<Claim>,
    /// Comments, each tagged with the commenter's perspective.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub comments: Vec<Comment>,
    /// The four-stage record, for review cases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<crate::review::Review>,
    /// What the action acts on (`host:srv-db-01`), for approval cases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The first trigger that escalated it, with its description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<crate::decision::FiredTrigger>,
    /// The class's confidence threshold when it was proposed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// How long before a tier's time runs out an unclaimed approval case is
    /// announced as due soon (`case.due_soon`, for paging), if at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warn_before_ms: Option<i64>,
    /// The tier that was announced as due soon, once it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warned_tier: Option<usize>,
    /// When it was opened.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

/// A reviewer's time-limited hold on a case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// Reviewer key name.
    pub by: String,
    /// Reviewer key id.
    pub key_id: String,
    /// When the lease runs out and the case returns to the queue.
    pub until: Timestamp,
}

/// A remark on a case, tagged with the perspective it speaks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Comment {
    /// Author key name.
    pub by: String,
    /// Perspective (`engineering`, `product`, `data_science`, `ux`, ...), one of the author's role tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The text.
    pub text: String,
    /// When it happened (the server's clock).
    pub at: Timestamp,
}

impl Case {
    /// A new, open approval case for `decision`, answered under `escalation`
    /// (its first tier's time starts `now`).
    pub fn new_approval(
        id: String,
        decision: &crate::decision::Decision,
        escalation: Escalation,
        now: Timestamp,
    ) -> Case {
        Case {
            id,
            kind: CaseKind::Approval,
            state: CaseState::Open,
            decision_id: Some(decision.id.clone()),
            action_name: decision.action.name.clone(),
            agent: decision.agent.clone(),
            sla_deadline: now.plus_millis(escalation.sla.as_millis()),
            escalation,
            tier: 0,
            answers: vec![],
            confidence: decision.action.confidence,
            trace_id: decision.trace_id.clone(),
            args_digest: Some(crate::canonical::args_digest(&decision.action.args)),
            claim: None,
            comments: vec![],
            review: None,
            subject: decision.subject.clone(),
            trigger: decision.triggers.iter().find(|t| t.verdict == Verdict::Escalate).cloned(),
            threshold: decision.threshold,
            warn_before_ms: None,
            warned_tier: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// A new, open audit case for `decision`, which the policy allowed and the
    /// audit draw selected: people with `reviewers`' roles label it within
    /// `sla`. The decision stays as it is; the label becomes its outcome.
    pub fn new_audit(
        id: String,
        decision: &crate::decision::Decision,
        reviewers: std::collections::BTreeSet<String>,
        sla: crate::duration::HumanDuration,
        now: Timestamp,
    ) -> Case {
        Case {
            id,
            kind: CaseKind::Audit,
            state: CaseState::Open,
            decision_id: Some(decision.id.clone()),
            action_name: decision.action.name.clone(),
            agent: decision.agent.clone(),
            sla_deadline: now.plus_millis(sla.as_millis()),
            escalation: Escalation {
                severity: crate::verdict::Severity::Low,
                reviewers,
                approvals: 1,
                sla,
                fallback: Verdict::Allow,
                tiers: vec![],
            },
            tier: 0,
            answers: vec![],
            confidence: decision.action.confidence,
            trace_id: decision.trace_id.clone(),
            args_digest: None,
            claim: None,
            comments: vec![],
            review: None,
            subject: decision.subject.clone(),
            trigger: None,
            threshold: decision.threshold,
            warn_before_ms: None,
            warned_tier: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// A new, open review case about `action_name` / `agent`, worked by
    /// `reviewers`. Review cases have no SLA tiers or fallback; their deadline
    /// (a week) only orders them.
    pub fn new_review(
        id: String,
        review: crate::review::Review,
        action_name: String,
        agent: String,
        severity: crate::verdict::Severity,
        reviewers: std::collections::BTreeSet<String>,
        now: Timestamp,
    ) -> Case {
        let week = crate::duration::HumanDuration(7 * 24 * 3600);
        Case {
            id,
            kind: CaseKind::Review,
            state: CaseState::Open,
            decision_id: None,
            action_name,
            agent,
            escalation: Escalation {
                severity,
                reviewers,
                approvals: 1,
                sla: week,
                fallback: Verdict::Deny,
                tiers: vec![],
            },
            tier: 0,
            sla_deadline: now.plus_millis(week.as_millis()),
            answers: vec![],
            confidence: None,
            trace_id: None,
            args_digest: None,
            claim: None,
            comments: vec![],
            review: Some(review),
            subject: None,
            trigger: None,
            threshold: None,
            warn_before_ms: None,
            warned_tier: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// Whether a reviewer holds a lease that is still running at `now`.
    pub fn held_at(&self, now: Timestamp) -> Option<&Claim> {
        self.claim.as_ref().filter(|c| c.until > now)
    }

    /// Whether people still have to act on it (open or claimed).
    pub fn is_active(&self) -> bool {
        matches!(self.state, CaseState::Open | CaseState::Claimed)
    }

    /// The next moment the sweeper must look at it: the end of the lease or of
    /// the current tier's time, whichever comes first (or, for an unclaimed
    /// case not yet announced as due soon in this tier, the start of its
    /// warning window). `None` when nothing is due (decided or closed, or a
    /// review case without a lease).
    pub fn due_at(&self) -> Option<Timestamp> {
        if !self.is_active() || self.kind == CaseKind::Review {
            return None;
        }
        if self.kind == CaseKind::Audit {
            // an audit past its SLA stays in the queue (overdue); only a lease runs out
            return self.claim.as_ref().map(|c| c.until);
        }
        Some(match &self.claim {
            Some(c) => c.until.min(self.sla_deadline),
            None => self.warn_at().map_or(self.sla_deadline, |w| w.min(self.sla_deadline)),
        })
    }

    /// When the case stopped being active, for its stored row: `None` while it
    /// is active; the time it was last changed when it just ended; `before`
    /// (the row's earlier value) when it had ended already.
    pub fn ended_at(&self, before: Option<Timestamp>) -> Option<Timestamp> {
        if self.is_active() { None } else { Some(before.unwrap_or(self.updated_at)) }
    }

    /// When the current tier's due-soon warning is due, if it still is.
    pub fn warn_at(&self) -> Option<Timestamp> {
        let before = self.warn_before_ms.filter(|ms| *ms > 0)?;
        (self.kind == CaseKind::Approval && self.warned_tier != Some(self.tier))
            .then(|| self.sla_deadline.plus_millis(-before))
    }

    /// Reviewer role tags that may answer in the current tier.
    pub fn current_reviewers(&self) -> &std::collections::BTreeSet<String> {
        match self.tier {
            0 => &self.escalation.reviewers,
            n => self.escalation.tiers.get(n - 1).map_or(&self.escalation.reviewers, |t| &t.reviewers),
        }
    }

    /// Digest of the arguments the case would now let the agent run: the
    /// latest modification's, or the proposed ones.
    pub fn candidate_digest(&self) -> Option<&str> {
        self.answers
            .iter()
            .rev()
            .find(|a| a.modified_args.is_some())
            .map_or(self.args_digest.as_deref(), |a| a.args_digest.as_deref())
    }

    /// The arguments of the latest modification, if any reviewer modified them.
    pub fn candidate_args(&self) -> Option<&serde_json::Value> {
        self.answers.iter().rev().find_map(|a| a.modified_args.as_ref())
    }

    /// Approvals that count toward the candidate arguments (one per reviewer):
    /// an approval given for other arguments never counts.
    pub fn approvals(&self) -> usize {
        self.approvers().len()
    }

    /// Names of the reviewers whose approvals count toward the candidate arguments.
    pub fn approvers(&self) -> Vec<&str> {
        let digest = self.candidate_digest();
        let mut names: Vec<&str> = Vec::new();
        for a in &self.answers {
            if a.verdict == Verdict::Allow && a.args_digest.as_deref() == digest && !names.contains(&a.by.as_str()) {
                names.push(&a.by);
            }
        }
        names
    }

    /// Whether `name` (or key `key_id`) already gave an answer that still
    /// counts: an approval of the candidate arguments (a reviewer may approve
    /// again after someone else modified them).
    pub fn has_answered(&self, name: &str, key_id: &str) -> bool {
        let digest = self.candidate_digest();
        self.answers.iter().any(|a| (a.key_id == key_id || a.by == name) && a.args_digest.as_deref() == digest)
    }
}
