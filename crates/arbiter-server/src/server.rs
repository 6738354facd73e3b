//! Starting and stopping: first-start bootstrap, the router, and [`serve`],
//! which takes an already-bound listener and a shutdown future (tests bind
//! port 0 and stop it cleanly) and runs the background jobs beside the API.

use crate::{ApiError, AppState, jobs, routes};
use arbiter_core::Role;
use std::future::Future;
use std::sync::Arc;

/// The policy stored on first start.
pub const DEFAULT_POLICY: &str = include_str!("default-policy.yaml");

/// What first start created, to print once.
#[derive(Debug, Clone, Default)]
pub struct Bootstrap {
    /// The admin key, when no key existed yet.
    pub admin_key: Option<String>,
    /// The hash of the policy stored, when none was active.
    pub policy_hash: Option<String>,
}

/// Prepare an empty store: activate `policy_source` (or the default policy
/// when none is active), and create an admin key when no key exists. The
/// store does both in one write, so replicas starting together on one empty
/// database bootstrap once: one admin key, one `policy.activated`.
pub async fn bootstrap(state: &AppState, policy_source: Option<&str>) -> Result<Bootstrap, ApiError> {
    let wanted = match policy_source {
        Some(src) if state.policy().is_some_and(|p| p.hash() == arbiter_policy::content_hash(src)) => None,
        Some(src) => Some((src, false)),
        None if state.policy().is_none() => Some((DEFAULT_POLICY, true)),
        None => None,
    };
    let now = state.clock.now();
    let policy = match wanted {
        Some((src, only_if_none)) => {
            let p = arbiter_policy::Policy::parse(src).map_err(ApiError::InvalidPolicy)?;
            Some((crate::app::policy::version_of(&p, src, "bootstrap", now), only_if_none))
        }
        None => None,
    };
    let admin = crate::app::keys::generate_key("admin", Role::Admin, Default::default(), now)?;
    let start = arbiter_store::FirstStart {
        policy_only_if_none: policy.as_ref().is_some_and(|(_, o)| *o),
        policy: policy.as_ref().map(|(v, _)| v.clone()),
        admin: Some(admin.record),
        by: "bootstrap".into(),
    };
    let done = state.store.first_start(start, now).await?;
    // whoever activated it, this replica serves the active version
    state.refresh_policy().await?;
    Ok(Bootstrap {
        admin_key: done.admin_created.then_some(admin.secret),
        policy_hash: policy.filter(|_| done.policy_activated).map(|(v, _)| v.hash),
    })
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
    let bg = tokio::spawn(jobs::run(state.clone()));
    let st = state.clone();
    let graceful = async move {
        shutdown.await;
        st.stop();
    };
    let result = axum::serve(crate::listener::ApiListener(listener), app).with_graceful_shutdown(graceful).await;
    state.stop();
    let _ = bg.await;
    result
}

/// Serve only `POST /v1/traces` on `listener` until `shutdown` resolves: the
/// separate OTLP/HTTP listener (4318 by convention) that an OpenTelemetry
/// Collector or SDK exporter can point at unchanged. Background work runs
/// with the main [`serve`], not here.
pub async fn serve_otlp(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, routes::traces::otlp_router(state)).with_graceful_shutdown(shutdown).await
}

/// A server running on a tokio task of this process: how the demo, the load
/// generators and the tests start one. Dropping it stops it without waiting;
/// [`RunningServer::stop`] waits for in-flight requests.
pub struct RunningServer {
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl RunningServer {
    /// Serve `state` on `listener` (bind port 0 for a free port).
    pub fn start(state: Arc<AppState>, listener: tokio::net::TcpListener) -> std::io::Result<RunningServer> {
        let url = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, state, async {
            let _ = stopped.await;
        }));
        Ok(RunningServer { url, stop: Some(stop), task: Some(task) })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Stop accepting, let in-flight requests finish, stop background work.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.map_err(std::io::Error::other)?,
            None => Ok(()),
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
