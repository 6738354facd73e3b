//! The agents' own runs: OTLP ingest, the run around a decision, and the
//! retention purge that never touches the run of a decision under review.

use crate::{ApiError, AppState};
use arbiter_api::cases::ListQuery;
use arbiter_core::trace::{self, Span, TraceTree, valid_id};
use arbiter_core::{CaseKind, Decision};
use arbiter_otlp::{DecodeError, Encoding};

/// Spans read for one decision's run at most.
pub const MAX_TRACE_SPANS: usize = 2_000;

/// Store the spans of an OTLP/HTTP export as `sender`'s; the answer (in the
/// request's encoding) carries `partial_success` when some spans were
/// rejected, including those whose ids are already stored for another
/// sender (never replaced). A body that cannot be decoded is refused whole:
/// nothing of it is stored.
pub async fn ingest(
    state: &AppState,
    sender: &str,
    body: &[u8],
    content_type: Option<&str>,
    content_encoding: Option<&str>,
) -> Result<(Encoding, Vec<u8>, u64), ApiError> {
    let encoding = content_type.and_then(Encoding::from_content_type).ok_or_else(|| {
        ApiError::UnsupportedMediaType(format!(
            "send OTLP traces as `application/x-protobuf` or `application/json`, not `{}`",
            content_type.unwrap_or("(none)")
        ))
    })?;
    let limit = state.config.max_trace_bytes;
    let unzipped;
    let body = match content_encoding.map(|e| e.trim().to_ascii_lowercase()) {
        None => body,
        Some(e) if e.is_empty() || e == "identity" => body,
        Some(e) if e == "gzip" => {
            unzipped = arbiter_otlp::gunzip(body, limit).map_err(malformed)?;
            &unzipped
        }
        Some(e) => {
            return Err(ApiError::UnsupportedMediaType(format!(
                "`Content-Encoding: {e}` is not supported; send gzip or no encoding"
            )));
        }
    };
    let mut decoded = arbiter_otlp::decode(body, encoding).map_err(malformed)?;
    let stored = if decoded.spans.is_empty() {
        0
    } else {
        let sent = decoded.spans.len() as u64;
        let stored = state.store.insert_spans(sender, std::mem::take(&mut decoded.spans), state.clock.now()).await?;
        if stored < sent {
            decoded.rejected += sent - stored;
            decoded.reasons.push(format!(
                "{} span(s) not stored: their trace and span ids are already stored for another sender",
                sent - stored
            ));
        }
        stored
    };
    state.metrics.spans_received.inc_by(stored);
    Ok((encoding, arbiter_otlp::response(&decoded, encoding), stored))
}

fn malformed(e: DecodeError) -> ApiError {
    match e {
        DecodeError::TooLarge(n) => ApiError::TooLarge(n),
        other => ApiError::MalformedTraces(other.to_string()),
    }
}

/// The trace a decision belongs to: the trace holding the tool call span its
/// `context.tool_call_id` names (among the spans its own agent sent), else its
/// own trace id when that is an OpenTelemetry id (32 hex digits).
pub async fn trace_id_of(state: &AppState, d: &Decision) -> Result<Option<String>, ApiError> {
    if let Some(call) = tool_call_id(d)
        && let Some(t) = state.store.trace_of_tool_call(&d.agent, &call).await?
    {
        return Ok(Some(t));
    }
    Ok(d.trace_id.as_deref().filter(|t| valid_id(t, 32)).map(str::to_ascii_lowercase))
}

/// The decision's `context.tool_call_id`, if it names one.
pub fn tool_call_id(d: &Decision) -> Option<String> {
    d.context.get("tool_call_id").and_then(|v| v.as_str()).map(str::to_string)
}

/// The spans of a decision's run: those of its trace that its own agent sent
/// (another principal's spans in the same trace are never part of it).
pub async fn run_spans(state: &AppState, d: &Decision, trace_id: &str) -> Result<Vec<Span>, ApiError> {
    Ok(state.store.trace_spans(trace_id, Some(&d.agent), MAX_TRACE_SPANS).await?)
}

/// The agent's run around a decision, as a tree with the decision marked
/// (`None` when no span of its trace has arrived).
pub async fn decision_trace(state: &AppState, d: &Decision) -> Result<Option<TraceTree>, ApiError> {
    let Some(trace_id) = trace_id_of(state, d).await? else { return Ok(None) };
    let spans = run_spans(state, d, &trace_id).await?;
    if spans.is_empty() {
        return Ok(None);
    }
    let decided_at_ns = d.received_at.0.saturating_mul(1_000_000);
    Ok(Some(trace::tree(&trace_id, &spans, tool_call_id(d).as_deref(), Some(decided_at_ns))))
}

/// The traces of every decision under review: open approval cases and open
/// review cases (their decisions and the traces they name).
async fn traces_under_review(state: &AppState) -> Result<Vec<String>, ApiError> {
    let mut keep = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = super::cases::find(
            state,
            ListQuery {
                state: Some("open,claimed".into()),
                cursor: cursor.clone(),
                limit: Some(1000),
                ..Default::default()
            },
        )
        .await?;
        for c in &page.cases {
            let mut ids: Vec<&str> = c.decision_id.iter().map(String::as_str).collect();
            if c.kind == CaseKind::Review
                && let Some(r) = &c.review
            {
                ids.extend(r.decision_ids.iter().map(String::as_str));
                keep.extend(r.trace_ids.iter().cloned());
            }
            for id in ids {
                if let Some(d) = state.store.decision(id).await?
                    && let Some(t) = trace_id_of(state, &d).await?
                {
                    keep.push(t);
                }
            }
        }
        match page.next {
            Some(n) => cursor = Some(n.to_string()),
            None => break,
        }
    }
    keep.sort();
    keep.dedup();
    Ok(keep)
}

/// Remove spans older than the retention, keeping the runs of decisions under review.
pub async fn purge(state: &AppState) -> Result<u64, ApiError> {
    let retention = state.config.trace_retention.as_millis() as i64;
    let before = state.clock.now().plus_millis(-retention);
    let keep = traces_under_review(state).await?;
    Ok(state.store.purge_spans(before, keep).await?)
}

/// A decision as a self-contained replay bundle: the decision, the exact policy
/// source that made it, its run's spans and the cassette of recorded calls.
pub async fn bundle(state: &AppState, d: Decision) -> Result<arbiter_core::replay::Bundle, ApiError> {
    use arbiter_core::replay::{BUNDLE_VERSION, Bundle, BundlePolicy, BundleTrace, cassette};
    let v = state.store.policy_version(&d.policy_hash).await?.ok_or_else(|| {
        ApiError::internal_msg(format!("policy version {} is referenced but not stored", d.policy_hash))
    })?;
    let trace = match trace_id_of(state, &d).await? {
        Some(t) => {
            let spans = run_spans(state, &d, &t).await?;
            (!spans.is_empty()).then_some(BundleTrace { trace_id: t, spans })
        }
        None => None,
    };
    let tape = trace.as_ref().map(|t| cassette(&t.spans, tool_call_id(&d).as_deref())).unwrap_or_default();
    Ok(Bundle {
        arbiter_replay: BUNDLE_VERSION,
        exported_at: state.clock.now(),
        decision: d,
        policy: BundlePolicy { hash: v.hash, name: v.name, source: v.source },
        trace,
        cassette: tape,
    })
}
