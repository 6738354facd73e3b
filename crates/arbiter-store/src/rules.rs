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
        | CaseCommand::LinkPolicyVersion { by, .. }
        | CaseCommand::RecordCheck { by, .. }
        | CaseCommand::Close { by, .. }
        | CaseCommand::Reopen { by, .. }
        | CaseCommand::Withdraw { by, .. }
        | CaseCommand::Label { by, .. } => &by.name,
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
                receipt: None,
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
            receipt: None,
        }),
        CaseEvent::Withdrawn { by, reason } => Some(FinalVerdict {
            verdict: Verdict::Deny,
            source: FinalSource::Withdrawn,
            action: None,
            decided_by: vec![],
            rationale: format!("withdrawn by {by} before anyone answered: {reason}"),
            decided_at: at,
            receipt: None,
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

/// A stored decision read back for a retry of the same request (its key and
/// `request_digest`), or the conflict of a key reused for another request.
pub fn replayed(key: &str, stored_digest: &str, request_digest: &str, body: &str) -> crate::Result<Decision> {
    let stored: Decision =
        serde_json::from_str(body).map_err(|e| crate::StoreError::Corrupt(format!("decision body: {e}")))?;
    match idempotent_replay(key, stored_digest, request_digest, stored)? {
        crate::Inserted::Existing(d) | crate::Inserted::Created(d) => Ok(d),
    }
}

/// Whether a first start activates its policy, given the active version's
/// hash: when none is active, or (unless only the default is offered) when
/// another one is.
pub fn first_start_activates(start: &crate::FirstStart, active: Option<&str>) -> bool {
    match (&start.policy, active) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(_), Some(_)) if start.policy_only_if_none => false,
        (Some(v), Some(h)) => v.hash != h,
    }
}

/// Apply the per-agent cap on open approval cases: the escalation is denied
/// at once (source `agent_case_cap`), whatever the class's fallback, and no
/// case is opened. The cap fails closed: an agent that floods (a loop, a
/// prompt injection) must never buy an allow by filling its queue.
pub fn apply_case_cap(d: &mut Decision, open: u64, cap: u64) {
    d.case_id = None;
    d.status = arbiter_core::DecisionStatus::Final;
    d.final_verdict = Some(FinalVerdict {
        verdict: Verdict::Deny,
        source: FinalSource::AgentCaseCap,
        action: None,
        decided_by: vec![],
        rationale: format!(
            "{} already has {open} open approval cases (the cap is {cap}); no new case was opened and the \
             escalation is denied (past the cap, escalations fail closed whatever the fallback)",
            d.agent
        ),
        decided_at: d.received_at,
        receipt: None,
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
    /// `subject` (what the action acts on, [`arbiter_core::insight::subject`])
    pub subject: Option<String>,
    /// `final_source` (who settled it)
    pub final_source: Option<&'static str>,
    /// `overridden` (people refused or modified it; absent unless people decided it)
    pub overridden: Option<bool>,
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
            status: d.status.as_str(),
            final_verdict: d.final_verdict.as_ref().map(|f| f.verdict.as_str()),
            policy_hash: d.policy_hash.clone(),
            case_id: d.case_id.clone(),
            trace_id: d.trace_id.clone(),
            received_at: d.received_at.0,
            event_time: d.event_time.0,
            session_id: d.context.get("session_id").and_then(serde_json::Value::as_str).map(str::to_string),
            outcome_correct: d.outcome.as_ref().map(|o| o.correct),
            outcome_cost: d.outcome.as_ref().and_then(|o| o.cost),
            subject: d.subject.clone().or_else(|| arbiter_core::insight::subject(&d.action)),
            final_source: d.final_verdict.as_ref().map(|f| f.source.as_str()),
            overridden: d
                .final_verdict
                .as_ref()
                .filter(|f| f.source == arbiter_core::FinalSource::Review)
                .map(|f| f.verdict == arbiter_core::Verdict::Deny || f.action.is_some()),
        }
    }

    /// The first column of `stored` that differs from these, by name.
    pub fn first_difference(&self, stored: &DecisionColumns) -> Option<&'static str> {
        let checks: [(&'static str, bool); 18] = [
            ("agent", self.agent == stored.agent),
            ("idempotency_key", self.idempotency_key == stored.idempotency_key),
            ("action_name", self.action_name == stored.action_name),
            // by value: a database may store -0.0 as 0 (both are the same number)
            ("confidence", self.confidence == stored.confidence),
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
            ("outcome_cost", self.outcome_cost == stored.outcome_cost),
            ("subject", self.subject == stored.subject),
            ("final_source", self.final_source == stored.final_source),
            ("overridden", self.overridden == stored.overridden),
        ];
        checks.into_iter().find(|(_, same)| !same).map(|(name, _)| name)
    }
}

