//! The writes that are the same on every backend, written once over the few
//! primitives a backend's write transaction offers ([`WriteTx`]): storing
//! decisions (the open-case cap, the idempotency protocol, the chain and the
//! roll-ups), rewriting one, running a command on a case, opening one, the
//! lesson a closing review writes, and keeping the search index current. A
//! backend implements the primitives in its SQL and calls these inside its
//! transaction.

use crate::Result;
use crate::rules::{DecisionColumns, apply_case_cap, idempotent_replay};
use crate::rules::{
    LESSON_UPDATED, command_actor, decision_document, final_from_event, lesson_document, lesson_event_data,
    lesson_on_close, review_document,
};
use crate::{CaseUpdate, Consumption, Event, Inserted, NewDecision, StoreError, finalize};
use arbiter_core::lesson::{Lesson, LessonPatch};
use arbiter_core::search::Document;
use arbiter_core::{Case, CaseCommand, CaseEvent, CaseKind, CaseState, Decision, Timestamp};
use std::collections::{HashMap, HashSet};

/// The `label` of an outcome that an audit recorded.
pub const AUDIT_LABEL: &str = "audit";

/// A decision row to insert: the decision, its body as stored (and as the
/// chain commits it) and its indexed columns.
pub struct DecisionRow<'a> {
    /// What was asked to be stored.
    pub new: &'a NewDecision,
    /// The decision's stored text.
    pub body: String,
    /// Its indexed columns.
    pub columns: DecisionColumns,
}

/// The hour (since the epoch) a decision is counted under in the roll-ups.
pub fn hour_of(d: &Decision) -> i64 {
    d.event_time.0.div_euclid(3_600_000)
}

