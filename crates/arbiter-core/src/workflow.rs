//! The case workflow as pure functions: a command and the current case give
//! the events to append ([`handle`]); events fold into the case ([`Case::apply`]).
//! The event log is the source of truth; a case row is `apply` over its events.

use crate::case::{Answer, Case, CaseKind, CaseState, Claim, Comment};
use crate::review::{InterventionCheck, InterventionStatus, Review, StageEntry, StageRecord};
use crate::time::Timestamp;
use crate::verdict::Verdict;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Who is acting on a case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// Key name.
    pub name: String,
    /// Key id.
    pub key_id: String,
    /// Reviewer role tags.
    pub tags: BTreeSet<String>,
    /// Admins may act on any tier and reassign.
    pub is_admin: bool,
}

/// Something a person (or the sweeper) asks to do to a case.
#[derive(Debug, Clone, PartialEq)]
pub enum CaseCommand {
    /// Take (or renew) the lease on an approval case.
    Claim {
        /// The person (or the system) giving the command.
        by: Actor,
        /// Lease length in milliseconds.
        lease_ms: i64,
    },
    /// Give the lease back.
    Release {
        /// The person (or the system) giving the command.
        by: Actor,
    },
    /// An admin hands the case to another reviewer.
    Reassign {
        /// The admin.
        by: Actor,
        /// The new holder (key name and id).
        to: Actor,
        /// Lease length in milliseconds.
        lease_ms: i64,
    },
    /// Approve (`Allow`, optionally with edited arguments) or reject (`Deny`).
    Answer {
        /// The person (or the system) giving the command.
        by: Actor,
        /// `Allow` or `Deny`.
        verdict: Verdict,
        /// Edited arguments, for a modification.
        modified_args: Option<serde_json::Value>,
        /// What the policy says about the modified action (required with
        /// `modified_args`): a modification is a new action.
        check: Option<ModificationCheck>,
        /// Why, in the reviewer's words (required; a minimum length applies).
        rationale: String,
        /// Failure-mode tags.
        failure_modes: Vec<String>,
        /// Where it was given, when not in the console or the API (`slack`).
        via: Option<String>,
    },
    /// Add a comment.
    Comment {
        /// The person (or the system) giving the command.
        by: Actor,
        /// The perspective, one of the author's tags.
        role: Option<String>,
        /// The text.
        text: String,
    },
    /// Record a stage entry on a review case.
    RecordStage {
        /// The person (or the system) giving the command.
        by: Actor,
        /// The author's role for this entry.
        role: String,
        /// Why, in the reviewer's words (required; a minimum length applies).
        rationale: String,
        /// The content.
        record: StageRecord,
    },
    /// Move an intervention along.
    UpdateIntervention {
        /// The person (or the system) giving the command.
        by: Actor,
        /// Its index.
        index: usize,
        /// The new status.
        status: InterventionStatus,
        /// A note (how it was done or verified).
        note: Option<String>,
    },
    /// Link an intervention to the stored policy version that carries it.
    LinkPolicyVersion {
        /// The person (or the system) giving the command.
        by: Actor,
        /// The intervention's position in the review's list, from 0.
        index: usize,
        /// The version's content hash (the caller checks it is stored).
        policy_version: String,
    },
    /// Attach the backtest of an intervention's policy version on the review's decisions.
    RecordCheck {
        /// The person (or the system) giving the command.
        by: Actor,
        /// The intervention's position in the review's list, from 0.
        index: usize,
        /// What the backtest found (run by the caller).
        check: InterventionCheck,
    },
    /// Label an audit case: was the allowed action right? The label becomes
    /// the decision's outcome and the audit is done.
    Label {
        /// The reviewer.
        by: Actor,
        /// Whether the action the policy allowed was the right one.
        correct: bool,
        /// What the reviewer saw (optional).
        note: Option<String>,
    },
    /// Close a review case.
    Close {
        /// The person (or the system) giving the command.
        by: Actor,
        /// Closing remark.
        reason: String,
    },
    /// Reopen a closed review case.
    Reopen {
        /// The person (or the system) giving the command.
        by: Actor,
        /// Why, in the person's words (kept in the audit log).
        reason: String,
    },
    /// The proposing agent takes its proposal back (its run was cancelled, or
    /// it no longer needs the action): the case ends and the action is denied.
    Withdraw {
        /// The agent (its key's principal) or an admin.
        by: Actor,
        /// Why, e.g. `the MCP client cancelled the call`.
        reason: String,
    },
    /// Apply what time has made due: expired leases, tier escalation, the fallback.
    Sweep,
}

