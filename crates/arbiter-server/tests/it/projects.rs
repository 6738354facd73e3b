//! Two teams on one server: with the keys of project A (its agent, its
//! reviewer and its project admin), every route of the API and every console
//! page is called against project B's decisions, cases, traces, receipts,
//! reviews, search, webhooks, keys and policy, and nothing of B's is read or
//! changed. A key cannot step into another project with the `Arbiter-Project`
//! header; a server admin can, and the metrics tell the projects apart.

use crate::support::{POLICY, TestServer, isolate};
use reqwest::Method;
use serde_json::{Value, json};

const TRACE_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb2";

/// What is B's: words that appear only in B's data (never in a request A makes).
const B_MARKERS: &[&str] =
    &["srv-teamb-9", "B-SECRET-1", "teamb-span", "teamb-hook", "teamb review", "teamb-agent", "teamb-policy"];

/// A project's keys.
struct Team {
    agent: String,
    reviewer: String,
    admin: String,
}

/// Create project `id` as the server admin, give it a policy and keys.
async fn team(s: &TestServer, id: &str) -> Team {
    let (code, p) = s.post(&s.admin, "/v1/projects", json!({"id": id, "name": format!("Team {id}")})).await;
    assert_eq!(code, 201, "{p}");
    let policy = format!("{POLICY}# {id}-policy\n");
    let r = s
        .http
        .put(s.at("/v1/policy"))
        .bearer_auth(&s.admin)
        .header("arbiter-project", id)
        .header("content-type", "application/yaml")
        .body(policy)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201, "{}", r.text().await.unwrap());
    let (a, r, ad) = (format!("{id}-agent"), format!("{id}-reviewer"), format!("{id}-admin"));
    Team {
        agent: s.key_by(&s.admin, Some(id), &a, "agent", &[]).await,
        reviewer: s.key_by(&s.admin, Some(id), &r, "reviewer", &["soc_analyst", "soc_lead"]).await,
        admin: s.key_by(&s.admin, Some(id), &ad, "admin", &[]).await,
    }
}

/// B's data: an escalated decision (with its case), an allowed one (with a
/// receipt), a span, a review case closed into a published lesson (in B's
/// search and guidance), a policy draft, and a webhook.
struct BData {
    pending: String,
    case: String,
    allowed: Value,
    review: String,
    webhook: String,
}

async fn b_data(s: &TestServer, b: &Team) -> BData {
    let spans = json!({"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"spans": [
        {"traceId": TRACE_B, "spanId": "00000000000000d1", "name": "execute_tool teamb-span",
         "startTimeUnixNano": "1800000000000000000", "endTimeUnixNano": "1800000001000000000",
         "attributes": [{"key": "gen_ai.tool.call.id", "value": {"stringValue": "call_b"}}]}]}]}]});
    let (code, out) = s.post_traces(&b.agent, spans).await;
    assert_eq!(code, 200, "{out}");
    let (code, pending) = s
        .post(
            &b.agent,
            "/v1/decisions",
            json!({"action": isolate("srv-teamb-9", &[], 0.9), "trace_id": TRACE_B, "context": {"tool_call_id": "call_b"}}),
        )
        .await;
    assert_eq!((code, pending["verdict"].as_str()), (201, Some("escalate")), "{pending}");
    let (code, allowed) = s
        .post(
            &b.agent,
            "/v1/decisions",
            json!({"action": {"name": "close_alert", "confidence": 0.99, "args": {"alert_id": "B-SECRET-1"}},
                   "trace_id": TRACE_B}),
        )
        .await;
    assert_eq!((code, allowed["verdict"].as_str()), (201, Some("allow")), "{allowed}");
    let pending_id = pending["id"].as_str().unwrap().to_string();
    let (code, review) =
        s.post(&b.admin, "/v1/reviews", json!({"title": "teamb review", "decision_ids": [pending_id]})).await;
    assert_eq!(code, 201, "{review}");
    close_into_a_lesson(s, b, review["id"].as_str().unwrap(), &pending_id).await;
    let (code, hook) =
        s.post(&b.admin, "/v1/webhooks", json!({"url": "http://127.0.0.1:9/teamb-hook", "events": ["*"]})).await;
    assert!(code == 201 || code == 422, "{hook}");
    let webhook = if code == 201 {
        hook["id"].as_str().unwrap().to_string()
    } else {
        // private addresses are refused by default: store B's hook directly in B's project
        let id = arbiter_core::ProjectId::parse("team-b").unwrap();
        let store = s.state.in_project(&id).await.unwrap().store.clone();
        let w = arbiter_store::Webhook {
            id: "teamb-webhook".into(),
            url: "http://127.0.0.1:9/teamb-hook".into(),
            events: ["*".to_string()].into_iter().collect(),
            format: arbiter_store::WebhookFormat::Json,
            secret: "whsec_b".into(),
            created_at: s.state.clock.now(),
            created_by: "team-b-admin".into(),
            active: true,
            project: id,
            min_severity: None,
        };
        store.create_webhook(w).await.unwrap();
        "teamb-webhook".to_string()
    };
    BData {
        case: pending["case_id"].as_str().unwrap().into(),
        pending: pending_id,
        allowed,
        review: review["id"].as_str().unwrap().into(),
        webhook,
    }
}

