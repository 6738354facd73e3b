//! Webhook delivery: events queued by the store (in the same transaction that
//! appended them) are POSTed to subscribers, signed with HMAC-SHA256 over the
//! timestamp and the body, and retried with exponential backoff. Every attempt
//! is recorded in the delivery log before it is sent, so a crash mid-send
//! retries it (at least once, with the same delivery id).
//!
//! Deliveries are independent: each is its own task with its own timeout,
//! and each endpoint has at most `webhook_concurrency` requests in flight, so
//! a receiver that hangs holds up only its own deliveries.
//!
//! Receivers verify `Arbiter-Signature: t=<unix seconds>,v1=<hex>` where
//! `v1 = HMAC-SHA256(secret, "<t>.<body>")`, and should reject old timestamps.

use crate::outbound::{CheckedResolver, OutboundPolicy};
use crate::{ApiError, AppState};
use arbiter_store::{DeliveryAttempt, DueDelivery, Event, WebhookFormat};
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Deliveries in flight at once, over all endpoints.
const MAX_IN_FLIGHT: usize = 256;

/// The HTTP client used for deliveries: a timeout per attempt, no redirects,
/// and a resolver that refuses addresses the outbound policy does not allow.
pub fn client(timeout: Duration, policy: Arc<OutboundPolicy>) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(Arc::new(CheckedResolver(policy)))
        .user_agent(concat!("arbiter-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

/// `v1=` signature: hex HMAC-SHA256 of `"{timestamp}.{body}"` under `secret`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Delay before retry number `attempts` (1 after the first failure): 3^(n-1) × `base`, at most an hour.
pub fn backoff(base: Duration, attempts: u32) -> Duration {
    let factor = 3u64.saturating_pow(attempts.saturating_sub(1));
    Duration::from_millis((base.as_millis() as u64).saturating_mul(factor)).min(Duration::from_secs(3600))
}

fn s<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    path.iter().fold(v, |v, k| &v[*k]).as_str().unwrap_or("?")
}

/// A one-line, human summary of an event (the Slack message).
pub fn summary(e: &Event) -> String {
    let case = e.case_id.as_deref().unwrap_or("?");
    let d = &e.data;
    match e.kind.as_str() {
        "case.opened" if d["case"]["kind"] == "review" => {
            format!("New review case {case}: {}", s(d, &["case", "review", "title"]))
        }
        "case.opened" => format!(
            "New {} case {case}: `{}` proposed by {} waits for {}",
            s(d, &["case", "escalation", "severity"]),
            s(d, &["case", "action_name"]),
            s(d, &["case", "agent"]),
            d["case"]["escalation"]["reviewers"]
                .as_array()
                .map_or(String::new(), |r| { r.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ") })
        ),
        "case.claimed" => format!("{} claimed case {case}", s(d, &["claim", "by"])),
        "case.decided" => format!(
            "Case {case} decided: {} by {}",
            s(d, &["verdict"]),
            d["decided_by"].as_array().map_or(String::new(), |r| r
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", "))
        ),
        "case.tier_escalated" => format!(
            "Case {case} moved to tier {} ({}): the previous tier did not answer in time",
            d["to_tier"].as_u64().map_or(0, |t| t + 1),
            d["reviewers"].as_array().map_or(String::new(), |r| r
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", "))
        ),
        "case.requirements_raised" => format!(
            "Case {case}: a reviewer's modification needs more ({} approval(s) from {}; triggers {})",
            d["escalation"]["approvals"].as_u64().unwrap_or(1),
            d["escalation"]["reviewers"].as_array().map_or(String::new(), |r| r
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")),
            d["triggers"].as_array().map_or(String::new(), |r| r
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", "))
        ),
        "case.due_soon" => format!(
            "Case {case} (`{}`{}) is due at {} and nobody has claimed it",
            s(d, &["action_name"]),
            d["subject"].as_str().map_or(String::new(), |s| format!(" on {s}")),
            s(d, &["sla_deadline"])
        ),
        "case.fallback_applied" => {
            format!("Case {case}: SLA expired; the fallback `{}` was applied", s(d, &["verdict"]))
        }
        "review.closed" => format!("Review {case} closed by {}: {}", s(d, &["by"]), s(d, &["reason"])),
        other => format!("{other} on case {case} by {}", e.actor),
    }
}

/// The event kinds a PagerDuty webhook acts on.
pub const PAGED: &[&str] =
    &["case.opened", "case.due_soon", "case.claimed", "case.decided", "case.fallback_applied", "case.withdrawn"];

/// Whether `due`'s event is about a case below the webhook's `min_severity`
/// (an event that names no severity, such as a claim, is never below it).
fn below_min_severity(due: &DueDelivery) -> bool {
    let d = &due.event.data;
    let severity = d["case"]["escalation"]["severity"].as_str().or(d["severity"].as_str());
    let severity: Option<arbiter_core::Severity> = severity.and_then(|s| s.parse().ok());
    matches!((due.webhook.min_severity, severity), (Some(min), Some(s)) if s < min)
}

/// PagerDuty's severity for a case's (`critical`, `error`, `warning`, `info`).
fn pagerduty_severity(s: &str) -> &'static str {
    match s {
        "critical" => "critical",
        "high" => "error",
        "medium" => "warning",
        _ => "info",
    }
}

