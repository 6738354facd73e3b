//! The write transaction the shared writes ([`arbiter_store::writes`]) run
//! on: each primitive in the SQL of its concern's file, several in one
//! statement for a whole batch.

use crate::{Tx, audit, decisions, load_body};
use arbiter_core::{Case, CaseEvent, Decision, Timestamp};
use arbiter_store::rules::DecisionColumns;
use arbiter_store::writes::DecisionRow;
use arbiter_store::{Event, Result};
use std::collections::{HashMap, HashSet};

impl arbiter_store::writes::WriteTx for Tx<'_> {
    fn receipt_use(&mut self, decision_id: &str) -> Result<Option<arbiter_store::Consumption>> {
        decisions::receipt_use(self, decision_id)
    }

    fn insert_receipt_use(&mut self, used: &arbiter_store::Consumption) -> Result<()> {
        decisions::insert_receipt_use(self, used)
    }

    fn case_for_update(&mut self, id: &str) -> Result<Option<Case>> {
        // the row lock keeps a case's commands in order even outside the chain lock
        let p = self.project.clone();
        load_body(self, "SELECT body FROM cases WHERE id = $1 AND project = $2 FOR UPDATE", &[&id, &&*p])
    }

    fn save_case(&mut self, case: &Case, insert: bool) -> Result<()> {
        crate::cases::save_case(self, case, insert)
    }

    fn append_event(
        &mut self,
        case_id: Option<&str>,
        decision_id: Option<&str>,
        kind: &str,
        actor: &str,
        at: Timestamp,
        data: serde_json::Value,
    ) -> Result<Event> {
        crate::audit::append_event(self, case_id, decision_id, kind, actor, at, data)
    }

    fn queue_deliveries(&mut self, e: &Event) -> Result<()> {
        crate::webhooks::queue_deliveries(self, e)
    }

    fn decision(&mut self, id: &str) -> Result<Option<arbiter_core::Decision>> {
        let p = self.project.clone();
        crate::decisions::load_decision(self, &p, id)
    }

    fn decision_for_update(&mut self, id: &str) -> Result<Option<arbiter_core::Decision>> {
        let p = self.project.clone();
        load_body(self, "SELECT body FROM decisions WHERE id = $1 AND project = $2 FOR UPDATE", &[&id, &&*p])
    }

    fn open_approval_cases(&mut self, agents: &[&str]) -> Result<HashMap<String, u64>> {
        decisions::open_approval_cases(self, agents)
    }

    fn insert_decision_rows(&mut self, rows: &[DecisionRow<'_>]) -> Result<HashSet<String>> {
        decisions::insert_decision_rows(self, rows)
    }

    fn decisions_by_key(&mut self, keys: &[(&str, &str)]) -> Result<HashMap<(String, String), (String, String)>> {
        decisions::decisions_by_key(self, keys)
    }

    fn cover(&mut self, id: &str, body: &str, at: Timestamp) {
        self.chain().cover(id, body, at);
    }

    fn decision_ending(&mut self, id: &str) -> Result<(Option<String>, Option<String>)> {
        decisions::decision_ending(self, id)
    }

    fn count_ending(&mut self, d: &Decision, verdict: Option<&str>, source: Option<&str>, by: i64) -> Result<()> {
        decisions::count_ending(self, d, verdict, source, by)
    }

    fn update_decision_row(&mut self, d: &Decision, columns: &DecisionColumns, body: &str) -> Result<()> {
        decisions::update_decision_row(self, d, columns, body)
    }

    fn insert_cases(&mut self, cases: &[&Case]) -> Result<()> {
        crate::cases::insert_cases(self, cases)
    }

    fn append_case_events(&mut self, events: &[(&Case, CaseEvent, &str, Timestamp)]) -> Result<Vec<Event>> {
        // chained in memory, then inserted and queued in one statement each
        let events: Vec<Event> = events
            .iter()
            .map(|(case, ev, actor, at)| {
                audit::chain_event(self, Some(&case.id), case.decision_id.as_deref(), ev.kind(), actor, *at, ev.data())
            })
            .collect::<Result<_>>()?;
        audit::insert_events(self, &events)?;
        crate::webhooks::queue_deliveries_many(self, &events)?;
        Ok(events)
    }

    fn decision_finalized(&mut self, id: &str) {
        self.finalized.push(id.to_string());
    }

    fn lesson(&mut self, id: &str) -> Result<Option<arbiter_core::lesson::Lesson>> {
        let p = self.project.clone();
        load_body(self, "SELECT body FROM lessons WHERE id = $1 AND project = $2 FOR UPDATE", &[&id, &&*p])
    }

    fn lesson_of_review(&mut self, review_id: &str) -> Result<Option<arbiter_core::lesson::Lesson>> {
        let p = self.project.clone();
        load_body(self, "SELECT body FROM lessons WHERE review_id = $1 AND project = $2", &[&review_id, &&*p])
    }

    fn save_lesson(&mut self, lesson: &arbiter_core::lesson::Lesson) -> Result<()> {
        crate::learning::save_lesson(self, lesson)
    }

    fn index_document(&mut self, doc: &arbiter_core::search::Document) -> Result<()> {
        crate::learning::index_document(self, doc)
    }

    fn last_case_event(&mut self, case_id: &str, kind: &str) -> Result<Option<Event>> {
        let p = self.project.clone();
        Ok(crate::audit::load_events(
            self,
            crate::audit::events_sql!("WHERE case_id = $1 AND kind = $2 AND project = $3 ORDER BY seq DESC LIMIT 1"),
            &[&case_id, &kind, &&*p],
        )?
        .pop())
    }
}
