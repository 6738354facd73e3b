//! A killed server keeps every decision it acknowledged.

use crate::support::{Server, allowed_action, escalating_action};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_keeps_exactly_the_acknowledged_decisions() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("arbiter.db");
    let s = Server::start(&db, &[]);
    let agent = s.loader("soc-agent").await;

    // 16 writers send without pause until the server dies under them, so
    // acknowledgements come from group commits and the kill lands mid-batch.
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(String, Value)>::new()));
    let mut handles = Vec::new();
    for t in 0..16 {
        let (http, url, agent, acked) = (s.http.clone(), s.at("/v1/decisions"), agent.clone(), acked.clone());
        handles.push(tokio::spawn(async move {
            for i in 0.. {
                let body = if i % 3 == 0 { escalating_action() } else { allowed_action(&format!("A-{t}-{i}")) };
                let idem = format!("k-{t}-{i}");
                let sent =
                    http.post(&url).bearer_auth(&agent).header("idempotency-key", &idem).json(&body).send().await;
                let Ok(r) = sent else { return }; // the server is gone: this one was never acknowledged
                if r.status() != 201 {
                    return;
                }
                let Ok(d) = r.json::<Value>().await else { return };
                acked.lock().unwrap().push((idem, d));
            }
        }));
    }
    while acked.lock().unwrap().len() < 300 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    s.kill9();
    for h in handles {
        h.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();

    let s = Server::restart(&db, &[]);
    assert!(s.admin_key.is_none(), "a restart does not mint another admin key");
    for (idem, d) in &acked {
        let id = d["id"].as_str().unwrap();
        let r = s.http.get(s.at(&format!("/v1/decisions/{id}"))).bearer_auth(&agent).send().await.unwrap();
        assert_eq!(r.status(), 200, "acknowledged decision {id} lost");
        let back: Value = r.json().await.unwrap();
        assert_eq!(&back, d);
        // and a retry after the crash is still recognised
        let body =
            if d["verdict"] == "escalate" { escalating_action() } else { serde_json::json!({"action": d["action"]}) };
        let r = s.propose(&agent, &body, Some(idem)).await;
        assert_eq!(r.status(), 200, "retry of {idem} after restart");
        assert_eq!(r.json::<Value>().await.unwrap()["id"], d["id"]);
    }
    // Beyond the acknowledged ones, at most the 16 requests in flight at the kill were stored.
    let audit = std::process::Command::new(crate::support::bin())
        .args(["audit", "verify", "--json", "--db", db.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(audit.status.success(), "{}", String::from_utf8_lossy(&audit.stdout));
    let report: Value = serde_json::from_slice(&audit.stdout).unwrap();
    let stored = report["decisions"].as_u64().unwrap() as usize;
    assert!(stored >= acked.len() && stored <= acked.len() + 16, "{stored} stored, {} acknowledged", acked.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_commit_is_never_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("arbiter.db");
    let s = Server::start_env(&db, &[], &[("ARBITER_TEST_FAIL", "decision_commit")]);
    let agent = s.loader("soc-agent").await;
    let mut answers = Vec::new();
    for i in 0..20 {
        let body = if i % 2 == 0 { escalating_action() } else { allowed_action(&format!("A-{i}")) };
        answers.push(s.propose(&agent, &body, Some(&format!("f-{i}"))).await.status().as_u16());
    }
    assert!(answers.iter().all(|a| *a == 500), "{answers:?}");
    drop(s);
    // Nothing was stored, so nothing was acknowledged that is not there.
    let s = Server::restart(&db, &[]);
    let r = s.propose(&agent, &allowed_action("A-1"), Some("f-1")).await;
    assert_eq!(r.status(), 201, "the retry is a new decision: the failed one never committed");
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
