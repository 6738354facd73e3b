//! The write transaction the shared writes ([`crate::writes`]) run on: a
//! job's connection and its batch's chain commitment, each primitive in the
//! SQL of its concern's file.

use super::*;
use crate::rules::DecisionColumns;

/// A write job's connection, project and chain commitment, as the shared writes see them.
pub(super) struct SqliteTx<'a> {
    pub conn: &'a Connection,
    pub project: &'a str,
    pub chain: &'a mut ChainBatch,
}

impl crate::writes::WriteTx for SqliteTx<'_> {
    fn receipt_use(&mut self, decision_id: &str) -> Result<Option<crate::Consumption>> {
        receipt_use(self.conn, self.project, decision_id)
    }

    fn insert_receipt_use(&mut self, used: &crate::Consumption) -> Result<()> {
        insert_receipt_use(self.conn, used)
    }

    fn case_for_update(&mut self, id: &str) -> Result<Option<Case>> {
        load_case(self.conn, self.project, id)
    }

    fn save_case(&mut self, case: &Case, insert: bool) -> Result<()> {
        save_case(self.conn, self.project, case, insert)
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
        append_event(self.conn, self.project, About { case_id, decision_id }, kind, actor, at, data)
    }

    fn queue_deliveries(&mut self, e: &Event) -> Result<()> {
        queue_deliveries(self.conn, self.project, e)
    }

    fn decision(&mut self, id: &str) -> Result<Option<Decision>> {
        load_decision(self.conn, self.project, id)
    }

    fn open_approval_cases(&mut self, agents: &[&str]) -> Result<std::collections::HashMap<String, u64>> {
        open_approval_cases(self.conn, self.project, agents)
    }

    fn insert_decision_rows(
        &mut self,
        rows: &[crate::writes::DecisionRow<'_>],
    ) -> Result<std::collections::HashSet<String>> {
        insert_decision_rows(self.conn, self.project, rows)
    }

    fn decisions_by_key(
        &mut self,
        keys: &[(&str, &str)],
    ) -> Result<std::collections::HashMap<(String, String), (String, String)>> {
        decisions_by_key(self.conn, self.project, keys)
    }

    fn cover(&mut self, id: &str, body: &str, at: Timestamp) {
        self.chain.cover(id, body, at);
    }

    fn decision_ending(&mut self, id: &str) -> Result<(Option<String>, Option<String>)> {
        decision_ending(self.conn, self.project, id)
    }

    fn count_ending(&mut self, d: &Decision, verdict: Option<&str>, source: Option<&str>, by: i64) -> Result<()> {
        count_ending(self.conn, self.project, d, verdict, source, by)
    }

    fn update_decision_row(&mut self, d: &Decision, columns: &DecisionColumns, body: &str) -> Result<()> {
        update_decision_row(self.conn, self.project, d, columns, body)
    }

    fn lesson(&mut self, id: &str) -> Result<Option<arbiter_core::lesson::Lesson>> {
        load_lesson(self.conn, "SELECT body FROM lessons WHERE id = ?1 AND project = ?2", id, self.project)
    }

    fn lesson_of_review(&mut self, review_id: &str) -> Result<Option<arbiter_core::lesson::Lesson>> {
        load_lesson(
            self.conn,
            "SELECT body FROM lessons WHERE review_id = ?1 AND project = ?2",
            review_id,
            self.project,
        )
    }

    fn save_lesson(&mut self, lesson: &arbiter_core::lesson::Lesson) -> Result<()> {
        save_lesson(self.conn, self.project, lesson)
    }

    fn index_document(&mut self, doc: &arbiter_core::search::Document) -> Result<()> {
        index_document(self.conn, self.project, doc)
    }

    fn last_case_event(&mut self, case_id: &str, kind: &str) -> Result<Option<Event>> {
        Ok(load_events(
            self.conn,
            "SELECT seq, case_id, decision_id, kind, actor, at, data, prev_hash, hash FROM events
             WHERE case_id = ?1 AND kind = ?2 AND project = ?3 ORDER BY seq DESC LIMIT 1",
            params![case_id, kind, self.project],
        )?
        .pop())
    }
}
