//! Arbiter's HTTP API. [`serve`] takes an already-bound listener and a
//! shutdown future, so tests bind port 0 and stop the server cleanly; the
//! background work (policy refresh across replicas) runs beside it and stops
//! with it.

pub mod app;
pub mod auth;
pub mod console;
pub mod drift;
mod error;
mod extract;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod outbound;
pub(crate) mod routes;
pub mod sweeper;
mod waiters;
pub mod webhooks;

pub use error::ApiError;

use arbiter_core::{Actor, CaseCommand, Clock, Limits, Principal, Role};
use arbiter_policy::Policy;
use arbiter_store::{CaseUpdate, PolicyVersion, Store};
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::watch;

/// The policy stored on first start.
pub const DEFAULT_POLICY: &str = include_str!("default-policy.yaml");

/// Tunables of the HTTP server.
#[derive(Debug, Clone)]
pub struct Config {
    /// Largest request body accepted, in bytes (413 above it).
    pub max_body_bytes: usize,
    /// Longest `?wait=` a long-poll may ask for.
    pub max_wait: Duration,
    /// How often a long-poll re-reads the store even without a wake-up
    /// (covers decisions finalised by another replica).
    pub recheck_interval: Duration,
    /// Shortest rationale a reviewer may give.
    pub min_rationale_len: usize,
    /// How long a verified key stays cached.
    pub key_cache_ttl: Duration,
    /// How often the active policy is re-read from the store.
    pub policy_refresh: Duration,
    /// Bounds on what agents send.
    pub limits: Limits,
    /// Default length of a reviewer's claim on a case.
    pub claim_lease: Duration,
    /// Longest claim a reviewer may ask for.
    pub max_claim_lease: Duration,
    /// How often the sweeper looks for expired leases and SLAs.
    pub sweep_interval: Duration,
    /// How often the webhook worker looks for due deliveries.
    pub webhook_interval: Duration,
    /// Attempts per webhook delivery before it is marked failed.
    pub webhook_max_attempts: u32,
    /// Timeout of one webhook request.
    pub webhook_timeout: Duration,
    /// Requests in flight at once to one webhook endpoint.
    pub webhook_concurrency: usize,
    /// Where webhooks may be sent (private networks are refused by default).
    pub outbound: outbound::OutboundPolicy,
    /// First retry delay of a failed delivery; each retry waits 3 times longer (at most an hour).
    pub webhook_retry_base: Duration,
    /// Drift detection windows and thresholds.
    pub drift: arbiter_core::drift::DriftConfig,
    /// How often drift is evaluated (0: never in the background).
    pub drift_interval: Duration,
    /// The URL people reach this server at (`https://...` makes the console cookie `Secure`).
    pub public_url: Option<String>,
    /// Proposals per key, by role, unless the key carries its own limit.
    pub rate_limits: RoleRates,
    /// Open approval cases one agent may have; past it, escalations get their fallback at once.
    pub max_open_cases_per_agent: Option<u64>,
    /// Activating a policy version that changes more than this share of the
    /// verdicts on recent history needs `force=true`.
    pub policy_guard: f64,
    /// How many recent decisions that check replays (0 turns it off).
    pub policy_guard_window: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_body_bytes: 1024 * 1024,
            max_wait: Duration::from_secs(60),
            recheck_interval: Duration::from_secs(5),
            min_rationale_len: 10,
            key_cache_ttl: Duration::from_secs(5),
            policy_refresh: Duration::from_secs(5),
            limits: Limits::default(),
            claim_lease: Duration::from_secs(10 * 60),
            max_claim_lease: Duration::from_secs(60 * 60),
            sweep_interval: Duration::from_secs(1),
            webhook_interval: Duration::from_millis(500),
            webhook_max_attempts: 8,
            webhook_timeout: Duration::from_secs(10),
            webhook_concurrency: 4,
            outbound: outbound::OutboundPolicy::default(),
            webhook_retry_base: Duration::from_secs(5),
            drift: arbiter_core::drift::DriftConfig::default(),
            drift_interval: Duration::from_secs(5 * 60),
            public_url: None,
            rate_limits: RoleRates::default(),
            max_open_cases_per_agent: Some(200),
            policy_guard: 0.2,
            policy_guard_window: 2000,
        }
    }
}

/// Default proposal rate limits by role (a key's own limit wins).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RoleRates {
    /// Agent keys.
    pub agent: arbiter_core::rate::RateLimit,
    /// Admin keys (admins may propose too).
    pub admin: arbiter_core::rate::RateLimit,
}

impl Default for RoleRates {
    fn default() -> Self {
        RoleRates {
            agent: arbiter_core::rate::RateLimit::Bucket { per_second: 50.0, burst: 200 },
            admin: arbiter_core::rate::RateLimit::Bucket { per_second: 50.0, burst: 200 },
        }
    }
}

/// A shared read of the active approval cases: (version, when, cases).
type CasesRead = (u64, std::time::Instant, Arc<Vec<arbiter_core::Case>>);

