//! The command line, end to end.

use crate::support::{Server, bin, soc_policy};
use std::process::Command;

fn arbiter(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(bin()).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn policy_check_reports_every_error_with_its_position() {
    let (ok, out, _) = arbiter(&["policy", "check", soc_policy().to_str().unwrap()]);
    assert!(ok);
    assert!(out.contains("ok: policy \"soc-triage\""), "{out}");

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "version: 1\npolicy: bad\nactions:\n  close_alert:\n    auto_allow_at: 1.5\n    sla: soon\ntriggers:\n  - name: t1\n    actions: [close_alert]\n    when: 'args.x = 1'\n    verdict: deny\n  - name: t1\n    when: 'true'\n    verdict: maybe\n",
    )
    .unwrap();
    let (ok, _, err) = arbiter(&["policy", "check", bad.to_str().unwrap()]);
    assert!(!ok);
    let file = bad.to_str().unwrap();
    for expected in [
        format!("{file}:5:20: actions.close_alert.auto_allow_at:"),
        format!("{file}:6:10: actions.close_alert.sla:"),
        format!("{file}:14:14: triggers[1].verdict:"),
    ] {
        assert!(err.contains(&expected), "missing {expected:?} in:\n{err}");
    }
    assert!(err.contains("triggers[0].when"), "{err}");
    assert!(err.contains("duplicate trigger name `t1`"), "{err}");
    assert!(!err.contains("needs a `verdict`"), "a present but invalid verdict is reported once:\n{err}");

    let (ok, _, err) = arbiter(&["policy", "check", "/no/such/file.yaml"]);
    assert!(!ok);
    assert!(err.contains("cannot read"), "{err}");
}

