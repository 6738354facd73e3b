//! The behaviour every [`Store`] backend must show. Backend test binaries call
//! [`run_all`] with a fresh, empty store.

use crate::{
    CaseFilter, DeliveryAttempt, DeliveryStatus, Inserted, KeyRecord, NewDecision, PolicyVersion, Store, StoreError,
    Webhook, WebhookFormat,
};
use arbiter_core::review::{
    ContextualAnalysis, Entity, Finding, FindingKind, ImpactAssessment, ImpactSeverity, InterventionKind,
    InterventionSpec, Reproduced, ResolutionDesign, Review, ReviewSource, Scope, StageRecord, TraceInspection,
};
use arbiter_core::search;
use arbiter_core::{
    Action, Actor, Case, CaseCommand, CaseError, CaseKind, CaseState, Decision, DecisionStatus, Escalation,
    FinalSource, HumanDuration, Outcome, Role, Severity, Tier, Timestamp, Verdict,
};
use serde_json::json;

fn decision(id: &str, idem: Option<&str>, case_id: Option<&str>) -> Decision {
    Decision {
        id: id.into(),
        agent: "soc-agent".into(),
        agent_key_id: "k1".into(),
        idempotency_key: idem.map(Into::into),
        action: Action {
            name: "isolate_host".into(),
            args: json!({"host": "web-17"}),
            confidence: Some(0.7),
            signals: json!({}),
        },
        trace_id: Some("trace-1".into()),
        context: json!({}),
        verdict: if case_id.is_some() { Verdict::Escalate } else { Verdict::Allow },
        status: if case_id.is_some() { DecisionStatus::Pending } else { DecisionStatus::Final },
        triggers: vec![],
        explanation: "test".into(),
        escalation: None,
        policy_hash: "h".into(),
        case_id: case_id.map(Into::into),
        received_at: Timestamp(1_000),
        event_time: Timestamp(1_000),
        eval_micros: 3,
        final_verdict: None,
        condition_errors: vec![],
        outcome: None,
        tool_result: None,
        subject: None,
        threshold: None,
        audit: None,
        event_time_skew_ms: None,
    }
}

fn case(id: &str, decision_id: &str, approvals: u32) -> Case {
    Case {
        id: id.into(),
        kind: CaseKind::Approval,
        state: CaseState::Open,
        decision_id: Some(decision_id.into()),
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
        sla_deadline: Timestamp(601_000),
        answers: vec![],
        confidence: Some(0.7),
        trace_id: Some("trace-1".into()),
        args_digest: Some(arbiter_core::canonical::args_digest(&json!({"host": "web-17"}))),
        claim: None,
        comments: vec![],
        review: None,
        subject: None,
        trigger: None,
        threshold: None,
        warn_before_ms: None,
        warned_tier: None,
        created_at: Timestamp(1_000),
        updated_at: Timestamp(1_000),
    }
}

fn reviewer(name: &str, tags: &[&str]) -> Actor {
    Actor {
        name: name.into(),
        key_id: format!("key-{name}"),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        is_admin: false,
    }
}

fn approve(by: &str, args: Option<serde_json::Value>) -> CaseCommand {
    CaseCommand::Answer {
        by: reviewer(by, &["soc_lead"]),
        verdict: Verdict::Allow,
        check: args.as_ref().map(|_| arbiter_core::ModificationCheck {
            verdict: Verdict::Allow,
            triggers: vec![],
            escalation: None,
        }),
        modified_args: args,
        rationale: format!("{by} checked it"),
        failure_modes: vec![],
        via: None,
    }
}

async fn escalate(store: &dyn Store, n: &str, esc: impl FnOnce(&mut Case)) {
    let mut d = decision(&format!("d-{n}"), None, Some(&format!("c-{n}")));
    d.trace_id = Some(format!("trace-{n}"));
    let mut c = case(&format!("c-{n}"), &format!("d-{n}"), 1);
    c.trace_id = d.trace_id.clone();
    esc(&mut c);
    store
        .insert_decision(NewDecision { decision: d, request_digest: n.into(), case: Some(c), open_case_cap: None })
        .await
        .unwrap();
}

/// A final, policy-allowed decision with id `id` (for tests that need many).
pub fn sample_decision(id: &str) -> Decision {
    decision(id, None, None)
}

/// Run every conformance check against an empty store.
pub async fn run_all(store: &dyn Store) {
    policies(store).await;
    keys(store).await;
    decisions_and_idempotency(store).await;
    idempotency_keys_are_per_agent(store).await;
    cases_and_events(store).await;
    concurrent_writes(store).await;
    claims_are_exclusive(store).await;
    sla_sweep(store).await;
    review_cases(store).await;
    learning(store).await;
    webhook_outbox(store).await;
    case_cap(store).await;
    spans(store).await;
    receipts_and_settings(store).await;
    leases(store).await;
    audits(store).await;
    drift_episodes(store).await;
    drift_points_placement(store).await;
    assert_verified(store).await;
}

/// One test per conformance check for a backend, each on a fresh store (after
/// the checks whose data it reads), so one failure does not hide the others. `$make` is an async expression
/// giving `Option<(store, guard)>` (`None`: the backend is not available and
/// the test skips; the guard keeps the store's file or database alive).
/// Every check ends with `audit verify` passing on what it left.
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@checks each $make);
        $crate::conformance_tests!(@each $make; projects_are_isolated []);
        /// The same checks on a handle of another project, each followed by
        /// a look at the default project of the same database: nothing of
        /// what the check wrote may show there.
        mod in_another_project {
            #[allow(unused_imports)]
            use super::*;
            $crate::conformance_tests!(@checks other $make);
        }
    };
    // The checks, each with those whose data it reads; listed once for both modes.
    (@checks $mode:ident $make:expr) => {
        $crate::conformance_tests!(@$mode $make;
            first_start [], policies [], keys [], decisions_and_idempotency [], idempotency_keys_are_per_agent [],
            cases_and_events [decisions_and_idempotency], concurrent_writes [], claims_are_exclusive [],
            sla_sweep [], review_cases [claims_are_exclusive],
            learning [decisions_and_idempotency, cases_and_events, concurrent_writes, claims_are_exclusive,
                      sla_sweep, review_cases],
            webhook_outbox [decisions_and_idempotency, cases_and_events, concurrent_writes, claims_are_exclusive,
                            sla_sweep, review_cases, learning],
            case_cap [], spans [], receipts_and_settings [], leases [], audits [], drift_episodes [],
            drift_points_placement [], numbers_that_verify [], people [], ended_cases_newest_ending_first []);
    };
    (@other $make:expr; $($check:ident [$($before:ident),*]),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let Some((root, _guard)) = $make.await else { return };
                let store = $crate::conformance::another_project(&root).await;
                $($crate::conformance::$before(&*store).await;)*
                $crate::conformance::$check(&*store).await;
                $crate::conformance::assert_verified(&*store).await;
                $crate::conformance::assert_untouched(&root).await;
            }
        )*
    };
    (@each $make:expr; $($check:ident [$($before:ident),*]),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let Some((store, _guard)) = $make.await else { return };
                // the checks whose data this one reads, first (each also has its own test)
                $($crate::conformance::$before(&store).await;)*
                $crate::conformance::$check(&store).await;
                $crate::conformance::assert_verified(&store).await;
            }
        )*
    };
}

/// A handle of a second project (`team-b`, created) on `root`'s database.
pub async fn another_project(root: &dyn Store) -> std::sync::Arc<dyn Store> {
    let id = arbiter_core::ProjectId::parse("team-b").unwrap();
    let project = arbiter_core::Project {
        id: id.clone(),
        name: "Team B".into(),
        created_at: Timestamp(1),
        created_by: "conformance".into(),
    };
    assert!(root.create_project(project).await.unwrap());
    root.for_project(&id)
}

/// Nothing is stored in `store`'s project: no event, decision, case, lesson,
/// suggestion, webhook, drift episode, policy version or key (what a check run
/// in another project must leave behind).
pub async fn assert_untouched(store: &dyn Store) {
    let p = store.project().clone();
    assert_eq!(store.chain_head().await.unwrap(), None, "events of another project reached {p}");
    assert_eq!(store.events(0, 10).await.unwrap(), vec![]);
    assert!(store.recent_decisions(10).await.unwrap().is_empty(), "decisions reached {p}");
    assert!(store.cases(CaseFilter { limit: 10, ..Default::default() }).await.unwrap().is_empty(), "cases reached {p}");
    assert_eq!(store.open_case_count(None).await.unwrap(), 0);
    assert!(store.lessons(Default::default()).await.unwrap().is_empty(), "lessons reached {p}");
    assert!(store.suggestions(10).await.unwrap().is_empty(), "suggestions reached {p}");
    assert!(store.webhooks().await.unwrap().is_empty(), "webhooks reached {p}");
    assert!(store.drift_episodes(false, 10).await.unwrap().is_empty(), "drift episodes reached {p}");
    assert!(store.policy_versions().await.unwrap().is_empty(), "policy versions reached {p}");
    assert_eq!(store.active_policy().await.unwrap(), None);
    assert!(store.keys().await.unwrap().is_empty(), "keys reached {p}");
    assert!(store.members().await.unwrap().is_empty(), "memberships reached {p}");
    let d = store.dashboard(Timestamp(0)).await.unwrap();
    assert!(d.hourly.is_empty() && d.endings.is_empty() && d.open_cases.is_empty(), "{d:?}");
    let hits = store.search(search::SearchQuery { q: "web".into(), limit: 10, ..Default::default() }).await.unwrap();
    assert!(hits.is_empty(), "search hits reached {p}: {hits:?}");
    let report = store.verify_audit(None).await.unwrap();
    assert!(report.ok() && report.events == 0 && report.decisions == 0 && report.cases == 0, "{report:?}");
}

