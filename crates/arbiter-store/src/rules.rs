//! What a stored command means, written once for every backend: who acts,
//! what a deciding event does to its decision, which indexed columns a
//! decision row carries, and how the audit chain covers decisions. A backend
//! adds SQL and nothing else.
//!
//! # Appending to the chain with several writers
//!
//! An append reads the chain head (the last event's `seq` and `hash`) and
//! writes the next event in the same transaction. Two writers that read the
//! same head would fork the chain, so appends must be serialized for exactly
//! that span:
//!
//! - SQLite has one writer thread, and a write transaction holds the
//!   database's write lock: appends are serialized by construction.
//! - PostgreSQL (several replicas) must take a lock on the head before
//!   reading it — `SELECT ... FROM chain_head FOR UPDATE` on a one-row table,
//!   or `pg_advisory_xact_lock(<chain key>)` — and hold it only until the
//!   transaction commits. The `seq` column stays a primary key, so a lost
//!   lock is a failed insert, never a silent fork.

use arbiter_core::audit::{AuditProblem, ChainHead};
use arbiter_core::{Case, CaseCommand, CaseEvent, Decision, FinalSource, FinalVerdict, Timestamp, Verdict};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The event kind that commits decision rows to the chain: one per written
/// batch, listing `[decision id, digest of its stored body]` for every
/// decision the batch inserted or changed.
pub const DECISIONS_COMMITTED: &str = "decisions.committed";

/// Who a command is recorded as acting (key name, or `system` for the sweeper).
pub fn command_actor(cmd: &CaseCommand) -> &str {
    match cmd {
        CaseCommand::Claim { by, .. }
        | CaseCommand::Release { by }
        | CaseCommand::Reassign { by, .. }
        | CaseCommand::Answer { by, .. }
        | CaseCommand::Comment { by, .. }
        | CaseCommand::RecordStage { by, .. }
        | CaseCommand::UpdateIntervention { by, .. }
        | CaseCommand::Close { by, .. }
        | CaseCommand::Reopen { by, .. } => &by.name,
        CaseCommand::Sweep => "system",
    }
}

/// The final verdict a deciding event gives the case's decision (`None` for
/// events that decide nothing). `case` is the case after the event.
pub fn final_from_event(case: &Case, ev: &CaseEvent, decision: &Decision, at: Timestamp) -> Option<FinalVerdict> {
    match ev {
        CaseEvent::Decided { verdict, modified_args, decided_by } => {
            // The rationale is that of the answers that decided: the approvals
            // of the arguments the agent runs, or the rejection.
            let digest = case.candidate_digest();
            let deciding = case.answers.iter().filter(|a| match verdict {
                Verdict::Deny => a.verdict == Verdict::Deny,
                _ => a.verdict == Verdict::Allow && a.args_digest.as_deref() == digest,
            });
            Some(FinalVerdict {
                verdict: *verdict,
                source: FinalSource::Review,
                action: modified_args.clone().map(|args| arbiter_core::Action { args, ..decision.action.clone() }),
                decided_by: decided_by.clone(),
                rationale: deciding.map(|a| format!("{}: {}", a.by, a.rationale)).collect::<Vec<_>>().join("\n"),
                decided_at: at,
            })
        }
        CaseEvent::FallbackApplied { verdict, .. } => Some(FinalVerdict {
            verdict: *verdict,
            source: FinalSource::SlaExpired,
            action: None,
            decided_by: vec![],
            rationale: format!(
                "nobody answered within the SLA of {} tier(s) ({} in all); the policy's fallback `{verdict}` applies",
                case.escalation.tiers.len() + 1,
                case.escalation.total_sla()
            ),
            decided_at: at,
        }),
        _ => None,
    }
}

