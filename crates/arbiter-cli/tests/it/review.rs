//! The review workflow end to end: the real binary, driven over HTTP and through the CLI.

use crate::support::{Server, bin};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Run `arbiter` with a reviewer's key against `s`.
fn arbiter(s: &Server, key: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(bin()).args(args).env("ARBITER_URL", &s.url).env("ARBITER_KEY", key).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(r: (bool, String, String)) -> String {
    assert!(r.0, "command failed:\nstdout: {}\nstderr: {}", r.1, r.2);
    r.1
}

async fn wait_for(s: &Server, agent: &str, id: &str) -> tokio::task::JoinHandle<(Instant, Value)> {
    let (http, url, agent) = (s.http.clone(), s.at(&format!("/v1/decisions/{id}?wait=30s")), agent.to_string());
    tokio::spawn(async move {
        let v: Value = http.get(url).bearer_auth(agent).send().await.unwrap().json().await.unwrap();
        (Instant::now(), v)
    })
}

fn isolate(host: &str, tags: &[&str], confidence: f64) -> Value {
    json!({"action": {"name": "isolate_host", "confidence": confidence, "args": {"host": host, "host_tags": tags},
        "signals": {"alert_type": "malware", "alert_severity": "medium"}}, "trace_id": "run-42"})
}

#[tokio::test]
async fn reviewer_claims_and_modifies_two_approvals_review_case_and_audit() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("arbiter.db");
    let s = Server::start(&db, &[]);
    let agent = s.key("soc-triage-agent", "agent", &[]).await;
    let ann = s.key("ann", "reviewer", &["soc_analyst"]).await;
    let bob = s.key("bob", "reviewer", &["soc_analyst"]).await;
    let lee = s.key("lee", "reviewer", &["soc_lead"]).await;
    let eve = s.key("eve", "reviewer", &["engineering"]).await;
    let dan = s.key("dan", "reviewer", &["data_science"]).await;

    // 1. An escalated action; the analyst claims it from the terminal and modifies it.
    let d: Value = s.propose(&agent, &isolate("srv-web-3", &["server"], 0.9), None).await.json().await.unwrap();
    assert_eq!(d["status"], "pending");
    let (id, case) = (d["id"].as_str().unwrap().to_string(), d["case_id"].as_str().unwrap().to_string());
    let poll = wait_for(&s, &agent, &id).await;
    s.until_waiting(1).await;
    let queue = ok(arbiter(&s, &ann, &["cases", "list"]));
    assert!(queue.contains(&case) && queue.contains("isolate_host"), "{queue}");
    let shown = ok(arbiter(&s, &ann, &["cases", "show", &case]));
    assert!(shown.contains("isolate_server") && shown.contains("case.opened"), "{shown}");
    let claimed = ok(arbiter(&s, &ann, &["cases", "claim", &case]));
    assert!(claimed.contains("claimed"), "{claimed}");
    let (ok_, _, err) = arbiter(&s, &bob, &["cases", "claim", &case]);
    assert!(!ok_ && err.contains("409") && err.contains("ann holds this case"), "{err}");
    let (ok_, _, err) = arbiter(&s, &lee, &["cases", "claim", &case]);
    assert!(!ok_ && err.contains("403"), "not this tier's role: {err}");
    let decided_at = Instant::now();
    let out = ok(arbiter(
        &s,
        &ann,
        &[
            "cases",
            "decide",
            &case,
            "--modify",
            r#"{"host": "srv-web-3", "host_tags": ["server"], "mode": "network_only"}"#,
            "--rationale",
            "keep the web tier serving; cut only east-west traffic",
            "--failure-mode",
            "too_broad",
        ],
    ));
    assert!(out.contains("decided"), "{out}");
    let (returned, fin) = poll.await.unwrap();
    // woken by the decision, well before its 30 s wait ran out
    assert!(returned.saturating_duration_since(decided_at) < Duration::from_secs(15));
    assert_eq!(fin["final"]["verdict"], "allow");
    assert_eq!(fin["final"]["action"]["args"]["mode"], "network_only");
    assert_eq!(fin["final"]["decided_by"], json!(["ann"]));

    // 3. A review case promoted from the first case, worked through the four stages.
    let opened = ok(arbiter(
        &s,
        &eve,
        &[
            "reviews",
            "open",
            "--title",
            "Agent isolates whole servers for single-process malware",
            "--from-case",
            &case,
        ],
    ));
    let rid = opened.trim().rsplit(' ').next().unwrap().to_string();
    let stage = |key: &str, stage: &str, role: &str, fields: Value| {
        ok(arbiter(
            &s,
            key,
            &[
                "reviews",
                "stage",
                &rid,
                stage,
                &fields.to_string(),
                "--role",
                role,
                "-r",
                "see the linked decisions and replay",
            ],
        ))
    };
    stage(
        &eve,
        "contextual_analysis",
        "engineering",
        json!({"reproduced": "partly", "steps": ["replay run-42 with prompt v7"], "environment": "staging", "links": [{"decision_id": id}]}),
    );
    stage(
        &eve,
        "trace_inspection",
        "engineering",
        json!({"findings": [{"decision_id": id, "kind": "wrong_action", "note": "full isolation where process kill sufficed"}]}),
    );
    let (ok_, _, err) = arbiter(&s, &eve, &["reviews", "close", &rid, "-r", "trying to close early"]);
    assert!(!ok_ && err.contains("an entry for the impact assessment"), "{err}");
    stage(
        &dan,
        "impact_assessment",
        "data_science",
        json!({"severity": "S3", "scope": {"count": 1, "entities": [{"kind": "host", "id": "srv-web-3"}]},
        "technical_correctness": "over-broad containment", "user_experience": "no outage thanks to the reviewer's modification"}),
    );
    stage(
        &eve,
        "resolution_design",
        "engineering",
        json!({"interventions": [{"kind": "prompt_refinement", "description": "prefer process-level containment",
        "owner": "eve", "expected_effect": "fewer full isolations of servers"}]}),
    );
    ok(arbiter(
        &s,
        &eve,
        &["cases", "comment", &rid, "--role", "engineering", "--text", "tool v3 adds network_only mode"],
    ));
    let shown = ok(arbiter(&s, &eve, &["reviews", "show", &rid]));
    assert!(shown.contains("ready to close") && shown.contains("prompt_refinement"), "{shown}");
    ok(arbiter(&s, &eve, &["reviews", "intervention", &rid, "0", "--status", "in_progress"]));
    ok(arbiter(&s, &eve, &["reviews", "close", &rid, "-r", "prompt refined; monitoring the isolation rate"]));
    let all = ok(arbiter(&s, &eve, &["cases", "list", "--all", "--kind", "review", "--state", "closed"]));
    assert!(all.contains(&rid), "{all}");

    // The closed review is a lesson: listed, shown with its history, found by search, published,
    // and exported as prompt guidance and as a dataset of the reviewed decisions.
    let listed = ok(arbiter(&s, &eve, &["lessons", "list"]));
    let lesson = format!("lesson-{rid}");
    assert!(listed.contains(&lesson) && listed.contains("isolate_host"), "{listed}");
    ok(arbiter(
        &s,
        &eve,
        &["lessons", "edit", &lesson, "--publish", "--guidance", "Prefer network-only containment for servers."],
    ));
    let shown = ok(arbiter(&s, &eve, &["lessons", "show", &lesson]));
    assert!(
        shown.contains("lesson.created") && shown.contains("lesson.updated") && shown.contains("publish"),
        "{shown}"
    );
    let found = ok(arbiter(&s, &eve, &["lessons", "search", "network", "--kind", "lesson"]));
    assert!(found.contains(&lesson), "{found}");
    let prompt = ok(arbiter(&s, &eve, &["lessons", "export", "--format", "prompt", "--action", "isolate_host"]));
    assert!(prompt.contains(&format!("Prefer network-only containment for servers. [lesson {lesson}]")), "{prompt}");
    let out = dir.path().join("reviewed.jsonl");
    ok(arbiter(&s, &eve, &["lessons", "export", "--format", "dataset", "--out", out.to_str().unwrap()]));
    let rows: Vec<Value> =
        std::fs::read_to_string(&out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(!rows.is_empty() && rows.iter().all(|r| r["label"]["rationale"].is_string()), "{rows:?}");
    let chat = ok(arbiter(&s, &eve, &["lessons", "export", "--format", "chat"]));
    assert!(chat.lines().all(|l| serde_json::from_str::<Value>(l).unwrap()["messages"].as_array().unwrap().len() == 3));

    // 4. The audit log verifies, and an edit behind the server's back is caught.
    let dbs = db.to_str().unwrap();
    let verified = Command::new(bin()).args(["audit", "verify", "--db", dbs]).output().unwrap();
    assert!(verified.status.success(), "{}", String::from_utf8_lossy(&verified.stdout));
    let export = dir.path().join("audit.jsonl");
    let exported =
        Command::new(bin()).args(["audit", "export", "--db", dbs, "--out", export.to_str().unwrap()]).output().unwrap();
    assert!(exported.status.success());
    let lines = std::fs::read_to_string(&export).unwrap();
    let first: Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    assert_eq!(first["seq"], 1);
    assert!(lines.lines().count() > 10);
    // A forged verdict in a decision row (in a copy): the row no longer matches what the chain committed.
    let copy = dir.path().join("copy.db");
    let backed_up =
        Command::new(bin()).args(["backup", "--db", dbs, "--out", copy.to_str().unwrap()]).output().unwrap();
    assert!(backed_up.status.success());
    tamper(
        &copy,
        &format!(
            "UPDATE decisions SET body = replace(body, '\"mode\":\"network_only\"', '\"mode\":\"full\"') WHERE id = '{id}'"
        ),
    );
    let failed = Command::new(bin()).args(["audit", "verify", "--db", copy.to_str().unwrap()]).output().unwrap();
    let text = String::from_utf8_lossy(&failed.stdout);
    assert!(!failed.status.success());
    assert!(text.contains(&format!("decision {id}")), "{text}");
    tamper(
        &db,
        "UPDATE events SET data = replace(data, 'keep the web tier', 'isolate everything') WHERE kind = 'case.answered'",
    );
    let failed = Command::new(bin()).args(["audit", "verify", "--db", dbs]).output().unwrap();
    let text = String::from_utf8_lossy(&failed.stdout);
    assert!(!failed.status.success());
    let bad_seq: u64 = lines
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|e| e["kind"] == "case.answered")
        .unwrap()["seq"]
        .as_u64()
        .unwrap();
    assert!(text.contains(&format!("event {bad_seq} does not verify")), "{text}");
}

