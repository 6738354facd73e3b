//! The proposing agent withdraws a pending decision (a cancelled call): the
//! waiting long-poll returns at once with the final deny, settled by
//! `withdrawn`; nobody can answer the case any more; other agents and
//! reviewers cannot withdraw it; withdrawing again changes nothing.

use crate::support::{SOC_POLICY, TestServer};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdrawn_proposal_ends_its_case_and_wakes_the_waiter() {
    let s = TestServer::with(SOC_POLICY, |_| {}).await;
    let agent = s.key("triage-agent", "agent", &[]).await;
    let other = s.key("other-agent", "agent", &[]).await;
    let ana = s.key("ana", "reviewer", &["soc_analyst"]).await;
    let (_, d) = s
        .post(&agent, "/v1/decisions", json!({"action": {"name": "isolate_host", "confidence": 0.9,
            "args": {"host": "srv-1", "host_tags": ["server"]}, "signals": {"alert_type": "malware", "alert_severity": "high"}}}))
        .await;
    let (id, case) = (d["id"].as_str().unwrap().to_string(), d["case_id"].as_str().unwrap().to_string());
    let waiting = {
        let (http, url, agent) = (s.http.clone(), s.at(&format!("/v1/decisions/{id}?wait=30s")), agent.clone());
        tokio::spawn(async move {
            http.get(url).bearer_auth(agent).send().await.unwrap().json::<serde_json::Value>().await.unwrap()
        })
    };
    let body = json!({"reason": "the MCP client cancelled the call"});
    assert_eq!(s.post(&other, &format!("/v1/decisions/{id}/withdraw"), body.clone()).await.0, 404, "not its decision");
    assert_eq!(s.post(&ana, &format!("/v1/decisions/{id}/withdraw"), body.clone()).await.0, 403);
    assert_eq!(s.post(&agent, &format!("/v1/decisions/{id}/withdraw"), json!({"reason": " "})).await.0, 422);
    let (code, w) = s.post(&agent, &format!("/v1/decisions/{id}/withdraw"), body.clone()).await;
    assert_eq!(code, 200, "{w}");
    assert_eq!(
        (w["status"].as_str(), w["final"]["verdict"].as_str(), w["final"]["source"].as_str()),
        (Some("final"), Some("deny"), Some("withdrawn"))
    );
    assert_eq!(w["final"]["receipt"]["verdict"], "deny", "a deny receipt proves the refusal");
    let woke = tokio::time::timeout(std::time::Duration::from_secs(10), waiting).await.unwrap().unwrap();
    assert_eq!(woke["final"]["source"], "withdrawn", "the waiting agent got the answer at once");
    // the case is over for reviewers, and a second withdrawal returns the same
    let (code, answer) = s
        .post(
            &ana,
            &format!("/v1/cases/{case}/decision"),
            json!({"decision": "approve", "rationale": "too late to approve this"}),
        )
        .await;
    assert_eq!((code, answer["code"].as_str()), (409, Some("not_open")));
    let (code, again) = s.post(&agent, &format!("/v1/decisions/{id}/withdraw"), body).await;
    assert_eq!((code, &again["final"]), (200, &w["final"]));
    let (_, events) = s.get(&s.admin, &format!("/v1/cases/{case}/events")).await;
    assert!(events.to_string().contains("case.withdrawn"), "{events}");
}

/// The tool's result is recorded on an allowed decision (by its agent), shown
/// on the case page, bounded at 16 KiB; a pending or denied decision has none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tool_result_is_kept_on_its_allowed_decision() {
    let s = TestServer::with(SOC_POLICY, |_| {}).await;
    let agent = s.key("triage-agent", "agent", &[]).await;
    let other = s.key("other-agent", "agent", &[]).await;
    let (_, pending) = s
        .post(&agent, "/v1/decisions", json!({"action": {"name": "isolate_host", "confidence": 0.9,
            "args": {"host": "srv-1", "host_tags": ["server"]}, "signals": {"alert_type": "malware", "alert_severity": "high"}}}))
        .await;
    let id = pending["id"].as_str().unwrap();
    let (code, p) = s.post(&agent, &format!("/v1/decisions/{id}/result"), json!({"content": "ran"})).await;
    assert_eq!((code, p["code"].as_str()), (409, Some("conflict")), "nothing ran yet");
    let ana = s.key("ana", "reviewer", &["soc_analyst"]).await;
    let (code, _) = s
        .post(
            &ana,
            &format!("/v1/cases/{}/decision", pending["case_id"].as_str().unwrap()),
            json!({"decision": "approve", "rationale": "confirmed beaconing"}),
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(s.post(&other, &format!("/v1/decisions/{id}/result"), json!({"content": "x"})).await.0, 404);
    let content = json!([{"type": "text", "text": "srv-1 isolated from the network"}]);
    let (code, d) =
        s.post(&agent, &format!("/v1/decisions/{id}/result"), json!({"content": content, "is_error": false})).await;
    assert_eq!(code, 200, "{d}");
    assert_eq!(
        (&d["tool_result"]["content"], d["tool_result"]["recorded_by"].as_str()),
        (&content, Some("triage-agent"))
    );
    let big = "x".repeat(40_000);
    let (_, d) = s.post(&agent, &format!("/v1/decisions/{id}/result"), json!({"content": big, "is_error": true})).await;
    assert_eq!(
        (d["tool_result"]["truncated"].as_bool(), d["tool_result"]["is_error"].as_bool()),
        (Some(true), Some(true))
    );
    assert!(d["tool_result"]["content"].as_str().unwrap().len() <= 16 * 1024);
    let (_, verify) = s.get(&s.admin, "/v1/audit/verify").await;
    assert_eq!(verify["ok"], true, "the rewritten decision is in the chain: {verify}");
}

/// The repro of the trust review: when a reviewer's approval and the agent's
/// withdrawal race, the withdrawal answered `200` with `status: "pending"`
/// and no `final` in a few rounds of 50 (its failure was told before the
/// approval's batch committed). Whoever wins, the answer is final.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdrawal_that_loses_the_race_answers_the_final_decision() {
    let s = TestServer::with(SOC_POLICY, |_| {}).await;
    let agent = s.loader("racing-agent").await;
    let ana = s.key("ana", "reviewer", &["soc_analyst"]).await;
    for round in 0..50 {
        let (_, d) = s
            .post(
                &agent,
                "/v1/decisions",
                json!({"action": {"name": "isolate_host", "confidence": 0.9,
                "args": {"host": format!("srv-{round}"), "host_tags": ["server"]},
                "signals": {"alert_type": "malware", "alert_severity": "high"}}}),
            )
            .await;
        let (id, case) = (d["id"].as_str().unwrap().to_string(), d["case_id"].as_str().unwrap().to_string());
        let (answer_path, withdraw_path) =
            (format!("/v1/cases/{case}/decision"), format!("/v1/decisions/{id}/withdraw"));
        let approve =
            s.post(&ana, &answer_path, json!({"decision": "approve", "rationale": "confirmed on the console"}));
        let withdraw = s.post(&agent, &withdraw_path, json!({"reason": "cancelled"}));
        let ((_, _), (code, w)) = tokio::join!(approve, withdraw);
        assert_eq!(code, 200, "round {round}: {w}");
        assert_eq!(w["status"], "final", "round {round}: {w}");
        let source = w["final"]["source"].as_str().unwrap_or_default();
        assert!(source == "withdrawn" || source == "review", "round {round}: {w}");
    }
}