/// The idempotency protocol: a request whose agent and `Idempotency-Key`
/// match a stored decision gets that decision back if it is the same request
/// (same digest), and a conflict if it is another one.
pub fn idempotent_replay(
    key: &str,
    stored_digest: &str,
    request_digest: &str,
    stored: Decision,
) -> crate::Result<crate::Inserted> {
    if stored_digest != request_digest {
        return Err(crate::StoreError::Conflict(format!(
            "the idempotency key `{key}` was already used for a different request; use a new key for a new action"
        )));
    }
    Ok(crate::Inserted::Existing(stored))
}

/// Apply the per-agent cap on open approval cases: the escalation's fallback
/// applies at once (source `agent_case_cap`), and no case is opened.
pub fn apply_case_cap(d: &mut Decision, open: u64, cap: u64) {
    let fallback = d.escalation.as_ref().map_or(Verdict::Deny, |e| e.fallback);
    d.case_id = None;
    d.status = arbiter_core::DecisionStatus::Final;
    d.final_verdict = Some(FinalVerdict {
        verdict: fallback,
        source: FinalSource::AgentCaseCap,
        action: None,
        decided_by: vec![],
        rationale: format!(
            "{} already has {open} open approval cases (the cap is {cap}); no new case was opened and the policy's \
             fallback `{fallback}` applies at once",
            d.agent
        ),
        decided_at: d.received_at,
    });
}

/// Whether a webhook subscribed to `kinds` wants an event of `kind` (`*` is every kind).
pub fn webhook_wants(kinds: &std::collections::BTreeSet<String>, kind: &str) -> bool {
    arbiter_core::webhook::subscribes(kinds, kind)
}

/// The digest of a stored decision body, as the chain records it (hex SHA-256 of the exact text).
pub fn body_digest(body: &str) -> String {
    hex::encode(Sha256::digest(body.as_bytes()))
}

/// The indexed columns of a decision row, derived from its body. Backends
/// write exactly these and `audit verify` checks that they still match.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionColumns {
    /// `agent`
    pub agent: String,
    /// `idempotency_key`
    pub idempotency_key: Option<String>,
    /// `action_name`
    pub action_name: String,
    /// `confidence`
    pub confidence: Option<f64>,
    /// `verdict` (the policy's)
    pub verdict: &'static str,
    /// `status`
    pub status: &'static str,
    /// `final_verdict`
    pub final_verdict: Option<&'static str>,
    /// `policy_hash`
    pub policy_hash: String,
    /// `case_id`
    pub case_id: Option<String>,
    /// `trace_id`
    pub trace_id: Option<String>,
    /// `received_at`
    pub received_at: i64,
    /// `event_time`
    pub event_time: i64,
    /// `session_id` (`context.session_id`)
    pub session_id: Option<String>,
    /// `outcome_correct`
    pub outcome_correct: Option<bool>,
    /// `outcome_cost`
    pub outcome_cost: Option<f64>,
}

impl DecisionColumns {
    /// The columns of `d`.
    pub fn of(d: &Decision) -> DecisionColumns {
        DecisionColumns {
            agent: d.agent.clone(),
            idempotency_key: d.idempotency_key.clone(),
            action_name: d.action.name.clone(),
            confidence: d.action.confidence,
            verdict: d.verdict.as_str(),
            status: match d.status {
                arbiter_core::DecisionStatus::Final => "final",
                arbiter_core::DecisionStatus::Pending => "pending",
            },
            final_verdict: d.final_verdict.as_ref().map(|f| f.verdict.as_str()),
            policy_hash: d.policy_hash.clone(),
            case_id: d.case_id.clone(),
            trace_id: d.trace_id.clone(),
            received_at: d.received_at.0,
            event_time: d.event_time.0,
            session_id: d.context.get("session_id").and_then(serde_json::Value::as_str).map(str::to_string),
            outcome_correct: d.outcome.as_ref().map(|o| o.correct),
            outcome_cost: d.outcome.as_ref().and_then(|o| o.cost),
        }
    }