/// What a backend's write transaction offers the shared writes.
pub trait WriteTx {
    /// How many approval cases each of `agents` has waiting for people (open or claimed).
    fn open_approval_cases(&mut self, agents: &[&str]) -> Result<HashMap<String, u64>>;
    /// Insert the rows whose (agent, idempotency key) is free, in order (of
    /// two with the same key, the first), counting each one inserted once in
    /// the hourly roll-ups by verdict and by ending. Returns the ids inserted.
    fn insert_decision_rows(&mut self, rows: &[DecisionRow<'_>]) -> Result<HashSet<String>>;
    /// For each (agent, idempotency key) stored, its request digest and body.
    fn decisions_by_key(&mut self, keys: &[(&str, &str)]) -> Result<HashMap<(String, String), (String, String)>>;
    /// Commit a decision's body to the batch's chain commitment (`at`: as of when).
    fn cover(&mut self, id: &str, body: &str, at: Timestamp);
    /// The final verdict and source columns a decision row holds now.
    fn decision_ending(&mut self, id: &str) -> Result<(Option<String>, Option<String>)>;
    /// Add `by` (+1 or -1) to the hourly count of decisions of `d`'s class that ended with (`verdict`, `source`).
    fn count_ending(&mut self, d: &Decision, verdict: Option<&str>, source: Option<&str>, by: i64) -> Result<()>;
    /// Rewrite a decision row's changing columns and body.
    fn update_decision_row(&mut self, d: &Decision, columns: &DecisionColumns, body: &str) -> Result<()>;
    /// Insert new case rows (a backend may do it in one statement).
    fn insert_cases(&mut self, cases: &[&Case]) -> Result<()> {
        cases.iter().try_for_each(|c| self.save_case(c, true))
    }
    /// Append case events to the chain in order and queue them for the
    /// webhooks that want them (a backend may do each in one statement).
    fn append_case_events(&mut self, events: &[(&Case, CaseEvent, &str, Timestamp)]) -> Result<Vec<Event>> {
        events.iter().map(|(case, ev, actor, at)| append_case_event(self, case, ev, actor, *at)).collect()
    }
    /// The recorded use of decision `id`'s receipt, if it was used.
    fn receipt_use(&mut self, decision_id: &str) -> Result<Option<Consumption>>;
    /// Record the first use of a receipt.
    fn insert_receipt_use(&mut self, used: &Consumption) -> Result<()>;
    /// A case, read for changing it (a backend with several writers locks the row).
    fn case_for_update(&mut self, id: &str) -> Result<Option<Case>>;
    /// Insert a new case row, or (`insert: false`) rewrite an existing one.
    fn save_case(&mut self, case: &Case, insert: bool) -> Result<()>;
    /// Append an event to the audit chain (not yet offered to webhooks).
    fn append_event(
        &mut self,
        case_id: Option<&str>,
        decision_id: Option<&str>,
        kind: &str,
        actor: &str,
        at: Timestamp,
        data: serde_json::Value,
    ) -> Result<Event>;
    /// Queue an event for every active webhook that wants its kind.
    fn queue_deliveries(&mut self, e: &Event) -> Result<()>;
    /// A decision.
    fn decision(&mut self, id: &str) -> Result<Option<Decision>>;
    /// A decision, read for changing it (a backend with several writers locks the row).
    fn decision_for_update(&mut self, id: &str) -> Result<Option<Decision>> {
        self.decision(id)
    }
    /// Note that `id` became final in this transaction (backends with several
    /// processes tell the others once it commits).
    fn decision_finalized(&mut self, _id: &str) {}
    /// The lesson with this id.
    fn lesson(&mut self, id: &str) -> Result<Option<Lesson>>;
    /// The lesson of a review case.
    fn lesson_of_review(&mut self, review_id: &str) -> Result<Option<Lesson>>;
    /// Insert or rewrite a lesson row.
    fn save_lesson(&mut self, lesson: &Lesson) -> Result<()>;
    /// Put a document in the search index, replacing its earlier text.
    fn index_document(&mut self, doc: &Document) -> Result<()>;
    /// The last event of `kind` of a case.
    fn last_case_event(&mut self, case_id: &str, kind: &str) -> Result<Option<Event>>;
}

/// Store decisions (and the cases they open) as one batch; each result is
/// what storing that decision alone, after the ones before it, would give:
///
/// 1. the open-case cap, counted per agent (with the cases the batch opens
///    as it goes): past it the escalation is denied and opens no case
///    ([`apply_case_cap`]);
/// 2. the rows whose idempotency key is free are inserted and counted in
///    the roll-ups; the others answer with the decision stored under that
///    key ([`idempotent_replay`]: `Conflict` when the request differs);
/// 3. each inserted body is committed to the chain;
/// 4. the cases are opened, with their `case.opened` events.
pub fn insert_decisions(t: &mut (impl WriteTx + ?Sized), mut news: Vec<NewDecision>) -> Result<Vec<Result<Inserted>>> {
    let capped: Vec<String> =
        news.iter().filter(|n| n.approval_cap().is_some()).map(|n| n.decision.agent.clone()).collect();
    if !capped.is_empty() {
        let mut open = t.open_approval_cases(&capped.iter().map(String::as_str).collect::<Vec<_>>())?;
        for n in &mut news {
            if let Some(cap) = n.approval_cap() {
                let count = open.entry(n.decision.agent.clone()).or_default();
                if *count >= cap {
                    apply_case_cap(&mut n.decision, *count, cap);
                    n.case = None;
                } else {
                    *count += 1;
                }
            }
        }
    }
    let mut out: Vec<Option<Result<Inserted>>> = Vec::with_capacity(news.len());
    {
        let rows = news
            .iter()
            .map(|n| {
                let body = serde_json::to_string(&n.decision).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                Ok(DecisionRow { new: n, body, columns: DecisionColumns::of(&n.decision) })
            })
            .collect::<Result<Vec<_>>>()?;
        let inserted = t.insert_decision_rows(&rows)?;
        let replays: Vec<(&str, &str)> = rows
            .iter()
            .filter(|r| !inserted.contains(&r.new.decision.id))
            .map(|r| (r.columns.agent.as_str(), r.columns.idempotency_key.as_deref().unwrap_or_default()))
            .collect();
        let stored = if replays.is_empty() { HashMap::new() } else { t.decisions_by_key(&replays)? };
        let mut opened: Vec<(&Case, CaseEvent, &str, Timestamp)> = Vec::new();
        for r in &rows {
            let d = &r.new.decision;
            if !inserted.contains(&d.id) {
                let key = r.columns.idempotency_key.as_deref().unwrap_or_default();
                out.push(Some(match stored.get(&(d.agent.clone(), key.to_string())) {
                    Some((digest, body)) => serde_json::from_str::<Decision>(body)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))
                        .and_then(|prior| idempotent_replay(key, digest, &r.new.request_digest, prior)),
                    None => Err(StoreError::Conflict(format!("decision {} was not stored (its id is taken)", d.id))),
                }));
                continue;
            }
            t.cover(&d.id, &r.body, d.received_at);
            if let Some(case) = &r.new.case {
                opened.push((case, CaseEvent::Opened { case: Box::new(case.clone()) }, &d.agent, case.created_at));
            }
            out.push(None);
        }
        t.insert_cases(&opened.iter().map(|(c, ..)| *c).collect::<Vec<_>>())?;
        t.append_case_events(&opened)?;
    }
    // the stored decisions answer as themselves, moved rather than copied
    Ok(out.into_iter().zip(news).map(|(o, n)| o.unwrap_or(Ok(Inserted::Created(n.decision)))).collect())
}

