//! [`Store`] for [`PostgresStore`]: each call is a write job in the next
//! group commit, or a read on a pooled connection.

use crate::{PostgresStore, Snapshot, cases, dashboard, decisions, drift, events, keys, learning, webhooks};
use arbiter_core::insight::{Activity, AgentTotals};
use arbiter_core::lesson::{Lesson, LessonPatch};
use arbiter_core::recurrence::Labelled;
use arbiter_core::search::{SearchHit, SearchQuery};
use arbiter_core::suggest::{Suggestion, SuggestionState};
use arbiter_core::trace::Span;
use arbiter_core::{Case, CaseCommand, Decision, Outcome, Timestamp, ToolResult};
use arbiter_store::writes;
use arbiter_store::{
    AuditReport, CaseFilter, CasePage, CaseQuery, CaseUpdate, ChainHead, ConsoleSession, Consumption, Dashboard,
    Delivery, DeliveryAttempt, DriftPoint, DueDelivery, Event, Inserted, KeyRecord, LessonFilter, NewDecision,
    PolicyVersion, PolicyVersionSummary, Result, Store, StoreError, Webhook,
};
use async_trait::async_trait;

#[async_trait]
impl Store for PostgresStore {
    async fn activate_policy(&self, v: PolicyVersion, at: Timestamp, by: &str) -> Result<()> {
        let by = by.to_string();
        self.write(move |t| keys::activate_policy(t, &v, at, &by)).await
    }

    async fn first_start(
        &self,
        start: arbiter_store::FirstStart,
        at: Timestamp,
    ) -> Result<arbiter_store::FirstStartDone> {
        // every write batch holds the chain head's lock from its start, so
        // replicas starting together see each other's first start here
        self.write(move |t| keys::first_start(t, &start, at)).await
    }

    async fn active_policy(&self) -> Result<Option<PolicyVersion>> {
        self.read(keys::active_policy).await
    }

    async fn policy_version(&self, hash: &str) -> Result<Option<PolicyVersion>> {
        let hash = hash.to_string();
        self.read(move |c| keys::policy_version(c, &hash)).await
    }

    async fn policy_versions(&self) -> Result<Vec<PolicyVersionSummary>> {
        self.read(keys::policy_versions).await
    }

    async fn store_policy_draft(&self, v: PolicyVersion, at: Timestamp, by: &str) -> Result<bool> {
        let by = by.to_string();
        self.write(move |t| keys::store_draft(t, &v, at, &by)).await
    }

    async fn policy_activations(&self, hash: &str) -> Result<Vec<Timestamp>> {
        let hash = hash.to_string();
        self.read(move |c| keys::activations(c, &hash)).await
    }

    async fn create_key(&self, key: KeyRecord) -> Result<()> {
        self.write(move |t| keys::create_key(t, &key)).await
    }

    async fn key(&self, id: &str) -> Result<Option<KeyRecord>> {
        let id = id.to_string();
        self.read(move |c| keys::key(c, &id)).await
    }

    async fn keys(&self) -> Result<Vec<KeyRecord>> {
        self.read(keys::keys).await
    }

    async fn revoke_key(&self, id: &str, at: Timestamp) -> Result<bool> {
        let id = id.to_string();
        self.write(move |t| {
            use crate::Sql;
            Ok(t.execute("UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL", &[&id, &at.0])?
                == 1)
        })
        .await
    }

    async fn set_key_expiry(&self, id: &str, expires_at: Option<Timestamp>) -> Result<bool> {
        let id = id.to_string();
        self.write(move |t| {
            use crate::Sql;
            Ok(t.execute("UPDATE api_keys SET expires_at = $2 WHERE id = $1", &[&id, &expires_at.map(|t| t.0)])? == 1)
        })
        .await
    }

    async fn create_session(&self, s: ConsoleSession) -> Result<()> {
        self.write(move |t| {
            use crate::Sql;
            t.execute(
                "INSERT INTO console_sessions (id, key_id, created_at, expires_at, revoked_at) VALUES ($1, $2, $3, $4, $5)",
                &[&s.id, &s.key_id, &s.created_at.0, &s.expires_at.0, &s.revoked_at.map(|t| t.0)],
            )?;
            Ok(())
        })
        .await
    }

    async fn session(&self, id: &str) -> Result<Option<ConsoleSession>> {
        let id = id.to_string();
        self.read(move |c| keys::session(c, &id)).await
    }

    async fn end_session(&self, id: &str, at: Timestamp) -> Result<bool> {
        let id = id.to_string();
        self.write(move |t| {
            use crate::Sql;
            Ok(t.execute(
                "UPDATE console_sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
                &[&id, &at.0],
            )? == 1)
        })
        .await
    }