    /// The first column of `stored` that differs from these, by name.
    pub fn first_difference(&self, stored: &DecisionColumns) -> Option<&'static str> {
        let checks: [(&'static str, bool); 15] = [
            ("agent", self.agent == stored.agent),
            ("idempotency_key", self.idempotency_key == stored.idempotency_key),
            ("action_name", self.action_name == stored.action_name),
            ("confidence", self.confidence.map(f64::to_bits) == stored.confidence.map(f64::to_bits)),
            ("verdict", self.verdict == stored.verdict),
            ("status", self.status == stored.status),
            ("final_verdict", self.final_verdict == stored.final_verdict),
            ("policy_hash", self.policy_hash == stored.policy_hash),
            ("case_id", self.case_id == stored.case_id),
            ("trace_id", self.trace_id == stored.trace_id),
            ("received_at", self.received_at == stored.received_at),
            ("event_time", self.event_time == stored.event_time),
            ("session_id", self.session_id == stored.session_id),
            ("outcome_correct", self.outcome_correct == stored.outcome_correct),
            ("outcome_cost", self.outcome_cost.map(f64::to_bits) == stored.outcome_cost.map(f64::to_bits)),
        ];
        checks.into_iter().find(|(_, same)| !same).map(|(name, _)| name)
    }
}

/// Decision rows written by one batch, to be committed to the chain together.
#[derive(Debug, Default)]
pub struct ChainBatch {
    leaves: Vec<(String, String)>,
    at: Timestamp,
}

impl ChainBatch {
    /// Record that decision `id` now has the stored `body`, as of `at`.
    pub fn cover(&mut self, id: &str, body: &str, at: Timestamp) {
        self.leaves.push((id.to_string(), body_digest(body)));
        self.at = self.at.max(at);
    }

    /// How many leaves are recorded (to roll a failed job's leaves back).
    pub fn len(&self) -> usize {
        self.leaves.len()
    }

    /// Whether nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.leaves.is_empty()
    }

    /// Forget leaves recorded after the first `len` (the job that wrote them rolled back).
    pub fn truncate(&mut self, len: usize) {
        self.leaves.truncate(len);
    }

    /// The `decisions.committed` event payload and time, then empty.
    pub fn take(&mut self) -> Option<(serde_json::Value, Timestamp)> {
        if self.leaves.is_empty() {
            return None;
        }
        let leaves = std::mem::take(&mut self.leaves);
        let data = serde_json::json!({ "decisions": leaves });
        Some((data, std::mem::take(&mut self.at)))
    }
}

/// The leaves of a `decisions.committed` event's payload.
pub fn committed_leaves(data: &serde_json::Value) -> Result<Vec<(String, String)>, String> {
    #[derive(Deserialize)]
    struct Committed {
        decisions: Vec<(String, String)>,
    }
    serde_json::from_value::<Committed>(data.clone()).map(|c| c.decisions).map_err(|e| e.to_string())
}

/// Checks decision rows against the digests the chain committed: built from
/// the `decisions.committed` events in order (the latest digest of each id
/// wins), then fed every decision row.
#[derive(Debug, Default)]
pub struct DecisionLedger {
    committed: std::collections::HashMap<String, [u8; 32]>,
}

impl DecisionLedger {
    /// Take in one verified `decisions.committed` event.
    pub fn commit(&mut self, seq: u64, data: &serde_json::Value) -> Result<(), AuditProblem> {
        let leaves = committed_leaves(data).map_err(|why| AuditProblem::Event { seq, why })?;
        for (id, digest) in leaves {
            let mut bytes = [0u8; 32];
            hex::decode_to_slice(&digest, &mut bytes)
                .map_err(|_| AuditProblem::Event { seq, why: format!("`{digest}` is not a digest") })?;
            self.committed.insert(id, bytes);
        }
        Ok(())
    }