/// Two projects on one database: neither reads nor changes the other's
/// policies, decisions, cases, events, receipts, keys, webhooks, spans or
/// drift episodes; the same agent and idempotency key (and the same policy
/// text) are independent in each; each chain starts at its own genesis and
/// verifies on its own.
pub async fn projects_are_isolated(store: &dyn Store) {
    let a = store;
    let b = another_project(a).await;
    let b = &*b;
    assert_eq!(a.project().as_str(), "default");
    assert_eq!(b.project().as_str(), "team-b");
    let again = arbiter_core::Project {
        id: b.project().clone(),
        name: "Team B again".into(),
        created_at: Timestamp(2),
        created_by: "x".into(),
    };
    assert!(!a.create_project(again).await.unwrap(), "a project is created once");
    let listed: Vec<String> = a.projects().await.unwrap().into_iter().map(|p| p.id.to_string()).collect();
    assert_eq!(listed, ["default", "team-b"]);
    // the same policy text in both; a second version in a alone
    let v = |hash: &str| PolicyVersion {
        hash: hash.into(),
        name: hash.into(),
        source: format!("version: 1\n# {hash}\n"),
        created_at: Timestamp(1),
        created_by: "admin".into(),
    };
    a.activate_policy(v("p1"), Timestamp(1), "admin").await.unwrap();
    b.activate_policy(v("p1"), Timestamp(1), "admin").await.unwrap();
    a.activate_policy(v("p2"), Timestamp(2), "admin").await.unwrap();
    assert_eq!(b.active_policy().await.unwrap().unwrap().hash, "p1");
    assert_eq!(b.policy_versions().await.unwrap().len(), 1);
    assert_eq!(b.policy_version("p2").await.unwrap(), None);
    assert_eq!(a.policy_activations("p1").await.unwrap().len(), 1);
    // the same agent and idempotency key: one decision in each project
    let head_a = a.chain_head().await.unwrap();
    let mut da = decision("iso-a", Some("key-1"), Some("iso-case-a"));
    da.trace_id = Some("iso-trace".into());
    let ca = case("iso-case-a", "iso-a", 1);
    a.insert_decision(NewDecision { decision: da, request_digest: "r".into(), case: Some(ca), open_case_cap: None })
        .await
        .unwrap();
    let db = decision("iso-b", Some("key-1"), None);
    let got = b
        .insert_decision(NewDecision { decision: db, request_digest: "r".into(), case: None, open_case_cap: None })
        .await
        .unwrap();
    assert!(
        matches!(&got, Inserted::Created(d) if d.id == "iso-b"),
        "a key used in another project is not a replay here: {got:?}"
    );
    assert_eq!(b.replayed_decision("soc-agent", "key-1", "r").await.unwrap().unwrap().id, "iso-b");
    assert_eq!(b.decision("iso-a").await.unwrap(), None);
    assert_eq!(a.decision("iso-b").await.unwrap(), None);
    assert!(b.decision_chain(&["iso-trace".into()], &["iso-a".into()], 10).await.unwrap().is_empty());
    // b cannot see, answer or count a's case
    assert_eq!(b.case("iso-case-a").await.unwrap(), None);
    assert!(b.active_approval_cases().await.unwrap().is_empty());
    assert!(b.case_events("iso-case-a").await.unwrap().is_empty());
    assert_eq!(b.open_case_count(None).await.unwrap(), 0);
    assert!(b.due_cases(Timestamp(i64::MAX / 4), 10).await.unwrap().is_empty());
    let claim = CaseCommand::Claim { by: reviewer("bo", &["soc_lead"]), lease_ms: 60_000 };
    assert!(matches!(b.update_case("iso-case-a", claim, Timestamp(2_000)).await, Err(StoreError::NotFound(_))));
    let page = b.find_cases(crate::CaseQuery { limit: 10, ..Default::default() }).await.unwrap();
    assert!(page.cases.is_empty());
    // nor record its outcome, tool result or receipt use
    let outcome = Outcome {
        correct: true,
        cost: None,
        label: None,
        note: None,
        recorded_at: Timestamp(3),
        recorded_by: "b".into(),
    };
    assert!(matches!(b.record_outcome("iso-a", outcome).await, Err(StoreError::NotFound(_))));
    assert!(matches!(b.consume_receipt("iso-a", "b-tool", "digest", Timestamp(4)).await, Err(StoreError::NotFound(_))));
    assert!(a.consume_receipt("iso-a", "a-tool", "digest", Timestamp(4)).await.unwrap().first);
    // each chain: its own genesis, its own numbers; b's writes left a's head where a's writes put it
    let first_b = b.events(0, 1).await.unwrap().remove(0);
    assert_eq!((first_b.seq, first_b.prev_hash.as_str()), (1, b.project().genesis_hash().as_str()));
    assert_ne!(b.project().genesis_hash(), a.project().genesis_hash());
    assert!(a.events(0, 100_000).await.unwrap().iter().all(|e| e.decision_id.as_deref() != Some("iso-b")));
    let a_head = a.chain_head().await.unwrap().unwrap();
    assert!(head_a.is_none_or(|h| h.seq < a_head.seq));
    b.record_event("note", "b", Timestamp(5), json!({})).await.unwrap();
    assert_eq!(a.chain_head().await.unwrap().unwrap(), a_head, "b's event is not in a's chain");
    // keys: listed and changed in their project only; found by id everywhere (authentication)
    let key = KeyRecord {
        id: "iso-key".into(),
        name: "b-agent".into(),
        role: Role::Agent,
        tags: Default::default(),
        digest: vec![7; 32],
        created_at: Timestamp(1),
        revoked_at: None,
        expires_at: None,
        rate_limit: None,
        project: b.project().clone(),
    };
    assert!(matches!(a.create_key(key.clone()).await, Err(StoreError::Conflict(_))), "a key of b through a's handle");
    b.create_key(key).await.unwrap();
    assert!(a.keys().await.unwrap().iter().all(|k| k.id != "iso-key"));
    assert_eq!(a.key("iso-key").await.unwrap().unwrap().project, *b.project());
    assert!(!a.revoke_key("iso-key", Timestamp(6)).await.unwrap());
    assert!(!a.set_key_expiry("iso-key", Some(Timestamp(6))).await.unwrap());
    assert_eq!(b.key("iso-key").await.unwrap().unwrap().revoked_at, None);
    // memberships: granted in their project only, found by the person's home and name
    let member = |project: &arbiter_core::ProjectId, role: Role| arbiter_core::Membership {
        project: project.clone(),
        home: a.project().clone(),
        principal: "ann".into(),
        role,
        tags: ["support_lead".to_string()].into_iter().collect(),
        created_at: Timestamp(1),
        created_by: "admin".into(),
    };
    assert!(matches!(a.grant_membership(member(b.project(), Role::Reviewer)).await, Err(StoreError::Conflict(_))));
    assert!(matches!(b.grant_membership(member(b.project(), Role::Agent)).await, Err(StoreError::Conflict(_))));
    b.grant_membership(member(b.project(), Role::Reviewer)).await.unwrap();
    b.grant_membership(member(b.project(), Role::Admin)).await.unwrap();
    assert!(a.members().await.unwrap().is_empty());
    let of = a.memberships_of(a.project(), "ann").await.unwrap();
    assert_eq!(of, vec![member(b.project(), Role::Admin)], "granted again: changed, not doubled");
    assert!(b.memberships_of(b.project(), "ann").await.unwrap().is_empty(), "a home is part of who a person is");
    assert!(!a.revoke_membership(a.project(), "ann").await.unwrap(), "a's handle revokes only in a");
    assert!(b.revoke_membership(a.project(), "ann").await.unwrap());
    assert!(b.members().await.unwrap().is_empty());
    // webhooks: b's hook sees b's events only; a cannot delete it
    let hook = Webhook {
        id: "iso-hook".into(),
        url: "http://127.0.0.1:9/b".into(),
        events: ["*".to_string()].into_iter().collect(),
        format: WebhookFormat::Json,
        secret: "s".into(),
        created_at: Timestamp(1),
        created_by: "b".into(),
        active: true,
        project: b.project().clone(),
        min_severity: None,
    };
    assert!(matches!(a.create_webhook(hook.clone()).await, Err(StoreError::Conflict(_))));
    b.create_webhook(hook).await.unwrap();
    assert!(a.webhooks().await.unwrap().is_empty());
    assert!(!a.delete_webhook("iso-hook").await.unwrap());
    a.record_event("note", "a", Timestamp(7), json!({})).await.unwrap();
    b.record_event("note", "b", Timestamp(7), json!({})).await.unwrap();
    let due = a.claim_due_deliveries(Timestamp(10), 1_000, 100, 100, Default::default()).await.unwrap();
    assert_eq!(due.len(), 1, "only b's event after the hook was made is queued: {due:?}");
    assert_eq!((due[0].webhook.project.as_str(), due[0].event.actor.as_str()), ("team-b", "b"));
    assert!(a.deliveries("iso-hook", 10).await.unwrap().is_empty());
    assert_eq!(b.deliveries("iso-hook", 10).await.unwrap().len(), 1);
    // spans: a's run is not b's, and b cannot overwrite it
    let span = arbiter_core::trace::Span {
        trace_id: "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb1".into(),
        span_id: "00000000000000d1".into(),
        parent_span_id: None,
        name: "a's span".into(),
        kind: "internal".into(),
        start_ns: 1,
        end_ns: 2,
        status: "unset".into(),
        status_message: String::new(),
        service: None,
        attributes: json!({"gen_ai.tool.call.id": "iso-call"}).as_object().cloned().unwrap(),
        events: vec![],
        dropped: Default::default(),
        sender: None,
    };
    assert_eq!(a.insert_spans("sender-1", vec![span.clone()], Timestamp(1)).await.unwrap(), 1);
    assert!(b.trace_spans(&span.trace_id, None, 10).await.unwrap().is_empty());
    assert_eq!(b.trace_of_tool_call("sender-1", "iso-call").await.unwrap(), None);
    let forged = arbiter_core::trace::Span { name: "b's forgery".into(), ..span.clone() };
    assert_eq!(b.insert_spans("sender-1", vec![forged], Timestamp(2)).await.unwrap(), 0);
    assert_eq!(a.trace_spans(&span.trace_id, None, 10).await.unwrap()[0].name, "a's span");
    assert_eq!(b.purge_spans(Timestamp(i64::MAX / 4), vec![]).await.unwrap(), 0);
    assert_eq!(a.trace_spans(&span.trace_id, None, 10).await.unwrap().len(), 1);
    // the dashboard and the drift monitor read their own project
    assert_eq!(b.dashboard(Timestamp(0)).await.unwrap().by_class.iter().map(|c| c.decisions).sum::<u64>(), 1);
    assert!(b.drift_points(Timestamp(0), Timestamp(10_000), 0).await.unwrap().iter().all(|p| p.decision_id == "iso-b"));
    assert!(b.agent_totals("soc-agent", Timestamp(0)).await.unwrap().decisions == 1);
    // both chains verify, each on its own
    for s in [a, b] {
        let report = s.verify_audit(None).await.unwrap();
        assert!(report.ok(), "{}: {report:?}", s.project());
    }
    assert!(b.verify_audit(Some(a_head)).await.unwrap().problem.is_some(), "a's anchor is not b's");
}

/// The drift monitor places live decisions at their receipt (an agent's clock
/// cannot move them) and replays at their event time.
pub async fn drift_points_placement(store: &dyn Store) {
    let base = 50_000_000_000; // far from every other decision of the suite
    let min = 60_000;
    let put = |id: &str, event: i64, received: i64| {
        let mut d = decision(id, None, None);
        d.event_time = Timestamp(base + event);
        d.received_at = Timestamp(base + received);
        NewDecision { decision: d, request_digest: id.into(), case: None, open_case_cap: None }
    };
    for n in [
        put("dp-far", 4 * min, 10 * min), // 6 min off, beyond the bound: a replay, at its event time (4)
        put("dp-skewed", 7 * min, 11 * min), // 4 min behind: live, placed at its receipt (11)
        put("dp-ahead", 16 * min, 12 * min), // 4 min ahead: live, at 12
        put("dp-replay", 30 * min, 100 * min), // a replay: at its event time (30)
    ] {
        store.insert_decision(n).await.unwrap();
    }
    let ids = |pts: Vec<crate::DriftPoint>| pts.into_iter().map(|p| (p.decision_id, p.at.0 - base)).collect::<Vec<_>>();
    let w = 5 * min;
    let all = ids(store.drift_points(Timestamp(base), Timestamp(base + 200 * min), w).await.unwrap());
    assert_eq!(
        all,
        [
            ("dp-far".to_string(), 4 * min),
            ("dp-skewed".into(), 11 * min),
            ("dp-ahead".into(), 12 * min),
            ("dp-replay".into(), 30 * min)
        ]
    );
    // the window [10, 13) min holds the live decisions received in it, whatever their event times say
    let window = ids(store.drift_points(Timestamp(base + 10 * min), Timestamp(base + 13 * min), w).await.unwrap());
    assert_eq!(window, [("dp-skewed".to_string(), 11 * min), ("dp-ahead".into(), 12 * min)]);
}

