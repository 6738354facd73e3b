//! Audit sampling: a class with `audit_sample` sends that share of the
//! decisions it allows to an audit case. The agent is not held (its decision
//! is final at once); a reviewer labels the audit later, in the console or
//! the API, and the label becomes the decision's outcome. An audit past its
//! SLA waits in the queue (overdue) and never changes the decision; audits
//! do not count toward the cap on an agent's open approval cases.

use crate::support::TestServer;
use arbiter_server::app::sla::sweep_once;
use serde_json::{Value, json};
use std::time::Duration;

const AUDITED: &str = r#"
version: 1
policy: audited
defaults:
  reviewers: [soc_analyst]
  sla: 15m
  audit_sla: 4h
actions:
  close_alert:
    auto_allow_at: 0.9
    audit_sample: 1
  tag_alert:
    auto_allow_at: 0.5
    audit_sample: 0.25
  isolate_host:
    auto_allow_at: never
"#;

fn close(confidence: f64) -> Value {
    json!({"action": {"name": "close_alert", "confidence": confidence, "args": {"alert_id": "a-1"}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audited_decision_is_final_at_once_and_its_label_becomes_the_outcome() {
    let s = TestServer::with(AUDITED, |c| c.max_open_cases_per_agent = Some(1)).await;
    let agent = s.key("triage-agent", "agent", &[]).await;
    let ann = s.key("ann", "reviewer", &["soc_analyst"]).await;
    let bob = s.key("bob", "reviewer", &["soc_analyst"]).await;
    let outsider = s.key("olga", "reviewer", &["finance"]).await;

    // allowed and drawn (share 1): final at once, with an audit case
    let (code, d) = s.post(&agent, "/v1/decisions", close(0.95)).await;
    assert_eq!(code, 201, "{d}");
    assert_eq!((d["status"].as_str(), d["final"]["verdict"].as_str()), (Some("final"), Some("allow")), "{d}");
    assert_eq!(d["audit"], json!({"probability": 1.0, "selected": true}), "{d}");
    assert!(d.get("case_id").is_none(), "the agent has nothing to wait for: {d}");
    // below the threshold it escalates: no audit (only allowed decisions are sampled)
    let (_, esc) = s.post(&agent, "/v1/decisions", close(0.5)).await;
    assert!(esc.get("audit").is_none() && esc["case_id"].is_string(), "{esc}");
    // the agent's one open approval case is the escalation; the audit did not use the cap
    let (_, capped) = s.post(&agent, "/v1/decisions", close(0.4)).await;
    assert_eq!(capped["final"]["source"], "agent_case_cap", "{capped}");

    let (_, audits) = s.get(&ann, "/v1/cases?kind=audit&state=open").await;
    let audits = audits.as_array().unwrap();
    assert_eq!(audits.len(), 1, "{audits:?}");
    let case = audits[0]["id"].as_str().unwrap().to_string();
    assert_eq!(audits[0]["decision_id"], d["id"]);
    assert_eq!(audits[0]["escalation"]["sla"], "4h", "the audit's own SLA");
    // it is not in the approval queue: nobody is waiting on it
    let (_, q) = s.get(&ann, "/v1/queue").await;
    assert!(!q.to_string().contains(&case), "{q}");

    // past its SLA the audit stays open (overdue); the decision does not change
    s.advance(Duration::from_secs(5 * 3600));
    sweep_once(&s.state).await.unwrap();
    let (_, c) = s.get(&ann, &format!("/v1/cases/{case}")).await;
    assert_eq!(c["state"], "open", "{c}");

    // claims work as on approval cases; only the holder (and reviewers of the class's roles) may label
    assert_eq!(s.post(&ann, &format!("/v1/cases/{case}/claim"), json!({})).await.0, 200);
    let (code, e) = s.post(&bob, &format!("/v1/cases/{case}/label"), json!({"correct": false})).await;
    assert_eq!((code, e["code"].as_str()), (409, Some("case_held")), "{e}");
    let (code, e) = s.post(&outsider, &format!("/v1/cases/{case}/label"), json!({"correct": false})).await;
    assert_eq!((code, e["code"].as_str()), (403, Some("wrong_role")), "{e}");
    let (code, e) = s
        .post(
            &ann,
            &format!("/v1/cases/{case}/decision"),
            json!({"decision": "approve", "rationale": "looks fine to me"}),
        )
        .await;
    assert_eq!((code, e["code"].as_str()), (409, Some("wrong_kind")), "an audit is labelled, not answered: {e}");
    let (code, r) = s
        .post(&ann, &format!("/v1/cases/{case}/label"), json!({"correct": false, "note": "the alert was a real phish"}))
        .await;
    assert_eq!(code, 200, "{r}");
    assert_eq!(r["case"]["state"], "closed");
    assert_eq!(
        (r["decision"]["outcome"]["correct"].as_bool(), r["decision"]["outcome"]["label"].as_str()),
        (Some(false), Some("audit"))
    );
    assert_eq!(r["decision"]["final"]["verdict"], "allow", "a label never changes the decision");
    let (_, stored) = s.get(&ann, &format!("/v1/decisions/{}", d["id"].as_str().unwrap())).await;
    assert_eq!(stored["outcome"]["recorded_by"], "ann");
    assert_eq!(stored["outcome"]["note"], "the alert was a real phish");
    let (code, e) = s.post(&ann, &format!("/v1/cases/{case}/label"), json!({"correct": true})).await;
    assert_eq!((code, e["code"].as_str()), (409, Some("not_open")), "{e}");
    let (_, events) = s.get(&s.admin, &format!("/v1/cases/{case}/events")).await;
    assert!(events.to_string().contains("audit.labelled"), "{events}");

    // the console lists audits and labels them
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = http.post(s.at("/login")).form(&[("key", bob.as_str()), ("next", "/audits")]).send().await.unwrap();
    let cookie = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let (_, d2) = s.post(&agent, "/v1/decisions", close(0.99)).await;
    let (_, open) = s.get(&bob, "/v1/cases?kind=audit&state=open").await;
    let case2 = open[0]["id"].as_str().unwrap().to_string();
    let page = http.get(s.at("/audits")).header("cookie", &cookie).send().await.unwrap().text().await.unwrap();
    assert!(page.contains(&case2) && !page.contains(&case), "waiting audits only");
    let page = http.get(s.at(&format!("/cases/{case2}"))).header("cookie", &cookie).send().await.unwrap();
    let html = page.text().await.unwrap();
    assert!(html.contains("Label this audit"), "{html}");
    let csrf = html.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    let r = http
        .post(s.at(&format!("/cases/{case2}/act")))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str()), ("op", "label"), ("correct", "true"), ("note", "")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let (_, stored) = s.get(&bob, &format!("/v1/decisions/{}", d2["id"].as_str().unwrap())).await;
    assert_eq!(
        (stored["outcome"]["correct"].as_bool(), stored["outcome"]["recorded_by"].as_str()),
        (Some(true), Some("bob"))
    );
}

/// The draw selects its share, and every allowed decision records it (drawn or not).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_allowed_decision_records_its_inclusion_probability() {
    let s = TestServer::with(AUDITED, |_| {}).await;
    let agent = s.key("triage-agent", "agent", &[]).await;
    let mut drawn = 0;
    for i in 0..200 {
        let (_, d) = s
            .post(
                &agent,
                "/v1/decisions",
                json!({"action": {"name": "tag_alert", "confidence": 0.8, "args": {"alert_id": format!("a-{i}")}}}),
            )
            .await;
        assert_eq!(d["audit"]["probability"], 0.25, "{d}");
        drawn += usize::from(d["audit"]["selected"] == true);
    }
    // 25% of 200 is 50 with a standard deviation of 6.1: five of them either side
    assert!((20..=80).contains(&drawn), "{drawn}");
    let (_, open) = s.get(&s.admin, "/v1/cases?kind=audit&state=open&limit=500").await;
    assert_eq!(open.as_array().unwrap().len(), drawn);
    let (_, never) = s
        .post(
            &agent,
            "/v1/decisions",
            json!({"action": {"name": "isolate_host", "confidence": 0.99, "args": {"host": "ws-1"}}}),
        )
        .await;
    assert!(never.get("audit").is_none(), "{never}");
}
