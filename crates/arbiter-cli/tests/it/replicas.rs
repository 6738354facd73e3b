//! Three replicas of the real binary on one PostgreSQL database, with the
//! requests spread over them: claims stay exclusive, a long-poll on one is
//! released by a decision on another, an SLA expiry is applied once, one
//! drift alarm opens one review case, and a replica killed under load loses
//! nothing it acknowledged. Each test gets a fresh database on
//! `ARBITER_TEST_POSTGRES_URL` (required when `ARBITER_REQUIRE_POSTGRES=1`).

use crate::support::{Server, allowed_action, bin, escalating_action};
use arbiter_store_postgres::testing;
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

/// Start `n` replicas on `url`: the first bootstraps the store (and prints the admin key).
fn replicas(url: &str, n: usize, extra: &[&str]) -> Vec<Server> {
    let first = Server::start(Path::new(url), extra);
    assert!(first.admin_key.is_some(), "the first replica bootstraps the empty database");
    let mut all = vec![first];
    for _ in 1..n {
        let s = Server::start(Path::new(url), extra);
        assert!(s.admin_key.is_none(), "later replicas find the store bootstrapped");
        all.push(s);
    }
    all
}

async fn case_events(s: &Server, key: &str, case: &str) -> Vec<String> {
    let events: Value = s
        .http
        .get(s.at(&format!("/v1/cases/{case}/events")))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    events.as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap().to_string()).collect()
}

