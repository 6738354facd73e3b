//! A real `arbiter serve` process on a temporary store.

use reqwest::{Client, Response};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Path of the binary under test.
/// A Python that can import `modules` (comma-separated, as in an `import`
/// statement): the venv named by `$venv_var` first, else `python3`.
pub fn python_with(venv_var: &str, modules: &str) -> Option<PathBuf> {
    let candidates: Vec<PathBuf> = std::env::var(venv_var)
        .ok()
        .map(|v| Path::new(&v).join("bin/python"))
        .into_iter()
        .chain(std::iter::once(PathBuf::from("python3")))
        .collect();
    candidates
        .into_iter()
        .find(|p| Command::new(p).args(["-c", &format!("import {modules}")]).output().is_ok_and(|o| o.status.success()))
}

/// A test whose tools are missing: a failure when `require_var` is `1` (CI
/// sets it), else a skip that is shown where people read the results. The
/// line goes straight to the terminal's stderr, past the test harness's
/// capture, so `cargo test` prints it even though the test passes.
pub fn skip(require_var: &str, why: &str) {
    assert!(std::env::var(require_var).is_err(), "{why} ({require_var} is set, so this is a failure)");
    let test = std::thread::current().name().unwrap_or("a test").to_string();
    let mut err = std::io::stderr().lock();
    let _ = std::io::Write::write_fmt(&mut err, format_args!("\nSKIPPED {test}: {why}\n"));
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_arbiter")
}

/// The SOC example policy.
pub fn soc_policy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/policies/soc.yaml")
}

/// A running server process; killed on drop.
pub struct Server {
    child: Child,
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    /// The admin key printed on first start (None on restarts).
    pub admin_key: Option<String>,
    /// `http://HOST:PORT/v1/traces` of the separate OTLP listener, when started with `--otlp-listen`.
    pub otlp_url: Option<String>,
    /// HTTP client.
    pub http: Client,
}

impl Server {
    /// Start `arbiter serve` on `db` with extra flags (and the SOC policy unless they name one).
    pub fn start(db: &Path, extra: &[&str]) -> Server {
        Server::start_env(db, extra, &[])
    }

    /// Like [`Server::start`], with extra environment variables. A server that
    /// does not print `ready` within 60 s fails the test instead of hanging it.
    pub fn start_env(db: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        Server::start_at(db, "127.0.0.1:0", extra, env)
    }

    /// Like [`Server::start_env`], listening on `listen` (to come back on the same port after a restart).
    pub fn start_at(db: &Path, listen: &str, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let mut child = Command::new(bin())
            .args(["serve", "--listen", listen, "--db"])
            .arg(db)
            .args(if extra.contains(&"--policy") { vec![] } else { vec!["--policy".into(), soc_policy()] })
            .args(extra)
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start arbiter serve");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let (mut url, mut admin_key, mut otlp) = (None, None, None);
            for line in lines.by_ref() {
                let line = line.unwrap();
                if let Some(u) = line.strip_prefix("otlp on ") {
                    otlp = Some(u.to_string());
                } else if let Some(u) = line.strip_prefix("listening on ") {
                    url = Some(u.to_string());
                } else if let Some(k) = line.strip_prefix("admin key: ") {
                    admin_key = Some(k.to_string());
                } else if line == "ready" {
                    let _ = tx.send((url.take(), admin_key.take(), otlp.take()));
                    break;
                }
            }
            for _ in lines {}
        });
        let Ok((url, admin_key, otlp_url)) = rx.recv_timeout(std::time::Duration::from_secs(60)) else {
            let _ = child.kill();
            panic!("`arbiter serve` did not print `ready` within 60 s (see its stderr above)");
        };
        Server { child, url: url.expect("server printed its address"), admin_key, otlp_url, http: Client::new() }
    }

    /// Ask the server to stop (SIGTERM) and wait for it to exit; returns whether it exited cleanly.
    pub fn terminate(mut self) -> bool {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
        let started = std::time::Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            assert!(started.elapsed() < std::time::Duration::from_secs(30), "the server did not stop on SIGTERM");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Kill the process without warning (SIGKILL).
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Full URL of `path`.
    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// The admin key (first start only).
    pub fn admin(&self) -> &str {
        self.admin_key.as_deref().expect("admin key on first start")
    }

    /// Create a key through the API; returns the secret.
    pub async fn key(&self, name: &str, role: &str, tags: &[&str]) -> String {
        self.key_with(json!({"name": name, "role": role, "tags": tags})).await
    }

    /// Create an agent key without a rate limit, for tests that load the server.
    pub async fn loader(&self, name: &str) -> String {
        self.key_with(json!({"name": name, "role": "agent", "rate_limit": "unlimited"})).await
    }

    /// Create a key from a full `POST /v1/keys` body; returns the secret.
    pub async fn key_with(&self, body: Value) -> String {
        let r = self.http.post(self.at("/v1/keys")).bearer_auth(self.admin()).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 201);
        r.json::<Value>().await.unwrap()["key"].as_str().unwrap().to_string()
    }

    /// Requests long-polling right now (the `arbiter_waiting_agents` gauge).
    pub async fn waiting_agents(&self) -> f64 {
        let text = self.http.get(self.at("/metrics")).send().await.unwrap().text().await.unwrap();
        text.lines()
            .find(|l| l.starts_with("arbiter_waiting_agents "))
            .map_or(0.0, |l| l.split_whitespace().nth(1).unwrap().parse().unwrap())
    }

    /// Wait (at most a minute) until `n` agents are parked on a long-poll, so a
    /// test proves that they were waiting, not that they arrived late.
    pub async fn until_waiting(&self, n: usize) {
        let started = std::time::Instant::now();
        while self.waiting_agents().await < n as f64 {
            assert!(started.elapsed() < std::time::Duration::from_secs(60), "{n} waiter(s) never arrived");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// POST a decision request with an optional idempotency key.
    pub async fn propose(&self, key: &str, body: &Value, idem: Option<&str>) -> Response {
        let mut req = self.http.post(self.at("/v1/decisions")).bearer_auth(key).json(body);
        if let Some(k) = idem {
            req = req.header("idempotency-key", k);
        }
        req.send().await.unwrap()
    }
}

impl Server {
    /// Start again on a store that already has keys (no admin key is printed).
    pub fn restart(db: &Path, extra: &[&str]) -> Server {
        Server::start(db, extra)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An escalating SOC action (isolating a server).
pub fn escalating_action() -> Value {
    json!({"action": {"name": "isolate_host", "confidence": 0.9,
        "args": {"host": "srv-db-01", "host_tags": ["server"], "business_unit": "finance"},
        "signals": {"alert_type": "malware", "alert_severity": "high"}}})
}

/// A routine SOC action that the policy allows.
pub fn allowed_action(alert: &str) -> Value {
    json!({"action": {"name": "close_alert", "confidence": 0.97,
        "args": {"alert_id": alert, "resolution": "benign"},
        "signals": {"alert_type": "benign_noise", "alert_severity": "low", "anomaly_score": 0.1}}})
}

/// Assert a problem+json response with the given status and error code; returns the body.
pub async fn assert_problem(r: Response, status: u16, code: &str) -> Value {
    assert_eq!(r.status().as_u16(), status, "status of {}", r.url());
    let ct = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    assert_eq!(ct, "application/problem+json");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["type"], format!("urn:arbiter:error:{code}"), "{body}");
    assert_eq!(body["status"], status);
    assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()), "{body}");
    body
}