/// The stored text of an enum column (`verdict`, `status`, `final_verdict`,
/// `final_source`) as the name it should be, taken from the enums themselves
/// (a value no enum has reads as `(unknown)`, so a forged one compares
/// unequal instead of failing to parse, and a new variant is known at once).
pub fn column_name(s: &str) -> &'static str {
    use arbiter_core::{DecisionStatus, FinalSource};
    let names = Verdict::ALL
        .iter()
        .map(|v| v.as_str())
        .chain(DecisionStatus::ALL.iter().map(|v| v.as_str()))
        .chain(FinalSource::ALL.iter().map(|v| v.as_str()));
    names.into_iter().find(|k| *k == s).unwrap_or("(unknown)")
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

/// A record handed to a project's store handle must belong to that project
/// (a caller that built it for another project has a bug; nothing is written).
pub fn same_project(handle: &str, record: &arbiter_core::ProjectId, what: &str) -> Result<(), crate::StoreError> {
    if handle == record.as_str() {
        return Ok(());
    }
    Err(crate::StoreError::Conflict(format!(
        "this {what} belongs to project `{record}`, not to `{handle}` (the store handle's project)"
    )))
}

/// A membership gives a person's role: reviewer or admin, never agent (an
/// agent acts only in its own project).
pub fn member_role(role: arbiter_core::Role) -> Result<(), crate::StoreError> {
    if role == arbiter_core::Role::Agent {
        return Err(crate::StoreError::Conflict(
            "a membership is a person's role (reviewer or admin); an agent acts only in its own project".into(),
        ));
    }
    Ok(())
}

/// The chain commitments of one write batch, one per project: each project's
/// decisions are committed to that project's chain.
#[derive(Debug, Default)]
pub struct ProjectChains {
    /// By project, in the order they first wrote in the batch (a batch has few).
    chains: Vec<(String, ChainBatch)>,
    /// Each chain's length when the running job began (buffer kept across jobs).
    marked: Vec<usize>,
}

impl ProjectChains {
    /// The commitment of `project`'s decisions in this batch.
    pub fn of(&mut self, project: &str) -> &mut ChainBatch {
        let i = match self.chains.iter().position(|(p, _)| p == project) {
            Some(i) => i,
            None => {
                self.chains.push((project.to_string(), ChainBatch::default()));
                self.chains.len() - 1
            }
        };
        &mut self.chains[i].1
    }

    /// Note where every chain stands as a job begins (to roll the job back).
    pub fn begin_job(&mut self) {
        self.marked.clear();
        self.marked.extend(self.chains.iter().map(|(_, c)| c.len()));
    }

    /// Forget what the running job recorded (it rolled back).
    pub fn rollback_job(&mut self) {
        self.chains.truncate(self.marked.len());
        for ((_, c), len) in self.chains.iter_mut().zip(&self.marked) {
            c.truncate(*len);
        }
    }

    /// Whether no project has a leaf.
    pub fn is_empty(&self) -> bool {
        self.chains.iter().all(|(_, c)| c.is_empty())
    }

