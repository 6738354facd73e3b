//! Signed approval receipts end to end: a modified approval's receipt binds
//! the modified arguments; `arbiter receipt verify` accepts it online and
//! offline and refuses other arguments, an altered field and an expired one;
//! `consume` records one use per receipt and refuses a replay by another
//! consumer and a forged receipt; a rotated key keeps old receipts valid.

use crate::support::{Server, bin, escalating_action};
use serde_json::{Value, json};
use std::process::Command;

fn verify(file: &std::path::Path, extra: &[&str]) -> (i32, String) {
    let out = Command::new(bin()).args(["receipt", "verify"]).arg(file).args(extra).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_bind_one_call_and_are_used_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("arbiter.db"), &["--receipt-ttl", "3s"]);
    let agent = s.key("triage-agent", "agent", &[]).await;
    let ana = s.key("ana", "reviewer", &["soc_analyst"]).await;
    let d: Value = s.propose(&agent, &escalating_action(), None).await.json().await.unwrap();
    assert!(d["final"].is_null(), "no receipt while pending");
    let modified =
        json!({"host": "srv-db-01", "host_tags": ["server"], "business_unit": "finance", "mode": "network_only"});
    let r = s.http.post(s.at(&format!("/v1/cases/{}/decision", d["case_id"].as_str().unwrap()))).bearer_auth(&ana)
        .json(&json!({"decision": "modify", "args": modified, "rationale": "network-only containment, keep it replicating"}))
        .send().await.unwrap();
    assert_eq!(r.status(), 200);
    let id = d["id"].as_str().unwrap();
    let fin: Value = s
        .http
        .get(s.at(&format!("/v1/decisions/{id}")))
        .bearer_auth(&agent)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let receipt = fin["final"]["receipt"].clone();
    assert_eq!(receipt["verdict"], "allow");
    assert_eq!(receipt["action"], "isolate_host");
    assert_eq!(receipt["decision_id"], id);
    assert!(receipt["args_digest"].as_str().unwrap().starts_with("sha256:"));
    let again: Value = s
        .http
        .get(s.at(&format!("/v1/decisions/{id}")))
        .bearer_auth(&agent)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["final"]["receipt"], receipt, "served twice, the same receipt");

    // anyone can check it: online, offline with the published keys, and against the arguments about to run
    let decision_file = dir.path().join("decision.json");
    std::fs::write(&decision_file, fin.to_string()).unwrap();
    let keys: Value = reqwest::get(s.at("/v1/receipts/keys")).await.unwrap().json().await.unwrap();
    assert_eq!(keys["keys"].as_array().unwrap().len(), 1);
    let keys_file = dir.path().join("keys.json");
    std::fs::write(&keys_file, keys.to_string()).unwrap();
    let modified_text = modified.to_string();
    let original_text = escalating_action()["action"]["args"].to_string();
    let (code, text) = verify(&decision_file, &["--url", &s.url]);
    assert_eq!(code, 0, "{text}");
    let (code, text) = verify(&decision_file, &["--keys", keys_file.to_str().unwrap(), "--args", &modified_text]);
    assert_eq!(code, 0, "{text}");
    let (code, text) = verify(&decision_file, &["--url", &s.url, "--args", &original_text]);
    assert_eq!(code, 2, "the proposal's own arguments are not what was approved: {text}");
    let mut forged = receipt.clone();
    forged["expires_at"] = json!("2099-01-01T00:00:00.000Z");
    let forged_file = dir.path().join("forged.json");
    std::fs::write(&forged_file, forged.to_string()).unwrap();
    let (code, text) = verify(&forged_file, &["--url", &s.url]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("bad signature"), "{text}");

    // one use: the same gateway may ask again, another is refused; a forged receipt is refused and logged
    let consume = |receipt: Value, args: Value, consumer: &str| {
        s.http
            .post(s.at(&format!("/v1/decisions/{id}/consume")))
            .bearer_auth(&agent)
            .json(&json!({"receipt": receipt, "args": args, "consumer": consumer}))
            .send()
    };
    let first = consume(receipt.clone(), modified.clone(), "gateway-1").await.unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(first.json::<Value>().await.unwrap()["first"], true);
    let twice = consume(receipt.clone(), modified.clone(), "gateway-1").await.unwrap();
    assert_eq!((twice.status().as_u16(), twice.json::<Value>().await.unwrap()["first"].clone()), (200, json!(false)));
    let replay = consume(receipt.clone(), modified.clone(), "gateway-2").await.unwrap();
    assert_eq!(replay.status(), 409);
    assert_eq!(replay.json::<Value>().await.unwrap()["code"], "receipt_consumed");
    let altered = consume(forged, modified.clone(), "gateway-1").await.unwrap();
    assert_eq!(altered.status(), 422);
    assert_eq!(altered.json::<Value>().await.unwrap()["code"], "receipt_invalid");
    let other_args = consume(receipt.clone(), json!({"host": "dc-01"}), "gateway-1").await.unwrap();
    assert_eq!(other_args.status(), 422, "other arguments are refused");
    let events: Value = s
        .http
        .get(s.at("/v1/audit/events?limit=1000"))
        .bearer_auth(s.admin())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kinds: Vec<&str> =
        events.as_array().or(events["events"].as_array()).unwrap().iter().filter_map(|e| e["kind"].as_str()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "receipt.consumed").count(), 1);
    assert!(kinds.iter().filter(|k| **k == "receipt.refused").count() >= 3, "{kinds:?}");

    // a new key signs from now on; the old receipt still verifies
    let rotated =
        Command::new(bin()).args(["receipt", "rotate", "--url", &s.url, "--key", s.admin()]).output().unwrap();
    assert!(rotated.status.success(), "{}", String::from_utf8_lossy(&rotated.stderr));
    let keys: Value = reqwest::get(s.at("/v1/receipts/keys")).await.unwrap().json().await.unwrap();
    assert_eq!(keys["keys"].as_array().unwrap().len(), 2);
    assert_eq!((keys["keys"][0]["active"].as_bool(), keys["keys"][1]["active"].as_bool()), (Some(true), Some(false)));
    assert_eq!(verify(&decision_file, &["--url", &s.url]).0, 0, "older receipts keep verifying");
    // a server with receipts off serves none
    let quiet = Server::start(&dir.path().join("quiet.db"), &["--receipts", "off"]);
    let qa = quiet.key("triage-agent", "agent", &[]).await;
    let allowed: Value = quiet.propose(&qa, &crate::support::allowed_action("A-9"), None).await.json().await.unwrap();
    assert_eq!(allowed["status"], "final");
    assert!(allowed["final"]["receipt"].is_null(), "{allowed}");
    let on: Value = s.propose(&agent, &crate::support::allowed_action("A-9"), None).await.json().await.unwrap();
    assert!(on["final"]["receipt"]["signature"].is_string(), "policy-final decisions carry one too: {on}");
    // and it expires (3 s here)
    tokio::time::sleep(std::time::Duration::from_millis(3_200)).await;
    let (code, text) = verify(&decision_file, &["--url", &s.url]);
    assert_eq!(code, 3, "{text}");
}

