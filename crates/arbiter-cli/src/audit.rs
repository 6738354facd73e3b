//! `arbiter audit verify|export`, directly on the store.

use anyhow::{Context, Result};
use clap::Subcommand;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Audit subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk the hash chain, check every decision row against it and replay every case against its row;
    /// name the first problem. Exits 1 if any.
    Verify {
        /// SQLite database file.
        #[arg(long, env = "ARBITER_DB", default_value = "./arbiter.db")]
        db: PathBuf,
        /// `SEQ:HASH` printed earlier by `arbiter audit anchor`: also prove the log still extends it
        /// (deleting the newest events together with their rows is caught only this way).
        #[arg(long)]
        anchor: Option<arbiter_store::ChainHead>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the chain head (`SEQ:HASH`): store it elsewhere (a ticket, a second system) and later pass it to
    /// `audit verify --anchor` to prove nothing before it was removed or rewritten.
    Anchor {
        /// SQLite database file.
        #[arg(long, env = "ARBITER_DB", default_value = "./arbiter.db")]
        db: PathBuf,
    },
    /// Write the audit log as JSON Lines (one event per line, with its hashes) for an outside archive.
    Export {
        /// SQLite database file.
        #[arg(long, env = "ARBITER_DB", default_value = "./arbiter.db")]
        db: PathBuf,
        /// Output file (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Only events after this sequence number (for incremental archives).
        #[arg(long, default_value_t = 0)]
        after: u64,
    },
}

/// Run an audit subcommand.
pub fn run(cmd: AuditCommand) -> Result<ExitCode> {
    let rt = crate::process::current_thread()?;
    rt.block_on(async move {
        match cmd {
            AuditCommand::Verify { db, anchor, json } => {
                let store = crate::process::open_store(&db).await?;
                let report = store.verify_audit(anchor.clone()).await?;
                store.close();
                if json {
                    println!("{}", serde_json::to_string_pretty(&report)?);
                } else {
                    match &report.problem {
                        Some(_) => {
                            println!("FAILED: {} problem(s) found", report.problems_found.max(1));
                            for p in &report.problems {
                                println!("  {p}");
                            }
                            let listed = report.problems.len() as u64;
                            if report.problems_found > listed {
                                println!(
                                    "  … and {} more (`--json` lists the first {listed})",
                                    report.problems_found - listed
                                );
                            }
                        }
                        None => println!(
                            "ok: {} events chained{}; {} decisions and {} cases match the chain{}",
                            report.events,
                            report.head.as_ref().map_or(String::new(), |h| format!(" (head {h})")),
                            report.decisions,
                            report.cases,
                            if anchor.is_some() { "; it extends the anchor" } else { "" }
                        ),
                    }
                }
                Ok(if report.problem.is_some() { ExitCode::FAILURE } else { ExitCode::SUCCESS })
            }
            AuditCommand::Anchor { db } => {
                let store = crate::process::open_store(&db).await?;
                let head = store.chain_head().await?;
                store.close();
                match head {
                    Some(h) => println!("{h}"),
                    None => anyhow::bail!("the audit log of {} is empty; there is nothing to anchor yet", db.display()),
                }
                Ok(ExitCode::SUCCESS)
            }
            AuditCommand::Export { db, out, after } => {
                let store = crate::process::open_store(&db).await?;
                let mut w: Box<dyn Write> = match &out {
                    Some(p) => Box::new(std::io::BufWriter::new(
                        std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
                    )),
                    None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
                };
                let (mut after, mut n) = (after, 0u64);
                loop {
                    let page = store.events(after, 5000).await?;
                    let Some(last) = page.last() else { break };
                    after = last.seq;
                    for e in &page {
                        serde_json::to_writer(&mut w, e)?;
                        w.write_all(b"\n")?;
                        n += 1;
                    }
                }
                w.flush()?;
                store.close();
                if let Some(p) = out {
                    eprintln!("exported {n} events to {}", p.display());
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}
