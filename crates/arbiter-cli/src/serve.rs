//! `arbiter serve`.

use anyhow::{Context, Result};
use arbiter_core::SystemClock;
use arbiter_server::{AppState, Config};
use arbiter_store::SqliteStore;
use clap::Args;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Options of `arbiter serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// SQLite database file; created with its schema if missing.
    #[arg(long, env = "ARBITER_DB", default_value = "./arbiter.db")]
    pub db: PathBuf,
    /// Address to listen on (port 0 picks a free port; the chosen address is printed).
    #[arg(long, env = "ARBITER_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Policy file to activate at start (stored as a new version if it changed).
    /// Without it, the active policy stays, or a default policy is stored on first start.
    #[arg(long, env = "ARBITER_POLICY")]
    pub policy: Option<PathBuf>,
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "ARBITER_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Longest long-poll (`?wait=`) a client may ask for, in seconds.
    #[arg(long, env = "ARBITER_MAX_WAIT_SECS", default_value_t = 60)]
    pub max_wait_secs: u64,
    /// Shortest rationale a reviewer may give, in characters.
    #[arg(long, env = "ARBITER_MIN_RATIONALE_LEN", default_value_t = 10)]
    pub min_rationale_len: usize,
    /// Default length of a reviewer's claim on a case, e.g. `10m`.
    #[arg(long, env = "ARBITER_CLAIM_LEASE", default_value = "10m")]
    pub claim_lease: arbiter_core::HumanDuration,
    /// How often the SLA sweeper runs, in milliseconds.
    #[arg(long, env = "ARBITER_SWEEP_INTERVAL_MS", default_value_t = 1000)]
    pub sweep_interval_ms: u64,
    /// How often due webhook deliveries are sent, in milliseconds.
    #[arg(long, env = "ARBITER_WEBHOOK_INTERVAL_MS", default_value_t = 500)]
    pub webhook_interval_ms: u64,
    /// Drift detection: length of the recent window.
    #[arg(long, env = "ARBITER_DRIFT_WINDOW", default_value = "2h")]
    pub drift_window: arbiter_core::HumanDuration,
    /// Drift detection: length of the reference window before it.
    #[arg(long, env = "ARBITER_DRIFT_REFERENCE", default_value = "12h")]
    pub drift_reference: arbiter_core::HumanDuration,
    /// Drift detection: how often to evaluate (`0s` turns it off).
    #[arg(long, env = "ARBITER_DRIFT_INTERVAL", default_value = "5m")]
    pub drift_interval: arbiter_core::HumanDuration,
    /// Drift detection: PSI at or above which a confidence distribution has drifted.
    #[arg(long, env = "ARBITER_DRIFT_PSI", default_value_t = 0.2)]
    pub drift_psi: f64,
}

/// Run the server until Ctrl-C or SIGTERM.
pub fn run(args: ServeArgs) -> Result<ExitCode> {
    crate::init_logging();
    let policy_source = match &args.policy {
        Some(p) => {
            Some(std::fs::read_to_string(p).with_context(|| format!("cannot read policy file {}", p.display()))?)
        }
        None => None,
    };
    if let (Some(path), Some(src)) = (&args.policy, &policy_source)
        && let Err(e) = arbiter_policy::Policy::parse(src)
    {
        anyhow::bail!("the policy file has errors:\n{}", e.render(&path.display().to_string()));
    }
    let store =
        SqliteStore::open(&args.db).with_context(|| format!("cannot open the store at {}", args.db.display()))?;
    let config = Config {
        max_body_bytes: args.max_body_bytes,
        max_wait: Duration::from_secs(args.max_wait_secs),
        min_rationale_len: args.min_rationale_len,
        claim_lease: Duration::from_secs(args.claim_lease.as_secs()),
        sweep_interval: Duration::from_millis(args.sweep_interval_ms.max(10)),
        webhook_interval: Duration::from_millis(args.webhook_interval_ms.max(10)),
        drift: arbiter_core::drift::DriftConfig {
            window_ms: args.drift_window.as_millis(),
            reference_ms: args.drift_reference.as_millis(),
            psi_alarm: args.drift_psi,
            ..Default::default()
        },
        drift_interval: Duration::from_secs(args.drift_interval.as_secs()),
        ..Config::default()
    };
    crate::runtime()?.block_on(async move {
        let store = Arc::new(store);
        let state = AppState::new(store.clone(), config, Arc::new(SystemClock)).await?;
        let boot = arbiter_server::bootstrap(&state, policy_source.as_deref()).await?;
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let addr = listener.local_addr()?;
        let active = state.policy().map(|p| format!("{} ({})", p.name(), &p.hash()[..12])).unwrap_or_default();
        // Machine-readable lines on stdout (tests and scripts read them); logs go to stderr.
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on http://{addr}")?;
        writeln!(out, "store: {}", args.db.display())?;
        writeln!(out, "policy: {active}")?;
        if let Some(key) = &boot.admin_key {
            writeln!(out, "admin key: {key}")?;
            writeln!(out, "(shown once: keep it; create more keys with `arbiter keys create` or POST /v1/keys)")?;
        }
        writeln!(out, "ready")?;
        out.flush()?;
        drop(out);
        arbiter_server::serve(listener, state, shutdown_signal()).await?;
        store.close();
        tracing::info!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
