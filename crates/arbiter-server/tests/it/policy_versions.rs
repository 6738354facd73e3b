use crate::support::{POLICY, TestServer};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backtest_a_stored_version_then_roll_back() {
    let s = TestServer::start().await;
    let agent = s.key("soc-agent", "agent", &[]).await;
    // history: close_alert at several confidences, with outcomes
    for (i, (conf, ok)) in [(0.95, true), (0.92, false), (0.85, true), (0.8, false), (0.99, true)].iter().enumerate() {
        let (code, d) = s
            .post(
                &agent,
                "/v1/decisions",
                json!({"action": {"name": "close_alert", "confidence": conf, "args": {"alert_id": format!("A-{i}")}}}),
            )
            .await;
        assert_eq!(code, 201, "{d}");
        let (code, _) = s
            .post(&agent, &format!("/v1/decisions/{}/outcome", d["id"].as_str().unwrap()), json!({"correct": ok}))
            .await;
        assert_eq!(code, 200);
    }
    let original = s.get(&s.admin, "/v1/policy").await.1["hash"].as_str().unwrap().to_string();
    let stricter = POLICY.replace("auto_allow_at: 0.9", "auto_allow_at: 0.97");
    let put = |q: &'static str| {
        s.http
            .put(s.at(&format!("/v1/policy{q}")))
            .bearer_auth(&s.admin)
            .header("content-type", "application/yaml")
            .body(stricter.clone())
            .send()
    };
    // 2 of the 5 recent verdicts change: more than the 20% guard, so it must be confirmed
    let r = put("").await.unwrap();
    assert_eq!(r.status(), 409);
    let p: Value = r.json().await.unwrap();
    assert_eq!((p["impact"]["changed"].as_u64(), p["impact"]["replayed"].as_u64()), (Some(2), Some(5)), "{p}");
    let r = put("?force=true").await.unwrap();
    assert_eq!(r.status(), 201);
    let stricter_hash = r.json::<Value>().await.unwrap()["hash"].as_str().unwrap().to_string();
    // backtest the stricter version against the original one
    let (code, bt) =
        s.post(&s.admin, &format!("/v1/policy/versions/{stricter_hash}/backtest"), json!({"against": original})).await;
    assert_eq!(code, 200, "{bt}");
    assert_eq!(bt["new"]["decisions"], 5);
    assert_eq!(bt["new"]["allowed"], 1);
    assert_eq!(bt["current"]["allowed"], 3);
    assert_eq!(bt["current"]["errors_missed"], 1);
    assert_eq!(bt["new"]["errors_missed"], 0);
    assert_eq!(bt["changed"], 2);
    assert_eq!(bt["changes"][0]["from"], "allow");
    assert_eq!(bt["changes"][0]["wrong"], 1);
    // roll back to the original
    let (code, v) = s.post(&s.admin, &format!("/v1/policy/versions/{original}/activate"), json!({})).await;
    assert_eq!((code, v["code"].as_str()), (409, Some("policy_change_unconfirmed")), "{v}");
    let (code, v) = s.post(&s.admin, &format!("/v1/policy/versions/{original}/activate?force=true"), json!({})).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(s.get(&s.admin, "/v1/policy").await.1["hash"], original);
    let (_, d) = s.post(&agent, "/v1/decisions", json!({"action": {"name": "close_alert", "confidence": 0.93}})).await;
    assert_eq!((d["verdict"].as_str(), d["policy_hash"].as_str()), (Some("allow"), Some(original.as_str())));
    // the activations are in the audit log, each naming the version it replaced
    let (_, events) = s.get(&s.admin, "/v1/audit/events?after=0&limit=100").await;
    let acts: Vec<&Value> = events.as_array().unwrap().iter().filter(|e| e["kind"] == "policy.activated").collect();
    assert_eq!(acts.len(), 3);
    assert_eq!(acts[2]["data"]["hash"], original);
    assert_eq!(acts[2]["data"]["previous"], stricter_hash);
    // only admins activate; unknown versions are 404
    let reviewer = s.key("ann", "reviewer", &["soc_analyst"]).await;
    assert_eq!(s.post(&reviewer, &format!("/v1/policy/versions/{original}/activate"), json!({})).await.0, 403);
    assert_eq!(s.post(&s.admin, &format!("/v1/policy/versions/{}/activate", "0".repeat(64)), json!({})).await.0, 404);
}

/// `POST /v1/policy/always-denied`: agents may ask which of their tools the
/// policy refuses whatever the call; only those come back, in the order asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_learn_which_actions_are_always_denied() {
    let policy = include_str!("../../../../examples/policies/mcp.yaml");
    let s = TestServer::with(policy, |_| {}).await;
    let agent = s.key("ide-agent", "agent", &[]).await;
    let names = json!({"actions": ["fs.write_file", "everything.get-env", "fs.read_text_file", "unknown.tool"]});
    let (code, body) = s.post(&agent, "/v1/policy/always-denied", names).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["actions"], json!(["everything.get-env"]));
    assert_eq!(body["policy_hash"].as_str().unwrap().len(), 64);
    let many: Vec<String> = (0..1001).map(|i| format!("t{i}")).collect();
    let (code, body) = s.post(&agent, "/v1/policy/always-denied", json!({"actions": many})).await;
    assert_eq!(code, 422, "{body}");
    assert_eq!(body["code"], "invalid_request");
}