    async fn insert_decision(&self, new: NewDecision) -> Result<Inserted> {
        self.insert(new).await
    }

    async fn decision(&self, id: &str) -> Result<Option<Decision>> {
        let id = id.to_string();
        self.read(move |c| decisions::load_decision(c, &id)).await
    }

    async fn replayed_decision(&self, agent: &str, key: &str, request_digest: &str) -> Result<Option<Decision>> {
        let (agent, key, digest) = (agent.to_string(), key.to_string(), request_digest.to_string());
        self.read(move |c| decisions::replayed_decision(c, &agent, &key, &digest)).await
    }

    async fn labelled_decisions(&self, limit: usize) -> Result<Vec<Decision>> {
        self.read(move |c| decisions::labelled(c, limit)).await
    }

    async fn unlabelled_audit_decisions(&self, limit: usize) -> Result<Vec<Decision>> {
        self.read(move |c| decisions::unlabelled_audit(c, limit)).await
    }

    async fn recent_decisions(&self, limit: usize) -> Result<Vec<Decision>> {
        self.read(move |c| decisions::recent(c, limit)).await
    }

    async fn record_outcome(&self, id: &str, outcome: Outcome) -> Result<Decision> {
        let id = id.to_string();
        self.write(move |t| decisions::rewrite(t, &id, outcome.recorded_at, |d| d.outcome = Some(outcome.clone())))
            .await
    }

    async fn case(&self, id: &str) -> Result<Option<Case>> {
        let id = id.to_string();
        self.read(move |c| cases::load_case(c, &id)).await
    }

    async fn open_case(&self, case: Case, actor: &str) -> Result<Case> {
        let actor = actor.to_string();
        self.write(move |t| writes::open_case(t, case.clone(), &actor)).await
    }

    async fn update_case(&self, id: &str, command: CaseCommand, now: Timestamp) -> Result<CaseUpdate> {
        let id = id.to_string();
        self.write(move |t| writes::update_case(t, &id, &command, now)).await
    }

    async fn cases(&self, filter: CaseFilter) -> Result<Vec<Case>> {
        self.read(move |c| cases::list(c, &filter)).await
    }

    async fn find_cases(&self, query: CaseQuery) -> Result<CasePage> {
        if query.text.as_deref().is_some_and(|t| learning::tsquery(t).is_none()) {
            return Err(StoreError::Conflict("the text filter has no word to search for".into()));
        }
        self.read(move |c| cases::find(c, &query)).await
    }

    async fn active_approval_cases(&self) -> Result<Vec<Case>> {
        self.read(cases::active_approval).await
    }

    async fn due_cases(&self, now: Timestamp, limit: usize) -> Result<Vec<String>> {
        self.read(move |c| cases::due(c, now, limit)).await
    }

    async fn decision_chain(
        &self,
        trace_ids: &[String],
        decision_ids: &[String],
        limit: usize,
    ) -> Result<Vec<Decision>> {
        let (traces, ids) = (trace_ids.to_vec(), decision_ids.to_vec());
        self.read(move |c| decisions::chain(c, &traces, &ids, limit)).await
    }

    async fn open_case_count(&self, kind: Option<arbiter_core::CaseKind>) -> Result<u64> {
        self.read(move |c| cases::open_count(c, kind)).await
    }

    async fn case_events(&self, case_id: &str) -> Result<Vec<Event>> {
        let id = case_id.to_string();
        self.read(move |c| {
            events::load_events(c, crate::events::events_sql!("WHERE case_id = $1 ORDER BY seq"), &[&id])
        })
        .await
    }

    async fn verify_audit(&self, anchor: Option<ChainHead>) -> Result<AuditReport> {
        self.read(move |c| {
            // one snapshot: every check sees the same committed state
            let tx = c
                .client
                .build_transaction()
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .map_err(crate::backend)?;
            let mut snap = Snapshot(tx);
            let report = arbiter_store::audit::verify(&mut events::AuditReader(&mut snap), anchor.as_ref())?;
            snap.0.commit().map_err(crate::backend)?;
            Ok(report)
        })
        .await
    }

    async fn chain_head(&self) -> Result<Option<ChainHead>> {
        self.read(events::chain_head).await
    }

    async fn setting_or_insert(&self, name: &str, value: &str) -> Result<String> {
        let (name, value) = (name.to_string(), value.to_string());
        self.write(move |t| keys::setting_or_insert(t, &name, &value)).await
    }

    async fn dashboard(&self, since: Timestamp) -> Result<Dashboard> {
        self.read(move |c| dashboard::dashboard(c, since)).await
    }