/// Everything a request handler can reach.
pub struct AppState {
    /// Persistence.
    pub store: Arc<dyn Store>,
    /// The active policy, compiled.
    policy: RwLock<Option<Arc<Policy>>>,
    /// Verified keys.
    pub keys: auth::KeyCache,
    /// Agents waiting on decisions.
    waiters: waiters::Waiters,
    /// Prometheus metrics.
    pub metrics: metrics::Metrics,
    /// Tunables.
    pub config: Config,
    /// The injected clock.
    pub clock: Arc<dyn Clock>,
    stopping: watch::Sender<bool>,
    /// The latest drift evaluation.
    drift_status: RwLock<Option<drift::DriftStatus>>,
    /// The console's session-signing secret, shared by all replicas through the store.
    console_secret: tokio::sync::OnceCell<Vec<u8>>,
    /// Bumped whenever this server changes an approval case.
    cases_version: std::sync::atomic::AtomicU64,
    /// Active approval cases as last read: (version, when, cases).
    active_cases: std::sync::Mutex<Option<CasesRead>>,
    /// Proposal rate limits.
    pub limiter: limits::RateLimiter,
    /// Rate-limit alarms, one per episode and key.
    rate_episodes: limits::Episodes,
    /// Case-cap alarms, one per episode and agent.
    cap_episodes: limits::Episodes,
    /// Stored policy versions compiled on demand (cases are checked against the version that opened them).
    versions: std::sync::Mutex<std::collections::HashMap<String, Arc<Policy>>>,
}

impl AppState {
    /// Build the state; loads the active policy from the store.
    pub async fn new(store: Arc<dyn Store>, config: Config, clock: Arc<dyn Clock>) -> Result<Arc<AppState>, ApiError> {
        let state = Arc::new(AppState {
            store,
            policy: RwLock::new(None),
            keys: auth::KeyCache::new(config.key_cache_ttl),
            waiters: waiters::Waiters::default(),
            metrics: metrics::Metrics::new(),
            config,
            clock,
            stopping: watch::channel(false).0,
            drift_status: RwLock::new(None),
            console_secret: tokio::sync::OnceCell::new(),
            cases_version: std::sync::atomic::AtomicU64::new(0),
            active_cases: std::sync::Mutex::new(None),
            versions: Default::default(),
            limiter: Default::default(),
            rate_episodes: Default::default(),
            cap_episodes: Default::default(),
        });
        state.refresh_policy().await?;
        Ok(state)
    }

    /// The active policy, if one is loaded.
    pub fn policy(&self) -> Option<Arc<Policy>> {
        self.policy.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The stored policy version `hash`, compiled (kept for the next call).
    pub async fn policy_version(&self, hash: &str) -> Result<Arc<Policy>, ApiError> {
        if let Some(p) = self.policy().filter(|p| p.hash() == hash) {
            return Ok(p);
        }
        if let Some(p) = self.versions.lock().unwrap_or_else(|e| e.into_inner()).get(hash) {
            return Ok(p.clone());
        }
        let v = self
            .store
            .policy_version(hash)
            .await?
            .ok_or_else(|| ApiError::Internal(format!("policy version {hash} is referenced but not stored")))?;
        let p = Arc::new(
            Policy::parse(&v.source)
                .map_err(|e| ApiError::Internal(format!("stored policy version {hash} no longer compiles: {e}")))?,
        );
        let mut cache = self.versions.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= 32 {
            cache.clear();
        }
        cache.insert(hash.to_string(), p.clone());
        Ok(p)
    }

    fn set_policy(&self, p: Arc<Policy>) {
        *self.policy.write().unwrap_or_else(|e| e.into_inner()) = Some(p);
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
            .map_err(|e| ApiError::Internal(format!("the active policy {} no longer compiles: {e}", v.hash)))?;
        tracing::info!(hash = %v.hash, name = %v.name, "activated policy");
        self.set_policy(Arc::new(p));
        Ok(())
    }

    /// Compile, store and activate a policy source. Returns the compiled policy
    /// and whether this version was new.
    pub async fn activate_source(&self, source: &str, by: &str) -> Result<(Arc<Policy>, bool), ApiError> {
        let p = Arc::new(Policy::parse(source).map_err(ApiError::InvalidPolicy)?);
        let existed = self.store.policy_version(p.hash()).await?.is_some();
        let now = self.clock.now();
        let v = PolicyVersion {
            hash: p.hash().to_string(),
            name: p.name().to_string(),
            source: source.to_string(),
            created_at: now,
            created_by: by.to_string(),
        };
        self.store.activate_policy(v, now, by).await?;
        self.set_policy(p.clone());
        Ok((p, !existed))
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
        }
        Ok(update)
    }

    /// Note that an approval case changed here (queue reads see it at once).
    pub fn cases_changed(&self) {
        self.cases_version.fetch_add(1, std::sync::atomic::Ordering::Release);
    }