/// Store one decision ([`insert_decisions`] with a batch of one).
pub fn insert_decision(t: &mut (impl WriteTx + ?Sized), new: NewDecision) -> Result<Inserted> {
    insert_decisions(t, vec![new])?.pop().expect("one result per decision")
}

/// Rewrite a decision row (after it became final, got an outcome or a tool
/// result), moving it between the roll-up's endings when its ending changed,
/// and commit it to the chain (`at`: as of when).
pub fn save_decision(t: &mut (impl WriteTx + ?Sized), d: &Decision, at: Timestamp) -> Result<()> {
    let body = serde_json::to_string(d).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let columns = DecisionColumns::of(d);
    let (was_verdict, was_source) = t.decision_ending(&d.id)?;
    if (was_verdict.as_deref(), was_source.as_deref()) != (columns.final_verdict, columns.final_source) {
        t.count_ending(d, was_verdict.as_deref(), was_source.as_deref(), -1)?;
        t.count_ending(d, columns.final_verdict, columns.final_source, 1)?;
    }
    t.update_decision_row(d, &columns, &body)?;
    t.cover(&d.id, &body, at);
    Ok(())
}

/// Change a stored decision (an outcome, a tool result) and save it ([`save_decision`]).
pub fn rewrite_decision(
    t: &mut (impl WriteTx + ?Sized),
    id: &str,
    at: Timestamp,
    change: impl FnOnce(&mut Decision),
) -> Result<Decision> {
    let mut d = t.decision_for_update(id)?.ok_or_else(|| StoreError::NotFound(format!("decision {id}")))?;
    change(&mut d);
    save_decision(t, &d, at)?;
    Ok(d)
}

/// Record the single use of decision `decision_id`'s receipt by `consumer`:
/// the first use is stored with its `receipt.consumed` event (offered to
/// webhooks) and returned with `first: true`; any later call returns that
/// first use unchanged.
pub fn consume_receipt(
    t: &mut (impl WriteTx + ?Sized),
    decision_id: &str,
    consumer: &str,
    args_digest: &str,
    at: Timestamp,
) -> Result<Consumption> {
    // only a decision of this handle's project has a receipt to use here
    if t.decision(decision_id)?.is_none() {
        return Err(crate::StoreError::NotFound(format!("decision {decision_id}")));
    }
    if let Some(prior) = t.receipt_use(decision_id)? {
        return Ok(Consumption { first: false, ..prior });
    }
    let used = Consumption {
        decision_id: decision_id.to_string(),
        consumer: consumer.to_string(),
        args_digest: args_digest.to_string(),
        at,
        first: true,
    };
    t.insert_receipt_use(&used)?;
    let (kind, data) = crate::rules::receipt_consumed(decision_id, consumer, args_digest);
    let e = t.append_event(None, None, kind, consumer, at, data)?;
    t.queue_deliveries(&e)?;
    Ok(used)
}

