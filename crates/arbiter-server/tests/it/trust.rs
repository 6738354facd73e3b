//! Trust: a reviewer's modification is checked like a new action, and
//! approvals are bound to the exact arguments they approved.

use crate::support::{SOC_POLICY, TestServer};
use serde_json::{Value, json};

fn workstation_isolation() -> Value {
    json!({"name": "isolate_host", "confidence": 0.5,
           "args": {"host": "ws-042", "host_tags": ["workstation"]},
           "signals": {"alert_type": "malware", "alert_severity": "high"}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_modification_cannot_bypass_the_policy() {
    let s = TestServer::with(SOC_POLICY, |_| {}).await;
    let agent = s.key("soc-triage-agent", "agent", &[]).await;
    let alice = s.key("alice", "reviewer", &["soc_analyst"]).await;
    let carl = s.key("carl", "reviewer", &["soc_analyst"]).await;
    let lead = s.key("lena", "reviewer", &["soc_lead"]).await;
    let (did, case) = s.escalate(&agent, workstation_isolation()).await;
    let (_, c) = s.get(&alice, &format!("/v1/cases/{case}")).await;
    assert_eq!((c["escalation"]["approvals"].as_u64(), c["escalation"]["severity"].as_str()), (Some(1), Some("high")));

    // The modification of the repro: a domain controller and crown jewel, which,
    // proposed directly, needs two approvals from the leads and the identity team.
    let dc = json!({"host": "dc-01", "host_tags": ["crown_jewel", "domain_controller"]});
    let body = json!({"decision": "modify", "args": dc, "rationale": "the real source is the domain controller"});
    let (status, out) = s.post(&alice, &format!("/v1/cases/{case}/decision"), body).await;
    assert_eq!(status, 200, "{out}");
    assert!(out.get("decision").is_none(), "one analyst cannot allow it: {out}");
    let esc = &out["case"]["escalation"];
    assert_eq!(esc["approvals"], 2, "{out}");
    assert_eq!(esc["severity"], "critical");
    let roles: Vec<&str> = esc["reviewers"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
    assert!(roles.contains(&"soc_lead") && roles.contains(&"identity_team"), "{roles:?}");
    let (_, d) = s.get(&agent, &format!("/v1/decisions/{did}")).await;
    assert_eq!(d["status"], "pending", "{d}");
    // the timeline says why
    let (_, events) = s.get(&s.admin, &format!("/v1/cases/{case}/events")).await;
    let kinds: Vec<&str> = events.as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["case.opened", "case.requirements_raised", "case.answered"]);
    let raised = &events[1]["data"];
    assert!(raised["triggers"].as_array().unwrap().iter().any(|t| t == "isolate_domain_controller"), "{raised}");

    // A modification the policy denies is refused outright, naming the trigger.
    let ot = json!({"host": "plc-7", "host_tags": ["ot"]});
    let body = json!({"decision": "modify", "args": ot, "rationale": "isolate the PLC instead of the host"});
    let r =
        s.http.post(s.at(&format!("/v1/cases/{case}/decision"))).bearer_auth(&carl).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["code"], "modification_denied", "{p}");
    assert_eq!(p["triggers"], json!(["isolate_ot_device"]), "{p}");

    // The second approval of exactly those arguments decides; the agent receives them.
    let body = json!({"decision": "approve", "rationale": "confirmed with the identity team"});
    let (status, out) = s.post(&lead, &format!("/v1/cases/{case}/decision"), body).await;
    assert_eq!(status, 200, "{out}");
    let fin = &out["decision"]["final"];
    assert_eq!(fin["verdict"], "allow", "{out}");
    assert_eq!(fin["action"]["args"], dc);
    assert_eq!(fin["decided_by"], json!(["alice", "lena"]));
    assert_eq!(out["case"]["answers"][0]["args_digest"], out["case"]["answers"][1]["args_digest"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_of_the_proposal_does_not_count_toward_a_modification() {
    let s = TestServer::start().await;
    let agent = s.key("soc-agent", "agent", &[]).await;
    let ann = s.key("ann", "reviewer", &["soc_analyst"]).await;
    let bob = s.key("bob", "reviewer", &["soc_analyst"]).await;
    // crown jewels need two approvals in the test policy
    let (_, case) = s.escalate(&agent, crate::support::isolate("db-1", &["crown_jewel"], 0.9)).await;
    let ok = json!({"decision": "approve", "rationale": "confirmed on the EDR console"});
    assert_eq!(s.post(&ann, &format!("/v1/cases/{case}/decision"), ok.clone()).await.0, 200);
    let narrower = json!({"decision": "modify", "args": {"host": "db-1", "host_tags": ["crown_jewel"], "mode": "network_only"},
                          "rationale": "network isolation is enough"});
    let (status, out) = s.post(&bob, &format!("/v1/cases/{case}/decision"), narrower).await;
    assert_eq!(status, 200, "{out}");
    assert!(out.get("decision").is_none(), "ann approved other arguments: {out}");
    // ann approves again, now the modified arguments: that decides
    let (status, out) = s.post(&ann, &format!("/v1/cases/{case}/decision"), ok).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["decision"]["final"]["action"]["args"]["mode"], "network_only", "{out}");
    assert_eq!(out["decision"]["final"]["decided_by"], json!(["bob", "ann"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_documents_must_name_themselves_and_big_changes_need_force() {
    let s = TestServer::with(SOC_POLICY, |_| {}).await;
    let put = |body: &str, query: &str| {
        s.http
            .put(s.at(&format!("/v1/policy{query}")))
            .bearer_auth(&s.admin)
            .header("content-type", "application/yaml")
            .body(body.to_string())
            .send()
    };
    let before = s.get(&s.admin, "/v1/policy").await.1["hash"].clone();
    let r = put("{}", "").await.unwrap();
    assert_eq!(r.status(), 422);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["code"], "invalid_policy");
    let fields: Vec<&str> = p["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert!(fields.contains(&"version") && fields.contains(&"policy"), "{p}");
    assert_eq!(s.get(&s.admin, "/v1/policy").await.1["hash"], before, "the SOC policy stays active");

    // History: routine closes the SOC policy allows.
    let agent = s.key("soc-agent", "agent", &[]).await;
    for i in 0..20 {
        let body = json!({"action": {"name": "close_alert", "confidence": 0.97, "args": {"alert_id": format!("A-{i}"), "resolution": "benign"},
                          "signals": {"alert_type": "benign_noise", "alert_severity": "low"}}});
        assert_eq!(s.post(&agent, "/v1/decisions", body).await.0, 201);
    }
    // A version that escalates everything changes all 20 verdicts: refused without force, with the backtest.
    let strict = "version: 1\npolicy: strict\ndefaults:\n  reviewers: [soc_analyst]\n";
    let r = put(strict, "").await.unwrap();
    assert_eq!(r.status(), 409);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["code"], "policy_change_unconfirmed", "{p}");
    assert_eq!((p["impact"]["replayed"].as_u64(), p["impact"]["changed"].as_u64()), (Some(20), Some(20)), "{p}");
    assert_eq!(p["impact"]["backtest"]["changes"][0]["from"], "allow");
    assert_eq!(s.get(&s.admin, "/v1/policy").await.1["hash"], before);
    // Confirmed, it goes through.
    let r = put(strict, "?force=true").await.unwrap();
    assert_eq!(r.status(), 201);
    assert_ne!(s.get(&s.admin, "/v1/policy").await.1["hash"], before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runaway_agent_is_rate_limited_and_capped() {
    let s = TestServer::with(SOC_POLICY, |c| c.max_open_cases_per_agent = Some(2)).await;
    let (status, created) =
        s.post(&s.admin, "/v1/keys", json!({"name": "loopy", "role": "agent", "rate_limit": "1/s:4"})).await;
    assert_eq!(status, 201, "{created}");
    let agent = created["key"].as_str().unwrap().to_string();
    let mut outcomes = Vec::new();
    for i in 0..5 {
        let r = s
            .http
            .post(s.at("/v1/decisions"))
            .bearer_auth(&agent)
            .json(&json!({"action": workstation_isolation(), "context": {"n": i}}))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let retry = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
        outcomes.push((status, retry, r.json::<Value>().await.unwrap()));
    }
    // the burst of 4 passes; the fifth is refused until a token is back
    assert_eq!(outcomes.iter().map(|o| o.0).collect::<Vec<_>>(), [201, 201, 201, 201, 429]);
    assert_eq!(outcomes[4].1.as_deref(), Some("1"));
    assert_eq!(outcomes[4].2["code"], "rate_limited");
    // two cases open; past the cap the escalations get their fallback at once, with the reason code
    assert!(outcomes[..2].iter().all(|o| o.2["status"] == "pending" && o.2["case_id"].is_string()));
    for o in &outcomes[2..4] {
        assert_eq!(o.2["status"], "final", "{}", o.2);
        assert_eq!(o.2["final"]["source"], "agent_case_cap");
        assert_eq!(o.2["final"]["verdict"], "deny", "the isolate_host fallback");
        assert!(o.2.get("case_id").is_none());
    }
    let metrics = s.http.get(s.at("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("arbiter_rate_limited_proposals_total 1"), "{metrics}");
    assert!(metrics.contains("arbiter_case_cap_fallbacks_total 2"), "{metrics}");
    // the audit log holds one alarm of each kind (one per episode, not per refusal)
    let (_, events) = s.get(&s.admin, "/v1/audit/events?limit=1000").await;
    let kinds: Vec<&str> = events.as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "agent.rate_limited").count(), 1, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == "agent.case_cap").count(), 1, "{kinds:?}");
    // a second later the key may propose again
    s.advance(std::time::Duration::from_secs(1));
    let (status, _) = s.post(&agent, "/v1/decisions", json!({"action": workstation_isolation()})).await;
    assert_eq!(status, 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_expire_rotate_and_one_person_approves_once() {
    let s = TestServer::start().await;
    let agent = s.key("soc-agent", "agent", &[]).await;
    // a name is a principal: a second `ann` needs to say so
    let ann1 = s.key("ann", "reviewer", &["soc_analyst"]).await;
    let (status, e) =
        s.post(&s.admin, "/v1/keys", json!({"name": "ann", "role": "reviewer", "tags": ["soc_analyst"]})).await;
    assert_eq!((status, e["code"].as_str()), (409, Some("conflict")), "{e}");
    assert!(e["detail"].as_str().unwrap().contains("same_principal"), "{e}");
    let (status, second) = s
        .post(
            &s.admin,
            "/v1/keys",
            json!({"name": "ann", "role": "reviewer", "tags": ["soc_analyst"], "same_principal": true, "expires_in": "1h"}),
        )
        .await;
    assert_eq!(status, 201, "{second}");
    let ann2 = second["key"].as_str().unwrap().to_string();
    // two keys of one person give one approval
    let (_, case) = s.escalate(&agent, crate::support::isolate("db-1", &["crown_jewel"], 0.9)).await;
    let ok = json!({"decision": "approve", "rationale": "checked the EDR timeline"});
    assert_eq!(s.post(&ann1, &format!("/v1/cases/{case}/decision"), ok.clone()).await.0, 200);
    let (status, e) = s.post(&ann2, &format!("/v1/cases/{case}/decision"), ok).await;
    assert_eq!((status, e["code"].as_str()), (409, Some("already_answered")), "{e}");
    // the second key expires after its hour
    assert_eq!(s.get(&ann2, "/v1/queue").await.0, 200);
    s.advance(std::time::Duration::from_secs(3600));
    let (status, e) = s.get(&ann2, "/v1/queue").await;
    assert_eq!(status, 401);
    assert!(e["detail"].as_str().unwrap().contains("expired"), "{e}");
    // rotation: old and new both work until the old one's grace ends
    let id = ann1.split('_').nth(1).unwrap().to_string();
    let (status, rotated) = s.post(&s.admin, &format!("/v1/keys/{id}/rotate"), json!({"old_expires_in": "10m"})).await;
    assert_eq!(status, 201, "{rotated}");
    let new = rotated["key"].as_str().unwrap().to_string();
    assert_eq!(rotated["name"], "ann");
    assert_eq!(s.get(&ann1, "/v1/queue").await.0, 200);
    assert_eq!(s.get(&new, "/v1/queue").await.0, 200);
    s.advance(std::time::Duration::from_secs(601));
    assert_eq!(s.get(&ann1, "/v1/queue").await.0, 401);
    assert_eq!(s.get(&new, "/v1/queue").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_ends_the_session_at_once() {
    let s =
        TestServer::with(crate::support::POLICY, |c| c.public_url = Some("https://arbiter.example.com".into())).await;
    let ann = s.key("ann", "reviewer", &["soc_analyst"]).await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let login = http.get(s.at("/login")).send().await.unwrap().text().await.unwrap();
    assert!(login.contains(r#"type="password" id="key""#), "the key field hides what is typed");
    let r = http.post(s.at("/login")).form(&[("key", ann.as_str()), ("next", "/queue")]).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(set.contains("; Secure") && set.contains("HttpOnly") && set.contains("SameSite=Strict"), "{set}");
    let cookie = set.split(';').next().unwrap().to_string();
    let page = http.get(s.at("/queue")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    let csrf = html.split(r#"name="csrf" value=""#).nth(1).unwrap().split('"').next().unwrap().to_string();
    let out =
        http.post(s.at("/logout")).header("cookie", &cookie).form(&[("csrf", csrf.as_str())]).send().await.unwrap();
    assert_eq!(out.status(), 303);
    // the old cookie no longer signs anyone in, although the browser was told nothing
    let again = http.get(s.at("/queue")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(again.status(), 303);
    assert!(again.headers()["location"].to_str().unwrap().starts_with("/login"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rejected_request_is_problem_json() {
    let s = TestServer::start().await;
    let agent = s.key("soc-agent", "agent", &[]).await;
    let problem = |r: reqwest::Response, status: u16| async move {
        assert_eq!(r.status().as_u16(), status, "{}", r.url());
        assert_eq!(r.headers()["content-type"], "application/problem+json", "{}", r.url());
        r.json::<Value>().await.unwrap()
    };
    for q in ["limit=abc", "limit=-1", "surprise=1", "after=1.5"] {
        let r = s.http.get(s.at(&format!("/v1/audit/events?{q}"))).bearer_auth(&s.admin).send().await.unwrap();
        let p = problem(r, 422).await;
        assert_eq!(p["code"], "invalid_request", "{q}: {p}");
    }
    let r = s.http.get(s.at("/v1/audit/events?limit=abc")).bearer_auth(&s.admin).send().await.unwrap();
    assert_eq!(problem(r, 422).await["field"], "limit");
    let huge = "/v1/reviews/x/interventions/999999999999999999999999999";
    let r = s.http.post(s.at(huge)).bearer_auth(&s.admin).json(&json!({"status": "done"})).send().await.unwrap();
    assert_eq!(problem(r, 422).await["code"], "invalid_request");
    // media types: case does not matter, look-alikes and a missing type are refused
    let body = serde_json::to_vec(&json!({"action": {"name": "close_alert", "confidence": 0.95}})).unwrap();
    let post = |ct: Option<&str>| {
        let mut req = s.http.post(s.at("/v1/decisions")).bearer_auth(&agent).body(body.clone());
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        req.send()
    };
    assert_eq!(post(Some("APPLICATION/JSON; charset=UTF-8")).await.unwrap().status(), 201);
    assert_eq!(post(Some("application/vnd.api+json")).await.unwrap().status(), 201);
    for ct in [Some("application/jsonx"), Some("text/json"), None] {
        let p = problem(post(ct).await.unwrap(), 415).await;
        assert_eq!(p["code"], "unsupported_media_type", "{ct:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_route_is_served() {
    let s = TestServer::start().await;
    let doc: Value = serde_json::from_str(arbiter_server::openapi::OPENAPI_JSON).unwrap();
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let concrete = path.replace("{index}", "0").replace(['{', '}'], "");
        for method in item.as_object().unwrap().keys() {
            let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            // No key: a served route answers 401 (or its public answer), never the 404/405 fallbacks.
            let r = s.http.request(m, s.at(&concrete)).send().await.unwrap();
            let status = r.status().as_u16();
            assert!(status != 404 && status != 405, "{method} {path} -> {status}: {}", r.text().await.unwrap());
            checked += 1;
        }
    }
    assert_eq!(checked, arbiter_server::openapi::routes().len());
}

/// The repro of the trust review: with `quarantine_file`'s fallback `allow`,
/// an agent past its cap of open cases got a final allow and a receipt. Past
/// the cap an escalation is denied, whatever the class's fallback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_case_cap_fails_closed() {
    let s = TestServer::with(SOC_POLICY, |c| c.max_open_cases_per_agent = Some(1)).await;
    let agent = s.loader("flooder").await;
    let quarantine = |n: u32| {
        json!({"action": {"name": "quarantine_file", "confidence": 0.3,
                          "args": {"path": format!("/srv/payroll/{n}.xlsx"), "host": "fin-db-01",
                                   "host_tags": ["crown_jewel"]}}})
    };
    let (code, first) = s.post(&agent, "/v1/decisions", quarantine(1)).await;
    assert_eq!((code, first["status"].as_str()), (201, Some("pending")), "{first}");
    let (code, capped) = s.post(&agent, "/v1/decisions", quarantine(2)).await;
    assert_eq!(code, 201, "{capped}");
    assert_eq!(capped["final"]["source"], "agent_case_cap", "{capped}");
    assert_eq!(capped["final"]["verdict"], "deny", "never the class's allow fallback: {capped}");
    let receipt = &capped["final"]["receipt"];
    assert!(receipt.is_null() || receipt["verdict"] == "deny", "no allow receipt to consume: {capped}");
}

/// The trust review: a retry of an accepted proposal got `429` once the
/// agent's bucket was empty. It costs nothing, so it gets the stored decision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotent_retry_is_not_rate_limited() {
    let s = TestServer::with(SOC_POLICY, |_| {}).await;
    let (code, created) =
        s.post(&s.admin, "/v1/keys", json!({"name": "retrier", "role": "agent", "rate_limit": "1/s:1"})).await;
    assert_eq!(code, 201, "{created}");
    let agent = created["key"].as_str().unwrap().to_string();
    let body = json!({"action": {"name": "close_alert", "confidence": 0.99, "args": {"alert_id": "A-1"},
                                 "signals": {"alert_type": "benign_noise", "alert_severity": "low"}}});
    let send = |key: Option<&str>| {
        let mut r = s.http.post(s.at("/v1/decisions")).bearer_auth(&agent).json(&body);
        if let Some(k) = key {
            r = r.header("idempotency-key", k);
        }
        r.send()
    };
    let first = send(Some("alert-A-1")).await.unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    // the bucket is empty now: a new proposal waits, the retry does not
    assert_eq!(send(None).await.unwrap().status(), 429);
    let retry = send(Some("alert-A-1")).await.unwrap();
    assert_eq!(retry.status(), 200, "the stored decision, not 429");
    let retry: Value = retry.json().await.unwrap();
    assert_eq!(retry["id"], first["id"]);
}

/// The trust review: `414 URI Too Long` answered an empty body. It is
/// problem+json like every other error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_too_long_uri_is_answered_as_a_problem() {
    let s = TestServer::start().await;
    let r =
        s.http.get(s.at(&format!("/v1/search?q={}", "a".repeat(20_000)))).bearer_auth(&s.admin).send().await.unwrap();
    assert_eq!(r.status(), 414);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["code"], "uri_too_long", "{p}");
}

/// The trust review: `PUT /v1/policy` took `text/plain` and no Content-Type,
/// while the API document says YAML. Both are `415`; the YAML types pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_is_sent_as_yaml() {
    let s = TestServer::start().await;
    for ct in [Some("text/plain"), None, Some("application/json")] {
        let mut r = s.http.put(s.at("/v1/policy")).bearer_auth(&s.admin).body(crate::support::POLICY);
        if let Some(ct) = ct {
            r = r.header("content-type", ct);
        }
        let r = r.send().await.unwrap();
        assert_eq!(r.status(), 415, "{ct:?}");
        let p: Value = r.json().await.unwrap();
        assert_eq!(p["code"], "unsupported_media_type", "{p}");
    }
    for ct in ["application/yaml", "text/yaml; charset=utf-8", "application/x-yaml"] {
        let r = s
            .http
            .put(s.at("/v1/policy"))
            .bearer_auth(&s.admin)
            .header("content-type", ct)
            .body(crate::support::POLICY);
        assert!(r.send().await.unwrap().status().is_success(), "{ct}");
    }
}

/// Receipts are used once, guarded where the rule lives (this crate's own
/// tests, not only the end-to-end ones that need node and Python): the first
/// use is `first: true`, the same consumer asking again gets `first: false`,
/// any other consumer is refused `409 receipt_consumed` and a
/// `receipt.refused` event records it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_is_used_once() {
    let s = TestServer::start().await;
    let agent = s.key("tool-agent", "agent", &[]).await;
    let args = json!({"alert_id": "A-9"});
    let (code, d) = s
        .post(&agent, "/v1/decisions", json!({"action": {"name": "close_alert", "confidence": 0.99, "args": args}}))
        .await;
    assert_eq!((code, d["final"]["verdict"].as_str()), (201, Some("allow")), "{d}");
    let id = d["id"].as_str().unwrap();
    let consume = |consumer: &str| json!({"receipt": d["final"]["receipt"], "args": args, "consumer": consumer});
    let path = format!("/v1/decisions/{id}/consume");
    let (code, first) = s.post(&agent, &path, consume("gateway-1")).await;
    assert_eq!((code, first["first"].as_bool()), (200, Some(true)), "{first}");
    let (code, again) = s.post(&agent, &path, consume("gateway-1")).await;
    assert_eq!((code, again["first"].as_bool()), (200, Some(false)), "{again}");
    assert_eq!(again["at"], first["at"], "the first use, unchanged");
    let (code, other) = s.post(&agent, &path, consume("gateway-2")).await;
    assert_eq!((code, other["code"].as_str()), (409, Some("receipt_consumed")), "{other}");
    let (code, altered) = s
        .post(
            &agent,
            &path,
            json!({"receipt": d["final"]["receipt"], "args": {"alert_id": "A-10"}, "consumer": "gateway-1"}),
        )
        .await;
    assert_eq!((code, altered["code"].as_str()), (422, Some("receipt_invalid")), "{altered}");
    let (_, events) = s.get(&s.admin, "/v1/audit/events?limit=1000").await;
    let kinds: Vec<&str> = events.as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "receipt.consumed").count(), 1, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == "receipt.refused").count(), 2, "{kinds:?}");
}

/// The trust review: `"confidence": -0.0` made `audit verify` report
/// tampering, and verification stopped there, hiding what came after. Every
/// number the API accepts verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_accepted_number_verifies() {
    let s = TestServer::start().await;
    let agent = s.loader("odd-numbers").await;
    for (confidence, arg) in
        [(json!(-0.0), json!(9007199254740993u64)), (json!(0), json!(-0.0)), (json!(1e-320), json!(1e300))]
    {
        let (code, d) = s
            .post(
                &agent,
                "/v1/decisions",
                json!({"action": {"name": "close_alert", "confidence": confidence,
                "args": {"alert_id": "A-1", "n": arg}}}),
            )
            .await;
        assert_eq!(code, 201, "{d}");
        let (code, o) = s
            .post(
                &s.admin,
                &format!("/v1/decisions/{}/outcome", d["id"].as_str().unwrap()),
                json!({"correct": true, "cost": -0.0}),
            )
            .await;
        assert_eq!(code, 200, "{o}");
    }
    let (_, v) = s.get(&s.admin, "/v1/audit/verify").await;
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["problems_found"], 0, "{v}");
}

/// Past 64 KiB the HTTP layer refuses the request line itself, before any
/// route runs; that answer is problem+json too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_line_past_the_http_layer_is_answered_as_a_problem() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = TestServer::start().await;
    // by hand: HTTP clients refuse to send a URI this long
    let addr = s.url.trim_start_matches("http://").to_string();
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let line = format!("GET /v1/search?q={} HTTP/1.1\r\nHost: {addr}\r\n\r\n", "a".repeat(70_000));
    conn.write_all(line.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), conn.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or_else(|| panic!("{answer}"));
    assert!(head.starts_with("HTTP/1.1 414"), "{head}");
    assert!(head.to_ascii_lowercase().contains("content-type: application/problem+json"), "{head}");
    let p: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(p["code"], "uri_too_long", "{p}");
    // the server goes on serving
    let (code, _) = s.get(&s.admin, "/v1/policy").await;
    assert_eq!(code, 200);
}
