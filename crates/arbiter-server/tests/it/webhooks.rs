use crate::support::{POLICY, TestServer, isolate};
use arbiter_server::jobs::webhook_delivery::{client, deliver_due, sign};
use arbiter_server::outbound::OutboundPolicy;
use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Seen = Arc<Mutex<Vec<(HeaderMap, Vec<u8>)>>>;

/// A server whose webhooks may reach this machine's receivers (on 127.0.0.1).
async fn server() -> TestServer {
    TestServer::with(POLICY, |c| c.outbound.allow_private = true).await
}

fn open_client() -> reqwest::Client {
    client(Duration::from_secs(5), Arc::new(OutboundPolicy { allow_private: true, ..Default::default() }))
}

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
    let s = server().await;
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
    let c = open_client();
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
    let s = server().await;
    let (url, seen) = receiver(100).await;
    let (_, hook) = s.post(&s.admin, "/v1/webhooks", json!({"url": url, "events": ["*"], "format": "slack"})).await;
    let hid = hook["id"].as_str().unwrap().to_string();
    let agent = s.key("soc-agent", "agent", &[]).await;
    s.escalate(&agent, isolate("ws-1", &["workstation"], 0.8)).await;
    let c = open_client();
    for attempt in 1..=3 {
        assert_eq!(deliver_due(&s.state, &c).await.unwrap(), 1, "attempt {attempt} is made");
        let (_, log) = s.get(&s.admin, &format!("/v1/webhooks/{hid}/deliveries")).await;
        assert_eq!(log[0]["attempts"], attempt, "{log}");
        s.advance(Duration::from_secs(3600));
    }
    assert_eq!(deliver_due(&s.state, &c).await.unwrap(), 0, "gave up after webhook_max_attempts");
    assert_eq!(seen.lock().unwrap().len(), 3, "three attempts reached the receiver, no more");
    let (_, log) = s.get(&s.admin, &format!("/v1/webhooks/{hid}/deliveries")).await;
    assert_eq!(log.as_array().unwrap().len(), 1, "one delivery");
    assert_eq!(log[0]["status"], "failed");
    assert_eq!(log[0]["attempts"], 3);
    assert_eq!(log[0]["last_status"], 500);
    let body: Value = serde_json::from_slice(&seen.lock().unwrap()[0].1).unwrap();
    assert!(body["text"].as_str().unwrap().starts_with("[Arbiter] New high case"), "{body}");
    assert_eq!(
        s.http.delete(s.at(&format!("/v1/webhooks/{hid}"))).bearer_auth(&s.admin).send().await.unwrap().status(),
        204
    );
}