fn audit_verify(url: &str) -> String {
    let out = std::process::Command::new(bin()).args(["audit", "verify", "--db", url]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "audit verify failed: {text}{}", String::from_utf8_lossy(&out.stderr));
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_keep_claims_exclusive_release_waiters_and_sweep_once() {
    let Some(db) = testing::fresh("replicas") else { return };
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("replicas.yaml");
    std::fs::write(
        &policy,
        "version: 1\npolicy: replicas\ndefaults:\n  reviewers: [soc_analyst]\n  sla: 10m\n  fallback: deny\n\
         actions:\n  expire_me:\n    sla: 1s\n    fallback: deny\n    tiers:\n      - reviewers: [soc_lead]\n        sla: 1s\n",
    )
    .unwrap();
    let rs = replicas(&db.url, 3, &["--policy", policy.to_str().unwrap(), "--sweep-interval-ms", "50"]);
    let admin = rs[0].admin().to_string();
    let agent = rs[0].key("soc-triage-agent", "agent", &[]).await;

    // --- 32 reviewers, spread over the three replicas, claim one case: exactly one wins
    let low = json!({"action": {"name": "isolate_host", "confidence": 0.3, "args": {"host": "ws-1"}}});
    let d: Value = rs[1].propose(&agent, &low, None).await.json().await.unwrap();
    assert_eq!(d["verdict"], "escalate", "{d}");
    let case = d["case_id"].as_str().unwrap().to_string();
    let mut reviewers = Vec::new();
    for i in 0..32 {
        reviewers.push(rs[0].key(&format!("rev{i}"), "reviewer", &["soc_analyst"]).await);
    }
    let claims = reviewers.iter().enumerate().map(|(i, key)| {
        let (http, url, key) = (rs[i % 3].http.clone(), rs[i % 3].at(&format!("/v1/cases/{case}/claim")), key.clone());
        tokio::spawn(async move { http.post(url).bearer_auth(key).send().await.unwrap().status().as_u16() })
    });
    let mut statuses = Vec::new();
    for c in claims {
        statuses.push(c.await.unwrap());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "exactly one claim wins: {statuses:?}");
    assert!(statuses.iter().all(|s| *s == 200 || *s == 409), "the others are told it is held: {statuses:?}");
    let kinds = case_events(&rs[2], &admin, &case).await;
    assert_eq!(kinds.iter().filter(|k| *k == "case.claimed").count(), 1, "{kinds:?}");

    // --- a long-poll on replica 1 is released by a decision on replica 0 within 200 ms
    for (waiter, decider) in [(1usize, 0usize), (2, 1), (0, 2)] {
        let d: Value = rs[waiter].propose(&agent, &low, None).await.json().await.unwrap();
        let (id, case) = (d["id"].as_str().unwrap().to_string(), d["case_id"].as_str().unwrap().to_string());
        let poll = {
            let (http, url, agent) =
                (rs[waiter].http.clone(), rs[waiter].at(&format!("/v1/decisions/{id}?wait=30s")), agent.clone());
            tokio::spawn(async move {
                let r = http.get(url).bearer_auth(agent).send().await.unwrap();
                (Instant::now(), r.json::<Value>().await.unwrap())
            })
        };
        rs[waiter].until_waiting(1).await;
        let r = rs[decider]
            .http
            .post(rs[decider].at(&format!("/v1/cases/{case}/decision")))
            .bearer_auth(&reviewers[0])
            .json(&json!({"decision": "approve", "rationale": "the workstation is confirmed infected"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        let decided = Instant::now();
        let (released, fin) = poll.await.unwrap();
        assert_eq!(fin["status"], "final", "{fin}");
        let lag = released.saturating_duration_since(decided);
        assert!(
            lag < Duration::from_millis(200),
            "replica {waiter} released its waiter {lag:?} after replica {decider} decided"
        );
    }

    // --- an SLA expiry (tier, then fallback) is applied once, with three sweepers at it
    let expiring = json!({"action": {"name": "expire_me", "confidence": 0.3, "args": {"x": 1}}});
    let mut expired = Vec::new();
    for i in 0..6 {
        let d: Value = rs[i % 3].propose(&agent, &expiring, None).await.json().await.unwrap();
        expired.push((d["id"].as_str().unwrap().to_string(), d["case_id"].as_str().unwrap().to_string()));
    }
    for (id, case) in &expired {
        let fin: Value = rs[2]
            .http
            .get(rs[2].at(&format!("/v1/decisions/{id}?wait=10s")))
            .bearer_auth(&agent)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(fin["final"]["source"], "sla_expired", "{fin}");
        // let the other sweepers run a few more rounds on it
        tokio::time::sleep(Duration::from_millis(200)).await;
        let kinds = case_events(&rs[0], &admin, case).await;
        assert_eq!(kinds, ["case.opened", "case.tier_escalated", "case.fallback_applied"], "case {case}");
    }
    for s in rs {
        assert!(s.terminate(), "a replica stopped cleanly");
    }
    assert!(audit_verify(&db.url).starts_with("ok:"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drift_episode_opens_one_review_case_across_replicas() {
    use arbiter_tuning::soc::{DriftMode, Soc, SocConfig};
    let Some(db) = testing::fresh("drift") else { return };
    const HOUR: i64 = 3_600_000;
    // no monitor loop yet: the first evaluations are asked for, on every replica at once
    // 14 h of history replayed with its event times: replicas that take replays
    let rs = replicas(&db.url, 3, &["--drift-interval", "0s", "--event-time-skew", "off"]);
    let admin = rs[0].admin().to_string();
    let agent = rs[0].loader("soc-triage-agent").await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    // 14 h of history ending now; the last 2 h (the monitor's window) over-isolate
    let start = now - 14 * HOUR;
    let proposals = Soc::run(
        SocConfig {
            seed: 3,
            alerts_per_hour: 150.0,
            drift: DriftMode::OverIsolation,
            drift_at_ms: 12 * HOUR,
            ..Default::default()
        },
        14 * HOUR - 60_000,
    );
    let mut tasks = Vec::new();
    for (i, chunk) in proposals.chunks(proposals.len() / 6 + 1).enumerate() {
        let (http, url, agent) = (rs[i % 3].http.clone(), rs[i % 3].at("/v1/decisions"), agent.clone());
        let bodies: Vec<Value> = chunk
            .iter()
            .map(|p| json!({"action": p.action, "trace_id": p.trace_id, "event_time": arbiter_core::Timestamp(start + p.offset_ms)}))
            .collect();
        tasks.push(tokio::spawn(async move {
            for b in bodies {
                let r = http.post(&url).bearer_auth(&agent).json(&b).send().await.unwrap();
                assert_eq!(r.status(), 201);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // several evaluations on every replica
    let drift_reviews = || async {
        let cases: Value = rs[1]
            .http
            .get(rs[1].at("/v1/cases?kind=review&limit=100"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        cases.as_array().unwrap().iter().filter(|c| c["review"]["source"] == "drift_alarm").count()
    };
    let asks = (0..9).map(|i| {
        let (http, url, admin) = (rs[i % 3].http.clone(), rs[i % 3].at("/v1/drift"), admin.clone());
        tokio::spawn(async move {
            let status: Value = http.get(url).bearer_auth(admin).send().await.unwrap().json().await.unwrap();
            status
        })
    });
    let mut alarmed = 0;
    for a in asks {
        let status = a.await.unwrap();
        alarmed += usize::from(!status["report"]["alarms"].as_array().unwrap().is_empty());
    }
    assert_eq!(alarmed, 9, "every replica sees the drift");
    let reviews = drift_reviews().await;
    for s in rs {
        assert!(s.terminate());
    }
    let out = std::process::Command::new(bin()).args(["audit", "export", "--db", &db.url]).output().unwrap();
    let started =
        String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.contains("\"drift.episode.started\"")).count();
    assert!(started >= 1, "the drift starts an episode");
    assert_eq!(reviews, started, "one review case per episode, however many replicas evaluated it");
    audit_verify(&db.url);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_under_load_loses_nothing_it_acknowledged() {
    let Some(db) = testing::fresh("kill9") else { return };
    let mut rs: Vec<Option<Server>> = replicas(&db.url, 3, &[]).into_iter().map(Some).collect();
    let agent = rs[0].as_ref().unwrap().loader("soc-triage-agent").await;
    let urls: Vec<String> = rs.iter().map(|s| s.as_ref().unwrap().at("/v1/decisions")).collect();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // 12 clients, each sending to "its" replica first and, when that fails, retrying the
    // same request (same Idempotency-Key) on the next one
    let mut clients = Vec::new();
    for c in 0..12usize {
        let (http, urls, agent, stop) = (http.clone(), urls.clone(), agent.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            let mut acked: Vec<(String, String)> = Vec::new();
            let mut retried_elsewhere = 0;
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let idem = format!("c{c}-{n}");
                let body = if n % 5 == 0 { escalating_action() } else { allowed_action(&idem) };
                let mut attempt = 0;
                let d = loop {
                    let url = &urls[(c + attempt) % 3];
                    match http.post(url).bearer_auth(&agent).header("idempotency-key", &idem).json(&body).send().await {
                        Ok(r) if r.status().is_success() => break r.json::<Value>().await.unwrap(),
                        Ok(r) if r.status().is_server_error() => {}
                        Ok(r) => panic!("{}: {}", r.status(), r.text().await.unwrap()),
                        Err(_) => {}
                    }
                    attempt += 1;
                    retried_elsewhere += 1;
                    assert!(attempt < 30, "no replica answered {idem}");
                };
                acked.push((idem, d["id"].as_str().unwrap().to_string()));
                n += 1;
            }
            (acked, retried_elsewhere)
        }));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    rs[0].take().unwrap().kill9();
    let killed_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut acked = Vec::new();
    let mut retried = 0;
    for c in clients {
        let (a, r) = c.await.unwrap();
        acked.extend(a);
        retried += r;
    }
    assert!(killed_at.elapsed() >= Duration::from_secs(3));
    assert!(acked.len() > 100, "the load ran: {} decisions", acked.len());
    assert!(retried > 0, "requests meant for the killed replica were retried on the others");
    // Every acknowledged decision is there, under its key, with the id the client was given.
    let s = rs[1].as_ref().unwrap();
    for (idem, id) in &acked {
        let r = s.http.get(s.at(&format!("/v1/decisions/{id}"))).bearer_auth(&agent).send().await.unwrap();
        assert_eq!(r.status(), 200, "acknowledged decision {id} ({idem}) is missing");
        let d: Value = r.json().await.unwrap();
        assert_eq!(d["idempotency_key"], idem.as_str());
    }
    for s in rs.into_iter().flatten() {
        assert!(s.terminate());
    }
    let report = audit_verify(&db.url);
    assert!(report.starts_with("ok:"), "{report}");
}

#[test]
fn migrate_copies_the_demo_store_with_the_same_chain_head() {
    let Some(db) = testing::fresh("migrate") else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    let out = std::process::Command::new(bin())
        .args([
            "demo",
            "--exit",
            "--listen",
            "127.0.0.1:0",
            "--hours",
            "19",
            "--drift-at",
            "16",
            "--rate",
            "100",
            "--seed",
            "3",
            "--data-dir",
        ])
        .arg(&data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let sqlite = data.join("arbiter.db");
    let anchor = std::process::Command::new(bin()).args(["audit", "anchor", "--db"]).arg(&sqlite).output().unwrap();
    let head = String::from_utf8_lossy(&anchor.stdout).trim().to_string();
    assert!(head.contains(':'), "{head}");
    let out = std::process::Command::new(bin())
        .args(["migrate", "--from"])
        .arg(&sqlite)
        .args(["--to", &db.url])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains(&format!("chain head {head} on both sides")), "{text}");
    let verified = audit_verify(&db.url);
    assert!(verified.contains(&head), "{verified}");
    // a second copy into the same (now full) database is refused, changing nothing
    let again = std::process::Command::new(bin())
        .args(["migrate", "--from"])
        .arg(&sqlite)
        .args(["--to", &db.url])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds an Arbiter store"));
    assert!(audit_verify(&db.url).contains(&head));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_cannot_reach_the_database_is_not_ready() {
    let Some(db) = testing::fresh("readyz") else { return };
    let s = Server::start(Path::new(&db.url), &[]);
    let ready = |s: &Server| {
        let (http, url) = (s.http.clone(), s.at("/readyz"));
        async move { http.get(url).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(ready(&s).await, 200);
    // the database goes away (its connections are cut)
    db.drop_now();
    let started = Instant::now();
    while ready(&s).await != 503 {
        assert!(started.elapsed() < Duration::from_secs(10), "/readyz still says ready without a database");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // and the process keeps answering what it can
    assert_eq!(s.http.get(s.at("/healthz")).send().await.unwrap().status(), 200);
}

/// Policy activation, key revocation and signing out, done through one
/// replica, take effect on the others within the bounds docs/operations.md
/// states (5 s for policies and keys, at once for console sessions).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_keys_and_sessions_reach_every_replica() {
    let Some(db) = testing::fresh("settings") else { return };
    let rs = replicas(&db.url, 2, &[]);
    let (a, b) = (&rs[0], &rs[1]);
    let agent = a.key("soc-triage-agent", "agent", &[]).await;
    let doomed = a.key("doomed-agent", "agent", &[]).await;
    let reviewer = a.key("rita", "reviewer", &["soc_analyst"]).await;
    let verdict = |s: &Server, key: &str| {
        let (http, url, key) = (s.http.clone(), s.at("/v1/decisions"), key.to_string());
        async move {
            let r = http.post(url).bearer_auth(key).json(&allowed_action("a-1")).send().await.unwrap();
            if r.status() != 201 {
                return r.status().as_str().to_string();
            }
            r.json::<Value>().await.unwrap()["verdict"].as_str().unwrap().to_string()
        }
    };
    assert_eq!(verdict(b, &agent).await, "allow");
    assert_eq!(verdict(b, &doomed).await, "allow", "the key is cached on b now");

    // a console session made on a works on b (the signing secret is shared through the store)
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let login = http.post(a.at("/login")).form(&[("key", reviewer.as_str()), ("next", "/queue")]).send().await.unwrap();
    let cookie = login.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let page = |s: &Server| {
        let (http, url, cookie) = (http.clone(), s.at("/queue"), cookie.clone());
        async move { http.get(url).header("cookie", cookie).send().await.unwrap() }
    };
    assert_eq!(page(b).await.status(), 200, "a session from replica a is valid on b");

    // a new policy activated on a that denies closing alerts; the key revoked on a; signing out on a
    let deny_closes = format!(
        "{}  - name: no_closing\n    actions: [close_alert]\n    when: 'true'\n    verdict: deny\n",
        std::fs::read_to_string(crate::support::soc_policy()).unwrap()
    );
    let r = a
        .http
        .put(a.at("/v1/policy?force=true"))
        .bearer_auth(a.admin())
        .header("content-type", "application/yaml")
        .body(deny_closes)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let keys: Value = a.http.get(a.at("/v1/keys")).bearer_auth(a.admin()).send().await.unwrap().json().await.unwrap();
    let doomed_id = keys.as_array().unwrap().iter().find(|k| k["name"] == "doomed-agent").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = a.http.delete(a.at(&format!("/v1/keys/{doomed_id}"))).bearer_auth(a.admin()).send().await.unwrap();
    assert!(r.status().is_success());
    let queue = page(a).await.text().await.unwrap();
    let csrf = queue.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    let out =
        http.post(a.at("/logout")).header("cookie", &cookie).form(&[("csrf", csrf.as_str())]).send().await.unwrap();
    assert!(out.status().is_redirection());
    let changed = Instant::now();
    // signing out is at once, everywhere
    assert_ne!(page(b).await.status(), 200, "the ended session is refused on b at once");
    // the policy and the revocation within 5 s (plus a little for the request)
    let mut policy_seen = None;
    let mut key_refused = None;
    while policy_seen.is_none() || key_refused.is_none() {
        let elapsed = changed.elapsed();
        assert!(
            elapsed < Duration::from_secs(8),
            "not on b after {elapsed:?}: policy {policy_seen:?}, key {key_refused:?}"
        );
        if policy_seen.is_none() && verdict(b, &agent).await == "deny" {
            policy_seen = Some(elapsed);
        }
        if key_refused.is_none() && verdict(b, &doomed).await == "401" {
            key_refused = Some(elapsed);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(policy_seen.unwrap() <= Duration::from_millis(5_500), "{policy_seen:?}");
    assert!(key_refused.unwrap() <= Duration::from_millis(5_500), "{key_refused:?}");
}

/// A plain HTTP receiver on 127.0.0.1: answers 200 to every POST and keeps
/// each request's `arbiter-delivery` header.
async fn receiver() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else { return };
            let kept = kept.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    // one request per connection at a time: headers, then Content-Length bytes
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .map_or(0, |v| v.trim().parse().unwrap());
                    while buf.len() < end + 4 + len {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    if let Some(id) = head.lines().find_map(|l| l.strip_prefix("arbiter-delivery:")) {
                        kept.lock().unwrap().push(id.trim().to_string());
                    }
                    buf.drain(..end + 4 + len);
                    if sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, seen)
}

/// Three webhook workers on one outbox: every delivery is sent once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_webhook_workers_send_each_delivery_once() {
    let Some(db) = testing::fresh("webhooks") else { return };
    let rs = replicas(&db.url, 3, &["--webhook-interval-ms", "20", "--webhook-allow-private"]);
    let (url, seen) = receiver().await;
    let r = rs[0]
        .http
        .post(rs[0].at("/v1/webhooks"))
        .bearer_auth(rs[0].admin())
        .json(&json!({"url": url, "events": ["case.opened"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let agent = rs[0].loader("soc-triage-agent").await;
    let mut proposals = Vec::new();
    for i in 0..60usize {
        let s = &rs[i % 3];
        let (http, url, agent) = (s.http.clone(), s.at("/v1/decisions"), agent.clone());
        proposals.push(tokio::spawn(async move {
            http.post(url).bearer_auth(agent).json(&escalating_action()).send().await.unwrap().status().as_u16()
        }));
    }
    for p in proposals {
        assert_eq!(p.await.unwrap(), 201);
    }
    let started = Instant::now();
    while seen.lock().unwrap().len() < 60 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "only {} of 60 deliveries arrived",
            seen.lock().unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // give the three workers more rounds to send anything twice
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut ids = seen.lock().unwrap().clone();
    ids.sort();
    let n = ids.len();
    ids.dedup();
    assert_eq!((n, ids.len()), (60, 60), "each of the 60 deliveries sent exactly once");
}