    /// Check one stored decision row (its body text and its indexed columns).
    pub fn check(&mut self, id: &str, body: &str, stored: &DecisionColumns) -> Result<(), AuditProblem> {
        let bad = |why: String| AuditProblem::Decision { id: id.to_string(), why };
        let Some(want) = self.committed.remove(id) else {
            return Err(bad("the row is not in the audit chain (inserted behind Arbiter's back?)".into()));
        };
        if Sha256::digest(body.as_bytes()).as_slice() != want {
            return Err(
                bad("the row differs from what the audit chain committed (edited after it was written)".into()),
            );
        }
        let d: Decision = serde_json::from_str(body).map_err(|e| bad(format!("the body is not readable: {e}")))?;
        if d.id != id {
            return Err(bad(format!("the body belongs to decision {}", d.id)));
        }
        if let Some(col) = DecisionColumns::of(&d).first_difference(stored) {
            return Err(bad(format!("column `{col}` differs from the committed body")));
        }
        Ok(())
    }

    /// After every row was checked: a committed decision with no row was deleted.
    pub fn finish(self) -> Result<(), AuditProblem> {
        match self.committed.into_keys().min() {
            Some(id) => Err(AuditProblem::Decision {
                id,
                why: "the audit chain committed this decision but its row is gone (deleted)".into(),
            }),
            None => Ok(()),
        }
    }
}

/// Check that a case row equals the replay of its events.
pub fn check_projection(id: &str, body: &str, events: &[crate::Event]) -> Result<(), AuditProblem> {
    let bad = |why: String| AuditProblem::Case { id: id.to_string(), why };
    let stored: Case = serde_json::from_str(body).map_err(|e| bad(format!("the case row is not readable: {e}")))?;
    let mut parsed = Vec::with_capacity(events.len());
    for e in events {
        let ev = CaseEvent::from_parts(&e.kind, &e.data)
            .map_err(|err| bad(format!("event {} cannot be read: {err}", e.seq)))?;
        parsed.push((ev, e.at));
    }
    match Case::replay(parsed.iter().map(|(e, t)| (e, *t))) {
        None => Err(bad("the case has no `case.opened` event".into())),
        Some(rebuilt) if rebuilt != stored => Err(bad("the case row differs from the replay of its events".into())),
        Some(_) => Ok(()),
    }
}

/// Checks the event chain one event at a time, in sequence order.
#[derive(Debug)]
pub struct ChainWalk {
    prev: String,
    next_seq: u64,
}

impl Default for ChainWalk {
    fn default() -> Self {
        ChainWalk { prev: crate::GENESIS_HASH.to_string(), next_seq: 1 }
    }
}

impl ChainWalk {
    /// Check the next event: its sequence number, its link and its own hash.
    pub fn step(&mut self, ev: &crate::Event) -> Result<(), AuditProblem> {
        let bad = |why: String| AuditProblem::Event { seq: ev.seq, why };
        if ev.seq != self.next_seq {
            return Err(bad(format!("expected event {} next, found {} (events missing)", self.next_seq, ev.seq)));
        }
        if ev.prev_hash != self.prev {
            return Err(bad("prev_hash does not match the previous event's hash".into()));
        }
        if ev.compute_hash() != ev.hash {
            return Err(bad("hash does not match the event's contents".into()));
        }
        self.prev = ev.hash.clone();
        self.next_seq += 1;
        Ok(())
    }
}

/// Check that the chain, ending at `head`, extends `anchor`: the anchored
/// event is still there with the same hash (`anchor_event` is the stored event
/// at the anchor's sequence number, if any).
pub fn check_anchor(
    anchor: &ChainHead,
    anchor_event: Option<&crate::Event>,
    head: Option<&ChainHead>,
) -> Result<(), AuditProblem> {
    let last = head.map_or(0, |h| h.seq);
    match anchor_event {
        None => Err(AuditProblem::Anchor {
            why: format!(
                "the chain ends at event {last}, before the anchored event {}: events were removed",
                anchor.seq
            ),
        }),
        Some(e) if e.hash != anchor.hash => Err(AuditProblem::Anchor {
            why: format!(
                "event {} has hash {}, not the anchored {}: the log was rewritten",
                anchor.seq, e.hash, anchor.hash
            ),
        }),
        Some(_) => Ok(()),
    }
}
