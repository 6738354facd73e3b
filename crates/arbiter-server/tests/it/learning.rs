//! Learning over HTTP: lessons from closed
//! reviews, search, case insights, guidance, datasets, rule suggestions, the
//! intervention backtest and recurrence.

use crate::support::{TestServer, isolate};
use serde_json::{Value, json};
use std::time::Duration;

const HOUR: u64 = 3600;

/// Work a review of `decision` through its stages with a tool change linked
/// to `version`, backtest it and close it; returns the review id.
async fn closed_review(s: &TestServer, eng: &str, decision: &str, case: &str, version: &str) -> String {
    let (code, r) =
        s.post(eng, "/v1/reviews", json!({"title": "Workstations isolated on benign alerts", "from_case": case})).await;
    assert_eq!(code, 201, "{r}");
    let rid = r["id"].as_str().unwrap().to_string();
    let stages = format!("/v1/reviews/{rid}/stages");
    for body in [
        json!({"stage": "contextual_analysis", "reproduced": "yes", "steps": ["replayed alert A-7"], "environment": "staging"}),
        json!({"stage": "trace_inspection", "findings": [{"decision_id": decision, "kind": "misread_intent", "note": "took a benign beacon for ransomware"}]}),
        json!({"stage": "impact_assessment", "severity": "S3", "scope": {"count": 1, "entities": []}, "technical_correctness": "wrong action", "user_experience": "an employee offline"}),
        json!({"stage": "resolution_design", "interventions": [
            {"kind": "tool_change", "description": "analyst confirms before isolate_host", "owner": "eve", "expected_effect": "no unconfirmed isolations", "policy_version": version},
            {"kind": "prompt_refinement", "description": "Check the alert's process tree before isolating.", "owner": "eve", "expected_effect": "fewer wrong isolations"}]}),
    ] {
        let mut body = body;
        body["role"] = json!("engineering");
        body["rationale"] = json!("from the replay and the decision log");
        let (code, e) = s.post(eng, &stages, body).await;
        assert_eq!(code, 201, "{e}");
    }
    let (code, e) = s.post(eng, &format!("/v1/reviews/{rid}/interventions/0/check"), json!({})).await;
    assert_eq!(code, 200, "{e}");
    let (code, e) = s.post(eng, &format!("/v1/reviews/{rid}/interventions/0"), json!({"status": "done"})).await;
    assert_eq!(code, 200, "{e}");
    let (code, e) = s
        .post(eng, &format!("/v1/reviews/{rid}/close"), json!({"reason": "a confirmation step now guards isolations"}))
        .await;
    assert_eq!(code, 200, "{e}");
    rid
}

/// The test policy plus a confirmation trigger on isolations, stored (not active); returns its hash.
async fn confirmation_version(s: &TestServer) -> String {
    let src = format!(
        "{}  - name: confirm_isolation\n    actions: [isolate_host]\n    when: '!(has(signals.confirmed) && signals.confirmed == true)'\n    verdict: escalate\n",
        crate::support::POLICY
    );
    let r = s
        .http
        .post(s.at("/v1/policy/versions"))
        .bearer_auth(&s.admin)
        .header("content-type", "application/yaml")
        .body(src)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["active"], false, "a draft is stored, not activated");
    v["hash"].as_str().unwrap().to_string()
}