fn tamper(db: &Path, sql: &str) {
    let c = rusqlite::Connection::open(db).unwrap();
    assert!(c.execute(sql, []).unwrap() > 0, "the tampering statement changed nothing");
}

/// The tier → fallback rules are tested on the injected clock in the server's
/// tests; this one checks the wiring of the real binary: its own sweeper loop
/// (`--sweep-interval-ms`) applies them on real time and wakes the waiting agent.
#[tokio::test]
async fn the_served_binary_sweeps_slas_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("fast-sla.yaml");
    std::fs::write(&policy, "version: 1\npolicy: fast-sla\ndefaults:\n  reviewers: [soc_analyst]\n  sla: 1s\n  fallback: deny\n  tiers:\n    - reviewers: [soc_lead]\n      sla: 1s\n").unwrap();
    let s = Server::start(
        &dir.path().join("arbiter.db"),
        &["--policy", policy.to_str().unwrap(), "--sweep-interval-ms", "50"],
    );
    let agent = s.key("soc-triage-agent", "agent", &[]).await;
    let d: Value = s.propose(&agent, &isolate("ws-1", &["workstation"], 0.5), None).await.json().await.unwrap();
    let (id, case) = (d["id"].as_str().unwrap().to_string(), d["case_id"].as_str().unwrap().to_string());
    let started = Instant::now();
    let r = s.http.get(s.at(&format!("/v1/decisions/{id}?wait=10s"))).bearer_auth(&agent).send().await.unwrap();
    let fin: Value = r.json().await.unwrap();
    let waited = started.elapsed();
    assert_eq!(fin["status"], "final", "{fin}");
    assert_eq!(fin["final"]["verdict"], "deny");
    assert_eq!(fin["final"]["source"], "sla_expired");
    // It waited through both tiers (1 s each); `final` shows the fallback woke it, not its 10 s running out.
    assert!(waited >= Duration::from_millis(1500), "{waited:?}");
    let events: Value = s
        .http
        .get(s.at(&format!("/v1/cases/{case}/events")))
        .bearer_auth(s.admin())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kinds: Vec<&str> = events.as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["case.opened", "case.tier_escalated", "case.fallback_applied"]);
    assert_eq!(events[1]["data"]["reviewers"], json!(["soc_lead"]));
    assert_eq!(events[2]["data"]["reason"], "sla_expired");
    assert_eq!(events[2]["actor"], "system");
}

