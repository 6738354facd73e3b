//! Slack, end to end against its documented contract: a Web API served on
//! 127.0.0.1 by the test (answering as Slack documents, recording every
//! call), interaction payloads shaped as Slack sends them and signed as Slack
//! signs them (cross-checked with Slack's own `slack_sdk` SignatureVerifier),
//! and every body Arbiter sent type-checked against Slack's published
//! TypeScript types (`@slack/web-api`, `tsc --noEmit`).
//!
//! Case opened → message → Approve → modal → submission → answer recorded
//! `via: slack` → the message updated; and one test per rule Slack must not
//! weaken: roles, distinct approvers, the agent's own action, the policy's
//! re-check of a modification, the rationale's minimum.

use crate::support::*;
use arbiter_slack::interaction::encode;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const CHANNEL: &str = "C0SOC00001";

const SLACK_POLICY: &str = r#"
version: 1
policy: slack-test
defaults:
  reviewers: [soc_analyst]
  sla: 15m
  fallback: deny
actions:
  isolate_host:
    severity: high
triggers:
  - name: crown_jewel
    actions: [isolate_host]
    when: '"crown_jewel" in args.host_tags'
    verdict: escalate
    severity: critical
    approvals: 2
  - name: no_wildcards
    actions: [isolate_host]
    when: 'args.host == "*"'
    verdict: deny
"#;

#[derive(Default)]
struct Recorded {
    calls: Vec<(String, Value)>,
    rate_limit_next: bool,
    emails: std::collections::HashMap<String, String>,
}

struct FakeSlack {
    url: String,
    seen: Arc<Mutex<Recorded>>,
}

impl FakeSlack {
    async fn start() -> FakeSlack {
        use axum::extract::{Path, State};
        use axum::http::{HeaderMap, StatusCode};
        use axum::response::IntoResponse;
        let seen: Arc<Mutex<Recorded>> = Default::default();
        async fn method(
            State(seen): State<Arc<Mutex<Recorded>>>,
            Path(method): Path<String>,
            headers: HeaderMap,
            body: String,
        ) -> axum::response::Response {
            let mut s = seen.lock().unwrap();
            assert_eq!(headers["authorization"], "Bearer xoxb-test-token", "the bot token is sent");
            if s.rate_limit_next {
                s.rate_limit_next = false;
                return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")], "").into_response();
            }
            let json_body = headers["content-type"].to_str().unwrap().starts_with("application/json");
            let body: Value = if json_body {
                serde_json::from_str(&body).unwrap()
            } else {
                let pairs: serde_json::Map<String, Value> = form_urlencoded::parse(body.as_bytes())
                    .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
                    .collect();
                Value::Object(pairs)
            };
            let n = s.calls.len();
            s.calls.push((method.clone(), body.clone()));
            let answer = match method.as_str() {
                "chat.postMessage" => {
                    json!({"ok": true, "channel": body["channel"], "ts": format!("1800000000.{n:06}"),
                                             "message": {"text": body["text"]}})
                }
                "chat.update" => json!({"ok": true, "channel": body["channel"], "ts": body["ts"]}),
                "chat.postEphemeral" => json!({"ok": true, "message_ts": "1800000000.999999"}),
                "views.open" => json!({"ok": true, "view": {"id": "V0123"}}),
                "users.info" => match s.emails.get(body["user"].as_str().unwrap_or("")) {
                    Some(e) => json!({"ok": true, "user": {"id": body["user"], "profile": {"email": e}}}),
                    None => json!({"ok": false, "error": "user_not_found"}),
                },
                _ => json!({"ok": false, "error": "unknown_method"}),
            };
            axum::Json(answer).into_response()
        }
        let app = axum::Router::new().route("/api/{method}", axum::routing::post(method)).with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/api", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeSlack { url, seen }
    }

    fn calls(&self, method: &str) -> Vec<Value> {
        self.seen.lock().unwrap().calls.iter().filter(|(m, _)| m == method).map(|(_, b)| b.clone()).collect()
    }

    fn all(&self) -> Vec<(String, Value)> {
        self.seen.lock().unwrap().calls.clone()
    }
}

async fn server(slack: &FakeSlack) -> TestServer {
    let url = slack.url.clone();
    TestServer::with(SLACK_POLICY, move |c| {
        c.public_url = Some("https://arbiter.example.com".into());
        c.slack = Some(arbiter_server::SlackConfig {
            bot_token: "xoxb-test-token".into(),
            signing_secret: SECRET.into(),
            api_url: url,
            routes: vec![arbiter_server::SlackRoute::parse(&format!("{CHANNEL} severity=high,critical")).unwrap()],
            // the test brings events to Slack itself
            interval: Duration::from_secs(3600),
        });
    })
    .await
}

