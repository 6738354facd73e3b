//! OTLP/HTTP trace payloads: what an OpenTelemetry SDK or Collector sends to
//! `POST /v1/traces`, decoded into [`arbiter_core::trace::Span`]s, and the
//! other way for Arbiter's own export.
//!
//! Both encodings of the specification are read: binary protobuf
//! (`application/x-protobuf`) and JSON (`application/json`, hex trace and
//! span ids, 64-bit integers as strings), either of them gzip-compressed.
//! A payload that cannot be decoded is an error and nothing of it is kept;
//! spans that decode but are unusable (bad ids) are rejected one by one and
//! counted, as OTLP's `partial_success` reports them.

use arbiter_core::trace::{Dropped, Span, SpanEvent, valid_id};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1 as pb;
use prost::Message;
use serde_json::{Map, Value};
use std::io::Read;

/// The two encodings of OTLP/HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `application/x-protobuf`
    Protobuf,
    /// `application/json`
    Json,
}

impl Encoding {
    /// The encoding a `Content-Type` names, if it is one of OTLP's.
    pub fn from_content_type(ct: &str) -> Option<Encoding> {
        match ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase().as_str() {
            "application/x-protobuf" | "application/protobuf" => Some(Encoding::Protobuf),
            "application/json" => Some(Encoding::Json),
            _ => None,
        }
    }

    /// The `Content-Type` to answer with.
    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

/// Why a payload could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The gzip stream is broken.
    #[error("the body is not valid gzip: {0}")]
    Gzip(String),
    /// Decompressed, the body is larger than allowed.
    #[error("the body is larger than {0} bytes once decompressed")]
    TooLarge(usize),
    /// Not an `ExportTraceServiceRequest`.
    #[error("the body is not an OTLP ExportTraceServiceRequest ({encoding}): {message}")]
    Malformed {
        /// `protobuf` or `JSON`.
        encoding: &'static str,
        /// What the decoder said.
        message: String,
    },
}

/// What a payload held.
#[derive(Debug, Default)]
pub struct Decoded {
    /// The spans to keep, bounded.
    pub spans: Vec<Span>,
    /// Spans left out, and why (the first few reasons).
    pub rejected: u64,
    /// One line naming the reasons, for `partial_success.error_message`.
    pub reasons: Vec<String>,
}

/// Undo `Content-Encoding: gzip`, refusing output past `limit` bytes.
pub fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    let mut reader = flate2::read::GzDecoder::new(body).take(limit as u64 + 1);
    reader.read_to_end(&mut out).map_err(|e| DecodeError::Gzip(e.to_string()))?;
    if out.len() > limit {
        return Err(DecodeError::TooLarge(limit));
    }
    Ok(out)
}

/// Decode a (decompressed) `ExportTraceServiceRequest`.
pub fn decode(body: &[u8], encoding: Encoding) -> Result<Decoded, DecodeError> {
    let request = match encoding {
        Encoding::Protobuf => ExportTraceServiceRequest::decode(body)
            .map_err(|e| DecodeError::Malformed { encoding: "protobuf", message: e.to_string() })?,
        Encoding::Json => serde_json::from_slice::<ExportTraceServiceRequest>(body)
            .map_err(|e| DecodeError::Malformed { encoding: "JSON", message: e.to_string() })?,
    };
    Ok(from_request(request))
}

fn reject(out: &mut Decoded, why: String) {
    out.rejected += 1;
    if out.reasons.len() < 3 && !out.reasons.contains(&why) {
        out.reasons.push(why);
    }
}