/// The policy's verdict on a reviewer's modified action, evaluated by the
/// caller exactly as if an agent had proposed it, against the policy version
/// the case was opened under.
#[derive(Debug, Clone, PartialEq)]
pub struct ModificationCheck {
    /// The verdict the modified action gets.
    pub verdict: Verdict,
    /// Names of the triggers that fired on it.
    pub triggers: Vec<String>,
    /// Its requirements, when the verdict is `escalate`.
    pub escalation: Option<crate::escalation::Escalation>,
}

/// One change to a case; the payload of an audit-log event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "data")]
pub enum CaseEvent {
    /// The case was opened; carries its initial state.
    #[serde(rename = "case.opened")]
    Opened {
        /// The case as opened.
        case: Box<Case>,
    },
    /// A reviewer took (or renewed) the lease.
    #[serde(rename = "case.claimed")]
    Claimed {
        /// The lease.
        claim: Claim,
        /// Whether the holder already held it.
        renewed: bool,
    },
    /// The holder gave the lease back.
    #[serde(rename = "case.released")]
    Released {
        /// Who held it.
        by: String,
    },
    /// The lease ran out; the case is back in the queue.
    #[serde(rename = "case.lease_expired")]
    LeaseExpired {
        /// Who held it.
        holder: String,
    },
    /// An admin gave the case to another reviewer.
    #[serde(rename = "case.reassigned")]
    Reassigned {
        /// The previous holder, if any.
        from: Option<String>,
        /// The new lease.
        claim: Claim,
    },
    /// A reviewer answered.
    #[serde(rename = "case.answered")]
    Answered {
        /// The answer.
        answer: Answer,
    },
    /// A reviewer's modification needs more than the case asked for: the
    /// case's requirements become the union (never looser), and approvals
    /// count only toward the modified arguments.
    #[serde(rename = "case.requirements_raised")]
    RequirementsRaised {
        /// The requirements from now on.
        escalation: crate::escalation::Escalation,
        /// The modified arguments they apply to.
        args_digest: String,
        /// The triggers that fired on the modified action.
        triggers: Vec<String>,
    },
    /// Enough answers are in: the case is decided.
    #[serde(rename = "case.decided")]
    Decided {
        /// The final verdict.
        verdict: Verdict,
        /// The arguments the agent receives instead of its own, if modified.
        modified_args: Option<serde_json::Value>,
        /// Everyone who answered.
        decided_by: Vec<String>,
    },
    /// The current tier's time ran out; the next tier's roles may answer now.
    #[serde(rename = "case.tier_escalated")]
    TierEscalated {
        /// The tier left.
        from_tier: usize,
        /// The tier entered.
        to_tier: usize,
        /// Roles that may answer now.
        reviewers: BTreeSet<String>,
        /// When this tier's time runs out.
        sla_deadline: Timestamp,
    },
    /// An unclaimed approval case nears the end of its tier's time (the
    /// case's warning window): the moment to call someone.
    #[serde(rename = "case.due_soon")]
    DueSoon {
        /// The tier whose time runs out.
        tier: usize,
        /// When it runs out.
        sla_deadline: Timestamp,
        /// The case's severity, action and subject, for the page.
        severity: crate::verdict::Severity,
        /// The proposed action's name.
        action_name: String,
        /// What it acts on.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subject: Option<String>,
    },
    /// The last tier's time ran out: the policy's fallback verdict applies.
    #[serde(rename = "case.fallback_applied")]
    FallbackApplied {
        /// The fallback verdict.
        verdict: Verdict,
        /// Always `sla_expired`.
        reason: String,
    },
    /// The proposing agent withdrew its proposal: the case ends, the action is denied.
    #[serde(rename = "case.withdrawn")]
    Withdrawn {
        /// Who withdrew it.
        by: String,
        /// Why.
        reason: String,
    },
    /// A comment.
    #[serde(rename = "case.commented")]
    Commented {
        /// The comment.
        comment: Comment,
    },
    /// A review stage entry.
    #[serde(rename = "review.stage_recorded")]
    StageRecorded {
        /// The entry.
        entry: StageEntry,
    },
    /// An intervention changed status.
    #[serde(rename = "review.intervention_updated")]
    InterventionUpdated {
        /// The intervention's position in the review's list, from 0.
        index: usize,
        /// New status.
        status: InterventionStatus,
        /// The person (or the system) giving the command.
        by: String,
        /// How the change was made or its effect verified.
        note: Option<String>,
    },
    /// An intervention was linked to the policy version that carries it.
    #[serde(rename = "review.intervention_linked")]
    InterventionLinked {
        /// The intervention's position in the review's list, from 0.
        index: usize,
        /// The version's content hash.
        policy_version: String,
        /// The person (or the system) giving the command.
        by: String,
    },
    /// An intervention's policy version was backtested on the review's decisions.
    #[serde(rename = "review.intervention_checked")]
    InterventionChecked {
        /// The intervention's position in the review's list, from 0.
        index: usize,
        /// The result.
        check: InterventionCheck,
    },
    /// An audit was labelled; the label is the decision's outcome.
    #[serde(rename = "audit.labelled")]
    Labelled {
        /// The reviewer.
        by: String,
        /// Whether the allowed action was the right one.
        correct: bool,
        /// What the reviewer saw.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// The review was closed.
    #[serde(rename = "review.closed")]
    Closed {
        /// The person (or the system) giving the command.
        by: String,
        /// Closing remark.
        reason: String,
    },
    /// The review was reopened.
    #[serde(rename = "review.reopened")]
    Reopened {
        /// The person (or the system) giving the command.
        by: String,
        /// Why, in the person's words (kept in the audit log).
        reason: String,
    },
}

impl CaseEvent {
    /// The event's kind, e.g. `case.claimed`.
    pub fn kind(&self) -> &'static str {
        match self {
            CaseEvent::Opened { .. } => "case.opened",
            CaseEvent::Claimed { .. } => "case.claimed",
            CaseEvent::Released { .. } => "case.released",
            CaseEvent::LeaseExpired { .. } => "case.lease_expired",
            CaseEvent::Reassigned { .. } => "case.reassigned",
            CaseEvent::Answered { .. } => "case.answered",
            CaseEvent::RequirementsRaised { .. } => "case.requirements_raised",
            CaseEvent::Decided { .. } => "case.decided",
            CaseEvent::TierEscalated { .. } => "case.tier_escalated",
            CaseEvent::DueSoon { .. } => "case.due_soon",
            CaseEvent::FallbackApplied { .. } => "case.fallback_applied",
            CaseEvent::Withdrawn { .. } => "case.withdrawn",
            CaseEvent::Commented { .. } => "case.commented",
            CaseEvent::StageRecorded { .. } => "review.stage_recorded",
            CaseEvent::InterventionUpdated { .. } => "review.intervention_updated",
            CaseEvent::InterventionLinked { .. } => "review.intervention_linked",
            CaseEvent::InterventionChecked { .. } => "review.intervention_checked",
            CaseEvent::Labelled { .. } => "audit.labelled",
            CaseEvent::Closed { .. } => "review.closed",
            CaseEvent::Reopened { .. } => "review.reopened",
        }
    }

