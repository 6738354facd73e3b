//! Arbiter's own telemetry, exported over OTLP/HTTP (protobuf) when
//! `--otlp-endpoint` is set: each decision becomes a span in the agent's trace
//! (same trace id; the parent from the W3C `traceparent` header of
//! `POST /v1/decisions`), and each human verdict a `gen_ai.evaluation.result`
//! event, so Langfuse, Phoenix or any OpenTelemetry backend shows the review
//! beside the agent's run.
//!
//! Spans queue in memory (at most [`QUEUE`]; past that they are dropped and
//! counted, never blocking a decision) and leave in batches once a second.

use crate::AppState;
use arbiter_core::trace::{Dropped, Span, SpanEvent, valid_id};
use arbiter_core::{Decision, FinalSource, Timestamp};
use serde_json::{Map, Value, json};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

/// Spans waiting for export at most.
pub const QUEUE: usize = 10_000;
/// Spans per export request at most.
const BATCH: usize = 512;

/// A parsed W3C `traceparent`: `00-<trace id>-<parent span id>-<flags>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceParent {
    /// 32 lowercase hex digits.
    pub trace_id: String,
    /// 16 lowercase hex digits.
    pub parent_id: String,
}

impl TraceParent {
    /// Parse a `traceparent` header; `None` when it is not a valid version-00 value.
    pub fn parse(header: &str) -> Option<TraceParent> {
        let parts: Vec<&str> = header.trim().split('-').collect();
        match parts.as_slice() {
            [version, trace, parent, flags]
                if version.len() == 2
                    && *version != "ff"
                    && valid_id(trace, 32)
                    && valid_id(parent, 16)
                    && flags.len() == 2
                    && flags.bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                Some(TraceParent { trace_id: trace.to_ascii_lowercase(), parent_id: parent.to_ascii_lowercase() })
            }
            _ => None,
        }
    }
}

/// The exporter's queue.
pub struct Telemetry {
    tx: Option<mpsc::Sender<Span>>,
    rx: Mutex<Option<mpsc::Receiver<Span>>>,
    /// Spans dropped because the queue was full or an export failed for good.
    pub dropped: AtomicU64,
}