/// Drift episodes: saved with their event in one transaction, listed newest
/// first (open ones alone on request), and a save from a stale read is refused.
pub async fn drift_episodes(store: &dyn Store) {
    use arbiter_core::drift::episode::{self, Episode};
    let test: arbiter_core::drift::SequentialTest = serde_json::from_value(json!({
        "action": "isolate_host", "kind": "share", "direction": "up", "test": "bernoulli_cusum",
        "event": "the decision is `isolate_host`",
        "baseline": {"kind": "same_hour", "from": "2026-01-01T00:00:00Z", "to": "2026-01-08T00:00:00Z",
                     "restarted_at": null, "description": "the same hour of day on the 7.0 days before 2026-01-08"},
        "baseline_rate": 0.05, "null_rate": 0.052, "alternative_rate": 0.078, "since": "2026-01-08T00:00:00Z",
        "trials": 4000, "events": 400, "expected_events": 200.0, "statistic": 25.0, "threshold": 10.0,
        "p_value": 1e-7, "false_alarms_per_week": 0.014, "alarm": true
    }))
    .unwrap();
    let at = |h: i64| Timestamp(1_767_830_400_000 + h * 3_600_000);
    let mut n = 0;
    let mut started = |hour: i64, action: &str| -> Episode {
        let mut t = test.clone();
        t.action = action.into();
        let changes = episode::step(&[], &[t], at(hour), 7_200_000, || {
            n += 1;
            format!("ep-{n}")
        });
        changes[0].episode().clone()
    };
    let before = store.events(0, 100_000).await.unwrap().len();
    let record = |kind: &str, e: &Episode| crate::EventRecord {
        kind: kind.into(),
        actor: "drift-monitor".into(),
        at: e.updated_at,
        data: json!({"episode": e.id}),
    };
    let a = started(0, "isolate_host");
    let a = store.save_drift_episode(a.clone(), Some(record("drift.episode.started", &a))).await.unwrap();
    assert_eq!(a.version, 1);
    let b = started(1, "block_ip");
    let b = store.save_drift_episode(b, None).await.unwrap();
    let listed = store.drift_episodes(false, 10).await.unwrap();
    assert_eq!(listed.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), [b.id.as_str(), a.id.as_str()]);
    assert_eq!(store.drift_episode(&a.id).await.unwrap().as_ref(), Some(&a));
    // a is acknowledged with a restart (ends); a stale copy of a cannot be saved over it
    let ack = episode::Acknowledge {
        by: "pat".into(),
        reason: "rolled back".into(),
        snooze_ms: None,
        restart_at: Some(at(1)),
    };
    let ended = episode::acknowledge(&a, ack, at(2)).unwrap();
    let ended = store.save_drift_episode(ended.clone(), Some(record("drift.episode.ended", &ended))).await.unwrap();
    assert_eq!(ended.version, 2);
    let stale = store.save_drift_episode(a.clone(), None).await;
    assert!(matches!(stale, Err(StoreError::Conflict(_))), "{stale:?}");
    let mut unknown = a.clone();
    unknown.id = "ep-never".into();
    assert!(matches!(store.save_drift_episode(unknown, None).await, Err(StoreError::NotFound(_))));
    let open = store.drift_episodes(true, 10).await.unwrap();
    assert_eq!(open.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), [b.id.as_str()]);
    let events = store.events(0, 100_000).await.unwrap();
    let kinds: Vec<&str> = events[before..].iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["drift.episode.started", "drift.episode.ended"],
        "an event with each recorded save, none without"
    );
    assert_eq!(store.drift_episode("ep-none").await.unwrap(), None);
}

/// Allowed decisions of an audit design: the drawn ones open audit cases
/// (never held back by the open-case cap), a label becomes the decision's
/// outcome, and the design's unlabelled decisions are listed for tuning.
pub async fn audits(store: &dyn Store) {
    let allowed = |id: &str, selected: bool| {
        let mut d = decision(id, None, None);
        d.agent = "audited-agent".into();
        d.verdict = Verdict::Allow;
        d.status = DecisionStatus::Final;
        d.audit = Some(arbiter_core::sampling::AuditDraw { probability: 0.5, selected });
        d.final_verdict = Some(arbiter_core::FinalVerdict {
            verdict: Verdict::Allow,
            source: FinalSource::Policy,
            action: None,
            decided_by: vec![],
            rationale: "confident enough".into(),
            decided_at: Timestamp(5),
            receipt: None,
        });
        d
    };
    let drawn = allowed("aud-1", true);
    let case = Case::new_audit(
        "c-aud-1".into(),
        &drawn,
        ["soc_analyst".to_string()].into(),
        HumanDuration(3600),
        Timestamp(5),
    );
    let d = match store
        .insert_decision(NewDecision {
            decision: drawn,
            request_digest: "aud-1".into(),
            case: Some(case),
            open_case_cap: Some(0),
        })
        .await
        .unwrap()
    {
        Inserted::Created(d) => d,
        other => panic!("a new decision, got {other:?}"),
    };
    assert_eq!(d.final_verdict.as_ref().map(|f| f.source), Some(FinalSource::Policy), "audits are not capped");
    assert_eq!(store.case("c-aud-1").await.unwrap().unwrap().kind, CaseKind::Audit);
    assert_eq!(store.open_case_count(Some(CaseKind::Audit)).await.unwrap(), 1);
    for (id, selected) in [("aud-2", false), ("aud-3", false)] {
        let n =
            NewDecision { decision: allowed(id, selected), request_digest: id.into(), case: None, open_case_cap: None };
        store.insert_decision(n).await.unwrap();
    }
    // a decision outside the design whose arguments happen to read like one is not listed
    let mut lookalike = decision("aud-x", None, None);
    lookalike.action.args = json!({"audit": {"probability": 1}});
    store
        .insert_decision(NewDecision {
            decision: lookalike,
            request_digest: "aud-x".into(),
            case: None,
            open_case_cap: None,
        })
        .await
        .unwrap();
    let ids = |v: Vec<Decision>| v.into_iter().map(|d| d.id).collect::<Vec<_>>();
    assert_eq!(ids(store.unlabelled_audit_decisions(100).await.unwrap()), ["aud-1", "aud-2", "aud-3"]);
    let label =
        CaseCommand::Label { by: reviewer("ann", &["soc_analyst"]), correct: false, note: Some("a real phish".into()) };
    let u = store.update_case("c-aud-1", label, Timestamp(60)).await.unwrap();
    assert_eq!(u.case.state, CaseState::Closed);
    assert!(u.decision.is_none(), "a label finalizes nothing");
    let labelled = u.labelled.expect("the labelled decision");
    let o = labelled.outcome.as_ref().unwrap();
    assert_eq!((o.correct, o.label.as_deref(), o.recorded_by.as_str()), (false, Some("audit"), "ann"));
    assert_eq!(store.decision("aud-1").await.unwrap().unwrap().outcome, labelled.outcome);
    assert_eq!(ids(store.unlabelled_audit_decisions(100).await.unwrap()), ["aud-2", "aud-3"]);
    assert_eq!(ids(store.unlabelled_audit_decisions(1).await.unwrap()), ["aud-3"], "the most recent");
    assert_eq!(store.open_case_count(Some(CaseKind::Audit)).await.unwrap(), 0);
}

/// A lease has one holder until it expires; its holder renews it; another takes it over once it lapsed.
pub async fn leases(store: &dyn Store) {
    let t = |ms: i64| Timestamp(1_000_000 + ms);
    assert!(store.acquire_lease("drift", "a", t(0), 10_000).await.unwrap(), "a free lease is taken");
    assert!(!store.acquire_lease("drift", "b", t(5_000), 10_000).await.unwrap(), "a live lease is someone else's");
    assert!(store.acquire_lease("drift", "a", t(9_000), 10_000).await.unwrap(), "the holder renews it");
    assert!(!store.acquire_lease("drift", "b", t(18_999), 10_000).await.unwrap(), "renewed until 19,000");
    assert!(store.acquire_lease("other", "b", t(0), 10_000).await.unwrap(), "leases are by name");
    assert!(store.acquire_lease("drift", "b", t(19_000), 10_000).await.unwrap(), "an expired lease is taken over");
    assert!(!store.acquire_lease("drift", "a", t(20_000), 10_000).await.unwrap(), "and the old holder is out");
}

/// `verify_audit` finds nothing wrong; returns its report.
pub async fn assert_verified(store: &dyn Store) -> crate::AuditReport {
    let report = store.verify_audit(None).await.unwrap();
    assert_eq!(report.problem, None, "{report:?}");
    report
}

/// Policy versions are stored once and the latest activation wins.
pub async fn policies(store: &dyn Store) {
    assert!(store.active_policy().await.unwrap().is_none());
    let v = |h: &str, t| PolicyVersion {
        hash: h.into(),
        name: "p".into(),
        source: format!("# {h}"),
        created_at: Timestamp(t),
        created_by: "admin".into(),
    };
    store.activate_policy(v("a", 1), Timestamp(1), "admin").await.unwrap();
    store.activate_policy(v("b", 2), Timestamp(2), "admin").await.unwrap();
    assert_eq!(store.active_policy().await.unwrap().unwrap().hash, "b");
    // Re-activating an older version (a rollback) keeps one copy of it.
    store.activate_policy(v("a", 3), Timestamp(3), "admin").await.unwrap();
    assert_eq!(store.active_policy().await.unwrap().unwrap().hash, "a");
    let versions = store.policy_versions().await.unwrap();
    assert_eq!(versions.len(), 2);
    assert!(versions.iter().find(|x| x.hash == "a").unwrap().active);
    assert_eq!(store.policy_version("a").await.unwrap().unwrap().created_at, Timestamp(1));
}

/// Keys round-trip, ids are unique, and revocation happens once.
pub async fn keys(store: &dyn Store) {
    let k = KeyRecord {
        id: "abc".into(),
        name: "ann".into(),
        role: Role::Reviewer,
        tags: ["soc_lead".to_string()].into_iter().collect(),
        digest: vec![1, 2, 3],
        created_at: Timestamp(5),
        revoked_at: None,
        expires_at: None,
        rate_limit: Some("5/s:10".parse().unwrap()),
        project: store.project().clone(),
    };
    store.create_key(k.clone()).await.unwrap();
    assert!(matches!(store.create_key(k.clone()).await, Err(StoreError::Conflict(_))));
    assert_eq!(store.key("abc").await.unwrap().unwrap(), k);
    // expiry: set, read back, cleared
    assert!(store.set_key_expiry("abc", Some(Timestamp(7))).await.unwrap());
    let expiring = store.key("abc").await.unwrap().unwrap();
    assert_eq!(expiring.expires_at, Some(Timestamp(7)));
    assert_eq!(expiring.inactive_at(Timestamp(6)), None);
    assert!(expiring.inactive_at(Timestamp(7)).unwrap().contains("expired"));
    assert!(store.set_key_expiry("abc", None).await.unwrap());
    assert!(!store.set_key_expiry("nope", None).await.unwrap());
    // console sessions end once
    let sess = crate::ConsoleSession {
        id: "s1".into(),
        key_id: "abc".into(),
        created_at: Timestamp(5),
        expires_at: Timestamp(500),
        revoked_at: None,
        identity: None,
    };
    store.create_session(sess.clone()).await.unwrap();
    assert_eq!(store.session("s1").await.unwrap(), Some(sess));
    assert!(store.end_session("s1", Timestamp(6)).await.unwrap());
    assert!(!store.end_session("s1", Timestamp(7)).await.unwrap());
    assert_eq!(store.session("s1").await.unwrap().unwrap().revoked_at, Some(Timestamp(6)));
    assert_eq!(store.session("nope").await.unwrap(), None);
    assert!(store.revoke_key("abc", Timestamp(9)).await.unwrap());
    assert!(!store.revoke_key("abc", Timestamp(10)).await.unwrap());
    assert_eq!(store.key("abc").await.unwrap().unwrap().revoked_at, Some(Timestamp(9)));
    assert!(store.keys().await.unwrap().iter().any(|x| x.id == "abc"));
}

/// Ended cases are listed by when they ended (newest first), page by page;
/// any other listing by when the cases opened.
pub async fn ended_cases_newest_ending_first(store: &dyn Store) {
    for n in ["e1", "e2", "e3"] {
        escalate(store, n, |_| {}).await;
    }
    // decided in another order than opened: e3, then e1, then e2
    for (n, at) in [("e3", 61_000), ("e1", 62_000), ("e2", 63_000)] {
        store.update_case(&format!("c-{n}"), approve("lee", None), Timestamp(at)).await.unwrap();
    }
    let ids = |p: &crate::CasePage| p.cases.iter().map(|c| c.id.clone()).collect::<Vec<_>>();
    let decided = crate::CaseQuery { states: vec![arbiter_core::CaseState::Decided], limit: 10, ..Default::default() };
    assert_eq!(ids(&store.find_cases(decided.clone()).await.unwrap()), ["c-e2", "c-e1", "c-e3"], "newest ending first");
    // a page at a time, the cursor goes on in that order
    let mut seen = vec![];
    let mut q = crate::CaseQuery { limit: 1, ..decided.clone() };
    loop {
        let page = store.find_cases(q.clone()).await.unwrap();
        seen.extend(ids(&page));
        match page.next {
            Some(n) => q.after = Some(n),
            None => break,
        }
    }
    assert_eq!(seen, ["c-e2", "c-e1", "c-e3"]);
    let all = crate::CaseQuery { limit: 10, ..Default::default() };
    assert_eq!(ids(&store.find_cases(all).await.unwrap()), ["c-e3", "c-e2", "c-e1"], "any state: newest opened first");
}

