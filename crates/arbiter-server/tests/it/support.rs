use arbiter_core::{ManualClock, Timestamp};
use arbiter_server::{AppState, Config};
use arbiter_store::SqliteStore;
use reqwest::Client;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

pub const POLICY: &str = r#"
version: 1
policy: test
defaults:
  reviewers: [soc_analyst]
  sla: 15m
  fallback: deny
  tiers:
    - reviewers: [soc_lead]
      sla: 10m
actions:
  close_alert:
    auto_allow_at: 0.9
  isolate_host:
    severity: high
triggers:
  - name: crown_jewel
    actions: [isolate_host]
    when: '"crown_jewel" in args.host_tags'
    verdict: escalate
    severity: critical
    approvals: 2
"#;

pub struct TestServer {
    pub url: String,
    pub state: Arc<AppState>,
    pub clock: Arc<ManualClock>,
    pub http: Client,
    pub admin: String,
    _server: arbiter_server::RunningServer,
    pub dir: tempfile::TempDir,
    /// The PostgreSQL database a server on PostgreSQL runs on (dropped with it).
    _db: Option<arbiter_store_postgres::testing::TestDatabase>,
}

/// The SOC example policy.
pub const SOC_POLICY: &str = include_str!("../../../../examples/policies/soc.yaml");

impl TestServer {
    pub async fn start() -> TestServer {
        TestServer::with(POLICY, |_| {}).await
    }

    /// A server on `policy`, with the test configuration changed by `tweak`.
    pub async fn with(policy: &str, tweak: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(dir.path().join("arbiter.db")).unwrap());
        TestServer::on(store, None, dir, policy, tweak).await
    }

    /// A server on a fresh PostgreSQL database (`None`, the test skipped,
    /// without `ARBITER_TEST_POSTGRES_URL`; required with `ARBITER_REQUIRE_POSTGRES=1`).
    pub async fn on_postgres(test: &str) -> Option<TestServer> {
        let db = arbiter_store_postgres::testing::fresh(test)?;
        let store = Arc::new(arbiter_store_postgres::PostgresStore::connect(&db.url).await.unwrap());
        Some(TestServer::on(store, Some(db), tempfile::tempdir().unwrap(), POLICY, |_| {}).await)
    }

    async fn on(
        store: Arc<dyn arbiter_store::Store>,
        db: Option<arbiter_store_postgres::testing::TestDatabase>,
        dir: tempfile::TempDir,
        policy: &str,
        tweak: impl FnOnce(&mut Config),
    ) -> TestServer {
        let clock = Arc::new(ManualClock::new(Timestamp(1_800_000_000_000)));
        let mut config = Config {
            // Background loops stay quiet; tests call the sweeper and the webhook worker themselves.
            sweep_interval: Duration::from_secs(3600),
            webhook_interval: Duration::from_secs(3600),
            webhook_retry_base: Duration::from_secs(1),
            webhook_max_attempts: 3,
            ..Config::default()
        };
        tweak(&mut config);
        let state = AppState::new(store, config, clock.clone()).await.unwrap();
        let boot = arbiter_server::bootstrap(&state, Some(policy)).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = arbiter_server::RunningServer::start(state.clone(), listener).unwrap();
        let url = server.url().to_string();
        TestServer {
            url,
            state,
            clock,
            http: Client::new(),
            admin: boot.admin_key.unwrap(),
            _server: server,
            dir,
            _db: db,
        }
    }

    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    pub async fn key(&self, name: &str, role: &str, tags: &[&str]) -> String {
        self.key_by(&self.admin, None, name, role, tags).await
    }

    /// A key created by `admin`, in `project` (the `Arbiter-Project` header) or the admin's own.
    pub async fn key_by(&self, admin: &str, project: Option<&str>, name: &str, role: &str, tags: &[&str]) -> String {
        let mut req = self.http.post(self.at("/v1/keys")).bearer_auth(admin);
        if let Some(p) = project {
            req = req.header("arbiter-project", p);
        }
        let r: Value =
            req.json(&json!({"name": name, "role": role, "tags": tags})).send().await.unwrap().json().await.unwrap();
        if let Some(p) = project {
            assert_eq!(r["project"], p, "{r}");
        }
        r["key"].as_str().unwrap().to_string()
    }

    /// An agent key without a rate limit, for tests that propose in bulk on the manual clock
    /// (where a token bucket never refills).
    pub async fn loader(&self, name: &str) -> String {
        let r: Value = self
            .http
            .post(self.at("/v1/keys"))
            .bearer_auth(&self.admin)
            .json(&json!({"name": name, "role": "agent", "rate_limit": "unlimited"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        r["key"].as_str().unwrap().to_string()
    }

    pub async fn post(&self, key: &str, path: &str, body: Value) -> (u16, Value) {
        let r = self.http.post(self.at(path)).bearer_auth(key).json(&body).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn patch(&self, key: &str, path: &str, body: Value) -> (u16, Value) {
        let r = self.http.patch(self.at(path)).bearer_auth(key).json(&body).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Any method, with a JSON body when one is given.
    pub async fn call(&self, key: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut r = self.http.request(method, self.at(path)).bearer_auth(key);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Send an OTLP/JSON trace export with `key`.
    pub async fn post_traces(&self, key: &str, export: Value) -> (u16, Value) {
        self.post(key, "/v1/traces", export).await
    }

    pub async fn get(&self, key: &str, path: &str) -> (u16, Value) {
        let r = self.http.get(self.at(path)).bearer_auth(key).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Propose an action; returns (decision id, case id).
    pub async fn escalate(&self, agent: &str, action: Value) -> (String, String) {
        let (status, d) = self.post(agent, "/v1/decisions", json!({"action": action, "trace_id": "t-1"})).await;
        assert_eq!(status, 201, "{d}");
        assert_eq!(d["verdict"], "escalate", "{d}");
        (d["id"].as_str().unwrap().into(), d["case_id"].as_str().unwrap().into())
    }

    /// Requests long-polling right now (the `arbiter_waiting_agents` gauge).
    pub fn waiting_agents(&self) -> f64 {
        self.state
            .metrics
            .render()
            .lines()
            .find(|l| l.starts_with("arbiter_waiting_agents "))
            .map_or(0.0, |l| l.split_whitespace().nth(1).unwrap().parse::<f64>().unwrap())
    }

    /// Wait (at most a minute) until `n` agents are parked on a long-poll, so a
    /// test proves that they were waiting, not that they arrived late.
    pub async fn until_waiting(&self, n: usize) {
        let started = std::time::Instant::now();
        while self.waiting_agents() < n as f64 {
            assert!(started.elapsed() < Duration::from_secs(60), "{n} waiter(s) never arrived");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Long-poll a decision for `wait_secs` in the background; yields when it returned and what it got.
    pub fn poll(
        &self,
        key: &str,
        decision: &str,
        wait_secs: u64,
    ) -> tokio::task::JoinHandle<(std::time::Instant, Value)> {
        let (http, url, key) =
            (self.http.clone(), self.at(&format!("/v1/decisions/{decision}?wait={wait_secs}s")), key.to_string());
        tokio::spawn(async move {
            let v: Value = http.get(url).bearer_auth(key).send().await.unwrap().json().await.unwrap();
            (std::time::Instant::now(), v)
        })
    }

    pub fn advance(&self, d: Duration) {
        self.clock.advance_millis(d.as_millis() as i64);
    }
}

pub fn isolate(host: &str, tags: &[&str], confidence: f64) -> Value {
    json!({"name": "isolate_host", "confidence": confidence, "args": {"host": host, "host_tags": tags}})
}