/// The spans of a request, bounded; unusable ones counted as rejected.
pub fn from_request(request: ExportTraceServiceRequest) -> Decoded {
    let mut out = Decoded::default();
    for rs in request.resource_spans {
        let service = rs.resource.as_ref().and_then(|r| {
            r.attributes.iter().find(|kv| kv.key == "service.name").and_then(|kv| kv.value.as_ref()).and_then(text)
        });
        for ss in rs.scope_spans {
            for s in ss.spans {
                let trace_id = hex::encode(&s.trace_id);
                let span_id = hex::encode(&s.span_id);
                if !valid_id(&trace_id, 32) {
                    reject(&mut out, format!("span `{}`: the trace id must be 16 bytes, not all zero", s.name));
                    continue;
                }
                if !valid_id(&span_id, 16) {
                    reject(&mut out, format!("span `{}`: the span id must be 8 bytes, not all zero", s.name));
                    continue;
                }
                let parent = hex::encode(&s.parent_span_id);
                let status = s.status.as_ref();
                let mut span = Span {
                    trace_id,
                    span_id,
                    parent_span_id: valid_id(&parent, 16).then_some(parent),
                    kind: kind_name(s.kind).to_string(),
                    start_ns: clamp_ns(s.start_time_unix_nano),
                    end_ns: clamp_ns(s.end_time_unix_nano),
                    status: match status.map(|st| st.code) {
                        Some(1) => "ok",
                        Some(2) => "error",
                        _ => "unset",
                    }
                    .to_string(),
                    status_message: status.map(|st| st.message.clone()).unwrap_or_default(),
                    service: service.clone(),
                    attributes: attributes(&s.attributes),
                    events: s
                        .events
                        .iter()
                        .map(|e| SpanEvent {
                            name: e.name.clone(),
                            time_ns: clamp_ns(e.time_unix_nano),
                            attributes: attributes(&e.attributes),
                        })
                        .collect(),
                    dropped: Dropped {
                        attributes: s.dropped_attributes_count,
                        events: s.dropped_events_count,
                        truncated_values: 0,
                    },
                    sender: None,
                    name: s.name,
                };
                span.bound();
                out.spans.push(span);
            }
        }
    }
    out
}

fn clamp_ns(ns: u64) -> i64 {
    i64::try_from(ns).unwrap_or(i64::MAX)
}

fn kind_name(kind: i32) -> &'static str {
    match pb::span::SpanKind::try_from(kind) {
        Ok(pb::span::SpanKind::Internal) => "internal",
        Ok(pb::span::SpanKind::Server) => "server",
        Ok(pb::span::SpanKind::Client) => "client",
        Ok(pb::span::SpanKind::Producer) => "producer",
        Ok(pb::span::SpanKind::Consumer) => "consumer",
        _ => "unspecified",
    }
}

fn text(v: &AnyValue) -> Option<String> {
    match &v.value {
        Some(any_value::Value::StringValue(s)) => Some(s.clone()),
        _ => None,
    }
}

fn json(v: &AnyValue) -> Value {
    match &v.value {
        Some(any_value::Value::StringValue(s)) => Value::String(s.clone()),
        Some(any_value::Value::BoolValue(b)) => Value::Bool(*b),
        Some(any_value::Value::IntValue(i)) => Value::from(*i),
        Some(any_value::Value::DoubleValue(d)) => serde_json::Number::from_f64(*d).map_or(Value::Null, Value::Number),
        Some(any_value::Value::ArrayValue(a)) => Value::Array(a.values.iter().map(json).collect()),
        Some(any_value::Value::KvlistValue(kv)) => Value::Object(attributes(&kv.values)),
        Some(any_value::Value::BytesValue(b)) => Value::String(hex::encode(b)),
        _ => Value::Null,
    }
}

fn attributes(kvs: &[KeyValue]) -> Map<String, Value> {
    kvs.iter().map(|kv| (kv.key.clone(), kv.value.as_ref().map_or(Value::Null, json))).collect()
}