/// A receiver that answers after `delay`, recording when each request arrived.
async fn slow_receiver(delay: Duration) -> (String, Arc<Mutex<Vec<(std::time::Instant, Value)>>>) {
    let seen: Arc<Mutex<Vec<(std::time::Instant, Value)>>> = Arc::default();
    let s2 = seen.clone();
    let app = Router::new().route(
        "/hook",
        post(move |body: axum::body::Bytes| {
            let seen = s2.clone();
            async move {
                seen.lock().unwrap().push((std::time::Instant::now(), serde_json::from_slice(&body).unwrap()));
                tokio::time::sleep(delay).await;
                StatusCode::NO_CONTENT
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (url, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_receiver_does_not_delay_the_others() {
    // The real background worker, looking for due deliveries every 50 ms.
    let s = TestServer::with(POLICY, |c| {
        c.outbound.allow_private = true;
        c.webhook_interval = Duration::from_millis(50);
        c.webhook_timeout = Duration::from_secs(30);
    })
    .await;
    let (hung, _) = slow_receiver(Duration::from_secs(20)).await;
    let (healthy, seen) = slow_receiver(Duration::ZERO).await;
    for url in [&hung, &healthy] {
        let (code, r) = s.post(&s.admin, "/v1/webhooks", json!({"url": url, "events": ["case.opened"]})).await;
        assert_eq!(code, 201, "{r}");
    }
    let agent = s.key("soc-agent", "agent", &[]).await;
    let mut proposed = Vec::new();
    for host in ["ws-1", "ws-2"] {
        proposed.push(std::time::Instant::now());
        s.escalate(&agent, isolate(host, &["workstation"], 0.8)).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    let got = seen.lock().unwrap().clone();
    assert_eq!(got.len(), 2, "the healthy receiver got both events");
    for (i, (at, payload)) in got.iter().enumerate() {
        let delay = at.duration_since(proposed[i]);
        assert!(delay < Duration::from_secs(1), "event {i} reached the healthy receiver {delay:?} late: {payload}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_mid_send_redelivers_with_the_same_delivery_id() {
    let s = server().await;
    let (url, seen) = receiver(0).await;
    let (_, hook) = s.post(&s.admin, "/v1/webhooks", json!({"url": url, "events": ["case.opened"]})).await;
    let hid = hook["id"].as_str().unwrap().to_string();
    let agent = s.key("soc-agent", "agent", &[]).await;
    s.escalate(&agent, isolate("ws-1", &["workstation"], 0.8)).await;
    // A worker claims the delivery (recording the attempt) and dies before sending it.
    let claimed =
        s.state.store.claim_due_deliveries(s.state.clock.now(), 15_000, 10, 4, Default::default()).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let (_, log) = s.get(&s.admin, &format!("/v1/webhooks/{hid}/deliveries")).await;
    assert_eq!((log[0]["status"].as_str(), log[0]["attempts"].as_u64()), (Some("pending"), Some(1)), "{log}");
    // Nothing is handed out again while the lease runs...
    let c = open_client();
    assert_eq!(deliver_due(&s.state, &c).await.unwrap(), 0);
    // ...and after it, the same delivery goes out, once.
    s.advance(Duration::from_secs(16));
    assert_eq!(deliver_due(&s.state, &c).await.unwrap(), 1);
    let requests = seen.lock().unwrap().clone();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].0["arbiter-delivery"], claimed[0].delivery.id.to_string().as_str());
    let (_, log) = s.get(&s.admin, &format!("/v1/webhooks/{hid}/deliveries")).await;
    assert_eq!((log[0]["status"].as_str(), log[0]["attempts"].as_u64()), (Some("delivered"), Some(2)), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_addresses_are_refused_unless_allowed() {
    let s = TestServer::start().await;
    for url in
        ["http://127.0.0.1:9/hook", "http://169.254.169.254/latest/meta-data", "http://[::1]/x", "http://10.0.0.5/"]
    {
        let (code, e) = s.post(&s.admin, "/v1/webhooks", json!({"url": url, "events": ["*"]})).await;
        assert_eq!((code, e["field"].as_str()), (422, Some("url")), "{url}: {e}");
        assert!(e["detail"].as_str().unwrap().contains("webhook-allow-private"), "{e}");
    }
    // Webhooks already stored (while allowed, or before their name moved into the network) are refused
    // again when connecting: by address, and by name through the resolver.
    let (url, seen) = receiver(0).await;
    for (id, target) in [("by-address", url.clone()), ("by-name", url.replace("127.0.0.1", "localhost"))] {
        s.state
            .store
            .create_webhook(arbiter_store::Webhook {
                id: id.into(),
                url: target,
                events: ["case.opened".to_string()].into_iter().collect(),
                format: arbiter_store::WebhookFormat::Json,
                secret: "whsec_x".into(),
                created_at: s.state.clock.now(),
                created_by: "admin".into(),
                active: true,
                project: Default::default(),
                min_severity: None,
            })
            .await
            .unwrap();
    }
    let agent = s.key("soc-agent", "agent", &[]).await;
    s.escalate(&agent, isolate("ws-1", &["workstation"], 0.8)).await;
    let c = client(Duration::from_secs(5), Arc::new(s.state.config.outbound.clone()));
    assert_eq!(deliver_due(&s.state, &c).await.unwrap(), 2);
    assert!(seen.lock().unwrap().is_empty(), "nothing reached the private receiver");
    for id in ["by-address", "by-name"] {
        let (_, log) = s.get(&s.admin, &format!("/v1/webhooks/{id}/deliveries")).await;
        let err = log[0]["last_error"].as_str().unwrap_or_default();
        assert!(err.contains("loopback"), "{id}: {log}");
    }
}
