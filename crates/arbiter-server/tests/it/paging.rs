//! Paging through PagerDuty's Events API v2, against its documented contract
//! (<https://developer.pagerduty.com/docs/events-api-v2/overview/>): an
//! endpoint on 127.0.0.1 that checks each event as PagerDuty documents it
//! (routing key, `event_action`, `dedup_key`, the trigger's payload and its
//! severities, links) and keeps alerts by `dedup_key` the way PagerDuty
//! does: a trigger for an open alert is deduplicated, `acknowledge` and
//! `resolve` act on the open alert. Answers are PagerDuty's: `202` with
//! `status: success`, or `400` with `status: invalid event` and the errors.

use crate::support::{POLICY, TestServer, isolate};
use arbiter_server::jobs::webhook_delivery::{client, deliver_due};
use arbiter_server::outbound::OutboundPolicy;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const ROUTING_KEY: &str = "R0123456789ABCDEF0123456789ABCDE";

#[derive(Default)]
struct PagerDuty {
    /// dedup_key → (state, triggers deduplicated into it)
    alerts: HashMap<String, (String, usize)>,
    events: Vec<Value>,
    refused: Vec<Value>,
}

/// The checks PagerDuty documents for an event; the errors it would answer.
fn invalid(e: &Value) -> Vec<String> {
    let mut errors = vec![];
    let allowed = ["routing_key", "event_action", "dedup_key", "payload", "images", "links", "client", "client_url"];
    for k in e.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()).unwrap_or_default() {
        if !allowed.contains(&k.as_str()) {
            errors.push(format!("unknown field {k}"));
        }
    }
    if e["routing_key"].as_str().is_none_or(|k| k.len() != 32) {
        errors.push("'routing_key' must be a 32 character Integration Key".into());
    }
    let action = e["event_action"].as_str().unwrap_or("");
    if !["trigger", "acknowledge", "resolve"].contains(&action) {
        errors.push("'event_action' is invalid".into());
    }
    if let Some(k) = e.get("dedup_key") {
        if k.as_str().is_none_or(|k| k.is_empty() || k.len() > 255) {
            errors.push("'dedup_key' must be a string of at most 255 characters".into());
        }
    } else if action != "trigger" {
        errors.push("'dedup_key' is required for acknowledge and resolve".into());
    }
    if action == "trigger" {
        let p = &e["payload"];
        if p["summary"].as_str().is_none_or(|s| s.is_empty() || s.chars().count() > 1024) {
            errors.push("'payload.summary' is required, at most 1024 characters".into());
        }
        if p["source"].as_str().is_none_or(str::is_empty) {
            errors.push("'payload.source' is required".into());
        }
        if !["critical", "error", "warning", "info"].contains(&p["severity"].as_str().unwrap_or("")) {
            errors.push("'payload.severity' must be one of critical, error, warning, info".into());
        }
        for f in ["component", "group", "class", "timestamp"] {
            if p.get(f).is_some_and(|v| !v.is_string()) {
                errors.push(format!("'payload.{f}' must be a string"));
            }
        }
        if p.get("custom_details").is_some_and(|v| !v.is_object()) {
            errors.push("'payload.custom_details' must be an object".into());
        }
        for l in e["links"].as_array().into_iter().flatten() {
            if l["href"].as_str().is_none_or(|h| !h.starts_with("http")) {
                errors.push("'links[].href' must be a URL".into());
            }
        }
    }
    errors
}

