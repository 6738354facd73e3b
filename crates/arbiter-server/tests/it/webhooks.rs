use crate::support::{TestServer, isolate};
use arbiter_server::webhooks::{client, deliver_due, sign};
use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Seen = Arc<Mutex<Vec<(HeaderMap, Vec<u8>)>>>;

/// A local receiver that fails its first `fail` requests with 500.
async fn receiver(fail: usize) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let s2 = seen.clone();
    let app = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let seen = s2.clone();
            async move {
                let mut v = seen.lock().unwrap();
                v.push((headers, body.to_vec()));
                if v.len() <= fail { StatusCode::INTERNAL_SERVER_ERROR } else { StatusCode::NO_CONTENT }
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (url, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_deliveries_are_retried_with_backoff_and_logged() {
    let s = TestServer::start().await;
    let (url, seen) = receiver(2).await;
    let (code, hook) =
        s.post(&s.admin, "/v1/webhooks", json!({"url": url, "events": ["case.opened", "case.claimed"]})).await;
    assert_eq!(code, 201, "{hook}");
    let secret = hook["secret"].as_str().unwrap().to_string();
    let hid = hook["id"].as_str().unwrap().to_string();
    assert!(s.get(&s.admin, "/v1/webhooks").await.1.to_string().find(&secret).is_none(), "the secret is shown once");
    let (code, e) = s.post(&s.admin, "/v1/webhooks", json!({"url": url, "events": ["case.nonsense"]})).await;
    assert_eq!((code, e["field"].as_str()), (422, Some("events")));

    let agent = s.key("soc-agent", "agent", &[]).await;
    let (_, case) = s.escalate(&agent, isolate("ws-1", &["workstation"], 0.8)).await;
    let c = client(Duration::from_secs(5));
    // attempt 1 fails (500)
    assert_eq!(deliver_due(&s.state, &c).await.unwrap(), 1);
    // not due again until the backoff (1s) has passed
    assert_eq!(deliver_due(&s.state, &c).await.unwrap(), 0);
    s.advance(Duration::from_secs(1));
    assert_eq!(deliver_due(&s.state, &c).await.unwrap(), 1); // attempt 2 fails
    s.advance(Duration::from_secs(2));
    assert_eq!(deliver_due(&s.state, &c).await.unwrap(), 0, "the second retry waits 3 times longer");
    s.advance(Duration::from_secs(1));
    assert_eq!(deliver_due(&s.state, &c).await.unwrap(), 1); // attempt 3 succeeds
    let (_, log) = s.get(&s.admin, &format!("/v1/webhooks/{hid}/deliveries")).await;
    assert_eq!(log[0]["status"], "delivered", "{log}");
    assert_eq!(log[0]["attempts"], 3);
    assert_eq!(log[0]["kind"], "case.opened");

    let requests = seen.lock().unwrap().clone();
    assert_eq!(requests.len(), 3);
    for (headers, body) in &requests {
        let sig = headers["arbiter-signature"].to_str().unwrap();
        let (t, v1) = sig.split_once(',').unwrap();
        let ts: i64 = t.strip_prefix("t=").unwrap().parse().unwrap();
        assert_eq!(v1.strip_prefix("v1=").unwrap(), sign(&secret, ts, body), "signature verifies");
        assert_ne!(sign("wrong-secret", ts, body), v1.strip_prefix("v1=").unwrap());
        assert_eq!(headers["arbiter-event"], "case.opened");
    }
    let payload: Value = serde_json::from_slice(&requests[2].1).unwrap();
    assert_eq!(payload["type"], "case.opened");
    assert_eq!(payload["event"]["case_id"], case);
    assert!(payload["summary"].as_str().unwrap().contains("isolate_host"), "{payload}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_payloads_and_giving_up() {
    let s = TestServer::start().await;
    let (url, seen) = receiver(100).await;
    let (_, hook) = s.post(&s.admin, "/v1/webhooks", json!({"url": url, "events": ["*"], "format": "slack"})).await;
    let hid = hook["id"].as_str().unwrap().to_string();
    let agent = s.key("soc-agent", "agent", &[]).await;
    s.escalate(&agent, isolate("ws-1", &["workstation"], 0.8)).await;
    let c = client(Duration::from_secs(5));
    for _ in 0..3 {
        deliver_due(&s.state, &c).await.unwrap();
        s.advance(Duration::from_secs(3600));
    }
    assert_eq!(deliver_due(&s.state, &c).await.unwrap(), 0, "gave up after webhook_max_attempts");
    let (_, log) = s.get(&s.admin, &format!("/v1/webhooks/{hid}/deliveries")).await;
    assert_eq!(log[0]["status"], "failed");
    assert_eq!(log[0]["last_status"], 500);
    let body: Value = serde_json::from_slice(&seen.lock().unwrap()[0].1).unwrap();
    assert!(body["text"].as_str().unwrap().starts_with("[Arbiter] New high case"), "{body}");
    assert_eq!(
        s.http.delete(s.at(&format!("/v1/webhooks/{hid}"))).bearer_auth(&s.admin).send().await.unwrap().status(),
        204
    );
}