fn wall() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// POST an interaction as Slack does: the payload form-encoded, signed.
async fn interact(s: &TestServer, payload: &Value) -> (u16, String) {
    let body = format!("payload={}", encode(&payload.to_string()));
    let ts = wall().to_string();
    let sig = arbiter_slack::signature::sign(SECRET, &ts, body.as_bytes());
    send(s, &body, &ts, &sig).await
}

async fn send(s: &TestServer, body: &str, ts: &str, sig: &str) -> (u16, String) {
    let r = s
        .http
        .post(s.at("/slack/interactions"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-slack-request-timestamp", ts)
        .header("x-slack-signature", sig)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn click(user: &str, action: &str, value: &str) -> Value {
    json!({
        "type": "block_actions", "team": {"id": "T0001", "domain": "example"},
        "user": {"id": user, "username": user.to_lowercase(), "team_id": "T0001"},
        "api_app_id": "A0001", "token": "deprecated-verification-token",
        "container": {"type": "message", "message_ts": "1800000000.000000", "channel_id": CHANNEL, "is_ephemeral": false},
        "trigger_id": format!("{user}.trigger.1"),
        "channel": {"id": CHANNEL, "name": "soc-approvals"},
        "message": {"type": "message", "ts": "1800000000.000000", "text": "Approval needed"},
        "response_url": "https://hooks.slack.com/actions/T0001/1/xyz",
        "actions": [{"type": "button", "action_id": action, "block_id": "arbiter:case", "value": value,
                     "text": {"type": "plain_text", "text": "Approve"}, "action_ts": "1800000000.5"}]
    })
}

fn submit(user: &str, case: &str, choice: &str, rationale: &str, args: Option<&str>) -> Value {
    let mut values = json!({
        "rationale": {"value": {"type": "plain_text_input", "value": rationale}},
        "failure_modes": {"value": {"type": "plain_text_input", "value": null}},
    });
    if let Some(a) = args {
        values["args"] = json!({"value": {"type": "plain_text_input", "value": a}});
    }
    json!({
        "type": "view_submission", "team": {"id": "T0001"},
        "user": {"id": user, "username": user.to_lowercase(), "team_id": "T0001"},
        "api_app_id": "A0001", "trigger_id": "t.2",
        "view": {"id": "V0123", "type": "modal", "callback_id": "arbiter:answer",
                 "private_metadata": json!({"project": "default", "case": case, "choice": choice}).to_string(),
                 "state": {"values": values}, "hash": "1.abc"},
    })
}

async fn sync(s: &TestServer) -> usize {
    arbiter_server::slack::sync_if_leader(&s.state).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_is_answered_from_slack_with_every_rule_of_the_console() {
    let slack = FakeSlack::start().await;
    let s = server(&slack).await;
    let agent = s.key("soc-agent", "agent", &[]).await;
    s.key("alice", "reviewer", &["soc_analyst"]).await;
    s.key("bob", "reviewer", &["soc_analyst"]).await;
    s.key("dave", "reviewer", &["finance"]).await;
    for (name, user) in [("alice", "UALICE"), ("bob", "UBOB"), ("dave", "UDAVE"), ("soc-agent", "UAGENT")] {
        s.state.root.link_slack(name, Some(user)).await.unwrap();
    }
    let (did, case) = s.escalate(&agent, isolate("db-1", &["crown_jewel"], 0.9)).await;
    assert!(sync(&s).await >= 1);

    // the message: in the route's channel, with the case's facts and its buttons
    let posts = slack.calls("chat.postMessage");
    assert_eq!(posts.len(), 1, "{posts:?}");
    let post = &posts[0];
    assert_eq!(post["channel"], CHANNEL);
    let text = post.to_string();
    for part in ["isolate_host on host:db-1", "crown_jewel", "critical", "0 of 2", "<!date^", "arbiter:approve"] {
        assert!(text.contains(part), "{part} in {text}");
    }
    assert!(text.contains(&format!("https://arbiter.example.com/cases/{case}")), "a link to the case");
    let value = format!("default/{case}");

    // unlinked: refused, told how to link; nothing opens
    let (code, _) = interact(&s, &click("UMALLORY", "arbiter:approve", &value)).await;
    assert_eq!(code, 200);
    let eph = slack.calls("chat.postEphemeral");
    assert!(eph.last().unwrap()["text"].as_str().unwrap().contains("not linked"), "{eph:?}");
    assert_eq!(eph.last().unwrap()["user"], "UMALLORY");
    // the wrong role, and the agent's own principal: refused before any modal
    interact(&s, &click("UDAVE", "arbiter:approve", &value)).await;
    assert!(slack.calls("chat.postEphemeral").last().unwrap()["text"].as_str().unwrap().contains("soc_analyst"));
    interact(&s, &click("UAGENT", "arbiter:approve", &value)).await;
    assert!(slack.calls("chat.postEphemeral").last().unwrap()["text"].as_str().unwrap().contains("no role"));
    assert!(slack.calls("views.open").is_empty());

    // alice: Approve opens the modal for this trigger
    interact(&s, &click("UALICE", "arbiter:approve", &value)).await;
    let opened = slack.calls("views.open");
    assert_eq!(opened.len(), 1);
    assert_eq!(opened[0]["trigger_id"], "UALICE.trigger.1");
    assert_eq!(opened[0]["view"]["callback_id"], "arbiter:answer");
    // the rationale is required as in the console: a short one is an error in the modal, nothing recorded
    let (code, body) = interact(&s, &submit("UALICE", &case, "approve", "ok", None)).await;
    assert_eq!(code, 200);
    let errors: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(errors["response_action"], "errors");
    assert!(errors["errors"]["rationale"].as_str().unwrap().contains("at least 10"), "{errors}");
    let ok = submit("UALICE", &case, "approve", "confirmed malware on the crown jewel", None);
    let (code, body) = interact(&s, &ok).await;
    assert_eq!(code, 200);
    let notice: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(notice["response_action"], "update", "the form says what the case still needs: {notice}");
    assert!(notice.to_string().contains("1 approval(s) of 2"), "{notice}");
    let notice_view = notice["view"].clone();
    // a re-delivered submission records nothing twice
    let (code, body) = interact(&s, &ok).await;
    assert_eq!(code, 200);
    assert!(body.contains("already"), "{body}");
    // distinct approvers: alice cannot approve again, from Slack or anywhere
    interact(&s, &click("UALICE", "arbiter:approve", &value)).await;
    assert!(slack.calls("chat.postEphemeral").last().unwrap()["text"].as_str().unwrap().contains("already"));
    let (_, c) = s.get(&s.admin, &format!("/v1/cases/{case}")).await;
    let answers = c["case"]["answers"].as_array().or(c["answers"].as_array()).cloned().unwrap_or_default();
    assert_eq!(answers.len(), 1, "{c}");
    assert_eq!((answers[0]["by"].as_str(), answers[0]["via"].as_str()), (Some("alice"), Some("slack")));

    // bob modifies: the policy re-checks the modified action; a denied one is an error under the arguments
    interact(&s, &click("UBOB", "arbiter:modify", &value)).await;
    let modal = slack.calls("views.open").last().unwrap().clone();
    assert!(modal["view"]["blocks"].to_string().contains("db-1"), "the arguments to edit");
    let wildcard = r#"{"host": "*", "host_tags": ["crown_jewel"]}"#;
    let (_, body) =
        interact(&s, &submit("UBOB", &case, "modify", "isolate everything, to be safe", Some(wildcard))).await;
    let errors: Value = serde_json::from_str(&body).unwrap();
    assert!(errors["errors"]["args"].is_string(), "{errors}");
    let (_, body) =
        interact(&s, &submit("UBOB", &case, "modify", "isolate everything, to be safe", Some("{not json"))).await;
    assert!(body.contains("not JSON"), "{body}");
    // bob approves: two distinct people, the case is decided
    let (code, body) = interact(&s, &submit("UBOB", &case, "approve", "agreed: isolate the host now", None)).await;
    assert_eq!((code, body.as_str()), (200, ""));
    let (_, d) = s.get(&agent, &format!("/v1/decisions/{did}")).await;
    assert_eq!(d["final"]["decided_by"], json!(["alice", "bob"]), "{d}");

    // the message follows: buttons replaced by the outcome, who decided, their rationale
    sync(&s).await;
    let update = slack.calls("chat.update").last().unwrap().clone();
    assert_eq!(update["channel"], CHANNEL);
    assert_eq!(update["ts"], post_ts(&slack));
    let text = update.to_string();
    assert!(text.contains("Approved") && text.contains("alice, bob") && text.contains("agreed: isolate the host now"));
    assert!(!text.contains("arbiter:approve"), "no buttons on a decided case");

    // the audit log: the same events as from the console, with the channel; the chain verifies
    let (_, events) = s.get(&s.admin, "/v1/audit/events?after=0&limit=500").await;
    let answered: Vec<&Value> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "case.answered" && e["case_id"] == case.as_str())
        .collect();
    assert_eq!(answered.len(), 2);
    assert!(answered.iter().all(|e| e["data"]["answer"]["via"] == "slack"), "{answered:?}");
    let (_, v) = s.get(&s.admin, "/v1/audit/verify").await;
    assert_eq!(v["ok"], true, "{v}");

    // every body sent, and the view answered to a submission, pass Slack's published types
    let mut bodies = slack.all();
    bodies.push(("view".into(), notice_view));
    check_types(&bodies);
}

fn post_ts(slack: &FakeSlack) -> String {
    let all = slack.all();
    let n = all.iter().position(|(m, _)| m == "chat.postMessage").unwrap();
    format!("1800000000.{n:06}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_not_signed_by_slack_are_refused() {
    let slack = FakeSlack::start().await;
    let s = server(&slack).await;
    let body = format!("payload={}", encode(&click("UALICE", "arbiter:claim", "default/x").to_string()));
    let ts = wall().to_string();
    let good = arbiter_slack::signature::sign(SECRET, &ts, body.as_bytes());
    let forged = arbiter_slack::signature::sign("another-secret", &ts, body.as_bytes());
    assert_eq!(send(&s, &body, &ts, &forged).await.0, 401);
    let old = (wall() - 301).to_string();
    let stale = arbiter_slack::signature::sign(SECRET, &old, body.as_bytes());
    assert_eq!(send(&s, &body, &old, &stale).await.0, 401, "older than five minutes: a replay");
    assert_eq!(send(&s, &format!("{body}&x=1"), &ts, &good).await.0, 401, "a body changed after signing");
    assert_eq!(send(&s, &body, &ts, &good).await.0, 200);

    // Slack's own SDK signs the same way: a request signed by slack_sdk is accepted, ours verifies there
    let Some(python) = python_with("slack_sdk") else {
        skip(
            "ARBITER_REQUIRE_SLACK_SDK",
            "the signature cross-check needs slack_sdk (pip install -r tests/slack/requirements.txt)",
        );
        return;
    };
    let script = "import sys\nfrom slack_sdk.signature import SignatureVerifier\nv = SignatureVerifier(sys.argv[1])\n\
                  body = sys.stdin.read()\nprint(v.generate_signature(timestamp=sys.argv[2], body=body))\n\
                  print(v.is_valid(body=body, timestamp=sys.argv[2], signature=sys.argv[3]))";
    let mut child = std::process::Command::new(&python)
        .args(["-c", script, SECRET, &ts, &good])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let out = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.get(1), Some(&"True"), "slack_sdk accepts Arbiter's signature: {out}");
    assert_eq!(send(&s, &body, &ts, lines[0]).await.0, 200, "Arbiter accepts slack_sdk's signature");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_down_or_rate_limiting_delays_messages_and_loses_none() {
    let slack = FakeSlack::start().await;
    let s = server(&slack).await;
    let agent = s.key("soc-agent", "agent", &[]).await;
    // carol signed in by single sign-on; her Slack account is linked by its verified email on first use
    let carol = arbiter_core::Identity {
        name: "carol".into(),
        email: Some("carol@example.com".into()),
        grants: vec![arbiter_core::Grant {
            project: arbiter_core::ProjectId::default_project(),
            role: arbiter_core::Role::Reviewer,
            tags: ["soc_analyst".to_string()].into(),
        }],
        id_token: None,
    };
    s.state.root.record_sign_in(carol, s.state.clock.now()).await.unwrap();
    slack.seen.lock().unwrap().emails.insert("UCAROL".into(), "Carol@Example.com".into());

    slack.seen.lock().unwrap().rate_limit_next = true;
    let (_, case) = s.escalate(&agent, isolate("ws-7", &["workstation"], 0.9)).await;
    // a case opened while Slack said 429: nothing posted, the cursor stayed before it
    sync(&s).await;
    assert!(slack.calls("chat.postMessage").is_empty());
    // Slack's Retry-After (1 s) is honoured: nothing is sent before it
    assert_eq!(sync(&s).await, 0);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(sync(&s).await >= 1);
    assert_eq!(slack.calls("chat.postMessage").len(), 1, "posted once, after the pause");

    // carol claims from Slack: linked by email, acting with her single sign-on roles
    let (code, _) = interact(&s, &click("UCAROL", "arbiter:claim", &format!("default/{case}"))).await;
    assert_eq!(code, 200);
    assert!(slack.calls("chat.postEphemeral").is_empty(), "{:?}", slack.calls("chat.postEphemeral"));
    let person = s.state.root.person_by_slack("UCAROL").await.unwrap().unwrap();
    assert_eq!(person.name, "carol");
    sync(&s).await;
    assert!(slack.calls("chat.update").last().unwrap().to_string().contains("Claimed by *carol*"));

    // the SLA runs out: the fallback goes in the message's thread, the message shows it
    s.advance(Duration::from_secs(16 * 60));
    arbiter_server::app::sla::sweep_once(&s.state).await.unwrap();
    sync(&s).await;
    let notes: Vec<Value> =
        slack.calls("chat.postMessage").into_iter().filter(|m| m["thread_ts"].is_string()).collect();
    assert!(notes.iter().any(|n| n["text"].as_str().unwrap().contains("fallback `deny`")), "{notes:?}");
    assert!(slack.calls("chat.update").last().unwrap().to_string().contains("SLA expired"));
    check_types(&slack.all());
}

/// Every body sent to Slack, type-checked against `@slack/web-api`'s
/// published argument types with `tsc --noEmit --strict`: a malformed block
/// (a wrong `type`, a missing field, an unknown property) fails here.
fn check_types(calls: &[(String, Value)]) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/slack");
    if !dir.join("node_modules/typescript").exists() {
        skip("ARBITER_REQUIRE_SLACK_TYPES", "the Slack type check needs `npm ci` in tests/slack");
        return;
    }
    let types = |m: &str| match m {
        "chat.postMessage" => Some("ChatPostMessageArguments"),
        "chat.update" => Some("ChatUpdateArguments"),
        "chat.postEphemeral" => Some("ChatPostEphemeralArguments"),
        "views.open" => Some("ViewsOpenArguments"),
        "users.info" => Some("UsersInfoArguments"),
        // a view answered to a modal submission (`response_action: update`)
        "view" => Some("ModalView"),
        _ => None,
    };
    let mut ts = String::from(
        "import type { ChatPostMessageArguments, ChatUpdateArguments, ChatPostEphemeralArguments, \
         ViewsOpenArguments, UsersInfoArguments } from \"@slack/web-api\";\n\
         import type { ModalView } from \"@slack/types\";\n",
    );
    for (i, (method, body)) in calls.iter().enumerate() {
        let ty = types(method).unwrap_or_else(|| panic!("Arbiter called `{method}`, which this check does not know"));
        ts.push_str(&format!("export const call{i}: {ty} = {};\n", serde_json::to_string_pretty(body).unwrap()));
    }
    let out_dir = dir.join("generated");
    std::fs::create_dir_all(&out_dir).unwrap();
    let file = out_dir.join(format!("{}.ts", std::thread::current().name().unwrap_or("bodies").replace("::", "_")));
    std::fs::write(&file, ts).unwrap();
    let out = std::process::Command::new("node")
        .current_dir(&dir)
        .args([
            "node_modules/typescript/bin/tsc",
            "--noEmit",
            "--strict",
            "--skipLibCheck",
            "--target",
            "es2022",
            "--module",
            "nodenext",
            "--moduleResolution",
            "nodenext",
        ])
        .arg(&file)
        .output()
        .expect("node runs");
    assert!(
        out.status.success(),
        "Slack's types refuse a body Arbiter sent ({}):\n{}{}",
        file.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn python_with(module: &str) -> Option<std::path::PathBuf> {
    let mut candidates: Vec<std::path::PathBuf> =
        std::env::var("ARBITER_VENV").map(|v| vec![std::path::Path::new(&v).join("bin/python")]).unwrap_or_default();
    candidates.push("python3".into());
    candidates.into_iter().find(|p| {
        std::process::Command::new(p)
            .args(["-c", &format!("import {module}")])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// A test whose tools are missing: a failure when `require_var` is set (CI sets it), else a visible skip.
fn skip(require_var: &str, why: &str) {
    assert!(std::env::var(require_var).is_err(), "{why} ({require_var} is set, so this is a failure)");
    let test = std::thread::current().name().unwrap_or("a test").to_string();
    let _ = std::io::Write::write_fmt(&mut std::io::stderr().lock(), format_args!("\nSKIPPED {test}: {why}\n"));
}