    async fn record_event(&self, kind: &str, actor: &str, at: Timestamp, data: serde_json::Value) -> Result<Event> {
        let (kind, actor) = (kind.to_string(), actor.to_string());
        self.write(move |t| {
            let e = events::append_event(t, None, None, &kind, &actor, at, data.clone())?;
            webhooks::queue_deliveries(t, &e)?;
            Ok(e)
        })
        .await
    }

    async fn drift_points(&self, from: Timestamp, to: Timestamp, live_within_ms: i64) -> Result<Vec<DriftPoint>> {
        self.read(move |c| decisions::drift_points(c, from, to, live_within_ms)).await
    }

    async fn events(&self, after_seq: u64, limit: usize) -> Result<Vec<Event>> {
        self.read(move |c| {
            events::load_events(
                c,
                crate::events::events_sql!("WHERE seq > $1 ORDER BY seq LIMIT $2"),
                &[&(after_seq as i64), &(limit as i64)],
            )
        })
        .await
    }

    async fn drift_episodes(
        &self,
        open_only: bool,
        limit: usize,
    ) -> Result<Vec<arbiter_core::drift::episode::Episode>> {
        self.read(move |c| drift::drift_episodes(c, open_only, limit)).await
    }

    async fn drift_episode(&self, id: &str) -> Result<Option<arbiter_core::drift::episode::Episode>> {
        let id = id.to_string();
        self.read(move |c| drift::drift_episode(c, &id)).await
    }

    async fn save_drift_episode(
        &self,
        episode: arbiter_core::drift::episode::Episode,
        event: Option<arbiter_store::EventRecord>,
    ) -> Result<arbiter_core::drift::episode::Episode> {
        self.write(move |t| drift::save_drift_episode(t, &episode, event.as_ref())).await
    }

    async fn lesson(&self, id: &str) -> Result<Option<Lesson>> {
        let id = id.to_string();
        self.read(move |c| learning::lesson(c, &id)).await
    }

    async fn lessons(&self, filter: LessonFilter) -> Result<Vec<Lesson>> {
        self.read(move |c| learning::lessons(c, &filter)).await
    }

    async fn create_missing_lesson(&self, review_id: &str, by: &str, at: Timestamp) -> Result<Lesson> {
        let (review_id, by) = (review_id.to_string(), by.to_string());
        self.write(move |t| writes::create_missing_lesson(t, &review_id, &by, at)).await
    }

    async fn update_lesson(&self, id: &str, patch: LessonPatch, by: &str, at: Timestamp) -> Result<Lesson> {
        let (id, by) = (id.to_string(), by.to_string());
        self.write(move |t| writes::update_lesson(t, &id, &patch, &by, at)).await
    }

    async fn lesson_events(&self, id: &str) -> Result<Vec<Event>> {
        let id = id.to_string();
        self.read(move |c| learning::lesson_events(c, &id)).await
    }

    async fn search(&self, query: SearchQuery) -> Result<Vec<SearchHit>> {
        self.read(move |c| learning::search(c, &query)).await
    }

    async fn similar_candidates(&self, action: &str, before: Timestamp, limit: usize) -> Result<Vec<Decision>> {
        let action = action.to_string();
        self.read(move |c| learning::similar_candidates(c, &action, before, limit)).await
    }

    async fn agent_activity(&self, agent: &str, action: &str, since: Timestamp, limit: usize) -> Result<Vec<Activity>> {
        let (agent, action) = (agent.to_string(), action.to_string());
        self.read(move |c| learning::agent_activity(c, &agent, &action, since, limit)).await
    }

    async fn agent_totals(&self, agent: &str, since: Timestamp) -> Result<AgentTotals> {
        let agent = agent.to_string();
        self.read(move |c| learning::agent_totals(c, &agent, since)).await
    }

    async fn subject_history(&self, subject: &str, before: Timestamp, limit: usize) -> Result<(u64, Vec<Decision>)> {
        let subject = subject.to_string();
        self.read(move |c| learning::subject_history(c, &subject, before, limit)).await
    }

    async fn reviewed_decisions(&self, action: Option<&str>, since: Timestamp, limit: usize) -> Result<Vec<Decision>> {
        let action = action.map(str::to_string);
        self.read(move |c| learning::reviewed(c, action.as_deref(), since, limit)).await
    }

    async fn labelled_points(&self, actions: &[String], from: Timestamp, to: Timestamp) -> Result<Vec<Labelled>> {
        let actions = actions.to_vec();
        self.read(move |c| learning::labelled_points(c, &actions, from, to)).await
    }

