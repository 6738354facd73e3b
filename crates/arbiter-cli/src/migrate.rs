//! `arbiter migrate`: bring a store's schema up to date before a server
//! starts on it (the server would otherwise do it, silently, at start), with
//! progress through migrations that rewrite existing rows; `--check` only says
//! whether anything is pending. With `--to postgres://...` it copies an
//! SQLite store into an empty PostgreSQL database instead, then verifies the
//! copy's audit chain and compares its head with the source's.

use crate::progress::Progress;
use anyhow::{Context, Result, bail};
use arbiter_store::SqliteStore;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

/// `arbiter migrate` arguments.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The store: an SQLite database file (it must exist) or `postgres://user@host/db`.
    #[arg(long, env = "ARBITER_DB", default_value = "./arbiter.db")]
    db: PathBuf,
    /// With --to: the SQLite store to copy [default: --db].
    #[arg(long, requires = "to")]
    from: Option<PathBuf>,
    /// Copy the SQLite store (--from) into this empty PostgreSQL database (`postgres://user@host/db`).
    #[arg(long)]
    to: Option<String>,
    /// Only report the schema version and what is pending; exit 1 if anything is.
    #[arg(long)]
    check: bool,
}

/// Run `arbiter migrate`.
pub fn run(args: MigrateArgs) -> Result<ExitCode> {
    crate::process::init_logging_quiet();
    if let Some(to) = &args.to {
        return copy(args.from.as_ref().unwrap_or(&args.db), to);
    }
    if let Some(url) = crate::store::postgres_url(&args.db) {
        return postgres(url, args.check);
    }
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

/// Upgrade (or with `check`, only inspect) a PostgreSQL store's schema.
fn postgres(url: &str, check: bool) -> Result<ExitCode> {
    let shown = arbiter_store_postgres::redact(url);
    let (current, latest) = arbiter_store_postgres::schema_versions(url)
        .with_context(|| format!("cannot read the schema version of {shown}"))?;
    if current == latest {
        println!("{shown}: schema version {current}, up to date");
        return Ok(ExitCode::SUCCESS);
    }
    if check {
        println!(
            "{shown}: schema version {current}; migrations {} to {latest} are pending (run `arbiter migrate`)",
            current + 1
        );
        return Ok(ExitCode::FAILURE);
    }
    arbiter_store_postgres::upgrade(url).with_context(|| format!("cannot migrate {shown}"))?;
    println!("{shown}: schema version {current} -> {latest}");
    Ok(ExitCode::SUCCESS)
}

/// Copy an SQLite store into an empty PostgreSQL database, verify the copy,
/// and compare the chain heads on both sides.
fn copy(from: &std::path::Path, to: &str) -> Result<ExitCode> {
    if crate::store::postgres_url(from).is_some() {
        bail!(
            "--from names the SQLite store to copy; {} is a PostgreSQL URL",
            arbiter_store_postgres::redact(from.to_str().unwrap_or_default())
        );
    }
    if crate::store::postgres_url(std::path::Path::new(to)).is_none() {
        bail!("--to must be a PostgreSQL URL (postgres://user@host/db), not `{to}`");
    }
    if !from.exists() {
        bail!("no store at {}", from.display());
    }
    let shown = arbiter_store_postgres::redact(to);
    let mut bar: Option<(String, Progress)> = None;
    let report = arbiter_store_postgres::import::copy_sqlite(from, to, &mut |table, n| {
        if bar.as_ref().is_none_or(|(t, _)| t != table) {
            bar = Some((table.to_string(), Progress::spinner(&format!("copying {table}"))));
        }
        if let Some((_, b)) = &bar {
            b.set(n);
        }
    })
    .with_context(|| format!("cannot copy {} to {shown}", from.display()))?;
    drop(bar);
    for (table, n) in &report.tables {
        if *n > 0 {
            println!("{table}: {n} rows");
        }
    }
    println!("search index: {} documents", report.indexed);
    crate::process::current_thread()?.block_on(async {
        let source = crate::store::open_existing(from).await?;
        let target = crate::store::open_existing(std::path::Path::new(to)).await?;
        let (src_head, dst) = (source.chain_head().await?, target.verify_audit(None).await?);
        source.close();
        target.close();
        if let Some(p) = &dst.problem {
            bail!("the copy's audit chain does not verify: {p}");
        }
        if src_head != dst.head {
            bail!(
                "the chain heads differ: {} has {}, the copy {}",
                from.display(),
                src_head.map_or("none".into(), |h| h.to_string()),
                dst.head.map_or("none".into(), |h| h.to_string())
            );
        }
        println!(
            "audit verify on {shown}: ok, {} events, {} decisions, {} cases; chain head {} on both sides",
            dst.events,
            dst.decisions,
            dst.cases,
            dst.head.map_or("(empty)".into(), |h| h.to_string())
        );
        Ok(ExitCode::SUCCESS)
    })
}
