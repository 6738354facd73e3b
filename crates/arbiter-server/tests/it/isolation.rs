//! An agent attacks another agent: with its own key, agent A calls every
//! endpoint of the API against agent B's decisions, cases, traces, receipts
//! and results, and can neither read nor change any of it. Routes an agent key
//! may call are exercised one by one below; every other route must refuse an
//! agent key outright, which the last test checks for the whole route table
//! (a new route an agent can call fails it until it is added here).

use crate::support::{TestServer, isolate};
use reqwest::Method;
use serde_json::{Value, json};

const TRACE_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb1";
const TRACE_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1";

/// An OTLP/JSON export of spans `(trace, span id, tool call id, marker)`.
fn export(spans: &[(&str, &str, Option<&str>, &str)]) -> Value {
    let spans: Vec<Value> = spans
        .iter()
        .map(|(trace, id, call, marker)| {
            let mut attrs = vec![
                json!({"key": "gen_ai.operation.name", "value": {"stringValue": "execute_tool"}}),
                json!({"key": "marker", "value": {"stringValue": marker}}),
            ];
            if let Some(call) = call {
                attrs.push(json!({"key": "gen_ai.tool.call.id", "value": {"stringValue": call}}));
            }
            json!({"traceId": trace, "spanId": id, "name": format!("execute_tool {marker}"),
                   "startTimeUnixNano": "1800000000000000000", "endTimeUnixNano": "1800000001000000000",
                   "attributes": attrs})
        })
        .collect();
    json!({"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"spans": spans}]}]})
}

/// Markers of the spans in a trace tree, sorted.
fn markers(tree: &Value) -> Vec<String> {
    let mut out: Vec<String> = tree["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r.pointer("/span/attributes/marker").and_then(Value::as_str).map(str::to_string))
        .collect();
    out.sort();
    out
}

struct Pair {
    s: TestServer,
    a: String,
    b: String,
    /// B's escalated decision, its case, and B's allowed decision.
    b_pending: String,
    b_case: String,
    b_allowed: Value,
}

async fn pair() -> Pair {
    let s = TestServer::start().await;
    let a = s.key("agent-a", "agent", &[]).await;
    let b = s.key("agent-b", "agent", &[]).await;
    let (code, out) = s.post_traces(&b, export(&[(TRACE_B, "00000000000000b1", Some("call_7"), "b-own")])).await;
    assert_eq!(code, 200, "{out}");
    let (code, pending) = s
        .post(
            &b,
            "/v1/decisions",
            json!({"action": isolate("srv-9", &[], 0.9), "trace_id": TRACE_B,
                                           "context": {"tool_call_id": "call_7"}}),
        )
        .await;
    assert_eq!((code, pending["verdict"].as_str()), (201, Some("escalate")), "{pending}");
    let (code, allowed) = s
        .post(
            &b,
            "/v1/decisions",
            json!({"action": {"name": "close_alert", "confidence": 0.99, "args": {"alert_id": "B-1"}},
                                           "trace_id": TRACE_B}),
        )
        .await;
    assert_eq!((code, allowed["verdict"].as_str()), (201, Some("allow")), "{allowed}");
    Pair {
        b_pending: pending["id"].as_str().unwrap().into(),
        b_case: pending["case_id"].as_str().unwrap().into(),
        b_allowed: allowed,
        s,
        a,
        b,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_cannot_touch_another_agents_decisions() {
    let Pair { s, a, b, b_pending, b_allowed, .. } = pair().await;
    let allowed = b_allowed["id"].as_str().unwrap();
    for id in [b_pending.as_str(), allowed] {
        for (method, path, body) in [
            (Method::GET, format!("/v1/decisions/{id}"), None),
            (Method::GET, format!("/v1/decisions/{id}?wait=1s"), None),
            (Method::GET, format!("/v1/decisions/{id}/trace"), None),
            (Method::GET, format!("/v1/decisions/{id}/replay"), None),
            (Method::POST, format!("/v1/decisions/{id}/outcome"), Some(json!({"correct": false}))),
            (Method::POST, format!("/v1/decisions/{id}/withdraw"), Some(json!({"reason": "mine now"}))),
            (Method::POST, format!("/v1/decisions/{id}/result"), Some(json!({"content": "planted"}))),
            (
                Method::POST,
                format!("/v1/decisions/{id}/consume"),
                Some(
                    json!({"receipt": b_allowed["final"]["receipt"], "args": {"alert_id": "B-1"}, "consumer": "a-tool"}),
                ),
            ),
        ] {
            let (code, out) = s.call(&a, method.clone(), &path, body).await;
            assert_eq!(code, 404, "{method} {path} with A's key: {out}");
            assert!(!out.to_string().contains("srv-9"), "nothing of B's decision leaks: {out}");
        }
    }
    // B's decisions are as they were: pending, no outcome, no result, receipt unused
    let (_, d) = s.get(&b, &format!("/v1/decisions/{b_pending}")).await;
    assert_eq!(d["status"], "pending", "{d}");
    let (_, d) = s.get(&b, &format!("/v1/decisions/{allowed}")).await;
    assert!(d.get("outcome").is_none() && d.get("tool_result").is_none(), "{d}");
    let (code, used) = s
        .post(
            &b,
            &format!("/v1/decisions/{allowed}/consume"),
            json!({"receipt": b_allowed["final"]["receipt"], "args": {"alert_id": "B-1"}, "consumer": "b-tool"}),
        )
        .await;
    assert_eq!((code, used["first"].as_bool()), (200, Some(true)), "B's receipt is still B's to use: {used}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_cannot_read_another_agents_run() {
    let Pair { s, a, b, b_pending, .. } = pair().await;
    // A names B's trace id and B's tool call id on its own proposal
    for body in [
        json!({"action": {"name": "close_alert", "confidence": 0.99, "args": {"alert_id": "A-1"}}, "trace_id": TRACE_B}),
        json!({"action": {"name": "close_alert", "confidence": 0.99, "args": {"alert_id": "A-2"}},
               "context": {"tool_call_id": "call_7"}}),
    ] {
        let (code, d) = s.post(&a, "/v1/decisions", body).await;
        assert_eq!(code, 201, "{d}");
        let id = d["id"].as_str().unwrap();
        let (code, out) = s.get(&a, &format!("/v1/decisions/{id}/trace")).await;
        assert_eq!(code, 404, "B's spans are not A's run: {out}");
        let (code, bundle) = s.get(&a, &format!("/v1/decisions/{id}/replay")).await;
        assert_eq!(code, 200, "{bundle}");
        assert!(bundle.get("trace").is_none_or(Value::is_null), "{bundle}");
        assert!(!bundle.to_string().contains("b-own"), "{bundle}");
    }
    // A reviewer-only route stays reviewer-only
    let (code, _) = s.get(&a, &format!("/v1/traces/{TRACE_B}")).await;
    assert_eq!(code, 403);
    // B still reads its own run
    let (code, tree) = s.get(&b, &format!("/v1/decisions/{b_pending}/trace")).await;
    assert_eq!(code, 200, "{tree}");
    assert_eq!(markers(&tree), ["b-own"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_cannot_plant_spans_in_another_agents_run() {
    let Pair { s, a, b, b_pending, .. } = pair().await;
    // B's span id in B's trace (a replacement), a new span id in B's trace, and
    // a span in A's own trace recording B's (guessable) tool call id
    let (code, out) = s
        .post_traces(
            &a,
            export(&[
                (TRACE_B, "00000000000000b1", Some("call_7"), "replaced"),
                (TRACE_B, "00000000000000a2", None, "added"),
                (TRACE_A, "00000000000000a3", Some("call_7"), "hijacked"),
            ]),
        )
        .await;
    assert_eq!(code, 200, "{out}");
    assert_eq!(out["partialSuccess"]["rejectedSpans"], "1", "B's span is refused, and said so: {out}");
    assert!(out["partialSuccess"]["errorMessage"].as_str().unwrap().contains("another sender"), "{out}");
    // B's run, as B and as a reviewer sees it on the case, holds B's span only
    let (code, tree) = s.get(&b, &format!("/v1/decisions/{b_pending}/trace")).await;
    assert_eq!(code, 200, "{tree}");
    assert_eq!(markers(&tree), ["b-own"], "{tree}");
    assert_eq!(tree["trace_id"], TRACE_B, "the tool call still finds B's trace, not A's: {tree}");
    let (_, bundle) = s.get(&b, &format!("/v1/decisions/{b_pending}/replay")).await;
    let text = bundle.to_string();
    assert!(text.contains("b-own") && !text.contains("replaced") && !text.contains("added"), "{bundle}");
    let (_, tree) = s.get(&s.admin, &format!("/v1/decisions/{b_pending}/trace")).await;
    assert_eq!(markers(&tree), ["b-own"]);
    // a reviewer reading the whole trace sees A's added span, marked as A's
    let (_, whole) = s.get(&s.admin, &format!("/v1/traces/{TRACE_B}")).await;
    assert_eq!(markers(&whole), ["added", "b-own"], "{whole}");
    assert!(whole.to_string().contains("\"sender\":\"agent-a\""), "{whole}");
    // an agent key cannot send spans as another agent
    let r = s
        .http
        .post(s.at("/v1/traces"))
        .bearer_auth(&a)
        .header("arbiter-agent", "agent-b")
        .json(&export(&[(TRACE_B, "00000000000000a4", None, "as-b")]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // an admin (an ingest pipeline) may, explicitly
    let r = s
        .http
        .post(s.at("/v1/traces"))
        .bearer_auth(&s.admin)
        .header("arbiter-agent", "agent-b")
        .json(&export(&[(TRACE_B, "00000000000000c5", None, "collector")]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, tree) = s.get(&b, &format!("/v1/decisions/{b_pending}/trace")).await;
    assert_eq!(markers(&tree), ["b-own", "collector"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_idempotency_key_is_each_agents_own() {
    let s = TestServer::start().await;
    let a = s.key("agent-a", "agent", &[]).await;
    let b = s.key("agent-b", "agent", &[]).await;
    let propose = |key: &str, alert: &str| {
        s.http
            .post(s.at("/v1/decisions"))
            .bearer_auth(key)
            .header("idempotency-key", "alert-1")
            .json(&json!({"action": {"name": "close_alert", "confidence": 0.99, "args": {"alert_id": alert}}}))
            .send()
    };
    let first: Value = propose(&b, "B-1").await.unwrap().json().await.unwrap();
    let r = propose(&a, "A-1").await.unwrap();
    assert_eq!(r.status(), 201, "A's proposal is new, not B's replayed");
    let mine: Value = r.json().await.unwrap();
    assert_ne!(mine["id"], first["id"]);
    assert_eq!(mine["action"]["args"]["alert_id"], "A-1");
}

/// The routes an agent key may call, each exercised above or in the suites of
/// its feature; every other route must answer an agent key 403.
const AGENT_ROUTES: &[(&str, &str)] = &[
    ("post", "/v1/decisions"),
    ("get", "/v1/decisions/{id}"),
    ("post", "/v1/decisions/{id}/outcome"),
    ("get", "/v1/decisions/{id}/trace"),
    ("get", "/v1/decisions/{id}/replay"),
    ("post", "/v1/decisions/{id}/consume"),
    ("post", "/v1/decisions/{id}/withdraw"),
    ("post", "/v1/decisions/{id}/result"),
    ("post", "/v1/traces"),
    // shared, not any agent's: the policy's always-denied list, published guidance,
    // the receipts' public keys, health, metrics and the API document
    ("post", "/v1/policy/always-denied"),
    ("get", "/v1/guidance"),
    ("get", "/v1/receipts/keys"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_other_route_refuses_an_agent_key() {
    let Pair { s, a, b_pending, b_case, .. } = pair().await;
    let (_, review) =
        s.post(&s.admin, "/v1/reviews", json!({"title": "B's review", "decision_ids": [b_pending]})).await;
    let review = review["id"].as_str().unwrap().to_string();
    let (_, policy) = s.get(&s.admin, "/v1/policy").await;
    let hash = policy["hash"].as_str().unwrap().to_string();
    let api: Value = serde_json::from_str(arbiter_server::openapi::OPENAPI_JSON).unwrap();
    for (method, path) in arbiter_server::openapi::routes() {
        if AGENT_ROUTES.contains(&(method, path)) {
            continue;
        }
        let id = if path.starts_with("/v1/cases/") {
            b_case.as_str()
        } else if path.starts_with("/v1/reviews/") {
            review.as_str()
        } else {
            b_pending.as_str()
        };
        let concrete =
            path.replace("{id}", id).replace("{trace_id}", TRACE_B).replace("{hash}", &hash).replace("{index}", "0");
        // and the query parameters the route requires
        let concrete = format!("{concrete}{}", required_query(&api, path, method));
        let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
        // a body that parses, so the route reaches its role check: the
        // schema's required fields first, then every field
        let mut answer = (0, Value::Null);
        for every_field in [false, true] {
            let body = (method != Method::GET && method != Method::DELETE)
                .then(|| sample_body(&api, path, &method, every_field));
            answer = s.call(&a, method.clone(), &concrete, body).await;
            if answer.0 != 422 {
                break;
            }
        }
        let (code, out) = answer;
        assert_eq!(code, 403, "{method} {path} must refuse an agent key: {out}");
    }
}

/// `?name=x&...` for the query parameters the documented route requires (empty when none).
pub(crate) fn required_query(api: &Value, path: &str, method: &str) -> String {
    let required: Vec<String> = api["paths"][path][method]["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["in"] == "query" && p["required"] == true)
        .map(|p| format!("{}=x", p["name"].as_str().unwrap()))
        .collect();
    if required.is_empty() { String::new() } else { format!("?{}", required.join("&")) }
}

/// A request body that parses: the documented schema's fields (the required
/// ones, or all) with plain values.
pub(crate) fn sample_body(api: &Value, path: &str, method: &Method, every_field: bool) -> Value {
    let op = &api["paths"][path][method.as_str().to_ascii_lowercase()];
    let schema = &op["requestBody"]["content"]["application/json"]["schema"];
    sample(api, schema, every_field, 0)
}

fn sample(api: &Value, schema: &Value, every_field: bool, depth: u32) -> Value {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.rsplit('/').next().unwrap();
        return sample(api, &api["components"]["schemas"][name], every_field, depth + 1);
    }
    if let Some(first) = schema["enum"].as_array().and_then(|e| e.first()) {
        return first.clone();
    }
    let variant = schema["oneOf"].as_array().or(schema["anyOf"].as_array()).and_then(|o| o.first());
    if let Some(one) = variant
        && schema["properties"].is_null()
    {
        return sample(api, one, every_field, depth + 1);
    }
    let kind = match &schema["type"] {
        Value::Array(kinds) => kinds.iter().find(|k| *k != "null").cloned().unwrap_or(Value::Null),
        k => k.clone(),
    };
    match kind.as_str() {
        Some("string") => json!("x"),
        Some("integer") | Some("number") => json!(1),
        Some("boolean") => json!(true),
        Some("array") => json!([]),
        _ if depth > 6 => json!({}),
        _ => {
            let required: Vec<&str> =
                schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            let mut out = serde_json::Map::new();
            for (field, property) in schema["properties"].as_object().into_iter().flatten() {
                if every_field || required.contains(&field.as_str()) {
                    out.insert(field.clone(), sample(api, property, every_field, depth + 1));
                }
            }
            // an object with variants (`stage` and the stage's fields): the first variant's fields too
            if let Some(Value::Object(more)) = variant.map(|v| sample(api, v, every_field, depth + 1)) {
                out.extend(more);
            }
            Value::Object(out)
        }
    }
}