    /// The event's payload (what the audit log stores as `data`).
    pub fn data(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        v.get_mut("data").map(serde_json::Value::take).unwrap_or_default()
    }

    /// Rebuild an event from its stored kind and payload.
    pub fn from_parts(kind: &str, data: &serde_json::Value) -> Result<CaseEvent, String> {
        serde_json::from_value(serde_json::json!({"kind": kind, "data": data}))
            .map_err(|e| format!("event {kind}: {e}"))
    }

    /// The final verdict this event gives the case's decision, if it decides it.
    pub fn final_verdict(&self) -> Option<Verdict> {
        match self {
            CaseEvent::Decided { verdict, .. } | CaseEvent::FallbackApplied { verdict, .. } => Some(*verdict),
            CaseEvent::Withdrawn { .. } => Some(Verdict::Deny),
            _ => None,
        }
    }
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaseError {
    /// The case is not waiting for answers.
    #[error("the case is {}, so it can no longer be answered or claimed", .0.as_str())]
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
    /// The policy denies the action as modified.
    #[error(
        "the policy denies the modified action (triggers: {}); a reviewer cannot approve what the policy forbids",
        .triggers.join(", ")
    )]
    ModificationDenied {
        /// The deny triggers that fired on the modified action.
        triggers: Vec<String>,
    },
    /// The reviewer is the agent that proposed the action.
    #[error("nobody may approve their own agent's action")]
    OwnAction,
    /// Someone else holds the lease.
    #[error("{holder} holds this case until {until}; only the holder can act on it (an admin can reassign it)")]
    HeldByOther {
        /// The holder.
        holder: String,
        /// Lease end.
        until: Timestamp,
    },
    /// The caller does not hold the lease.
    #[error("you do not hold this case")]
    NotHolder,
    /// Only admins may do this.
    #[error("only an admin can {0}")]
    AdminOnly(&'static str),
    /// The command applies to the other kind of case.
    #[error("this is a case of kind `{kind}`; {hint}", kind = .0.as_str(), hint = .1)]
    WrongKind(CaseKind, &'static str),
    /// The review cannot close yet.
    #[error("the review cannot close yet; missing: {}", .0.join(", "))]
    Incomplete(Vec<String>),
    /// The comment's role tag is not one of the author's.
    #[error("you can only speak for your own roles ({have:?}), not `{role}`")]
    NotYourRole {
        /// The role claimed.
        role: String,
        /// The author's roles.
        have: Vec<String>,
    },
    /// A field of the command is invalid.
    #[error("{field}: {message}")]
    Invalid {
        /// The field.
        field: String,
        /// What is wrong, for the person who sent it.
        message: String,
    },
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> CaseError {
    CaseError::Invalid { field: field.into(), message: message.into() }
}

fn tag_list(t: &BTreeSet<String>) -> Vec<String> {
    t.iter().cloned().collect()
}

/// Whether `by` may answer `case` at `now`, checked as an answer would be
/// (an approval case still open, one of the tier's roles, not the agent's
/// own action, not held by someone else, not answered by them already):
/// for channels that ask before collecting an answer (a Slack modal).
pub fn may_answer(case: &Case, by: &Actor, now: Timestamp) -> Result<(), CaseError> {
    require_approval(case, "only approval cases are answered")?;
    may_answer_tier(case, by)?;
    if let Some(c) = case.held_at(now)
        && c.key_id != by.key_id
    {
        return Err(CaseError::HeldByOther { holder: c.by.clone(), until: c.until });
    }
    if case.has_answered(&by.name, &by.key_id) {
        return Err(CaseError::AlreadyAnswered);
    }
    Ok(())
}

fn may_answer_tier(case: &Case, by: &Actor) -> Result<(), CaseError> {
    let allowed = case.current_reviewers();
    if !by.is_admin && allowed.is_disjoint(&by.tags) {
        return Err(CaseError::WrongRole { needed: tag_list(allowed), have: tag_list(&by.tags) });
    }
    if by.name == case.agent {
        return Err(CaseError::OwnAction);
    }
    Ok(())
}

fn require_approval(case: &Case, what: &'static str) -> Result<(), CaseError> {
    if case.kind != CaseKind::Approval {
        return Err(CaseError::WrongKind(case.kind, what));
    }
    if !case.is_active() {
        return Err(CaseError::NotOpen(case.state));
    }
    Ok(())
}

/// Claims, releases and reassignments: approval and audit cases have a queue and leases.
fn require_claimable(case: &Case, what: &'static str) -> Result<(), CaseError> {
    if case.kind == CaseKind::Review {
        return Err(CaseError::WrongKind(case.kind, what));
    }
    if !case.is_active() {
        return Err(CaseError::NotOpen(case.state));
    }
    Ok(())
}

fn require_review<'c>(case: &'c Case, what: &'static str) -> Result<&'c Review, CaseError> {
    match (&case.review, case.kind) {
        (Some(r), CaseKind::Review) => Ok(r),
        _ => Err(CaseError::WrongKind(case.kind, what)),
    }
}

fn speaks_for(by: &Actor, role: &str) -> Result<(), CaseError> {
    if by.is_admin || by.tags.contains(role) {
        Ok(())
    } else {
        Err(CaseError::NotYourRole { role: role.to_string(), have: tag_list(&by.tags) })
    }
}

/// Decide what `cmd` does to `case` at `now`: the events to append, or why not.
/// Pure: the store appends the events and folds them into the case.
pub fn handle(case: &Case, cmd: &CaseCommand, now: Timestamp) -> Result<Vec<CaseEvent>, CaseError> {
    match cmd {
        CaseCommand::Claim { by, lease_ms } => {
            require_claimable(case, "review cases are not claimed")?;
            may_answer_tier(case, by)?;
            if case.has_answered(&by.name, &by.key_id) {
                return Err(CaseError::AlreadyAnswered);
            }
            let renewed = match case.held_at(now) {
                Some(c) if c.key_id != by.key_id => {
                    return Err(CaseError::HeldByOther { holder: c.by.clone(), until: c.until });
                }
                Some(_) => true,
                None => false,
            };
            let claim = Claim { by: by.name.clone(), key_id: by.key_id.clone(), until: now.plus_millis(*lease_ms) };
            Ok(vec![CaseEvent::Claimed { claim, renewed }])
        }
        CaseCommand::Release { by } => {
            require_claimable(case, "review cases are not claimed")?;
            match case.held_at(now) {
                Some(c) if c.key_id == by.key_id || by.is_admin => Ok(vec![CaseEvent::Released { by: c.by.clone() }]),
                _ => Err(CaseError::NotHolder),
            }
        }
        CaseCommand::Reassign { by, to, lease_ms } => {
            if !by.is_admin {
                return Err(CaseError::AdminOnly("reassign a case"));
            }
            require_claimable(case, "review cases are not claimed")?;
            may_answer_tier(case, to)?;
            let from = case.held_at(now).map(|c| c.by.clone());
            let claim = Claim { by: to.name.clone(), key_id: to.key_id.clone(), until: now.plus_millis(*lease_ms) };
            Ok(vec![CaseEvent::Reassigned { from, claim }])
        }
        CaseCommand::Answer { by, verdict, modified_args, check, rationale, failure_modes, via } => {
            may_answer(case, by, now)?;
            if !matches!(verdict, Verdict::Allow | Verdict::Deny) {
                return Err(invalid("decision", "a reviewer approves or rejects"));
            }
            if *verdict == Verdict::Deny && modified_args.is_some() {
                return Err(invalid("args", "a rejection cannot modify the arguments"));
            }
            let mut events = Vec::new();
            let mut required = case.escalation.approvals as usize;
            let digest = match modified_args {
                Some(args) => {
                    let digest = crate::canonical::args_digest(args);
                    let Some(check) = check else {
                        return Err(invalid("args", "a modification must be checked against the case's policy first"));
                    };
                    match check.verdict {
                        Verdict::Deny => {
                            return Err(CaseError::ModificationDenied { triggers: check.triggers.clone() });
                        }
                        Verdict::Escalate => {
                            let mut raised = case.escalation.clone();
                            if let Some(e) = &check.escalation {
                                raised.merge(e);
                            }
                            required = raised.approvals as usize;
                            if raised != case.escalation {
                                events.push(CaseEvent::RequirementsRaised {
                                    escalation: raised,
                                    args_digest: digest.clone(),
                                    triggers: check.triggers.clone(),
                                });
                            }
                        }
                        Verdict::Allow => {}
                    }
                    Some(digest)
                }
                None => case.candidate_digest().map(str::to_string),
            };
            let answer = Answer {
                by: by.name.clone(),
                key_id: by.key_id.clone(),
                verdict: *verdict,
                modified_args: modified_args.clone(),
                rationale: rationale.clone(),
                failure_modes: failure_modes.clone(),
                args_digest: digest.clone(),
                at: now,
                via: via.clone(),
            };
            events.push(CaseEvent::Answered { answer: answer.clone() });
            if *verdict == Verdict::Deny {
                let mut decided_by: Vec<String> = case.answers.iter().map(|a| a.by.clone()).collect();
                decided_by.push(answer.by.clone());
                decided_by.dedup();
                events.push(CaseEvent::Decided { verdict: Verdict::Deny, modified_args: None, decided_by });
                return Ok(events);
            }
            // Approvals count only toward the exact arguments they approved.
            let mut approvers: Vec<String> = Vec::new();
            for a in &case.answers {
                if a.verdict == Verdict::Allow
                    && a.args_digest == digest
                    && a.by != by.name
                    && !approvers.contains(&a.by)
                {
                    approvers.push(a.by.clone());
                }
            }
            approvers.push(answer.by.clone());
            if approvers.len() >= required {
                // The arguments the agent runs: this modification, or the latest one before it.
                let modified = modified_args.clone().or_else(|| case.candidate_args().cloned());
                events.push(CaseEvent::Decided {
                    verdict: Verdict::Allow,
                    modified_args: modified,
                    decided_by: approvers,
                });
            }
            Ok(events)
        }
        CaseCommand::Comment { by, role, text } => {
            if let Some(r) = role {
                speaks_for(by, r)?;
            }
            if text.trim().is_empty() {
                return Err(invalid("text", "must not be empty"));
            }
            let comment = Comment { by: by.name.clone(), role: role.clone(), text: text.clone(), at: now };
            Ok(vec![CaseEvent::Commented { comment }])
        }
        CaseCommand::RecordStage { by, role, rationale, record } => {
            let review = require_review(case, "stages are recorded on review cases")?;
            if case.state == CaseState::Closed {
                return Err(CaseError::NotOpen(case.state));
            }
            speaks_for(by, role)?;
            record.validate().map_err(|(f, m)| invalid(f, m))?;
            if let StageRecord::ResolutionDesign(r) = record {
                if r.no_intervention_needed.is_some() && !review.interventions.is_empty() {
                    return Err(invalid(
                        "no_intervention_needed",
                        "interventions were already proposed for this review",
                    ));
                }
                if !r.interventions.is_empty() && review.no_intervention_needed.is_some() {
                    return Err(invalid(
                        "interventions",
                        "this review already recorded that no intervention is needed",
                    ));
                }
            }
            let entry = StageEntry {
                by: by.name.clone(),
                role: role.clone(),
                rationale: rationale.clone(),
                at: now,
                record: record.clone(),
            };
            Ok(vec![CaseEvent::StageRecorded { entry }])
        }
        CaseCommand::UpdateIntervention { by, index, status, note } => {
            let review = require_review(case, "interventions belong to review cases")?;
            let Some(current) = review.interventions.get(*index) else {
                return Err(invalid("index", format!("the review has {} intervention(s)", review.interventions.len())));
            };
            if *status == InterventionStatus::Verified && current.status < InterventionStatus::Done {
                return Err(invalid("status", "an intervention is verified only after it is done"));
            }
            Ok(vec![CaseEvent::InterventionUpdated {
                index: *index,
                status: *status,
                by: by.name.clone(),
                note: note.clone(),
            }])
        }
        CaseCommand::LinkPolicyVersion { by, index, policy_version } => {
            let review = require_review(case, "interventions belong to review cases")?;
            if case.state == CaseState::Closed {
                return Err(CaseError::NotOpen(case.state));
            }
            let Some(x) = review.interventions.get(*index) else {
                return Err(invalid("index", format!("the review has {} intervention(s)", review.interventions.len())));
            };
            if !x.spec.kind.needs_policy_check() {
                return Err(invalid(
                    "policy_version",
                    format!("a {} intervention is not carried by a policy version", x.spec.kind.as_str()),
                ));
            }
            if policy_version.len() != 64 || !policy_version.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(invalid("policy_version", "the full 64-character hash of a stored version"));
            }
            Ok(vec![CaseEvent::InterventionLinked {
                index: *index,
                policy_version: policy_version.clone(),
                by: by.name.clone(),
            }])
        }
        CaseCommand::RecordCheck { by: _, index, check } => {
            let review = require_review(case, "interventions belong to review cases")?;
            if case.state == CaseState::Closed {
                return Err(CaseError::NotOpen(case.state));
            }
            let Some(x) = review.interventions.get(*index) else {
                return Err(invalid("index", format!("the review has {} intervention(s)", review.interventions.len())));
            };
            if x.spec.policy_version.as_deref() != Some(check.policy_version.as_str()) {
                return Err(invalid("policy_version", "the check must replay the version the intervention links"));
            }
            Ok(vec![CaseEvent::InterventionChecked { index: *index, check: check.clone() }])
        }
        CaseCommand::Label { by, correct, note } => {
            if case.kind != CaseKind::Audit {
                return Err(CaseError::WrongKind(case.kind, "only audit cases are labelled"));
            }
            if !case.is_active() {
                return Err(CaseError::NotOpen(case.state));
            }
            may_answer_tier(case, by)?;
            if let Some(c) = case.held_at(now)
                && c.key_id != by.key_id
            {
                return Err(CaseError::HeldByOther { holder: c.by.clone(), until: c.until });
            }
            let note = note.as_deref().map(str::trim).filter(|n| !n.is_empty());
            if note.is_some_and(|n| n.len() > 4096) {
                return Err(invalid("note", "must be at most 4 KiB"));
            }
            Ok(vec![CaseEvent::Labelled { by: by.name.clone(), correct: *correct, note: note.map(str::to_string) }])
        }
        CaseCommand::Close { by, reason } => {
            let review = require_review(case, "only review cases are closed")?;
            if case.state == CaseState::Closed {
                return Err(CaseError::NotOpen(case.state));
            }
            let missing = review.missing();
            if !missing.is_empty() {
                return Err(CaseError::Incomplete(missing));
            }
            Ok(vec![CaseEvent::Closed { by: by.name.clone(), reason: reason.clone() }])
        }
        CaseCommand::Reopen { by, reason } => {
            require_review(case, "only review cases are reopened")?;
            if case.state != CaseState::Closed {
                return Err(invalid("state", "only a closed review can be reopened"));
            }
            if reason.trim().is_empty() {
                return Err(invalid("reason", "say why it is reopened"));
            }
            Ok(vec![CaseEvent::Reopened { by: by.name.clone(), reason: reason.clone() }])
        }
        CaseCommand::Withdraw { by, reason } => {
            require_approval(case, "only approval cases are withdrawn")?;
            if !by.is_admin && by.name != case.agent {
                return Err(CaseError::Invalid {
                    field: "by".into(),
                    message: format!("only the agent that proposed it ({}) or an admin can withdraw it", case.agent),
                });
            }
            let reason = reason.trim();
            if reason.is_empty() {
                return Err(invalid("reason", "say why it is withdrawn"));
            }
            Ok(vec![CaseEvent::Withdrawn { by: by.name.clone(), reason: reason.to_string() }])
        }
        CaseCommand::Sweep => Ok(sweep(case, now)),
    }
}

/// What time has made due on `case` at `now`: an expired lease returns to the
/// queue; each tier whose time ran out hands over to the next (several at once
/// if the sweeper was away); after the last tier the fallback applies.
pub fn sweep(case: &Case, now: Timestamp) -> Vec<CaseEvent> {
    let mut events = Vec::new();
    if case.kind == CaseKind::Review || !case.is_active() {
        return events;
    }
    if let Some(c) = &case.claim
        && c.until <= now
    {
        events.push(CaseEvent::LeaseExpired { holder: c.by.clone() });
    }
    if case.kind == CaseKind::Audit {
        // the decision stands whatever happens: an overdue audit waits in the queue
        return events;
    }
    let mut tier = case.tier;
    let mut deadline = case.sla_deadline;
    while deadline <= now {
        match case.escalation.tiers.get(tier) {
            Some(next) => {
                deadline = deadline.plus_millis(next.sla.as_millis());
                events.push(CaseEvent::TierEscalated {
                    from_tier: tier,
                    to_tier: tier + 1,
                    reviewers: next.reviewers.clone(),
                    sla_deadline: deadline,
                });
                tier += 1;
            }
            None => {
                events.push(CaseEvent::FallbackApplied {
                    verdict: case.escalation.fallback,
                    reason: "sla_expired".into(),
                });
                return events;
            }
        }
    }
    // unclaimed (a lease that ran out, or a new tier, ends a claim) inside the
    // current tier's warning window, and not yet announced in this tier
    let unclaimed = tier != case.tier || case.claim.as_ref().is_none_or(|c| c.until <= now);
    let warn_at = case.warn_before_ms.filter(|ms| *ms > 0).map(|ms| deadline.plus_millis(-ms));
    if unclaimed
        && case.kind == CaseKind::Approval
        && case.warned_tier != Some(tier)
        && warn_at.is_some_and(|w| w <= now)
    {
        events.push(CaseEvent::DueSoon {
            tier,
            sla_deadline: deadline,
            severity: case.escalation.severity,
            action_name: case.action_name.clone(),
            subject: case.subject.clone(),
        });
    }
    events
}

impl Case {
    /// Fold one event into the case (the projection).
    pub fn apply(&mut self, event: &CaseEvent, at: Timestamp) {
        self.updated_at = at;
        match event {
            CaseEvent::Opened { case } => *self = (**case).clone(),
            CaseEvent::Claimed { claim, .. } | CaseEvent::Reassigned { claim, .. } => {
                self.claim = Some(claim.clone());
                self.state = CaseState::Claimed;
            }
            CaseEvent::Released { .. } | CaseEvent::LeaseExpired { .. } => {
                self.claim = None;
                self.state = CaseState::Open;
            }
            CaseEvent::Answered { answer } => {
                self.answers.push(answer.clone());
                // An approval that does not decide frees the case for the next approver.
                if self.claim.as_ref().is_some_and(|c| c.key_id == answer.key_id) {
                    self.claim = None;
                    self.state = CaseState::Open;
                }
            }
            CaseEvent::Decided { .. } | CaseEvent::FallbackApplied { .. } | CaseEvent::Withdrawn { .. } => {
                self.claim = None;
                self.state = CaseState::Decided;
            }
            CaseEvent::RequirementsRaised { escalation, .. } => self.escalation = escalation.clone(),
            CaseEvent::DueSoon { tier, .. } => self.warned_tier = Some(*tier),
            CaseEvent::TierEscalated { to_tier, sla_deadline, .. } => {
                self.tier = *to_tier;
                self.sla_deadline = *sla_deadline;
                // The next tier's reviewers take over; a lease from the last tier ends.
                self.claim = None;
                self.state = CaseState::Open;
            }
            CaseEvent::Commented { comment } => self.comments.push(comment.clone()),
            CaseEvent::StageRecorded { entry } => {
                if let Some(r) = &mut self.review {
                    r.record(entry.clone());
                }
            }
            CaseEvent::InterventionUpdated { index, status, by, note } => {
                if let Some(x) = self.review.as_mut().and_then(|r| r.interventions.get_mut(*index)) {
                    x.status = *status;
                    x.updated_by = by.clone();
                    x.note = note.clone();
                    x.updated_at = at;
                }
            }
            CaseEvent::InterventionLinked { index, policy_version, by } => {
                if let Some(x) = self.review.as_mut().and_then(|r| r.interventions.get_mut(*index)) {
                    x.spec.policy_version = Some(policy_version.clone());
                    x.updated_by = by.clone();
                    x.updated_at = at;
                }
            }
            CaseEvent::InterventionChecked { index, check } => {
                if let Some(x) = self.review.as_mut().and_then(|r| r.interventions.get_mut(*index)) {
                    x.check = Some(check.clone());
                }
            }
            CaseEvent::Labelled { .. } => {
                self.claim = None;
                self.state = CaseState::Closed;
            }
            CaseEvent::Closed { .. } => self.state = CaseState::Closed,
            CaseEvent::Reopened { .. } => self.state = CaseState::Open,
        }
    }

    /// Rebuild a case from its events (the first must be `case.opened`).
    pub fn replay<'a>(events: impl IntoIterator<Item = (&'a CaseEvent, Timestamp)>) -> Option<Case> {
        let mut it = events.into_iter();
        let (first, at) = it.next()?;
        let CaseEvent::Opened { case } = first else {
            return None;
        };
        let mut c = (**case).clone();
        c.updated_at = at;
        for (e, at) in it {
            c.apply(e, at);
        }
        Some(c)
    }
}

#[cfg(test)]
mod tests;