/// Single sign-on: a session carries the person's roles; the people
/// directory is server-wide (every project's handle sees one), keeps each
/// person's latest roles and their one Slack link.
pub async fn people(store: &dyn Store) {
    use arbiter_core::{Grant, Identity, Role};
    let alice = Identity {
        name: "alice@example.com".into(),
        email: Some("Alice@Example.com".into()),
        grants: vec![Grant {
            project: store.project().clone(),
            role: Role::Reviewer,
            tags: ["soc_analyst".to_string()].into(),
        }],
        id_token: Some("eyJ.tok.en".into()),
    };
    let sess = crate::ConsoleSession {
        id: "sso-1".into(),
        key_id: String::new(),
        created_at: Timestamp(5),
        expires_at: Timestamp(500),
        revoked_at: None,
        identity: Some(alice.clone()),
    };
    store.create_session(sess.clone()).await.unwrap();
    assert_eq!(store.session("sso-1").await.unwrap(), Some(sess.clone()));
    assert!(
        store.create_session(sess).await.is_err(),
        "a session id is used once (a replayed sign-in cannot start a second session)"
    );

    assert_eq!(store.person("alice@example.com").await.unwrap(), None);
    store.record_sign_in(alice.clone(), Timestamp(10)).await.unwrap();
    store.link_slack("alice@example.com", Some("U111")).await.unwrap();
    // a later sign-in with fewer roles replaces them and keeps the link
    let fewer = Identity { grants: vec![], id_token: None, ..alice.clone() };
    store.record_sign_in(fewer.clone(), Timestamp(20)).await.unwrap();
    let p = store.person("alice@example.com").await.unwrap().unwrap();
    assert_eq!((p.identity, p.signed_in_at, p.slack_user.as_deref()), (Some(fewer), Some(Timestamp(20)), Some("U111")));
    // the directory is server-wide: the default project's handle sees the same person
    let root = store.for_project(&arbiter_core::ProjectId::default_project());
    assert_eq!(root.person_by_slack("U111").await.unwrap().unwrap().name, "alice@example.com");
    assert_eq!(root.people_by_email("alice@EXAMPLE.com").await.unwrap().len(), 1, "emails compare without case");
    // a Slack user links to one person: linking it to bob takes it from alice
    store.link_slack("bob", Some("U111")).await.unwrap();
    assert_eq!(store.person_by_slack("U111").await.unwrap().unwrap().name, "bob");
    assert_eq!(store.person("alice@example.com").await.unwrap().unwrap().slack_user, None);
    let bob = store.person("bob").await.unwrap().unwrap();
    assert_eq!((bob.identity, bob.signed_in_at), (None, None), "a person known only by a link");
    store.link_slack("bob", None).await.unwrap();
    assert_eq!(store.person_by_slack("U111").await.unwrap(), None);
    let names: Vec<String> = store.people().await.unwrap().into_iter().map(|p| p.name).collect();
    assert_eq!(names, ["alice@example.com", "bob"]);
    // settings are set and read back, server-wide
    store.set_setting("slack-cursor:x", "5").await.unwrap();
    store.set_setting("slack-cursor:x", "7").await.unwrap();
    assert_eq!(root.settings_with_prefix("slack-cursor:").await.unwrap(), vec![("slack-cursor:x".into(), "7".into())]);
    // a case's Slack messages are the project's: the first ts of a channel is kept
    store.record_slack_message("c1", "C2", "2.0").await.unwrap();
    store.record_slack_message("c1", "C1", "1.0").await.unwrap();
    store.record_slack_message("c1", "C1", "9.9").await.unwrap();
    assert_eq!(
        store.slack_messages("c1").await.unwrap(),
        vec![("C1".to_string(), "1.0".to_string()), ("C2".to_string(), "2.0".to_string())]
    );
    if store.project() != root.project() {
        assert!(root.slack_messages("c1").await.unwrap().is_empty(), "another project's messages");
    }
}

/// A retried idempotency key returns the first decision; a reused key with a different request is refused.
pub async fn decisions_and_idempotency(store: &dyn Store) {
    let first = NewDecision {
        decision: decision("d1", Some("idem-1"), None),
        request_digest: "r1".into(),
        case: None,
        open_case_cap: None,
    };
    assert!(matches!(store.insert_decision(first.clone()).await.unwrap(), Inserted::Created(_)));
    let mut retry = first.clone();
    retry.decision.id = "d1-retry".into();
    match store.insert_decision(retry).await.unwrap() {
        Inserted::Existing(d) => assert_eq!(d.id, "d1"),
        other => panic!("expected the existing decision, got {other:?}"),
    }
    assert!(store.decision("d1-retry").await.unwrap().is_none());
    let mut different = first.clone();
    different.request_digest = "r2".into();
    assert!(matches!(store.insert_decision(different).await, Err(StoreError::Conflict(_))));
    let out = Outcome {
        correct: false,
        cost: Some(12.5),
        label: Some("false_positive".into()),
        note: Some("the ticket was reopened".into()),
        recorded_at: Timestamp(9),
        recorded_by: "ann".into(),
    };
    assert!(store.labelled_decisions(10).await.unwrap().iter().all(|d| d.id != "d1"));
    let recent = store.recent_decisions(1).await.unwrap();
    assert_eq!(recent.len(), 1);
    assert!(store.recent_decisions(1000).await.unwrap().iter().any(|d| d.id == "d1"), "unlabelled ones count");
    let d = store.record_outcome("d1", out.clone()).await.unwrap();
    assert_eq!(d.outcome, Some(out.clone()));
    let labelled = store.labelled_decisions(10).await.unwrap();
    assert_eq!(labelled.iter().filter(|d| d.id == "d1").count(), 1);
    assert_eq!(labelled.last().unwrap().outcome, Some(out));
    assert!(matches!(store.record_outcome("nope", d.outcome.clone().unwrap()).await, Err(StoreError::NotFound(_))));
}

/// Cases open with their decision, answers are recorded as chained events, and the decision becomes final.
pub async fn cases_and_events(store: &dyn Store) {
    let open_before = store.open_case_count(None).await.unwrap();
    let nd = NewDecision {
        decision: decision("d2", None, Some("c2")),
        request_digest: "r".into(),
        case: Some(case("c2", "d2", 2)),
        open_case_cap: None,
    };
    store.insert_decision(nd).await.unwrap();
    assert_eq!(store.open_case_count(None).await.unwrap(), open_before + 1);
    let first = approve("ann", Some(json!({"host": "web-17", "mode": "network_only"})));
    let first = store.update_case("c2", first, Timestamp(2_000)).await.unwrap();
    assert!(first.decision.is_none());
    assert_eq!(first.events.len(), 1);
    assert!(matches!(
        store.update_case("c2", approve("ann", None), Timestamp(2_000)).await,
        Err(StoreError::Case(CaseError::AlreadyAnswered))
    ));
    assert!(matches!(
        store.update_case("nope", approve("ann", None), Timestamp(2_000)).await,
        Err(StoreError::NotFound(_))
    ));
    // bob approves the arguments as they stand: ann's modification
    let done = store.update_case("c2", approve("bob", None), Timestamp(3_000)).await.unwrap();
    let d = done.decision.unwrap();
    assert_eq!(d.status, DecisionStatus::Final);
    let fin = d.final_verdict.unwrap();
    assert_eq!(fin.verdict, Verdict::Allow);
    assert_eq!(fin.action.unwrap().args["mode"], "network_only");
    assert_eq!(fin.decided_by, ["ann", "bob"]);
    assert_eq!(store.open_case_count(None).await.unwrap(), open_before);
    let events = store.case_events("c2").await.unwrap();
    let kinds: Vec<_> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["case.opened", "case.answered", "case.answered", "case.decided"]);
    assert_eq!(events[3].actor, "bob");
    let report = assert_verified(store).await;
    assert!(report.decisions >= 2 && report.cases >= 1, "{report:?}");
}

/// Past an agent's cap of open approval cases, escalations are denied at
/// once (even when the class's fallback is allow) and open no case; the count
/// is exact under concurrency.
pub async fn case_cap(store: &dyn Store) {
    let futs = (0..12).map(|i| {
        let mut d = decision(&format!("cap-{i}"), None, Some(&format!("c-cap-{i}")));
        d.agent = "looping-agent".into();
        let mut escalation = case("x", "x", 1).escalation;
        escalation.fallback = Verdict::Allow;
        d.escalation = Some(escalation);
        let mut c = case(&format!("c-cap-{i}"), &format!("cap-{i}"), 1);
        c.agent = "looping-agent".into();
        store.insert_decision(NewDecision {
            decision: d,
            request_digest: format!("cap-{i}"),
            case: Some(c),
            open_case_cap: Some(5),
        })
    });
    let results = futures_join_all(futs).await;
    let mut opened = 0;
    for r in results {
        let Inserted::Created(d) = r.unwrap() else { panic!("new decisions") };
        match &d.final_verdict {
            None => opened += 1,
            Some(f) => {
                assert_eq!(f.source, arbiter_core::FinalSource::AgentCaseCap);
                assert_eq!(f.verdict, Verdict::Deny, "fails closed, whatever the class's allow fallback");
                assert!(f.receipt.is_none());
                assert_eq!(d.case_id, None);
                assert!(store.case(&format!("c-cap-{}", &d.id[4..])).await.unwrap().is_none());
            }
        }
    }
    assert_eq!(opened, 5, "exactly the cap is opened");
    // another agent is not affected
    escalate(store, "cap-other", |_| {}).await;
    assert!(store.case("c-cap-other").await.unwrap().is_some());
}

/// Under 32 concurrent reviewers claiming the same cases, no case is ever held by two.
pub async fn claims_are_exclusive(store: &dyn Store) {
    for i in 0..8 {
        escalate(store, &format!("claim{i}"), |_| {}).await;
    }
    let now = Timestamp(5_000);
    let futs = (0..32).flat_map(|r| {
        (0..8).map(move |i| {
            let by = reviewer(&format!("rev{r}"), &["soc_lead"]);
            async move {
                let res =
                    store.update_case(&format!("c-claim{i}"), CaseCommand::Claim { by, lease_ms: 600_000 }, now).await;
                (i, r, res)
            }
        })
    });
    let results = futures_join_all(futs).await;
    for i in 0..8 {
        let winners: Vec<_> = results.iter().filter(|(c, _, res)| *c == i && res.is_ok()).collect();
        assert_eq!(winners.len(), 1, "case {i} claimed by {} reviewers", winners.len());
        let losers_ok = results
            .iter()
            .filter(|(c, _, _)| *c == i)
            .all(|(_, _, res)| res.is_ok() || matches!(res, Err(StoreError::Case(CaseError::HeldByOther { .. }))));
        assert!(losers_ok);
        let case = store.case(&format!("c-claim{i}")).await.unwrap().unwrap();
        assert_eq!(case.claim.unwrap().by, format!("rev{}", winners[0].1));
    }
    let active = store.active_approval_cases().await.unwrap();
    assert!(active.iter().filter(|c| c.id.starts_with("c-claim")).all(|c| c.state == CaseState::Claimed));
}