/// The arguments' digest is RFC 8785 exactly: an independent implementation
/// (Python's `rfc8785`, reading every number as the double it is, as I-JSON
/// and the RFC's ECMAScript rules say) computes the same digest over a corpus
/// of awkward numbers.
#[test]
fn args_digests_agree_with_an_independent_rfc8785() {
    let Some(python) = crate::support::python_with("ARBITER_VENV", "rfc8785") else {
        crate::support::skip(
            "ARBITER_REQUIRE_SCHEMATHESIS",
            "the RFC 8785 cross-check needs Python's rfc8785 (pip install -r tests/contract/requirements.txt; \
             set ARBITER_VENV to the venv)",
        );
        return;
    };
    let corpus = [
        "0",
        "-0.0",
        "-0",
        "1",
        "-1",
        "4.5",
        "100",
        "1e2",
        "0.1",
        "0.30000000000000004",
        "1e-7",
        "1e-6",
        "1e21",
        "1e20",
        "123e-20",
        "5e-324",
        "-5e-324",
        "1.7976931348623157e308",
        "333333333.33333329",
        "1e23",
        "9007199254740991",
        "9007199254740992",
        "9007199254740993",
        "-9007199254740993",
        "9007199254740995",
        "18446744073709551615",
        "-9223372036854775808",
        "123456789012345678901234567890",
        "2.5e-5",
        "0.000001",
        "295147905179352830000",
        "1.5",
        "-1.5e300",
    ];
    let docs: Vec<String> = corpus.iter().map(|n| format!(r#"{{"n": {n}, "list": [{n}, {{"x": {n}}}]}}"#)).collect();
    let ours: Vec<String> =
        docs.iter().map(|d| arbiter_core::canonical::args_digest(&serde_json::from_str::<Value>(d).unwrap())).collect();
    let script = r#"
import hashlib, json, sys
import rfc8785
for line in sys.stdin.read().splitlines():
    v = json.loads(line, parse_int=float)
    print("sha256:" + hashlib.sha256(rfc8785.dumps(v)).hexdigest())
"#;
    let mut child = Command::new(python)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), docs.join("\n").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let theirs: Vec<String> = String::from_utf8(out.stdout).unwrap().lines().map(str::to_string).collect();
    assert_eq!(theirs.len(), docs.len());
    for ((doc, a), b) in docs.iter().zip(&ours).zip(&theirs) {
        assert_eq!(a, b, "{doc}: Arbiter and Python's rfc8785 disagree");
    }
}
