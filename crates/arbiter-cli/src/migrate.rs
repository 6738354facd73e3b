//! `arbiter migrate`: bring a store's schema up to date before a server
//! starts on it (the server would otherwise do it, silently, at start), with
//! progress through migrations that rewrite existing rows; `--check` only says
//! whether anything is pending.

use crate::progress::Progress;
use anyhow::{Context, Result, bail};
use arbiter_store::SqliteStore;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

/// `arbiter migrate` arguments.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// SQLite database file (it must exist).
    #[arg(long, env = "ARBITER_DB", default_value = "./arbiter.db")]
    db: PathBuf,
    /// Only report the schema version and what is pending; exit 1 if anything is.
    #[arg(long)]
    check: bool,
}

/// Run `arbiter migrate`.
pub fn run(args: MigrateArgs) -> Result<ExitCode> {
    crate::init_logging_quiet();
    if !args.db.exists() {
        bail!("no store at {}; `arbiter serve --db {}` creates one", args.db.display(), args.db.display());
    }
    let (current, latest) = SqliteStore::schema_version(&args.db)
        .with_context(|| format!("cannot read the schema version of {}", args.db.display()))?;
    if current == latest {
        println!("{}: schema version {current}, up to date", args.db.display());
        return Ok(ExitCode::SUCCESS);
    }
    if args.check {
        println!(
            "{}: schema version {current}; migrations {} to {latest} are pending (run `arbiter migrate`)",
            args.db.display(),
            current + 1
        );
        return Ok(ExitCode::FAILURE);
    }
    let mut bar: Option<(u32, Progress)> = None;
    let report = SqliteStore::migrate(&args.db, &mut |p| {
        if bar.as_ref().is_none_or(|(v, _)| *v != p.version) {
            let what = format!("migration {}", p.version);
            bar =
                Some((p.version, if p.total > 0 { Progress::items(p.total, &what) } else { Progress::spinner(&what) }));
        }
        if let Some((_, b)) = &bar {
            b.set(p.done);
        }
    })
    .with_context(|| format!("cannot migrate {}", args.db.display()))?;
    drop(bar);
    println!("{}: schema version {} -> {}", args.db.display(), report.from, report.to);
    Ok(ExitCode::SUCCESS)
}
