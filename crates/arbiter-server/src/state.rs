//! Everything a request handler can reach: the project's store handle and
//! active policy, and server-wide the key cache, waiters, metrics, the clock,
//! and the limits on runaway agents.

use crate::{ApiError, Config, auth, limits, metrics, waiters};
use arbiter_core::{Actor, CaseCommand, Clock, Decision, Principal, ProjectId, Role};
use arbiter_policy::Policy;
use arbiter_store::{CaseUpdate, Store};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::watch;

/// A shared read of the active approval cases: (version, when, cases).
type CasesRead = (u64, std::time::Instant, Arc<Vec<arbiter_core::Case>>);

/// What a request handler can reach, in one project: the project's store
/// handle and state (its active policy, its queue cache, its drift status),
/// and, through `Deref`, everything server-wide ([`Server`]). A handler gets
/// the caller's project ([`crate::extract::Scope`]); background jobs go
/// through every project ([`AppState::in_project`]).
pub struct AppState {
    server: Arc<Server>,
    /// Where this project's decisions, cases and audit chain are kept (a
    /// handle scoped to the project: it cannot read another project's rows).
    pub store: Arc<dyn Store>,
    project: Arc<ProjectState>,
}

impl std::ops::Deref for AppState {
    type Target = Server;
    fn deref(&self) -> &Server {
        &self.server
    }
}

/// Everything server-wide: keys, waiters, metrics, the settings, the clock,
/// limits, telemetry, receipts, and each project's state.
pub struct Server {
    /// The store, scoped to the default project (server-wide reads and writes go through it).
    pub root: Arc<dyn Store>,
    /// Verified keys.
    pub keys: auth::KeyCache,
    /// Agents waiting on decisions.
    pub(crate) waiters: waiters::Waiters,
    /// Prometheus metrics.
    pub metrics: metrics::Metrics,
    /// The server's settings (from flags, environment and the config file).
    pub config: Config,
    /// The injected clock.
    pub clock: Arc<dyn Clock>,
    stopping: watch::Sender<bool>,
    /// The console's session-signing secret, shared by all replicas through the store.
    console_secret: tokio::sync::OnceCell<Vec<u8>>,
    /// Proposal rate limits.
    pub limiter: limits::RateLimiter,
    /// Rate-limit alarms, one per episode and key.
    pub(crate) rate_episodes: limits::Episodes,
    /// Case-cap alarms, one per episode and agent.
    pub(crate) cap_episodes: limits::Episodes,
    /// Arbiter's own spans, queued for OTLP export (when an endpoint is set).
    pub telemetry: crate::telemetry::Telemetry,
    /// The keys receipts are signed with.
    pub receipts: crate::receipts::Receipts,
    /// The OpenID provider people sign in with, when single sign-on is on.
    pub sso: Option<arbiter_oidc::Provider>,
    /// The Slack connection, when Slack is on.
    pub slack: Option<crate::slack::Slack>,
    /// This server's name among replicas (holder of leases).
    pub instance: String,
    /// The manual clock's control (`--clock manual` only).
    pub(crate) clock_control: std::sync::OnceLock<ClockControl>,
    /// Each project's state, made on first use.
    projects: std::sync::Mutex<std::collections::HashMap<ProjectId, Arc<ProjectState>>>,
}

/// One project's state in this server.
pub struct ProjectState {
    id: ProjectId,
    /// The active policy, compiled.
    policy: RwLock<Option<Arc<Policy>>>,
    /// Stored policy versions compiled on demand (cases are checked against the version that opened them).
    versions: std::sync::Mutex<std::collections::HashMap<String, Arc<Policy>>>,
    /// Bumped whenever this server changes an approval case.
    cases_version: std::sync::atomic::AtomicU64,
    /// Active approval cases as last read: (version, when, cases).
    active_cases: std::sync::Mutex<Option<CasesRead>>,
    /// The latest drift evaluation.
    drift_status: RwLock<Option<arbiter_api::drift::DriftStatus>>,
}

impl ProjectState {
    fn new(id: ProjectId) -> ProjectState {
        ProjectState {
            id,
            policy: RwLock::new(None),
            versions: Default::default(),
            cases_version: std::sync::atomic::AtomicU64::new(0),
            active_cases: std::sync::Mutex::new(None),
            drift_status: RwLock::new(None),
        }
    }
}

