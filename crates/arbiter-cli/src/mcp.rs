//! `arbiter mcp`: the MCP gateway (see docs/mcp.md).

use anyhow::{Context, Result, bail};
use arbiter_mcp::{Gateway, GatewayConfig, UpstreamSpec};
use clap::{Args, ValueEnum};
use std::process::ExitCode;
use std::time::Duration;

/// Whether allowed calls need a verified receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReceiptMode {
    /// Forward only calls whose signed receipt verifies against the arguments, and record its single use.
    Required,
    /// Trust Arbiter's allow without a receipt (for a server run with `--receipts off`).
    Off,
}

/// Arguments of `arbiter mcp`.
#[derive(Debug, Args)]
pub struct McpArgs {
    /// Arbiter server.
    #[arg(long, env = "ARBITER_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// The agent key the gateway proposes with. Over HTTP, a client that sends
    /// `Authorization: Bearer <its own agent key>` proposes as itself instead.
    #[arg(long, env = "ARBITER_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// An MCP server to start and speak to over stdio: `NAME=COMMAND` (run by `sh -c`), e.g.
    /// `fs=npx -y @modelcontextprotocol/server-filesystem /srv`; its tools become `NAME.tool`.
    /// Without `NAME=`, the name is derived from the command. Repeatable.
    #[arg(long = "upstream-cmd", value_name = "NAME=COMMAND")]
    pub upstream_cmd: Vec<String>,
    /// An MCP server reached over streamable HTTP: `NAME=URL`. Repeatable.
    #[arg(long = "upstream-url", value_name = "NAME=URL")]
    pub upstream_url: Vec<String>,
    /// Serve MCP clients over streamable HTTP at `http://ADDR/mcp` instead of on stdin/stdout.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// A `Host` name HTTP clients may use besides localhost (DNS-rebinding protection). Repeatable.
    #[arg(long = "allowed-host", value_name = "HOST")]
    pub allowed_hosts: Vec<String>,
    /// The gateway's name, recorded as the consumer of each receipt it uses. Keep it
    /// stable across restarts so a retried consumption is recognised.
    #[arg(long, env = "ARBITER_MCP_NAME")]
    pub name: Option<String>,
    /// Whether allowed calls need a verified receipt.
    #[arg(long, value_enum, default_value_t = ReceiptMode::Required)]
    pub receipts: ReceiptMode,
    /// Leave out of `tools/list` the tools the active policy denies whatever the call.
    #[arg(long)]
    pub hide_denied: bool,
    /// While a call waits for a reviewer, send the client a progress notification this often (seconds).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub progress_every: u64,
}

/// Run the gateway until the client hangs up (stdio) or a signal (HTTP).
pub fn run(args: McpArgs) -> Result<ExitCode> {
    // rmcp logs every message at info; the gateway's own lines are what an operator reads.
    crate::process::logging("info,rmcp=warn");
    let mut specs = Vec::new();
    for raw in &args.upstream_cmd {
        specs.push(UpstreamSpec::parse(raw, false)?);
    }
    for raw in &args.upstream_url {
        specs.push(UpstreamSpec::parse(raw, true)?);
    }
    let key = match (&args.key, &args.listen) {
        (Some(k), _) => k.clone(),
        (None, Some(_)) => String::new(),
        (None, None) => bail!(
            "no agent key: pass --key or set ARBITER_KEY (create one with `arbiter keys create --role agent --name <agent>`)"
        ),
    };
    let name = args.name.clone().unwrap_or_else(default_name);
    let config = GatewayConfig {
        name,
        require_receipts: args.receipts == ReceiptMode::Required,
        hide_denied: args.hide_denied,
        poll: Duration::from_secs(args.progress_every),
    };
    let url = arbiter_client::check_base_url(&args.url).map_err(|why| anyhow::anyhow!("--url {why}"))?;
    crate::process::runtime()?.block_on(async move {
        let http = reqwest::Client::builder().build().context("cannot build the HTTP client")?;
        let arbiter = arbiter_client::Client::new(http, &url, key);
        let gateway = Gateway::connect(&specs, arbiter, config).await?;
        match &args.listen {
            None => arbiter_mcp::serve_stdio(gateway.clone()).await?,
            Some(addr) => {
                let listener =
                    tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
                let local = listener.local_addr()?;
                // The address on stdout (port 0 picks one), like `serve`'s.
                println!("listening on http://{local}/mcp");
                println!("ready");
                arbiter_mcp::serve_http(
                    gateway.clone(),
                    listener,
                    args.allowed_hosts.clone(),
                    crate::serve::shutdown_signal(),
                )
                .await?;
            }
        }
        gateway.close().await;
        Ok(ExitCode::SUCCESS)
    })
}

/// `mcp-gateway@<host name>`.
fn default_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("mcp-gateway@{host}")
}
