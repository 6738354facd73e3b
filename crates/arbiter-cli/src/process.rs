//! What every command sets up before it runs: its tokio runtime, its
//! logging, and the store it opens.

/// A single-threaded tokio runtime, for commands that only talk to the store or one server.
pub(crate) fn current_thread() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

/// Open an existing store (commands other than `serve` never create one).
pub(crate) async fn open_store(db: &std::path::Path) -> anyhow::Result<crate::store::OpenStore> {
    crate::store::open_existing(db).await
}

/// A multi-threaded tokio runtime for the commands that need one.
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

/// Log to stderr at `error` unless `RUST_LOG` says otherwise (for commands with their own output).
pub(crate) fn init_logging_quiet() {
    logging("error");
}

/// Log to stderr at `info` unless `RUST_LOG` says otherwise.
pub(crate) fn init_logging() {
    logging("info");
}

/// Colours only on a terminal, and never when `NO_COLOR` is set.
pub(crate) fn logging(default: &str) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default.into());
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr).try_init();
}