/// The answer to an export: empty when every span was kept, else
/// `partial_success` with the rejected count and why.
pub fn response(decoded: &Decoded, encoding: Encoding) -> Vec<u8> {
    let partial_success = (decoded.rejected > 0).then(|| ExportTracePartialSuccess {
        rejected_spans: decoded.rejected as i64,
        error_message: decoded.reasons.join("; "),
    });
    let r = ExportTraceServiceResponse { partial_success };
    match (encoding, &r.partial_success) {
        (Encoding::Protobuf, _) => r.encode_to_vec(),
        (Encoding::Json, None) => b"{}".to_vec(),
        // the protobuf JSON mapping writes 64-bit integers as strings
        (Encoding::Json, Some(p)) => serde_json::to_vec(&serde_json::json!({"partialSuccess": {
            "rejectedSpans": p.rejected_spans.to_string(),
            "errorMessage": p.error_message,
        }}))
        .unwrap_or_else(|_| b"{}".to_vec()),
    }
}

fn any(v: &Value) -> AnyValue {
    let value = match v {
        Value::String(s) => any_value::Value::StringValue(s.clone()),
        Value::Bool(b) => any_value::Value::BoolValue(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => any_value::Value::IntValue(i),
            None => any_value::Value::DoubleValue(n.as_f64().unwrap_or(0.0)),
        },
        Value::Array(a) => any_value::Value::ArrayValue(opentelemetry_proto::tonic::common::v1::ArrayValue {
            values: a.iter().map(any).collect(),
        }),
        Value::Object(_) | Value::Null => any_value::Value::StringValue(v.to_string()),
    };
    AnyValue { value: Some(value) }
}

fn key_values(m: &Map<String, Value>) -> Vec<KeyValue> {
    m.iter().map(|(k, v)| KeyValue { key: k.clone(), value: Some(any(v)), ..Default::default() }).collect()
}