async fn pagerduty() -> (String, Arc<Mutex<PagerDuty>>) {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    let pd: Arc<Mutex<PagerDuty>> = Default::default();
    let state = pd.clone();
    let app = axum::Router::new().route(
        "/v2/enqueue",
        axum::routing::post(move |body: String| {
            let pd = state.clone();
            async move {
                let e: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                let mut pd = pd.lock().unwrap();
                let errors = invalid(&e);
                if !errors.is_empty() {
                    pd.refused.push(e);
                    let answer =
                        json!({"status": "invalid event", "message": "Event object is invalid", "errors": errors});
                    return (StatusCode::BAD_REQUEST, axum::Json(answer)).into_response();
                }
                let key = e["dedup_key"].as_str().unwrap().to_string();
                let open = |s: &str| s == "triggered" || s == "acknowledged";
                match e["event_action"].as_str().unwrap() {
                    "trigger" => match pd.alerts.get_mut(&key) {
                        Some((state, deduped)) if open(state) => *deduped += 1,
                        _ => {
                            pd.alerts.insert(key.clone(), ("triggered".into(), 0));
                        }
                    },
                    "acknowledge" => {
                        if let Some((state, _)) = pd.alerts.get_mut(&key).filter(|(s, _)| open(s)) {
                            *state = "acknowledged".into();
                        }
                    }
                    _ => {
                        if let Some((state, _)) = pd.alerts.get_mut(&key) {
                            *state = "resolved".into();
                        }
                    }
                }
                pd.events.push(e);
                let answer = json!({"status": "success", "message": "Event processed", "dedup_key": key});
                (StatusCode::ACCEPTED, axum::Json(answer)).into_response()
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v2/enqueue", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (url, pd)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cases_page_when_they_open_or_run_late_and_the_alert_follows_the_case() {
    let (url, pd) = pagerduty().await;
    let s = TestServer::with(POLICY, |c| {
        c.outbound.allow_private = true;
        c.public_url = Some("https://arbiter.example.com".into());
        c.page_before = Some(Duration::from_secs(5 * 60));
    })
    .await;
    let http = client(Duration::from_secs(5), Arc::new(OutboundPolicy { allow_private: true, ..Default::default() }));
    // creating it: a routing key is required, and only events PagerDuty acts on
    let (code, e) = s.post(&s.admin, "/v1/webhooks", json!({"url": url, "events": ["*"], "format": "pagerduty"})).await;
    assert_eq!((code, e["field"].as_str()), (422, Some("routing_key")), "{e}");
    let (code, e) =
        s.post(&s.admin, "/v1/webhooks", json!({"url": url, "events": ["*"], "routing_key": ROUTING_KEY})).await;
    assert_eq!((code, e["field"].as_str()), (422, Some("routing_key")), "a json webhook takes no routing key: {e}");
    let (code, e) = s
        .post(
            &s.admin,
            "/v1/webhooks",
            json!({"url": url, "events": ["case.commented"], "format": "pagerduty", "routing_key": ROUTING_KEY}),
        )
        .await;
    assert_eq!((code, e["field"].as_str()), (422, Some("events")), "{e}");
    let (code, hook) = s
        .post(
            &s.admin,
            "/v1/webhooks",
            json!({"url": url, "events": ["*"], "format": "pagerduty", "routing_key": ROUTING_KEY, "min_severity": "high"}),
        )
        .await;
    assert_eq!(code, 201, "{hook}");
    assert_eq!(hook["min_severity"], "high");

    let agent = s.key("soc-agent", "agent", &[]).await;
    let ann = s.key("ann", "reviewer", &["soc_analyst"]).await;
    // a high-severity case pages when it opens; a medium one does not (below the webhook's severity)
    let (_, high) = s.escalate(&agent, isolate("srv-9", &["server"], 0.9)).await;
    let (code, low) = s
        .post(
            &agent,
            "/v1/decisions",
            json!({"action": {"name": "close_alert", "confidence": 0.5, "args": {"alert_id": "a-1"}}}),
        )
        .await;
    assert_eq!((code, low["verdict"].as_str()), (201, Some("escalate")), "{low}");
    let low = low["case_id"].as_str().unwrap().to_string();
    deliver_due(&s.state, &http).await.unwrap();
    let dedup = |case: &str| format!("arbiter:default:{case}");
    {
        let pd = pd.lock().unwrap();
        assert!(pd.refused.is_empty(), "PagerDuty refused: {:?}", pd.refused);
        assert_eq!(pd.events.len(), 1, "{:?}", pd.events);
        let t = &pd.events[0];
        assert_eq!(
            (t["event_action"].as_str(), t["dedup_key"].as_str()),
            (Some("trigger"), Some(dedup(&high).as_str()))
        );
        assert_eq!(t["payload"]["severity"], "error", "high is PagerDuty's error");
        assert!(t["payload"]["summary"].as_str().unwrap().contains("isolate_host"), "{t}");
        assert_eq!(t["links"][0]["href"], format!("https://arbiter.example.com/cases/{high}"));
    }
    // claimed: acknowledged; decided: resolved
    let (code, e) = s.post(&ann, &format!("/v1/cases/{high}/claim"), json!({})).await;
    assert_eq!(code, 200, "{e}");
    deliver_due(&s.state, &http).await.unwrap();
    assert_eq!(pd.lock().unwrap().alerts[&dedup(&high)].0, "acknowledged");
    let (code, e) = s
        .post(
            &ann,
            &format!("/v1/cases/{high}/decision"),
            json!({"decision": "approve", "rationale": "server confirmed infected"}),
        )
        .await;
    assert_eq!(code, 200, "{e}");
    deliver_due(&s.state, &http).await.unwrap();
    assert_eq!(pd.lock().unwrap().alerts[&dedup(&high)].0, "resolved");

    // the medium case, unclaimed, 5 minutes before its tier ends: due soon, and that pages whatever its severity
    s.advance(Duration::from_secs(10 * 60));
    arbiter_server::app::sla::sweep_once(&s.state).await.unwrap();
    deliver_due(&s.state, &http).await.unwrap();
    {
        let pd = pd.lock().unwrap();
        let t = pd.events.last().unwrap();
        assert_eq!(
            (t["event_action"].as_str(), t["dedup_key"].as_str()),
            (Some("trigger"), Some(dedup(&low).as_str()))
        );
        assert!(t["payload"]["summary"].as_str().unwrap().contains("Unclaimed, due soon"), "{t}");
        assert_eq!(pd.alerts[&dedup(&low)].0, "triggered");
    }
    // once per tier: sweeping again pages nothing new
    arbiter_server::app::sla::sweep_once(&s.state).await.unwrap();
    deliver_due(&s.state, &http).await.unwrap();
    let n = pd.lock().unwrap().events.len();
    // the next tier (soc_lead, 10 minutes) is due soon too: the same alert, deduplicated by PagerDuty
    s.advance(Duration::from_secs(10 * 60));
    arbiter_server::app::sla::sweep_once(&s.state).await.unwrap();
    deliver_due(&s.state, &http).await.unwrap();
    {
        let pd = pd.lock().unwrap();
        assert_eq!(pd.events.len(), n + 1);
        assert_eq!(pd.alerts[&dedup(&low)], ("triggered".to_string(), 1), "one alert for one case");
    }
    // the fallback ends the case: resolved
    s.advance(Duration::from_secs(10 * 60));
    arbiter_server::app::sla::sweep_once(&s.state).await.unwrap();
    deliver_due(&s.state, &http).await.unwrap();
    assert_eq!(pd.lock().unwrap().alerts[&dedup(&low)].0, "resolved");
    // the delivery log: every event done (those with nothing to page are done without a request)
    let id = hook["id"].as_str().unwrap();
    let (_, log) = s.get(&s.admin, &format!("/v1/webhooks/{id}/deliveries")).await;
    assert!(log.as_array().unwrap().iter().all(|d| d["status"] == "delivered"), "{log}");
    assert!(pd.lock().unwrap().refused.is_empty());
}
