//! `arbiter backup`: a consistent copy of a live store.

use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

/// Options of `arbiter backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// SQLite database file (may be in use by a running server).
    #[arg(long, env = "ARBITER_DB", default_value = "./arbiter.db")]
    db: PathBuf,
    /// Where to write the copy; must not exist.
    #[arg(long)]
    out: PathBuf,
}

/// Copy the store to `--out` without stopping the server.
pub fn run(args: BackupArgs) -> Result<ExitCode> {
    if crate::store::postgres_url(&args.db).is_some() {
        anyhow::bail!(
            "`arbiter backup` copies an SQLite store; back a PostgreSQL store up with PostgreSQL's own tools \
             (`pg_dump --format=custom`, or continuous archiving), see docs/operations.md"
        );
    }
    crate::process::current_thread()?.block_on(async {
        let crate::store::OpenStore::Sqlite(store) = crate::process::open_store(&args.db).await? else {
            unreachable!("a PostgreSQL URL was refused above")
        };
        store.backup_to(&args.out).await.with_context(|| format!("backup to {} failed", args.out.display()))?;
        store.close();
        anyhow::Ok(())
    })?;
    println!("backed up {} to {}", args.db.display(), args.out.display());
    Ok(ExitCode::SUCCESS)
}
