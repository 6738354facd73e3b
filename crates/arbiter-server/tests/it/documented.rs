//! Behaviour the documentation promises, each pinned by a test.

use crate::support::{POLICY, TestServer, isolate};
use arbiter_server::app::sla::sweep_once;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_condition_that_errors_counts_as_not_fired_and_is_listed() {
    let policy = "version: 1\npolicy: p\nactions:\n  disable_user:\n    auto_allow_at: 0.5\ntriggers:
  - name: no_admins
    actions: [disable_user]
    when: 'args.user.startsWith(\"adm\")'
    verdict: deny
";
    let s = TestServer::with(policy, |_| {}).await;
    let agent = s.key("agent", "agent", &[]).await;
    // no `user` argument: the deny condition cannot be evaluated, so it does not fire
    let (code, d) =
        s.post(&agent, "/v1/decisions", json!({"action": {"name": "disable_user", "confidence": 0.9}})).await;
    assert_eq!(code, 201);
    assert_eq!(d["verdict"], "allow", "{d}");
    assert!(d["triggers"].as_array().unwrap().is_empty());
    let errors = d["condition_errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{d}");
    assert!(errors[0].as_str().unwrap().starts_with("no_admins:"), "{d}");
    // with the argument it fires
    let (_, d) = s
        .post(
            &agent,
            "/v1/decisions",
            json!({"action": {"name": "disable_user", "confidence": 0.9, "args": {"user": "admin1"}}}),
        )
        .await;
    assert_eq!(d["verdict"], "deny");
    assert!(d.get("condition_errors").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_policy_the_server_is_unavailable_not_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(arbiter_store::SqliteStore::open(dir.path().join("a.db")).unwrap());
    let clock = Arc::new(arbiter_core::ManualClock::new(arbiter_core::Timestamp(1_800_000_000_000)));
    let state = arbiter_server::AppState::new(store.clone(), Default::default(), clock.clone()).await.unwrap();
    let key = arbiter_server::app::keys::generate_key(
        "agent",
        arbiter_core::Role::Agent,
        Default::default(),
        arbiter_core::Clock::now(clock.as_ref()),
    )
    .unwrap();
    arbiter_store::KeyStore::create_key(store.as_ref(), key.record).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(arbiter_server::serve(listener, state, async {
        let _ = rx.await;
    }));
    let http = reqwest::Client::new();
    let r = http.get(format!("{url}/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let r = http
        .post(format!("{url}/v1/decisions"))
        .bearer_auth(&key.secret)
        .json(&json!({"action": {"name": "x", "confidence": 1.0}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["code"], "unavailable");
    assert!(p["detail"].as_str().unwrap().contains("PUT /v1/policy"), "{p}");
    let _ = tx.send(());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_internal_error_hides_its_details() {
    let s = TestServer::start().await;
    let agent = s.key("agent", "agent", &[]).await;
    let (_, case) = s.escalate(&agent, isolate("ws-1", &["workstation"], 0.5)).await;
    // a corrupt row: the store cannot read it back
    let raw = edit_store(&s, &format!("UPDATE cases SET body = '{{\"broken' WHERE id = '{case}'"));
    assert_eq!(raw, 1);
    let r = s.http.get(s.at(&format!("/v1/cases/{case}"))).bearer_auth(&s.admin).send().await.unwrap();
    assert_eq!(r.status(), 500);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["code"], "internal");
    let detail = p["detail"].as_str().unwrap();
    assert!(!detail.contains("EOF") && !detail.contains("broken") && detail.contains("server log"), "{detail}");
}

/// Edit the store's file directly (as an operator or attacker would); returns rows changed.
fn edit_store(s: &TestServer, sql: &str) -> usize {
    rusqlite::Connection::open(s.dir.path().join("arbiter.db")).unwrap().execute(sql, []).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_revoked_in_the_store_stops_within_the_cache_window_with_its_sessions() {
    let s = TestServer::with(POLICY, |c| c.key_cache_ttl = Duration::from_millis(200)).await;
    let ann = s.key("ann", "reviewer", &["soc_analyst"]).await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = http.post(s.at("/login")).form(&[("key", ann.as_str()), ("next", "/queue")]).send().await.unwrap();
    let cookie = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    assert_eq!(http.get(s.at("/queue")).header("cookie", &cookie).send().await.unwrap().status(), 200);
    assert_eq!(s.get(&ann, "/v1/queue").await.0, 200);
    // revoked behind the server's back (as `arbiter keys revoke` does, on the store)
    let id = ann.split('_').nth(1).unwrap();
    assert!(arbiter_store::KeyStore::revoke_key(s.state.store.as_ref(), id, s.state.clock.now()).await.unwrap());
    let started = std::time::Instant::now();
    while s.get(&ann, "/v1/queue").await.0 != 401 {
        assert!(started.elapsed() < Duration::from_secs(5), "still accepted after the cache window");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let page = http.get(s.at("/queue")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(page.status(), 303, "the console session ended with the key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_announce_tier_escalations() {
    let s = TestServer::with(POLICY, |c| c.outbound.allow_private = true).await;
    let seen: Arc<std::sync::Mutex<Vec<(axum::http::HeaderMap, Value)>>> = Arc::default();
    let s2 = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |h: axum::http::HeaderMap, body: axum::body::Bytes| {
            let seen = s2.clone();
            async move {
                seen.lock().unwrap().push((h, serde_json::from_slice(&body).unwrap()));
                axum::http::StatusCode::OK
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    let (code, _) = s.post(&s.admin, "/v1/webhooks", json!({"url": url, "events": ["case.tier_escalated"]})).await;
    assert_eq!(code, 201);
    let agent = s.key("agent", "agent", &[]).await;
    let (_, case) = s.escalate(&agent, isolate("ws-1", &["workstation"], 0.5)).await;
    s.advance(Duration::from_secs(15 * 60));
    assert_eq!(sweep_once(&s.state).await.unwrap(), 1);
    let client = arbiter_server::jobs::webhook_delivery::client(
        Duration::from_secs(5),
        Arc::new(s.state.config.outbound.clone()),
    );
    assert_eq!(arbiter_server::jobs::webhook_delivery::deliver_due(&s.state, &client).await.unwrap(), 1);
    let got = seen.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    let (headers, body) = &got[0];
    assert_eq!(body["type"], "case.tier_escalated");
    assert_eq!(body["event"]["case_id"], case);
    assert_eq!(headers["arbiter-delivery"].to_str().unwrap(), body["delivery_id"].to_string());
    assert!(body["summary"].as_str().unwrap().contains("tier 2"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_input_is_bounded() {
    let s = TestServer::with(POLICY, |c| c.max_wait = Duration::from_secs(1)).await;
    let agent = s.key("agent", "agent", &[]).await;
    let reviewer = s.key("ann", "reviewer", &["soc_analyst"]).await;
    let field_of = |v: &Value| v["field"].as_str().unwrap_or_default().to_string();
    // names up to 128 bytes
    let ok_name = "a".repeat(128);
    assert_eq!(s.post(&agent, "/v1/decisions", json!({"action": {"name": ok_name}})).await.0, 201);
    let (code, e) = s.post(&agent, "/v1/decisions", json!({"action": {"name": "a".repeat(129)}})).await;
    assert_eq!((code, field_of(&e)), (422, "action.name".into()));
    // nesting up to 16 levels
    let nest = |depth: usize| (0..depth).fold(json!(1), |v, _| json!([v]));
    assert_eq!(s.post(&agent, "/v1/decisions", json!({"action": {"name": "x", "args": {"d": nest(15)}}})).await.0, 201);
    let (code, e) = s.post(&agent, "/v1/decisions", json!({"action": {"name": "x", "args": {"d": nest(17)}}})).await;
    assert_eq!((code, field_of(&e)), (422, "action.args".into()));
    // strings up to 64 KiB (within the 1 MiB body)
    let (code, _) =
        s.post(&agent, "/v1/decisions", json!({"action": {"name": "x", "args": {"s": "x".repeat(64 * 1024)}}})).await;
    assert_eq!(code, 201);
    let (code, e) = s
        .post(&agent, "/v1/decisions", json!({"action": {"name": "x", "signals": {"s": "x".repeat(64 * 1024 + 1)}}}))
        .await;
    assert_eq!((code, field_of(&e)), (422, "action.signals".into()));
    // the Idempotency-Key format
    for bad in ["has space", &"k".repeat(256)] {
        let r = s
            .http
            .post(s.at("/v1/decisions"))
            .bearer_auth(&agent)
            .header("idempotency-key", bad)
            .json(&json!({"action": {"name": "x"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422);
        assert_eq!(r.json::<Value>().await.unwrap()["field"], "Idempotency-Key");
    }
    // long-polls are capped at max_wait (1 s here), whatever they ask
    let (did, case) = s.escalate(&agent, isolate("ws-1", &["workstation"], 0.5)).await;
    let started = std::time::Instant::now();
    let (code, d) = s.get(&agent, &format!("/v1/decisions/{did}?wait=60s")).await;
    assert_eq!((code, d["status"].as_str()), (200, Some("pending")));
    assert!(started.elapsed() < Duration::from_secs(30), "the 60 s wait was capped");
    // claim leases of at most an hour
    let (code, e) = s.post(&reviewer, &format!("/v1/cases/{case}/claim"), json!({"lease": "2h"})).await;
    assert_eq!((code, field_of(&e)), (422, "lease".into()));
    assert_eq!(s.post(&reviewer, &format!("/v1/cases/{case}/claim"), json!({"lease": "1h"})).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chain_follows_a_session_and_cases_move_over_http() {
    let s = TestServer::start().await;
    let agent = s.key("agent", "agent", &[]).await;
    let ann = s.key("ann", "reviewer", &["soc_analyst"]).await;
    let bob = s.key("bob", "reviewer", &["soc_analyst"]).await;
    // two decisions of one chat session, in different traces
    let first = json!({"action": {"name": "close_alert", "confidence": 0.95}, "trace_id": "t-a", "context": {"session_id": "chat-7"}});
    let (_, d1) = s.post(&agent, "/v1/decisions", first).await;
    let second = json!({"action": isolate("db-1", &["crown_jewel"], 0.9), "trace_id": "t-b", "context": {"session_id": "chat-7"}});
    let (_, d2) = s.post(&agent, "/v1/decisions", second).await;
    let case = d2["case_id"].as_str().unwrap().to_string();
    let (_, chain) = s.get(&ann, &format!("/v1/cases/{case}/chain")).await;
    let ids: Vec<&str> = chain.as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [d1["id"].as_str().unwrap(), d2["id"].as_str().unwrap()]);
    // release, reassign (admins only), and the queue hides what a reviewer already approved
    assert_eq!(s.post(&ann, &format!("/v1/cases/{case}/claim"), json!({})).await.0, 200);
    assert_eq!(s.post(&bob, &format!("/v1/cases/{case}/release"), json!({})).await.0, 409, "not bob's");
    let (code, c) = s.post(&ann, &format!("/v1/cases/{case}/release"), json!({})).await;
    assert_eq!((code, c["state"].as_str()), (200, Some("open")));
    let bob_id = bob.split('_').nth(1).unwrap();
    assert_eq!(s.post(&ann, &format!("/v1/cases/{case}/reassign"), json!({"key_id": bob_id})).await.0, 403);
    let (code, c) = s.post(&s.admin, &format!("/v1/cases/{case}/reassign"), json!({"key_id": bob_id})).await;
    assert_eq!((code, c["claim"]["by"].as_str()), (200, Some("bob")));
    let ok = json!({"decision": "approve", "rationale": "confirmed on the EDR console"});
    assert_eq!(s.post(&bob, &format!("/v1/cases/{case}/decision"), ok).await.0, 200);
    let queue_ids = |q: Value| -> Vec<String> {
        q["items"].as_array().unwrap().iter().map(|i| i["case"]["id"].as_str().unwrap().to_string()).collect()
    };
    assert!(!queue_ids(s.get(&bob, "/v1/queue").await.1).contains(&case), "bob already approved it");
    assert!(queue_ids(s.get(&ann, "/v1/queue").await.1).contains(&case), "ann can give the second approval");
    // reopen a closed review over HTTP
    let (_, r) = s.post(&s.admin, "/v1/reviews", json!({"title": "look at this", "from_case": case})).await;
    let rid = r["id"].as_str().unwrap().to_string();
    let (code, e) =
        s.post(&s.admin, &format!("/v1/reviews/{rid}/reopen"), json!({"reason": "it is not closed yet"})).await;
    assert_eq!((code, e["code"].as_str()), (422, Some("invalid_request")), "only a closed review reopens: {e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlisted_actions_share_the_other_label_and_console_pages_are_locked_down() {
    let s = TestServer::start().await;
    let agent = s.key("agent", "agent", &[]).await;
    for name in ["make_coffee", "launch_rocket", "close_alert"] {
        s.post(&agent, "/v1/decisions", json!({"action": {"name": name, "confidence": 0.95}})).await;
    }
    let m = s.http.get(s.at("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(m.contains(r#"arbiter_decisions_total{verdict="escalate",action="other",project="default"} 2"#), "{m}");
    assert!(m.contains(r#"action="close_alert""#), "{m}");
    assert!(!m.contains("make_coffee") && !m.contains("launch_rocket"), "agents do not choose label values");
    let r = s.http.get(s.at("/login")).send().await.unwrap();
    let h = r.headers();
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe"),
        "{csp}"
    );
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["cache-control"], "no-store");
}
