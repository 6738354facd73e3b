//! `audit verify`, once for every backend: the walk over the hash chain, the
//! decision rows against the digests the chain committed, the case rows
//! against the replay of their events, and the lessons against their last
//! event. A backend only reads (through [`AuditSnapshot`], inside one
//! consistent snapshot); every rule about what verifies lives here, as the
//! writes' rules live in [`crate::writes`].

use crate::rules::{ChainWalk, DECISIONS_COMMITTED, DecisionColumns, DecisionLedger};
use crate::{AuditProblem, AuditReport, ChainHead, Event, Result};

/// Rows read per page, so a long log is never all in memory.
pub const PAGE: usize = 5_000;

/// One stored event as verification reads it: parsed, or the reason it
/// could not be (its sequence number and stored hash still let the walk go on).
#[derive(Debug)]
pub enum StoredEvent {
    /// The event.
    Read(Event),
    /// A row whose fields could not be read.
    Unreadable {
        /// Its sequence number.
        seq: u64,
        /// Its stored hash (empty when even that was unreadable).
        hash: String,
        /// What is wrong with it.
        why: String,
    },
}

/// One stored decision row: its position, id, body text and indexed columns.
#[derive(Debug)]
pub struct DecisionRow {
    /// Its insertion order (pages continue after it).
    pub seq: i64,
    /// The decision id.
    pub id: String,
    /// The stored body text.
    pub body: String,
    /// The indexed columns as stored.
    pub columns: DecisionColumns,
}

/// What verification reads, all from one snapshot of the store and all of one project.
pub trait AuditSnapshot {
    /// Events with a sequence number above `after`, in order, at most `limit`.
    fn events_after(&mut self, after: u64, limit: usize) -> Result<Vec<StoredEvent>>;
    /// The event at `seq`, if there is one.
    fn event_at(&mut self, seq: u64) -> Result<Option<Event>>;
    /// Decision rows after insertion position `after`, in order, at most `limit`.
    fn decisions_after(&mut self, after: i64, limit: usize) -> Result<Vec<DecisionRow>>;
    /// Case rows (position, id, body) after position `after`, in order, at most `limit`.
    fn cases_after(&mut self, after: i64, limit: usize) -> Result<Vec<(i64, String, String)>>;
    /// The events of one case, in order.
    fn case_events(&mut self, case_id: &str) -> Result<Vec<Event>>;
    /// Every `lesson.created` / `lesson.updated` event, in order.
    fn lesson_events(&mut self) -> Result<Vec<Event>>;
    /// Every lesson row (id, body).
    fn lessons(&mut self) -> Result<Vec<(String, String)>>;
}

/// Verify one project of the store as `snap` sees it (and, given an
/// `anchor`, that the project's chain still extends it). Checking goes on past a problem: the report
/// names every one (bounded), so an odd row cannot hide a forgery after it.
pub fn verify(
    snap: &mut dyn AuditSnapshot,
    project: &arbiter_core::ProjectId,
    anchor: Option<&ChainHead>,
) -> Result<AuditReport> {
    let mut report = AuditReport::default();
    let mut walk = ChainWalk::from_genesis(project.genesis_hash());
    let mut ledger = DecisionLedger::default();
    let mut after = 0u64;
    loop {
        let page = snap.events_after(after, PAGE)?;
        let Some(last) = page.last() else { break };
        after = match last {
            StoredEvent::Read(e) => e.seq,
            StoredEvent::Unreadable { seq, .. } => *seq,
        };
        for stored in page {
            match stored {
                StoredEvent::Read(ev) => {
                    let step = walk.step(&ev).and_then(|()| {
                        if ev.kind == DECISIONS_COMMITTED { ledger.commit(ev.seq, &ev.data) } else { Ok(()) }
                    });
                    match step {
                        Ok(()) => report.events += 1,
                        Err(p) => report.note(p),
                    }
                    report.head = Some(ChainHead { seq: ev.seq, hash: ev.hash });
                }
                StoredEvent::Unreadable { seq, hash, why } => {
                    report.note(AuditProblem::Event { seq, why });
                    walk.skip(seq, &hash);
                    report.head = Some(ChainHead { seq, hash });
                }
            }
        }
    }
    if let Some(anchor) = anchor {
        let at = snap.event_at(anchor.seq)?;
        if let Err(p) = crate::rules::check_anchor(anchor, at.as_ref(), report.head.as_ref()) {
            report.note(p);
        }
    }
    let mut after = i64::MIN;
    loop {
        let page = snap.decisions_after(after, PAGE)?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for row in page {
            match ledger.check(&row.id, &row.body, &row.columns) {
                Ok(()) => report.decisions += 1,
                Err(p) => report.note(p),
            }
        }
    }
    ledger.finish().into_iter().for_each(|p| report.note(p));
    let mut after = i64::MIN;
    loop {
        let page = snap.cases_after(after, PAGE)?;
        let Some(last) = page.last() else { break };
        after = last.0;
        for (_, id, body) in page {
            let events = snap.case_events(&id)?;
            match crate::rules::check_projection(&id, &body, &events) {
                Ok(()) => report.cases += 1,
                Err(p) => report.note(p),
            }
        }
    }
    let mut last: std::collections::HashMap<String, Event> = std::collections::HashMap::new();
    for e in snap.lesson_events()? {
        if let Some(id) = e.data["lesson"]["id"].as_str() {
            last.insert(id.to_string(), e);
        }
    }
    for (id, body) in snap.lessons()? {
        if let Err(p) = crate::rules::check_lesson(&id, &body, last.get(&id)) {
            report.note(p);
        }
    }
    Ok(report)
}
