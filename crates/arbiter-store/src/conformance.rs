//! The behaviour every [`Store`] backend must show. Backend test binaries call
//! [`run_all`] with a fresh, empty store.

use crate::{CaseAnswer, Inserted, KeyRecord, NewDecision, PolicyVersion, Store, StoreError};
use arbiter_core::{
    Action, Answer, Case, CaseKind, CaseState, Decision, DecisionStatus, Escalation, HumanDuration,
    Outcome, Role, Severity, Timestamp, Verdict,
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
        verdict: if case_id.is_some() {
            Verdict::Escalate
        } else {
            Verdict::Allow
        },
        status: if case_id.is_some() {
            DecisionStatus::Pending
        } else {
            DecisionStatus::Final
        },
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
        created_at: Timestamp(1_000),
        updated_at: Timestamp(1_000),
    }
}

fn answer(by: &str, verdict: Verdict) -> Answer {
    Answer {
        by: by.into(),
        key_id: format!("key-{by}"),
        verdict,
        modified_args: None,
        rationale: format!("{by} checked it"),
        at: Timestamp(2_000),
    }
}

/// Run every conformance check against an empty store.
pub async fn run_all(store: &dyn Store) {
    policies(store).await;
    keys(store).await;
    decisions_and_idempotency(store).await;
    cases_and_events(store).await;
    concurrent_writes(store).await;
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
    store
        .activate_policy(v("a", 1), Timestamp(1), "admin")
        .await
        .unwrap();
    store
        .activate_policy(v("b", 2), Timestamp(2), "admin")
        .await
        .unwrap();
    assert_eq!(store.active_policy().await.unwrap().unwrap().hash, "b");
    // Re-activating an older version (a rollback) keeps one copy of it.
    store
        .activate_policy(v("a", 3), Timestamp(3), "admin")
        .await
        .unwrap();
    assert_eq!(store.active_policy().await.unwrap().unwrap().hash, "a");
    let versions = store.policy_versions().await.unwrap();
    assert_eq!(versions.len(), 2);
    assert!(versions.iter().find(|x| x.hash == "a").unwrap().active);
    assert_eq!(
        store.policy_version("a").await.unwrap().unwrap().created_at,
        Timestamp(1)
    );
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
    };
    store.create_key(k.clone()).await.unwrap();
    assert!(matches!(
        store.create_key(k.clone()).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.key("abc").await.unwrap().unwrap(), k);
    assert!(store.revoke_key("abc", Timestamp(9)).await.unwrap());
    assert!(!store.revoke_key("abc", Timestamp(10)).await.unwrap());
    assert_eq!(
        store.key("abc").await.unwrap().unwrap().revoked_at,
        Some(Timestamp(9))
    );
    assert!(store.keys().await.unwrap().iter().any(|x| x.id == "abc"));
}

/// A retried idempotency key returns the first decision; a reused key with a different request is refused.
pub async fn decisions_and_idempotency(store: &dyn Store) {
    let first = NewDecision {
        decision: decision("d1", Some("idem-1"), None),
        request_digest: "r1".into(),
        case: None,
    };
    assert!(matches!(
        store.insert_decision(first.clone()).await.unwrap(),
        Inserted::Created(_)
    ));
    let mut retry = first.clone();
    retry.decision.id = "d1-retry".into();
    match store.insert_decision(retry).await.unwrap() {
        Inserted::Existing(d) => assert_eq!(d.id, "d1"),
        other => panic!("expected the existing decision, got {other:?}"),
    }
    assert!(store.decision("d1-retry").await.unwrap().is_none());
    let mut different = first.clone();
    different.request_digest = "r2".into();
    assert!(matches!(
        store.insert_decision(different).await,
        Err(StoreError::Conflict(_))
    ));
    let out = Outcome {
        correct: false,
        cost: Some(12.5),
        label: Some("false_positive".into()),
        recorded_at: Timestamp(9),
        recorded_by: "ann".into(),
    };
    let d = store.record_outcome("d1", out.clone()).await.unwrap();
    assert_eq!(d.outcome, Some(out));
    assert!(matches!(
        store
            .record_outcome("nope", d.outcome.clone().unwrap())
            .await,
        Err(StoreError::NotFound(_))
    ));
}

/// Cases open with their decision, answers are recorded as chained events, and the decision becomes final.
pub async fn cases_and_events(store: &dyn Store) {
    let open_before = store.open_case_count().await.unwrap();
    let nd = NewDecision {
        decision: decision("d2", None, Some("c2")),
        request_digest: "r".into(),
        case: Some(case("c2", "d2", 2)),
    };
    store.insert_decision(nd).await.unwrap();
    assert_eq!(store.open_case_count().await.unwrap(), open_before + 1);
    let tags: std::collections::BTreeSet<String> = ["soc_lead".to_string()].into_iter().collect();
    let ans = |by: &str, v| CaseAnswer {
        case_id: "c2".into(),
        answer: answer(by, v),
        reviewer_tags: tags.clone(),
        is_admin: false,
    };
    let first = store.answer_case(ans("ann", Verdict::Allow)).await.unwrap();
    assert!(first.decision.is_none());
    assert!(matches!(
        store.answer_case(ans("ann", Verdict::Allow)).await,
        Err(StoreError::Answer(_))
    ));
    let mut second = ans("bob", Verdict::Allow);
    second.answer.modified_args = Some(json!({"host": "web-17", "mode": "network_only"}));
    let done = store.answer_case(second).await.unwrap();
    let d = done.decision.unwrap();
    assert_eq!(d.status, DecisionStatus::Final);
    let fin = d.final_verdict.unwrap();
    assert_eq!(fin.verdict, Verdict::Allow);
    assert_eq!(fin.action.unwrap().args["mode"], "network_only");
    assert_eq!(fin.decided_by, ["ann", "bob"]);
    assert_eq!(store.open_case_count().await.unwrap(), open_before);
    let events = store.case_events("c2").await.unwrap();
    let kinds: Vec<_> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "case.opened",
            "case.answered",
            "case.answered",
            "case.decided"
        ]
    );
    assert_eq!(store.verify_events().await.unwrap(), None);
}

/// Many concurrent writers all commit, each exactly once.
pub async fn concurrent_writes(store: &dyn Store) {
    let futs = (0..200).map(|i| {
        let nd = NewDecision {
            decision: decision(
                &format!("cw-{i}"),
                Some(&format!("cw-idem-{}", i % 100)),
                None,
            ),
            request_digest: format!("cw-{}", i % 100),
            case: None,
        };
        store.insert_decision(nd)
    });
    let results = futures_join_all(futs).await;
    let created = results
        .iter()
        .filter(|r| matches!(r, Ok(Inserted::Created(_))))
        .count();
    let existing = results
        .iter()
        .filter(|r| matches!(r, Ok(Inserted::Existing(_))))
        .count();
    assert_eq!((created, existing), (100, 100), "{results:?}");
}

/// Await a batch of futures concurrently without pulling in a futures crate.
async fn futures_join_all<F: std::future::Future>(
    futs: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
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
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter()
        .map(|o| o.expect("every future completed"))
        .collect()
}
