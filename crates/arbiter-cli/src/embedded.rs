//! An Arbiter server inside this process, on a fresh store with the SOC
//! policy: what `arbiter demo` and `arbiter bench console` run against.

use crate::client::Client;
use anyhow::{Context, Result};
use arbiter_core::Clock;
use arbiter_server::{AppState, Config, RunningServer};
use arbiter_store::SqliteStore;
use std::sync::Arc;
use tokio::net::TcpListener;

/// A running in-process server.
pub struct Embedded {
    /// Its state, for the jobs a caller drives itself (sweeper, drift).
    pub state: Arc<AppState>,
    /// Its store.
    pub store: Arc<SqliteStore>,
    /// The admin key created on the fresh store.
    pub admin: Client,
    server: RunningServer,
}

impl Embedded {
    /// Bootstrap `store` with the SOC policy and an admin key, and serve it on `listener`.
    pub async fn start(
        store: Arc<SqliteStore>,
        config: Config,
        clock: Arc<dyn Clock>,
        listener: TcpListener,
    ) -> Result<Embedded> {
        let state = AppState::new(store.clone(), config, clock).await?;
        let boot = arbiter_server::bootstrap(&state, Some(arbiter_tuning::soc::POLICY)).await?;
        let admin_key = boot.admin_key.context("the store is not fresh: it already has keys")?;
        let server = RunningServer::start(state.clone(), listener)?;
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
        Ok(Embedded { state, store, admin: Client::new(http, server.url(), admin_key), server })
    }

    /// The server's base URL.
    pub fn url(&self) -> &str {
        self.admin.url()
    }

    /// Stop serving, wait for in-flight requests, and close the store.
    pub async fn stop(self) -> Result<()> {
        self.server.stop().await.context("the server failed")?;
        self.store.close();
        Ok(())
    }
}