    async fn offer_suggestions(&self, found: Vec<Suggestion>, now: Timestamp) -> Result<Vec<Suggestion>> {
        self.write(move |t| learning::offer_suggestions(t, &found, now)).await
    }

    async fn suggestions(&self, limit: usize) -> Result<Vec<Suggestion>> {
        self.read(move |c| learning::suggestions(c, limit)).await
    }

    async fn suggestion(&self, id: &str) -> Result<Option<Suggestion>> {
        let id = id.to_string();
        self.read(move |c| learning::suggestion(c, &id)).await
    }

    async fn decide_suggestion(
        &self,
        id: &str,
        state: SuggestionState,
        draft_policy: Option<String>,
        by: &str,
        at: Timestamp,
    ) -> Result<Suggestion> {
        let (id, by) = (id.to_string(), by.to_string());
        self.write(move |t| learning::decide_suggestion(t, &id, state, draft_policy.clone(), &by, at)).await
    }

    async fn create_webhook(&self, webhook: Webhook) -> Result<()> {
        self.write(move |t| webhooks::create(t, &webhook)).await
    }

    async fn webhooks(&self) -> Result<Vec<Webhook>> {
        self.read(webhooks::list).await
    }

    async fn delete_webhook(&self, id: &str) -> Result<bool> {
        let id = id.to_string();
        self.write(move |t| webhooks::delete(t, &id)).await
    }

    async fn claim_due_deliveries(
        &self,
        now: Timestamp,
        lease_ms: i64,
        limit: usize,
        per_webhook: usize,
        in_flight: std::collections::HashMap<String, usize>,
    ) -> Result<Vec<DueDelivery>> {
        self.write(move |t| webhooks::claim_due(t, now, lease_ms, limit, per_webhook, &in_flight)).await
    }

    async fn record_delivery_attempt(&self, id: u64, attempt: DeliveryAttempt) -> Result<()> {
        self.write(move |t| webhooks::record_attempt(t, id, &attempt)).await
    }

    async fn deliveries(&self, webhook_id: &str, limit: usize) -> Result<Vec<Delivery>> {
        let id = webhook_id.to_string();
        self.read(move |c| webhooks::deliveries(c, &id, limit)).await
    }

    async fn record_tool_result(&self, id: &str, result: ToolResult) -> Result<Decision> {
        let id = id.to_string();
        self.write(move |t| decisions::rewrite(t, &id, result.recorded_at, |d| d.tool_result = Some(result.clone())))
            .await
    }

    async fn settings_with_prefix(&self, prefix: &str) -> Result<Vec<(String, String)>> {
        let prefix = prefix.to_string();
        self.read(move |c| keys::settings_with_prefix(c, &prefix)).await
    }

    async fn consume_receipt(
        &self,
        decision_id: &str,
        consumer: &str,
        args_digest: &str,
        at: Timestamp,
    ) -> Result<Consumption> {
        let (id, who, digest) = (decision_id.to_string(), consumer.to_string(), args_digest.to_string());
        self.write(move |t| keys::consume_receipt(t, &id, &who, &digest, at)).await
    }

    async fn insert_spans(&self, sender: &str, spans: Vec<Span>, at: Timestamp) -> Result<u64> {
        let sender = sender.to_string();
        self.write(move |t| keys::insert_spans(t, &sender, &spans, at)).await
    }

    async fn trace_spans(&self, trace_id: &str, sender: Option<&str>, limit: usize) -> Result<Vec<Span>> {
        let (id, sender) = (trace_id.to_string(), sender.map(str::to_string));
        self.read(move |c| keys::trace_spans(c, &id, sender.as_deref(), limit)).await
    }

    async fn trace_of_tool_call(&self, sender: &str, tool_call_id: &str) -> Result<Option<String>> {
        let (sender, id) = (sender.to_string(), tool_call_id.to_string());
        self.read(move |c| keys::trace_of_tool_call(c, &sender, &id)).await
    }

    async fn purge_spans(&self, before: Timestamp, keep: Vec<String>) -> Result<u64> {
        self.write(move |t| keys::purge_spans(t, before, &keep)).await
    }

    async fn acquire_lease(&self, name: &str, holder: &str, now: Timestamp, ttl_ms: i64) -> Result<bool> {
        let (name, holder) = (name.to_string(), holder.to_string());
        self.write(move |t| keys::acquire_lease(t, &name, &holder, now, ttl_ms)).await
    }

    fn finalized_feed(&self) -> Option<tokio::sync::broadcast::Receiver<String>> {
        Some(self.finalized.subscribe())
    }

    fn write_stats(&self) -> arbiter_store::WriteStats {
        self.stats.read()
    }
}
