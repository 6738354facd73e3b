//! An Arbiter server inside this process, on a fresh store with the SOC
//! policy: what `arbiter demo` and `arbiter bench console` run against.

use crate::client::Client;
use anyhow::{Context, Result};
use arbiter_core::Clock;
use arbiter_server::{AppState, Config};
use arbiter_store::SqliteStore;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running in-process server.
pub struct Embedded {
    /// Its state, for the jobs a caller drives itself (sweeper, drift).
    pub state: Arc<AppState>,
    /// Its store.
    pub store: Arc<SqliteStore>,
    /// The admin key created on the fresh store.
    pub admin: Client,
    stop: oneshot::Sender<()>,
    server: JoinHandle<std::io::Result<()>>,
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
        let boot = arbiter_server::bootstrap(&state, Some(crate::SOC_POLICY)).await?;
        let admin_key = boot.admin_key.context("the store is not fresh: it already has keys")?;
        let url = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(arbiter_server::serve(listener, state.clone(), async {
            let _ = stopped.await;
        }));
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
        Ok(Embedded { state, store, admin: Client::new(http, &url, admin_key), stop, server })
    }

    /// The server's base URL.
    pub fn url(&self) -> &str {
        self.admin.url()
    }

    /// Stop serving, wait for in-flight requests, and close the store.
    pub async fn stop(self) -> Result<()> {
        let _ = self.stop.send(());
        self.server.await.context("the server task panicked")?.context("the server failed")?;
        self.store.close();
        Ok(())
    }
}
