//! Span retention on the injected clock: the purge removes spans past the
//! retention, except the runs of decisions under review (an open approval
//! case, or a decision an open review case names), which stay until it ends.

use crate::support::{SOC_POLICY, TestServer};
use arbiter_core::trace::{Dropped, Span};
use serde_json::json;
use std::time::Duration;

fn span(trace: &str, id: &str) -> Span {
    Span {
        trace_id: trace.into(),
        span_id: id.into(),
        parent_span_id: None,
        name: "execute_tool".into(),
        kind: "internal".into(),
        start_ns: 0,
        end_ns: 1,
        status: "unset".into(),
        status_message: String::new(),
        service: None,
        attributes: Default::default(),
        events: vec![],
        dropped: Dropped::default(),
        sender: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_spans_go_except_the_runs_under_review() {
    let s = TestServer::with(SOC_POLICY, |c| c.trace_retention = Duration::from_secs(14 * 24 * 3600)).await;
    let agent = s.key("triage-agent", "agent", &[]).await;
    let (reviewed, idle, decided) =
        ("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa2", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa3");
    let now = s.state.clock.now();
    for t in [reviewed, idle, decided] {
        s.state.store.insert_spans("triage-agent", vec![span(t, "00000000000000b1")], now).await.unwrap();
    }
    let escalate = |trace: &str| {
        json!({"action": {"name": "isolate_host", "confidence": 0.9, "args": {"host": "srv-1", "host_tags": ["server"]},
               "signals": {"alert_type": "malware", "alert_severity": "high"}}, "trace_id": trace})
    };
    // one run's decision waits for a person; another's was decided, then named by an open review
    let (_, open) = s.post(&agent, "/v1/decisions", escalate(reviewed)).await;
    assert!(open["case_id"].is_string(), "{open}");
    let (_, done) = s.post(&agent, "/v1/decisions", escalate(decided)).await;
    let ana = s.key("ana", "reviewer", &["soc_analyst"]).await;
    let (code, _) = s
        .post(
            &ana,
            &format!("/v1/cases/{}/decision", done["case_id"].as_str().unwrap()),
            json!({"decision": "reject", "rationale": "not this server, not now"}),
        )
        .await;
    assert_eq!(code, 200);
    // 15 days later: the idle run goes, the two under review stay
    s.clock.advance_millis(15 * 24 * 3600 * 1000);
    let purged = arbiter_server::app::traces::purge(&s.state).await.unwrap();
    assert_eq!(purged, 2, "the idle run and the decided one not under review");
    assert_eq!(s.state.store.trace_spans(reviewed, None, 10).await.unwrap().len(), 1);
    assert!(s.state.store.trace_spans(idle, None, 10).await.unwrap().is_empty());
    // a review opened on the decided decision keeps its run from then on
    s.state
        .store
        .insert_spans("triage-agent", vec![span(decided, "00000000000000b2")], arbiter_core::Timestamp(0))
        .await
        .unwrap();
    let (code, review) =
        s.post(&s.admin, "/v1/reviews", json!({"title": "why this server", "decision_ids": [done["id"]]})).await;
    assert_eq!(code, 201, "{review}");
    assert_eq!(arbiter_server::app::traces::purge(&s.state).await.unwrap(), 0);
    assert_eq!(s.state.store.trace_spans(decided, None, 10).await.unwrap().len(), 1);
}