/// A policy change from a terminal: store the new version as a draft, link it
/// to the review's intervention, backtest it, and ask for rule suggestions.
#[tokio::test]
async fn a_policy_change_is_drafted_linked_and_backtested_from_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("arbiter.db"), &[]);
    let admin = s.admin();
    let agent = s.key("soc-triage-agent", "agent", &[]).await;
    let eve = s.key("eve", "reviewer", &["engineering", "soc_analyst"]).await;
    let d: Value = s.propose(&agent, &isolate("srv-db-01", &["server"], 0.97), None).await.json().await.unwrap();
    let (did, case) = (d["id"].as_str().unwrap().to_string(), d["case_id"].as_str().unwrap().to_string());
    let opened = ok(arbiter(&s, &eve, &["reviews", "open", "--title", "Servers isolated", "--from-case", &case]));
    let rid = opened.trim().rsplit(' ').next().unwrap().to_string();
    let soc = std::fs::read_to_string(crate::support::soc_policy()).unwrap();
    let stricter = dir.path().join("stricter.yaml");
    std::fs::write(&stricter, format!("{soc}  - name: confirm_every_isolation\n    actions: [isolate_host]\n    when: '!(has(signals.confirmed) && signals.confirmed == true)'\n    verdict: escalate\n")).unwrap();
    let (ok_, _, err) = arbiter(&s, &eve, &["policy", "draft", stricter.to_str().unwrap()]);
    assert!(!ok_ && err.contains("forbidden"), "drafts need an admin key: {err}");
    let drafted = ok(arbiter(&s, admin, &["policy", "draft", stricter.to_str().unwrap()]));
    let hash = drafted.split_whitespace().nth(2).unwrap().to_string();
    assert!(drafted.contains("not active") && hash.len() == 64, "{drafted}");
    for (stage, fields) in [
        ("trace_inspection", format!(r#"{{"findings":[{{"decision_id":"{did}","kind":"wrong_action","note":"a database server"}}]}}"#)),
        ("resolution_design", r#"{"interventions":[{"kind":"tool_change","description":"confirm every isolation","owner":"eve","expected_effect":"no unconfirmed isolations"}]}"#.to_string()),
    ] {
        ok(arbiter(&s, &eve, &["reviews", "stage", &rid, stage, &fields, "--role", "engineering", "-r", "from the decision log"]));
    }
    let (ok_, out, _) = arbiter(&s, &eve, &["reviews", "check", &rid, "0"]);
    assert!(!ok_, "no version linked yet: {out}");
    ok(arbiter(&s, &eve, &["reviews", "intervention", &rid, "0", "--policy-version", &hash]));
    let checked = ok(arbiter(&s, &eve, &["reviews", "check", &rid, "0"]));
    assert!(checked.starts_with("passed: all 1 decision(s)"), "{checked}");
    let shown = ok(arbiter(&s, &eve, &["reviews", "show", &rid]));
    assert!(shown.contains("backtest passed"), "{shown}");
    let suggestions = ok(arbiter(&s, admin, &["policy", "suggest", "--refresh"]));
    assert!(suggestions.contains("no open suggestions"), "too little history for a rule: {suggestions}");
}

/// Audit sampling end to end: the served binary draws allowed decisions for
/// audit, a reviewer lists and labels them from the terminal, and `tune --db`
/// weights the audit labels (showing the design, and what it left out).
#[tokio::test]
async fn audits_are_labelled_from_the_terminal_and_weighted_by_tune() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("arbiter.db");
    let policy = dir.path().join("audited.yaml");
    std::fs::write(
        &policy,
        "version: 1\npolicy: audited\ndefaults:\n  reviewers: [soc_analyst]\nactions:\n  close_alert:\n    auto_allow_at: 0.9\n    audit_sample: 0.5\n    audit_sla: 2h\n",
    )
    .unwrap();
    let s = Server::start(&db, &["--policy", policy.to_str().unwrap()]);
    let agent = s.key("soc-triage-agent", "agent", &[]).await;
    let ann = s.key("ann", "reviewer", &["soc_analyst"]).await;
    let mut allowed = Vec::new();
    for i in 0..40 {
        let body =
            json!({"action": {"name": "close_alert", "confidence": 0.95, "args": {"alert_id": format!("a-{i}")}}});
        let d: Value = s.propose(&agent, &body, None).await.json().await.unwrap();
        assert_eq!(d["final"]["verdict"], "allow", "{d}");
        allowed.push(d);
    }
    let drawn: Vec<&Value> = allowed.iter().filter(|d| d["audit"]["selected"] == true).collect();
    assert!((8..=32).contains(&drawn.len()), "half of 40 are drawn, give or take: {}", drawn.len());
    let listed = ok(arbiter(&s, &ann, &["cases", "audits"]));
    assert!(listed.contains("close_alert") && listed.contains("LABEL DUE"), "{listed}");
    let audits: Value = serde_json::from_str(&ok(arbiter(&s, &ann, &["cases", "audits", "--json"]))).unwrap();
    let audits = audits.as_array().unwrap();
    assert_eq!(audits.len(), drawn.len());
    // label all but one: the first two wrong
    for (i, a) in audits.iter().enumerate().skip(1) {
        let verdict = if i <= 2 { "--wrong" } else { "--right" };
        let out = ok(arbiter(
            &s,
            &ann,
            &["cases", "label", a["id"].as_str().unwrap(), verdict, "--note", "checked the alert"],
        ));
        assert!(out.contains("labelled"), "{out}");
    }
    let again = arbiter(&s, &ann, &["cases", "label", audits[1]["id"].as_str().unwrap(), "--right"]);
    assert!(!again.0 && again.2.contains("not_open"), "{again:?}");
    // an error reported on an undrawn decision: recorded, and left out of the weighted estimate
    let undrawn = allowed.iter().find(|d| d["audit"]["selected"] == false).unwrap();
    let r = s
        .http
        .post(s.at(&format!("/v1/decisions/{}/outcome", undrawn["id"].as_str().unwrap())))
        .bearer_auth(&ann)
        .json(&json!({"correct": false, "note": "customer complaint"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(s.terminate());
    let out = Command::new(bin())
        .args([
            "tune",
            "--db",
            db.to_str().unwrap(),
            "--max-escalation-rate",
            "1",
            "--escalation-cost",
            "close_alert=1",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let class = &v["result"]["classes"][0];
    let stratum = &class["audit"][0];
    assert_eq!(stratum["probability"], 0.5);
    assert_eq!(stratum["decisions"], 40);
    assert_eq!(stratum["drawn"].as_u64(), Some(drawn.len() as u64));
    assert_eq!(stratum["unlabelled"], 1, "the unlabelled audit counts as an error");
    assert_eq!(stratum["labels_left_out"], 1, "the complaint was not drawn at random");
    // escalating all 40 costs 40; allowing them, 40 × the estimated 3 errors per draw: it allows them
    assert_eq!(class["threshold"], 0.95, "{class}");
    // 3 errors (2 labelled wrong, 1 unlabelled) among the draws, for all 40 decisions
    let rate = class["auto_error_rate"].as_f64().unwrap();
    assert!((rate - 3.0 / drawn.len() as f64).abs() < 1e-9, "{class}");
    let table = Command::new(bin())
        .args(["tune", "--db", db.to_str().unwrap(), "--max-escalation-rate", "1"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("audit design") && text.contains("LEFT OUT"), "{text}");
}

/// `arbiter serve --clock manual`: the served binary's clock stands still
/// until an admin moves it, and the move runs the drift monitor on schedule.
#[tokio::test]
async fn the_served_binary_runs_on_a_manual_clock_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("arbiter.db"), &["--clock", "manual", "--drift-interval", "15m"]);
    let agent = s.key("soc-triage-agent", "agent", &[]).await;
    let d: Value = s.propose(&agent, &isolate("ws-1", &["workstation"], 0.5), None).await.json().await.unwrap();
    // real time passes; the server's does not
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = s
        .http
        .post(s.at("/v1/admin/clock"))
        .bearer_auth(s.admin())
        .json(&json!({"advance": "1h"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["drift_evaluations"], 4, "{v}");
    let url = s.at(&format!("/v1/decisions/{}", d["id"].as_str().unwrap()));
    let fin: Value = s.http.get(url).bearer_auth(&agent).send().await.unwrap().json().await.unwrap();
    assert_eq!(fin["final"]["source"], "sla_expired", "the SOC policy's SLA ran out in simulated time: {fin}");
    // the time stood still between the proposal and the move
    let t0: arbiter_core::Timestamp = d["received_at"].as_str().unwrap().parse().unwrap();
    let t1: arbiter_core::Timestamp = v["from"].as_str().unwrap().parse().unwrap();
    assert_eq!(t0, t1);
}