/// Append a case event to the chain and queue it for the webhooks that want it.
pub fn append_case_event(
    t: &mut (impl WriteTx + ?Sized),
    case: &Case,
    ev: &CaseEvent,
    actor: &str,
    at: Timestamp,
) -> Result<Event> {
    let e = t.append_event(Some(&case.id), case.decision_id.as_deref(), ev.kind(), actor, at, ev.data())?;
    t.queue_deliveries(&e)?;
    Ok(e)
}

/// Open a case that has no decision of its own (a review case).
pub fn open_case(t: &mut impl WriteTx, case: Case, actor: &str) -> Result<Case> {
    t.save_case(&case, true)?;
    append_case_event(t, &case, &CaseEvent::Opened { case: Box::new(case.clone()) }, actor, case.created_at)?;
    index_case(t, &case)?;
    Ok(case)
}

/// Run a command on a case: the case rules give the events, which are
/// appended and folded into the case; a review that closes gets its lesson;
/// a deciding event makes the case's decision final.
pub fn update_case(t: &mut impl WriteTx, id: &str, command: &CaseCommand, now: Timestamp) -> Result<CaseUpdate> {
    let mut case = t.case_for_update(id)?.ok_or_else(|| StoreError::NotFound(format!("case {id}")))?;
    let changes = arbiter_core::workflow::handle(&case, command, now)?;
    let actor = command_actor(command);
    let mut events = Vec::with_capacity(changes.len());
    let mut decided = None;
    for ev in &changes {
        case.apply(ev, now);
        events.push(append_case_event(t, &case, ev, actor, now)?);
        if ev.final_verdict().is_some() {
            decided = Some(ev);
        }
    }
    if changes.is_empty() {
        return Ok(CaseUpdate { case, events, decision: None, labelled: None });
    }
    t.save_case(&case, false)?;
    if let Some(CaseEvent::Closed { by, reason }) = changes.iter().find(|e| matches!(e, CaseEvent::Closed { .. })) {
        lesson_for_closed(t, &case, reason, by, now)?;
    }
    let mut labelled = None;
    if let (Some(CaseEvent::Labelled { by, correct, note }), Some(did)) =
        (changes.iter().find(|e| matches!(e, CaseEvent::Labelled { .. })), &case.decision_id)
    {
        // an audit's label is its decision's outcome (replacing an earlier one, as recording an outcome does)
        let mut d = t
            .decision(did)?
            .ok_or_else(|| StoreError::Corrupt(format!("case {} names a missing decision {did}", case.id)))?;
        let cost = d.outcome.as_ref().and_then(|o| o.cost);
        d.outcome = Some(arbiter_core::Outcome {
            correct: *correct,
            cost,
            label: Some(AUDIT_LABEL.to_string()),
            note: note.clone(),
            recorded_at: now,
            recorded_by: by.clone(),
        });
        save_decision(t, &d, now)?;
        labelled = Some(d);
    }
    let mut decision = None;
    if let (Some(ev), Some(did)) = (decided, &case.decision_id) {
        let mut d = t
            .decision(did)?
            .ok_or_else(|| StoreError::Corrupt(format!("case {} names a missing decision {did}", case.id)))?;
        if let Some(fin) = final_from_event(&case, ev, &d, now) {
            finalize(&mut d, fin);
            save_decision(t, &d, now)?;
            t.decision_finalized(&d.id);
            decision = Some(d);
        }
    }
    index_case(t, &case)?;
    Ok(CaseUpdate { case, events, decision, labelled })
}