/// Spans as one protobuf `ExportTraceServiceRequest` from `service` (Arbiter's own export).
pub fn encode_request(service: &str, scope: &str, spans: &[Span]) -> Vec<u8> {
    let unhex = |s: &str| hex::decode(s).unwrap_or_default();
    let spans = spans
        .iter()
        .map(|s| pb::Span {
            trace_id: unhex(&s.trace_id),
            span_id: unhex(&s.span_id),
            parent_span_id: s.parent_span_id.as_deref().map(unhex).unwrap_or_default(),
            name: s.name.clone(),
            kind: match s.kind.as_str() {
                "server" => pb::span::SpanKind::Server,
                "client" => pb::span::SpanKind::Client,
                _ => pb::span::SpanKind::Internal,
            } as i32,
            start_time_unix_nano: s.start_ns.max(0) as u64,
            end_time_unix_nano: s.end_ns.max(0) as u64,
            attributes: key_values(&s.attributes),
            events: s
                .events
                .iter()
                .map(|e| pb::span::Event {
                    time_unix_nano: e.time_ns.max(0) as u64,
                    name: e.name.clone(),
                    attributes: key_values(&e.attributes),
                    ..Default::default()
                })
                .collect(),
            status: Some(pb::Status {
                code: match s.status.as_str() {
                    "ok" => 1,
                    "error" => 2,
                    _ => 0,
                },
                message: s.status_message.clone(),
            }),
            ..Default::default()
        })
        .collect();
    let request = ExportTraceServiceRequest {
        resource_spans: vec![pb::ResourceSpans {
            resource: Some(opentelemetry_proto::tonic::resource::v1::Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue { value: Some(any_value::Value::StringValue(service.into())) }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_spans: vec![pb::ScopeSpans {
                scope: Some(opentelemetry_proto::tonic::common::v1::InstrumentationScope {
                    name: scope.into(),
                    ..Default::default()
                }),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    request.encode_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const JSON: &str = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"triage-agent"}}]},
      "scopeSpans":[{"scope":{"name":"agent"},"spans":[
        {"traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"eee19b7ec3c1b174","name":"chat gpt-4.1","kind":3,
         "startTimeUnixNano":"1544712660000000000","endTimeUnixNano":"1544712661000000000",
         "attributes":[{"key":"gen_ai.usage.input_tokens","value":{"intValue":"42"}},{"key":"temperature","value":{"doubleValue":0.5}},
                       {"key":"tags","value":{"arrayValue":{"values":[{"stringValue":"a"},{"boolValue":true}]}}}],
         "events":[{"timeUnixNano":"1544712660500000000","name":"gen_ai.choice","attributes":[]}],
         "status":{"code":2,"message":"rate limited"}},
        {"traceId":"00000000000000000000000000000000","spanId":"eee19b7ec3c1b175","name":"no trace"},
        {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b176","parentSpanId":"eee19b7ec3c1b174","name":"tool"}
      ]}]}]}"#;

    #[test]
    fn json_and_protobuf_and_gzip_decode_to_the_same_spans() {
        let d = decode(JSON.as_bytes(), Encoding::Json).unwrap();
        assert_eq!((d.spans.len(), d.rejected), (2, 1));
        assert!(d.reasons[0].contains("trace id"), "{:?}", d.reasons);
        let s = &d.spans[0];
        assert_eq!((s.trace_id.as_str(), s.span_id.as_str()), ("5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174"));
        assert_eq!(
            (s.kind.as_str(), s.status.as_str(), s.status_message.as_str()),
            ("client", "error", "rate limited")
        );
        assert_eq!(s.service.as_deref(), Some("triage-agent"));
        assert_eq!(s.attributes["gen_ai.usage.input_tokens"], 42);
        assert_eq!(s.attributes["tags"], serde_json::json!(["a", true]));
        assert_eq!(
            (s.start_ns, s.end_ns, s.events[0].time_ns),
            (1544712660000000000, 1544712661000000000, 1544712660500000000)
        );
        assert_eq!(d.spans[1].parent_span_id.as_deref(), Some("eee19b7ec3c1b174"));
        // the same request as protobuf, and gzip-compressed
        let request: ExportTraceServiceRequest = serde_json::from_str(JSON).unwrap();
        let bytes = request.encode_to_vec();
        let p = decode(&bytes, Encoding::Protobuf).unwrap();
        assert_eq!(p.spans, d.spans);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&bytes).unwrap();
        let unzipped = gunzip(&gz.finish().unwrap(), 1 << 20).unwrap();
        assert_eq!(decode(&unzipped, Encoding::Protobuf).unwrap().spans, d.spans);
        // our own export round-trips
        let again = decode(&encode_request("arbiter", "arbiter", &d.spans), Encoding::Protobuf).unwrap();
        assert_eq!(again.spans[0].attributes, d.spans[0].attributes);
        assert_eq!(again.spans[0].service.as_deref(), Some("arbiter"));
    }

    #[test]
    fn broken_payloads_are_errors_not_partial_results() {
        assert!(matches!(decode(b"{\"resourceSpans\": 7}", Encoding::Json), Err(DecodeError::Malformed { .. })));
        assert!(matches!(decode(&[0xff, 0xff, 0xff], Encoding::Protobuf), Err(DecodeError::Malformed { .. })));
        assert!(matches!(gunzip(b"not gzip", 100), Err(DecodeError::Gzip(_))));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&[0u8; 1000]).unwrap();
        assert!(matches!(gunzip(&gz.finish().unwrap(), 999), Err(DecodeError::TooLarge(999))));
        assert_eq!(Encoding::from_content_type("Application/JSON; charset=utf-8"), Some(Encoding::Json));
        assert_eq!(Encoding::from_content_type("text/plain"), None);
    }

    #[test]
    fn partial_success_names_the_rejects() {
        let d = decode(JSON.as_bytes(), Encoding::Json).unwrap();
        let raw: serde_json::Value = serde_json::from_slice(&response(&d, Encoding::Json)).unwrap();
        assert_eq!(raw["partialSuccess"]["rejectedSpans"], "1", "int64 as a string, as the JSON mapping says");
        let ok = Decoded::default();
        let r = ExportTraceServiceResponse::decode(response(&ok, Encoding::Protobuf).as_slice()).unwrap();
        assert!(r.partial_success.is_none());
    }
}