/// The PagerDuty Events API v2 event for `due`, if its event pages at all:
/// `trigger` for an approval case that opens at or above the webhook's
/// severity or is due soon unclaimed, `acknowledge` when claimed, `resolve`
/// when it ends. The project and case make the `dedup_key`, so one case is
/// one alert. (<https://developer.pagerduty.com/docs/events-api-v2/trigger-events/>)
pub fn pagerduty_event(due: &DueDelivery, public_url: Option<&str>) -> Option<Value> {
    let e = &due.event;
    let case = e.case_id.as_deref()?;
    let dedup_key = format!("arbiter:{}:{case}", due.webhook.project);
    let plain =
        |action: &str| json!({"routing_key": due.webhook.secret, "event_action": action, "dedup_key": dedup_key});
    let (severity, action, subject) = match e.kind.as_str() {
        "case.opened" => {
            let c = &e.data["case"];
            if c["kind"] != "approval" || below_min_severity(due) {
                return None;
            }
            (c["escalation"]["severity"].as_str(), c["action_name"].as_str(), c["subject"].as_str())
        }
        "case.due_soon" => (e.data["severity"].as_str(), e.data["action_name"].as_str(), e.data["subject"].as_str()),
        "case.claimed" => return Some(plain("acknowledge")),
        "case.decided" | "case.fallback_applied" | "case.withdrawn" => return Some(plain("resolve")),
        _ => return None,
    };
    let mut event = plain("trigger");
    let summary = match e.kind.as_str() {
        "case.due_soon" => format!("[Arbiter] Unclaimed, due soon: {}", summary(e)),
        _ => format!("[Arbiter] {}", summary(e)),
    };
    event["payload"] = json!({
        "summary": arbiter_slack::message::clip(&summary, 1024),
        "source": format!("arbiter/{}", due.webhook.project),
        "severity": pagerduty_severity(severity.unwrap_or("high")),
        "timestamp": e.at.to_string(),
        "component": action.unwrap_or("?"),
        "group": due.webhook.project.as_str(),
        "class": "approval_case",
        "custom_details": {"case_id": case, "subject": subject, "event": e.kind, "audit_seq": e.seq},
    });
    event["client"] = json!("Arbiter");
    if let Some(base) = public_url {
        let href = format!("{}/cases/{case}", base.trim_end_matches('/'));
        event["client_url"] = json!(href);
        event["links"] = json!([{"href": href, "text": "Open the case in Arbiter"}]);
    }
    Some(event)
}

