use crate::support::{TestServer, isolate};
use arbiter_server::app::sla::sweep_once;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_lists_most_urgent_first_with_reasons() {
    let s = TestServer::start().await;
    let agent = s.key("soc-agent", "agent", &[]).await;
    let ann = s.key("ann", "reviewer", &["soc_analyst"]).await;
    let ux = s.key("uma", "reviewer", &["ux"]).await;
    let (_, calm) = s.escalate(&agent, isolate("ws-1", &["workstation"], 0.8)).await;
    let (_, unsure) = s.escalate(&agent, isolate("ws-2", &["workstation"], 0.3)).await;
    let (_, critical) = s.escalate(&agent, isolate("db-1", &["crown_jewel"], 0.9)).await;
    let (status, q) = s.get(&ann, "/v1/queue").await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = q["items"].as_array().unwrap().iter().map(|i| i["case"]["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [critical.as_str(), unsure.as_str(), calm.as_str()]);
    assert_eq!(q["items"][0]["reasons"][0], "severity critical");
    assert_eq!(q["items"][1]["reasons"][2], "agent confidence 0.30");
    // the UX researcher is not on the SOC tiers; agents have no queue
    let (_, q) = s.get(&ux, "/v1/queue").await;
    assert_eq!(q["items"].as_array().unwrap().len(), 0);
    assert_eq!(s.get(&agent, "/v1/queue").await.0, 403);
    // a claimed case leaves other reviewers' queues
    let bob = s.key("bob", "reviewer", &["soc_analyst"]).await;
    assert_eq!(s.post(&ann, &format!("/v1/cases/{critical}/claim"), json!({})).await.0, 200);
    let (_, q) = s.get(&bob, "/v1/queue").await;
    assert_eq!(q["items"].as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_reviewers_never_hold_one_case_together() {
    let s = TestServer::start().await;
    let agent = s.key("soc-agent", "agent", &[]).await;
    let (_, case) = s.escalate(&agent, isolate("ws-1", &["workstation"], 0.8)).await;
    let mut keys = Vec::new();
    for i in 0..32 {
        keys.push(s.key(&format!("rev{i}"), "reviewer", &["soc_analyst"]).await);
    }
    let mut tasks = Vec::new();
    for k in keys.clone() {
        let (http, url) = (s.http.clone(), s.at(&format!("/v1/cases/{case}/claim")));
        tasks.push(tokio::spawn(async move { http.post(url).bearer_auth(k).send().await.unwrap().status().as_u16() }));
    }
    let mut codes = Vec::new();
    for t in tasks {
        codes.push(t.await.unwrap());
    }
    assert_eq!(codes.iter().filter(|c| **c == 200).count(), 1, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 409).count(), 31, "{codes:?}");
    // only the holder decides
    let holder = s.get(&s.admin, &format!("/v1/cases/{case}")).await.1["claim"]["by"].as_str().unwrap().to_string();
    let idx: usize = holder.trim_start_matches("rev").parse().unwrap();
    let other = &keys[(idx + 1) % 32];
    let body = json!({"decision": "approve", "rationale": "confirmed malware on the host"});
    assert_eq!(s.post(other, &format!("/v1/cases/{case}/decision"), body.clone()).await.0, 409);
    // the lease runs out (10 minutes by default): the case returns to the queue
    s.advance(Duration::from_secs(10 * 60));
    sweep_once(&s.state).await.unwrap();
    let (_, c) = s.get(&s.admin, &format!("/v1/cases/{case}")).await;
    assert_eq!(c["state"], "open");
    assert_eq!(s.post(other, &format!("/v1/cases/{case}/claim"), json!({"lease": "2m"})).await.0, 200);
    let (status, out) = s.post(other, &format!("/v1/cases/{case}/decision"), body).await;
    assert_eq!(status, 200, "{out}");
    let events: Vec<String> = s
        .get(&s.admin, &format!("/v1/cases/{case}/events"))
        .await
        .1
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        events,
        ["case.opened", "case.claimed", "case.lease_expired", "case.claimed", "case.answered", "case.decided"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sla_expiry_moves_to_tier_two_then_applies_the_fallback() {
    let s = TestServer::start().await;
    let agent = s.key("soc-agent", "agent", &[]).await;
    let ann = s.key("ann", "reviewer", &["soc_analyst"]).await;
    let lead = s.key("lee", "reviewer", &["soc_lead"]).await;
    let (did, case) = s.escalate(&agent, isolate("ws-1", &["workstation"], 0.8)).await;
    s.advance(Duration::from_secs(15 * 60 - 1));
    assert_eq!(sweep_once(&s.state).await.unwrap(), 0);
    s.advance(Duration::from_secs(1));
    assert_eq!(sweep_once(&s.state).await.unwrap(), 1);
    let (_, c) = s.get(&s.admin, &format!("/v1/cases/{case}")).await;
    assert_eq!(c["tier"], 1);
    // tier two belongs to the lead; the analyst no longer sees or answers it
    assert_eq!(s.get(&ann, "/v1/queue").await.1["items"].as_array().unwrap().len(), 0);
    let (_, q) = s.get(&lead, "/v1/queue").await;
    assert!(q["items"][0]["reasons"].as_array().unwrap().iter().any(|r| r == "escalated to tier 2"), "{q}");
    let (code, _) = s
        .post(
            &ann,
            &format!("/v1/cases/{case}/decision"),
            json!({"decision": "approve", "rationale": "looks right to me"}),
        )
        .await;
    assert_eq!(code, 403);
    // the agent waits; the fallback answers it as soon as the sweeper applies it
    let poll = s.poll(&agent, &did, 30);
    s.until_waiting(1).await;
    s.advance(Duration::from_secs(10 * 60));
    let swept = Instant::now();
    assert_eq!(sweep_once(&s.state).await.unwrap(), 1);
    let (returned, d) = poll.await.unwrap();
    // woken by the fallback, not by its 30 s running out
    assert!(returned.duration_since(swept) < Duration::from_secs(15), "{:?}", returned.duration_since(swept));
    assert_eq!(d["final"]["verdict"], "deny");
    assert_eq!(d["final"]["source"], "sla_expired");
    let kinds: Vec<String> = s
        .get(&s.admin, &format!("/v1/cases/{case}/events"))
        .await
        .1
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["case.opened", "case.tier_escalated", "case.fallback_applied"]);
    let (_, v) = s.get(&s.admin, "/v1/audit/verify").await;
    assert_eq!(v["ok"], true, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_approvals_and_the_waiting_agent_gets_the_modified_action() {
    let s = TestServer::start().await;
    let agent = s.key("soc-agent", "agent", &[]).await;
    let ann = s.key("ann", "reviewer", &["soc_analyst"]).await;
    let bob = s.key("bob", "reviewer", &["soc_analyst"]).await;
    let (did, case) = s.escalate(&agent, isolate("db-1", &["crown_jewel"], 0.9)).await;
    let poll = s.poll(&agent, &did, 30);
    s.until_waiting(1).await;
    let (code, r) = s
        .post(
            &ann,
            &format!("/v1/cases/{case}/decision"),
            json!({"decision": "modify", "rationale": "network-only isolation keeps the DB replicating",
                   "args": {"host": "db-1", "host_tags": ["crown_jewel"], "mode": "network_only"}, "failure_modes": ["none"]}),
        )
        .await;
    assert_eq!(code, 200, "{r}");
    assert!(r["decision"].is_null(), "one of two approvals");
    assert_eq!(
        s.post(
            &ann,
            &format!("/v1/cases/{case}/decision"),
            json!({"decision": "approve", "rationale": "approving twice, sneaky"})
        )
        .await
        .0,
        409
    );
    assert!(!poll.is_finished(), "the agent still waits after one approval of two");
    assert_eq!(s.waiting_agents(), 1.0);
    let decided = Instant::now();
    let (code, _) = s
        .post(
            &bob,
            &format!("/v1/cases/{case}/decision"),
            json!({"decision": "approve", "rationale": "agreed, network-only is enough"}),
        )
        .await;
    assert_eq!(code, 200);
    let (returned, d) = poll.await.unwrap();
    // woken by the decision, not by its 30 s running out
    assert!(returned.duration_since(decided) < Duration::from_secs(15), "{:?}", returned.duration_since(decided));
    assert_eq!(d["final"]["verdict"], "allow");
    assert_eq!(d["final"]["action"]["args"]["mode"], "network_only");
    assert_eq!(d["final"]["decided_by"], json!(["ann", "bob"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_review_case_through_four_stages() {
    let s = TestServer::start().await;
    let agent = s.key("soc-agent", "agent", &[]).await;
    let eng = s.key("eve", "reviewer", &["engineering"]).await;
    let ds = s.key("dan", "reviewer", &["data_science"]).await;
    let pm = s.key("pat", "reviewer", &["product"]).await;
    let (did, case) = s.escalate(&agent, isolate("ws-9", &["workstation"], 0.7)).await;
    let (code, r) = s
        .post(&eng, "/v1/reviews", json!({"title": "Isolated a workstation on a benign alert", "from_case": case}))
        .await;
    assert_eq!(code, 201, "{r}");
    let rid = r["id"].as_str().unwrap().to_string();
    assert_eq!(r["review"]["source"], "case");
    assert_eq!(r["review"]["decision_ids"], json!([did]));
    let (_, view) = s.get(&eng, &format!("/v1/reviews/{rid}")).await;
    assert_eq!(view["missing"].as_array().unwrap().len(), 4);
    assert_eq!(view["chain"][0]["id"], did);
    let stages = format!("/v1/reviews/{rid}/stages");
    let stage = |body: Value| s.post(&eng, &stages, body);
    let (code, e) = stage(
        json!({"stage": "contextual_analysis", "role": "engineering", "rationale": "replayed the alert in staging",
        "reproduced": "yes", "steps": ["replay alert A-1"], "environment": "staging", "links": [{"decision_id": did}]}),
    )
    .await;
    assert_eq!(code, 201, "{e}");
    let (code, e) =
        stage(json!({"stage": "trace_inspection", "role": "engineering", "rationale": "the tool call chain shows it",
        "findings": [{"decision_id": "nope", "kind": "wrong_action", "note": "x"}]}))
        .await;
    assert_eq!((code, e["field"].as_str()), (422, Some("record")), "unknown decisions are refused");
    let (code, _) =
        stage(json!({"stage": "trace_inspection", "role": "engineering", "rationale": "the tool call chain shows it",
        "findings": [{"decision_id": did, "kind": "misread_intent", "note": "took a benign alert for malware"}]}))
        .await;
    assert_eq!(code, 201);
    let (code, _) = stage(
        json!({"stage": "impact_assessment", "role": "data_science", "rationale": "counted from the decision log",
        "severity": "S3", "scope": {"count": 1, "entities": [{"kind": "host", "id": "ws-9"}]},
        "technical_correctness": "wrong action", "user_experience": "one employee offline 20 minutes"}),
    )
    .await;
    assert_eq!(code, 403, "eve cannot speak for data science");
    let (code, _) = s
        .post(
            &ds,
            &format!("/v1/reviews/{rid}/stages"),
            json!({"stage": "impact_assessment", "role": "data_science", "rationale": "counted from the decision log",
        "severity": "S3", "scope": {"count": 1, "entities": [{"kind": "host", "id": "ws-9"}]},
        "technical_correctness": "wrong action", "user_experience": "one employee offline 20 minutes"}),
        )
        .await;
    assert_eq!(code, 201);
    let (code, _) = s
        .post(
            &pm,
            &format!("/v1/cases/{rid}/comments"),
            json!({"role": "product", "text": "users want a heads-up before isolation"}),
        )
        .await;
    assert_eq!(code, 200);
    let (code, e) = s.post(&eng, &format!("/v1/reviews/{rid}/close"), json!({"reason": "not yet, surely"})).await;
    assert_eq!(code, 409, "{e}");
    assert!(e["detail"].as_str().unwrap().contains("an entry for the resolution design"), "{e}");
    let (code, _) = stage(json!({"stage": "resolution_design", "role": "engineering", "rationale": "a confirmation step prevents this class of error",
        "interventions": [{"kind": "tool_change", "description": "confirm before isolate_host", "owner": "eve", "expected_effect": "no isolation on benign alerts"}]})).await;
    assert_eq!(code, 201);
    let (code, _) = s
        .post(
            &eng,
            &format!("/v1/reviews/{rid}/interventions/0"),
            json!({"status": "done", "note": "shipped in tools v3"}),
        )
        .await;
    assert_eq!(code, 200);
    // a tool change closes only once the policy version carrying it is linked and backtested on the review's decisions
    let close_path = format!("/v1/reviews/{rid}/close");
    let close = |reason: &'static str| s.post(&eng, &close_path, json!({"reason": reason}));
    let (code, e) = close("fixed by a confirmation step").await;
    assert_eq!(code, 409, "{e}");
    assert!(e["detail"].as_str().unwrap().contains("linked to the policy version"), "{e}");
    let (_, active) = s.get(&s.admin, "/v1/policy").await;
    let hash = active["hash"].as_str().unwrap().to_string();
    let (code, e) =
        s.post(&eng, &format!("/v1/reviews/{rid}/interventions/0"), json!({"policy_version": "f".repeat(64)})).await;
    assert_eq!((code, e["field"].as_str()), (422, Some("policy_version")), "{e}");
    let (code, _) = s.post(&eng, &format!("/v1/reviews/{rid}/interventions/0"), json!({"policy_version": hash})).await;
    assert_eq!(code, 200);
    let (code, e) = close("fixed by a confirmation step").await;
    assert_eq!(code, 409, "{e}");
    let (code, checked) = s.post(&eng, &format!("/v1/reviews/{rid}/interventions/0/check"), json!({})).await;
    assert_eq!(code, 200, "{checked}");
    let check = &checked["review"]["interventions"][0]["check"];
    assert_eq!((check["decisions"].clone(), check["still_allowed"].clone()), (json!([did]), json!([])), "{check}");
    let (code, c) = close("fixed by a confirmation step").await;
    assert_eq!(code, 200, "{c}");
    assert_eq!(c["state"], "closed");
    let (_, list) = s.get(&eng, "/v1/cases?kind=review&state=closed").await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    let (_, v) = s.get(&s.admin, "/v1/audit/verify").await;
    assert_eq!(v["ok"], true, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_thousand_agents_wait_at_once_and_all_wake_on_the_decision() {
    let s = TestServer::start().await;
    let agent = s.key("soc-agent", "agent", &[]).await;
    let ann = s.key("ann", "reviewer", &["soc_analyst"]).await;
    let (did, case) = s.escalate(&agent, isolate("ws-1", &["workstation"], 0.8)).await;
    // Each waiter holds its own connection; no thread is spent per waiter.
    let mut waiters = Vec::new();
    for _ in 0..3000 {
        let http = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
        let (url, agent) = (s.at(&format!("/v1/decisions/{did}?wait=60s")), agent.clone());
        waiters.push(tokio::spawn(async move {
            http.get(url).bearer_auth(agent).send().await.unwrap().json::<Value>().await.unwrap()
        }));
    }
    // wait until they are all parked on the decision
    s.until_waiting(3000).await;
    let decided = Instant::now();
    let (code, _) = s
        .post(
            &ann,
            &format!("/v1/cases/{case}/decision"),
            json!({"decision": "approve", "rationale": "confirmed on the EDR console"}),
        )
        .await;
    assert_eq!(code, 200);
    for w in waiters {
        assert_eq!(w.await.unwrap()["status"], "final");
    }
    // all woken by the decision, well before their 60 s wait ran out
    assert!(decided.elapsed() < Duration::from_secs(30), "{:?}", decided.elapsed());
}
