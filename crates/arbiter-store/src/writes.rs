//! The writes that are the same on every backend, written once over the few
//! primitives a backend's write transaction offers ([`WriteTx`]): running a
//! command on a case, opening one, the lesson a closing review writes, and
//! keeping the search index current. A backend implements the primitives in
//! its SQL and calls these inside its transaction.

use crate::Result;
use crate::rules::{
    LESSON_UPDATED, command_actor, decision_document, final_from_event, lesson_document, lesson_event_data,
    lesson_on_close, review_document,
};
use crate::{CaseUpdate, Event, StoreError, finalize};
use arbiter_core::lesson::{Lesson, LessonPatch};
use arbiter_core::search::Document;
use arbiter_core::{Case, CaseCommand, CaseEvent, CaseKind, CaseState, Decision, Timestamp};

/// The `label` of an outcome that an audit recorded.
pub const AUDIT_LABEL: &str = "audit";

/// What a backend's write transaction offers the shared writes.
pub trait WriteTx {
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
    /// Rewrite a decision row and commit it to the chain (`at`: as of when).
    fn save_decision(&mut self, d: &Decision, at: Timestamp) -> Result<()>;
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

/// Append a case event to the chain and queue it for the webhooks that want it.
pub fn append_case_event(
    t: &mut impl WriteTx,
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
        t.save_decision(&d, now)?;
        labelled = Some(d);
    }
    let mut decision = None;
    if let (Some(ev), Some(did)) = (decided, &case.decision_id) {
        let mut d = t
            .decision(did)?
            .ok_or_else(|| StoreError::Corrupt(format!("case {} names a missing decision {did}", case.id)))?;
        if let Some(fin) = final_from_event(&case, ev, &d, now) {
            finalize(&mut d, fin);
            t.save_decision(&d, now)?;
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
