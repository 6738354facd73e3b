//! The MCP gateway end to end, with real peers only: the official Python MCP
//! SDK as the client (tests/mcp/client.py), the official filesystem and
//! "everything" MCP servers from npm as upstreams (tests/mcp/package.json),
//! `arbiter mcp` between them and a real `arbiter serve` deciding.
//!
//! Over stdio: tools listed under their namespaces with their annotations and
//! an always-denied tool hidden; a routine read runs, its result is recorded
//! and its receipt is used up; a secret read is refused as a tool result that
//! says why; a destructive write waits for a lead (progress notifications)
//! and runs with the lead's modified arguments; a cancelled call withdraws
//! its case and nothing is written; a reviewer's refusal and an SLA fallback
//! come back with their reasons; an approved long-running tool's progress is
//! relayed; a client that dies leaves no case waiting. Over HTTP: each client proposes with its own
//! key, a bad key is refused, a cancelled HTTP call withdraws its case, and an
//! upstream reached over streamable HTTP serves an approved call.
//!
//! Needs Node.js with `npm ci` run in tests/mcp and a Python with
//! tests/mcp/requirements.txt (in $ARBITER_VENV); without them the tests say
//! so and skip, unless ARBITER_REQUIRE_MCP=1 (set by .ci/run), where that is
//! a failure.

use crate::support::{Server, bin};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The Python with the MCP SDK and the directory of the npm MCP servers, or why not.
fn prerequisites() -> Option<(PathBuf, PathBuf)> {
    let modules = repo().join("tests/mcp/node_modules/@modelcontextprotocol");
    let python = crate::support::python_with("ARBITER_VENV", "mcp, httpx2");
    let node = Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    let servers = modules.join("server-filesystem/dist/index.js").exists()
        && modules.join("server-everything/dist/index.js").exists();
    match (python, node && servers) {
        (Some(py), true) => Some((py, modules)),
        _ => {
            let msg = "the MCP gateway tests need Node.js with `npm ci` run in tests/mcp, and a Python with \
                       `pip install -r tests/mcp/requirements.txt` (set ARBITER_VENV to its venv)";
            crate::support::skip("ARBITER_REQUIRE_MCP", msg);
            None
        }
    }
}

/// The example MCP policy, with one tool whose reviewers have two seconds.
fn policy(dir: &Path) -> PathBuf {
    let src = std::fs::read_to_string(repo().join("examples/policies/mcp.yaml")).unwrap();
    let src = src.replacen(
        "\nactions:\n",
        "\nactions:\n  everything.get-structured-content:\n    sla: 2s\n    fallback: deny\n",
        1,
    );
    let path = dir.join("mcp.yaml");
    std::fs::write(&path, src).unwrap();
    path
}

fn upstream_args(modules: &Path, srv: &Path) -> Vec<String> {
    vec![
        "--upstream-cmd".into(),
        format!("fs=node {} {}", modules.join("server-filesystem/dist/index.js").display(), srv.display()),
        "--upstream-cmd".into(),
        format!("everything=node {} stdio", modules.join("server-everything/dist/index.js").display()),
    ]
}

/// The Python MCP client, driven a JSON line at a time.
struct McpClient {
    child: Child,
    stdin: ChildStdin,
    events: Receiver<Value>,
    pending: Vec<Value>,
}