/// Leases and tiers come due; the sweep moves the case to the next tier and then applies the fallback.
pub async fn sla_sweep(store: &dyn Store) {
    escalate(store, "sla", |c| {
        c.escalation.tiers =
            vec![Tier { reviewers: ["soc_manager".to_string()].into_iter().collect(), sla: HumanDuration(300) }];
        c.escalation.fallback = Verdict::Deny;
    })
    .await;
    store
        .update_case(
            "c-sla",
            CaseCommand::Claim { by: reviewer("ann", &["soc_lead"]), lease_ms: 60_000 },
            Timestamp(1_000),
        )
        .await
        .unwrap();
    // the lease ends at 61s, the first tier at 601s, the second at 901s
    assert!(!store.due_cases(Timestamp(60_999), 100).await.unwrap().contains(&"c-sla".to_string()));
    assert!(store.due_cases(Timestamp(61_000), 100).await.unwrap().contains(&"c-sla".to_string()));
    let up = store.update_case("c-sla", CaseCommand::Sweep, Timestamp(61_000)).await.unwrap();
    assert_eq!(up.events.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(), ["case.lease_expired"]);
    assert_eq!(up.events[0].actor, "system");
    let nothing = store.update_case("c-sla", CaseCommand::Sweep, Timestamp(62_000)).await.unwrap();
    assert!(nothing.events.is_empty());
    let up = store.update_case("c-sla", CaseCommand::Sweep, Timestamp(601_000)).await.unwrap();
    assert_eq!(up.case.tier, 1);
    assert_eq!(up.case.sla_deadline, Timestamp(901_000));
    assert!(!store.due_cases(Timestamp(900_999), 100).await.unwrap().contains(&"c-sla".to_string()));
    let up = store.update_case("c-sla", CaseCommand::Sweep, Timestamp(901_000)).await.unwrap();
    assert_eq!(up.events.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(), ["case.fallback_applied"]);
    let d = up.decision.expect("the fallback makes the decision final");
    let fin = d.final_verdict.unwrap();
    assert_eq!((fin.verdict, fin.source), (Verdict::Deny, FinalSource::SlaExpired));
    assert!(!store.due_cases(Timestamp(i64::MAX), 100).await.unwrap().contains(&"c-sla".to_string()));
}

/// Review cases open on their own, record stages, close when complete, and see their decision chain.
pub async fn review_cases(store: &dyn Store) {
    let mut review = Review::new("Agent isolates too many hosts".into(), ReviewSource::Decision);
    review.decision_ids = vec!["d-claim0".into()];
    review.trace_ids = vec!["trace-claim1".into()];
    let mut c = case("r-1", "d-claim0", 1);
    c.kind = CaseKind::Review;
    c.decision_id = None;
    c.review = Some(review);
    store.open_case(c, "eve").await.unwrap();
    let chain = store.decision_chain(&["trace-claim1".into()], &["d-claim0".into()], 100).await.unwrap();
    assert_eq!(chain.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["d-claim0", "d-claim1"]);
    let eng = reviewer("eve", &["engineering"]);
    let stage = |record| CaseCommand::RecordStage {
        by: eng.clone(),
        role: "engineering".into(),
        rationale: "from the replay".into(),
        record,
    };
    let close = CaseCommand::Close { by: eng.clone(), reason: "resolved".into() };
    assert!(matches!(
        store.update_case("r-1", close.clone(), Timestamp(10)).await,
        Err(StoreError::Case(CaseError::Incomplete(_)))
    ));
    for record in [
        StageRecord::ContextualAnalysis(ContextualAnalysis {
            reproduced: Reproduced::Yes,
            steps: vec!["replay".into()],
            environment: "staging".into(),
            links: vec![],
            bundle_sha256: None,
            differences: None,
        }),
        StageRecord::TraceInspection(TraceInspection {
            findings: vec![Finding {
                decision_id: "d-claim0".into(),
                span_id: None,
                kind: FindingKind::WrongAction,
                note: "isolated a server".into(),
            }],
        }),
        StageRecord::ImpactAssessment(ImpactAssessment {
            severity: ImpactSeverity::S3,
            scope: Scope { count: 1, entities: vec![Entity { kind: "host".into(), id: "web-17".into() }] },
            technical_correctness: "wrong".into(),
            user_experience: "site down 5m".into(),
        }),
        StageRecord::ResolutionDesign(ResolutionDesign {
            interventions: vec![InterventionSpec {
                kind: InterventionKind::PolicyChange,
                description: "escalate server isolation".into(),
                owner: "eve".into(),
                expected_effect: "no automatic server isolation".into(),
                policy_version: None,
            }],
            no_intervention_needed: None,
        }),
    ] {
        store.update_case("r-1", stage(record), Timestamp(11)).await.unwrap();
    }
    // A policy change closes the review only once its version is linked and backtested on the review's decisions.
    let version = "a".repeat(64);
    let link = CaseCommand::LinkPolicyVersion { by: eng.clone(), index: 0, policy_version: version.clone() };
    store.update_case("r-1", link, Timestamp(11)).await.unwrap();
    assert!(matches!(
        store.update_case("r-1", close.clone(), Timestamp(12)).await,
        Err(StoreError::Case(CaseError::Incomplete(m))) if m.iter().any(|x| x.contains("backtest"))
    ));
    let check = |still_allowed: Vec<String>| CaseCommand::RecordCheck {
        by: eng.clone(),
        index: 0,
        check: arbiter_core::review::InterventionCheck {
            policy_version: version.clone(),
            decisions: vec!["d-claim0".into()],
            still_allowed,
            at: Timestamp(11),
            by: "eve".into(),
        },
    };
    store.update_case("r-1", check(vec!["d-claim0".into()]), Timestamp(11)).await.unwrap();
    assert!(store.update_case("r-1", close.clone(), Timestamp(12)).await.is_err(), "a failed backtest keeps it open");
    store.update_case("r-1", check(vec![]), Timestamp(11)).await.unwrap();
    let closed = store.update_case("r-1", close, Timestamp(12)).await.unwrap();
    assert_eq!(closed.case.state, CaseState::Closed);
    assert!(closed.decision.is_none());
    // Closing created the lesson, in the same transaction, from the review's stages and decisions.
    let lesson = store.lesson(&crate::rules::lesson_id("r-1")).await.unwrap().expect("closing creates the lesson");
    assert_eq!(lesson.review_id, "r-1");
    assert_eq!(lesson.title, "Agent isolates too many hosts");
    assert_eq!(lesson.decision_ids, ["d-claim0"]);
    assert_eq!(lesson.action_classes, ["isolate_host"]);
    assert_eq!(lesson.failure_modes, ["wrong_action"]);
    assert_eq!(lesson.root_cause, "isolated a server");
    assert!(lesson.summary.starts_with("resolved"), "{}", lesson.summary);
    assert_eq!(lesson.interventions[0].spec.policy_version.as_deref(), Some(version.as_str()));
    assert!(lesson.policy_versions.contains(&version));
    assert!(!lesson.publish, "lessons start unpublished");
    let reviews = store
        .cases(CaseFilter { kind: Some(CaseKind::Review), states: vec![CaseState::Closed], limit: 10 })
        .await
        .unwrap();
    assert_eq!(reviews.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["r-1"]);
    let kinds: Vec<String> = store.case_events("r-1").await.unwrap().into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds.first().map(String::as_str), Some("case.opened"));
    assert_eq!(kinds.last().map(String::as_str), Some("review.closed"));
    let history = store.lesson_events(&lesson.id).await.unwrap();
    assert_eq!(history.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(), ["lesson.created"]);
    // Reopened and closed again: the same lesson, refreshed, and people's edits kept.
    let edited = store
        .update_lesson(
            &lesson.id,
            arbiter_core::lesson::LessonPatch {
                title: Some("Servers isolated on weak evidence".into()),
                ..Default::default()
            },
            "eve",
            Timestamp(13),
        )
        .await
        .unwrap();
    assert_eq!(edited.revision, 2);
    let reopen = CaseCommand::Reopen { by: eng.clone(), reason: "it happened again".into() };
    store.update_case("r-1", reopen, Timestamp(14)).await.unwrap();
    let close = CaseCommand::Close { by: eng.clone(), reason: "resolved again".into() };
    store.update_case("r-1", close, Timestamp(15)).await.unwrap();
    let again = store.lesson(&lesson.id).await.unwrap().unwrap();
    assert_eq!((again.title.as_str(), again.revision), ("Servers isolated on weak evidence", 3));
    let kinds: Vec<String> = store.lesson_events(&lesson.id).await.unwrap().into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds, ["lesson.created", "lesson.updated", "lesson.updated"]);
}

/// A decision of the `learn-agent` blocking `ip` at `at` (minutes), escalated with case `c-{id}` when `case`.
fn block(id: &str, ip: &str, at_min: i64, case: bool) -> Decision {
    let mut d = decision(id, None, case.then(|| format!("c-{id}")).as_deref());
    d.agent = "learn-agent".into();
    d.action = Action {
        name: "block_ip".into(),
        args: json!({"ip": ip, "direction": "inbound"}),
        confidence: Some(0.9),
        signals: json!({"alert_type": "brute_force"}),
    };
    d.trace_id = None;
    d.event_time = Timestamp(at_min * 60_000);
    d.received_at = d.event_time;
    if !case {
        d.final_verdict = Some(arbiter_core::FinalVerdict {
            verdict: Verdict::Allow,
            source: FinalSource::Policy,
            action: None,
            decided_by: vec![],
            rationale: "confident enough".into(),
            decided_at: d.received_at,
            receipt: None,
        });
    }
    d
}