/// A decision is found by the identifiers in its arguments and context (an
/// alert id, a host, a user), not only by its rationale's words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_is_found_by_its_alert_id_host_and_user() {
    let s = TestServer::start().await;
    let agent = s.key("soc-agent", "agent", &[]).await;
    let ann = s.key("ann", "reviewer", &["soc_analyst"]).await;
    let (code, d) = s
        .post(
            &agent,
            "/v1/decisions",
            json!({"action": {"name": "isolate_host", "confidence": 0.8,
                              "args": {"host": "srv-77", "host_tags": ["workstation"], "user": "jdoe"}},
                   "context": {"alert_id": "A-9182", "ticket": {"queue": "soc-tier1"}}}),
        )
        .await;
    assert_eq!((code, d["verdict"].as_str()), (201, Some("escalate")), "{d}");
    let case = d["case_id"].as_str().unwrap();
    let (code, e) = s
        .post(
            &ann,
            &format!("/v1/cases/{case}/decision"),
            json!({"decision": "reject", "rationale": "benign scanner traffic"}),
        )
        .await;
    assert_eq!(code, 200, "{e}");
    for q in ["A-9182", "jdoe", "srv-77", "soc-tier1"] {
        let (code, r) = s.get(&ann, &format!("/v1/search?q={q}&kind=decision")).await;
        assert_eq!(code, 200, "{r}");
        assert_eq!(r["hits"][0]["id"], d["id"], "{q}: {r}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_review_becomes_an_audited_searchable_lesson() {
    let s = TestServer::start().await;
    let agent = s.key("soc-agent", "agent", &[]).await;
    let eng = s.key("eve", "reviewer", &["engineering", "soc_analyst"]).await;
    let version = confirmation_version(&s).await;
    let (did, case) = s.escalate(&agent, isolate("ws-7", &["workstation"], 0.8)).await;
    let (code, e) = s.post(&eng, &format!("/v1/cases/{case}/decision"), json!({"decision": "reject", "rationale": "benign beacon from the backup agent", "failure_modes": ["wrong_target"]})).await;
    assert_eq!(code, 200, "{e}");
    let rid = closed_review(&s, &eng, &did, &case, &version).await;

    let (code, lessons) = s.get(&eng, "/v1/lessons").await;
    assert_eq!(code, 200);
    let l = &lessons[0];
    let id = l["id"].as_str().unwrap().to_string();
    assert_eq!(l["review_id"], rid);
    assert_eq!(l["failure_modes"], json!(["misread_intent", "wrong_target"]));
    assert_eq!(l["action_classes"], json!(["isolate_host"]));
    assert_eq!(l["decision_ids"], json!([did]));
    assert_eq!(l["answers"][0]["verdict"], "deny");
    assert_eq!(l["guidance"], json!(["Check the alert's process tree before isolating."]));
    assert_eq!(l["publish"], false);
    // edits are audited and visible as history
    let (code, e) = s.patch(&eng, &format!("/v1/lessons/{id}"), json!({"title": ""})).await;
    assert_eq!((code, e["field"].as_str()), (422, Some("title")), "{e}");
    let (code, e) = s.patch(&eng, &format!("/v1/lessons/{id}"), json!({"publish": true, "surprise": 1})).await;
    assert_eq!(code, 422, "unknown fields are refused: {e}");
    let (code, edited) = s
        .patch(
            &eng,
            &format!("/v1/lessons/{id}"),
            json!({"publish": true, "root_cause": "the agent reads beacons as ransomware"}),
        )
        .await;
    assert_eq!(code, 200, "{edited}");
    assert_eq!(edited["revision"], 2);
    let (_, view) = s.get(&eng, &format!("/v1/lessons/{id}")).await;
    let kinds: Vec<&str> = view["history"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["lesson.created", "lesson.updated"]);
    assert_eq!(view["history"][1]["data"]["changed"], json!(["root_cause", "publish"]));
    assert_eq!(view["history"][1]["actor"], "eve");
    assert_eq!(view["recurrence"], json!([]), "the version never went live");
    let (code, _) = s.post(&eng, "/v1/lessons", json!({"review_id": rid})).await;
    assert_eq!(code, 409, "a review has one lesson");
    assert_eq!(s.get(&eng, "/v1/lessons/nope").await.0, 404);
    assert_eq!(s.get(&agent, "/v1/lessons").await.0, 403);

    // search: the lesson, the review, and the reviewer's rationale
    let search = |q: &str| {
        let path = format!("/v1/search?{q}");
        let (s, eng) = (&s, eng.clone());
        async move { s.get(&eng, &path).await }
    };
    let (code, r) = search("q=beacon").await;
    assert_eq!(code, 200, "{r}");
    let kinds: Vec<&str> = r["hits"].as_array().unwrap().iter().map(|h| h["kind"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"lesson") && kinds.contains(&"review"), "{r}");
    let (_, r) = search("q=backup%20agent&kind=decision").await;
    assert_eq!(r["hits"][0]["id"], did, "{r}");
    let (_, r) = search("q=backup&kind=decision&failure_mode=wrong_target&action=isolate_host&agent=soc-agent").await;
    assert_eq!(r["hits"].as_array().unwrap().len(), 1, "{r}");
    let (_, r) = search("q=backup&kind=decision&since=2099-01-01T00:00:00Z").await;
    assert_eq!(r["hits"].as_array().unwrap().len(), 0, "{r}");
    assert_eq!(search("q=%20%2C").await.0, 422);
    assert_eq!(search("q=x&kind=everything").await.0, 422);

    // guidance for the agent, from the published lesson, with its citation
    let (code, g) = s.get(&agent, "/v1/guidance?action=isolate_host").await;
    assert_eq!(code, 200, "{g}");
    let texts: Vec<&str> = g["items"].as_array().unwrap().iter().map(|i| i["text"].as_str().unwrap()).collect();
    assert!(texts.contains(&"analyst confirms before isolate_host"), "the done tool change is a required step: {g}");
    assert!(texts.iter().any(|t| t.contains("benign beacon from the backup agent")), "{g}");
    assert!(g["items"].as_array().unwrap().iter().all(|i| i["lessons"] == json!([id])));
    let text =
        s.http.get(s.at("/v1/guidance?action=isolate_host&format=text")).bearer_auth(&agent).send().await.unwrap();
    assert_eq!(text.headers()["content-type"], "text/plain; charset=utf-8");
    let text = text.text().await.unwrap();
    assert!(text.contains(&format!("- Required: analyst confirms before isolate_host [lesson {id}]")), "{text}");
    let (_, other) = s.get(&agent, "/v1/guidance?action=close_alert").await;
    assert_eq!(other["items"], json!([]));

    // the reviewed decision as dataset lines
    for (format, check) in [("examples", "label"), ("chat", "messages")] {
        let r =
            s.http.get(s.at(&format!("/v1/datasets/reviewed?format={format}"))).bearer_auth(&eng).send().await.unwrap();
        assert_eq!(r.headers()["content-type"], "application/x-ndjson");
        let body = r.text().await.unwrap();
        let lines: Vec<Value> = body.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 1, "{body}");
        assert!(lines[0].get(check).is_some(), "{body}");
    }
    let (_, v) = s.get(&s.admin, "/v1/audit/verify").await;
    assert_eq!(v["ok"], true, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reviewer_sees_similar_cases_and_the_blast_radius() {
    let s = TestServer::start().await;
    let agent = s.loader("soc-agent").await;
    let ann = s.key("ann", "reviewer", &["soc_analyst"]).await;
    // yesterday: two isolations of ws-1 answered by people, one refused
    let (_, c1) = s.escalate(&agent, isolate("ws-1", &["workstation"], 0.8)).await;
    s.post(
        &ann,
        &format!("/v1/cases/{c1}/decision"),
        json!({"decision": "reject", "rationale": "the beacon was our backup agent"}),
    )
    .await;
    let (_, c2) = s.escalate(&agent, isolate("ws-1", &["workstation"], 0.8)).await;
    s.post(
        &ann,
        &format!("/v1/cases/{c2}/decision"),
        json!({"decision": "approve", "rationale": "confirmed ransomware"}),
    )
    .await;
    s.advance(Duration::from_secs(24 * HOUR));
    // now: a burst of isolations on other hosts, then ws-1 again
    for i in 0..5 {
        s.escalate(&agent, isolate(&format!("ws-{}", 10 + i), &["workstation"], 0.8)).await;
    }
    let (_, case) = s.escalate(&agent, isolate("ws-1", &["workstation"], 0.8)).await;
    let (code, ins) = s.get(&ann, &format!("/v1/cases/{case}/insights")).await;
    assert_eq!(code, 200, "{ins}");
    let similar = ins["similar_cases"].as_array().unwrap();
    assert_eq!(similar.len(), 2, "{ins}");
    assert_eq!(similar[0]["subject"], "host:ws-1");
    assert!(
        similar
            .iter()
            .any(|c| c["verdict"] == "deny"
                && c["rationale"].as_str().unwrap().contains("the beacon was our backup agent")),
        "{ins}"
    );
    let b = &ins["blast_radius"];
    assert_eq!((b["last_hour"].as_u64(), b["distinct_subjects_hour"].as_u64()), (Some(6), Some(6)), "{b}");
    assert_eq!(b["subject"], "host:ws-1");
    assert_eq!(b["subject_total"], 2);
    assert_eq!(b["subject_history"][0]["verdict"], "allow");
    assert_eq!(b["agent_7d"]["reviewed"], 2);
    assert_eq!(b["override_rate_7d"], 0.5);
    assert!(b["summary"].as_str().unwrap().contains("6 time(s) in the last hour"), "{b}");
    assert_eq!(s.get(&agent, &format!("/v1/cases/{case}/insights")).await.0, 403);
    assert_eq!(s.get(&ann, "/v1/cases/nope/insights").await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanimous_answers_become_a_suggested_rule_in_a_draft_version() {
    let s = TestServer::start().await;
    let agent = s.loader("soc-agent").await;
    let ann = s.key("ann", "reviewer", &["soc_analyst"]).await;
    for i in 0..21 {
        let mut a = isolate(&format!("ws-{i}"), &["workstation"], 0.8);
        a["signals"] = json!({"alert_type": "ransomware"});
        let (_, case) = s.escalate(&agent, a).await;
        let (code, e) = s
            .post(
                &ann,
                &format!("/v1/cases/{case}/decision"),
                json!({"decision": "approve", "rationale": "ransomware on a workstation: isolate"}),
            )
            .await;
        assert_eq!(code, 200, "{e}");
    }
    assert_eq!(s.post(&ann, "/v1/suggestions/refresh", json!({})).await.0, 403, "admins refresh");
    let (code, list) = s.post(&s.admin, "/v1/suggestions/refresh", json!({"days": 30, "min_support": 20})).await;
    assert_eq!(code, 200, "{list}");
    let found = list["suggestions"].as_array().unwrap();
    let sug =
        found.iter().find(|x| x["condition"].as_str().unwrap().contains("ransomware")).expect("the ransomware pattern");
    assert_eq!(sug["verdict"], "allow");
    assert!(sug["description"].as_str().unwrap().contains("approved unchanged 21 of 21 times in 30 days"), "{sug}");
    assert_eq!(sug["backtest"]["escalations_saved"], 21, "{sug}");
    assert_eq!(sug["backtest"]["against_reviewers"], 0);
    let id = sug["id"].as_str().unwrap();
    let (_, again) = s.post(&s.admin, "/v1/suggestions/refresh", json!({})).await;
    assert_eq!(again["suggestions"].as_array().unwrap().len(), found.len(), "not offered twice");
    let (code, accepted) = s.post(&s.admin, &format!("/v1/suggestions/{id}/accept"), json!({})).await;
    assert_eq!(code, 200, "{accepted}");
    assert_eq!(accepted["suggestion"]["state"], "accepted");
    let draft = accepted["draft"]["hash"].as_str().unwrap();
    assert_eq!(accepted["draft"]["active"], false, "accepting never activates");
    let (_, v) = s.get(&s.admin, &format!("/v1/policy/versions/{draft}")).await;
    assert!(v["source"].as_str().unwrap().contains(sug["trigger"].as_str().unwrap()), "{v}");
    assert_ne!(s.get(&s.admin, "/v1/policy").await.1["hash"], draft);
    assert_eq!(s.post(&s.admin, &format!("/v1/suggestions/{id}/accept"), json!({})).await.0, 409);
    let (_, open) = s.get(&ann, "/v1/suggestions").await;
    assert!(open["suggestions"].as_array().unwrap().iter().all(|x| x["id"] != id));
    let (_, all) = s.get(&ann, "/v1/suggestions?all=true").await;
    assert!(all["suggestions"].as_array().unwrap().iter().any(|x| x["id"] == id));
    s.advance(Duration::from_secs(15 * 24 * HOUR));
    let (_, open) = s.get(&ann, "/v1/suggestions").await;
    assert_eq!(open["suggestions"], json!([]), "suggestions expire");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_backtest_keeps_the_review_open_and_recurrence_is_measured_after_activation() {
    let s = TestServer::start().await;
    let agent = s.loader("soc-agent").await;
    let eng = s.key("eve", "reviewer", &["engineering", "soc_analyst"]).await;
    // a version under which the failing decision would still pass: the check fails
    let lax = format!(
        "{}  - name: allow_all_isolations\n    actions: [isolate_host]\n    when: 'confidence != null && confidence >= 0.5'\n    verdict: allow\n",
        crate::support::POLICY
    );
    let r = s
        .http
        .post(s.at("/v1/policy/versions"))
        .bearer_auth(&s.admin)
        .header("content-type", "application/yaml")
        .body(lax)
        .send()
        .await
        .unwrap();
    let lax: Value = r.json().await.unwrap();
    let (did, case) = s.escalate(&agent, isolate("ws-7", &["workstation"], 0.8)).await;
    let (code, r) = s.post(&eng, "/v1/reviews", json!({"title": "Wrong isolations", "from_case": case})).await;
    assert_eq!(code, 201, "{r}");
    let rid = r["id"].as_str().unwrap().to_string();
    for body in [
        json!({"stage": "contextual_analysis", "reproduced": "yes", "steps": ["replay"], "environment": "staging"}),
        json!({"stage": "trace_inspection", "findings": [{"decision_id": did, "kind": "wrong_action", "note": "no evidence"}]}),
        json!({"stage": "impact_assessment", "severity": "S3", "scope": {"count": 1, "entities": []}, "technical_correctness": "wrong", "user_experience": "offline"}),
        json!({"stage": "resolution_design", "interventions": [{"kind": "policy_change", "description": "stricter isolations", "owner": "eve", "expected_effect": "fewer", "policy_version": lax["hash"]}]}),
    ] {
        let mut body = body;
        body["role"] = json!("engineering");
        body["rationale"] = json!("from the decision log");
        assert_eq!(s.post(&eng, &format!("/v1/reviews/{rid}/stages"), body).await.0, 201);
    }
    let (code, c) = s.post(&eng, &format!("/v1/reviews/{rid}/interventions/0/check"), json!({})).await;
    assert_eq!(code, 200);
    assert_eq!(c["review"]["interventions"][0]["check"]["still_allowed"], json!([did]));
    let (code, e) = s.post(&eng, &format!("/v1/reviews/{rid}/close"), json!({"reason": "we think it is fixed"})).await;
    assert_eq!(code, 409, "{e}");
    assert!(e["detail"].as_str().unwrap().contains("would now be escalated or denied"), "{e}");
    // the stricter version passes, goes live, and the review closes
    let strict = confirmation_version(&s).await;
    assert_eq!(
        s.post(&eng, &format!("/v1/reviews/{rid}/interventions/0"), json!({"policy_version": strict})).await.0,
        200
    );
    assert_eq!(s.post(&eng, &format!("/v1/reviews/{rid}/interventions/0/check"), json!({})).await.0, 200);
    assert_eq!(
        s.post(&eng, &format!("/v1/reviews/{rid}/close"), json!({"reason": "the stricter version is backtested"}))
            .await
            .0,
        200
    );
    let (_, lessons) = s.get(&eng, "/v1/lessons").await;
    let id = lessons[0]["id"].as_str().unwrap().to_string();
    // before activation: a day of isolations allowed by the (lax) live policy, half of them wrong
    let lax_hash = lax["hash"].as_str().unwrap();
    s.post(&s.admin, &format!("/v1/policy/versions/{lax_hash}/activate?force=true"), json!({})).await;
    let label = |id: String, correct: bool| {
        let (s, agent) = (&s, agent.clone());
        async move {
            assert_eq!(s.post(&agent, &format!("/v1/decisions/{id}/outcome"), json!({"correct": correct})).await.0, 200)
        }
    };
    for i in 0..40 {
        let (code, d) =
            s.post(&agent, "/v1/decisions", json!({"action": isolate(&format!("h{i}"), &["workstation"], 0.8)})).await;
        assert_eq!((code, d["verdict"].as_str()), (201, Some("allow")), "{d}");
        label(d["id"].as_str().unwrap().to_string(), i % 2 == 0).await;
        s.advance(Duration::from_secs(HOUR / 2));
    }
    let (_, view) = s.get(&eng, &format!("/v1/lessons/{id}")).await;
    assert_eq!(view["recurrence"], json!([]), "not live yet");
    let (code, e) = s.post(&s.admin, &format!("/v1/policy/versions/{strict}/activate?force=true"), json!({})).await;
    assert_eq!(code, 200, "{e}");
    s.advance(Duration::from_secs(HOUR));
    let (_, view) = s.get(&eng, &format!("/v1/lessons/{id}")).await;
    assert_eq!(view["recurrence"][0]["status"], "not_enough_data", "{view}");
    // after: the same mix, now escalated and answered by people: nothing wrong runs unreviewed
    for i in 0..40 {
        let (code, d) =
            s.post(&agent, "/v1/decisions", json!({"action": isolate(&format!("k{i}"), &["workstation"], 0.8)})).await;
        assert_eq!((code, d["verdict"].as_str()), (201, Some("escalate")), "{d}");
        label(d["id"].as_str().unwrap().to_string(), i % 2 == 0).await;
        s.advance(Duration::from_secs(HOUR / 2));
    }
    let (_, view) = s.get(&eng, &format!("/v1/lessons/{id}")).await;
    let r = &view["recurrence"][0];
    assert_eq!(r["status"], "reduced", "{r}");
    assert_eq!((r["test"]["reference_events"].as_u64(), r["test"]["events"].as_u64()), (Some(20), Some(0)), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_mines_suggestions_by_itself() {
    let s = TestServer::with(crate::support::POLICY, |c| c.suggest_interval = Duration::from_millis(50)).await;
    let agent = s.loader("soc-agent").await;
    let ann = s.key("ann", "reviewer", &["soc_analyst"]).await;
    for i in 0..20 {
        let mut a = isolate(&format!("ws-{i}"), &["workstation"], 0.8);
        a["signals"] = json!({"alert_type": "phishing"});
        let (_, case) = s.escalate(&agent, a).await;
        s.post(
            &ann,
            &format!("/v1/cases/{case}/decision"),
            json!({"decision": "reject", "rationale": "a phishing click is no reason to isolate"}),
        )
        .await;
    }
    let started = std::time::Instant::now();
    loop {
        let (_, open) = s.get(&ann, "/v1/suggestions").await;
        if let Some(x) = open["suggestions"].as_array().unwrap().first() {
            assert_eq!(x["verdict"], "deny", "{x}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no suggestion was mined");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decided_cases_are_found_by_filters_a_page_at_a_time() {
    let s = TestServer::start().await;
    let agent = s.loader("soc-agent").await;
    let ann = s.key("ann", "reviewer", &["soc_analyst"]).await;
    for (i, decision) in ["reject", "approve", "reject"].iter().enumerate() {
        let (_, case) = s.escalate(&agent, isolate(&format!("ws-{i}"), &["workstation"], 0.8)).await;
        let body = json!({"decision": decision, "rationale": format!("case {i}: checked the process tree"), "failure_modes": ["wrong_target"]});
        assert_eq!(s.post(&ann, &format!("/v1/cases/{case}/decision"), body).await.0, 200);
    }
    s.escalate(&agent, isolate("ws-9", &["workstation"], 0.8)).await;
    let page = |q: &str| s.http.get(s.at(&format!("/v1/cases?{q}"))).bearer_auth(&ann).send();
    let r = page("kind=approval&state=decided&verdict=deny&limit=1").await.unwrap();
    let link = r.headers()["link"].to_str().unwrap().to_string();
    let first: Value = r.json().await.unwrap();
    assert_eq!(first[0]["subject"], "host:ws-2", "newest first, with its subject");
    assert!(
        link.starts_with("</v1/cases?kind=approval&state=decided&verdict=deny&limit=1&cursor=")
            && link.ends_with(">; rel=\"next\""),
        "{link}"
    );
    let next = link.trim_start_matches('<').split('>').next().unwrap().trim_start_matches("/v1/cases?").to_string();
    let r = page(&next).await.unwrap();
    assert!(r.headers().get("link").is_none(), "the last page");
    let second: Value = r.json().await.unwrap();
    assert_eq!(second.as_array().unwrap().len(), 1);
    assert_eq!(second[0]["subject"], "host:ws-0");
    for (q, n) in [
        ("source=review&reviewer=ann", 3),
        ("subject=host:ws-1", 1),
        ("failure_mode=wrong_target&state=decided", 3),
        ("q=process%20tree", 3),
        ("state=open,claimed", 1),
    ] {
        let v: Value = page(q).await.unwrap().json().await.unwrap();
        assert_eq!(v.as_array().unwrap().len(), n, "{q}: {v}");
    }
    for bad in ["verdict=escalate", "source=nobody", "cursor=x", "q=%2C%3B"] {
        assert_eq!(page(bad).await.unwrap().status(), 422, "{bad}");
    }
}

/// The trust review's demo: the suggested tuned draft was tuned from the
/// version before the lesson, so it drops the trigger the lesson made, and
/// nothing said so; the guidance kept telling the agent the step was
/// required. Activation names the lesson and needs `force`; once forced, the
/// lesson shows the change undone by that version and the guidance no
/// longer calls the step required.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_that_undoes_a_lesson_needs_force_and_says_so() {
    let s = TestServer::start().await;
    let agent = s.key("soc-agent", "agent", &[]).await;
    let eng = s.key("eve", "reviewer", &["engineering", "soc_analyst"]).await;
    let version = confirmation_version(&s).await;
    let (did, case) = s.escalate(&agent, isolate("ws-7", &["workstation"], 0.8)).await;
    let (code, e) = s
        .post(&eng, &format!("/v1/cases/{case}/decision"), json!({"decision": "reject", "rationale": "benign beacon"}))
        .await;
    assert_eq!(code, 200, "{e}");
    closed_review(&s, &eng, &did, &case, &version).await;
    let (_, lessons) = s.get(&eng, "/v1/lessons").await;
    let id = lessons[0]["id"].as_str().unwrap().to_string();
    assert_eq!(s.patch(&eng, &format!("/v1/lessons/{id}"), json!({"publish": true})).await.0, 200);
    let activate = |hash: String, force: bool| {
        let path = format!("/v1/policy/versions/{hash}/activate{}", if force { "?force=true" } else { "" });
        let s = &s;
        async move { s.post(&s.admin, &path, json!({})).await }
    };
    let (code, e) = activate(version.clone(), false).await;
    assert_eq!(code, 200, "the lesson's own version: {e}");

    // the version from before the lesson, as a tuned draft would be
    let r = s
        .http
        .post(s.at("/v1/policy/versions"))
        .bearer_auth(&s.admin)
        .header("content-type", "application/yaml")
        .body(crate::support::POLICY.replace("auto_allow_at: 0.9", "auto_allow_at: 0.85"))
        .send()
        .await
        .unwrap();
    let tuned: Value = r.json().await.unwrap();
    let tuned = tuned["hash"].as_str().unwrap().to_string();
    let (code, p) = activate(tuned.clone(), false).await;
    assert_eq!((code, p["code"].as_str()), (409, Some("policy_undoes_lessons")), "{p}");
    assert_eq!(p["lessons"][0]["lesson_id"], id, "{p}");
    assert!(p["lessons"][0]["changes"][0].as_str().unwrap().contains("confirm_isolation"), "{p}");
    assert!(p["detail"].as_str().unwrap().contains("force"), "{p}");
    let (_, g) = s.get(&agent, "/v1/guidance?action=isolate_host").await;
    assert!(g["items"].as_array().unwrap().iter().any(|i| i["kind"] == "required_step"), "still in force: {g}");

    let (code, e) = activate(tuned.clone(), true).await;
    assert_eq!(code, 200, "{e}");
    let (_, view) = s.get(&eng, &format!("/v1/lessons/{id}")).await;
    assert_eq!(view["undone"][0]["undone_by"], tuned, "{view}");
    assert_eq!(view["undone"][0]["policy_version"], version, "{view}");
    let (_, g) = s.get(&agent, "/v1/guidance?action=isolate_host").await;
    assert!(g["items"].as_array().unwrap().iter().all(|i| i["kind"] != "required_step"), "no longer required: {g}");
}
