//! The HTTP API, end to end.

use crate::support::{Server, allowed_action, assert_problem, escalating_action};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn server() -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("arbiter.db"), &["--max-body-bytes", "4096"]);
    (dir, s)
}

#[tokio::test]
async fn allowed_and_escalated_decisions() {
    let (_dir, s) = server();
    let agent = s.key("soc-agent", "agent", &[]).await;
    let r = s.propose(&agent, &allowed_action("A-1"), None).await;
    assert_eq!(r.status(), 201);
    let d: Value = r.json().await.unwrap();
    assert_eq!(d["verdict"], "allow");
    assert_eq!(d["status"], "final");
    assert_eq!(d["agent"], "soc-agent");
    assert_eq!(d["policy_hash"].as_str().unwrap().len(), 64);
    assert!(d["case_id"].is_null());

    let r = s.propose(&agent, &escalating_action(), None).await;
    assert_eq!(r.status(), 201);
    let d: Value = r.json().await.unwrap();
    assert_eq!(d["verdict"], "escalate");
    assert_eq!(d["status"], "pending");
    assert!(d["triggers"].as_array().unwrap().iter().any(|t| t["name"] == "isolate_server"), "{d}");
    assert!(d["triggers"].as_array().unwrap().iter().all(|t| !t["reason"].as_str().unwrap().is_empty()));
    let case_id = d["case_id"].as_str().unwrap();
    let admin = s.admin();
    let case: Value = s
        .http
        .get(s.at(&format!("/v1/cases/{case_id}")))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(case["state"], "open");
    assert_eq!(case["decision_id"], d["id"]);
    let events: Value = s
        .http
        .get(s.at(&format!("/v1/cases/{case_id}/events")))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(events[0]["kind"], "case.opened", "{events}");

    let metrics = s.http.get(s.at("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains(r#"arbiter_decisions_total{verdict="allow",action="close_alert",project="default"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"arbiter_decisions_total{verdict="escalate",action="isolate_host",project="default"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"arbiter_open_cases{project="default"} 1"#), "{metrics}");
    assert!(metrics.contains("arbiter_decision_latency_seconds_bucket"), "{metrics}");
}

#[tokio::test]
async fn idempotent_retry_returns_the_same_decision() {
    let (_dir, s) = server();
    let agent = s.key("soc-agent", "agent", &[]).await;
    let body = escalating_action();
    let first = s.propose(&agent, &body, Some("retry-1")).await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    for _ in 0..3 {
        let again = s.propose(&agent, &body, Some("retry-1")).await;
        assert_eq!(again.status(), 200);
        assert_eq!(again.headers()["idempotent-replayed"], "true");
        let again: Value = again.json().await.unwrap();
        assert_eq!(again["id"], first["id"]);
        assert_eq!(again["case_id"], first["case_id"]);
    }
    // Concurrent retries of a new key still create exactly one decision.
    let mut handles = Vec::new();
    for _ in 0..16 {
        let (http, url, agent, body) = (s.http.clone(), s.at("/v1/decisions"), agent.clone(), body.clone());
        handles.push(tokio::spawn(async move {
            let r =
                http.post(url).bearer_auth(agent).header("idempotency-key", "burst").json(&body).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string())
        }));
    }
    let mut ids = std::collections::BTreeSet::new();
    let mut created = 0;
    for h in handles {
        let (status, id) = h.await.unwrap();
        created += usize::from(status == 201);
        ids.insert(id);
    }
    assert_eq!((ids.len(), created), (1, 1));
    // The same key with another body is a client error, not a silent replay.
    let other = s.propose(&agent, &allowed_action("A-9"), Some("retry-1")).await;
    assert_problem(other, 409, "conflict").await;
    // Another agent may use the same key for its own decision.
    let agent2 = s.key("other-agent", "agent", &[]).await;
    let r = s.propose(&agent2, &body, Some("retry-1")).await;
    assert_eq!(r.status(), 201);
    let open = s.http.get(s.at("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(open.contains(r#"arbiter_open_cases{project="default"} 3"#), "{open}");
}

#[tokio::test]
async fn long_poll_times_out_then_returns_when_decided() {
    let (_dir, s) = server();
    let agent = s.key("soc-agent", "agent", &[]).await;
    let analyst = s.key("alice", "reviewer", &["soc_analyst"]).await;
    let d: Value = s.propose(&agent, &escalating_action(), None).await.json().await.unwrap();
    let id = d["id"].as_str().unwrap().to_string();
    let case_id = d["case_id"].as_str().unwrap().to_string();

    let started = Instant::now();
    let r = s.http.get(s.at(&format!("/v1/decisions/{id}?wait=1s"))).bearer_auth(&agent).send().await.unwrap();
    let waited = started.elapsed();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "pending");
    // It really waited for its second (and then answered, rather than hang).
    assert!(waited >= Duration::from_millis(950), "{waited:?}");

    let poll = {
        let (http, url, agent) = (s.http.clone(), s.at(&format!("/v1/decisions/{id}?wait=30s")), agent.clone());
        tokio::spawn(async move {
            let r = http.get(url).bearer_auth(agent).send().await.unwrap();
            (Instant::now(), r.json::<Value>().await.unwrap())
        })
    };
    s.until_waiting(1).await;
    // An agent can never decide, not even its own case.
    let r = s
        .http
        .post(s.at(&format!("/v1/cases/{case_id}/decision")))
        .bearer_auth(&agent)
        .json(&json!({"decision": "approve", "rationale": "looks fine to me"}))
        .send()
        .await
        .unwrap();
    assert_problem(r, 403, "forbidden").await;
    let short = s
        .http
        .post(s.at(&format!("/v1/cases/{case_id}/decision")))
        .bearer_auth(&analyst)
        .json(&json!({"decision": "approve", "rationale": "ok"}))
        .send()
        .await
        .unwrap();
    assert_eq!(assert_problem(short, 422, "invalid_request").await["field"], "rationale");
    let decided_at = Instant::now();
    let r = s
        .http
        .post(s.at(&format!("/v1/cases/{case_id}/decision")))
        .bearer_auth(&analyst)
        .json(&json!({"decision": "modify", "rationale": "isolate only the workstation, not the server",
            "args": {"host": "ws-0042", "host_tags": ["workstation"]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (returned_at, d) = poll.await.unwrap();
    // woken by the decision, well before its 30 s wait ran out
    assert!(returned_at.saturating_duration_since(decided_at) < Duration::from_secs(15));
    assert_eq!(d["status"], "final");
    assert_eq!(d["final"]["verdict"], "allow");
    assert_eq!(d["final"]["source"], "review");
    assert_eq!(d["final"]["action"]["args"]["host"], "ws-0042");
    assert_eq!(d["final"]["decided_by"][0], "alice");
    assert!(d["final"]["rationale"].as_str().unwrap().contains("workstation"));
    // A final decision answers at once, whatever the wait.
    let started = Instant::now();
    let r = s.http.get(s.at(&format!("/v1/decisions/{id}?wait=30s"))).bearer_auth(&agent).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(15), "it did not wait out its 30 s");
}

#[tokio::test]
async fn every_error_is_problem_json() {
    let (_dir, s) = server();
    let agent = s.key("soc-agent", "agent", &[]).await;
    let reviewer = s.key("bob", "reviewer", &["soc_analyst"]).await;
    let url = s.at("/v1/decisions");
    let post = |key: &str, body: &str, ct: &str| {
        s.http.post(&url).bearer_auth(key).header("content-type", ct).body(body.to_string())
    };

    // 400 malformed JSON
    assert_problem(post(&agent, "{\"action\": ", "application/json").send().await.unwrap(), 400, "malformed_json")
        .await;
    // 422 wrong shape, naming the field
    let b = assert_problem(
        post(&agent, r#"{"action": {"name": "close_alert", "confidence": "high"}}"#, "application/json")
            .send()
            .await
            .unwrap(),
        422,
        "invalid_request",
    )
    .await;
    assert_eq!(b["field"], "action.confidence");
    let b = assert_problem(
        post(&agent, r#"{"action": {"name": "close_alert", "confidence": 1.5}}"#, "application/json")
            .send()
            .await
            .unwrap(),
        422,
        "invalid_request",
    )
    .await;
    assert_eq!(b["field"], "action.confidence");
    let b = assert_problem(
        post(&agent, r#"{"action": {"name": "x"}, "surprise": 1}"#, "application/json").send().await.unwrap(),
        422,
        "invalid_request",
    )
    .await;
    assert!(b["detail"].as_str().unwrap().contains("surprise"), "{b}");
    let b = assert_problem(
        post(&agent, r#"{"action": {"name": ""}}"#, "application/json").send().await.unwrap(),
        422,
        "invalid_request",
    )
    .await;
    assert_eq!(b["field"], "action.name");
    // 413 over the configured limit (4096 bytes here)
    let big = format!(r#"{{"action": {{"name": "close_alert", "args": {{"blob": "{}"}}}}}}"#, "x".repeat(10_000));
    assert_problem(post(&agent, &big, "application/json").send().await.unwrap(), 413, "payload_too_large").await;
    // 415 wrong content type
    assert_problem(post(&agent, "{}", "text/plain").send().await.unwrap(), 415, "unsupported_media_type").await;
    // 401 missing, malformed and unknown keys
    let r = s.http.post(&url).json(&allowed_action("A")).send().await.unwrap();
    assert!(r.headers().contains_key("www-authenticate"));
    assert_problem(r, 401, "unauthorized").await;
    assert_problem(post("not-a-key", "{}", "application/json").send().await.unwrap(), 401, "unauthorized").await;
    // flip the last hex digit, so the forged key always differs from the real one
    let last = if agent.ends_with('0') { '1' } else { '0' };
    let forged = format!("{}{last}", &agent[..agent.len() - 1]);
    assert_ne!(forged, agent);
    assert_problem(post(&forged, "{}", "application/json").send().await.unwrap(), 401, "unauthorized").await;
    // 403 wrong role
    assert_problem(s.propose(&reviewer, &allowed_action("A"), None).await, 403, "forbidden").await;
    assert_problem(s.http.get(s.at("/v1/keys")).bearer_auth(&agent).send().await.unwrap(), 403, "forbidden").await;
    assert_problem(
        s.http.put(s.at("/v1/policy")).bearer_auth(&reviewer).body("x").send().await.unwrap(),
        403,
        "forbidden",
    )
    .await;
    // 404 unknown decision, case, route; another agent's decision is invisible
    let missing = "0190aaaa-0000-7000-8000-000000000000";
    assert_problem(
        s.http.get(s.at(&format!("/v1/decisions/{missing}"))).bearer_auth(&agent).send().await.unwrap(),
        404,
        "not_found",
    )
    .await;
    assert_problem(
        s.http.get(s.at(&format!("/v1/cases/{missing}"))).bearer_auth(&reviewer).send().await.unwrap(),
        404,
        "not_found",
    )
    .await;
    assert_problem(s.http.get(s.at("/v1/nothing-here")).send().await.unwrap(), 404, "not_found").await;
    let mine: Value = s.propose(&agent, &allowed_action("A-2"), None).await.json().await.unwrap();
    let other = s.key("other-agent", "agent", &[]).await;
    let r = s
        .http
        .get(s.at(&format!("/v1/decisions/{}", mine["id"].as_str().unwrap())))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_problem(r, 404, "not_found").await;
    // 405
    assert_problem(s.http.delete(&url).bearer_auth(&agent).send().await.unwrap(), 405, "method_not_allowed").await;
    // a bad wait
    let r = s
        .http
        .get(s.at(&format!("/v1/decisions/{}?wait=soon", mine["id"].as_str().unwrap())))
        .bearer_auth(&agent)
        .send()
        .await
        .unwrap();
    assert_eq!(assert_problem(r, 422, "invalid_request").await["field"], "wait");

    // Hostile input never crashes the server: deep nesting, odd unicode, huge numbers.
    let deep = format!(
        "{{\"action\": {{\"name\": \"close_alert\", \"args\": {{\"a\": {}1{}}}}}}}",
        "[".repeat(200),
        "]".repeat(200)
    );
    let r = post(&agent, &deep, "application/json").send().await.unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    let weird = json!({"action": {"name": "close_alert\u{0}<script>", "args": {"n": 1e308, "s": "\u{202e}"}}});
    let r = s.propose(&agent, &weird, None).await;
    assert!(r.status().is_client_error() || r.status().is_success(), "{}", r.status());
    assert_eq!(s.http.get(s.at("/healthz")).send().await.unwrap().status(), 200);
    assert_eq!(s.http.get(s.at("/readyz")).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn policy_versions_are_stored_and_activated() {
    let (_dir, s) = server();
    let admin = s.admin();
    let active: Value = s.http.get(s.at("/v1/policy")).bearer_auth(admin).send().await.unwrap().json().await.unwrap();
    assert_eq!(active["name"], "soc-triage");
    assert!(active["triggers"].as_u64().unwrap() >= 40);

    let bad = "version: 1\npolicy: broken\nactions:\n  close_alert:\n    auto_allow_at: 2\ntriggers:\n  - name: t\n    actions: [close_alert]\n    when: 'args.x >'\n    verdict: deny\n";
    let r = s
        .http
        .put(s.at("/v1/policy"))
        .bearer_auth(admin)
        .header("content-type", "application/yaml")
        .body(bad)
        .send()
        .await
        .unwrap();
    let b = assert_problem(r, 422, "invalid_policy").await;
    let errors = b["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{b}");
    assert!(errors.iter().all(|e| e["line"].as_u64().is_some() && e["column"].as_u64().is_some()), "{b}");

    let strict = "version: 1\npolicy: strict\ndescription: everything waits\ndefaults:\n  reviewers: [soc_analyst]\n";
    let r = s
        .http
        .put(s.at("/v1/policy"))
        .bearer_auth(admin)
        .header("content-type", "application/yaml")
        .body(strict)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["name"], "strict");
    // The same source again is the same version.
    let r = s
        .http
        .put(s.at("/v1/policy"))
        .bearer_auth(admin)
        .header("content-type", "application/yaml")
        .body(strict)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let versions: Value =
        s.http.get(s.at("/v1/policy/versions")).bearer_auth(admin).send().await.unwrap().json().await.unwrap();
    assert_eq!(versions.as_array().unwrap().len(), 2, "{versions}");
    // Decisions now name the new version.
    let agent = s.key("soc-agent", "agent", &[]).await;
    let d: Value = s.propose(&agent, &allowed_action("A-3"), None).await.json().await.unwrap();
    assert_eq!(d["policy_hash"], v["hash"]);
    assert_eq!(d["verdict"], "escalate");
    let old = versions.as_array().unwrap().iter().find(|x| x["name"] == "soc-triage").unwrap();
    let r: Value = s
        .http
        .get(s.at(&format!("/v1/policy/versions/{}", old["hash"].as_str().unwrap())))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["active"], false);
    assert!(r["source"].as_str().unwrap().contains("soc-triage"));
}

#[tokio::test]
async fn keys_through_the_api() {
    let (_dir, s) = server();
    let admin = s.admin();
    let agent = s.key("soc-agent", "agent", &[]).await;
    let keys: Value = s.http.get(s.at("/v1/keys")).bearer_auth(admin).send().await.unwrap().json().await.unwrap();
    let listed = keys.to_string();
    assert!(!listed.contains(&agent[20..]), "secrets are never listed");
    let id = agent.split('_').nth(1).unwrap();
    assert_eq!(s.propose(&agent, &allowed_action("A"), None).await.status(), 201);
    let r = s.http.delete(s.at(&format!("/v1/keys/{id}"))).bearer_auth(admin).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_problem(s.propose(&agent, &allowed_action("B"), None).await, 401, "unauthorized").await;
    let r = s
        .http
        .post(s.at("/v1/keys"))
        .bearer_auth(admin)
        .json(&json!({"name": "x", "role": "root"}))
        .send()
        .await
        .unwrap();
    assert_eq!(assert_problem(r, 422, "invalid_request").await["field"], "role");
}

#[tokio::test]
async fn openapi_is_served() {
    let (_dir, s) = server();
    let doc: Value = s.http.get(s.at("/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert!(doc["paths"]["/v1/decisions"]["post"].is_object());
    // What the server sends matches what the document promises.
    let agent = s.key("soc-agent", "agent", &[]).await;
    let d: Value = s.propose(&agent, &escalating_action(), None).await.json().await.unwrap();
    let case: Value = s
        .http
        .get(s.at(&format!("/v1/cases/{}", d["case_id"].as_str().unwrap())))
        .bearer_auth(s.admin())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key: Value = s.http.get(s.at("/v1/keys")).bearer_auth(s.admin()).send().await.unwrap().json().await.unwrap();
    for (schema, value) in [
        ("Decision", &d),
        ("Case", &case),
        ("KeyRecord", &key[0]),
        ("Escalation", &d["escalation"]),
        ("Action", &d["action"]),
    ] {
        let sch = &doc["components"]["schemas"][schema];
        let props = sch["properties"].as_object().unwrap();
        for k in value.as_object().unwrap().keys() {
            assert!(props.contains_key(k), "{schema}.{k} is sent but not documented");
        }
        for r in sch["required"].as_array().unwrap() {
            assert!(value.get(r.as_str().unwrap()).is_some(), "{schema}.{r} is required but not sent: {value}");
        }
    }
}
