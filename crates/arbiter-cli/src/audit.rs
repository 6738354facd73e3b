//! `arbiter audit verify|export`, directly on the store.

use anyhow::{Context, Result};
use arbiter_store::Store;
use clap::Subcommand;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Audit subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk the hash chain and replay every case against its row; name the first problem. Exits 1 if any.
    Verify {
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
    let rt = crate::current_thread()?;
    rt.block_on(async move {
        match cmd {
            AuditCommand::Verify { db } => {
                let store = crate::open_store(&db)?;
                let chain = store.verify_events().await?;
                let cases = if chain.is_none() { store.verify_projections().await? } else { None };
                store.close();
                match (chain, cases) {
                    (Some((seq, why)), _) => {
                        println!("FAILED: event {seq} does not verify: {why}");
                        Ok(ExitCode::FAILURE)
                    }
                    (None, Some((id, why))) => {
                        println!("FAILED: case {id}: {why}");
                        Ok(ExitCode::FAILURE)
                    }
                    (None, None) => {
                        println!("ok: the hash chain is intact and every case matches its events");
                        Ok(ExitCode::SUCCESS)
                    }
                }
            }
            AuditCommand::Export { db, out, after } => {
                let store = crate::open_store(&db)?;
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
