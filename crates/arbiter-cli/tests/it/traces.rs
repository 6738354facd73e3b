//! Trace ingest and inspection end to end: the real OpenTelemetry Python SDK
//! exports an agent-like run (invoke_agent → chat → execute_tool) over
//! OTLP/HTTP protobuf with gzip, proposes the tool call to Arbiter in the same
//! trace, and the decision's trace, case page and review page show the tree.
//! JSON payloads, gzip, malformed payloads and the separate OTLP listener are
//! checked with hand-made bodies. Without the SDK (pip install -r
//! tests/traces/requirements.txt into $ARBITER_VENV) the SDK test says so and
//! skips, unless ARBITER_REQUIRE_SCHEMATHESIS=1 (set by .ci/run, which
//! installs both), where that is a failure.

use crate::support::Server;
use serde_json::{Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

fn python() -> Option<PathBuf> {
    crate::support::python_with("ARBITER_VENV", "opentelemetry.sdk, opentelemetry.exporter.otlp.proto.http")
}

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// A JSON export: an agent span and a tool call span with `gen_ai.tool.call.id`.
fn json_export(trace: &str) -> Value {
    json!({"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json-agent"}}]},
    "scopeSpans": [{"scope": {"name": "agent"}, "spans": [
      {"traceId": trace, "spanId": "00f067aa0ba902b7", "name": "invoke_agent triage", "kind": 1,
       "startTimeUnixNano": "1764150000000000000", "endTimeUnixNano": "1764150002000000000",
       "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "invoke_agent"}}]},
      {"traceId": trace, "spanId": "00f067aa0ba902b8", "parentSpanId": "00f067aa0ba902b7", "name": "execute_tool close_alert",
       "startTimeUnixNano": "1764150001000000000", "endTimeUnixNano": "1764150001500000000",
       "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "execute_tool"}},
                      {"key": "gen_ai.tool.call.id", "value": {"stringValue": "call_json_1"}},
                      {"key": "gen_ai.tool.name", "value": {"stringValue": "close_alert"}}]},
      {"traceId": "00000000000000000000000000000000", "spanId": "00f067aa0ba902b9", "name": "bad ids"}
    ]}]}]})
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_gzip_partial_success_and_malformed_payloads() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("arbiter.db"), &["--otlp-listen", "127.0.0.1:0"]);
    let agent = s.key("json-agent", "agent", &[]).await;
    let post = |body: Vec<u8>, ct: &'static str, enc: Option<&'static str>, key: String| {
        let mut r = s.http.post(s.at("/v1/traces")).bearer_auth(key).header("content-type", ct).body(body);
        if let Some(e) = enc {
            r = r.header("content-encoding", e);
        }
        r.send()
    };
    // JSON, gzip-compressed: two spans kept, one rejected with a reason
    let body = gzip(&serde_json::to_vec(&json_export(TRACE)).unwrap());
    let r = post(body, "application/json", Some("gzip"), agent.clone()).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["partialSuccess"]["rejectedSpans"], "1", "{answer}");
    assert!(answer["partialSuccess"]["errorMessage"].as_str().unwrap().contains("trace id"), "{answer}");
    // a decision proposed from that tool call finds its run by the tool call id
    let d: Value = s
        .propose(&agent, &json!({"action": {"name": "close_alert", "confidence": 0.99, "args": {"alert_id": "A-1", "resolution": "benign"},
            "signals": {"alert_type": "benign_noise", "alert_severity": "low"}}, "context": {"tool_call_id": "call_json_1"}}), None)
        .await
        .json()
        .await
        .unwrap();
    let t: Value = s
        .http
        .get(s.at(&format!("/v1/decisions/{}/trace", d["id"].as_str().unwrap())))
        .bearer_auth(&agent)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(t["trace_id"], TRACE, "{t}");
    assert_eq!(t["decision_span_id"], "00f067aa0ba902b8");
    assert_eq!(t["rows"].as_array().unwrap().len(), 2);
    // malformed: problem+json, nothing stored
    for (body, ct, enc, code) in [
        (b"{\"resourceSpans\": 7}".to_vec(), "application/json", None, "malformed_traces"),
        (vec![0xff, 0xff, 0xff, 0x01], "application/x-protobuf", None, "malformed_traces"),
        (b"not gzip".to_vec(), "application/x-protobuf", Some("gzip"), "malformed_traces"),
        (b"{}".to_vec(), "text/plain", None, "unsupported_media_type"),
        (b"{}".to_vec(), "application/json", Some("br"), "unsupported_media_type"),
    ] {
        let r = post(body, ct, enc, agent.clone()).await.unwrap();
        assert!(r.status().is_client_error(), "{code}: {}", r.status());
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        let p: Value = r.json().await.unwrap();
        assert_eq!(p["code"], code, "{p}");
    }
    let other = "5b8efff798038103d269b633813fc60c";
    let malformed_with_spans = serde_json::to_vec(&json_export(other)).unwrap();
    let cut = &malformed_with_spans[..malformed_with_spans.len() / 2];
    assert_eq!(post(cut.to_vec(), "application/json", None, agent.clone()).await.unwrap().status(), 400);
    let stored = s.http.get(s.at(&format!("/v1/traces/{other}"))).bearer_auth(s.admin()).send().await.unwrap();
    assert_eq!(stored.status(), 404, "nothing of a malformed payload is stored");
    let none = s
        .http
        .get(s.at(&format!("/v1/decisions/{}/trace", d["id"].as_str().unwrap())))
        .bearer_auth(&agent)
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), 200, "the earlier run is still there");
    // reviewers cannot send traces; the separate OTLP listener takes the same export
    let reviewer = s.key("rev", "reviewer", &["soc_analyst"]).await;
    assert_eq!(post(b"{}".to_vec(), "application/json", None, reviewer).await.unwrap().status(), 403);
    let otlp = s.otlp_url.clone().expect("the server printed its OTLP address");
    let r = s
        .http
        .post(otlp.clone())
        .bearer_auth(&agent)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&json_export(other)).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let on_main = s.http.get(otlp.replace("/v1/traces", "/v1/queue")).bearer_auth(s.admin()).send().await.unwrap();
    assert_eq!(on_main.status(), 404, "the OTLP listener serves traces only");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_run_shows_beside_its_decision() {
    let Some(py) = python() else {
        let msg = "the trace test needs the OpenTelemetry Python SDK (pip install -r tests/traces/requirements.txt; \
                   set ARBITER_VENV to the venv)";
        crate::support::skip("ARBITER_REQUIRE_SCHEMATHESIS", msg);
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("arbiter.db"), &[]);
    let agent = s.key("triage-agent", "agent", &[]).await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/traces/agent.py");
    let out = Command::new(&py).arg(&script).arg(&s.url).arg(&agent).output().unwrap();
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let run: Value = serde_json::from_slice(out.stdout.trim_ascii().rsplit(|b| *b == b'\n').next().unwrap()).unwrap();
    let id = run["decision_id"].as_str().unwrap();
    let t: Value = s
        .http
        .get(s.at(&format!("/v1/decisions/{id}/trace")))
        .bearer_auth(&agent)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(t["trace_id"], run["trace_id"]);
    let rows = t["rows"].as_array().unwrap();
    let shape: Vec<(&str, u64, &str)> = rows
        .iter()
        .map(|r| (r["name"].as_str().unwrap(), r["depth"].as_u64().unwrap(), r["summary"]["role"].as_str().unwrap()))
        .collect();
    assert_eq!(
        shape,
        [
            ("invoke_agent triage", 0, "agent"),
            ("chat gpt-4.1", 1, "llm"),
            ("execute_tool isolate_host", 1, "tool"),
            ("chat gpt-4.1", 1, "llm"),
        ],
        "{t}"
    );
    assert_eq!(rows[1]["summary"]["model"], "gpt-4.1");
    assert_eq!(
        (rows[1]["summary"]["input_tokens"].as_u64(), rows[1]["summary"]["output_tokens"].as_u64()),
        (Some(812), Some(64))
    );
    assert!(rows[1]["summary"]["input_messages"].as_str().unwrap().contains("malware on srv-db-01"));
    assert_eq!(rows[2]["is_decision"], true, "the decision's own tool call is marked");
    assert!(
        rows[2]["summary"]["tool_result"].as_str().unwrap().contains("escalate"),
        "the tool result recorded after the proposal"
    );
    assert_eq!(rows[3]["status"], "error", "a span that arrived after the decision still attaches");
    assert!(rows[3]["summary"]["error"].as_str().unwrap().contains("429"));
    assert_eq!((t["llm_calls"].as_u64(), t["tool_calls"].as_u64(), t["errors"].as_u64()), (Some(2), Some(1), Some(1)));
    // the console's case page shows the tree, the decision's span marked
    let case = run["case_id"].as_str().unwrap();
    let reviewer = s.key("ana", "reviewer", &["soc_analyst"]).await;
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let login =
        client.post(s.at("/login")).form(&[("key", reviewer.as_str()), ("next", "/queue")]).send().await.unwrap();
    let cookie = login.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let page = client
        .get(s.at(&format!("/cases/{case}")))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Agent run") && page.contains("execute_tool isolate_host"), "{page}");
    let span_id = rows[2]["span_id"].as_str().unwrap();
    assert!(
        page.contains(&format!("id=\"span-{span_id}\" class=\"span depth-1 decision\"")),
        "the decision's span is marked"
    );
    assert!(page.contains("812 in, 64 out"));
    // and so does the review page of a review opened from the case
    let review: Value = s
        .http
        .post(s.at("/v1/reviews"))
        .bearer_auth(s.admin())
        .json(&json!({"title": "over-isolation", "from_case": case}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let page = client
        .get(s.at(&format!("/reviews/{}", review["id"].as_str().unwrap())))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Agent run") && page.contains("execute_tool isolate_host"));

    // Reproduction: the bundle holds the decision, the exact policy and the cassette; it replays with no server.
    let bundle = dir.path().join("bundle.json");
    let export = Command::new(crate::support::bin())
        .args(["replay", "export", id, "--out"])
        .arg(&bundle)
        .args(["--url", &s.url, "--key", &reviewer])
        .output()
        .unwrap();
    assert!(export.status.success(), "{}", String::from_utf8_lossy(&export.stderr));
    let b: Value = serde_json::from_str(&std::fs::read_to_string(&bundle).unwrap()).unwrap();
    assert_eq!(b["arbiter_replay"], 1);
    assert_eq!(b["decision"]["id"], id);
    assert!(b["policy"]["source"].as_str().unwrap().contains("isolate_server"), "the exact policy source");
    assert_eq!(b["trace"]["spans"].as_array().unwrap().len(), 4);
    let tools = b["cassette"]["tool_calls"].as_array().unwrap();
    assert_eq!(
        (tools.len(), &tools[0]["tool_call_id"], &tools[0]["is_decision"]),
        (1, &json!("call_42"), &json!(true))
    );
    assert!(tools[0]["result"].as_str().unwrap().contains("escalate"), "the recorded tool result");
    assert!(b["cassette"]["model_calls"][0]["output_messages"].as_str().unwrap().contains("isolate_host"));
    let replay = |extra: &[&str]| {
        Command::new(crate::support::bin()).args(["replay", "run"]).arg(&bundle).args(extra).output().unwrap()
    };
    let same = replay(&["--json"]);
    assert_eq!(same.status.code(), Some(0), "{}", String::from_utf8_lossy(&same.stdout));
    let same: Value = serde_json::from_slice(&same.stdout).unwrap();
    assert_eq!((same["reproduced"].as_bool(), &same["replayed"]["verdict"]), (Some(true), &json!("escalate")));
    // a candidate without the server trigger changes the verdict, and says so
    let policy = std::fs::read_to_string(crate::support::soc_policy()).unwrap();
    let start = policy.find("  - name: isolate_server").unwrap();
    let end = start + policy[start..].find("  - name: isolate_domain_controller").unwrap();
    let candidate = dir.path().join("candidate.yaml");
    std::fs::write(&candidate, format!("{}{}", &policy[..start], &policy[end..])).unwrap();
    let changed = replay(&["--policy", candidate.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&changed.stdout);
    assert_eq!(changed.status.code(), Some(1), "{text}");
    assert!(text.contains("changed:") && text.contains("isolate_server"), "{text}");
    // the contextual analysis records the reproduction: the bundle's hash and what differed
    let sha = same["bundle_sha256"].as_str().unwrap();
    let eng = s.key("eve", "reviewer", &["engineering"]).await;
    let r = s
        .http
        .post(s.at(&format!("/v1/reviews/{}/stages", review["id"].as_str().unwrap())))
        .bearer_auth(&eng)
        .json(&json!({"stage": "contextual_analysis", "role": "engineering", "rationale": "replayed from the bundle",
            "reproduced": "yes", "steps": ["arbiter replay run bundle.json"], "environment": "laptop, no server",
            "bundle_sha256": sha, "differences": "none"}))
        .send()
        .await
        .unwrap();
    let reviewed: Value = r.json().await.unwrap();
    assert!(reviewed.to_string().contains(sha), "the stage keeps the bundle hash: {reviewed}");
    // the trace inspection cites the decision's span as evidence; the review page links to it
    let r = s.http.post(s.at(&format!("/v1/reviews/{}/stages", review["id"].as_str().unwrap()))).bearer_auth(&eng)
        .json(&json!({"stage": "trace_inspection", "role": "engineering", "rationale": "the tool call shows it",
            "findings": [{"decision_id": id, "span_id": span_id, "kind": "wrong_action", "note": "isolated a database server"}]}))
        .send().await.unwrap();
    assert_eq!(r.status(), 201);
    let page = client
        .get(s.at(&format!("/reviews/{}", review["id"].as_str().unwrap())))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(&format!("href=\"/decisions/{id}#span-{span_id}\"")), "the finding links to its span");
}

/// Arbiter's own telemetry, received by a second Arbiter's `/v1/traces`: the
/// decision is a span in the agent's trace under the `traceparent`'s span, and
/// the reviewer's verdict an evaluation result event in the same trace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_and_human_verdicts_are_exported_into_the_agents_trace() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Server::start(&dir.path().join("receiver.db"), &[]);
    let ingest = receiver.key("arbiter-a", "agent", &[]).await;
    let header = format!("authorization=Bearer {ingest}");
    let a = Server::start(&dir.path().join("a.db"), &["--otlp-endpoint", &receiver.url, "--otlp-header", &header]);
    let agent = a.key("triage-agent", "agent", &[]).await;
    let (trace, parent) = ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331");
    let r = a
        .http
        .post(a.at("/v1/decisions"))
        .bearer_auth(&agent)
        .header("traceparent", format!("00-{trace}-{parent}-01"))
        .json(&crate::support::escalating_action())
        .send()
        .await
        .unwrap();
    let d: Value = r.json().await.unwrap();
    assert_eq!(d["trace_id"], trace, "the decision joins the traceparent's trace");
    let ana = a.key("ana", "reviewer", &["soc_analyst"]).await;
    let answer = a
        .http
        .post(a.at(&format!("/v1/cases/{}/decision", d["case_id"].as_str().unwrap())))
        .bearer_auth(&ana)
        .json(&json!({"decision": "approve", "rationale": "confirmed ransomware beaconing"}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    // the receiver gets both spans within the exporter's batching delay
    let started = std::time::Instant::now();
    let tree = loop {
        let r = receiver
            .http
            .get(receiver.at(&format!("/v1/traces/{trace}")))
            .bearer_auth(receiver.admin())
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            let t: Value = r.json().await.unwrap();
            if t["rows"].as_array().unwrap().len() >= 2 {
                break t;
            }
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(20), "Arbiter's spans never arrived");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let rows = tree["rows"].as_array().unwrap();
    let decide = rows.iter().find(|r| r["name"] == "arbiter.decide isolate_host").expect("the decision's span");
    assert_eq!(decide["parent_span_id"], parent, "under the agent's span");
    assert_eq!(decide["span"]["service"], "arbiter");
    assert_eq!(decide["span"]["attributes"]["arbiter.decision.id"], d["id"]);
    assert_eq!(decide["span"]["attributes"]["arbiter.verdict"], "escalate");
    let review = rows.iter().find(|r| r["name"] == "arbiter.review isolate_host").expect("the review's span");
    let event = &review["span"]["events"][0];
    assert_eq!(event["name"], "gen_ai.evaluation.result");
    assert_eq!(event["attributes"]["gen_ai.evaluation.name"], "arbiter.review");
    assert_eq!(event["attributes"]["gen_ai.evaluation.score.label"], "allow");
    assert_eq!(event["attributes"]["gen_ai.evaluation.explanation"], "ana: confirmed ransomware beaconing");
    // reading any trace is for reviewers and admins
    let r = receiver.http.get(receiver.at(&format!("/v1/traces/{trace}"))).bearer_auth(&ingest).send().await.unwrap();
    assert_eq!(r.status(), 403);
}
