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
        }
    }

    /// Parse the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "approval" => CaseKind::Approval,
            "review" => CaseKind::Review,
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
    /// When.
    pub at: Timestamp,
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
    /// When it was opened.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

impl Case {
    /// Reviewer role tags that may answer in the current tier.
    pub fn current_reviewers(&self) -> &std::collections::BTreeSet<String> {
        match self.tier {
            0 => &self.escalation.reviewers,
            n => self
                .escalation
                .tiers
                .get(n - 1)
                .map_or(&self.escalation.reviewers, |t| &t.reviewers),
        }
    }

    /// Distinct approvals so far.
    pub fn approvals(&self) -> usize {
        self.answers
            .iter()
            .filter(|a| a.verdict == Verdict::Allow)
            .count()
    }
}

/// Why a reviewer's answer was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    /// The case is not waiting for answers.
    #[error("the case is {0:?}, not open; it can no longer be answered")]
    NotOpen(CaseState),
    /// The reviewer's role tags do not include any role the current tier asks for.
    #[error("this case needs a reviewer with one of the roles {needed:?}; your key has {have:?}")]
    WrongRole {
        /// Roles the current tier accepts.
        needed: Vec<String>,
        /// Roles on the reviewer's key.
        have: Vec<String>,
    },
    /// The reviewer already answered this case.
    #[error("you already answered this case; another reviewer must give the next approval")]
    AlreadyAnswered,
    /// The reviewer is the agent that proposed the action.
    #[error("nobody may approve their own agent's action")]
    OwnAction,
}

/// What an accepted answer did to the case.
#[derive(Debug, Clone, PartialEq)]
pub enum AnswerEffect {
    /// More approvals are needed.
    NeedsMore {
        /// Approvals so far.
        approvals: usize,
        /// Approvals needed.
        needed: u32,
    },
    /// The case is decided with this verdict (and modified arguments, if a reviewer gave them).
    Decided(Verdict, Option<serde_json::Value>),
}

/// Apply one reviewer's answer to an open approval case. A rejection decides at
/// once; approvals decide when the escalation's `approvals` distinct reviewers
/// have approved; the last modification given wins. Admins may answer any tier.
pub fn apply_answer(
    case: &mut Case,
    answer: Answer,
    reviewer_tags: &std::collections::BTreeSet<String>,
    is_admin: bool,
) -> Result<AnswerEffect, AnswerError> {
    if !matches!(case.state, CaseState::Open | CaseState::Claimed) {
        return Err(AnswerError::NotOpen(case.state));
    }
    let allowed = case.current_reviewers();
    if !is_admin && allowed.is_disjoint(reviewer_tags) {
        return Err(AnswerError::WrongRole {
            needed: allowed.iter().cloned().collect(),
            have: reviewer_tags.iter().cloned().collect(),
        });
    }
    if answer.by == case.agent {
        return Err(AnswerError::OwnAction);
    }
    if case
        .answers
        .iter()
        .any(|a| a.key_id == answer.key_id || a.by == answer.by)
    {
        return Err(AnswerError::AlreadyAnswered);
    }
    let verdict = answer.verdict;
    let at = answer.at;
    case.answers.push(answer);
    case.updated_at = at;
    if verdict != Verdict::Allow {
        case.state = CaseState::Decided;
        return Ok(AnswerEffect::Decided(Verdict::Deny, None));
    }
    let approvals = case.approvals();
    if approvals >= case.escalation.approvals as usize {
        case.state = CaseState::Decided;
        let modified = case
            .answers
            .iter()
            .rev()
            .find_map(|a| a.modified_args.clone());
        return Ok(AnswerEffect::Decided(Verdict::Allow, modified));
    }
    Ok(AnswerEffect::NeedsMore {
        approvals,
        needed: case.escalation.approvals,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::duration::HumanDuration;
    use crate::verdict::Severity;

    fn case(approvals: u32) -> Case {
        Case {
            id: "c1".into(),
            kind: CaseKind::Approval,
            state: CaseState::Open,
            decision_id: Some("d1".into()),
            action_name: "isolate_host".into(),
            agent: "soc-agent".into(),
            escalation: Escalation {
                severity: Severity::High,
                reviewers: ["soc_lead".to_string()].into_iter().collect(),
                approvals,
                sla: HumanDuration(600),
                fallback: Verdict::Deny,
                tiers: vec![],
            },
            tier: 0,
            sla_deadline: Timestamp(600_000),
            answers: vec![],
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
        }
    }

    fn answer(by: &str, verdict: Verdict) -> Answer {
        Answer {
            by: by.into(),
            key_id: by.into(),
            verdict,
            modified_args: None,
            rationale: "checked the host".into(),
            at: Timestamp(1),
        }
    }

    fn tags(t: &[&str]) -> std::collections::BTreeSet<String> {
        t.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn two_approvals_need_two_distinct_reviewers() {
        let mut c = case(2);
        let lead = tags(&["soc_lead"]);
        assert!(matches!(
            apply_answer(&mut c, answer("ann", Verdict::Allow), &lead, false),
            Ok(AnswerEffect::NeedsMore {
                approvals: 1,
                needed: 2
            })
        ));
        assert_eq!(
            apply_answer(&mut c, answer("ann", Verdict::Allow), &lead, false),
            Err(AnswerError::AlreadyAnswered)
        );
        assert_eq!(
            apply_answer(&mut c, answer("bob", Verdict::Allow), &lead, false),
            Ok(AnswerEffect::Decided(Verdict::Allow, None))
        );
        assert!(matches!(
            apply_answer(&mut c, answer("cy", Verdict::Allow), &lead, false),
            Err(AnswerError::NotOpen(_))
        ));
    }

    #[test]
    fn roles_rejections_and_own_actions() {
        let mut c = case(2);
        assert!(matches!(
            apply_answer(&mut c, answer("ann", Verdict::Allow), &tags(&["ux"]), false),
            Err(AnswerError::WrongRole { .. })
        ));
        assert_eq!(
            apply_answer(
                &mut c,
                answer("soc-agent", Verdict::Allow),
                &tags(&["soc_lead"]),
                false
            ),
            Err(AnswerError::OwnAction)
        );
        assert_eq!(
            apply_answer(&mut c, answer("root", Verdict::Deny), &tags(&[]), true),
            Ok(AnswerEffect::Decided(Verdict::Deny, None))
        );
    }
}
