//! A killed server keeps every decision it acknowledged.

use crate::support::{Server, allowed_action, escalating_action};
use serde_json::Value;

#[tokio::test]
async fn kill_9_and_restart_keeps_every_acknowledged_decision() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("arbiter.db");
    let s = Server::start(&db, &[]);
    let agent = s.key("soc-agent", "agent", &[]).await;

    // Many concurrent writers, so acknowledgements come from group commits.
    let mut handles = Vec::new();
    for t in 0..16 {
        let (http, url, agent) = (s.http.clone(), s.at("/v1/decisions"), agent.clone());
        handles.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..25 {
                let body = if i % 3 == 0 { escalating_action() } else { allowed_action(&format!("A-{t}-{i}")) };
                let r = http
                    .post(&url)
                    .bearer_auth(&agent)
                    .header("idempotency-key", format!("k-{t}-{i}"))
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201);
                let d: Value = r.json().await.unwrap();
                acked.push((format!("k-{t}-{i}"), d));
            }
            acked
        }));
    }
    let mut acked = Vec::new();
    for h in handles {
        acked.extend(h.await.unwrap());
    }
    s.kill9();

    let s = Server::restart(&db, &[]);
    assert!(s.admin_key.is_none(), "a restart does not mint another admin key");
    for (idem, d) in &acked {
        let id = d["id"].as_str().unwrap();
        let r = s.http.get(s.at(&format!("/v1/decisions/{id}"))).bearer_auth(&agent).send().await.unwrap();
        assert_eq!(r.status(), 200, "decision {id} lost");
        let back: Value = r.json().await.unwrap();
        assert_eq!(&back, d);
        // and a retry after the crash is still recognised
        let body =
            if d["verdict"] == "escalate" { escalating_action() } else { serde_json::json!({"action": d["action"]}) };
        let r = s.propose(&agent, &body, Some(idem)).await;
        assert_eq!(r.status(), 200, "retry of {idem} after restart");
        assert_eq!(r.json::<Value>().await.unwrap()["id"], d["id"]);
    }
    let metrics = s.http.get(s.at("/metrics")).send().await.unwrap().text().await.unwrap();
    let escalated = acked.iter().filter(|(_, d)| d["verdict"] == "escalate").count();
    assert!(metrics.contains(&format!("arbiter_open_cases {escalated}")), "{metrics}");
}

#[tokio::test]
async fn backup_of_a_live_store_restores() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("arbiter.db");
    let s = Server::start(&db, &[]);
    let agent = s.key("soc-agent", "agent", &[]).await;
    let d: Value = s.propose(&agent, &escalating_action(), None).await.json().await.unwrap();
    let copy = dir.path().join("copy.db");
    let out = std::process::Command::new(crate::support::bin())
        .args(["backup", "--db", db.to_str().unwrap(), "--out", copy.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    drop(s);
    let restored = Server::restart(&copy, &[]);
    let r = restored
        .http
        .get(restored.at(&format!("/v1/decisions/{}", d["id"].as_str().unwrap())))
        .bearer_auth(&agent)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