impl AppState {
    /// Build the state of a server on `store` (its default project's handle);
    /// loads the default project's active policy.
    pub async fn new(store: Arc<dyn Store>, config: Config, clock: Arc<dyn Clock>) -> Result<Arc<AppState>, ApiError> {
        let config = config.validated().map_err(|e| ApiError::invalid(e.setting, e.message))?;
        let root = store.for_project(&ProjectId::default_project());
        let server = Arc::new(Server {
            root,
            keys: auth::KeyCache::new(config.key_cache_ttl),
            waiters: waiters::Waiters::default(),
            metrics: metrics::Metrics::new(),
            telemetry: crate::telemetry::Telemetry::new(config.otlp_endpoint.is_some()),
            receipts: Default::default(),
            sso: config.sso.as_ref().map(|sso| {
                let settings = arbiter_oidc::Settings {
                    issuer: sso.issuer.clone(),
                    client_id: sso.client_id.clone(),
                    client_secret: sso.client_secret.clone(),
                    redirect_uri: crate::SsoConfig::redirect_uri(config.public_url.as_deref().unwrap_or("")),
                    scopes: sso.scopes.clone(),
                    max_skew: sso.max_skew,
                };
                let http = reqwest::Client::builder()
                    .timeout(std::time::Duration::from_secs(10))
                    .redirect(reqwest::redirect::Policy::none())
                    .user_agent(concat!("arbiter/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .unwrap_or_default();
                arbiter_oidc::Provider::new(settings, http)
            }),
            slack: config.slack.as_ref().map(crate::slack::Slack::new),
            config,
            clock,
            stopping: watch::channel(false).0,
            console_secret: tokio::sync::OnceCell::new(),
            limiter: Default::default(),
            rate_episodes: Default::default(),
            cap_episodes: Default::default(),
            instance: format!("{}-{}", hostname(), uuid::Uuid::now_v7()),
            clock_control: std::sync::OnceLock::new(),
            projects: Default::default(),
        });
        let state = Arc::new(Server::scope(&server, &ProjectId::default_project()));
        state.refresh_policy().await?;
        state.receipts.load(&state).await?;
        crate::slack::start(&state).await?;
        Ok(state)
    }

    /// This project.
    pub fn project(&self) -> &ProjectId {
        &self.project.id
    }

    /// The state of project `id` in this server (its store handle and its
    /// own policy, loaded on first use). The project must exist.
    pub async fn in_project(&self, id: &ProjectId) -> Result<Arc<AppState>, ApiError> {
        if id == self.project() {
            return Ok(Arc::new(AppState {
                server: self.server.clone(),
                store: self.store.clone(),
                project: self.project.clone(),
            }));
        }
        let known = self.server.projects.lock().unwrap_or_else(|e| e.into_inner()).contains_key(id);
        if !known && !self.root.projects().await?.iter().any(|p| &p.id == id) {
            return Err(ApiError::NotFound(format!(
                "there is no project `{id}`; `arbiter projects list` shows them and a server admin creates one with \
                 `arbiter projects create`"
            )));
        }
        let state = Arc::new(Server::scope(&self.server, id));
        if state.policy().is_none() {
            state.refresh_policy().await?;
        }
        Ok(state)
    }

    /// The state of every project, by id (what background jobs go through).
    pub async fn all_projects(&self) -> Result<Vec<Arc<AppState>>, ApiError> {
        let mut out = Vec::new();
        for p in self.root.projects().await? {
            out.push(self.in_project(&p.id).await?);
        }
        Ok(out)
    }

    /// The active policy, if one is loaded.
    pub fn policy(&self) -> Option<Arc<Policy>> {
        self.project.policy.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The stored policy version `hash`, compiled (kept for the next call).
    pub async fn policy_version(&self, hash: &str) -> Result<Arc<Policy>, ApiError> {
        if let Some(p) = self.policy().filter(|p| p.hash() == hash) {
            return Ok(p);
        }
        if let Some(p) = self.project.versions.lock().unwrap_or_else(|e| e.into_inner()).get(hash) {
            return Ok(p.clone());
        }
        let v = self
            .store
            .policy_version(hash)
            .await?
            .ok_or_else(|| ApiError::internal_msg(format!("policy version {hash} is referenced but not stored")))?;
        let p = Arc::new(
            Policy::parse(&v.source)
                .map_err(|e| ApiError::internal(format!("stored policy version {hash} no longer compiles"), e))?,
        );
        let mut cache = self.project.versions.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= 32 {
            cache.clear();
        }
        cache.insert(hash.to_string(), p.clone());
        Ok(p)
    }

    /// Serve `p` from now on (after the store made it the active version).
    pub(crate) fn set_policy(&self, p: Arc<Policy>) {
        *self.project.policy.write().unwrap_or_else(|e| e.into_inner()) = Some(p);
    }

    /// Re-read the active policy from the store and compile it if it changed.
    pub async fn refresh_policy(&self) -> Result<(), ApiError> {
        let Some(v) = self.store.active_policy().await? else {
            return Ok(());
        };
        if self.policy().is_some_and(|p| p.hash() == v.hash) {
            return Ok(());
        }
        let p = Policy::parse(&v.source)
            .map_err(|e| ApiError::internal(format!("the active policy {} no longer compiles", v.hash), e))?;
        tracing::info!(project = %self.project(), hash = %v.hash, name = %v.name, "activated policy");
        self.set_policy(Arc::new(p));
        Ok(())
    }

    /// Run a command on a case; wakes agents waiting on its decision when the
    /// command made it final.
    pub async fn update_case(&self, id: &str, command: CaseCommand) -> Result<CaseUpdate, ApiError> {
        let update = self.store.update_case(id, command, self.clock.now()).await?;
        if !update.events.is_empty() {
            self.cases_changed();
        }
        if let Some(d) = &update.decision {
            self.waiters.wake(&d.id);
            self.telemetry.finalized(d);
        }
        Ok(update)
    }

    /// A decision as served: with its signed receipt once it is final.
    pub fn served(&self, d: Decision) -> Decision {
        if !self.config.receipts {
            return d;
        }
        self.receipts.attach(d, self.config.receipt_ttl.as_millis() as i64)
    }

    /// Note that an approval case changed here (queue reads see it at once).
    pub fn cases_changed(&self) {
        self.project.cases_version.fetch_add(1, std::sync::atomic::Ordering::Release);
    }

    /// Every approval case still waiting for people, for queues. Reads are
    /// shared for up to a second unless this server changed a case meanwhile
    /// (changes made by other replicas show within that second).
    pub async fn active_approval_cases(&self) -> Result<Arc<Vec<arbiter_core::Case>>, ApiError> {
        let version = self.project.cases_version.load(std::sync::atomic::Ordering::Acquire);
        if let Some((v, at, cases)) = self.project.active_cases.lock().unwrap_or_else(|e| e.into_inner()).as_ref()
            && *v == version
            && at.elapsed() < Duration::from_secs(1)
        {
            return Ok(cases.clone());
        }
        let cases = Arc::new(self.store.active_approval_cases().await?);
        *self.project.active_cases.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((version, std::time::Instant::now(), cases.clone()));
        Ok(cases)
    }

    /// The latest drift evaluation of this project, if one ran.
    pub fn drift_status(&self) -> Option<arbiter_api::drift::DriftStatus> {
        self.project.drift_status.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Keep `status` as this project's latest drift evaluation.
    pub(crate) fn set_drift_status(&self, status: arbiter_api::drift::DriftStatus) {
        *self.project.drift_status.write().unwrap_or_else(|e| e.into_inner()) = Some(status);
    }
}

impl Server {
    /// The state of project `id`: its store handle and its project state (made on first use).
    fn scope(server: &Arc<Server>, id: &ProjectId) -> AppState {
        let project = server
            .projects
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(id.clone())
            .or_insert_with(|| Arc::new(ProjectState::new(id.clone())))
            .clone();
        AppState { server: server.clone(), store: server.root.for_project(id), project }
    }

    /// The secret that signs console sessions (created once per store).
    pub async fn console_secret(&self) -> Result<Vec<u8>, ApiError> {
        self.console_secret
            .get_or_try_init(|| async {
                let mut fresh = [0u8; 32];
                getrandom::fill(&mut fresh).map_err(|e| ApiError::internal("no randomness available", e))?;
                let hex_secret = self.root.setting_or_insert("console_session_secret", &hex::encode(fresh)).await?;
                hex::decode(hex_secret).map_err(|e| ApiError::internal("the stored console secret is not hex", e))
            })
            .await
            .cloned()
    }

    /// Whether the server is shutting down (long-polls return early).
    pub(crate) fn stopping(&self) -> watch::Receiver<bool> {
        self.stopping.subscribe()
    }

    /// Tell long-polls and background jobs that the server is stopping.
    pub(crate) fn stop(&self) {
        let _ = self.stopping.send(true);
    }
}

/// This machine's name, for telling replicas apart in leases and logs.
fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "arbiter".into())
}

/// The case actor for an authenticated caller.
pub fn actor(p: &Principal) -> Actor {
    Actor { name: p.name.clone(), key_id: p.key_id.clone(), tags: p.tags.clone(), is_admin: p.role == Role::Admin }
}

/// The handle a server on a manual clock keeps to move it.
#[derive(Debug)]
pub struct ClockControl {
    pub(crate) clock: Arc<arbiter_core::ManualClock>,
    /// When the drift monitor runs next (clock time): a fixed schedule from the start.
    pub(crate) next_drift: std::sync::Mutex<arbiter_core::Timestamp>,
    /// One move at a time.
    pub(crate) moving: tokio::sync::Mutex<()>,
}

impl ClockControl {
    /// Control of `clock`, the drift monitor first due one `drift_interval` after its current time.
    pub fn new(clock: Arc<arbiter_core::ManualClock>, drift_interval: std::time::Duration) -> ClockControl {
        use arbiter_core::Clock;
        let first = clock.now().plus_millis(drift_interval.as_millis() as i64);
        ClockControl { clock, next_drift: std::sync::Mutex::new(first), moving: tokio::sync::Mutex::new(()) }
    }
}
