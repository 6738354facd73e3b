//! Webhook delivery: events queued by the store (in the same transaction that
//! appended them) are POSTed to subscribers, signed with HMAC-SHA256 over the
//! timestamp and the body, and retried with exponential backoff. Every attempt
//! is recorded in the delivery log.
//!
//! Receivers verify `Arbiter-Signature: t=<unix seconds>,v1=<hex>` where
//! `v1 = HMAC-SHA256(secret, "<t>.<body>")`, and should reject old timestamps.

use crate::{ApiError, AppState};
use arbiter_store::{DeliveryAttempt, DueDelivery, Event, WebhookFormat};
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};
use std::time::Duration;

/// Deliveries sent per round.
const BATCH: usize = 32;

/// The HTTP client used for deliveries.
pub fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
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
        "case.fallback_applied" => {
            format!("Case {case}: SLA expired; the fallback `{}` was applied", s(d, &["verdict"]))
        }
        "review.closed" => format!("Review {case} closed by {}: {}", s(d, &["by"]), s(d, &["reason"])),
        other => format!("{other} on case {case} by {}", e.actor),
    }
}

/// The request body for one delivery.
pub fn body(due: &DueDelivery) -> Vec<u8> {
    let v = match due.webhook.format {
        WebhookFormat::Json => json!({
            "delivery_id": due.delivery.id,
            "type": due.event.kind,
            "summary": summary(&due.event),
            "event": due.event,
        }),
        WebhookFormat::Slack => json!({"text": format!("[Arbiter] {}", summary(&due.event))}),
    };
    serde_json::to_vec(&v).unwrap_or_default()
}

async fn send(state: &AppState, client: &reqwest::Client, due: &DueDelivery) -> DeliveryAttempt {
    let body = body(due);
    let now = state.clock.now();
    let ts = now.millis().div_euclid(1000);
    let result = client
        .post(&due.webhook.url)
        .header("content-type", "application/json")
        .header("arbiter-event", &due.event.kind)
        .header("arbiter-delivery", due.delivery.id.to_string())
        .header("arbiter-signature", format!("t={ts},v1={}", sign(&due.webhook.secret, ts, &body)))
        .body(body)
        .send()
        .await;
    let (status, error) = match result {
        Ok(r) if r.status().is_success() => (Some(r.status().as_u16()), None),
        Ok(r) => (Some(r.status().as_u16()), Some(format!("the receiver answered {}", r.status()))),
        Err(e) => (None, Some(if e.is_timeout() { "timed out".to_string() } else { e.to_string() })),
    };
    let attempts = due.delivery.attempts + 1;
    let retry_at = (error.is_some() && attempts < state.config.webhook_max_attempts)
        .then(|| now.plus_millis(backoff(state.config.webhook_retry_base, attempts).as_millis() as i64));
    if let Some(e) = &error {
        tracing::warn!(webhook = %due.webhook.id, delivery = due.delivery.id, attempts, error = %e, "webhook delivery failed");
    }
    DeliveryAttempt { at: state.clock.now(), status, error, retry_at }
}

/// Send every delivery due now; returns how many were attempted.
pub async fn deliver_due(state: &AppState, client: &reqwest::Client) -> Result<usize, ApiError> {
    let lease = (state.config.webhook_timeout * 2).as_millis() as i64;
    let due = state.store.claim_due_deliveries(state.clock.now(), lease, BATCH).await?;
    let n = due.len();
    let attempts = futures_util::future::join_all(due.iter().map(|d| send(state, client, d))).await;
    for (d, attempt) in due.iter().zip(attempts) {
        state.store.record_delivery_attempt(d.delivery.id, attempt).await?;
    }
    Ok(n)
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
}