    /// Each project's `decisions.committed` payload and time, in project id
    /// order (the order chain heads are locked in), then empty.
    pub fn take(&mut self) -> Vec<(String, serde_json::Value, Timestamp)> {
        let mut chains = std::mem::take(&mut self.chains);
        chains.sort_by(|a, b| a.0.cmp(&b.0));
        self.marked.clear();
        chains.into_iter().filter_map(|(p, mut c)| c.take().map(|(data, at)| (p, data, at))).collect()
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

    /// After every row was checked: each committed decision with no row was deleted.
    pub fn finish(self) -> Vec<AuditProblem> {
        let mut gone: Vec<String> = self.committed.into_keys().collect();
        gone.sort();
        gone.into_iter()
            .map(|id| AuditProblem::Decision {
                id,
                why: "the audit chain committed this decision but its row is gone (deleted)".into(),
            })
            .collect()
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

impl ChainWalk {
    /// A walk over a chain whose first event links to `genesis` (a project's
    /// [`arbiter_core::ProjectId::genesis_hash`]).
    pub fn from_genesis(genesis: String) -> Self {
        ChainWalk { prev: genesis, next_seq: 1 }
    }

    /// Check the next event: its sequence number, its link and its own hash.
    /// The walk goes on from the stored event either way, so each later
    /// event is checked on its own (one bad event is one problem, not all
    /// the rest).
    pub fn step(&mut self, ev: &crate::Event) -> Result<(), AuditProblem> {
        let bad = |why: String| AuditProblem::Event { seq: ev.seq, why };
        let result = if ev.seq != self.next_seq {
            Err(bad(format!("expected event {} next, found {} (events missing)", self.next_seq, ev.seq)))
        } else if ev.prev_hash != self.prev {
            Err(bad("prev_hash does not match the previous event's hash".into()))
        } else if ev.compute_hash() != ev.hash {
            Err(bad("hash does not match the event's contents".into()))
        } else {
            Ok(())
        };
        self.skip(ev.seq, &ev.hash);
        result
    }

    /// Go on after event `seq` (stored hash `hash`) without checking it: one
    /// that could not even be read.
    pub fn skip(&mut self, seq: u64, hash: &str) {
        self.prev = hash.to_string();
        self.next_seq = seq + 1;
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

/// Event kind of a new lesson.
pub const LESSON_CREATED: &str = "lesson.created";
/// Event kind of a changed lesson.
pub const LESSON_UPDATED: &str = "lesson.updated";

/// The lesson id of a review case (one lesson per review).
pub fn lesson_id(review_id: &str) -> String {
    format!("lesson-{review_id}")
}

/// A review case closed (by `by`, with remark `reason`): its lesson, new or
/// refreshed, and the event kind to record. Backends call this in the
/// transaction that closes the case, with the review's decisions
/// ([`arbiter_core::review::Review::failing_decisions`]) and their approval cases.
pub fn lesson_on_close(
    existing: Option<arbiter_core::lesson::Lesson>,
    review_case: &Case,
    decisions: &[Decision],
    answer_cases: &[Case],
    reason: &str,
    by: &str,
    at: Timestamp,
) -> (arbiter_core::lesson::Lesson, &'static str) {
    match existing {
        Some(mut l) => {
            l.refresh(review_case, decisions, answer_cases, by, at);
            (l, LESSON_UPDATED)
        }
        None => (
            arbiter_core::lesson::Lesson::from_review(
                lesson_id(&review_case.id),
                review_case,
                decisions,
                answer_cases,
                reason,
                by,
                at,
            ),
            LESSON_CREATED,
        ),
    }
}

/// The data of a lesson event: the lesson as it now is, and what changed.
pub fn lesson_event_data(lesson: &arbiter_core::lesson::Lesson, changed: &[&str]) -> serde_json::Value {
    serde_json::json!({"lesson": lesson, "changed": changed})
}

/// Check a lesson row against the last event that wrote it.
pub fn check_lesson(id: &str, body: &str, last_event: Option<&crate::Event>) -> Result<(), AuditProblem> {
    let bad = |why: String| AuditProblem::Lesson { id: id.to_string(), why };
    let stored: serde_json::Value =
        serde_json::from_str(body).map_err(|e| bad(format!("the lesson row is not readable: {e}")))?;
    let Some(e) = last_event else { return Err(bad("no `lesson.*` event wrote this lesson".into())) };
    if e.data.get("lesson") != Some(&stored) {
        return Err(bad(format!("the lesson row differs from event {}", e.seq)));
    }
    Ok(())
}

/// Short string values of `v` (at most 32, three levels deep): the ids,
/// hosts and names a person searches a decision by.
fn identifiers(v: &serde_json::Value, depth: usize, out: &mut Vec<String>) {
    use serde_json::Value;
    if depth > 3 || out.len() >= 32 {
        return;
    }
    match v {
        Value::String(s) if !s.is_empty() && s.chars().count() <= 64 && !out.contains(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| identifiers(x, depth + 1, out)),
        Value::Object(o) => o.values().for_each(|x| identifiers(x, depth + 1, out)),
        _ => {}
    }
}

fn push_text(out: &mut Vec<String>, s: &str) {
    let t = s.trim();
    if !t.is_empty() {
        out.push(t.to_string());
    }
}

/// The search document of a lesson.
pub fn lesson_document(l: &arbiter_core::lesson::Lesson) -> arbiter_core::search::Document {
    arbiter_core::search::Document {
        kind: arbiter_core::search::SearchKind::Lesson,
        id: l.id.clone(),
        title: l.title.clone(),
        body: l.search_text(),
        actions: l.action_classes.clone(),
        agents: l.agents.clone(),
        failure_modes: l.failure_modes.clone(),
        at: l.updated_at,
    }
}

/// The search document of a review case: its title, description, every
/// stage entry (rationale and content), comments and interventions.
pub fn review_document(c: &Case) -> Option<arbiter_core::search::Document> {
    use arbiter_core::review::StageRecord;
    let r = c.review.as_ref()?;
    let mut text = Vec::new();
    push_text(&mut text, &r.description);
    let mut failure_modes = std::collections::BTreeSet::new();
    for e in &r.entries {
        push_text(&mut text, &e.rationale);
        match &e.record {
            StageRecord::ContextualAnalysis(a) => {
                a.steps.iter().for_each(|s| push_text(&mut text, s));
                push_text(&mut text, &a.environment);
            }
            StageRecord::TraceInspection(t) => {
                for f in &t.findings {
                    push_text(&mut text, &f.note);
                    failure_modes.insert(f.kind.as_str().to_string());
                }
            }
            StageRecord::ImpactAssessment(a) => {
                push_text(&mut text, &a.technical_correctness);
                push_text(&mut text, &a.user_experience);
            }
            StageRecord::ResolutionDesign(d) => {
                for x in &d.interventions {
                    push_text(&mut text, &x.description);
                    push_text(&mut text, &x.expected_effect);
                }
                if let Some(why) = &d.no_intervention_needed {
                    push_text(&mut text, why);
                }
            }
        }
    }
    c.comments.iter().for_each(|cm| push_text(&mut text, &cm.text));
    let actions = if c.action_name.is_empty() || c.action_name == "*" { vec![] } else { vec![c.action_name.clone()] };
    let agents = if c.agent.is_empty() || c.agent == "*" { vec![] } else { vec![c.agent.clone()] };
    Some(arbiter_core::search::Document {
        kind: arbiter_core::search::SearchKind::Review,
        id: c.id.clone(),
        title: r.title.clone(),
        body: text.join("\n"),
        actions,
        agents,
        failure_modes: failure_modes.into_iter().collect(),
        at: c.updated_at,
    })
}

/// The search document of a decision people answered: the policy's
/// explanation, the reviewers' rationales and comments. `None` until someone answered.
pub fn decision_document(d: &Decision, c: &Case) -> Option<arbiter_core::search::Document> {
    if c.answers.is_empty() && c.comments.is_empty() {
        return None;
    }
    let mut text = vec![d.explanation.clone()];
    c.answers.iter().for_each(|a| push_text(&mut text, &a.rationale));
    c.comments.iter().for_each(|cm| push_text(&mut text, &cm.text));
    // the identifiers people search by: alert ids, hosts, users from the arguments and the context
    let mut ids = Vec::new();
    identifiers(&d.action.args, 0, &mut ids);
    identifiers(&d.context, 0, &mut ids);
    push_text(&mut text, &ids.join(" "));
    let mut failure_modes: Vec<String> = c.answers.iter().flat_map(|a| a.failure_modes.iter().cloned()).collect();
    failure_modes.sort();
    failure_modes.dedup();
    let title = match arbiter_core::insight::subject(&d.action) {
        Some(s) => format!("{} {s}", d.action.name),
        None => d.action.name.clone(),
    };
    Some(arbiter_core::search::Document {
        kind: arbiter_core::search::SearchKind::Decision,
        id: d.id.clone(),
        title,
        body: text.join("\n"),
        actions: vec![d.action.name.clone()],
        agents: vec![d.agent.clone()],
        failure_modes,
        at: c.updated_at,
    })
}

/// The words of a search in FTS5 syntax: each quoted (so no word is read as
/// an operator), all required, `word*` as a prefix. `None` when there is no word.
pub fn fts_words(q: &str) -> Option<String> {
    let terms = arbiter_core::search::terms(q);
    (!terms.is_empty()).then(|| {
        terms
            .iter()
            .map(|t| if t.prefix { format!("\"{}\"*", t.word) } else { format!("\"{}\"", t.word) })
            .collect::<Vec<_>>()
            .join(" ")
    })
}

/// A stored final source (`review`, `sla_expired`, ...), or `Corrupt`.
pub fn final_source(s: &str) -> crate::Result<arbiter_core::FinalSource> {
    use arbiter_core::FinalSource as F;
    [F::Policy, F::Review, F::SlaExpired, F::AgentCaseCap, F::Withdrawn]
        .into_iter()
        .find(|f| f.as_str() == s)
        .ok_or_else(|| crate::StoreError::Corrupt(format!("unknown final source `{s}`")))
}

/// The approval queue's depth at the end of each hour from `since` to the
/// last hour of `d.hourly`, from each case's (opened, answered) times
/// (`None`: still waiting), into `d.queue_depth`.
pub fn queue_depth(d: &mut crate::Dashboard, since: Timestamp, spans: &[(i64, Option<i64>)]) {
    let first = since.0.div_euclid(3_600_000) + 1;
    let last = d.hourly.last().map_or(first, |h| h.hour.0.div_euclid(3_600_000) + 1).max(first);
    for h in first..=last {
        let end = h * 3_600_000;
        let open = spans.iter().filter(|(c, closed)| *c < end && closed.is_none_or(|x| x >= end)).count();
        d.queue_depth.push((Timestamp(end), open as u64));
    }
}

/// Test hook for every backend: `ARBITER_TEST_FAIL=decision_commit` makes
/// every commit of a batch that wrote decisions fail, so the durability tests
/// can prove that no decision is acknowledged unless it committed.
pub fn fail_point(name: &str) -> crate::Result<()> {
    static FAIL: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    match FAIL.get_or_init(|| std::env::var("ARBITER_TEST_FAIL").ok()) {
        Some(n) if n == name => {
            Err(crate::StoreError::backend_msg(format!("injected failure at `{name}` (ARBITER_TEST_FAIL)")))
        }
        _ => Ok(()),
    }
}

/// Accept (with the draft version that carries it) or dismiss suggestion
/// `s` as `by` at `at`; only an open, unexpired one can be. Gives the event
/// to record: its kind and data.
pub fn decide_suggestion(
    s: &mut arbiter_core::suggest::Suggestion,
    state: arbiter_core::suggest::SuggestionState,
    draft_policy: Option<String>,
    by: &str,
    at: Timestamp,
) -> crate::Result<(&'static str, serde_json::Value)> {
    use arbiter_core::suggest::SuggestionState;
    if !s.is_open(at) {
        return Err(crate::StoreError::Conflict(format!(
            "suggestion {} is {}; only an open, unexpired suggestion can be accepted or dismissed",
            s.id,
            if s.state == SuggestionState::Open { "expired" } else { s.state.as_str() }
        )));
    }
    s.state = state;
    s.draft_policy = draft_policy;
    s.decided_by = Some(by.to_string());
    let kind = if state == SuggestionState::Accepted { "suggestion.accepted" } else { "suggestion.dismissed" };
    Ok((kind, serde_json::json!({"suggestion": s.id, "description": s.description, "draft_policy": s.draft_policy})))
}

/// The audit event of a policy activation: its kind and data (`previous`: the version it replaces).
pub fn policy_activated(v: &crate::PolicyVersion, previous: Option<&str>) -> (&'static str, serde_json::Value) {
    ("policy.activated", serde_json::json!({"hash": v.hash, "name": v.name, "previous": previous}))
}

/// The audit event of a receipt's first use: its kind and data.
pub fn receipt_consumed(decision_id: &str, consumer: &str, args_digest: &str) -> (&'static str, serde_json::Value) {
    (
        "receipt.consumed",
        serde_json::json!({"decision_id": decision_id, "consumer": consumer, "args_digest": args_digest}),
    )
}

/// Whether a case query asks only for cases that ended (decided or closed):
/// those are listed by when they ended, newest first; any other query by
/// when the cases opened.
pub fn lists_ended_cases(states: &[arbiter_core::CaseState]) -> bool {
    use arbiter_core::CaseState;
    !states.is_empty() && states.iter().all(|s| matches!(s, CaseState::Decided | CaseState::Closed))
}