/// Lessons, search, the queries behind similar cases and the blast radius,
/// labelled points, suggestions and draft policy versions.
pub async fn learning(store: &dyn Store) {
    // --- decisions of one agent and class, some answered by people
    for (i, (ip, at, escalated)) in
        [("10.0.0.1", 10, true), ("10.0.0.1", 20, true), ("10.0.0.2", 30, false), ("10.0.0.3", 100, true)]
            .iter()
            .enumerate()
    {
        let d = block(&format!("L{i}"), ip, *at, *escalated);
        let mut c = case(&format!("c-L{i}"), &d.id, 1);
        c.action_name = "block_ip".into();
        c.agent = "learn-agent".into();
        c.args_digest = Some(arbiter_core::canonical::args_digest(&d.action.args));
        c.trace_id = None;
        let case = escalated.then_some(c);
        store
            .insert_decision(NewDecision { decision: d, request_digest: format!("L{i}"), case, open_case_cap: None })
            .await
            .unwrap();
    }
    let lead = reviewer("lee", &["soc_lead"]);
    let answer = |verdict, rationale: &str| CaseCommand::Answer {
        by: lead.clone(),
        verdict,
        check: None,
        modified_args: None,
        rationale: rationale.into(),
        failure_modes: vec!["wrong_target".into()],
        via: None,
    };
    store
        .update_case("c-L0", answer(Verdict::Deny, "the address is our own VPN gateway"), Timestamp(11 * 60_000))
        .await
        .unwrap();
    store
        .update_case("c-L1", answer(Verdict::Allow, "confirmed brute force from outside"), Timestamp(21 * 60_000))
        .await
        .unwrap();
    store
        .record_outcome(
            "L2",
            Outcome {
                correct: false,
                cost: None,
                label: None,
                note: None,
                recorded_at: Timestamp(40 * 60_000),
                recorded_by: "t".into(),
            },
        )
        .await
        .unwrap();

    // similar-case candidates: ended by people or labelled, of the class, before the time, most recent first
    let cands = store.similar_candidates("block_ip", Timestamp(200 * 60_000), 10).await.unwrap();
    assert_eq!(cands.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["L2", "L1", "L0"]);
    assert!(
        store.similar_candidates("block_ip", Timestamp(25 * 60_000), 10).await.unwrap().iter().all(|d| d.id != "L2")
    );
    // the agent's activity in the class, and its totals
    let act = store.agent_activity("learn-agent", "block_ip", Timestamp(15 * 60_000), 100).await.unwrap();
    assert_eq!(act.len(), 3);
    assert_eq!(act[0].subject.as_deref(), Some("ip:10.0.0.3"), "most recent first, with its subject");
    let totals = store.agent_totals("learn-agent", Timestamp(0)).await.unwrap();
    assert_eq!(
        totals,
        arbiter_core::insight::AgentTotals { decisions: 4, escalated: 3, reviewed: 2, overridden: 1 },
        "the refusal is an override, the plain approval is not"
    );
    // a subject's history
    let (n, hist) = store.subject_history("ip:10.0.0.1", Timestamp(200 * 60_000), 1).await.unwrap();
    assert_eq!((n, hist.iter().map(|d| d.id.as_str()).collect::<Vec<_>>()), (2, vec!["L1"]));
    assert_eq!(store.subject_history("ip:10.0.0.1", Timestamp(15 * 60_000), 10).await.unwrap().0, 1);
    // decisions people decided
    let reviewed = store.reviewed_decisions(Some("block_ip"), Timestamp(0), 10).await.unwrap();
    assert_eq!(reviewed.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["L1", "L0"]);
    assert!(store.reviewed_decisions(Some("block_ip"), Timestamp(15 * 60_000), 10).await.unwrap().len() == 1);
    // labelled points of a class in a window
    let pts = store.labelled_points(&["block_ip".into()], Timestamp(0), Timestamp(60 * 60_000)).await.unwrap();
    assert_eq!(pts.len(), 1);
    assert!(pts[0].harmful_unreviewed(), "wrong and allowed by the policy: {:?}", pts[0]);
    assert!(
        store.labelled_points(&["close_alert".into()], Timestamp(0), Timestamp(i64::MAX)).await.unwrap().is_empty()
    );

    // --- finding past cases: filters and pages
    let ids = |p: crate::CasePage| p.cases.into_iter().map(|c| c.id).collect::<Vec<_>>();
    let mine = crate::CaseQuery { agent: Some("learn-agent".into()), limit: 10, ..Default::default() };
    assert_eq!(ids(store.find_cases(mine.clone()).await.unwrap()), ["c-L3", "c-L1", "c-L0"], "newest first");
    for (query, want) in [
        (crate::CaseQuery { verdict: Some(Verdict::Deny), ..mine.clone() }, vec!["c-L0"]),
        (crate::CaseQuery { source: Some(FinalSource::Review), ..mine.clone() }, vec!["c-L1", "c-L0"]),
        (crate::CaseQuery { reviewer: Some("lee".into()), ..mine.clone() }, vec!["c-L1", "c-L0"]),
        (crate::CaseQuery { failure_mode: Some("wrong_target".into()), ..mine.clone() }, vec!["c-L1", "c-L0"]),
        (crate::CaseQuery { subject: Some("ip:10.0.0.3".into()), ..mine.clone() }, vec!["c-L3"]),
        (
            crate::CaseQuery { action: Some("block_ip".into()), states: vec![CaseState::Decided], ..mine.clone() },
            vec!["c-L1", "c-L0"],
        ),
        (crate::CaseQuery { text: Some("VPN gateway".into()), ..mine.clone() }, vec!["c-L0"]),
        (crate::CaseQuery { since: Some(Timestamp(15 * 60_000)), ..mine.clone() }, vec!["c-L1"]),
        (crate::CaseQuery { until: Some(Timestamp(15 * 60_000)), ..mine.clone() }, vec!["c-L3", "c-L0"]),
    ] {
        assert_eq!(ids(store.find_cases(query.clone()).await.unwrap()), want, "{query:?}");
    }
    let first = store.find_cases(crate::CaseQuery { limit: 2, ..mine.clone() }).await.unwrap();
    assert_eq!(first.cases.len(), 2);
    let rest = store.find_cases(crate::CaseQuery { after: first.next, limit: 2, ..mine.clone() }).await.unwrap();
    assert_eq!((ids(rest.clone()), rest.next), (vec!["c-L0".to_string()], None), "the last page has no next cursor");
    let reviews = crate::CaseQuery {
        kind: Some(CaseKind::Review),
        reviewer: Some("eve".into()),
        failure_mode: Some("wrong_action".into()),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(ids(store.find_cases(reviews).await.unwrap()), ["r-1"]);

    // --- search: reviewed decisions (by their rationale), review cases, lessons
    let q = |q: &str| search::SearchQuery { q: q.into(), limit: 10, ..Default::default() };
    let hits = store.search(q("vpn gateway")).await.unwrap();
    assert_eq!(
        hits.iter().map(|h| (h.kind, h.id.as_str())).collect::<Vec<_>>(),
        [(search::SearchKind::Decision, "L0")]
    );
    assert_eq!(hits[0].title, "block_ip ip:10.0.0.1");
    assert_eq!(hits[0].failure_modes, ["wrong_target"]);
    assert_eq!(store.search(q("gate*")).await.unwrap().len(), 1, "`word*` is a prefix");
    assert!(store.search(q("gate")).await.unwrap().is_empty(), "words match whole words");
    assert_eq!(store.search(q("VPN Gateway")).await.unwrap().len(), 1, "case is ignored");
    // a reviewed decision is found by the values of its arguments (and context), not only its rationale
    let by_args = store.search(q("inbound")).await.unwrap();
    let mut found: Vec<&str> = by_args.iter().map(|h| h.id.as_str()).collect();
    found.sort();
    assert_eq!(found, ["L0", "L1"], "{by_args:?}");
    let ranked = store.search(q("isolated")).await.unwrap();
    assert_eq!(ranked[0].kind, search::SearchKind::Lesson, "a title holding every word comes first: {ranked:?}");
    assert!(ranked.iter().any(|h| h.kind == search::SearchKind::Review), "the review's body matches too: {ranked:?}");
    let lessons = store
        .search(search::SearchQuery { kind: Some(search::SearchKind::Lesson), ..q("servers isolated") })
        .await
        .unwrap();
    assert_eq!(lessons.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(), [crate::rules::lesson_id("r-1")]);
    let review =
        store.search(search::SearchQuery { kind: Some(search::SearchKind::Review), ..q("replay") }).await.unwrap();
    assert_eq!(review.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(), ["r-1"]);
    for (filter, n) in [
        (search::SearchQuery { action: Some("block_ip".into()), ..q("confirmed") }, 1),
        (search::SearchQuery { action: Some("isolate_host".into()), ..q("confirmed") }, 0),
        (search::SearchQuery { agent: Some("learn-agent".into()), ..q("brute") }, 1),
        (search::SearchQuery { failure_mode: Some("wrong_target".into()), ..q("brute") }, 1),
        (search::SearchQuery { failure_mode: Some("wrong_action".into()), ..q("brute") }, 0),
        (search::SearchQuery { since: Some(Timestamp(22 * 60_000)), ..q("brute") }, 0),
        (search::SearchQuery { until: Some(Timestamp(22 * 60_000)), ..q("brute") }, 1),
    ] {
        assert_eq!(store.search(filter.clone()).await.unwrap().len(), n, "{filter:?}");
    }
    // query text is words, never syntax
    for weird in ["\"", "NEAR(a b)", "vpn OR x", "a:b", "*", "-gateway", "(("] {
        store.search(q(weird)).await.unwrap();
    }
    assert!(store.search(q("  ,; ")).await.unwrap().is_empty());

    // --- lessons: list, filter, edit, history
    let id = crate::rules::lesson_id("r-1");
    let all = store.lessons(crate::LessonFilter { limit: 10, ..Default::default() }).await.unwrap();
    assert!(all.iter().any(|l| l.id == id));
    let by_class = crate::LessonFilter { action: Some("block_ip".into()), limit: 10, ..Default::default() };
    assert!(store.lessons(by_class).await.unwrap().is_empty());
    assert!(
        store
            .lessons(crate::LessonFilter { published: true, limit: 10, ..Default::default() })
            .await
            .unwrap()
            .is_empty()
    );
    let before = store.lesson_events(&id).await.unwrap().len();
    let same = store.update_lesson(&id, Default::default(), "eve", Timestamp(50)).await.unwrap();
    assert_eq!(store.lesson_events(&id).await.unwrap().len(), before, "an edit that changes nothing records nothing");
    let published = store
        .update_lesson(
            &id,
            arbiter_core::lesson::LessonPatch { publish: Some(true), ..Default::default() },
            "eve",
            Timestamp(51),
        )
        .await
        .unwrap();
    assert_eq!(published.revision, same.revision + 1);
    let last = store.lesson_events(&id).await.unwrap().pop().unwrap();
    assert_eq!((last.kind.as_str(), last.actor.as_str()), ("lesson.updated", "eve"));
    assert_eq!(last.data["changed"], json!(["publish"]));
    assert_eq!(
        store.lessons(crate::LessonFilter { published: true, limit: 10, ..Default::default() }).await.unwrap().len(),
        1
    );
    assert!(matches!(
        store.update_lesson("nope", Default::default(), "eve", Timestamp(52)).await,
        Err(StoreError::NotFound(_))
    ));

    // --- draft policy versions
    let draft = PolicyVersion {
        hash: "d".repeat(64),
        name: "draft".into(),
        source: "version: 1\npolicy: draft\n".into(),
        created_at: Timestamp(60),
        created_by: "eve".into(),
    };
    assert!(store.store_policy_draft(draft.clone(), Timestamp(60), "eve").await.unwrap());
    assert!(!store.store_policy_draft(draft.clone(), Timestamp(61), "eve").await.unwrap(), "stored once");
    let summaries = store.policy_versions().await.unwrap();
    let d = summaries.iter().find(|v| v.hash == draft.hash).unwrap();
    assert!(!d.active && d.last_activated_at.is_none(), "a draft is never active");
    assert!(store.policy_activations(&draft.hash).await.unwrap().is_empty());

    // --- suggestions
    let pattern = arbiter_core::suggest::Pattern {
        action: "block_ip".into(),
        atoms: vec![],
        answer: arbiter_core::suggest::Unanimous::Approved,
        support: 20,
        min_confidence: Some(0.9),
        examples: vec![],
    };
    let suggestion = |id: &str, fp: &str, created: i64| arbiter_core::suggest::Suggestion {
        id: id.into(),
        fingerprint: fp.into(),
        pattern: pattern.clone(),
        description: "block_ip approved 20 of 20 times".into(),
        trigger: "suggested_allow".into(),
        condition: "true".into(),
        verdict: Verdict::Allow,
        yaml: String::new(),
        base_policy: "h".into(),
        backtest: Default::default(),
        window_days: 30,
        created_at: Timestamp(created),
        expires_at: Timestamp(created + 1_000),
        state: arbiter_core::suggest::SuggestionState::Open,
        draft_policy: None,
        decided_by: None,
    };
    let open = store
        .offer_suggestions(vec![suggestion("s1", "fp1", 100), suggestion("s2", "fp2", 100)], Timestamp(100))
        .await
        .unwrap();
    assert_eq!(open.len(), 2);
    let again = store.offer_suggestions(vec![suggestion("s3", "fp1", 200)], Timestamp(200)).await.unwrap();
    assert_eq!(
        again.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        ["s1", "s2"],
        "a known situation is not offered twice"
    );
    let accepted = store
        .decide_suggestion(
            "s1",
            arbiter_core::suggest::SuggestionState::Accepted,
            Some(draft.hash.clone()),
            "eve",
            Timestamp(300),
        )
        .await
        .unwrap();
    assert_eq!(
        (accepted.state, accepted.draft_policy.as_deref()),
        (arbiter_core::suggest::SuggestionState::Accepted, Some(draft.hash.as_str()))
    );
    assert!(matches!(
        store
            .decide_suggestion("s1", arbiter_core::suggest::SuggestionState::Dismissed, None, "eve", Timestamp(301))
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(
        matches!(
            store
                .decide_suggestion(
                    "s2",
                    arbiter_core::suggest::SuggestionState::Dismissed,
                    None,
                    "eve",
                    Timestamp(5_000)
                )
                .await,
            Err(StoreError::Conflict(_))
        ),
        "an expired suggestion cannot be accepted or dismissed"
    );
    let later = store.offer_suggestions(vec![suggestion("s4", "fp1", 6_000)], Timestamp(6_000)).await.unwrap();
    assert_eq!(
        later.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        ["s4"],
        "once expired, the situation can be offered again"
    );
    assert_eq!(store.suggestion("s4").await.unwrap().unwrap().fingerprint, "fp1");
    assert_eq!(store.suggestions(10).await.unwrap().len(), 2);
}

/// Events are queued for the webhooks that want them in the same transaction, then delivered or retried.
pub async fn webhook_outbox(store: &dyn Store) {
    let hook = Webhook {
        id: "wh-1".into(),
        url: "http://127.0.0.1:9/hook".into(),
        events: ["case.opened".to_string(), "case.claimed".to_string()].into_iter().collect(),
        format: WebhookFormat::PagerDuty,
        secret: "s3cret".into(),
        created_at: Timestamp(1),
        created_by: "admin".into(),
        active: true,
        project: store.project().clone(),
        min_severity: Some(arbiter_core::Severity::High),
    };
    store.create_webhook(hook.clone()).await.unwrap();
    assert_eq!(store.webhooks().await.unwrap(), vec![hook.clone()]);
    escalate(store, "hook", |_| {}).await;
    store
        .update_case(
            "c-hook",
            CaseCommand::Claim { by: reviewer("ann", &["soc_lead"]), lease_ms: 1_000 },
            Timestamp(2_000),
        )
        .await
        .unwrap();
    store.update_case("c-hook", approve("ann", None), Timestamp(2_500)).await.unwrap();
    let none = std::collections::HashMap::new;
    // at most `per_webhook` at once, counting the ones in flight
    let busy: std::collections::HashMap<String, usize> = [("wh-1".to_string(), 4)].into_iter().collect();
    assert!(store.claim_due_deliveries(Timestamp(3_000), 30_000, 10, 4, busy).await.unwrap().is_empty());
    let one = store.claim_due_deliveries(Timestamp(3_000), 30_000, 10, 1, none()).await.unwrap();
    assert_eq!(one.iter().map(|d| d.event.kind.as_str()).collect::<Vec<_>>(), ["case.opened"]);
    assert_eq!(one[0].delivery.attempts, 1, "the attempt is recorded before it is sent");
    let due = store.claim_due_deliveries(Timestamp(3_000), 30_000, 10, 4, none()).await.unwrap();
    assert_eq!(due.iter().map(|d| d.event.kind.as_str()).collect::<Vec<_>>(), ["case.claimed"]);
    assert!(
        store.claim_due_deliveries(Timestamp(3_000), 30_000, 10, 4, none()).await.unwrap().is_empty(),
        "leased deliveries are not handed out twice"
    );
    // a worker that died mid-send: the lease runs out and the same delivery is due again
    let retried = store.claim_due_deliveries(Timestamp(33_000), 30_000, 10, 4, none()).await.unwrap();
    assert_eq!(retried.iter().map(|d| d.delivery.id).collect::<Vec<_>>(), [one[0].delivery.id, due[0].delivery.id]);
    assert_eq!(retried[0].delivery.attempts, 2);
    let due = retried;
    let (a, b) = (due[0].delivery.id, due[1].delivery.id);
    // no status and no error: nothing to send for this event (it is done, not retried)
    store
        .record_delivery_attempt(
            a,
            DeliveryAttempt { at: Timestamp(33_001), status: None, error: None, retry_at: None },
        )
        .await
        .unwrap();
    store
        .record_delivery_attempt(
            b,
            DeliveryAttempt {
                at: Timestamp(33_001),
                status: Some(500),
                error: None,
                retry_at: Some(Timestamp(34_000)),
            },
        )
        .await
        .unwrap();
    let again = store.claim_due_deliveries(Timestamp(34_000), 30_000, 10, 4, none()).await.unwrap();
    assert_eq!(again.iter().map(|d| d.delivery.id).collect::<Vec<_>>(), [b]);
    assert_eq!(again[0].delivery.attempts, 3);
    store
        .record_delivery_attempt(
            b,
            DeliveryAttempt {
                at: Timestamp(34_001),
                status: None,
                error: Some("connection refused".into()),
                retry_at: None,
            },
        )
        .await
        .unwrap();
    let log = store.deliveries("wh-1", 10).await.unwrap();
    assert_eq!(log.iter().map(|d| d.status).collect::<Vec<_>>(), [DeliveryStatus::Failed, DeliveryStatus::Delivered]);
    assert_eq!((log[0].attempts, log[1].attempts), (3, 2));
    assert_eq!(log[0].last_error.as_deref(), Some("connection refused"));
    // Floats that do not survive a naive print/parse round trip must still verify.
    let awkward: Vec<f64> = (1..200).map(|i| (i as f64).sqrt() * 1e-7 / 3.0 + 0.1 + 0.2).collect();
    let data = json!({"action": "isolate_host", "p": 7.815303959546327e-12, "rates": [0.1440501043841336, 0.057667103538663174], "values": awkward});
    let e = store.record_event("drift.episode.started", "system", Timestamp(3_002), data).await.unwrap();
    assert_eq!(store.verify_audit(None).await.unwrap().problem, None, "float data verifies after a round trip");
    let first = store.setting_or_insert("console_secret", "aaa").await.unwrap();
    assert_eq!(first, "aaa");
    assert_eq!(store.setting_or_insert("console_secret", "bbb").await.unwrap(), "aaa", "set once, then kept");
    // a replayed request stores nothing and counts nothing
    let once = NewDecision {
        decision: decision("d-counted-once", Some("count-once"), None),
        request_digest: "count-once".into(),
        case: None,
        open_case_cap: None,
    };
    assert!(matches!(store.insert_decision(once.clone()).await.unwrap(), Inserted::Created(_)));
    assert!(matches!(store.insert_decision(once).await.unwrap(), Inserted::Existing(_)));
    let dash = store.dashboard(Timestamp(0)).await.unwrap();
    assert!(dash.hourly.iter().map(|h| h.decisions).sum::<u64>() > 0);
    assert_eq!(
        dash.hourly.iter().map(|h| h.decisions).sum::<u64>(),
        store.recent_decisions(1_000_000).await.unwrap().len() as u64,
        "the roll-up counts each stored decision once"
    );
    assert!(dash.by_class.iter().any(|c| c.action == "isolate_host" && c.verdict == Verdict::Escalate));
    assert!(!dash.time_to_decision_ms.is_empty(), "decided cases count");
    assert!(dash.sla_fallbacks >= 1 && dash.tier_escalations >= 1 && dash.drift_alarms >= 1);
    // how decisions ended: each decision counted once, under its latest ending
    let ended: u64 = dash.endings.iter().map(|e| e.decisions).sum();
    assert_eq!(ended, dash.hourly.iter().map(|h| h.decisions).sum::<u64>(), "{:?}", dash.endings);
    assert!(dash.endings.iter().all(|e| e.decisions > 0));
    assert!(
        dash.endings.iter().any(|e| e.source == Some(FinalSource::SlaExpired)),
        "a fallback moved its decision from pending to its ending: {:?}",
        dash.endings
    );
    assert_eq!((e.kind.as_str(), e.case_id.as_deref()), ("drift.episode.started", None));
    assert!(store.delete_webhook("wh-1").await.unwrap());
    assert!(!store.delete_webhook("wh-1").await.unwrap());
    escalate(store, "hook2", |_| {}).await;
    assert!(
        store.claim_due_deliveries(Timestamp(100_000), 30_000, 10, 4, none()).await.unwrap().is_empty(),
        "an inactive webhook gets nothing"
    );
}

/// Many concurrent writers all commit, each exactly once.
pub async fn concurrent_writes(store: &dyn Store) {
    let futs = (0..200).map(|i| {
        let nd = NewDecision {
            decision: decision(&format!("cw-{i}"), Some(&format!("cw-idem-{}", i % 100)), None),
            request_digest: format!("cw-{}", i % 100),
            case: None,
            open_case_cap: None,
        };
        store.insert_decision(nd)
    });
    let results = futures_join_all(futs).await;
    let created = results.iter().filter(|r| matches!(r, Ok(Inserted::Created(_)))).count();
    let existing = results.iter().filter(|r| matches!(r, Ok(Inserted::Existing(_)))).count();
    assert_eq!((created, existing), (100, 100), "{results:?}");
}

/// Await a batch of futures concurrently without pulling in a futures crate.
async fn futures_join_all<F: std::future::Future>(futs: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut pinned: Vec<_> = futs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending { std::task::Poll::Pending } else { std::task::Poll::Ready(()) }
    })
    .await;
    out.into_iter().map(|o| o.expect("every future completed")).collect()
}

/// Spans: stored per (trace, span) id with their sender (a re-sent one
/// replaces it only for the same sender), read per trace in start order (all,
/// or one sender's), found by one sender's tool call id, purged by age except
/// the kept traces.
pub async fn spans(store: &dyn Store) {
    use arbiter_core::trace::{Dropped, Span};
    let span = |trace: &str, id: &str, start: i64, attrs: serde_json::Value| Span {
        trace_id: trace.into(),
        span_id: id.into(),
        parent_span_id: None,
        name: format!("span {id}"),
        kind: "internal".into(),
        start_ns: start,
        end_ns: start + 10,
        status: "unset".into(),
        status_message: String::new(),
        service: Some("agent".into()),
        attributes: attrs.as_object().cloned().unwrap_or_default(),
        events: vec![],
        dropped: Dropped::default(),
        sender: None,
    };
    let (t1, t2) = ("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa2");
    let n = store
        .insert_spans(
            "agent-b",
            vec![
                span(t1, "00000000000000b2", 20, json!({"gen_ai.tool.call.id": "call_1"})),
                span(t1, "00000000000000b1", 10, json!({"gen_ai.operation.name": "invoke_agent"})),
                span(t2, "00000000000000c1", 5, json!({})),
            ],
            Timestamp(1_000),
        )
        .await
        .unwrap();
    assert_eq!(n, 3);
    let got = store.trace_spans(t1, None, 100).await.unwrap();
    assert_eq!(got.iter().map(|s| s.span_id.as_str()).collect::<Vec<_>>(), ["00000000000000b1", "00000000000000b2"]);
    assert_eq!(got[1].attributes["gen_ai.tool.call.id"], "call_1", "attributes survive");
    assert_eq!(got[0].sender.as_deref(), Some("agent-b"), "the sender is recorded");
    assert_eq!(store.trace_spans(&t1.to_ascii_uppercase(), None, 100).await.unwrap().len(), 2, "ids compare lowercase");
    assert_eq!(store.trace_of_tool_call("agent-b", "call_1").await.unwrap().as_deref(), Some(t1));
    assert_eq!(store.trace_of_tool_call("agent-b", "call_2").await.unwrap(), None);
    // another sender can neither replace a stored span nor be found by its tool call id
    let planted = store
        .insert_spans(
            "agent-a",
            vec![
                span(t1, "00000000000000b2", 20, json!({"gen_ai.tool.call.id": "call_1", "planted": true})),
                span(t1, "00000000000000a9", 15, json!({"planted": true})),
                span(t2, "00000000000000a8", 1, json!({"gen_ai.tool.call.id": "call_1"})),
            ],
            Timestamp(1_500),
        )
        .await
        .unwrap();
    assert_eq!(planted, 2, "the span stored for agent-b is not replaced, and not counted");
    let b_run = store.trace_spans(t1, Some("agent-b"), 100).await.unwrap();
    assert_eq!(b_run.len(), 2, "agent-a's new span id is not part of agent-b's run");
    assert!(b_run.iter().all(|s| !s.attributes.contains_key("planted") && s.sender.as_deref() == Some("agent-b")));
    assert_eq!(store.trace_spans(t1, None, 100).await.unwrap().len(), 3, "a reviewer sees every sender's spans");
    assert_eq!(store.trace_of_tool_call("agent-b", "call_1").await.unwrap().as_deref(), Some(t1));
    assert_eq!(store.trace_of_tool_call("agent-a", "call_1").await.unwrap().as_deref(), Some(t2));
    // a re-sent span replaces the stored one of the same sender, later
    let again = span(t2, "00000000000000c1", 5, json!({"again": true}));
    assert_eq!(store.insert_spans("agent-b", vec![again], Timestamp(5_000)).await.unwrap(), 1);
    let t2s = store.trace_spans(t2, Some("agent-b"), 100).await.unwrap();
    assert_eq!((t2s.len(), &t2s[0].attributes["again"]), (1, &json!(true)));
    // purge: t1 is old but kept (a decision under review), t2 was received again after the cut
    assert_eq!(store.purge_spans(Timestamp(2_000), vec![t1.into()]).await.unwrap(), 1, "agent-a's old span in t2");
    assert_eq!(store.purge_spans(Timestamp(2_000), vec![]).await.unwrap(), 3);
    assert!(store.trace_spans(t1, None, 100).await.unwrap().is_empty());
    assert_eq!(store.trace_spans(t2, None, 100).await.unwrap().len(), 1);
    assert_eq!(store.purge_spans(Timestamp(6_000), vec![]).await.unwrap(), 1);
}

/// A receipt is used once: the first consumer's use is kept (with an audit
/// event) and every later call, by anyone, gets that first use back. Settings
/// are listed by prefix.
pub async fn receipts_and_settings(store: &dyn Store) {
    // a tool result is kept on its decision, replaced by a later one, and the audit still verifies
    let nd = NewDecision {
        decision: decision("tr-1", None, None),
        request_digest: "tr-1".into(),
        case: None,
        open_case_cap: None,
    };
    store.insert_decision(nd).await.unwrap();
    let r =
        arbiter_core::ToolResult::bounded(json!([{"type": "text", "text": "isolated"}]), false, "gw", Timestamp(50));
    let d = store.record_tool_result("tr-1", r.clone()).await.unwrap();
    assert_eq!(d.tool_result.as_ref(), Some(&r));
    assert_eq!(store.decision("tr-1").await.unwrap().unwrap().tool_result, Some(r));
    let later = arbiter_core::ToolResult::bounded(json!("failed"), true, "gw", Timestamp(60));
    assert_eq!(store.record_tool_result("tr-1", later.clone()).await.unwrap().tool_result, Some(later));
    assert!(matches!(
        store.record_tool_result("nope", arbiter_core::ToolResult::bounded(json!(1), false, "gw", Timestamp(1))).await,
        Err(StoreError::NotFound(_))
    ));
    assert_verified(store).await;
    // only a stored decision has a receipt to use
    assert!(matches!(
        store.consume_receipt("rc-1", "gateway-a", "sha256:aa", Timestamp(9)).await,
        Err(StoreError::NotFound(_))
    ));
    let nd = NewDecision {
        decision: decision("rc-1", None, None),
        request_digest: "rc-1".into(),
        case: None,
        open_case_cap: None,
    };
    store.insert_decision(nd).await.unwrap();
    let first = store.consume_receipt("rc-1", "gateway-a", "sha256:aa", Timestamp(10)).await.unwrap();
    assert!(first.first);
    let again = store.consume_receipt("rc-1", "gateway-a", "sha256:aa", Timestamp(20)).await.unwrap();
    assert_eq!((again.first, again.consumer.as_str(), again.at), (false, "gateway-a", Timestamp(10)));
    let other = store.consume_receipt("rc-1", "gateway-b", "sha256:bb", Timestamp(30)).await.unwrap();
    assert_eq!((other.first, other.consumer.as_str(), other.args_digest.as_str()), (false, "gateway-a", "sha256:aa"));
    let events = store.events(0, 100_000).await.unwrap();
    let used: Vec<_> =
        events.iter().filter(|e| e.kind == "receipt.consumed" && e.data["decision_id"] == "rc-1").collect();
    assert_eq!(used.len(), 1, "one audit event for the one use");
    store.setting_or_insert("rk.000002", "two").await.unwrap();
    store.setting_or_insert("rk.000001", "one").await.unwrap();
    store.setting_or_insert("rkx", "not it").await.unwrap();
    assert_eq!(
        store.settings_with_prefix("rk.").await.unwrap(),
        [("rk.000001".to_string(), "one".to_string()), ("rk.000002".to_string(), "two".to_string())]
    );
}

/// Raw access to a backend's tables, as an attacker with database access has
/// it, for the tamper checks every backend must pass.
#[async_trait::async_trait]
pub trait Backdoor: Send + Sync {
    /// Run `sql` (no parameters) on the database, behind the store's back.
    async fn execute(&self, sql: &str);
}

/// Every tamper check that works the same on every backend (run on a fresh store).
pub async fn tampering(store: &dyn Store, backdoor: &dyn Backdoor) {
    numbers_that_verify(store).await;
    every_problem_is_reported(store, backdoor).await;
    a_rewritten_history_breaks_the_anchor(store, backdoor).await;
}

/// Any number the API accepts verifies: `-0.0` (which a database may store
/// as `0`) and tiny or huge values, as a confidence and as an outcome's cost.
pub async fn numbers_that_verify(store: &dyn Store) {
    for (i, (confidence, cost)) in
        [(-0.0, -0.0), (5e-324, 1e308), (0.1 + 0.2, 9.007_199_254_740_992e15)].into_iter().enumerate()
    {
        let mut d = decision(&format!("num-{i}"), None, None);
        d.action.confidence = Some(confidence);
        d.action.args = json!({"big": 9007199254740993u64, "neg": -0.0, "exp": 1e300});
        store
            .insert_decision(NewDecision {
                decision: d,
                request_digest: format!("num-{i}"),
                case: None,
                open_case_cap: None,
            })
            .await
            .unwrap();
        let out = Outcome {
            correct: true,
            cost: Some(cost),
            label: None,
            note: None,
            recorded_at: Timestamp(5),
            recorded_by: "ann".into(),
        };
        store.record_outcome(&format!("num-{i}"), out).await.unwrap();
    }
    assert_verified(store).await;
}

/// `audit verify` goes on past a problem: two forged decision rows and an
/// edited event are three problems, each named.
pub async fn every_problem_is_reported(store: &dyn Store, backdoor: &dyn Backdoor) {
    for id in ["many-1", "many-2", "many-3"] {
        store
            .insert_decision(NewDecision {
                decision: decision(id, None, None),
                request_digest: id.into(),
                case: None,
                open_case_cap: None,
            })
            .await
            .unwrap();
    }
    assert_verified(store).await;
    let head = store.chain_head().await.unwrap().unwrap();
    let original = store.events(head.seq - 1, 1).await.unwrap().remove(0);
    backdoor.execute("UPDATE decisions SET confidence = 0.01 WHERE id = 'many-1'").await;
    backdoor.execute("UPDATE decisions SET confidence = 0.02 WHERE id = 'many-3'").await;
    backdoor.execute(&format!("UPDATE events SET actor = 'mallory' WHERE seq = {}", head.seq)).await;
    let report = store.verify_audit(None).await.unwrap();
    let named: Vec<String> = report.problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(report.problems_found, 3, "{named:?}");
    assert!(named.iter().any(|p| p.starts_with(&format!("event {} ", head.seq))), "{named:?}");
    assert!(named.iter().any(|p| p.starts_with("decision many-1:")), "{named:?}");
    assert!(named.iter().any(|p| p.starts_with("decision many-3:")), "{named:?}");
    assert_eq!(report.problem.as_ref(), report.problems.first(), "the first is still reported first");
    assert!(!report.ok());
    // put it back, so the store verifies again for the next check
    backdoor.execute("UPDATE decisions SET confidence = 0.7 WHERE id IN ('many-1', 'many-3')").await;
    backdoor
        .execute(&format!(
            "UPDATE events SET actor = '{}' WHERE seq = {}",
            original.actor.replace('\'', "''"),
            head.seq
        ))
        .await;
    assert_verified(store).await;
}

/// An attacker who edits an old event and recomputes every hash after it
/// leaves a chain that is consistent in itself; the anchor taken before
/// catches it, because each hash covers the previous one.
pub async fn a_rewritten_history_breaks_the_anchor(store: &dyn Store, backdoor: &dyn Backdoor) {
    for n in ["rw-1", "rw-2", "rw-3"] {
        escalate(store, n, |_| {}).await;
    }
    let anchor = store.chain_head().await.unwrap().unwrap();
    let events = store.events(0, 100_000).await.unwrap();
    assert!(events.len() >= 4, "{} events", events.len());
    let from = events.len() / 2;
    let mut prev = events[from - 1].hash.clone();
    for (i, e) in events.iter().enumerate().skip(from) {
        let mut e = e.clone();
        if i == from {
            e.actor = "mallory".into();
        }
        e.prev_hash = prev;
        e.hash = e.compute_hash();
        prev = e.hash.clone();
        backdoor
            .execute(&format!(
                "UPDATE events SET actor = '{}', prev_hash = '{}', hash = '{}' WHERE seq = {}",
                e.actor.replace('\'', "''"),
                e.prev_hash,
                e.hash,
                e.seq
            ))
            .await;
    }
    let unanchored = store.verify_audit(None).await.unwrap();
    assert!(
        !unanchored.problems.iter().any(|p| matches!(p, crate::AuditProblem::Event { .. })),
        "the rewrite is consistent in itself: {unanchored:?}"
    );
    let anchored = store.verify_audit(Some(anchor)).await.unwrap();
    assert!(
        anchored.problems.iter().any(|p| matches!(p, crate::AuditProblem::Anchor { .. })),
        "the anchor must catch a rewritten history: {anchored:?}"
    );
}

/// Two agents that send the same idempotency key each get their own decision.
pub async fn idempotency_keys_are_per_agent(store: &dyn Store) {
    let mine = |agent: &str, id: &str| {
        let mut d = decision(id, Some("shared-key"), None);
        d.agent = agent.into();
        NewDecision { decision: d, request_digest: format!("digest-{agent}"), case: None, open_case_cap: None }
    };
    let Inserted::Created(a) = store.insert_decision(mine("agent-a", "idem-a")).await.unwrap() else {
        panic!("agent-a's first use of the key is new")
    };
    let Inserted::Created(b) = store.insert_decision(mine("agent-b", "idem-b")).await.unwrap() else {
        panic!("agent-b's use of the same key is new, not agent-a's decision (or a conflict)")
    };
    assert_eq!((a.agent.as_str(), b.agent.as_str()), ("agent-a", "agent-b"));
    match store.insert_decision(mine("agent-b", "idem-b-retry")).await.unwrap() {
        Inserted::Existing(d) => assert_eq!(d.id, "idem-b", "a retry finds the agent's own decision"),
        other => panic!("expected agent-b's decision, got {other:?}"),
    }
    // the read-only lookup a rate-limited retry is answered from
    let found = store.replayed_decision("agent-a", "shared-key", "digest-agent-a").await.unwrap();
    assert_eq!(found.map(|d| d.id).as_deref(), Some("idem-a"));
    assert_eq!(store.replayed_decision("agent-c", "shared-key", "digest-agent-a").await.unwrap(), None);
    assert!(matches!(
        store.replayed_decision("agent-a", "shared-key", "another request").await,
        Err(StoreError::Conflict(_))
    ));
}

/// (Run on an empty store of its own.) Replicas starting together on an empty store bootstrap once: eight
/// concurrent first starts store one admin key and activate the policy once;
/// a later start with another policy activates it, and the built-in default
/// never replaces an active policy.
pub async fn first_start(store: &dyn Store) {
    use crate::{FirstStart, PolicyVersion};
    let version = |hash: &str| PolicyVersion {
        hash: hash.into(),
        name: format!("policy {hash}"),
        source: format!("version: 1\npolicy: {hash}\n"),
        created_at: Timestamp(1),
        created_by: "bootstrap".into(),
    };
    let start = |i: usize, hash: &str, only_if_none: bool| FirstStart {
        policy: Some(version(hash)),
        policy_only_if_none: only_if_none,
        admin: Some(KeyRecord {
            id: format!("boot{i}"),
            name: "admin".into(),
            role: arbiter_core::Role::Admin,
            tags: Default::default(),
            digest: vec![i as u8; 32],
            created_at: Timestamp(1),
            revoked_at: None,
            expires_at: None,
            rate_limit: None,
            project: store.project().clone(),
        }),
        by: "bootstrap".into(),
    };
    let all = futures_join_all((0..8).map(|i| store.first_start(start(i, "p-boot", false), Timestamp(2)))).await;
    let done: Vec<_> = all.into_iter().map(Result::unwrap).collect();
    assert_eq!(done.iter().filter(|d| d.admin_created).count(), 1, "{done:?}");
    assert_eq!(done.iter().filter(|d| d.policy_activated).count(), 1, "{done:?}");
    assert_eq!(store.keys().await.unwrap().len(), 1);
    assert_eq!(store.policy_activations("p-boot").await.unwrap().len(), 1);
    // the default yields to an active policy; another policy named at start is activated
    assert!(!store.first_start(start(9, "p-default", true), Timestamp(3)).await.unwrap().policy_activated);
    let again = store.first_start(start(10, "p-other", false), Timestamp(4)).await.unwrap();
    assert!(again.policy_activated && !again.admin_created, "{again:?}");
    assert_eq!(store.active_policy().await.unwrap().unwrap().hash, "p-other");
}