/// The trust review: `reviewers: [soc_analsyt]` and an `actions.isolate_hots`
/// entry passed `policy check` silently. With a store, names that no decision
/// had and no active key holds are warned about, with the near name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_check_names_what_matches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("arbiter.db");
    let s = Server::start(&db, &[]);
    let agent = s.key("triage-agent", "agent", &[]).await;
    let _ana = s.key("ana", "reviewer", &["soc_analyst"]).await;
    let r = s
        .http
        .post(s.at("/v1/decisions"))
        .bearer_auth(&agent)
        .json(&serde_json::json!({"action": {"name": "isolate_host", "confidence": 0.5, "args": {"host": "h"}}}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let typo = dir.path().join("typo.yaml");
    std::fs::write(
        &typo,
        "version: 1\npolicy: typo\ndefaults:\n  reviewers: [soc_analyst]\nactions:\n  isolate_host:\n    auto_allow_at: 0.9\n  isolate_hots:\n    reviewers: [soc_analsyt]\n",
    )
    .unwrap();
    let (ok, out, err) = arbiter(&["policy", "check", typo.to_str().unwrap()]);
    assert!(ok, "warnings do not fail the check: {err}");
    assert!(err.contains("`isolate_host` and `isolate_hots` differ by one or two letters"), "{err}");
    assert!(out.contains("warning(s)"), "{out}");
    let (ok, _, err) = arbiter(&["policy", "check", typo.to_str().unwrap(), "--db", db.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(err.contains("action class `isolate_hots` was never proposed; did you mean `isolate_host`?"), "{err}");
    assert!(err.contains("reviewer role `soc_analsyt` is held by no active key; did you mean `soc_analyst`?"), "{err}");
}

#[test]
fn policy_eval_explains_the_verdict() {
    let soc = soc_policy();
    let action = r#"{"name": "disable_user", "confidence": 0.99, "args": {"user": "jdoe", "user_groups": ["domain_admins"], "is_admin": true}}"#;
    let (ok, out, err) = arbiter(&["policy", "eval", soc.to_str().unwrap(), "--action", action]);
    assert!(ok, "{err}");
    assert!(out.starts_with("verdict: escalate"), "{out}");
    assert!(out.contains("never_disable_admin"), "{out}");
    assert!(out.contains("escalation: severity"), "{out}");

    let action = r#"{"name": "block_ip", "confidence": 0.99, "args": {"ip": "8.8.8.8", "direction": "outbound"}}"#;
    let (ok, out, _) = arbiter(&["policy", "eval", soc.to_str().unwrap(), "--action", action]);
    assert!(ok);
    assert!(out.starts_with("verdict: deny"), "{out}");

    let action = r#"{"name": "isolate_host", "confidence": 0.99, "args": {"host": "db-01", "host_tags": ["crown_jewel", "server"]}}"#;
    let (ok, out, _) = arbiter(&["policy", "eval", soc.to_str().unwrap(), "--action", action, "--json"]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["evaluation"]["verdict"], "escalate");
    assert_eq!(v["evaluation"]["escalation"]["approvals"], 2);

    let (ok, _, err) = arbiter(&["policy", "eval", soc.to_str().unwrap(), "--action", r#"{"name": 3}"#]);
    assert!(!ok);
    assert!(err.contains("--action: at `name`"), "{err}");
}

#[tokio::test]
async fn keys_cli_creates_lists_and_revokes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("arbiter.db");
    let dbs = db.to_str().unwrap();
    let (ok, _, err) = arbiter(&["keys", "list", "--db", dbs]);
    assert!(!ok && err.contains("no store"), "{err}");
    drop(Server::start(&db, &[]));

    let (ok, key, err) = arbiter(&[
        "keys",
        "create",
        "--db",
        dbs,
        "--name",
        "alice",
        "--role",
        "reviewer",
        "--tag",
        "soc_analyst",
        "--quiet",
    ]);
    assert!(ok, "{err}");
    let key = key.trim().to_string();
    assert!(key.starts_with("arb_"));
    // A reviewer key no case can reach is created, with a warning that says why and what to do.
    let (ok, _, err) = arbiter(&["keys", "create", "--db", dbs, "--name", "bob", "--role", "reviewer"]);
    assert!(ok, "{err}");
    assert!(err.contains("warning: reviewer key `bob` has no tags, so its queue will stay empty"), "{err}");
    assert!(err.contains("soc_analyst"), "the warning names the roles the policy routes to: {err}");
    let (ok, _, err) =
        arbiter(&["keys", "create", "--db", dbs, "--name", "carol", "--role", "reviewer", "--tag", "soc_analst"]);
    assert!(ok, "{err}");
    assert!(err.contains("none of reviewer key `carol`'s tags (soc_analst)"), "{err}");
    let (ok, _, err) = arbiter(&["keys", "create", "--db", dbs, "--name", "ops-agent", "--role", "agent"]);
    assert!(ok && !err.contains("warning"), "{err}");
    let (ok, out, _) = arbiter(&["keys", "list", "--db", dbs]);
    assert!(ok);
    assert!(out.contains("alice") && out.contains("soc_analyst") && !out.contains(&key[17..]), "{out}");
    // Columns line up however long a name is, and a pipe gets no colour codes.
    let lines: Vec<&str> = out.lines().collect();
    let status_at = lines[0].find("STATUS").unwrap();
    for l in &lines[1..] {
        assert_eq!(l.get(status_at..status_at + 6), Some("active"), "misaligned:\n{out}");
    }
    assert!(!out.contains('\x1b'), "{out}");
    let (ok, json, _) = arbiter(&["keys", "list", "--db", dbs, "--json"]);
    assert!(ok);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&json).unwrap().as_array().unwrap().len(), 5);
    let (ok, _, err) = arbiter(&["keys", "create", "--db", dbs, "--name", "x", "--role", "root"]);
    assert!(!ok && err.contains("unknown role"), "{err}");

    let s = Server::restart(&db, &[]);
    let r = s.http.get(s.at("/v1/policy")).bearer_auth(&key).send().await.unwrap();
    assert_eq!(r.status(), 200);
    drop(s);

    let id = key.split('_').nth(1).unwrap();
    let (ok, out, _) = arbiter(&["keys", "revoke", "--db", dbs, id]);
    assert!(ok, "{out}");
    let (ok, _, err) = arbiter(&["keys", "revoke", "--db", dbs, id]);
    assert!(!ok && err.contains("no active key"), "{err}");
    let s = Server::restart(&db, &[]);
    let r = s.http.get(s.at("/v1/policy")).bearer_auth(&key).send().await.unwrap();
    assert_eq!(r.status(), 401);
}

#[test]
fn migrate_reports_and_applies_pending_migrations() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("arbiter.db");
    let dbs = db.to_str().unwrap();
    let (ok, _, err) = arbiter(&["migrate", "--db", dbs]);
    assert!(!ok && err.contains("no store at"), "{err}");
    {
        let raw = rusqlite::Connection::open(&db).unwrap();
        raw.execute_batch(include_str!("../../../arbiter-store/migrations/sqlite/0001_init.sql")).unwrap();
        raw.pragma_update(None, "user_version", 1).unwrap();
    }
    let (ok, out, _) = arbiter(&["migrate", "--db", dbs, "--check"]);
    assert!(!ok, "pending migrations fail the check: {out}");
    // the newest schema version is the number of the last migration file
    let latest = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../arbiter-store/migrations/sqlite"))
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().to_str()?.get(..4)?.parse::<u32>().ok())
        .max()
        .unwrap();
    assert!(out.contains(&format!("schema version 1; migrations 2 to {latest} are pending")), "{out}");
    let (ok, out, err) = arbiter(&["migrate", "--db", dbs]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), format!("{dbs}: schema version 1 -> {latest}"));
    assert!(err.is_empty(), "no progress bar and no log off a terminal: {err}");
    let (ok, out, _) = arbiter(&["migrate", "--db", dbs, "--check"]);
    assert!(ok && out.contains(&format!("schema version {latest}, up to date")), "{out}");
}