/// The request body for one delivery (`None`: this format has no request for this event).
pub fn body(due: &DueDelivery, public_url: Option<&str>) -> Option<Vec<u8>> {
    let v = match due.webhook.format {
        // a case below the webhook's severity: nothing to send
        WebhookFormat::Json | WebhookFormat::Slack if below_min_severity(due) => return None,
        WebhookFormat::Json => json!({
            "delivery_id": due.delivery.id,
            "type": due.event.kind,
            "summary": summary(&due.event),
            "event": due.event,
        }),
        WebhookFormat::Slack => json!({"text": format!("[Arbiter] {}", summary(&due.event))}),
        WebhookFormat::PagerDuty => pagerduty_event(due, public_url)?,
    };
    Some(serde_json::to_vec(&v).unwrap_or_default())
}

/// The address check for an IP written in the URL itself (the resolver is
/// not asked for those).
fn literal_address_refused(policy: &OutboundPolicy, url: &str) -> Option<String> {
    let parsed = reqwest::Url::parse(url).ok()?;
    let host = parsed.host_str()?.trim_start_matches('[').trim_end_matches(']');
    let ip: std::net::IpAddr = host.parse().ok()?;
    policy.check(host, ip).err()
}

async fn send(state: &AppState, client: &reqwest::Client, due: &DueDelivery) -> DeliveryAttempt {
    let now = state.clock.now();
    let Some(body) = body(due, state.config.public_url.as_deref()) else {
        // nothing to send for this event (a page for a comment, a case below the webhook's severity)
        return DeliveryAttempt { at: now, status: None, error: None, retry_at: None };
    };
    let ts = now.millis().div_euclid(1000);
    let (status, error) = match literal_address_refused(&state.config.outbound, &due.webhook.url) {
        Some(why) => (None, Some(why)),
        None => {
            let result = client
                .post(&due.webhook.url)
                .header("content-type", "application/json")
                .header("arbiter-event", &due.event.kind)
                .header("arbiter-delivery", due.delivery.id.to_string())
                .header("arbiter-signature", format!("t={ts},v1={}", sign(&due.webhook.secret, ts, &body)))
                .body(body)
                .send()
                .await;
            match result {
                Ok(r) if r.status().is_success() => (Some(r.status().as_u16()), None),
                Ok(r) => (Some(r.status().as_u16()), Some(format!("the receiver answered {}", r.status()))),
                Err(e) => (None, Some(describe(&e))),
            }
        }
    };
    // `attempts` already counts this attempt (recorded when it was claimed).
    let attempts = due.delivery.attempts;
    let retry_at = (error.is_some() && attempts < state.config.webhook_max_attempts)
        .then(|| now.plus_millis(backoff(state.config.webhook_retry_base, attempts).as_millis() as i64));
    if let Some(e) = &error {
        tracing::warn!(webhook = %due.webhook.id, delivery = due.delivery.id, attempts, error = %e, "webhook delivery failed");
    }
    DeliveryAttempt { at: state.clock.now(), status, error, retry_at }
}

/// A transport error in words, with the cause (e.g. the outbound policy's refusal).
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".to_string();
    }
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg = format!("{msg}: {s}");
        src = s.source();
    }
    msg
}

fn lease_ms(state: &AppState) -> i64 {
    // An attempt is leased for its timeout and a margin: if this process dies
    // mid-send, the delivery is due again after that.
    (state.config.webhook_timeout + Duration::from_secs(5)).as_millis() as i64
}