impl McpClient {
    fn start(python: &Path, args: &[String]) -> McpClient {
        let mut child = Command::new(python)
            .arg(repo().join("tests/mcp/client.py"))
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the Python MCP client");
        let stdin = child.stdin.take().unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        let (tx, events) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                match serde_json::from_str::<Value>(&line) {
                    Ok(v) => {
                        let _ = tx.send(v);
                    }
                    Err(_) => eprintln!("client: {line}"),
                }
            }
        });
        let mut c = McpClient { child, stdin, events, pending: Vec::new() };
        c.expect(|e| e["op"] == "ready", "the client's handshake with the gateway");
        c
    }

    fn send(&mut self, cmd: Value) {
        writeln!(self.stdin, "{cmd}").unwrap();
        self.stdin.flush().unwrap();
    }

    /// The first event (seen or to come, within 90 s) that matches.
    fn expect(&mut self, pred: impl Fn(&Value) -> bool, what: &str) -> Value {
        if let Some(i) = self.pending.iter().position(&pred) {
            return self.pending.remove(i);
        }
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(e) if pred(&e) => return e,
                Ok(e) => self.pending.push(e),
                Err(RecvTimeoutError::Timeout) => panic!("no {what} within 90 s; seen {:?}", self.pending),
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("the client exited before {what}; seen {:?}", self.pending)
                }
            }
        }
    }

    fn call(&mut self, tag: &str, tool: &str, args: Value) {
        self.send(json!({"op": "call", "tag": tag, "tool": tool, "args": args}));
    }

    /// The call's result (`{is_error, text, meta}`), error or cancellation.
    fn outcome(&mut self, tag: &str) -> Value {
        self.expect(
            |e| {
                e["tag"] == tag
                    && (e.get("result").is_some() || e.get("error").is_some() || e.get("cancelled").is_some())
            },
            &format!("outcome of call {tag}"),
        )
    }

    fn result(&mut self, tag: &str) -> Value {
        let o = self.outcome(tag);
        o.get("result").cloned().unwrap_or_else(|| panic!("call {tag} did not return a result: {o}"))
    }

    /// The next progress notification the gateway sent while a call waits for a reviewer.
    fn waiting(&mut self, tag: &str) -> Value {
        self.expect(|e| e["tag"] == tag && e["message"].is_string(), &format!("progress of call {tag}"))
    }

    /// Kill the client process (SIGKILL): no goodbye, its pipes just close.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn quit(mut self) {
        self.send(json!({"op": "quit"}));
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.child.try_wait().unwrap().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!("the MCP client did not exit within 30 s of quit");
    }
}

impl Drop for McpClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

async fn get(s: &Server, key: &str, path: &str) -> Value {
    let r = s.http.get(s.at(path)).bearer_auth(key).send().await.unwrap();
    assert_eq!(r.status(), 200, "GET {path}");
    r.json().await.unwrap()
}