#[test]
fn serve_points_from_port_to_listen() {
    let (ok, _, err) = arbiter(&["serve", "--port", "9000"]);
    assert!(!ok);
    assert!(err.contains("use --listen 127.0.0.1:9000"), "{err}");
}

#[test]
fn serve_reads_a_toml_config_and_names_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("arbiter.toml");
    std::fs::write(&cfg, "listen = \"127.0.0.1:0\"\nmin_rationale_len = 20\nclaim_lease = \"never\"\n").unwrap();
    let out = Command::new(bin()).args(["serve", "--config", cfg.to_str().unwrap()]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:3:", cfg.display())), "{err}");
    std::fs::write(&cfg, "listen = \"127.0.0.1:0\"\nmax_body_bytez = 10\n").unwrap();
    let out = Command::new(bin()).args(["serve", "--config", cfg.to_str().unwrap()]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains(":2:1:") && err.contains("max_body_bytez"), "{err}");
    // a good file: the server starts where it says (flags still win over it)
    let db = dir.path().join("from-config.db");
    std::fs::write(&cfg, format!("listen = \"127.0.0.1:0\"\ndb = \"{}\"\n", db.display())).unwrap();
    let mut child = Command::new(bin())
        .args(["serve", "--config", cfg.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    let store_line = lines.find(|l| l.as_ref().is_ok_and(|l| l.starts_with("store: "))).unwrap().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(store_line, format!("store: {}", db.display()));
    assert!(db.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_win_over_the_environment_which_wins_over_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("arbiter.toml");
    std::fs::write(&cfg, "max_body_bytes = 1000\n").unwrap();
    let cfgs = cfg.to_str().unwrap();
    async fn status(s: &Server, agent: &str, size: usize) -> u16 {
        let body = serde_json::json!({"action": {"name": "close_alert", "confidence": 0.97, "args": {"pad": "x".repeat(size)}}});
        s.propose(agent, &body, None).await.status().as_u16()
    }
    // the file alone: 1000 bytes
    let s = Server::start_env(&dir.path().join("a.db"), &["--config", cfgs], &[]);
    let agent = s.loader("agent").await;
    assert_eq!(status(&s, &agent, 1500).await, 413);
    drop(s);
    // the environment over the file: 2000 bytes
    let s = Server::start_env(&dir.path().join("b.db"), &["--config", cfgs], &[("ARBITER_MAX_BODY_BYTES", "2000")]);
    let agent = s.loader("agent").await;
    assert_eq!(status(&s, &agent, 1500).await, 201);
    assert_eq!(status(&s, &agent, 2500).await, 413);
    drop(s);
    // a flag over both: 3000 bytes
    let s = Server::start_env(
        &dir.path().join("c.db"),
        &["--config", cfgs, "--max-body-bytes", "3000"],
        &[("ARBITER_MAX_BODY_BYTES", "2000")],
    );
    let agent = s.loader("agent").await;
    assert_eq!(status(&s, &agent, 2500).await, 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_releases_long_polls_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("arbiter.db");
    let s = Server::start(&db, &[]);
    let agent = s.key("agent", "agent", &[]).await;
    let d: serde_json::Value =
        s.propose(&agent, &crate::support::escalating_action(), None).await.json().await.unwrap();
    let id = d["id"].as_str().unwrap().to_string();
    let poll = {
        let (http, url, agent) = (s.http.clone(), s.at(&format!("/v1/decisions/{id}?wait=60s")), agent.clone());
        tokio::spawn(async move {
            let r = http.get(url).bearer_auth(agent).send().await.unwrap();
            (std::time::Instant::now(), r.status().as_u16(), r.json::<serde_json::Value>().await.unwrap())
        })
    };
    s.until_waiting(1).await;
    let stopping = std::time::Instant::now();
    let clean = tokio::task::spawn_blocking(move || s.terminate()).await.unwrap();
    assert!(clean, "the server exits with success on SIGTERM");
    let (returned, status, body) = poll.await.unwrap();
    // released by the shutdown, long before its 60 s wait ran out, with the decision as it is
    assert!(returned.duration_since(stopping) < std::time::Duration::from_secs(30));
    assert_eq!((status, body["status"].as_str()), (200, Some("pending")), "{body}");
    // and the store is consistent afterwards
    let out = Command::new(bin()).args(["audit", "verify", "--db", db.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}

/// The documented load generators run against their own server and report
/// every request as answered: `decide` with an agent key (no 429s), `console`
/// with every escalation opening its case and every page answering 200.
#[test]
fn the_benchmarks_run_and_report_no_errors() {
    let (ok, out, err) =
        arbiter(&["bench", "decide", "--concurrency", "4", "--duration", "1s", "--warmup", "0s", "--json"]);
    assert!(ok, "{out}\n{err}");
    let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(report["errors"], 0, "{report}");
    assert!(report["decisions"].as_u64().unwrap() > 0, "{report}");
    let verdicts = ["allow", "escalate", "deny"].map(|v| report[v].as_u64().unwrap());
    assert_eq!(verdicts.iter().sum::<u64>(), report["decisions"].as_u64().unwrap(), "{report}");
    assert!(verdicts.iter().all(|n| *n > 0), "the mix exercises every verdict: {report}");

    let (ok, out, err) = arbiter(&["bench", "console", "--decisions", "3000", "--requests", "2", "--decide", "20"]);
    assert!(ok, "{out}\n{err}");
    let loaded = out.lines().next().unwrap();
    let open: u64 = loaded.split(" cases open").next().unwrap().rsplit(' ').next().unwrap().parse().unwrap();
    assert!(open > 250, "more open cases than the per-agent cap of 200: {loaded}");
    assert!(loaded.contains("answered 20 cases"), "{loaded}");
    for page in [
        "sign-in page",
        "queue",
        "case",
        "review case",
        "dashboard",
        "policy",
        "decided cases, first page",
        "decided cases, words in rationales",
        "review cases",
        "search",
    ] {
        assert!(out.lines().any(|l| l.starts_with(page)), "{page} missing:\n{out}");
    }

    let (ok, out, err) = arbiter(&[
        "bench",
        "traces",
        "--concurrency",
        "2",
        "--spans",
        "10",
        "--duration",
        "1s",
        "--warmup",
        "0s",
        "--json",
    ]);
    assert!(ok, "{out}\n{err}");
    let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(report["errors"], 0, "{report}");
    assert!(report["spans_per_sec"].as_f64().unwrap() > 0.0, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projects_cli_creates_projects_keys_and_memberships_and_verifies_each_chain() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("arbiter.db");
    let dbs = db.to_str().unwrap();
    drop(Server::start(&db, &[]));
    let (ok, out, err) = arbiter(&["projects", "create", "--db", dbs, "refunds", "--name", "Support refunds"]);
    assert!(ok && out.contains("created project refunds (Support refunds)"), "{out}{err}");
    let (ok, _, err) = arbiter(&["projects", "create", "--db", dbs, "refunds"]);
    assert!(!ok && err.contains("already exists"), "{err}");
    let (ok, _, err) = arbiter(&["projects", "create", "--db", dbs, "Refunds"]);
    assert!(!ok && err.contains("not a project id"), "{err}");
    let (ok, out, _) = arbiter(&["projects", "list", "--db", dbs]);
    assert!(ok && out.contains("default") && out.contains("refunds"), "{out}");
    // keys belong to a project; listing is per project
    let (ok, _, err) = arbiter(&[
        "keys",
        "create",
        "--db",
        dbs,
        "--project",
        "refunds",
        "--name",
        "sam",
        "--role",
        "reviewer",
        "--tag",
        "support_lead",
        "--quiet",
    ]);
    assert!(ok, "{err}");
    let (ok, _, err) = arbiter(&["keys", "create", "--db", dbs, "--project", "nope", "--name", "x", "--role", "agent"]);
    assert!(!ok && err.contains("no project `nope`"), "{err}");
    let (_, default_keys, _) = arbiter(&["keys", "list", "--db", dbs]);
    let (_, refund_keys, _) = arbiter(&["keys", "list", "--db", dbs, "--project", "refunds"]);
    assert!(!default_keys.contains("sam") && refund_keys.contains("sam"), "{default_keys}\n{refund_keys}");
    // a person of the default project gets a role in refunds, then loses it
    let (ok, _, err) =
        arbiter(&["keys", "create", "--db", dbs, "--name", "ann", "--role", "reviewer", "--tag", "soc_analyst"]);
    assert!(ok, "{err}");
    let (ok, out, err) = arbiter(&[
        "projects",
        "grant",
        "--db",
        dbs,
        "refunds",
        "--principal",
        "ann",
        "--home",
        "default",
        "--role",
        "reviewer",
        "--tag",
        "support_lead",
    ]);
    assert!(ok && out.contains("ann@default may now act in project refunds as reviewer (support_lead)"), "{out}{err}");
    let (_, members, _) = arbiter(&["projects", "members", "--db", dbs, "refunds"]);
    assert!(members.contains("ann@default"), "{members}");
    let (ok, _, err) = arbiter(&["projects", "revoke", "--db", dbs, "refunds", "ann@default"]);
    assert!(ok, "{err}");
    let (ok, _, err) = arbiter(&["projects", "revoke", "--db", dbs, "refunds", "ann@default"]);
    assert!(!ok && err.contains("has no role"), "{err}");
    // each project's chain verifies on its own, and its anchor is its own
    let (ok, out, _) = arbiter(&["audit", "verify", "--db", dbs, "--all"]);
    assert!(ok && out.contains("default: ok:") && out.contains("refunds: ok:"), "{out}");
    let (ok, anchor, err) = arbiter(&["audit", "anchor", "--db", dbs, "--project", "refunds"]);
    assert!(ok, "{err}");
    let (ok, _, _) = arbiter(&["audit", "verify", "--db", dbs, "--project", "refunds", "--anchor", anchor.trim()]);
    assert!(ok);
    let (ok, _, _) = arbiter(&["audit", "verify", "--db", dbs, "--anchor", anchor.trim()]);
    assert!(!ok, "the refunds anchor is not the default chain's");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_cli_links_slack_accounts_and_refuses_what_is_not_a_member_id() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("arbiter.db");
    let dbs = db.to_str().unwrap();
    drop(Server::start(&db, &[]));
    let (ok, _, err) = arbiter(&["people", "link-slack", "--db", dbs, "alice", "@alice"]);
    assert!(!ok && err.contains("not a Slack member id"), "{err}");
    let (ok, out, err) = arbiter(&["people", "link-slack", "--db", dbs, "alice", "U0ALICE01"]);
    assert!(ok && out.contains("alice now answers cases from Slack as Slack user U0ALICE01"), "{out}{err}");
    // a Slack user is one person: linking it to bob takes it from alice
    let (ok, _, err) = arbiter(&["people", "link-slack", "--db", dbs, "bob", "U0ALICE01"]);
    assert!(ok, "{err}");
    let (ok, out, _) = arbiter(&["people", "list", "--db", dbs, "--json"]);
    assert!(ok, "{out}");
    let people: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(people[0]["name"], "alice");
    assert!(people[0]["slack_user"].is_null(), "{people}");
    assert_eq!(people[1]["slack_user"], "U0ALICE01");
    let (ok, _, err) = arbiter(&["people", "unlink-slack", "--db", dbs, "bob"]);
    assert!(ok, "{err}");
    let (_, out, _) = arbiter(&["people", "list", "--db", dbs]);
    assert!(out.contains("alice") && out.contains("bob") && !out.contains("U0ALICE01"), "{out}");
}

/// `arbiter openapi | head -1`: the reader closes the pipe early; the command
/// ends quietly (exit 0, nothing on stderr), as other command-line tools do.
#[test]
fn a_closed_pipe_ends_a_command_quietly() {
    use std::io::Read;
    let mut child = Command::new(bin())
        .arg("openapi")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap(); // then the read end is dropped: closed
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}: {err}", out.status.code());
    assert!(!err.contains("panicked"), "{err}");
}

/// A wrong server address says what is wrong and what to type, once.
#[test]
fn a_wrong_server_address_says_what_to_type() {
    let cases = [
        ("127.0.0.1:8080", "has no scheme: write http://127.0.0.1:8080"),
        ("http://127.0.0.1:8080/v1", "ends in /v1: give the server's address, http://127.0.0.1:8080"),
        ("ftp://127.0.0.1", "not ftp://"),
    ];
    for (url, says) in cases {
        let (ok, _, err) = arbiter(&["cases", "list", "--url", url, "--key", "arb_x_y"]);
        assert!(!ok && err.contains(says), "{url}: {err}");
    }
    // nothing listens there: the cause once, and a hint
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (ok, _, err) = arbiter(&["cases", "list", "--url", &format!("http://127.0.0.1:{port}"), "--key", "arb_x_y"]);
    assert!(!ok, "{err}");
    assert!(err.contains("Connection refused") && err.contains("Is the server running"), "{err}");
    assert_eq!(err.matches("error sending request").count(), 0, "no repeated transport text: {err}");
}

#[test]
fn tune_says_when_there_are_too_few_outcomes_and_where_a_history_comes_from() {
    let dir = tempfile::tempdir().unwrap();
    let one = dir.path().join("one.csv");
    std::fs::write(&one, "timestamp,action,confidence,correct\n2026-01-01T00:00:00Z,isolate_host,0.9,1\n").unwrap();
    let (ok, out, _) = arbiter(&["tune", "--history", one.to_str().unwrap(), "--max-auto-error", "0.05"]);
    assert!(!ok, "{out}");
    assert!(out.contains("TOO FEW OUTCOMES") && out.contains("needs at least 200 labelled decisions"), "{out}");
    assert!(out.contains("the history has 1 (isolate_host: 1)"), "{out}");
    assert!(!out.contains("-0.00%"), "{out}");
    let (ok, _, err) = arbiter(&["tune"]);
    assert!(!ok && err.contains("--history FILE") && err.contains("--db STORE"), "{err}");
}