/// Send every delivery due now, concurrently, and wait for all of them;
/// returns how many were attempted. (The server runs [`run`]; this is one
/// round of it, for tests and tools.)
pub async fn deliver_due(state: &AppState, client: &reqwest::Client) -> Result<usize, ApiError> {
    let due = state
        .store
        .claim_due_deliveries(
            state.clock.now(),
            lease_ms(state),
            MAX_IN_FLIGHT,
            state.config.webhook_concurrency,
            HashMap::new(),
        )
        .await?;
    let n = due.len();
    let attempts = futures_util::future::join_all(due.iter().map(|d| send(state, client, d))).await;
    for (d, attempt) in due.iter().zip(attempts) {
        state.store.record_delivery_attempt(d.delivery.id, attempt).await?;
    }
    Ok(n)
}

/// The delivery worker: claims due deliveries whenever a slot is free or
/// `webhook_interval` passed, sends each in its own task, and stops with the
/// server (deliveries cut short are retried after their lease).
pub async fn run(state: Arc<AppState>, client: reqwest::Client) {
    let mut stop = state.stopping();
    let mut in_flight: HashMap<String, usize> = HashMap::new();
    let mut tasks: tokio::task::JoinSet<String> = tokio::task::JoinSet::new();
    // The first round comes one interval after start, not at once: a server
    // whose owner drives deliveries itself (the tests, with a long interval)
    // must not race a round it did not ask for. Deliveries left from before a
    // restart wait one interval (500 ms by default).
    let period = state.config.webhook_interval;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = tick.tick() => {}
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                if let Ok(webhook) = done
                    && let Some(n) = in_flight.get_mut(&webhook)
                {
                    *n -= 1;
                    if *n == 0 {
                        in_flight.remove(&webhook);
                    }
                }
            }
        }
        let free = MAX_IN_FLIGHT.saturating_sub(tasks.len());
        if free == 0 {
            continue;
        }
        let claimed = state
            .store
            .claim_due_deliveries(
                state.clock.now(),
                lease_ms(&state),
                free,
                state.config.webhook_concurrency,
                in_flight.clone(),
            )
            .await;
        let due = match claimed {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "could not claim webhook deliveries; retrying");
                continue;
            }
        };
        for d in due {
            *in_flight.entry(d.webhook.id.clone()).or_default() += 1;
            let (state, client) = (state.clone(), client.clone());
            tasks.spawn(async move {
                let attempt = send(&state, &client, &d).await;
                if let Err(e) = state.store.record_delivery_attempt(d.delivery.id, attempt).await {
                    tracing::warn!(delivery = d.delivery.id, error = %e, "could not record a webhook attempt; it will be retried");
                }
                d.webhook.id
            });
        }
    }
    tasks.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // and our envelope signs "<t>.<body>"
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"k").unwrap();
        mac.update(b"12.{}");
        assert_eq!(sign("k", 12, b"{}"), hex::encode(mac.finalize().into_bytes()));
    }

    #[test]
    fn backoff_grows_by_three_and_caps_at_an_hour() {
        let b = Duration::from_secs(5);
        let secs: Vec<u64> = (1..=8).map(|n| backoff(b, n).as_secs()).collect();
        assert_eq!(secs, [5, 15, 45, 135, 405, 1215, 3600, 3600]);
    }

    /// An `https://` webhook is sent over TLS: the receiver's first bytes are a
    /// TLS handshake record. (Before the client had a TLS backend, the request
    /// failed before connecting, so no `https://` webhook could ever be delivered.)
    #[tokio::test]
    async fn https_webhooks_speak_tls() {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let policy = Arc::new(OutboundPolicy { allow_hosts: vec!["localhost".into()], ..Default::default() });
        let http = client(Duration::from_secs(5), policy);
        let send =
            tokio::spawn(async move { http.post(format!("https://localhost:{port}/hook")).body("{}").send().await });
        let (mut conn, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept()).await.unwrap().unwrap();
        let mut first = [0u8; 3];
        conn.read_exact(&mut first).await.unwrap();
        assert_eq!(first, [0x16, 0x03, 0x01], "a TLS handshake record (ClientHello)");
        drop(conn);
        assert!(send.await.unwrap().is_err(), "no TLS server here: the attempt fails, as a delivery error");
    }
}