/// Work B's review through its four stages (with a policy change stored in
/// B) and close it: it becomes B's published lesson, in B's search and guidance.
async fn close_into_a_lesson(s: &TestServer, b: &Team, review: &str, decision: &str) {
    let eng = s.key_by(&b.admin, None, "teamb-engineer", "reviewer", &["engineering"]).await;
    let src = format!(
        "{POLICY}# team-b-policy\n  - name: confirm_isolation\n    actions: [isolate_host]\n    when: '!(has(signals.confirmed) && signals.confirmed == true)'\n    verdict: escalate\n"
    );
    let r = s.http.post(s.at("/v1/policy/versions")).bearer_auth(&b.admin).header("content-type", "application/yaml");
    let v: Value = r.body(src).send().await.unwrap().json().await.unwrap();
    let version = v["hash"].as_str().expect("a draft in B").to_string();
    let stages = format!("/v1/reviews/{review}/stages");
    for mut body in [
        json!({"stage": "contextual_analysis", "reproduced": "yes", "steps": ["replayed teamb alert"], "environment": "staging"}),
        json!({"stage": "trace_inspection", "findings": [{"decision_id": decision, "kind": "misread_intent", "note": "teamb finding"}]}),
        json!({"stage": "impact_assessment", "severity": "S3", "scope": {"count": 1, "entities": []}, "technical_correctness": "wrong", "user_experience": "teamb outage"}),
        json!({"stage": "resolution_design", "interventions": [
            {"kind": "tool_change", "description": "teamb confirmation step", "owner": "teamb-engineer", "expected_effect": "fewer", "policy_version": version},
            {"kind": "prompt_refinement", "description": "teamb: check the order before refunding.", "owner": "teamb-engineer", "expected_effect": "fewer"}]}),
    ] {
        body["role"] = json!("engineering");
        body["rationale"] = json!("teamb rationale");
        let (code, e) = s.post(&eng, &stages, body).await;
        assert_eq!(code, 201, "{e}");
    }
    let (code, e) = s.post(&eng, &format!("/v1/reviews/{review}/interventions/0/check"), json!({})).await;
    assert_eq!(code, 200, "{e}");
    let (code, e) = s.post(&eng, &format!("/v1/reviews/{review}/interventions/0"), json!({"status": "done"})).await;
    assert_eq!(code, 200, "{e}");
    let (code, e) =
        s.post(&eng, &format!("/v1/reviews/{review}/close"), json!({"reason": "teamb review closed"})).await;
    assert_eq!(code, 200, "{e}");
    let (_, lessons) = s.get(&b.reviewer, "/v1/lessons").await;
    assert!(lessons.to_string().contains("teamb review"), "B has its lesson: {lessons}");
    let id = lessons[0]["id"].as_str().unwrap();
    let (code, e) = s.patch(&b.admin, &format!("/v1/lessons/{id}"), json!({"publish": true})).await;
    assert_eq!(code, 200, "{e}");
    let (_, guidance) = s.get(&b.agent, "/v1/guidance").await;
    assert!(guidance.to_string().contains("teamb"), "B's agent reads it: {guidance} {lessons}");
}