impl Telemetry {
    /// A queue when exporting, else nothing.
    pub fn new(enabled: bool) -> Telemetry {
        let (tx, rx) = if enabled {
            let (tx, rx) = mpsc::channel(QUEUE);
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        Telemetry { tx, rx: Mutex::new(rx), dropped: AtomicU64::new(0) }
    }

    fn send(&self, span: Span) {
        if let Some(tx) = &self.tx
            && tx.try_send(span).is_err()
        {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A decision was made: its span, in the agent's trace.
    pub fn decision(&self, d: &Decision, parent: Option<&TraceParent>, now: Timestamp) {
        if self.tx.is_none() {
            return;
        }
        let mut attributes = Map::new();
        attributes.insert("arbiter.decision.id".into(), json!(d.id));
        attributes.insert("arbiter.verdict".into(), json!(d.verdict.as_str()));
        attributes.insert("arbiter.policy.hash".into(), json!(d.policy_hash));
        attributes.insert("arbiter.agent".into(), json!(d.agent));
        attributes.insert("gen_ai.tool.name".into(), json!(d.action.name));
        if let Some(c) = d.action.confidence {
            attributes.insert("arbiter.confidence".into(), json!(c));
        }
        if let Some(case) = &d.case_id {
            attributes.insert("arbiter.case.id".into(), json!(case));
        }
        if let Some(call) = d.context.get("tool_call_id").and_then(Value::as_str) {
            attributes.insert("gen_ai.tool.call.id".into(), json!(call));
        }
        let triggers: Vec<&str> = d.triggers.iter().map(|t| t.name.as_str()).collect();
        if !triggers.is_empty() {
            attributes.insert("arbiter.triggers".into(), json!(triggers));
        }
        self.send(Span {
            trace_id: trace_of(d, parent),
            span_id: span_id(),
            parent_span_id: parent.map(|p| p.parent_id.clone()),
            name: format!("arbiter.decide {}", d.action.name),
            kind: "server".into(),
            start_ns: ns(d.received_at),
            end_ns: ns(now).max(ns(d.received_at)),
            status: "unset".into(),
            status_message: String::new(),
            service: None,
            attributes,
            events: vec![],
            dropped: Dropped::default(),
            sender: None,
        });
    }

    /// A decision became final: a human verdict becomes an evaluation result in its trace.
    pub fn finalized(&self, d: &Decision) {
        let Some(f) = d.final_verdict.as_ref().filter(|f| f.source == FinalSource::Review) else { return };
        if self.tx.is_none() {
            return;
        }
        let at = ns(f.decided_at);
        let mut event = Map::new();
        event.insert("gen_ai.evaluation.name".into(), json!("arbiter.review"));
        event.insert("gen_ai.evaluation.score.label".into(), json!(f.verdict.as_str()));
        event.insert(
            "gen_ai.evaluation.score.value".into(),
            json!(if f.verdict.as_str() == "allow" { 1.0 } else { 0.0 }),
        );
        event.insert("gen_ai.evaluation.explanation".into(), json!(f.rationale));
        event.insert("arbiter.decided_by".into(), json!(f.decided_by));
        event.insert("arbiter.modified".into(), json!(f.action.is_some()));
        let mut attributes = Map::new();
        attributes.insert("arbiter.decision.id".into(), json!(d.id));
        attributes.insert("gen_ai.tool.name".into(), json!(d.action.name));
        self.send(Span {
            trace_id: trace_of(d, None),
            span_id: span_id(),
            parent_span_id: None,
            name: format!("arbiter.review {}", d.action.name),
            kind: "internal".into(),
            start_ns: ns(d.received_at),
            end_ns: at.max(ns(d.received_at)),
            status: "unset".into(),
            status_message: String::new(),
            service: None,
            attributes: attributes.clone(),
            events: vec![SpanEvent { name: "gen_ai.evaluation.result".into(), time_ns: at, attributes: event }],
            dropped: Dropped::default(),
            sender: None,
        });
    }
}

fn ns(t: Timestamp) -> i64 {
    t.0.saturating_mul(1_000_000)
}

/// The trace a decision's spans go to: the `traceparent`'s, else the decision's
/// own trace id when it is an OpenTelemetry one, else its id (a UUID: 32 hex digits).
fn trace_of(d: &Decision, parent: Option<&TraceParent>) -> String {
    match (parent, d.trace_id.as_deref()) {
        (Some(p), _) => p.trace_id.clone(),
        (None, Some(t)) if valid_id(t, 32) => t.to_ascii_lowercase(),
        _ => d.id.replace('-', ""),
    }
}

fn span_id() -> String {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() || b == [0; 8] {
        b = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64 | 1)
            .to_be_bytes();
    }
    hex::encode(b)
}

/// Export queued spans until the server stops, then what is left.
pub async fn export_loop(state: std::sync::Arc<AppState>, client: reqwest::Client) {
    let Some(endpoint) = state.config.otlp_endpoint.clone() else { return };
    let Some(mut rx) = state.telemetry.rx.lock().unwrap_or_else(|e| e.into_inner()).take() else { return };
    let url = if endpoint.trim_end_matches('/').ends_with("/v1/traces") {
        endpoint
    } else {
        format!("{}/v1/traces", endpoint.trim_end_matches('/'))
    };
    let mut stopping = state.stopping();
    let mut batch = Vec::new();
    loop {
        let stop = tokio::select! {
            n = rx.recv_many(&mut batch, BATCH) => n == 0,
            _ = stopping.changed() => true,
        };
        // gather a little more for a fuller request
        if !stop && batch.len() < BATCH {
            tokio::time::sleep(Duration::from_millis(200)).await;
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(s) => batch.push(s),
                    Err(_) => break,
                }
            }
        }
        if stop {
            while let Ok(s) = rx.try_recv() {
                batch.push(s);
            }
        }
        for chunk in batch.chunks(BATCH) {
            export(&state, &client, &url, chunk).await;
        }
        batch.clear();
        if stop {
            return;
        }
    }
}

async fn export(state: &AppState, client: &reqwest::Client, url: &str, spans: &[Span]) {
    let body = arbiter_otlp::encode_request("arbiter", "arbiter", spans);
    for attempt in 0..3u32 {
        let mut req = client.post(url).header("content-type", "application/x-protobuf").body(body.clone());
        for (k, v) in &state.config.otlp_headers {
            req = req.header(k, v);
        }
        match req.send().await {
            Ok(r) if r.status().is_success() => return,
            Ok(r) if !(r.status().is_server_error() || r.status().as_u16() == 429) => {
                tracing::warn!(status = %r.status(), url, spans = spans.len(), "the OTLP endpoint refused Arbiter's spans");
                break;
            }
            Ok(r) => tracing::debug!(status = %r.status(), attempt, "OTLP export failed; retrying"),
            Err(e) => tracing::debug!(error = %e, attempt, "OTLP export failed; retrying"),
        }
        tokio::time::sleep(Duration::from_millis(200 * 2u64.pow(attempt))).await;
    }
    state.telemetry.dropped.fetch_add(spans.len() as u64, Ordering::Relaxed);
    tracing::warn!(url, spans = spans.len(), "could not export Arbiter's spans; they are dropped");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_is_parsed_as_w3c_says() {
        let p = TraceParent::parse("00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01").unwrap();
        assert_eq!(
            (p.trace_id.as_str(), p.parent_id.as_str()),
            ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")
        );
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-zz",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad}");
        }
    }
}
