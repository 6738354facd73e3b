//! Arbiter's MCP gateway.
//!
//! Sits between an MCP client (a desktop app, an IDE agent, an agent
//! framework's MCP adapter) and the MCP servers it uses. The client sees the
//! upstream servers' tools, namespaced by upstream (`fs.write_file`); every
//! `tools/call` becomes a decision of Arbiter's policy:
//!
//! - **allow**: the gateway verifies the decision's signed receipt against
//!   the arguments it is about to forward, records the receipt's single use
//!   (`POST /v1/decisions/{id}/consume`), forwards the call, returns the
//!   upstream's result and records it on the decision;
//! - **deny**: a tool result with `isError: true` saying why, never a
//!   protocol error, so the model can change course;
//! - **escalate**: the call waits for the final verdict, with progress
//!   notifications; the client's cancellation withdraws the case; an
//!   approval runs the (possibly modified) arguments; an SLA fallback answers
//!   with its reason.
//!
//! The gateway holds no state of its own: decisions, cases, receipts and
//! their use live in Arbiter, so a restarted gateway loses nothing but the
//! connections.
//!
//! [`call`] is the pure part (what a call becomes, what a refusal says);
//! [`upstream`] reaches the servers; [`gateway`] ties them together.

pub mod call;
mod error;
pub mod gateway;
pub mod sessions;
pub mod upstream;

pub use call::Transport;
pub use error::GatewayError;
pub use gateway::{Gateway, GatewayConfig, Session};
pub use upstream::{Target, UpstreamSpec};

use rmcp::ServiceExt;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use std::future::Future;
use std::sync::Arc;

/// How long a stopping gateway waits for its calls to finish (withdrawing
/// the cases of calls whose client left).
const DRAIN: std::time::Duration = std::time::Duration::from_secs(10);

/// Serve one MCP client on the process's stdin and stdout until it hangs up.
pub async fn serve_stdio(gateway: Arc<Gateway>) -> Result<(), GatewayError> {
    let session = gateway.session(Transport::Stdio);
    let running =
        session.serve(rmcp::transport::stdio()).await.map_err(|e| GatewayError::ClientHandshake(Box::new(e)))?;
    let reason = running.waiting().await.map_err(GatewayError::Session)?;
    tracing::info!(?reason, "the MCP client hung up");
    gateway.drain(DRAIN).await;
    Ok(())
}

/// Serve MCP clients over streamable HTTP at `/mcp` on a bound listener,
/// until `shutdown` completes. `allowed_hosts` are the `Host` names accepted
/// besides loopback ones (DNS-rebinding protection).
pub async fn serve_http(
    gateway: Arc<Gateway>,
    listener: tokio::net::TcpListener,
    allowed_hosts: Vec<String>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), GatewayError> {
    let ct = tokio_util::sync::CancellationToken::new();
    let mut hosts: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    hosts.extend(allowed_hosts);
    // Browsers send `Origin`: only pages served from the allowed hosts may
    // call the gateway (the MCP transport's DNS-rebinding rule); clients that
    // send none (SDKs, CLIs) are unaffected.
    let origins: Vec<String> = hosts
        .iter()
        .flat_map(|h| {
            let h = if h.contains(':') && !h.starts_with('[') && h.parse::<std::net::Ipv6Addr>().is_ok() {
                format!("[{h}]")
            } else {
                h.clone()
            };
            let with_port = h.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) && !h.ends_with(']');
            let port = if with_port { "" } else { ":*" };
            [format!("http://{h}{port}"), format!("https://{h}{port}")]
        })
        .collect();
    let mut config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(hosts)
        .with_allowed_origins(origins)
        .enforce_origin_validation();
    config.cancellation_token = ct.clone();
    let sessions = gateway.clone();
    let live = Arc::new(LocalSessionManager::default());
    let service = StreamableHttpService::new(move || Ok(sessions.session(Transport::Http)), live.clone(), config);
    // each session belongs to the key that opened it
    let owners = sessions::SessionOwners::new(gateway.arbiter().clone(), live);
    let app = axum::Router::new()
        .nest_service("/mcp", service)
        .layer(axum::middleware::from_fn_with_state(owners, sessions::guard));
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            ct.cancel();
        })
        .await
        .map_err(GatewayError::Http)?;
    gateway.drain(DRAIN).await;
    Ok(())
}