/// Poll a decision (at most a minute) until `done` holds.
async fn decision_until(s: &Server, id: &str, done: impl Fn(&Value) -> bool, what: &str) -> Value {
    let started = Instant::now();
    loop {
        let d = get(s, s.admin(), &format!("/v1/decisions/{id}")).await;
        if done(&d) {
            return d;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{what} never happened: {d}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The open case of `tool` in `reviewer`'s queue (waiting at most a minute for it).
async fn case_of(s: &Server, reviewer: &str, tool: &str) -> Value {
    let started = Instant::now();
    loop {
        let q = get(s, reviewer, "/v1/queue").await;
        if let Some(item) = q["items"].as_array().unwrap().iter().find(|i| i["case"]["action_name"] == tool) {
            return item["case"].clone();
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no case for {tool} in the queue: {q}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn answer(s: &Server, reviewer: &str, case: &Value, body: Value) {
    let path = format!("/v1/cases/{}/decision", case["id"].as_str().unwrap());
    let r = s.http.post(s.at(&path)).bearer_auth(reviewer).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

fn decision_id(result: &Value) -> String {
    result["meta"]["arbiter"]["decision_id"].as_str().unwrap_or_else(|| panic!("no decision in {result}")).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stdio_client_is_governed_call_by_call() {
    let Some((python, modules)) = prerequisites() else { return };
    let dir = tempfile::tempdir().unwrap();
    let srv = dir.path().join("srv");
    std::fs::create_dir(&srv).unwrap();
    std::fs::write(srv.join("notes.txt"), "hello from the workspace\n").unwrap();
    std::fs::write(srv.join("deploy.env"), "DB_PASSWORD=hunter2\n").unwrap();
    let policy = policy(dir.path());
    let s = Server::start(&dir.path().join("arbiter.db"), &["--policy", policy.to_str().unwrap()]);
    let agent = s.key("ide-agent", "agent", &[]).await;
    let lena = s.key("lena", "reviewer", &["engineering_lead", "engineer"]).await;

    let mut args: Vec<String> = vec![
        "stdio".into(),
        bin().into(),
        "mcp".into(),
        "--url".into(),
        s.url.clone(),
        "--key".into(),
        agent.clone(),
        "--hide-denied".into(),
        "--progress-every".into(),
        "1".into(),
    ];
    args.extend(upstream_args(&modules, &srv));
    let mut client = McpClient::start(&python, &args);

    // tools/list: both upstreams under their names, annotations intact, the always-denied tool hidden
    client.send(json!({"op": "list"}));
    let list = client.expect(|e| e["op"] == "list", "the tool list");
    let tools = list["tools"].as_array().unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    for n in ["fs.read_text_file", "fs.write_file", "fs.move_file", "everything.echo", "everything.get-sum"] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
    assert!(!names.contains(&"everything.get-env"), "the policy always denies get-env: hidden");
    let write = tools.iter().find(|t| t["name"] == "fs.write_file").unwrap();
    assert_eq!(write["annotations"]["destructive_hint"], true);

    // a routine read runs at once; its result is kept on the decision and its receipt is used up
    client.call("read", "fs.read_text_file", json!({"path": srv.join("notes.txt")}));
    let r = client.result("read");
    assert_eq!(r["is_error"], false, "{r}");
    assert_eq!(r["text"], "hello from the workspace\n");
    let id = decision_id(&r);
    let d = decision_until(&s, &id, |d| !d["tool_result"].is_null(), "recording the read's result").await;
    assert_eq!(d["agent"], "ide-agent");
    assert_eq!(d["action"]["name"], "fs.read_text_file");
    assert_eq!(d["action"]["signals"]["mcp_hints"]["read_only"], true);
    assert_eq!(d["context"]["mcp"]["transport"], "stdio");
    assert_eq!(d["context"]["mcp"]["upstream"], "fs");
    assert!(d["context"]["mcp"]["client"]["name"].is_string(), "{d}");
    assert_eq!(d["tool_result"]["is_error"], false);
    assert!(d["tool_result"]["content"].to_string().contains("hello from the workspace"), "{d}");
    assert_eq!(d["tool_result"]["recorded_by"], "ide-agent");
    let replay = s
        .http
        .post(s.at(&format!("/v1/decisions/{id}/consume")))
        .bearer_auth(&agent)
        .json(&json!({"receipt": d["final"]["receipt"], "args": d["action"]["args"], "consumer": "someone-else"}))
        .send()
        .await
        .unwrap();
    crate::support::assert_problem(replay, 409, "receipt_consumed").await;

    // a secret read is refused with the policy's reason, as a tool result the model can read
    client.call("secret", "fs.read_text_file", json!({"path": srv.join("deploy.env")}));
    let r = client.result("secret");
    assert_eq!(r["is_error"], true);
    let text = r["text"].as_str().unwrap();
    assert!(text.contains("Credentials and keys are never read by an agent"), "{text}");
    assert!(text.contains("The tool was not run") && text.contains(&decision_id(&r)), "{text}");
    assert!(!text.contains("hunter2"));
    assert_eq!(r["meta"]["arbiter"]["final"]["source"], "policy");

    // a destructive write waits for a lead, who narrows it; the lead's version is what is written
    let target = srv.join("release-notes.md");
    client.call("write", "fs.write_file", json!({"path": target, "content": "rm -rf everything, then write notes"}));
    let progress = client.waiting("write");
    assert!(progress["message"].as_str().unwrap().contains("engineering_lead"), "{progress}");
    let case = case_of(&s, &lena, "fs.write_file").await;
    assert_eq!(case["escalation"]["severity"], "high");
    assert!(!target.exists(), "nothing is written while the case is open");
    let narrowed = json!({"path": target, "content": "Release notes, reviewed.\n"});
    answer(&s, &lena, &case, json!({"decision": "modify", "args": narrowed, "rationale": "notes only, nothing else"}))
        .await;
    let r = client.result("write");
    assert_eq!(r["is_error"], false, "{r}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "Release notes, reviewed.\n");
    assert_eq!(r["meta"]["arbiter"]["final"]["source"], "review");

    // the client gives up on a waiting call: the case is withdrawn and nothing runs
    let abandoned = srv.join("abandoned.txt");
    client.call("cancelled", "fs.write_file", json!({"path": abandoned, "content": "x"}));
    client.waiting("cancelled");
    let case = case_of(&s, &lena, "fs.write_file").await;
    client.send(json!({"op": "cancel", "tag": "cancelled"}));
    assert_eq!(client.outcome("cancelled")["cancelled"], true);
    let id = case["decision_id"].as_str().unwrap();
    let d = decision_until(&s, id, |d| !d["final"].is_null(), "withdrawing the cancelled call").await;
    assert_eq!(d["final"]["source"], "withdrawn", "{d}");
    assert!(!abandoned.exists());

    // a reviewer's refusal comes back with the reviewer's words
    client.call("move", "fs.move_file", json!({"source": srv.join("notes.txt"), "destination": srv.join("old.txt")}));
    client.waiting("move");
    let case = case_of(&s, &lena, "fs.move_file").await;
    answer(&s, &lena, &case, json!({"decision": "reject", "rationale": "keep the layout as it is"})).await;
    let r = client.result("move");
    assert_eq!(r["is_error"], true);
    assert!(r["text"].as_str().unwrap().contains("lena denied this call after review"), "{r}");
    assert!(r["text"].as_str().unwrap().contains("keep the layout as it is"), "{r}");
    assert!(srv.join("notes.txt").exists());

    // nobody answers within the SLA: the fallback's honest reason
    client.call("sla", "everything.get-structured-content", json!({"location": "New York"}));
    let r = client.result("sla");
    assert_eq!(r["is_error"], true);
    assert!(r["text"].as_str().unwrap().starts_with("No reviewer answered in time"), "{r}");
    assert_eq!(r["meta"]["arbiter"]["final"]["source"], "sla_expired");

    // once approved, a long-running tool's own progress reaches the client under the client's token
    client.call("long", "everything.trigger-long-running-operation", json!({"duration": 1, "steps": 3}));
    let waited = client.waiting("long")["progress"].as_f64().unwrap();
    let case = case_of(&s, &lena, "everything.trigger-long-running-operation").await;
    answer(&s, &lena, &case, json!({"decision": "approve", "rationale": "a short run is fine"})).await;
    // (shifted past the progress the client saw while the call waited: progress only increases)
    let step = client.expect(|e| e["tag"] == "long" && e["total"].is_number(), "the upstream's own progress");
    let (progress, total) = (step["progress"].as_f64().unwrap(), step["total"].as_f64().unwrap());
    assert!(progress > waited && total - progress < 3.0, "{step} after {waited}");
    let r = client.result("long");
    assert!(r["text"].as_str().unwrap().contains("Long running operation completed"), "{r}");

    // an unknown tool is a protocol error (the client asked for something that does not exist)
    client.call("unknown", "fs.format_disk", json!({}));
    let o = client.outcome("unknown");
    assert!(o["error"].as_str().unwrap().contains("has no tool `format_disk`"), "{o}");

    // the client dies while a call waits: the gateway sees its stdin close and withdraws the case before exiting
    client.call("orphan", "fs.write_file", json!({"path": srv.join("orphan.txt"), "content": "x"}));
    client.waiting("orphan");
    let case = case_of(&s, &lena, "fs.write_file").await;
    client.kill();
    let id = case["decision_id"].as_str().unwrap();
    let d = decision_until(&s, id, |d| !d["final"].is_null(), "withdrawing the orphaned call").await;
    assert_eq!(d["final"]["source"], "withdrawn", "{d}");
    assert!(!srv.join("orphan.txt").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_clients_propose_with_their_own_keys() {
    let Some((python, modules)) = prerequisites() else { return };
    let dir = tempfile::tempdir().unwrap();
    let srv = dir.path().join("srv");
    std::fs::create_dir(&srv).unwrap();
    let policy = policy(dir.path());
    let s = Server::start(&dir.path().join("arbiter.db"), &["--policy", policy.to_str().unwrap()]);
    let ide = s.key("ide-agent", "agent", &[]).await;
    let other = s.key("notebook-agent", "agent", &[]).await;
    let eve = s.key("eve", "reviewer", &["engineer"]).await;

    // a third upstream reached over streamable HTTP: the "everything" server's HTTP transport
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut web = Command::new("node")
        .arg(modules.join("server-everything/dist/index.js"))
        .arg("streamableHttp")
        .env("PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut web_log = BufReader::new(web.stderr.take().unwrap()).lines();
    assert!(
        web_log.by_ref().map_while(Result::ok).any(|l| l.contains("listening on port")),
        "the HTTP upstream did not start"
    );
    std::thread::spawn(move || for _ in web_log {});

    // the gateway, without a key of its own, serving streamable HTTP on a free port
    let mut gateway = Command::new(bin())
        .args(["mcp", "--url", &s.url, "--listen", "127.0.0.1:0", "--progress-every", "1"])
        .args(upstream_args(&modules, &srv))
        .args(["--upstream-url", &format!("web=http://127.0.0.1:{port}/mcp")])
        .env("RUST_LOG", "warn")
        .env_remove("ARBITER_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(gateway.stdout.take().unwrap()).lines();
    let url = lines.next().unwrap().unwrap().strip_prefix("listening on ").expect("the gateway's address").to_string();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");

    // the IDE agent's routine call runs, as the IDE agent
    let mut ide_client = McpClient::start(&python, &["http".into(), url.clone(), ide.clone()]);
    ide_client.call("echo", "everything.echo", json!({"message": "hi"}));
    let r = ide_client.result("echo");
    assert_eq!(r["is_error"], false, "{r}");
    assert!(r["text"].as_str().unwrap().contains("hi"));
    let d = get(&s, s.admin(), &format!("/v1/decisions/{}", decision_id(&r))).await;
    assert_eq!(d["agent"], "ide-agent");
    assert_eq!(d["context"]["mcp"]["transport"], "http");

    // the same call by another agent is not routine: it waits, as that agent; cancelling withdraws it
    let mut other_client = McpClient::start(&python, &["http".into(), url.clone(), other.clone()]);
    other_client.call("echo", "everything.echo", json!({"message": "hi"}));
    other_client.waiting("echo");
    let case = case_of(&s, &eve, "everything.echo").await;
    assert_eq!(case["agent"], "notebook-agent");
    other_client.send(json!({"op": "cancel", "tag": "echo"}));
    assert_eq!(other_client.outcome("echo")["cancelled"], true);
    let id = case["decision_id"].as_str().unwrap();
    let d = decision_until(&s, id, |d| !d["final"].is_null(), "withdrawing the cancelled HTTP call").await;
    assert_eq!(d["final"]["source"], "withdrawn", "{d}");

    // a tool of the HTTP upstream, approved by a reviewer, runs there
    ide_client.call("sum", "web.get-sum", json!({"a": 2, "b": 3}));
    ide_client.waiting("sum");
    let case = case_of(&s, &eve, "web.get-sum").await;
    answer(&s, &eve, &case, json!({"decision": "approve", "rationale": "arithmetic is harmless"})).await;
    let r = ide_client.result("sum");
    assert_eq!(r["is_error"], false, "{r}");
    assert!(r["text"].as_str().unwrap().contains('5'), "{r}");

    // a key Arbiter does not know opens no session (401), and says so
    let r = Rpc::new(&url, Some("arb_000000000000_nope")).post(&initialize(1), None, &[]).await;
    assert_eq!(r.status, 401, "{}", r.text);
    assert!(r.text.contains("Arbiter refused the key"), "{}", r.text);

    ide_client.quit();
    other_client.quit();
    let _ = gateway.kill();
    let _ = gateway.wait();
    let _ = web.kill();
    let _ = web.wait();
}

/// Startup mistakes are errors that name what is wrong (no Python or Node needed).
#[test]
fn the_gateway_says_what_is_wrong_at_startup() {
    let run = |args: &[&str]| {
        let out = Command::new(bin()).arg("mcp").args(args).env_remove("ARBITER_KEY").output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).to_string())
    };
    let (code, err) = run(&["--key", "k"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("no upstream: pass --upstream-cmd"), "{err}");
    let (code, err) = run(&["--upstream-cmd", "fs=true"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("no agent key: pass --key or set ARBITER_KEY"), "{err}");
    let (code, err) = run(&["--key", "k", "--upstream-cmd", "fs=true", "--upstream-cmd", "fs=true"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("two upstreams are named `fs`"), "{err}");
    let (code, err) = run(&["--key", "k", "--upstream-url", "web=ftp://example.com"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("must start with http:// or https://"), "{err}");
    // an upstream that exits at once: named, with its command
    let (code, err) = run(&["--key", "k", "--url", "http://127.0.0.1:9", "--upstream-cmd", "fs=exit 3"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("the upstream `fs` (exit 3) did not complete the MCP handshake"), "{err}");
}

/// Pending approvals live in Arbiter, not in the gateway: a call waiting for a
/// reviewer survives Arbiter being killed (-9) and restarted; the gateway keeps
/// polling, the reviewer answers the same case on the restarted server, and
/// the call runs once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_call_survives_an_arbiter_crash() {
    let Some((python, modules)) = prerequisites() else { return };
    let dir = tempfile::tempdir().unwrap();
    let srv = dir.path().join("srv");
    std::fs::create_dir(&srv).unwrap();
    let db = dir.path().join("arbiter.db");
    let policy = policy(dir.path());
    let first = Server::start(&db, &["--policy", policy.to_str().unwrap()]);
    let agent = first.key("ide-agent", "agent", &[]).await;
    let lena = first.key("lena", "reviewer", &["engineering_lead", "engineer"]).await;
    let admin = first.admin().to_string();
    let addr = first.url.trim_start_matches("http://").to_string();
    let mut args: Vec<String> = vec![
        "stdio".into(),
        bin().into(),
        "mcp".into(),
        "--url".into(),
        first.url.clone(),
        "--key".into(),
        agent.clone(),
        "--progress-every".into(),
        "1".into(),
    ];
    args.extend(upstream_args(&modules, &srv));
    let mut client = McpClient::start(&python, &args);
    let target = srv.join("after-the-crash.txt");
    client.call("write", "fs.write_file", json!({"path": target, "content": "written once"}));
    client.waiting("write");
    let case = case_of(&first, &lena, "fs.write_file").await;
    first.kill9();
    // the gateway keeps trying while Arbiter is down, and the call keeps waiting
    client.waiting("write");
    let second = Server::start_at(&db, &addr, &["--policy", policy.to_str().unwrap()], &[]);
    let again = case_of(&second, &lena, "fs.write_file").await;
    assert_eq!(again["id"], case["id"], "the same case, not a new one");
    answer(&second, &lena, &again, json!({"decision": "approve", "rationale": "fine after the outage"})).await;
    let r = client.result("write");
    assert_eq!(r["is_error"], false, "{r}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "written once");
    let d = get(&second, &admin, &format!("/v1/decisions/{}", case["decision_id"].as_str().unwrap())).await;
    assert_eq!(d["final"]["source"], "review");
    client.quit();
}

/// JSON-RPC over the streamable HTTP transport, by hand: what a hostile or
/// buggy client can send that an SDK never would (a re-sent request id,
/// another client's session id, no key, a browser's Origin).
struct Rpc {
    http: reqwest::Client,
    url: String,
    key: Option<String>,
}

struct RpcAnswer {
    status: u16,
    session: Option<String>,
    text: String,
}

impl RpcAnswer {
    /// The JSON-RPC message of the answer (plain JSON or the SSE event carrying it).
    fn message(&self) -> Value {
        let body = self.text.lines().filter_map(|l| l.strip_prefix("data:")).map(str::trim).rfind(|l| !l.is_empty());
        serde_json::from_str(body.unwrap_or(&self.text)).unwrap_or_else(|e| panic!("{e}: {}", self.text))
    }
}

fn initialize(id: u64) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "by-hand", "version": "1"}}})
}

impl Rpc {
    fn new(url: &str, key: Option<&str>) -> Rpc {
        Rpc { http: reqwest::Client::new(), url: url.to_string(), key: key.map(str::to_string) }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        body: Option<&Value>,
        session: Option<&str>,
        headers: &[(&str, &str)],
    ) -> RpcAnswer {
        let mut r = self
            .http
            .request(method, &self.url)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-06-18");
        if let Some(b) = body {
            r = r.json(b);
        }
        if let Some(k) = &self.key {
            r = r.bearer_auth(k);
        }
        if let Some(sid) = session {
            r = r.header("mcp-session-id", sid);
        }
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        let r = r.send().await.unwrap();
        let status = r.status().as_u16();
        let session = r.headers().get("mcp-session-id").map(|v| v.to_str().unwrap().to_string());
        RpcAnswer { status, session, text: r.text().await.unwrap_or_default() }
    }

    async fn post(&self, body: &Value, session: Option<&str>, headers: &[(&str, &str)]) -> RpcAnswer {
        self.send(reqwest::Method::POST, Some(body), session, headers).await
    }

    /// Initialize a session; its id.
    async fn open(&self) -> String {
        let r = self.post(&initialize(1), None, &[]).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let sid = r.session.clone().expect("a session id");
        let done = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let r = self.post(&done, Some(&sid), &[]).await;
        assert!(r.status == 202 || r.status == 200, "{} {}", r.status, r.text);
        sid
    }
}

/// The trust review's MCP holes, by hand over HTTP. A client that re-sent an
/// approved `tools/call` with the same request id got the tool run a second
/// time (one `receipt.consumed`, two executions); another key, or no key,
/// could cancel, read or end a session whose id it knew; a malformed key or a
/// foreign browser Origin still got a session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_runs_once_and_a_session_is_its_keys() {
    let Some((_python, modules)) = prerequisites() else { return };
    let dir = tempfile::tempdir().unwrap();
    let srv = dir.path().join("srv");
    std::fs::create_dir(&srv).unwrap();
    std::fs::write(srv.join("report.txt"), "quarterly numbers").unwrap();
    let policy = policy(dir.path());
    let s = Server::start(&dir.path().join("arbiter.db"), &["--policy", policy.to_str().unwrap()]);
    let ide = s.key("ide-agent", "agent", &[]).await;
    let other = s.key("notebook-agent", "agent", &[]).await;
    let eve = s.key("eve", "reviewer", &["engineer"]).await;
    let mut gateway = KillOnDrop(
        Command::new(bin())
            .args(["mcp", "--url", &s.url, "--listen", "127.0.0.1:0"])
            .args(upstream_args(&modules, &srv))
            .env("RUST_LOG", "warn")
            .env_remove("ARBITER_KEY")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(gateway.0.stdout.take().unwrap()).lines();
    let url = lines.next().unwrap().unwrap().strip_prefix("listening on ").expect("the gateway's address").to_string();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");

    // no session for a malformed key, nor for a page of another origin
    let r = Rpc::new(&url, Some("not-a-key")).post(&initialize(1), None, &[]).await;
    assert_eq!(r.status, 401, "{}", r.text);
    let r = Rpc::new(&url, Some(&ide)).post(&initialize(1), None, &[("origin", "http://evil.example")]).await;
    assert_eq!(r.status, 403, "{}", r.text);
    let r = Rpc::new(&url, Some(&ide)).post(&initialize(1), None, &[("origin", "http://localhost:3000")]).await;
    assert_eq!(r.status, 200, "a local page may: {}", r.text);

    // the IDE agent's session; an odd request id (spaces, other scripts, 300 characters)
    let ide_rpc = Rpc::new(&url, Some(&ide));
    let sid = ide_rpc.open().await;
    let odd_id = format!("move {} ü 请求", "x".repeat(300));
    let call = json!({"jsonrpc": "2.0", "id": odd_id, "method": "tools/call", "params": {
        "name": "fs.move_file",
        "arguments": {"source": srv.join("report.txt"), "destination": srv.join("archived.txt")}}});
    let first = {
        let (rpc, call, sid) = (Rpc::new(&url, Some(&ide)), call.clone(), sid.clone());
        tokio::spawn(async move { rpc.post(&call, Some(&sid), &[]).await })
    };
    let case = case_of(&s, &eve, "fs.move_file").await;

    // while it waits: another key, and no key, can neither cancel it, read the session nor end it
    let cancel = json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": odd_id, "reason": "mine"}});
    let intruder = Rpc::new(&url, Some(&other));
    let anonymous = Rpc::new(&url, None);
    assert_eq!(intruder.post(&cancel, Some(&sid), &[]).await.status, 403);
    assert_eq!(anonymous.post(&cancel, Some(&sid), &[]).await.status, 403);
    assert_eq!(anonymous.send(reqwest::Method::GET, None, Some(&sid), &[]).await.status, 403);
    assert_eq!(anonymous.send(reqwest::Method::DELETE, None, Some(&sid), &[]).await.status, 403);
    assert_eq!(intruder.send(reqwest::Method::DELETE, None, Some(&sid), &[]).await.status, 403);
    let d = get(&s, s.admin(), &format!("/v1/decisions/{}", case["decision_id"].as_str().unwrap())).await;
    assert_eq!(d["status"], "pending", "the case was not withdrawn by anyone else: {d}");

    answer(&s, &eve, &case, json!({"decision": "approve", "rationale": "archiving the report is expected"})).await;
    let first = first.await.unwrap();
    assert_eq!(first.status, 200, "{}", first.text);
    let first = first.message();
    assert_ne!(first["result"]["isError"], json!(true), "{first}");
    assert!(srv.join("archived.txt").exists() && !srv.join("report.txt").exists());

    // the same request again: the first run's result, not a second run (which would fail: the file moved)
    let again = ide_rpc.post(&call, Some(&sid), &[]).await;
    assert_eq!(again.status, 200, "{}", again.text);
    let again = again.message();
    assert_eq!(again["result"]["content"], first["result"]["content"], "{again}");
    assert_ne!(again["result"]["isError"], json!(true), "{again}");
    let decision = case["decision_id"].as_str().unwrap();
    let events = get(&s, s.admin(), "/v1/audit/events?limit=1000").await;
    let consumed = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "receipt.consumed" && e["data"]["decision_id"] == decision)
        .count();
    assert_eq!(consumed, 1);
    assert!(events.as_array().unwrap().iter().all(|e| e["kind"] != "receipt.refused"), "{events}");

    // the owner ends its session
    assert!(ide_rpc.send(reqwest::Method::DELETE, None, Some(&sid), &[]).await.status < 300);
    drop(gateway);
}

/// A child process killed when the test ends, passing or not.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