/// Keep the search index current after a case changed: a review case's
/// document, or the document of an approval case's decision once people answered it.
pub fn index_case(t: &mut impl WriteTx, case: &Case) -> Result<()> {
    match case.kind {
        CaseKind::Review => {
            if let Some(doc) = review_document(case) {
                t.index_document(&doc)?;
            }
        }
        CaseKind::Audit => {}
        CaseKind::Approval => {
            if let Some(did) = &case.decision_id
                && let Some(d) = t.decision(did)?
                && let Some(doc) = decision_document(&d, case)
            {
                t.index_document(&doc)?;
            }
        }
    }
    Ok(())
}

/// Record a lesson's new state: the row, its event (chained, offered to
/// webhooks) and its search document.
fn write_lesson(
    t: &mut impl WriteTx,
    l: &Lesson,
    kind: &str,
    changed: &[&str],
    by: &str,
    at: Timestamp,
) -> Result<Event> {
    t.save_lesson(l)?;
    let e = t.append_event(None, None, kind, by, at, lesson_event_data(l, changed))?;
    t.queue_deliveries(&e)?;
    t.index_document(&lesson_document(l))?;
    Ok(e)
}

/// The closing of review `case` by `by`: its lesson, created or refreshed
/// (the rules are [`crate::rules::lesson_on_close`]).
pub fn lesson_for_closed(t: &mut impl WriteTx, case: &Case, reason: &str, by: &str, at: Timestamp) -> Result<Lesson> {
    let ids = case.review.as_ref().map(|r| r.failing_decisions()).unwrap_or_default();
    let mut decisions = Vec::with_capacity(ids.len());
    for id in &ids {
        decisions.extend(t.decision(id)?);
    }
    let mut answer_cases = Vec::new();
    for d in &decisions {
        if let Some(cid) = &d.case_id {
            answer_cases.extend(t.case_for_update(cid)?);
        }
    }
    let existing = t.lesson_of_review(&case.id)?;
    let (lesson, kind) = lesson_on_close(existing, case, &decisions, &answer_cases, reason, by, at);
    let changed: &[&str] = if kind == LESSON_UPDATED { &["review"] } else { &[] };
    write_lesson(t, &lesson, kind, changed, by, at)?;
    Ok(lesson)
}

/// The lesson of a review that closed before lessons existed, created now.
pub fn create_missing_lesson(t: &mut impl WriteTx, review_id: &str, by: &str, at: Timestamp) -> Result<Lesson> {
    let case = t.case_for_update(review_id)?.ok_or_else(|| StoreError::NotFound(format!("review {review_id}")))?;
    if case.kind != CaseKind::Review || case.state != CaseState::Closed {
        return Err(StoreError::Conflict(format!("{review_id} is not a closed review case")));
    }
    if t.lesson_of_review(review_id)?.is_some() {
        return Err(StoreError::Conflict(format!("review {review_id} already has its lesson")));
    }
    let closed = t.last_case_event(review_id, "review.closed")?;
    let reason = closed.as_ref().and_then(|e| e.data["reason"].as_str()).unwrap_or_default().to_string();
    lesson_for_closed(t, &case, &reason, by, at)
}

/// Edit a lesson's human-written fields (an edit that changes nothing records nothing).
pub fn update_lesson(t: &mut impl WriteTx, id: &str, patch: &LessonPatch, by: &str, at: Timestamp) -> Result<Lesson> {
    let mut l = t.lesson(id)?.ok_or_else(|| StoreError::NotFound(format!("lesson {id}")))?;
    let changed = l.apply(patch, by, at);
    if !changed.is_empty() {
        write_lesson(t, &l, LESSON_UPDATED, &changed, by, at)?;
    }
    Ok(l)
}