    /// Every approval case still waiting for people, for queues. Reads are
    /// shared for up to a second unless this server changed a case meanwhile
    /// (changes made by other replicas show within that second).
    pub async fn active_approval_cases(&self) -> Result<Arc<Vec<arbiter_core::Case>>, ApiError> {
        let version = self.cases_version.load(std::sync::atomic::Ordering::Acquire);
        if let Some((v, at, cases)) = self.active_cases.lock().unwrap_or_else(|e| e.into_inner()).as_ref()
            && *v == version
            && at.elapsed() < Duration::from_secs(1)
        {
            return Ok(cases.clone());
        }
        let cases = Arc::new(self.store.active_approval_cases().await?);
        *self.active_cases.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((version, std::time::Instant::now(), cases.clone()));
        Ok(cases)
    }

    /// The secret that signs console sessions (created once per store).
    pub async fn console_secret(&self) -> Result<Vec<u8>, ApiError> {
        self.console_secret
            .get_or_try_init(|| async {
                let mut fresh = [0u8; 32];
                getrandom::fill(&mut fresh).map_err(|e| ApiError::Internal(format!("no randomness available: {e}")))?;
                let hex_secret = self.store.setting_or_insert("console_session_secret", &hex::encode(fresh)).await?;
                hex::decode(hex_secret)
                    .map_err(|e| ApiError::Internal(format!("the stored console secret is not hex: {e}")))
            })
            .await
            .cloned()
    }

    /// The latest drift evaluation, if one ran.
    pub fn drift_status(&self) -> Option<drift::DriftStatus> {
        self.drift_status.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether the server is shutting down (long-polls return early).
    fn stopping(&self) -> watch::Receiver<bool> {
        self.stopping.subscribe()
    }
}

/// The case actor for an authenticated caller.
pub fn actor(p: &Principal) -> Actor {
    Actor { name: p.name.clone(), key_id: p.key_id.clone(), tags: p.tags.clone(), is_admin: p.role == Role::Admin }
}

/// What first start created, to print once.
#[derive(Debug, Clone, Default)]
pub struct Bootstrap {
    /// The admin key, when no key existed yet.
    pub admin_key: Option<String>,
    /// The hash of the policy stored, when none was active.
    pub policy_hash: Option<String>,
}

/// Prepare an empty store: activate `policy_source` (or the default policy)
/// when none is active, and create an admin key when no key exists.
pub async fn bootstrap(state: &AppState, policy_source: Option<&str>) -> Result<Bootstrap, ApiError> {
    let mut out = Bootstrap::default();
    match policy_source {
        Some(src) if state.policy().is_some_and(|p| p.hash() == arbiter_policy::content_hash(src)) => {}
        Some(src) => {
            let (p, _) = state.activate_source(src, "bootstrap").await?;
            out.policy_hash = Some(p.hash().to_string());
        }
        None if state.policy().is_none() => {
            let (p, _) = state.activate_source(DEFAULT_POLICY, "bootstrap").await?;
            out.policy_hash = Some(p.hash().to_string());
        }
        None => {}
    }
    if state.store.keys().await?.is_empty() {
        let key = auth::generate_key("admin", Role::Admin, Default::default(), state.clock.now())?;
        state.store.create_key(key.record).await?;
        out.admin_key = Some(key.secret);
    }
    Ok(out)
}

/// The router with every route, for embedding or tests.
pub fn router(state: Arc<AppState>) -> axum::Router {
    routes::router(state)
}

/// Serve the API on `listener` until `shutdown` resolves; then stop accepting,
/// release long-polls, finish in-flight requests, and stop background work.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state.clone());
    let bg = tokio::spawn(background(state.clone()));
    let st = state.clone();
    let graceful = async move {
        shutdown.await;
        let _ = st.stopping.send(true);
    };
    let result = axum::serve(listener, app).with_graceful_shutdown(graceful).await;
    let _ = state.stopping.send(true);
    let _ = bg.await;
    result
}

/// Background work beside the API: policy refresh, the SLA sweeper and the
/// webhook worker. Each loop stops when the server stops.
async fn background(state: Arc<AppState>) {
    let refresh = every(state.clone(), state.config.policy_refresh, |s| async move {
        if let Err(e) = s.refresh_policy().await {
            tracing::warn!(error = %e, "could not refresh the active policy");
        }
    });
    let sweep = every(state.clone(), state.config.sweep_interval, |s| async move {
        if let Err(e) = sweeper::sweep_once(&s).await {
            tracing::warn!(error = %e, "the SLA sweep failed; retrying");
        }
    });
    let client = webhooks::client(state.config.webhook_timeout, Arc::new(state.config.outbound.clone()));
    let deliver = webhooks::run(state.clone(), client);
    let drift_every = if state.config.drift_interval.is_zero() {
        Duration::from_secs(100 * 365 * 24 * 3600)
    } else {
        state.config.drift_interval
    };
    let monitor = every(state.clone(), drift_every, |s| async move {
        if let Err(e) = drift::run_once(&s).await {
            tracing::warn!(error = %e, "drift evaluation failed; retrying");
        }
    });
    tokio::join!(refresh, sweep, deliver, monitor);
}

async fn every<F, Fut>(state: Arc<AppState>, period: Duration, mut f: F)
where
    F: FnMut(Arc<AppState>) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut stop = state.stopping();
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(period) => f(state.clone()).await,
        }
    }
}