fn leaks(out: &str) -> Option<&'static str> {
    B_MARKERS.iter().copied().find(|m| out.contains(m))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_reads_and_changes_nothing_of_another_through_any_route() {
    every_route_against_another_project(TestServer::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_a_project_reads_and_changes_nothing_of_another_through_any_route() {
    let Some(s) = TestServer::on_postgres("projects_every_route").await else { return };
    every_route_against_another_project(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_a_person_acts_in_another_project_with_the_role_its_admin_gave_them() {
    let Some(s) = TestServer::on_postgres("projects_membership").await else { return };
    membership(s).await;
}

async fn every_route_against_another_project(s: TestServer) {
    let a = team(&s, "team-a").await;
    let b = team(&s, "team-b").await;
    let bd = b_data(&s, &b).await;
    let (_, b_policy) = s.get(&b.admin, "/v1/policy").await;
    let b_hash = b_policy["hash"].as_str().unwrap().to_string();
    let api: Value = serde_json::from_str(arbiter_server::openapi::OPENAPI_JSON).unwrap();
    let mut called = 0;
    for (method, path) in arbiter_server::openapi::routes() {
        let id = if path.starts_with("/v1/cases/") {
            bd.case.as_str()
        } else if path.starts_with("/v1/reviews/") {
            bd.review.as_str()
        } else if path.starts_with("/v1/webhooks/") {
            bd.webhook.as_str()
        } else {
            bd.pending.as_str()
        };
        let concrete =
            path.replace("{id}", id).replace("{trace_id}", TRACE_B).replace("{hash}", &b_hash).replace("{index}", "0");
        let query = match path {
            "/v1/search" => "?q=teamb".to_string(),
            "/v1/cases" => "?text=teamb".to_string(),
            _ => crate::isolation::required_query(&api, path, method),
        };
        let concrete = format!("{concrete}{query}");
        let m = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
        for key in [&a.admin, &a.reviewer, &a.agent] {
            let body = match (path, m.clone()) {
                (_, Method::GET | Method::DELETE) => None,
                ("/v1/decisions/{id}/consume", _) => Some(
                    json!({"receipt": bd.allowed["final"]["receipt"], "args": {"alert_id": "B-SECRET-1"}, "consumer": "a"}),
                ),
                ("/v1/reviews", _) => Some(json!({"title": "a's review of b", "decision_ids": [bd.pending]})),
                ("/v1/cases/{id}/decision", _) => Some(json!({"decision": "approve", "rationale": "a approves b"})),
                _ => Some(crate::isolation::sample_body(&api, path, &m, true)),
            };
            let (code, out) = s.call(key, m.clone(), &concrete, body).await;
            called += 1;
            let text = out.to_string();
            assert!(
                leaks(&text).is_none(),
                "{m} {concrete} with a key of team-a answered {code} with B's data: {text}"
            );
            assert!(code != 500, "{m} {concrete}: {text}");
        }
    }
    assert!(called > 150, "every route, three keys: {called}");
    // B's things are as B left them
    let (code, d) = s.get(&b.agent, &format!("/v1/decisions/{}", bd.pending)).await;
    assert_eq!((code, d["status"].as_str()), (200, Some("pending")), "{d}");
    let (_, c) = s.get(&b.reviewer, &format!("/v1/cases/{}", bd.case)).await;
    let count = |v: &Value| v.as_array().map_or(0, Vec::len);
    assert_eq!(
        (c["state"].as_str(), c["claim"].is_null(), count(&c["comments"]), count(&c["answers"])),
        (Some("open"), true, 0, 0),
        "{c}"
    );
    let (_, allowed) = s.get(&b.agent, &format!("/v1/decisions/{}", bd.allowed["id"].as_str().unwrap())).await;
    assert!(allowed["outcome"].is_null() && allowed["tool_result"].is_null(), "{allowed}");
    let (_, hooks) = s.get(&b.admin, "/v1/webhooks").await;
    assert!(hooks.as_array().unwrap().iter().any(|h| h["id"] == bd.webhook.as_str() && h["active"] == true), "{hooks}");
    let (_, keys) = s.get(&b.admin, "/v1/keys").await;
    assert!(keys.as_array().unwrap().iter().all(|k| k["revoked_at"].is_null() && k["project"] == "team-b"), "{keys}");
    let (_, policy) = s.get(&b.admin, "/v1/policy").await;
    assert_eq!(policy["hash"].as_str(), Some(b_hash.as_str()), "B's policy is still B's");
    let (code, verify) = s.get(&b.admin, "/v1/audit/verify").await;
    assert_eq!((code, verify["ok"].as_bool()), (200, Some(true)), "{verify}");
    let (_, events) = s.get(&b.admin, "/v1/audit/events?limit=1000").await;
    let actors: Vec<&str> = events["events"]
        .as_array()
        .or(events.as_array())
        .into_iter()
        .flatten()
        .filter_map(|e| e["actor"].as_str())
        .collect();
    assert!(actors.iter().all(|a| !a.starts_with("team-a")), "no event of team-a's keys in B's chain: {actors:?}");
    // B's span still belongs to B's run
    let (_, trace) = s.get(&b.reviewer, &format!("/v1/traces/{TRACE_B}")).await;
    assert!(trace.to_string().contains("teamb-span"), "{trace}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_cannot_step_into_another_project_but_a_server_admin_can() {
    let s = TestServer::start().await;
    let a = team(&s, "team-a").await;
    let b = team(&s, "team-b").await;
    let bd = b_data(&s, &b).await;
    let in_b =
        |key: &str, path: &str| s.http.get(s.at(path)).bearer_auth(key).header("arbiter-project", "team-b").send();
    for key in [&a.agent, &a.reviewer, &a.admin] {
        let r = in_b(key, &format!("/v1/cases/{}", bd.case)).await.unwrap();
        let (code, body) = (r.status().as_u16(), r.text().await.unwrap());
        assert_eq!(code, 403, "{body}");
        assert!(body.contains("belongs to project `team-a`") && leaks(&body).is_none(), "{body}");
    }
    // a malformed or unknown project is a clear error
    let r =
        s.http.get(s.at("/v1/cases")).bearer_auth(&s.admin).header("arbiter-project", "Team B").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 422);
    let r = s.http.get(s.at("/v1/cases")).bearer_auth(&s.admin).header("arbiter-project", "nope").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert!(r.text().await.unwrap().contains("no project `nope`"));
    // the server admin acts in B on purpose, and sees B's case there only
    let r = in_b(&s.admin, &format!("/v1/cases/{}", bd.case)).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let (code, _) = s.get(&s.admin, &format!("/v1/cases/{}", bd.case)).await;
    assert_eq!(code, 404, "without the header the server admin acts in the default project");
    // projects: a server admin lists all, a project's people their own; only a server admin creates one
    let (_, all) = s.get(&s.admin, "/v1/projects").await;
    let ids: Vec<&str> = all.as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["default", "team-a", "team-b"]);
    let (_, own) = s.get(&a.admin, "/v1/projects").await;
    assert_eq!(own.as_array().unwrap().len(), 1);
    assert_eq!(own[0]["id"], "team-a");
    let (code, _) = s.post(&a.admin, "/v1/projects", json!({"id": "team-c"})).await;
    assert_eq!(code, 403);
    let (code, e) = s.post(&s.admin, "/v1/projects", json!({"id": "team-b"})).await;
    assert_eq!(code, 409, "{e}");
    let (code, e) = s.post(&s.admin, "/v1/projects", json!({"id": "Team C"})).await;
    assert_eq!((code, e["field"].as_str()), (422, Some("id")), "{e}");
    // the metrics tell the projects apart
    let m = s.http.get(s.at("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(
        m.contains(r#"arbiter_decisions_total{verdict="escalate",action="isolate_host",project="team-b"} 1"#),
        "{m}"
    );
    assert!(m.contains(r#"arbiter_open_cases{project="team-b"} 1"#), "{m}");
    assert!(m.contains(r#"arbiter_open_cases{project="team-a"} 0"#), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reviewer_of_one_project_sees_nothing_of_another_in_the_console() {
    let s = TestServer::start().await;
    let a = team(&s, "team-a").await;
    let b = team(&s, "team-b").await;
    let bd = b_data(&s, &b).await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let sign_in = |key: String| {
        let (http, url) = (http.clone(), s.at("/login"));
        async move {
            let r = http.post(url).form(&[("key", key.as_str()), ("next", "/queue")]).send().await.unwrap();
            assert_eq!(r.status().as_u16(), 303);
            r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string()
        }
    };
    let cookie = sign_in(a.reviewer.clone()).await;
    let pages = [
        "/queue".to_string(),
        "/cases".into(),
        "/cases?q=teamb".into(),
        "/reviews".into(),
        "/audits".into(),
        "/dashboard".into(),
        "/lessons".into(),
        "/search?q=teamb".into(),
        "/suggestions".into(),
        "/policy".into(),
        format!("/cases/{}", bd.case),
        format!("/reviews/{}", bd.review),
        format!("/decisions/{}", bd.pending),
    ];
    for page in &pages {
        let r = http.get(s.at(page)).header("cookie", &cookie).send().await.unwrap();
        let code = r.status().as_u16();
        let body = r.text().await.unwrap();
        assert!(code == 200 || code == 404, "{page}: {code} {body}");
        assert!(leaks(&body).is_none(), "{page} shows B's data to team-a's reviewer: {:?}", leaks(&body));
    }
    // the queue of B's reviewer has B's case: the pages do show a project's own data
    let cookie_b = sign_in(b.reviewer.clone()).await;
    let queue = http.get(s.at("/queue")).header("cookie", &cookie_b).send().await.unwrap().text().await.unwrap();
    assert!(queue.contains("srv-teamb-9") || queue.contains(&bd.case), "{queue}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_admin_switches_the_console_between_projects_and_nobody_else_can() {
    let s = TestServer::start().await;
    let a = team(&s, "team-a").await;
    let b = team(&s, "team-b").await;
    let bd = b_data(&s, &b).await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let sign_in = |key: String| {
        let (http, url) = (http.clone(), s.at("/login"));
        async move {
            let r = http.post(url).form(&[("key", key.as_str()), ("next", "/queue")]).send().await.unwrap();
            r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string()
        }
    };
    let page = |cookie: String, path: String| {
        let (http, url) = (http.clone(), s.at(&path));
        async move { http.get(url).header("cookie", cookie).send().await.unwrap().text().await.unwrap() }
    };
    let csrf = |html: &str| {
        let at = html.find("name=\"csrf\" value=\"").expect("a form with its CSRF token") + 19;
        html[at..at + 32].to_string()
    };
    // the server admin sees the switcher with every project, and after switching, B's case
    let admin = sign_in(s.admin.clone()).await;
    let queue = page(admin.clone(), "/queue".into()).await;
    assert!(queue.contains(r#"<option value="team-b">"#), "{queue}");
    let r = http
        .post(s.at("/project"))
        .header("cookie", &admin)
        .form(&[("project", "team-b"), ("csrf", csrf(&queue).as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    let chosen = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    assert_eq!(chosen, "arbiter_project=team-b");
    let both = format!("{admin}; {chosen}");
    let case = page(both.clone(), format!("/cases/{}", bd.case)).await;
    assert!(case.contains("srv-teamb-9"), "{case}");
    assert!(page(both, "/queue".into()).await.contains(r#"<option value="team-b" selected>"#));
    // team-a's reviewer has no switcher, cannot switch, and a forged cookie changes nothing
    let reviewer = sign_in(a.reviewer.clone()).await;
    let queue = page(reviewer.clone(), "/queue".into()).await;
    assert!(!queue.contains("<select id=\"project\"") && queue.contains("team-a"), "{queue}");
    let r = http
        .post(s.at("/project"))
        .header("cookie", &reviewer)
        .form(&[("project", "team-b"), ("csrf", csrf(&queue).as_str())])
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("set-cookie").is_none(), "no switch for a project's reviewer");
    let forged = format!("{reviewer}; arbiter_project=team-b");
    let case = page(forged, format!("/cases/{}", bd.case)).await;
    assert!(leaks(&case).is_none(), "{case}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_acts_in_another_project_with_the_role_its_admin_gave_them() {
    membership(TestServer::start().await).await;
}

async fn membership(s: TestServer) {
    let a = team(&s, "team-a").await;
    let b = team(&s, "team-b").await;
    let bd = b_data(&s, &b).await;
    let in_b = |key: &str, method: Method, path: &str, body: Option<Value>| {
        let mut r = s.http.request(method, s.at(path)).bearer_auth(key).header("arbiter-project", "team-b");
        if let Some(body) = body {
            r = r.json(&body);
        }
        async move {
            let r = r.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let grant = json!({"principal": "team-a-reviewer", "home": "team-a", "role": "reviewer", "tags": ["soc_analyst"]});
    // only B's admins (and server admins) give roles in B; only to a person's key of another project
    let (code, _) = s.post(&a.admin, "/v1/projects/team-b/members", grant.clone()).await;
    assert_eq!(code, 403);
    for (bad, field) in [
        (json!({"principal": "team-a-agent", "home": "team-a", "role": "reviewer"}), "principal"),
        (json!({"principal": "team-a-reviewer", "home": "team-a", "role": "agent"}), "role"),
        (json!({"principal": "team-b-reviewer", "home": "team-b", "role": "admin"}), "home"),
        (json!({"principal": "nobody", "home": "team-a", "role": "reviewer"}), "principal"),
    ] {
        let (code, e) = s.post(&b.admin, "/v1/projects/team-b/members", bad).await;
        assert_eq!((code, e["field"].as_str()), (422, Some(field)), "{e}");
    }
    let (code, before) = in_b(&a.reviewer, Method::GET, &format!("/v1/cases/{}", bd.case), None).await;
    assert_eq!(code, 403, "{before}");
    assert!(before["detail"].as_str().unwrap().contains("has no role there"), "{before}");
    let (code, m) = s.post(&b.admin, "/v1/projects/team-b/members", grant).await;
    assert_eq!((code, m["role"].as_str(), m["home"].as_str()), (200, Some("reviewer"), Some("team-a")), "{m}");
    // now A's reviewer reads and answers B's case in B, as a reviewer of B; without the header, still A only
    let (code, case) = in_b(&a.reviewer, Method::GET, &format!("/v1/cases/{}", bd.case), None).await;
    assert_eq!((code, case["id"].as_str()), (200, Some(bd.case.as_str())), "{case}");
    let (code, _) = s.get(&a.reviewer, &format!("/v1/cases/{}", bd.case)).await;
    assert_eq!(code, 404);
    let answer = json!({"decision": "approve", "rationale": "checked with team B"});
    let (code, out) = in_b(&a.reviewer, Method::POST, &format!("/v1/cases/{}/decision", bd.case), Some(answer)).await;
    assert_eq!(code, 200, "{out}");
    let (_, d) = s.get(&b.agent, &format!("/v1/decisions/{}", bd.pending)).await;
    assert_eq!(d["final"]["decided_by"], json!(["team-a-reviewer"]), "{d}");
    // the role is a reviewer's: no keys of B for them; and the projects they may act in
    let (code, _) = in_b(&a.reviewer, Method::GET, "/v1/keys", None).await;
    assert_eq!(code, 403);
    let (_, mine) = s.get(&a.reviewer, "/v1/projects").await;
    let ids: Vec<&str> = mine.as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["team-a", "team-b"]);
    let (_, members) = s.get(&b.admin, "/v1/projects/team-b/members").await;
    assert_eq!(members.as_array().unwrap().len(), 1, "{members}");
    let (code, _) = s.get(&a.admin, "/v1/projects/team-b/members").await;
    assert_eq!(code, 403);
    // the grant is in B's chain, not A's
    let (_, events) = s.get(&b.admin, "/v1/audit/events?limit=1000").await;
    assert!(events.to_string().contains("membership.granted"), "{events}");
    let (_, events) = s.get(&a.admin, "/v1/audit/events?limit=1000").await;
    assert!(!events.to_string().contains("membership.granted"));
    // the console offers the switch, and after switching shows B's case with the reviewer's role there
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let login =
        http.post(s.at("/login")).form(&[("key", a.reviewer.as_str()), ("next", "/queue")]).send().await.unwrap();
    let cookie = login.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let queue = http.get(s.at("/queue")).header("cookie", &cookie).send().await.unwrap().text().await.unwrap();
    assert!(queue.contains(r#"<option value="team-b">"#), "{queue}");
    let in_team_b = format!("{cookie}; arbiter_project=team-b");
    let page = http.get(s.at(&format!("/cases/{}", bd.case))).header("cookie", &in_team_b).send().await.unwrap();
    assert!(page.text().await.unwrap().contains("srv-teamb-9"));
    // revoked: refused again at once (and a second revocation finds nothing)
    let member = "/v1/projects/team-b/members/team-a-reviewer@team-a";
    let (code, _) = s.call(&b.admin, Method::DELETE, member, None).await;
    assert_eq!(code, 204);
    let (code, _) = in_b(&a.reviewer, Method::GET, "/v1/queue", None).await;
    assert_eq!(code, 403);
    let (code, _) = s.call(&b.admin, Method::DELETE, member, None).await;
    assert_eq!(code, 404);
    let page = http.get(s.at(&format!("/cases/{}", bd.case))).header("cookie", &in_team_b).send().await.unwrap();
    assert!(leaks(&page.text().await.unwrap()).is_none(), "the switch is gone with the role");
}
